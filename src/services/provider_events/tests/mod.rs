//! The dialects' readers, each against its provider's stream as written.

mod ai_sdk_7;
mod openai;
mod other_dialects;

use super::*;
use crate::domain::{TextKind, TokenUsage};

pub(super) fn delta(text: &str) -> Instruction {
    Instruction::answer(text)
}

pub(super) const COMPLETE: Instruction = Instruction::Complete { result: None };

pub(super) fn fail(error: &str) -> Instruction {
    Instruction::Fail {
        error: error.into(),
    }
}

/// What an event says of the answer's end.
pub(super) fn note(data: &str) -> Option<EndNote> {
    event_stream_data(data).unwrap().note
}

pub(super) fn usage(input: u64, output: u64, total: Option<u64>) -> TokenUsage {
    TokenUsage {
        input_tokens: Some(input),
        output_tokens: Some(output),
        total_tokens: total,
    }
}

/// The instruction of an event that carries one, and its dialect.
pub(super) fn read(data: &str) -> (Instruction, Option<Dialect>) {
    let read = event_stream_data(data).unwrap_or_else(|error| panic!("{data}: {error}"));
    assert_eq!(read.then, None, "{data}");
    (read.instruction, read.dialect)
}

/// The events of a whole stream, as its text (the answer's: the thinking
/// is kept apart) and how it ended.
pub(super) fn replay(events: &[&str]) -> (String, Vec<Instruction>, Vec<Dialect>) {
    let (mut text, mut ends, mut dialects) = (String::new(), Vec::new(), Vec::new());
    for data in events {
        let read = event_stream_data(data).unwrap_or_else(|error| panic!("{data}: {error}"));
        dialects.extend(read.dialect);
        for instruction in std::iter::once(read.instruction).chain(read.then) {
            match instruction {
                Instruction::Delta(delta) if delta.kind == TextKind::Answer => {
                    text.push_str(&delta.text)
                }
                Instruction::Delta(_) | Instruction::Nothing => {}
                end => ends.push(end),
            }
        }
    }
    dialects.dedup();
    (text, ends, dialects)
}

/// How a whole stream ended, as its body's reader would make it: the last
/// end any event gave, with what the events said of it as its result.
pub(super) fn ended(events: &[&str]) -> Instruction {
    let mut ending = Ending::default();
    let mut last = None;
    for data in events {
        let read = event_stream_data(data).unwrap_or_else(|error| panic!("{data}: {error}"));
        if let Some(note) = read.note {
            ending.note(note);
        }
        for instruction in std::iter::once(read.instruction).chain(read.then) {
            match ending.applied(instruction) {
                Instruction::Delta(_) | Instruction::Nothing => {}
                end => last = Some(end),
            }
        }
    }
    last.or_else(|| ending.at_body_end())
        .expect("the stream ends")
}

#[test]
fn data_that_is_no_known_stream_is_refused_in_plain_words() {
    for bad in [
        "not json",
        "[1, 2]",
        "5",
        "null",
        "{}",
        r#"{"text": "hello"}"#,
        r#"{"type": 5}"#,
    ] {
        let error = event_stream_data(bad).expect_err(bad);
        assert!(
            !error.contains("expected") && !error.contains("invalid type"),
            "{bad}: {error}"
        );
    }
}

