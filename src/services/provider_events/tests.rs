use super::*;

fn delta(text: &str) -> Instruction {
    Instruction::Delta {
        text: text.into(),
        seq: None,
    }
}

const COMPLETE: Instruction = Instruction::Complete { result: None };

fn fail(error: &str) -> Instruction {
    Instruction::Fail {
        error: error.into(),
    }
}

/// The instruction of an event that carries one, and its dialect.
fn read(data: &str) -> (Instruction, Option<Dialect>) {
    let read = event_stream_data(data).unwrap_or_else(|error| panic!("{data}: {error}"));
    assert_eq!(read.then, None, "{data}");
    (read.instruction, read.dialect)
}

/// The events of a whole stream, as its text and how it ended.
fn replay(events: &[&str]) -> (String, Vec<Instruction>, Vec<Dialect>) {
    let (mut text, mut ends, mut dialects) = (String::new(), Vec::new(), Vec::new());
    for data in events {
        let read = event_stream_data(data).unwrap_or_else(|error| panic!("{data}: {error}"));
        dialects.extend(read.dialect);
        for instruction in std::iter::once(read.instruction).chain(read.then) {
            match instruction {
                Instruction::Delta { text: piece, .. } => text.push_str(&piece),
                Instruction::Nothing => {}
                end => ends.push(end),
            }
        }
    }
    dialects.dedup();
    (text, ends, dialects)
}

#[test]
fn an_openai_chat_stream_gives_its_content_deltas_and_completes_at_done() {
    let chunk = r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
    assert_eq!(read(chunk), (delta("Hi"), Some(Dialect::OpenAiChat)));
    let role_only = r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#;
    assert_eq!(read(role_only).0, Instruction::Nothing);
    let finish = r#"{"choices":[{"index":0,"delta":{"content":null},"finish_reason":"stop"}]}"#;
    assert_eq!(
        read(finish).0,
        COMPLETE,
        "the first choice's finish ends it"
    );
    let last_words =
        r#"{"choices":[{"index":0,"delta":{"content":"bye"},"finish_reason":"length"}]}"#;
    let last = event_stream_data(last_words).unwrap();
    assert_eq!(
        (last.instruction, last.then),
        (delta("bye"), Some(COMPLETE))
    );
    let other_choice_done = r#"{"choices":[{"index":1,"delta":{},"finish_reason":"stop"}]}"#;
    assert_eq!(read(other_choice_done).0, Instruction::Nothing);
    let usage_only = r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}"#;
    assert_eq!(read(usage_only).0, Instruction::Nothing);
    let parts = r#"{"choices":[{"delta":{"content":[{"type":"text","text":"Hel"},{"type":"image_url","image_url":{}},{"type":"text","text":"lo"}]}}]}"#;
    assert_eq!(read(parts).0, delta("Hello"));
    assert_eq!(read("[DONE]"), (COMPLETE, None));
}

#[test]
fn with_several_choices_only_the_first_answer_is_the_tasks_text() {
    let both =
        r#"{"choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":{"content":"a"}}]}"#;
    assert_eq!(read(both).0, delta("a"));
    let second_only = r#"{"choices":[{"index":1,"delta":{"content":"b"}}]}"#;
    assert_eq!(read(second_only).0, Instruction::Nothing);
}

#[test]
fn an_openai_chunk_whose_content_is_not_text_is_refused_not_skipped() {
    for bad in [
        r#"{"choices":[{"delta":{"content":5}}]}"#,
        r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":{"text":"b"}}}]}"#,
        r#"{"choices":[{"delta":{"content":[{"type":"text","text":7}]}}]}"#,
        r#"{"choices":[{"delta":{"content":["loose text"]}}]}"#,
    ] {
        let error = event_stream_data(bad).expect_err(bad);
        assert!(error.contains("delta.content must be"), "{bad}: {error}");
    }
}

