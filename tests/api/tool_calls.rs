//! A generation's tool calls kept and streamed: NDJSON `{"tool_call"}` and
//! `{"tool_result"}` lines, and each provider's calls piped straight in
//! (Chat Completions' streamed `tool_calls` fragments, Anthropic's
//! `tool_use` blocks, the Responses API's `function_call` items, Gemini's
//! `functionCall` parts, the AI SDK's tool parts), become `tool_call` and
//! `tool_result` events in order with the text, live; a late or resuming
//! viewer gets them in their places between the rolled-up runs of text.

use serde_json::{Value, json};

use crate::{
    generations::{Upload, create, joined_text_runs, pieces_of, text_of},
    helpers::{
        EventStream, LONG, SHORT, SseEvent, TestApp, assert_error, labelled_sum, spawn_app,
        spawn_app_with,
    },
};

/// Each frame that carries text or a tool event (see [`pieces_of`]).
fn pieces(events: &[SseEvent]) -> Vec<(String, Value)> {
    pieces_of(events, &["text", "tool_call", "tool_result"])
}

/// The tool calls a stream carried: (id, name, input).
fn calls(events: &[SseEvent]) -> Vec<(String, String, Value)> {
    events
        .iter()
        .filter(|e| e.is("tool_call"))
        .map(|e| {
            let data = e.json();
            let text = |field: &str| data[field].as_str().unwrap_or_default().to_owned();
            (
                text("tool_call_id"),
                text("tool_name"),
                data["input"].clone(),
            )
        })
        .collect()
}

/// Uploads `body` as `content_type` to a new task `id` while a viewer
/// watches: the answer, and what the viewer saw.
async fn upload_watched(
    app: &TestApp,
    id: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value, Vec<SseEvent>) {
    create(app, id).await;
    let mut viewer = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
    let upload = Upload::start(app, id, content_type);
    // Split mid-line: the broker must join the pieces.
    let (head, tail) = body.split_at(body.len() / 2 + 1);
    upload.send(head).await;
    upload.send(tail).await;
    let answer = upload.finish().await;
    let status = answer.status().as_u16();
    let answer: Value = answer.json().await.expect("a JSON answer");
    (status, answer, viewer.read_to_end(LONG).await)
}

fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

