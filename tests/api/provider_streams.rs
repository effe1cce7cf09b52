//! A model provider's streamed answer piped straight into
//! `POST /tasks/{id}/stream` (`text/event-stream`): OpenAI Responses,
//! Anthropic Messages and Gemini bodies as those APIs write them (event
//! names, pings, reasoning and tool-use blocks around the text), read live
//! by a viewer, the task ended by the stream's own end or failure, and the
//! answer saying what the body was read as.

use serde_json::{Value, json};

use crate::{
    generations::{Upload, create, text_of, upload_unended},
    helpers::{
        LONG, SHORT, TestApp, assert_error, eventually, labelled_sum, spawn_app, spawn_app_with,
    },
    ui_message_stream::UiStream,
};

const RESPONSES: &str = concat!(
    "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"output\":[]}}\n\n",
    "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[]}}\n\n",
    "event: response.reasoning_summary_text.delta\ndata: {\"type\":\"response.reasoning_summary_text.delta\",\"sequence_number\":2,\"item_id\":\"rs_1\",\"output_index\":0,\"summary_index\":0,\"delta\":\"thinking\"}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"delta\":\"Streams \",\"logprobs\":[]}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"delta\":\"that last\",\"logprobs\":[]}\n\n",
    "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":5,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"text\":\"Streams that last\"}\n\n",
    "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":6,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\"}}\n\n",
);

const ANTHROPIC: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"stop_reason\":null,\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Bonjour\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\", le monde 🌍\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

// An answer cut off at the token limit, its usage chunk after the finish
// (`stream_options.include_usage`), as JSON lines have it without `[DONE]`
// but here with it.
const OPENAI_CUT_OFF: &str = concat!(
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Cut \"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"off\"},\"finish_reason\":\"length\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n",
    "data: [DONE]\n\n",
);

// Gemini writes `\r\n` line ends and no end marker: the finish reason ends it.
const GEMINI: &str = concat!(
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Let me think\",\"thought\": true}],\"role\": \"model\"},\"index\": 0}]}\r\n\r\n",
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Gemini \"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 5},\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n",
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"says hi\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 5,\"candidatesTokenCount\": 4}}\r\n\r\n",
);

/// Uploads `body` to a new task `id` in two pieces split mid-event while a
/// viewer watches; the answer, and the text the viewer saw.
async fn pipe(app: &TestApp, id: &str, body: &str) -> (u16, Value, String) {
    create(app, id).await;
    let mut viewer = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
    let upload = Upload::start(app, id, "text/event-stream");
    let (head, tail) = body.split_at(body.len() / 2 + 3);
    upload.send(head).await;
    upload.send(tail).await;
    let answer = upload.finish().await;
    let status = answer.status().as_u16();
    let answer: Value = answer.json().await.expect("a JSON answer");
    let events = viewer.read_to_end(LONG).await;
    (status, answer, text_of(&events))
}

#[actix_web::test]
async fn openai_responses_anthropic_and_gemini_streams_are_piped_straight_in() {
    let app = spawn_app().await;
    for (id, body, text, read_as) in [
        (
            "responses",
            RESPONSES,
            "Streams that last",
            "openai_responses",
        ),
        ("anthropic", ANTHROPIC, "Bonjour, le monde 🌍", "anthropic"),
        ("gemini", GEMINI, "Gemini says hi", "gemini"),
    ] {
        let (status, answer, seen) = pipe(&app, id, body).await;

        assert_eq!(status, 200, "{id}: {answer}");
        assert_eq!(answer["read_as"], read_as, "{id}: {answer}");
        assert_eq!(answer["task"]["status"], "completed", "{id}: {answer}");
        assert_eq!(answer["chars"], text.chars().count(), "{id}: {answer}");
        assert_eq!(seen, text, "{id}: the viewer's text");
        let mut late = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
        assert_eq!(text_of(&late.read_to_end(SHORT).await), text, "{id}: late");
    }
}