/// A Responses API stream as `POST /v1/responses` with `stream: true`
/// writes it (event names and the fields that matter; ids shortened), with
/// a reasoning item before the message.
#[test]
fn an_openai_responses_stream_gives_its_output_text_and_ends_with_the_response() {
    let events = [
        r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[]}}"#,
        r#"{"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","status":"in_progress"}}"#,
        r#"{"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}"#,
        r#"{"type":"response.reasoning_summary_text.delta","sequence_number":3,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Thinking"}"#,
        r#"{"type":"response.output_item.added","sequence_number":4,"output_index":1,"item":{"id":"msg_1","type":"message","status":"in_progress","content":[],"role":"assistant"}}"#,
        r#"{"type":"response.content_part.added","sequence_number":5,"item_id":"msg_1","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"text":""}}"#,
        r#"{"type":"response.output_text.delta","sequence_number":6,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"Hel","logprobs":[]}"#,
        r#"{"type":"response.output_text.delta","sequence_number":7,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"lo ✓","logprobs":[]}"#,
        r#"{"type":"response.output_text.done","sequence_number":8,"item_id":"msg_1","output_index":1,"content_index":0,"text":"Hello ✓"}"#,
        r#"{"type":"response.content_part.done","sequence_number":9,"item_id":"msg_1","output_index":1,"content_index":0,"part":{"type":"output_text","text":"Hello ✓"}}"#,
        r#"{"type":"response.output_item.done","sequence_number":10,"output_index":1,"item":{"id":"msg_1","type":"message","status":"completed"}}"#,
        r#"{"type":"response.completed","sequence_number":11,"response":{"id":"resp_1","status":"completed","output":[]}}"#,
    ];
    assert_eq!(
        replay(&events),
        (
            "Hello ✓".to_owned(),
            vec![COMPLETE],
            vec![Dialect::OpenAiResponses]
        )
    );
    let incomplete = r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"}}}"#;
    assert_eq!(read(incomplete).0, COMPLETE);
    let failed = r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"The model failed"}}}"#;
    assert_eq!(read(failed).0, fail("The model failed"));
    let error = r#"{"type":"error","code":"rate_limit_exceeded","message":"Slow down","param":null,"sequence_number":3}"#;
    assert_eq!(
        read(error),
        (fail("Slow down"), Some(Dialect::OpenAiResponses))
    );
    let bad = r#"{"type":"response.output_text.delta","delta":5}"#;
    let error = event_stream_data(bad).expect_err(bad);
    assert!(error.contains("needs delta as a string"), "{error}");
}

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
    let finish_only = r#"{"candidates":[{"content":{"parts":[],"role":"model"},"finishReason":"MAX_TOKENS","index":0}]}"#;
    assert_eq!(read(finish_only), (COMPLETE, Some(Dialect::Gemini)));
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
fn an_ai_sdk_stream_gives_its_text_deltas_and_ends_with_finish_or_error() {
    assert_eq!(
        read(r#"{"type":"text-delta","id":"t1","delta":"lo"}"#),
        (delta("lo"), Some(Dialect::AiSdk))
    );
    for quiet in [
        r#"{"type":"start","messageId":"m1"}"#,
        r#"{"type":"text-start","id":"t1"}"#,
        r#"{"type":"start-step"}"#,
        r#"{"type":"finish-step"}"#,
        r#"{"type":"reasoning-delta","id":"r1","delta":"hmm"}"#,
        r#"{"type":"tool-input-available","toolCallId":"c1","toolName":"f","input":{}}"#,
        r#"{"type":"tool-output-error","toolCallId":"c1","errorText":"no"}"#,
        r#"{"type":"source-url","sourceId":"s","url":"https://example.com"}"#,
        r#"{"type":"data-weather","data":{}}"#,
    ] {
        assert_eq!(
            read(quiet),
            (Instruction::Nothing, Some(Dialect::AiSdk)),
            "{quiet}"
        );
    }
    assert_eq!(
        read(r#"{"type":"some-future-part"}"#),
        (Instruction::Nothing, None),
        "a kind nobody here knows is skipped and names no dialect"
    );
    assert_eq!(read(r#"{"type":"finish"}"#).0, COMPLETE);
    assert_eq!(
        read(r#"{"type":"error","errorText":"rate limited"}"#),
        (fail("rate limited"), Some(Dialect::AiSdk))
    );
    assert_eq!(read(r#"{"type":"abort"}"#).0, Instruction::Cancel);
    assert!(event_stream_data(r#"{"type":"text-delta"}"#).is_err());
    assert_eq!(
        read(r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#).0,
        fail("Rate limit reached")
    );
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
