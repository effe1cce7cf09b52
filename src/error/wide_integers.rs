//! Whole numbers beyond 64 bits in a JSON body.
//!
//! serde_json reads an integer literal that fits neither `u64` nor `i64`
//! as a float: `123456789012345678901234567890` would be stored and
//! delivered as `1.2345678901234568e29`, its digits silently lost. Such a
//! body is refused instead, as a number out of any range (`1e400`) already
//! is, and the publisher is told to send the number as a string.

/// The byte offset of the first integer literal outside `i64..=u64::MAX`,
/// if any. Strings are skipped (a number inside one is text).
pub(super) fn first_wide_integer(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => at = string_end(bytes, at + 1),
            b'-' | b'0'..=b'9' => {
                let start = at;
                at += 1;
                while at < bytes.len()
                    && matches!(bytes[at], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    at += 1;
                }
                let literal = &text[start..at];
                // 19 digits always fit an i64; only longer ones are read.
                if literal.len() > 19
                    && !literal.contains(['.', 'e', 'E'])
                    && literal.parse::<i64>().is_err()
                    && literal.parse::<u64>().is_err()
                {
                    return Some(start);
                }
            }
            _ => at += 1,
        }
    }
    None
}

/// Just past the quote that closes the string whose content starts at `from`.
fn string_end(bytes: &[u8], mut from: usize) -> usize {
    while let Some(found) = memchr::memchr2(b'"', b'\\', &bytes[from.min(bytes.len())..]) {
        let at = from + found;
        if bytes[at] == b'"' {
            return at + 1;
        }
        from = at + 2;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_beyond_64_bits_are_found_outside_strings_only() {
        for fits in [
            r#"{"n": 18446744073709551615, "m": -9223372036854775808}"#,
            r#"{"n": 9007199254740993, "f": 1.2345678901234567890123e5}"#,
            r#"{"s": "123456789012345678901234567890", "e": "\"99999999999999999999\""}"#,
            r#"[1e400, 12345678901234567890.5, -0, 1E2]"#,
        ] {
            assert_eq!(first_wide_integer(fits), None, "{fits}");
        }
        for (wide, at) in [
            (r#"{"n": 18446744073709551616}"#, 6),
            (r#"{"m": -9223372036854775809}"#, 6),
            (r#"{"s": "a\"", "n": [123456789012345678901234567890]}"#, 19),
        ] {
            assert_eq!(first_wide_integer(wide), Some(at), "{wide}");
        }
    }
}
