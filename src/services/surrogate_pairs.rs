//! Characters split between two lines of an upload. A JavaScript producer
//! that cuts its text by UTF-16 code unit (a typing effect, a chunking
//! regex without the `u` flag) splits a character outside the Basic
//! Multilingual Plane, an emoji say, into two halves, and `JSON.stringify`
//! writes each half as an escape of its own: `{"delta":"\ud83d"}` then
//! `{"delta":"\udc4b"}`. A browser joins them again; Rust strings cannot
//! hold a half, so a line that carries one is rewritten before it is read.
//!
//! Only text is joined: a high half that ends the value of a text field
//! (`delta`, `content`, `text`, and the reasoning's `reasoning`,
//! `reasoning_content`, `thinking`: the fields the streams read here carry
//! their text in) waits for the low half that starts the next text value,
//! of this line or the next, and the two become the character there. Any
//! other half (in a key, a stage, a result, or one its partner does not
//! follow) becomes U+FFFD, as a decoder shows it.

/// The fields whose string values are a stream's text.
const TEXT_FIELDS: [&str; 6] = [
    "delta",
    "content",
    "text",
    "reasoning",
    "reasoning_content",
    "thinking",
];

const REPLACEMENT: &str = "\\ufffd";

/// A line's halves, joined.
#[derive(Debug, PartialEq, Eq)]
pub struct Joined {
    /// The line rewritten; `None` when it has no lone half (it failed to
    /// parse for another reason).
    pub line: Option<String>,
    /// A waiting half found no low half to complete it (the one given, or
    /// one of the line's own): it stands for U+FFFD before the line.
    pub dropped: bool,
    /// A high half that ends the line's last text value, for the next line.
    pub waiting: Option<u16>,
}

/// Rewrites the lone surrogate escapes of the JSON `line`, given the high
/// half `held` the previous line left waiting.
pub fn pair_split_characters(line: &str, held: Option<u16>) -> Joined {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len() + 12);
    let mut waiting = held;
    // `waiting` is still the half given: a line that does not complete it
    // drops it.
    let mut waiting_from_before = held.is_some();
    let (mut changed, mut dropped, mut copied_to) = (false, false, 0);
    // The string being read: where its content starts, and whether it is a
    // text field's value. `last_string`: the previous string's content, a
    // key when a `:` follows it.
    let mut string: Option<(usize, bool)> = None;
    let mut last_string = (0, 0);
    let mut after_colon = false;
    let mut at = 0;
    while at < bytes.len() {
        let Some((start, is_text)) = string else {
            match bytes[at] {
                b'"' => {
                    let key = &line[last_string.0..last_string.1];
                    let is_text = after_colon && TEXT_FIELDS.contains(&key);
                    string = Some((at + 1, is_text));
                    // A text value that does not open with the low half
                    // drops the half that waited for it.
                    if is_text && waiting.is_some() && !opens_with_low_half(bytes, at + 1) {
                        (waiting, waiting_from_before, dropped) = (None, false, true);
                    }
                }
                b':' => after_colon = true,
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => after_colon = false,
            }
            at += 1;
            continue;
        };
        match bytes[at] {
            b'"' => {
                last_string = (start, at);
                after_colon = false;
                string = None;
                at += 1;
            }
            b'\\' => {
                let Some(unit) = escape_unit(bytes, at) else {
                    at += 2; // another escape: `\"`, `\\`, `\n`, …
                    continue;
                };
                let end = at + 6;
                let replacement = match unit {
                    0xD800..=0xDBFF => match escape_unit(bytes, end) {
                        Some(0xDC00..=0xDFFF) => {
                            at = end + 6; // a whole pair
                            continue;
                        }
                        _ if is_text && bytes.get(end) == Some(&b'"') => {
                            (waiting, waiting_from_before) = (Some(unit), false);
                            String::new()
                        }
                        _ => REPLACEMENT.to_owned(),
                    },
                    0xDC00..=0xDFFF => match waiting {
                        Some(high) if is_text && at == start => {
                            (waiting, waiting_from_before) = (None, false);
                            format!("\\u{high:04x}\\u{unit:04x}")
                        }
                        _ => REPLACEMENT.to_owned(),
                    },
                    _ => {
                        at = end;
                        continue;
                    }
                };
                out.push_str(&line[copied_to..at]);
                out.push_str(&replacement);
                copied_to = end;
                changed = true;
                at = end;
            }
            _ => at += 1,
        }
    }
    if waiting_from_before {
        (waiting, dropped) = (None, true);
    }
    Joined {
        line: changed.then(|| {
            out.push_str(&line[copied_to..]);
            out
        }),
        dropped,
        waiting,
    }
}

/// Whether the string content starting at `at` opens with a low half.
fn opens_with_low_half(bytes: &[u8], at: usize) -> bool {
    matches!(escape_unit(bytes, at), Some(0xDC00..=0xDFFF))
}

/// The code unit of the `\uXXXX` escape at `at`, if there is one.
fn escape_unit(bytes: &[u8], at: usize) -> Option<u16> {
    let escape = bytes.get(at..at + 6)?;
    if escape[0] != b'\\' || escape[1] != b'u' {
        return None;
    }
    let hex = std::str::from_utf8(&escape[2..]).ok()?;
    u16::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
#[path = "surrogate_pairs_tests.rs"]
mod tests;