#[test]
fn an_openai_compatible_chunk_carrying_an_error_fails_the_task() {
    // OpenRouter's mid-stream error: the error beside a last choice.
    let chunk = r#"{"object":"chat.completion.chunk","error":{"code":"server_error","message":"Provider disconnected unexpectedly"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#;
    assert_eq!(read(chunk).0, fail("Provider disconnected unexpectedly"));
    let reason_only = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"error"}]}"#;
    assert_eq!(read(reason_only).0, fail("the model provider failed"));
    let empty_reason = r#"{"choices":[{"index":0,"delta":{"content":"go"},"finish_reason":""}]}"#;
    assert_eq!(
        read(empty_reason).0,
        delta("go"),
        "an empty finish_reason ends nothing"
    );
    // The text of the chunk that fails comes first.
    let last_words = r#"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"error"}]}"#;
    let last = event_stream_data(last_words).unwrap();
    assert_eq!(
        (last.instruction, last.then),
        (delta("a"), Some(fail("the model provider failed")))
    );
    let beside = r#"{"error":{"message":"m"},"choices":[{"index":0,"delta":{"content":"a"}}]}"#;
    let beside = event_stream_data(beside).unwrap();
    assert_eq!(
        (beside.instruction, beside.then),
        (delta("a"), Some(fail("m")))
    );
    assert_eq!(beside.dialect, Some(Dialect::OpenAiChat));
    // An error as a string, beside choices or alone.
    let string_error = r#"{"error":"str err","choices":[{"index":0,"delta":{}}]}"#;
    assert_eq!(read(string_error).0, fail("str err"));
    assert_eq!(read(r#"{"error":"Unauthorized"}"#).0, fail("Unauthorized"));
    let empty_message = r#"{"error":{"message":"  "}}"#;
    assert_eq!(read(empty_message).0, fail("the model provider failed"));
}

#[test]
fn a_provider_chunk_sent_as_a_json_line_is_read_as_in_an_event_stream() {
    let chunk = r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
    let read = provider_line(chunk).expect("an OpenAI chunk");
    assert_eq!(
        (read.instruction, read.dialect),
        (delta("Hi"), Some(Dialect::OpenAiChat))
    );
    let responses = r#"{"type":"response.output_text.delta","item_id":"m","output_index":0,"content_index":0,"delta":"Hel","sequence_number":4}"#;
    let read = provider_line(responses).expect("a Responses event");
    assert_eq!(
        (read.instruction, read.dialect),
        (delta("Hel"), Some(Dialect::OpenAiResponses))
    );
    let stop = r#"{"type":"message_stop"}"#;
    assert_eq!(
        provider_line(stop).expect("Anthropic").instruction,
        COMPLETE
    );
    let error = r#"{"error":{"message":"Overloaded","type":"overloaded_error"}}"#;
    assert_eq!(
        provider_line(error).expect("an error").instruction,
        fail("Overloaded")
    );
    for not_a_provider in [
        r#"{"detla":"x"}"#,
        r#"{"type":"x","delta":"y"}"#,
        "[DONE]",
        "{",
    ] {
        assert!(provider_line(not_a_provider).is_none(), "{not_a_provider}");
    }
    // A line with the broker's own fields is the producer's own, mistyped.
    for own in [
        r#"{"delta":"a","seq":1,"type":"text-delta"}"#,
        r#"{"delta":"a","seq":1,"choices":[]}"#,
        r#"{"fail":{"error":"mine"},"error":{"message":"theirs"}}"#,
        r#"{"progress":50,"type":"message_stop"}"#,
    ] {
        assert!(provider_line(own).is_none(), "{own}");
    }
}

#[test]
fn a_providers_error_answer_gives_its_message() {
    for (answer, message) in [
        (
            "{\n  \"error\": {\n    \"message\": \"Incorrect API key provided\",\n    \"type\": \"invalid_request_error\"\n  }\n}",
            "Incorrect API key provided",
        ),
        (
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            "Overloaded",
        ),
        (
            r#"[{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}]"#,
            "Resource exhausted",
        ),
        (r#"{"error":"model not found"}"#, "model not found"),
    ] {
        let value: Value = serde_json::from_str(answer).expect(answer);
        assert_eq!(error_message(&value).as_deref(), Some(message), "{answer}");
    }
    let not_an_error: Value = serde_json::from_str(r#"{"choices":[]}"#).unwrap();
    assert_eq!(error_message(&not_an_error), None);
}

#[test]
fn each_dialects_thinking_is_reasoning_kept_apart_from_the_text() {
    let thinking = Instruction::reasoning("think");
    for (data, dialect) in [
        (
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"think"}}"#,
            Dialect::Anthropic,
        ),
        (
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"think"}}"#,
            Dialect::Anthropic,
        ),
        (
            r#"{"type":"response.reasoning_summary_text.delta","item_id":"rs","delta":"think"}"#,
            Dialect::OpenAiResponses,
        ),
        (
            r#"{"type":"response.reasoning_text.delta","item_id":"rs","delta":"think"}"#,
            Dialect::OpenAiResponses,
        ),
        (
            r#"{"type":"reasoning-delta","id":"r","delta":"think"}"#,
            Dialect::AiSdk,
        ),
    ] {
        assert_eq!(read(data), (thinking.clone(), Some(dialect)), "{data}");
    }
    // A chunk with thinking and text both: the thinking first.
    for (data, dialect) in [
        (
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"think","content":"Hi"}}]}"#,
            Dialect::OpenAiChat,
        ),
        (
            r#"{"choices":[{"index":0,"delta":{"reasoning":"think","content":"Hi"}}]}"#,
            Dialect::OpenAiChat,
        ),
        (
            r#"{"candidates":[{"content":{"parts":[{"text":"think","thought":true},{"text":"Hi"}]},"index":0}]}"#,
            Dialect::Gemini,
        ),
    ] {
        let read = event_stream_data(data).unwrap();
        assert_eq!(read.reasoning.as_deref(), Some("think"), "{data}");
        assert_eq!(read.instruction, delta("Hi"), "{data}");
        assert_eq!(read.dialect, Some(dialect), "{data}");
    }
    // A server that says it under both names (vLLM keeps them in step)
    // thinks it once: the first said is read, as the AI SDK reads it.
    let both =
        r#"{"choices":[{"index":0,"delta":{"reasoning_content":"think","reasoning":"think"}}]}"#;
    let read_both = event_stream_data(both).unwrap();
    assert_eq!(read_both.reasoning.as_deref(), Some("think"));
    // Thinking that is not a string is refused, naming the field.
    let error = event_stream_data(r#"{"choices":[{"index":0,"delta":{"reasoning_content":5}}]}"#)
        .expect_err("refused");
    assert!(error.contains("reasoning_content"), "{error}");
    // The thinking's signature carries no text.
    let signature = r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"Eq"}}"#;
    assert_eq!(read(signature).0, Instruction::Nothing);
}