#[actix_web::test]
async fn each_providers_stream_leaves_why_it_stopped_and_its_tokens_as_the_result() {
    let app = spawn_app().await;
    for (id, body, result) in [
        (
            "responses-end",
            RESPONSES,
            json!({ "finish_reason": "stop", "provider_finish_reason": "completed" }),
        ),
        (
            "anthropic-end",
            ANTHROPIC,
            json!({
                "finish_reason": "stop",
                "provider_finish_reason": "end_turn",
                "usage": { "input_tokens": 10, "output_tokens": 9 },
            }),
        ),
        (
            "gemini-end",
            GEMINI,
            json!({
                "finish_reason": "stop",
                "provider_finish_reason": "STOP",
                "usage": { "input_tokens": 5, "output_tokens": 4 },
            }),
        ),
        (
            "chat-cut-off",
            OPENAI_CUT_OFF,
            json!({
                "finish_reason": "length",
                "provider_finish_reason": "length",
                "usage": { "input_tokens": 9, "output_tokens": 2, "total_tokens": 11 },
            }),
        ),
    ] {
        let (status, answer, _) = pipe(&app, id, body).await;

        assert_eq!(status, 200, "{id}: {answer}");
        assert_eq!(answer["task"]["result"], result, "{id}: {answer}");
        let mut late = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
        let events = late.read_to_end(SHORT).await;
        let complete = events.iter().find(|e| e.is("complete")).expect("complete");
        assert_eq!(
            complete.json()["result"],
            result,
            "{id}: the viewers' complete"
        );
    }
    // The UI message stream says it as the message's metadata.
    let mut ui = UiStream::open(&app, "/tasks/chat-cut-off/ui-message-stream").await;
    let parts = ui.read_to_end(SHORT).await;
    assert_eq!(
        parts[parts.len() - 2],
        json!({ "type": "finish", "messageMetadata": { "finishReason": "length" } }),
        "{parts:?}"
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    for (reason, count) in [("stop", 3.0), ("length", 1.0), ("content-filter", 0.0)] {
        let labels = [("finish_reason", reason)];
        assert_eq!(
            labelled_sum(&metrics, "sse_task_finishes_total", &labels),
            count,
            "{reason}"
        );
    }
    // Anthropic 10 + 9, Gemini 5 + 4, OpenAI 9 + 2 (Responses said none).
    for (direction, tokens) in [("input", 24.0), ("output", 15.0)] {
        let labels = [("direction", direction)];
        assert_eq!(
            labelled_sum(&metrics, "sse_task_tokens_total", &labels),
            tokens,
            "{direction}"
        );
    }
}

#[actix_web::test]
async fn an_openai_refusal_is_the_text_viewers_read() {
    let app = spawn_app().await;
    let body = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"refusal\":\"\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"I can't help \"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"with that.\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    );

    let (status, answer, seen) = pipe(&app, "refused", body).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["task"]["status"], "completed", "{answer}");
    assert_eq!(seen, "I can't help with that.");
}