#[actix_web::test]
async fn tool_calls_and_results_stream_in_order_with_the_text_and_keep_their_place_on_resume() {
    // Arrange: text, a call, its result, a failed call, more text.
    let app = spawn_app().await;
    let body = ndjson(&[
        json!({ "delta": "Let me ", "seq": 1 }),
        json!({ "delta": "check.", "seq": 2 }),
        json!({ "tool_call": { "id": "c1", "name": "weather", "input": { "city": "Oslo" } } }),
        json!({ "tool_result": { "id": "c1", "output": { "celsius": -3 } } }),
        json!({ "tool_call": { "id": "c2", "name": "forecast" } }),
        json!({ "tool_result": { "id": "c2", "error": "service down" } }),
        json!({ "delta": "It is ", "seq": 3 }),
        json!({ "delta": "cold.", "seq": 4 }),
        json!({ "complete": {} }),
    ]);

    // Act
    let (status, answer, live) = upload_watched(&app, "agent", "application/x-ndjson", &body).await;

    // Assert: counted, and seen live in the order they came.
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["tool_calls"], 2, "{answer}");
    assert_eq!(answer["tool_results"], 2, "{answer}");
    assert_eq!(answer["deltas"], 4, "{answer}");
    let expected = [
        ("text", json!("Let me check.")),
        (
            "tool_call",
            json!({ "tool_call_id": "c1", "tool_name": "weather", "input": { "city": "Oslo" } }),
        ),
        (
            "tool_result",
            json!({ "tool_call_id": "c1", "output": { "celsius": -3 } }),
        ),
        (
            "tool_call",
            json!({ "tool_call_id": "c2", "tool_name": "forecast", "input": null }),
        ),
        (
            "tool_result",
            json!({ "tool_call_id": "c2", "error": "service down" }),
        ),
        ("text", json!("It is cold.")),
    ]
    .map(|(kind, data)| (kind.to_owned(), data));
    assert_eq!(joined_text_runs(pieces(&live)), expected);
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    for (kind, count) in [("call", 2.0), ("output", 1.0), ("error", 1.0)] {
        let labels = [("kind", kind)];
        let counted = labelled_sum(&metrics, "sse_task_tool_events_total", &labels);
        assert_eq!(counted, count, "{kind}");
    }

    // A late viewer: the runs rolled up, the tool events in their places.
    let mut late = app.open_stream("/tasks/agent/events", &[]).await;
    let late = late.read_to_end(SHORT).await;
    assert_eq!(pieces(&late), expected, "one event per run, in order");
    assert!(late.last().is_some_and(|e| e.is("complete")));

    // A viewer cut off right after the first call resumes with its result.
    let call_id = late
        .iter()
        .find(|e| e.is("tool_call"))
        .and_then(|e| e.id.clone())
        .expect("the call has an id");
    let mut resumed = app
        .open_stream("/tasks/agent/events", &[("Last-Event-ID", &call_id)])
        .await;
    let resumed = resumed.read_to_end(SHORT).await;
    assert_eq!(pieces(&resumed), expected[2..], "nothing before it again");

    // CONTRACT §6: resuming at any id the late viewer saw gives exactly
    // what came after it: no gap, no duplicate, the order kept.
    let seen: Vec<(String, usize)> = late
        .iter()
        .filter(|e| e.id.is_some())
        .scan(0, |pieces_before, e| {
            *pieces_before += pieces(std::slice::from_ref(e)).len();
            Some((e.id.clone().expect("an id"), *pieces_before))
        })
        .collect();
    for (id, before) in seen {
        let response = app
            .stream_response("/tasks/agent/events", &[("Last-Event-ID", &id)])
            .await;
        let after = match response.status().as_u16() {
            // Nothing newer than a finished task's last event.
            204 => Vec::new(),
            _ => pieces(&EventStream::new(response).read_to_end(SHORT).await),
        };
        assert_eq!(after, expected[before..], "resumed after {id}");
    }
}

// Two calls in parallel, their arguments streamed in fragments that
// interleave, as OpenAI sends them; the finish reason ends both.
pub(crate) const OPENAI_TOOL_CALLS: &str = concat!(
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"On it.\"},\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\": \"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"time\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Oslo\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: [DONE]\n\n",
);

pub(crate) const ANTHROPIC_TOOL_USE: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"On it.\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Os\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"lo\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":30}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

pub(crate) const RESPONSES_FUNCTION_CALL: &str = concat!(
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"On it.\"}\n\n",
    "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"output_index\":1,\"item\":{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_r\",\"name\":\"weather\",\"arguments\":\"\"}}\n\n",
    "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}\n\n",
    "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"output_index\":1,\"item\":{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_r\",\"name\":\"weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\",\"status\":\"completed\"}}\n\n",
    "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"output\":[{\"type\":\"function_call\",\"call_id\":\"call_r\",\"name\":\"weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}]}}\n\n",
);

// Gemini's calls come whole and, from most models, without an id.
pub(crate) const GEMINI_FUNCTION_CALLS: &str = concat!(
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"On it.\"}],\"role\": \"model\"},\"index\": 0}]}\r\n\r\n",
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"weather\",\"args\": {\"city\": \"Oslo\"}}}, {\"functionCall\": {\"name\": \"time\"}}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}]}\r\n\r\n",
);

