use serde_json::Value;

use super::*;

/// Reads `lines` one after the other as the upload reader does: each
/// line's JSON (rewritten when it has a lone half), a U+FFFD before it when
/// a waiting half was dropped.
fn read_all(lines: &[&str]) -> (Vec<Value>, Vec<bool>, Option<u16>) {
    let (mut values, mut dropped, mut waiting) = (Vec::new(), Vec::new(), None);
    for line in lines {
        let joined = pair_split_characters(line, waiting);
        let text = joined.line.unwrap_or_else(|| line.to_string());
        values.push(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}")));
        dropped.push(joined.dropped);
        waiting = joined.waiting;
    }
    (values, dropped, waiting)
}

fn deltas(values: &[Value]) -> Vec<&str> {
    values
        .iter()
        .map(|v| v["delta"].as_str().unwrap_or("-"))
        .collect()
}

#[test]
fn a_character_split_between_two_lines_is_whole_in_the_second() {
    let (values, dropped, waiting) = read_all(&[
        r#"{"delta":"Hi \ud83d"}"#,
        r#"{"delta":"\udc4b\uD83C"}"#,
        r#"{"delta":"\uDFFD there","seq":4}"#,
    ]);
    assert_eq!(deltas(&values), ["Hi ", "👋", "🏽 there"]);
    assert_eq!(dropped, [false, false, false]);
    assert_eq!(waiting, None);
}

#[test]
fn the_providers_text_fields_are_joined_too() {
    let (values, _, _) = read_all(&[
        r#"{"choices":[{"index":0,"delta":{"content":"\ud83d"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"\udc4b"}}]}"#,
        r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"\ud83d"}}"#,
        r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"\udc4b!"}}"#,
    ]);
    let content = |v: &Value| v.pointer("/choices/0/delta/content").cloned();
    assert_eq!(content(&values[1]), Some(Value::from("👋")));
    assert_eq!(values[3].pointer("/delta/text"), Some(&Value::from("👋!")));
}

#[test]
fn a_half_without_its_partner_becomes_the_replacement_character() {
    // Inside a text, or alone where its partner should be.
    let (values, dropped, _) = read_all(&[r#"{"delta":"a\ud83db"}"#, r#"{"delta":"x\udc4b"}"#]);
    assert_eq!(deltas(&values), ["a\u{FFFD}b", "x\u{FFFD}"]);
    assert_eq!(dropped, [false, false]);
    // A high half the next text value does not complete is dropped there,
    // to stand for U+FFFD before that line.
    let (values, dropped, waiting) =
        read_all(&[r#"{"delta":"\ud83d"}"#, r#"{"delta":"\ud83d\udc4b"}"#]);
    assert_eq!(deltas(&values), ["", "👋"]);
    assert_eq!((dropped, waiting), (vec![false, true], None));
}

#[test]
fn halves_outside_text_fields_are_never_joined() {
    let (values, dropped, waiting) = read_all(&[
        r#"{"progress":5,"stage":"\ud83d"}"#,
        r#"{"delta":"\udc4b"}"#,
        r#"{"complete":{"result":{"x":"\ud83d","y":"\udc4b"}}}"#,
        r#"{"fail":{"error":"e\ud83d"}}"#,
        r#"{"\ud83d":"x","delta":"k"}"#,
    ]);
    assert_eq!(values[0]["stage"], "\u{FFFD}");
    assert_eq!(values[1]["delta"], "\u{FFFD}");
    assert_eq!(
        values[2]["complete"]["result"],
        serde_json::json!({"x": "\u{FFFD}", "y": "\u{FFFD}"})
    );
    assert_eq!(values[3]["fail"]["error"], "e\u{FFFD}");
    assert_eq!(values[4]["\u{FFFD}"], "x");
    assert_eq!((dropped, waiting), (vec![false; 5], None));
}

#[test]
fn a_line_that_does_not_complete_a_waiting_half_drops_it() {
    // A line with halves of its own but no text value.
    let joined = pair_split_characters(r#"{"progress":5,"stage":"\ud83d"}"#, Some(0xD83D));
    assert!(joined.dropped);
    assert_eq!(joined.waiting, None);
}

#[test]
fn lines_without_a_lone_half_are_left_alone() {
    for line in [
        r#"{"delta":"\ud83d\udc4b \u00e9 \\ud83d \"q\""}"#,
        r#"{"delta":"plain"}"#,
        r#"{"delta":"\u"}"#,
    ] {
        let joined = pair_split_characters(line, None);
        assert_eq!(joined.line, None, "{line}");
        assert_eq!((joined.dropped, joined.waiting), (false, None), "{line}");
    }
}
