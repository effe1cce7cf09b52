//! Characters split between two lines of an upload. A JavaScript producer
//! that cuts its text by UTF-16 code unit (a typing effect, a chunking
//! regex without the `u` flag) splits a character outside the Basic
//! Multilingual Plane, an emoji say, into two halves, and `JSON.stringify`
//! writes each half as an escape of its own: `{"delta":"\ud83d"}` then
//! `{"delta":"\udc4b"}`. A browser joins them again; Rust strings cannot
//! hold a half, so a line that carries one is rewritten before it is read:
//! a high half that ends a string waits for the low half that starts the
//! next string (of this line or the next: `Reader` drops a waiting half
//! when a line without halves comes first), and the two become the
//! character there. A half that finds no partner becomes U+FFFD, as a
//! decoder shows it.

/// Rewrites the lone surrogate escapes of the JSON `line`; `None` when it
/// has none (the line failed to parse for another reason). `pending` is a
/// high half waiting for its low half: the previous line's, or an earlier
/// string's of this line; set again when the line leaves one waiting.
pub fn pair_split_characters(line: &str, pending: &mut Option<u16>) -> Option<String> {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len() + 12);
    let (mut changed, mut copied_to, mut in_string, mut string_start) = (false, 0, false, 0);
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                in_string = !in_string;
                string_start = at + 1;
                at += 1;
            }
            b'\\' if in_string => {
                let Some(unit) = escape_unit(bytes, at) else {
                    at += 2; // another escape: `\"`, `\\`, `\n`, …
                    continue;
                };
                let escape_end = at + 6;
                let (replacement, end) = match unit {
                    0xD800..=0xDBFF => match escape_unit(bytes, escape_end) {
                        Some(0xDC00..=0xDFFF) => (None, escape_end + 6), // a whole pair
                        _ if bytes.get(escape_end) == Some(&b'"') => {
                            *pending = Some(unit);
                            (Some(String::new()), escape_end)
                        }
                        _ => (Some(REPLACEMENT.to_owned()), escape_end),
                    },
                    0xDC00..=0xDFFF => match pending.take() {
                        Some(high) if at == string_start => {
                            (Some(format!("\\u{high:04x}\\u{unit:04x}")), escape_end)
                        }
                        _ => (Some(REPLACEMENT.to_owned()), escape_end),
                    },
                    _ => (None, escape_end),
                };
                if let Some(replacement) = replacement {
                    out.push_str(&line[copied_to..at]);
                    out.push_str(&replacement);
                    copied_to = end;
                    changed = true;
                }
                at = end;
            }
            _ => at += 1,
        }
    }
    changed.then(|| {
        out.push_str(&line[copied_to..]);
        out
    })
}

const REPLACEMENT: &str = "\\ufffd";

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
mod tests {
    use super::*;

    fn read(line: &str, pending: &mut Option<u16>) -> String {
        let line = pair_split_characters(line, pending).unwrap_or_else(|| line.to_owned());
        let value: serde_json::Value = serde_json::from_str(&line).expect(&line);
        value["delta"].as_str().expect("a delta").to_owned()
    }

    #[test]
    fn a_character_split_between_two_lines_is_whole_in_the_second() {
        let mut pending = None;
        assert_eq!(read(r#"{"delta":"Hi \ud83d"}"#, &mut pending), "Hi ");
        assert_eq!(pending, Some(0xD83D));
        assert_eq!(
            read(r#"{"delta":"\udc4b there"}"#, &mut pending),
            "👋 there"
        );
        assert_eq!(pending, None);
        // A whole delta of one half each, as a typing effect writes them.
        assert_eq!(read(r#"{"delta":"\uD83C"}"#, &mut pending), "");
        assert_eq!(read(r#"{"delta":"\uDDEB","seq":4}"#, &mut pending), "🇫");
    }

    #[test]
    fn a_half_without_its_partner_becomes_the_replacement_character() {
        let mut pending = None;
        assert_eq!(read(r#"{"delta":"a\ud83db"}"#, &mut pending), "a\u{FFFD}b");
        assert_eq!(read(r#"{"delta":"x\udc4b"}"#, &mut pending), "x\u{FFFD}");
        assert_eq!(read(r#"{"delta":"\udc4b"}"#, &mut pending), "\u{FFFD}");
        assert_eq!(pending, None);
    }

    #[test]
    fn halves_in_two_strings_of_one_line_join_in_the_second() {
        let mut pending = None;
        let line = r#"["\ud83d","\udc4b"]"#;
        let line = pair_split_characters(line, &mut pending).expect("rewritten");
        let value: Vec<String> = serde_json::from_str(&line).expect(&line);
        assert_eq!(value, ["", "👋"]);
        assert_eq!(pending, None);
    }

    #[test]
    fn lines_without_a_lone_half_are_left_alone() {
        for line in [
            r#"{"delta":"\ud83d\udc4b \u00e9 \\ud83d \"q\""}"#,
            r#"{"delta":"plain"}"#,
            r#"{"delta":"\u"}"#,
        ] {
            let mut pending = None;
            assert_eq!(pair_split_characters(line, &mut pending), None, "{line}");
            assert_eq!(pending, None, "{line}");
        }
    }
}