#[actix_web::test]
async fn each_providers_failure_fails_the_task_and_keeps_the_partial_text() {
    let app = spawn_app().await;
    for (id, body, reason) in [
        (
            "responses-failed",
            concat!(
                "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"output_index\":0,\"content_index\":0,\"delta\":\"Half an \"}\n\n",
                "data: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"The model failed\"}}}\n\n",
            ),
            "The model failed",
        ),
        (
            "responses-error",
            concat!(
                "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"output_index\":0,\"content_index\":0,\"delta\":\"Half an \"}\n\n",
                "event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"Slow down\",\"param\":null}\n\n",
            ),
            "Slow down",
        ),
        (
            "anthropic-overloaded",
            concat!(
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Half an \"}}\n\n",
                "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            ),
            "Overloaded",
        ),
        (
            // OpenRouter's mid-stream error: the error beside a last choice.
            "router-error",
            concat!(
                "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Half an \"}}]}\n\n",
                "data: {\"object\":\"chat.completion.chunk\",\"error\":{\"code\":\"server_error\",\"message\":\"Provider disconnected\"},\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n",
            ),
            "Provider disconnected",
        ),
        (
            "gemini-exhausted",
            concat!(
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Half an \"}],\"role\":\"model\"},\"index\":0}]}\n\n",
                "data: {\"error\":{\"code\":429,\"message\":\"Resource has been exhausted\",\"status\":\"RESOURCE_EXHAUSTED\"}}\n\n",
            ),
            "Resource has been exhausted",
        ),
    ] {
        let (status, answer, seen) = pipe(&app, id, body).await;

        assert_eq!(status, 200, "{id}: {answer}");
        assert_eq!(answer["task"]["status"], "failed", "{id}: {answer}");
        assert_eq!(answer["task"]["error"], reason, "{id}: {answer}");
        assert_eq!(seen, "Half an ", "{id}: the partial text is kept");
    }
}

#[actix_web::test]
async fn a_stream_nobody_here_knows_is_answered_with_what_it_was_read_as() {
    // Arrange: events of kinds no dialect has (a future provider's).
    let app = spawn_app().await;
    let body = concat!(
        "event: token\ndata: {\"type\":\"token\",\"value\":\"Hi\"}\n\n",
        "event: done\ndata: {\"type\":\"done\"}\n\n",
    );

    create(&app, "unknown").await;

    // Act
    let upload = Upload::start(&app, "unknown", "text/event-stream");
    upload.send(body).await;
    let answer = upload.finish().await;

    // Assert: nothing was taken for text, and the answer says so.
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = answer.json().await.expect("a JSON answer");
    assert_eq!(answer["read_as"], "event_stream", "{answer}");
    assert_eq!(answer["deltas"], 0, "{answer}");
    assert_eq!(answer["task"]["status"], "pending", "{answer}");

    // Data that is none of the streams read here is refused, naming its line.
    create(&app, "not-a-chunk").await;
    let upload = Upload::start(&app, "not-a-chunk", "text/event-stream");
    upload.send("event: x\ndata: {\"text\":\"Hi\"}\n\n").await;
    let body = assert_error(upload.finish().await, 422, "invalid_payload").await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("line 2:"), "{body}");
    assert!(message.contains("integration guide"), "{body}");
}

#[actix_web::test]
async fn an_sdks_json_lines_are_read_like_the_providers_stream() {
    // What `@anthropic-ai/sdk`'s `stream.toReadableStream()` writes: one
    // event per line, sent as NDJSON.
    let app = spawn_app().await;
    create(&app, "sdk-lines").await;
    let upload = Upload::start(&app, "sdk-lines", "application/x-ndjson");
    upload
        .send(concat!(
            "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"role\":\"assistant\",\"content\":[]}}\n",
            "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n",
            "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Line by \"}}\n",
            "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"line\"}}\n",
            "{\"type\":\"message_stop\"}\n",
        ))
        .await;
    let answer = upload.finish().await;

    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = answer.json().await.expect("a JSON answer");
    assert_eq!(answer["read_as"], "anthropic", "{answer}");
    assert_eq!(answer["task"]["status"], "completed", "{answer}");
    let mut late = app.open_stream("/tasks/sdk-lines/events", &[]).await;
    assert_eq!(text_of(&late.read_to_end(SHORT).await), "Line by line");
}