pub(crate) const AI_SDK_TOOLS: &str = concat!(
    "data: {\"type\":\"start\",\"messageId\":\"m1\"}\n\n",
    "data: {\"type\":\"text-start\",\"id\":\"0\"}\n\n",
    "data: {\"type\":\"text-delta\",\"id\":\"0\",\"delta\":\"On it.\"}\n\n",
    "data: {\"type\":\"text-end\",\"id\":\"0\"}\n\n",
    "data: {\"type\":\"tool-input-start\",\"toolCallId\":\"call_s\",\"toolName\":\"weather\"}\n\n",
    "data: {\"type\":\"tool-input-delta\",\"toolCallId\":\"call_s\",\"inputTextDelta\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}\n\n",
    "data: {\"type\":\"tool-input-available\",\"toolCallId\":\"call_s\",\"toolName\":\"weather\",\"input\":{\"city\":\"Oslo\"}}\n\n",
    "data: {\"type\":\"tool-output-available\",\"toolCallId\":\"call_s\",\"output\":{\"celsius\":-3}}\n\n",
    "data: {\"type\":\"finish\"}\n\n",
    "data: [DONE]\n\n",
);

#[actix_web::test]
async fn each_providers_tool_calls_are_kept_whole_after_the_text_before_them() {
    let app = spawn_app().await;
    let oslo = json!({ "city": "Oslo" });
    for (id, body, read_as, expected) in [
        (
            "openai-tools",
            OPENAI_TOOL_CALLS,
            "openai_chat",
            vec![
                ("call_a", "weather", oslo.clone()),
                ("call_b", "time", json!({})),
            ],
        ),
        (
            "anthropic-tools",
            ANTHROPIC_TOOL_USE,
            "anthropic",
            vec![("toolu_1", "weather", oslo.clone())],
        ),
        (
            "responses-tools",
            RESPONSES_FUNCTION_CALL,
            "openai_responses",
            vec![("call_r", "weather", oslo.clone())],
        ),
        (
            "gemini-tools",
            GEMINI_FUNCTION_CALLS,
            "gemini",
            vec![
                // No ids: made up, the upload's own (checked below).
                ("", "weather", oslo.clone()),
                ("", "time", json!({})),
            ],
        ),
        (
            "ai-sdk-tools",
            AI_SDK_TOOLS,
            "ai_sdk",
            vec![("call_s", "weather", oslo.clone())],
        ),
    ] {
        let (status, answer, live) = upload_watched(&app, id, "text/event-stream", body).await;

        assert_eq!(status, 200, "{id}: {answer}");
        assert_eq!(answer["read_as"], read_as, "{id}: {answer}");
        assert_eq!(answer["tool_calls"], expected.len(), "{id}: {answer}");
        let expected: Vec<(String, String, Value)> = expected
            .into_iter()
            .map(|(call, name, input)| (call.to_owned(), name.to_owned(), input))
            .collect();
        let mut seen = calls(&live);
        if id == "gemini-tools" {
            let ids: Vec<String> = seen
                .iter_mut()
                .map(|call| std::mem::take(&mut call.0))
                .collect();
            assert!(ids.iter().all(|made| made.starts_with("call_")), "{ids:?}");
            assert_ne!(ids[0], ids[1], "{ids:?}");
        }
        assert_eq!(seen, expected, "{id}");
        assert_eq!(text_of(&live), "On it.", "{id}");
        let kinds: Vec<String> = pieces(&live).into_iter().map(|(kind, _)| kind).collect();
        assert_eq!(
            kinds[0], "text",
            "{id}: the text before the calls comes first"
        );
        assert!(live.last().is_some_and(|e| e.is("complete")), "{id}");
        let task = app.get_json(&format!("/tasks/{id}")).await;
        assert_eq!(task["status"], "completed", "{id}");
        if id != "ai-sdk-tools" {
            assert_eq!(
                task["result"]["finish_reason"], "tool-calls",
                "{id}: {task}"
            );
        }
    }
    // The AI SDK's stream carries the tool's answer too.
    let mut late = app.open_stream("/tasks/ai-sdk-tools/events", &[]).await;
    let late = late.read_to_end(SHORT).await;
    let result = late
        .iter()
        .find(|e| e.is("tool_result"))
        .expect("the result");
    assert_eq!(result.json()["output"], json!({ "celsius": -3 }));
}

