use super::*;
use crate::domain::FinishReason;

#[test]
fn an_openai_chat_stream_gives_its_content_deltas_and_completes_at_done() {
    let chunk = r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
    assert_eq!(read(chunk), (delta("Hi"), Some(Dialect::OpenAiChat)));
    let role_only = r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#;
    assert_eq!(read(role_only).0, Instruction::Nothing);
    let finish = r#"{"choices":[{"index":0,"delta":{"content":null},"finish_reason":"stop"}]}"#;
    assert_eq!(
        read(finish).0,
        Instruction::Nothing,
        "the finish is noted; [DONE] or the body's end ends the answer, after the usage chunk"
    );
    assert_eq!(
        note(finish),
        Some(EndNote::finish(FinishReason::Stop, "stop", None))
    );
    let last_words =
        r#"{"choices":[{"index":0,"delta":{"content":"bye"},"finish_reason":"length"}]}"#;
    assert_eq!(read(last_words).0, delta("bye"));
    assert_eq!(
        note(last_words).and_then(|note| note.finish),
        Some((FinishReason::Length, "length".to_owned()))
    );
    for (said, reason) in [
        ("content_filter", FinishReason::ContentFilter),
        ("tool_calls", FinishReason::ToolCalls),
        ("function_call", FinishReason::ToolCalls),
        ("eos", FinishReason::Other),
    ] {
        let chunk = format!(r#"{{"choices":[{{"delta":{{}},"finish_reason":"{said}"}}]}}"#);
        assert_eq!(
            note(&chunk).and_then(|note| note.finish),
            Some((reason, said.to_owned()))
        );
    }
    let other_choice_done = r#"{"choices":[{"index":1,"delta":{},"finish_reason":"stop"}]}"#;
    assert_eq!(read(other_choice_done).0, Instruction::Nothing);
    let usage_only = r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0}}}"#;
    assert_eq!(read(usage_only).0, Instruction::Nothing);
    assert_eq!(
        note(usage_only),
        EndNote::usage(Some(usage(9, 2, Some(11))))
    );
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
fn a_refusal_is_the_answers_text() {
    let chat =
        r#"{"choices":[{"index":0,"delta":{"content":null,"refusal":"I can't help with that."}}]}"#;
    assert_eq!(read(chat).0, delta("I can't help with that."));
    let responses = r#"{"type":"response.refusal.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"I can't"}"#;
    assert_eq!(
        read(responses),
        (delta("I can't"), Some(Dialect::OpenAiResponses))
    );
    let stopped = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
    let refused = Instruction::Complete {
        result: Some(
            serde_json::json!({ "finish_reason": "content-filter", "provider_finish_reason": "stop" }),
        ),
    };
    assert_eq!(
        ended(&[chat, stopped, "[DONE]"]),
        refused,
        "a refusal that stops is what the AI SDK calls it"
    );
    let empty_refusal = r#"{"choices":[{"index":0,"delta":{"content":"Sure","refusal":""}}]}"#;
    assert_eq!(
        ended(&[empty_refusal, stopped, "[DONE]"]),
        Instruction::Complete {
            result: Some(
                serde_json::json!({ "finish_reason": "stop", "provider_finish_reason": "stop" })
            ),
        }
    );
    let not_text = r#"{"choices":[{"delta":{"refusal":{"text":"no"}}}]}"#;
    let error = event_stream_data(not_text).expect_err(not_text);
    assert!(error.contains("delta.refusal must be"), "{error}");
    let stop = r#"{"type":"message_delta","delta":{"stop_reason":"refusal","stop_sequence":null},"usage":{"output_tokens":3}}"#;
    assert_eq!(
        note(stop).and_then(|note| note.finish),
        Some((FinishReason::ContentFilter, "refusal".to_owned()))
    );
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
    assert_eq!(
        note(incomplete),
        Some(EndNote::finish(
            FinishReason::Length,
            "max_output_tokens",
            None
        ))
    );
    let completed = r#"{"type":"response.completed","response":{"status":"completed","usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12,"output_tokens_details":{"reasoning_tokens":2}}}}"#;
    assert_eq!(
        ended(&[completed]),
        Instruction::Complete {
            result: Some(serde_json::json!({
                "finish_reason": "stop",
                "provider_finish_reason": "completed",
                "usage": { "input_tokens": 5, "output_tokens": 7, "total_tokens": 12 },
            }))
        }
    );
    let called = r#"{"type":"response.completed","response":{"status":"completed","output":[{"type":"reasoning"},{"type":"function_call","name":"f","arguments":"{}"}]}}"#;
    let searched = r#"{"type":"response.completed","response":{"status":"completed","output":[{"type":"web_search_call"},{"type":"message"}]}}"#;
    let reason = |events: &[&str]| match ended(events) {
        Instruction::Complete { result } => result.unwrap()["finish_reason"].clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(reason(&[called]), "tool-calls");
    assert_eq!(
        reason(&[searched]),
        "stop",
        "a search the provider ran is no call for the caller"
    );
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

#[test]
fn a_choice_ended_by_an_error_fails_in_the_choices_own_words_when_it_has_some() {
    let said = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"error","error":{"message":"upstream timed out"}}]}"#;
    assert_eq!(
        read(said).0,
        Instruction::Fail {
            error: "upstream timed out".into()
        }
    );
    let unsaid = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"error"}]}"#;
    assert_eq!(
        read(unsaid).0,
        Instruction::Fail {
            error: "the model provider failed".into()
        }
    );
}