#[actix_web::test]
async fn a_providers_error_answer_piped_in_unchecked_fails_the_task_with_its_message() {
    // Arrange: what OpenAI answers a bad key, pretty-printed, sent on as if
    // it were the stream.
    let app = spawn_app_with(|s| s.max_upload_line_bytes = 64 * 1024).await;
    create(&app, "bad-key").await;
    let mut viewer = app.open_stream("/tasks/bad-key/events", &[]).await;
    let upload = Upload::start(&app, "bad-key", "text/event-stream");

    // Act
    upload
        .send(
            "{\n    \"error\": {\n        \"message\": \"Incorrect API key provided: sk-abc.\",\n",
        )
        .await;
    upload
        .send("        \"type\": \"invalid_request_error\",\n        \"code\": \"invalid_api_key\"\n    }\n}\n")
        .await;
    let answer = upload.finish().await;

    // Assert: the task failed with the provider's words, and its viewer
    // was told (not left waiting for the orphan timeout).
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = answer.json().await.expect("a JSON answer");
    assert_eq!(answer["task"]["status"], "failed", "{answer}");
    assert_eq!(
        answer["task"]["error"], "Incorrect API key provided: sk-abc.",
        "{answer}"
    );
    let events = viewer.read_to_end(SHORT).await;
    let end = events.last().expect("the end");
    assert!(end.is("error"), "{events:?}");

    // An error answer past the body limit is refused as too large.
    create(&app, "huge-error").await;
    let upload = Upload::start(&app, "huge-error", "text/event-stream");
    let padding = "x".repeat(70_000);
    upload
        .send(&format!("{{\"error\": {{\"message\": \"{padding}\"}}}}"))
        .await;
    assert_error(upload.finish().await, 413, "payload_too_large").await;

    // An error page is no stream, and the answer says where it starts.
    create(&app, "bad-gateway").await;
    let upload = Upload::start(&app, "bad-gateway", "text/event-stream");
    upload
        .send("<html><body>502 Bad Gateway</body></html>\n")
        .await;
    let body = assert_error(upload.finish().await, 422, "invalid_payload").await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("line 1: the body is not an event stream: it begins \"<html>"),
        "{body}"
    );

    // JSON lines sent as an event stream are refused as their second line
    // begins, the body still open: the producer stops before streaming a
    // whole answer for nothing (it was answered at the body's end).
    create(&app, "json-lines").await;
    let upload = Upload::start(&app, "json-lines", "text/event-stream");
    upload.send("{\"delta\": \"Hello\"}\n").await;
    upload.send("{\"delta\": \" world\"}\n").await;
    let answer = tokio::time::timeout(SHORT, upload.answer)
        .await
        .expect("answered while the body is still open")
        .expect("the upload task");
    let body = assert_error(answer, 422, "invalid_payload").await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("send them as application/x-ndjson"),
        "{body}"
    );
    drop(upload.body);
    let task: Value = app
        .get("/tasks/json-lines")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(task["status"], "pending", "nothing applied: {task}");
}

#[actix_web::test]
async fn an_ai_sdk_abort_cancels_the_task_and_its_viewers_see_abort() {
    // Arrange: the app aborted `streamText` (its user pressed stop); the
    // UI message stream it pipes in ends with an `abort` part.
    let app = spawn_app().await;
    create(&app, "aborted").await;
    let upload = Upload::start(&app, "aborted", "text/event-stream");

    // Act
    upload
        .send(concat!(
            "data: {\"type\":\"start\"}\n\n",
            "data: {\"type\":\"text-start\",\"id\":\"t\"}\n\n",
            "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"Stopped here\"}\n\n",
            "data: {\"type\":\"abort\"}\n\n",
            "data: [DONE]\n\n",
        ))
        .await;
    let answer = upload.finish().await;

    // Assert: cancelled with the text kept, as a user's cancel would be.
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = answer.json().await.expect("a JSON answer");
    assert_eq!(answer["task"]["status"], "cancelled", "{answer}");
    let mut late = app.open_stream("/tasks/aborted/events", &[]).await;
    let events = late.read_to_end(SHORT).await;
    assert_eq!(text_of(&events), "Stopped here");
    let end = events.last().expect("the end");
    assert!(
        end.is("error") && end.json()["cancelled"] == true,
        "{end:?}"
    );
    let mut ui = UiStream::open(&app, "/tasks/aborted/ui-message-stream").await;
    let kinds: Vec<Value> = ui
        .read_to_end(SHORT)
        .await
        .iter()
        .map(|part| part["type"].clone())
        .collect();
    assert!(kinds.contains(&json!("abort")), "{kinds:?}");
    assert!(!kinds.contains(&json!("error")), "{kinds:?}");
}