#[actix_web::test]
async fn a_malformed_tool_line_is_refused_naming_it_and_what_came_before_stays() {
    let app = spawn_app().await;
    let bad_part = "data: {\"type\":\"tool-input-available\",\"toolName\":\"w\",\"input\":{}}\n\n";
    let cases = [
        (
            "no-name",
            "application/x-ndjson",
            ndjson(&[json!({ "tool_call": { "id": "c1" } })]),
            "name",
        ),
        (
            "blank-id",
            "application/x-ndjson",
            ndjson(&[json!({ "tool_call": { "id": " ", "name": "weather" } })]),
            "id is blank",
        ),
        (
            "both",
            "application/x-ndjson",
            ndjson(&[json!({ "tool_result": { "id": "c1", "output": 1, "error": "e" } })]),
            "one of output, error and denied",
        ),
        (
            "long-name",
            "application/x-ndjson",
            ndjson(&[json!({ "tool_call": { "id": "c1", "name": "n".repeat(257) } })]),
            "longer than 256",
        ),
        (
            "bad-part",
            "text/event-stream",
            bad_part.to_owned(),
            "toolCallId",
        ),
    ];
    for (id, content_type, bad, says) in cases {
        create(&app, id).await;
        let upload = Upload::start(&app, id, content_type);
        let kept = match content_type {
            "application/x-ndjson" => ndjson(&[json!({ "delta": "kept" })]),
            _ => "data: {\"type\":\"text-delta\",\"id\":\"0\",\"delta\":\"kept\"}\n\n".to_owned(),
        };
        upload.send(&kept).await;
        upload.send(&bad).await;
        let body = assert_error(upload.finish().await, 422, "invalid_payload").await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("line "), "{id}: {message}");
        assert!(message.contains(says), "{id}: {message}");
        // The task goes on: its catch-up is the text, then its state.
        let mut late = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
        let late = late.take_messages(2, SHORT).await;
        assert_eq!(text_of(&late), "kept", "{id}");
        assert!(late[1].is("progress"), "{id}: {late:?}");
    }
}

#[actix_web::test]
async fn the_demo_model_thinks_calls_a_tool_then_answers_in_a_second_step() {
    let app = spawn_app().await;
    let started = app
        .post_json("/demo/generations", &json!({ "prompt": "tools" }))
        .await;
    assert_eq!(started.status().as_u16(), 201);
    let started: Value = started.json().await.expect("the demo task");
    let events_url = started["events_url"].as_str().expect("its stream");

    let mut viewer = app.open_stream(events_url, &[]).await;
    let seen = viewer.read_to_end(LONG).await;

    // In order: thinking, the call and the end of the model's step, the
    // tool's answer, the text, the end.
    let kinds = [
        "reasoning",
        "tool_call",
        "step_end",
        "tool_result",
        "text",
        "complete",
    ];
    let order: Vec<&str> = seen
        .iter()
        .filter_map(|e| e.event.as_deref())
        .filter(|kind| kinds.contains(kind))
        .fold(Vec::new(), |mut kinds, kind| {
            if kinds.last() != Some(&kind) {
                kinds.push(kind);
            }
            kinds
        });
    assert_eq!(order, kinds);
    let step_end = seen.iter().find(|e| e.is("step_end")).expect("a step");
    assert_eq!(step_end.json()["result"]["finish_reason"], "tool-calls");
    // Metered as any step's end, though no upload wrote it.
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let labels = [("finish_reason", "tool-calls")];
    assert_eq!(
        labelled_sum(&metrics, "sse_task_step_ends_total", &labels),
        1.0
    );
    let call = calls(&seen);
    assert_eq!(call.len(), 1, "{call:?}");
    assert_eq!(call[0].1, "search_docs");
    let result = seen
        .iter()
        .find(|e| e.is("tool_result"))
        .expect("the answer");
    assert_eq!(result.json()["tool_call_id"], call[0].0.as_str());
}

