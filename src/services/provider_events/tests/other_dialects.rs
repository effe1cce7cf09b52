use super::*;
use crate::domain::{AnswerPart, FinishReason, TextKind};
use serde_json::json;

/// An Anthropic Messages stream (`stream: true`) with a thinking block
/// before the text, as the API writes it.
#[test]
fn an_anthropic_stream_gives_its_text_deltas_and_completes_at_message_stop() {
    let events = [
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"usage":{"input_tokens":12,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me see"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        r#"{"type": "ping"}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Bonjour"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" 🌍"}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Paris\"}"}}"#,
        r#"{"type":"content_block_stop","index":2}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    assert_eq!(
        replay(&events),
        (
            "Bonjour 🌍".to_owned(),
            vec![COMPLETE],
            vec![Dialect::Anthropic]
        )
    );
    assert_eq!(
        ended(&events),
        Instruction::Complete {
            result: Some(serde_json::json!({
                "finish_reason": "stop",
                "provider_finish_reason": "end_turn",
                "usage": { "input_tokens": 12, "output_tokens": 15 },
            }))
        },
        "input tokens from message_start, the rest from message_delta"
    );
    assert_eq!(
        ended(&events[..events.len() - 1]),
        ended(&events),
        "a body that ends after message_delta, before message_stop, completes so"
    );
    let cached = [
        r#"{"type":"message_start","message":{"usage":{"input_tokens":25,"cache_creation_input_tokens":100,"cache_read_input_tokens":50,"output_tokens":1}}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"pause_turn","stop_sequence":null},"usage":{"output_tokens":7}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    assert_eq!(
        ended(&cached),
        Instruction::Complete {
            result: Some(serde_json::json!({
                "finish_reason": "stop",
                "provider_finish_reason": "pause_turn",
                "usage": { "input_tokens": 175, "output_tokens": 7 },
            }))
        },
        "the input counts the prompt cache's tokens, as other providers count them"
    );
    let overloaded =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    assert_eq!(read(overloaded).0, fail("Overloaded"));
    let bad =
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":null}}"#;
    let error = event_stream_data(bad).expect_err(bad);
    assert!(error.contains("delta.text"), "{error}");
}