#[actix_web::test]
async fn a_stream_that_said_its_finish_completes_though_its_end_marker_never_came() {
    // Arrange: an OpenAI answer whose producer's connection breaks after
    // the finish and usage chunks, before `[DONE]` (the break alone, after
    // the chunks were read), and an Anthropic answer whose body ends after
    // `message_delta`, before `message_stop`.
    let app = spawn_app().await;
    create(&app, "cut-after-finish").await;
    let before_done = &OPENAI_CUT_OFF[..OPENAI_CUT_OFF.find("data: [DONE]").unwrap()];
    let socket = upload_unended(&app, "cut-after-finish", "text/event-stream", before_done).await;
    eventually(SHORT, "the text to be read", || async {
        let task = app.get_json("/tasks/cut-after-finish").await;
        (task["status"] == "running").then_some(())
    })
    .await;
    let no_stop = &ANTHROPIC[..ANTHROPIC.find("event: message_stop").unwrap()];

    // Act
    drop(socket);
    let (status, answer, _) = pipe(&app, "anthropic-no-stop", no_stop).await;

    // Assert
    let cut_off = json!({
        "finish_reason": "length",
        "provider_finish_reason": "length",
        "usage": { "input_tokens": 9, "output_tokens": 2, "total_tokens": 11 },
    });
    let task = eventually(SHORT, "the broken upload to complete its task", || async {
        let task = app.get_json("/tasks/cut-after-finish").await;
        (task["status"] == "completed").then_some(task)
    })
    .await;
    assert_eq!(task["result"], cut_off, "{task}");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["task"]["status"], "completed", "{answer}");
    assert_eq!(
        answer["task"]["result"]["provider_finish_reason"],
        "end_turn"
    );
}

#[actix_web::test]
async fn a_stop_is_read_as_the_ai_sdk_reads_it_a_tool_call_or_a_refusal() {
    let app = spawn_app().await;
    for (id, body, reason) in [
        (
            "gemini-tool",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"weather\",\"args\":{\"city\":\"Paris\"}}}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}]}\r\n\r\n",
            ("tool-calls", "STOP"),
        ),
        (
            "responses-tool",
            concat!(
                "data: {\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"id\":\"fc_1\",\"type\":\"function_call\",\"name\":\"weather\",\"arguments\":\"\"}}\n\n",
                "data: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"output\":[]}}\n\n",
            ),
            ("tool-calls", "completed"),
        ),
        (
            "chat-refusal",
            concat!(
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"No.\"}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                "data: [DONE]\n\n",
            ),
            ("content-filter", "stop"),
        ),
    ] {
        let (status, answer, _) = pipe(&app, id, body).await;

        assert_eq!(status, 200, "{id}: {answer}");
        let result = &answer["task"]["result"];
        assert_eq!(
            (&result["finish_reason"], &result["provider_finish_reason"]),
            (&json!(reason.0), &json!(reason.1)),
            "{id}: {answer}"
        );
    }
}

#[actix_web::test]
async fn a_long_responses_answer_completes_though_its_closing_events_repeat_it_whole() {
    // Arrange: 100 KB of answer, which `response.output_text.done` and
    // `response.completed` repeat on one line each, past a publish body.
    let app = spawn_app().await;
    let piece = "Streams that last. ".repeat(8);
    let text = piece.repeat(700);
    let delta = |sequence: usize| {
        let event = json!({
            "type": "response.output_text.delta", "sequence_number": sequence,
            "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": piece,
        });
        format!("event: response.output_text.delta\ndata: {event}\n\n")
    };
    let mut body: String = (0..700).map(delta).collect();
    let done = json!({
        "type": "response.output_text.done", "sequence_number": 700,
        "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": text,
    });
    body.push_str(&format!(
        "event: response.output_text.done\ndata: {done}\n\n"
    ));
    let completed = json!({
        "type": "response.completed", "sequence_number": 701,
        "response": {
            "id": "resp_1", "status": "completed",
            "output": [{ "type": "message", "content": [{ "type": "output_text", "text": text }] }],
            "usage": { "input_tokens": 7, "output_tokens": 30000, "total_tokens": 30007 },
        },
    });
    body.push_str(&format!("event: response.completed\ndata: {completed}\n\n"));
    assert!(completed.to_string().len() > 100_000);

    // Act
    let (status, answer, seen) = pipe(&app, "long-responses", &body).await;

    // Assert
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["task"]["status"], "completed");
    assert_eq!(answer["task"]["result"]["usage"]["output_tokens"], 30000);
    assert!(seen == text, "the viewer's text is the answer, once");
}