/// The upload `body` to a new task `id`: its status and answer, and its
/// stream's tool calls (read after: the task may still run).
async fn upload_then_calls(
    app: &TestApp,
    id: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value, Vec<(String, String, Value)>, String) {
    create(app, id).await;
    let upload = Upload::start(app, id, content_type);
    upload.send(body).await;
    let answer = upload.finish().await;
    let status = answer.status().as_u16();
    let answer: Value = answer.json().await.expect("a JSON answer");
    let history = app
        .get_json("/sse/history?limit=1000&event_types=tool_call,text")
        .await;
    let (mut calls, mut text) = (Vec::new(), String::new());
    for event in history["events"].as_array().expect("events") {
        let data = &event["data"];
        if data["task_id"] != id {
            continue;
        }
        match event["event_type"].as_str() {
            Some("text") => text.push_str(data["delta"].as_str().unwrap_or_default()),
            _ => calls.push((
                data["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                data["tool_name"].as_str().unwrap_or_default().to_owned(),
                data["input"].clone(),
            )),
        }
    }
    (status, answer, calls, text)
}

fn openai_chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({ "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] });
    format!("data: {chunk}\n\n")
}

#[actix_web::test]
async fn providers_quirks_keep_each_call_whole_and_apart() {
    let app = spawn_app().await;
    let call = |id: &str, name: &str, arguments: &str| json!({ "tool_calls": [{ "index": 0, "id": id, "function": { "name": name, "arguments": arguments } }] });

    // Servers that number every parallel call 0: each new id is a new call.
    let zero = [
        openai_chunk(call("c1", "a", "{\"x\":1}"), None),
        openai_chunk(call("c2", "b", "{\"y\":2}"), None),
        openai_chunk(json!({}), Some("tool_calls")),
    ]
    .concat();
    let (status, _, got, _) =
        upload_then_calls(&app, "index-zero", "text/event-stream", &zero).await;
    assert_eq!(status, 200);
    assert_eq!(
        got,
        [
            ("c1".to_owned(), "a".to_owned(), json!({"x": 1})),
            ("c2".to_owned(), "b".to_owned(), json!({"y": 2})),
        ]
    );

    // A body that stops before the provider said the call was done keeps
    // its text, not half a call.
    let cut = [
        openai_chunk(json!({ "content": "Hi" }), None),
        openai_chunk(call("c1", "weather", "{\"city\":\"Pa"), None),
    ]
    .concat();
    let (status, _, got, text) =
        upload_then_calls(&app, "cut-call", "text/event-stream", &cut).await;
    assert_eq!((status, got, text.as_str()), (200, vec![], "Hi"));
    // So does a stream that fails mid-call.
    let failed = [
        cut.as_str(),
        "data: {\"error\": {\"message\": \"boom\"}}\n\n",
    ]
    .concat();
    let (status, answer, got, text) =
        upload_then_calls(&app, "failed-call", "text/event-stream", &failed).await;
    assert_eq!(
        (status, got, text.as_str()),
        (200, vec![], "Hi"),
        "{answer}"
    );
    assert_eq!(answer["task"]["status"], "failed", "{answer}");

    // Anthropic's own tools (`server_tool_use`) are no call of the app's;
    // a block's input given whole at its start is kept.
    let event = |value: Value| format!("data: {value}\n\n");
    let anthropic = [
        event(json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {} } })),
        event(json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "input_json_delta", "partial_json": "{\"query\":\"q\"}" } })),
        event(json!({ "type": "content_block_stop", "index": 0 })),
        event(json!({ "type": "content_block_start", "index": 1, "content_block": { "type": "tool_use", "id": "toolu_1", "name": "f", "input": { "a": 1 } } })),
        event(json!({ "type": "content_block_stop", "index": 1 })),
        event(json!({ "type": "message_stop" })),
    ]
    .concat();
    let (status, _, got, _) =
        upload_then_calls(&app, "server-tools", "text/event-stream", &anthropic).await;
    assert_eq!(status, 200);
    assert_eq!(
        got,
        [("toolu_1".to_owned(), "f".to_owned(), json!({"a": 1}))]
    );

    // Gemini: the text after a call in one chunk comes after it.
    let gemini = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"A \"}, {\"functionCall\": {\"id\": \"g1\", \"name\": \"f\", \"args\": {}}}, {\"text\": \"B\"}]}, \"index\": 0}]}\n\n";
    create(&app, "gemini-order").await;
    let mut viewer = app.open_stream("/tasks/gemini-order/events", &[]).await;
    let upload = Upload::start(&app, "gemini-order", "text/event-stream");
    upload.send(gemini).await;
    upload.send("data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \".\"}]}, \"finishReason\": \"STOP\", \"index\": 0}]}\n\n").await;
    assert_eq!(upload.finish().await.status().as_u16(), 200);
    let order: Vec<(String, Value)> = pieces(&viewer.read_to_end(LONG).await);
    let kinds: Vec<&str> = order.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"text"), "{order:?}");
    assert_eq!(order[0].1, "A ", "{order:?}");
    assert_eq!(order[1].0, "tool_call", "{order:?}");
    let after: String = order[2..]
        .iter()
        .map(|(_, d)| d.as_str().unwrap_or_default())
        .collect();
    assert_eq!(after, "B.", "{order:?}");
}