/// Gemini's `streamGenerateContent?alt=sse`: no end marker, the last chunk
/// carries the `finishReason` (here with the chunk's last text).
#[test]
fn a_gemini_stream_gives_its_first_candidates_text_and_completes_at_its_finish_reason() {
    let events = [
        r#"{"candidates":[{"content":{"parts":[{"text":"Pondering…","thought":true}],"role":"model"},"index":0}],"modelVersion":"gemini-2.5-flash"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":4}}"#,
        r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}}}],"role":"model"},"index":0}]}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"lo"},{"text":"!","thoughtSignature":"Ej"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":3}}"#,
    ];
    assert_eq!(
        replay(&events),
        ("Hello!".to_owned(), vec![COMPLETE], vec![Dialect::Gemini])
    );
    let last = event_stream_data(events[3]).unwrap();
    assert_eq!(
        (last.instruction, last.then),
        (delta("lo!"), Some(COMPLETE)),
        "the chunk's text comes before its end"
    );
    assert_eq!(
        ended(&events),
        Instruction::Complete {
            result: Some(serde_json::json!({
                "finish_reason": "tool-calls",
                "provider_finish_reason": "STOP",
                "usage": { "input_tokens": 4, "output_tokens": 3 },
            }))
        },
        "a stop after a function call is the tool calls the AI SDK says it is"
    );
    assert_eq!(
        ended(&[events[1], events[3]]),
        Instruction::Complete {
            result: Some(serde_json::json!({
                "finish_reason": "stop",
                "provider_finish_reason": "STOP",
                "usage": { "input_tokens": 4, "output_tokens": 3 },
            }))
        }
    );
    let thinking = r#"{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":3,"thoughtsTokenCount":40,"totalTokenCount":52}}"#;
    assert_eq!(
        note(thinking).and_then(|note| note.usage),
        Some(usage(9, 43, Some(52))),
        "the output counts the thinking, as other providers count theirs"
    );
    let unspecified = r#"{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"FINISH_REASON_UNSPECIFIED","index":0}]}"#;
    assert_eq!(
        event_stream_data(unspecified).unwrap().then,
        None,
        "a reason left unspecified ends nothing by itself"
    );
    assert_eq!(
        ended(&[unspecified]),
        Instruction::Complete {
            result: Some(serde_json::json!({
                "finish_reason": "other",
                "provider_finish_reason": "FINISH_REASON_UNSPECIFIED",
            }))
        },
        "but the body's end after it completes"
    );
    let finish_only = r#"{"candidates":[{"content":{"parts":[],"role":"model"},"finishReason":"MAX_TOKENS","index":0}]}"#;
    assert_eq!(read(finish_only), (COMPLETE, Some(Dialect::Gemini)));
    assert_eq!(
        note(finish_only).and_then(|note| note.finish),
        Some((FinishReason::Length, "MAX_TOKENS".to_owned()))
    );
    let two = r#"{"candidates":[{"content":{"parts":[{"text":"b"}]},"index":1},{"content":{"parts":[{"text":"a"}]},"index":0}]}"#;
    assert_eq!(read(two).0, delta("a"));
    let blocked =
        r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":4}}"#;
    assert_eq!(
        read(blocked).0,
        fail("the model provider blocked the prompt: SAFETY")
    );
    let error = r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
    assert_eq!(read(error).0, fail("Resource has been exhausted"));
    for bad in [
        r#"{"candidates":[{"content":{"parts":[{"text":3}]}}]}"#,
        r#"{"candidates":{"content":{}}}"#,
        r#"{"candidates":[{"content":{"parts":"text"}}]}"#,
    ] {
        assert!(event_stream_data(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_ai_sdk_streams_sources_files_and_data_parts_are_kept() {
    let part = |json: &str| match read(json) {
        (Instruction::Part(part), Some(Dialect::AiSdk)) => part,
        other => panic!("{json}: {other:?}"),
    };
    let page = r#"{"type":"source-url","sourceId":"s1","url":"https://e.com","title":"E","providerMetadata":{}}"#;
    // Its providerMetadata kept as it came, as the SDK's message keeps it.
    assert_eq!(
        part(page),
        AnswerPart::url_source("s1", "https://e.com", Some("E".into()), "x")
            .unwrap()
            .with_provider_metadata(Some(serde_json::json!({})))
    );
    let doc =
        r#"{"type":"source-document","sourceId":"s2","mediaType":"application/pdf","title":"Q3"}"#;
    assert_eq!(
        part(doc),
        AnswerPart::document_source("s2", "application/pdf", "Q3", None, "x").unwrap()
    );
    let file = r#"{"type":"file","url":"data:image/png;base64,AA==","mediaType":"image/png"}"#;
    assert_eq!(
        part(file),
        AnswerPart::file("data:image/png;base64,AA==", "image/png", "x").unwrap()
    );
    let data = r#"{"type":"data-weather","id":"w1","data":{"c":3},"transient":true}"#;
    assert_eq!(
        part(data),
        AnswerPart::data("weather", Some("w1"), json!({"c": 3}), true, "x").unwrap()
    );
    // Another id than the broker's own progress part is the app's.
    let theirs = r#"{"type":"data-progress","id":"upload","data":1}"#;
    assert_eq!(
        part(theirs),
        AnswerPart::data("progress", Some("upload"), json!(1), false, "x").unwrap()
    );
    for (bad, says) in [
        (
            r#"{"type":"source-url","sourceId":"s"}"#,
            "a source-url part needs url",
        ),
        (
            r#"{"type":"source-document","sourceId":"s","mediaType":"t"}"#,
            "needs title",
        ),
        (
            r#"{"type":"file","url":"u"}"#,
            "a file part needs mediaType",
        ),
        (
            r#"{"type":"data-","data":1}"#,
            "a data- part's name is blank",
        ),
        (
            r#"{"type":"data-x","id":5,"data":1}"#,
            "a data-x part's id must be a string",
        ),
        (
            r#"{"type":"data-x","data":1,"transient":"y"}"#,
            "transient must be true or false",
        ),
    ] {
        let error = event_stream_data(bad).expect_err(bad);
        assert!(error.contains(says), "{bad}: {error}");
    }
}

#[test]
fn an_ai_sdk_stream_gives_its_text_deltas_and_ends_with_finish_or_error() {
    assert_eq!(
        read(r#"{"type":"text-delta","id":"t1","delta":"lo"}"#),
        (delta("lo"), Some(Dialect::AiSdk))
    );
    for quiet in [
        r#"{"type":"start","messageId":"m1"}"#,
        r#"{"type":"text-start","id":"t1"}"#,
        r#"{"type":"start-step"}"#,
        r#"{"type":"reasoning-start","id":"r1"}"#,
        r#"{"type":"tool-input-available","toolCallId":"c1","toolName":"f","input":{}}"#,
        r#"{"type":"tool-output-error","toolCallId":"c1","errorText":"no"}"#,
        r#"{"type":"data-progress","id":"progress","data":{"progress":5}}"#,
        r#"{"type":"message-metadata"}"#,
    ] {
        assert_eq!(
            read(quiet),
            (Instruction::Nothing, Some(Dialect::AiSdk)),
            "{quiet}"
        );
    }
    // A part's end is read (the upload keeps it where it parts text).
    for (end, kind) in [
        ("text-end", TextKind::Answer),
        ("reasoning-end", TextKind::Reasoning),
    ] {
        assert_eq!(
            read(&format!(r#"{{"type":"{end}","id":"p1"}}"#)),
            (Instruction::TextEnd(kind, None), Some(Dialect::AiSdk))
        );
    }
    // A step's end is kept: more of the answer may follow it.
    assert_eq!(
        read(r#"{"type":"finish-step"}"#),
        (Instruction::StepEnd { result: None }, Some(Dialect::AiSdk))
    );
    assert_eq!(
        read(r#"{"type":"some-future-part"}"#),
        (Instruction::Nothing, None),
        "a kind nobody here knows is skipped and names no dialect"
    );
    assert_eq!(read(r#"{"type":"finish"}"#).0, COMPLETE);
    let cut = r#"{"type":"finish","finishReason":"length"}"#;
    assert_eq!(read(cut).0, COMPLETE);
    assert_eq!(
        note(cut),
        Some(EndNote::finish(FinishReason::Length, "length", None))
    );
    assert_eq!(
        note(r#"{"type":"finish","finishReason":"max_tokens"}"#),
        None,
        "a reason in other words than the SDK's is no reason"
    );
    assert_eq!(
        read(r#"{"type":"error","errorText":"rate limited"}"#),
        (fail("rate limited"), Some(Dialect::AiSdk))
    );
    assert_eq!(read(r#"{"type":"abort"}"#).0, Instruction::Cancel);
    // What the app says of the message, before the end it comes with.
    let said = |value: serde_json::Value| match value {
        serde_json::Value::Object(map) => Instruction::MessageMetadata(map),
        _ => unreachable!(),
    };
    for kind in ["start", "message-metadata"] {
        assert_eq!(
            read(&format!(
                r#"{{"type":"{kind}","messageMetadata":{{"model":"m"}}}}"#
            )),
            (said(json!({ "model": "m" })), Some(Dialect::AiSdk))
        );
    }
    let finished =
        event_stream_data(r#"{"type":"finish","finishReason":"stop","messageMetadata":{"n":1}}"#)
            .unwrap();
    assert_eq!(
        (finished.instruction, finished.then),
        (said(json!({ "n": 1 })), Some(COMPLETE))
    );
    assert_eq!(
        finished.note,
        Some(EndNote::finish(FinishReason::Stop, "stop", None))
    );
    let refused = event_stream_data(r#"{"type":"finish","messageMetadata":[1]}"#).unwrap_err();
    assert_eq!(refused, "a finish part's messageMetadata must be an object");
    assert!(event_stream_data(r#"{"type":"text-delta"}"#).is_err());
    assert_eq!(
        read(r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#).0,
        fail("Rate limit reached")
    );
}