#[actix_web::test]
async fn a_providers_call_too_long_or_misnamed_is_refused_naming_its_line() {
    let app = spawn_app_with(|s| s.max_upload_line_bytes = 2048).await;
    let call = |name: &str, arguments: &str| json!({ "tool_calls": [{ "index": 0, "id": "c1", "function": { "name": name, "arguments": arguments } }] });
    let misnamed = [
        openai_chunk(call(&"n".repeat(300), "{}"), None),
        openai_chunk(json!({}), Some("tool_calls")),
    ]
    .concat();
    create(&app, "misnamed").await;
    let upload = Upload::start(&app, "misnamed", "text/event-stream");
    upload.send(&misnamed).await;
    let body = assert_error(upload.finish().await, 422, "invalid_payload").await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("longer than 256"), "{message}");

    // Fragments of one call add up to no more than a line may hold.
    create(&app, "long-call").await;
    let upload = Upload::start(&app, "long-call", "text/event-stream");
    upload.send(&openai_chunk(call("f", "[\"a"), None)).await;
    let fragment =
        json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "a".repeat(1000) } }] });
    for _ in 0..3 {
        upload.send(&openai_chunk(fragment.clone(), None)).await;
    }
    let body = assert_error(upload.finish().await, 413, "payload_too_large").await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("tool call \"c1\"'s input") && message.contains("longer than 2048"),
        "names the call, not a line no longer than the others: {message}"
    );
}

/// A refused line applies nothing of itself: a chunk with text, a call
/// whose name is too long and its finish is refused whole, so the task
/// keeps running with only what came before, and the producer can fail it.
#[actix_web::test]
async fn a_refused_chunk_neither_writes_its_text_nor_completes_the_task() {
    let app = spawn_app().await;
    let body = [
        openai_chunk(json!({ "content": "Before. " }), None),
        openai_chunk(
            json!({ "content": "Refused.", "tool_calls": [{ "index": 0, "id": "c1", "type": "function", "function": { "name": "n".repeat(300), "arguments": "{}" } }] }),
            Some("tool_calls"),
        ),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();

    let (status, answer, calls, text) =
        upload_then_calls(&app, "refused-chunk", "text/event-stream", &body).await;

    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("line 3:")),
        "{answer}"
    );
    assert_eq!(text, "Before. ");
    assert!(calls.is_empty(), "{calls:?}");
    let task = app.get_json("/tasks/refused-chunk").await;
    assert_eq!(task["status"], "running", "{task}");
    let failed = app
        .post_json(
            "/tasks/refused-chunk/fail",
            &json!({"error": "the provider's stream was refused"}),
        )
        .await;
    assert_eq!(failed.status().as_u16(), 200);
}
