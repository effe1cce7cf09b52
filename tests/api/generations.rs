//! AI generations (CONTRACT §7): one streamed upload per generation in the
//! contract's three formats (other providers' streams: `provider_streams`),
//! applied as it arrives; cancel answers the upload at once; malformed lines
//! are named; `seq` retries are ignored; a late viewer gets
//! the whole text in one event.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::helpers::{
    LONG, SHORT, SseEvent, TestApp, assert_error, labelled_sum, sample_sum, spawn_app,
    spawn_app_with,
};

/// Creates task `id`.
pub(crate) async fn create(app: &TestApp, id: &str) {
    let response = app.post_json("/tasks", &json!({ "task_id": id })).await;
    assert_eq!(response.status().as_u16(), 201, "creating {id}");
}

/// An upload whose body the test writes piece by piece.
pub(crate) struct Upload {
    pub body: mpsc::Sender<Result<Bytes, std::io::Error>>,
    pub answer: actix_rt::task::JoinHandle<reqwest::Response>,
}

impl Upload {
    pub fn start(app: &TestApp, id: &str, content_type: &str) -> Self {
        Self::start_as(app, id, content_type, None)
    }

    /// [`Self::start`] with `token` as its bearer.
    pub fn start_as(app: &TestApp, id: &str, content_type: &str, token: Option<&str>) -> Self {
        let (body, chunks) = mpsc::channel(64);
        let mut request = app
            .api_client
            .post(app.url(&format!("/tasks/{id}/stream")))
            .header("Content-Type", content_type)
            .body(reqwest::Body::wrap_stream(ReceiverStream::new(chunks)));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = actix_rt::spawn(async move { request.send().await.expect("upload sent") });
        Self { body, answer }
    }

    pub async fn send(&self, text: &str) {
        self.body
            .send(Ok(Bytes::from(text.to_owned())))
            .await
            .expect("the upload is open");
    }

    /// Ends the body; the broker's answer.
    pub async fn finish(self) -> reqwest::Response {
        drop(self.body);
        tokio::time::timeout(LONG, self.answer)
            .await
            .expect("the upload is answered")
            .expect("the upload task")
    }
}

/// An upload over a raw socket: its head and `body` as one chunk, the body
/// left unended. Dropping the socket breaks the connection, as a producer
/// that crashed (or whose own upstream failed) would.
pub(crate) async fn upload_unended(
    app: &TestApp,
    id: &str,
    content_type: &str,
    body: &str,
) -> tokio::net::TcpStream {
    let request = format!(
        "POST /tasks/{id}/stream HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n",
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut socket, request.as_bytes())
        .await
        .expect("write");
    socket
}

pub(crate) fn text_of(events: &[SseEvent]) -> String {
    deltas_of(events, "text")
}

/// `(type, data)` pieces of a stream with each run of `text` pieces (their
/// data the delta) joined into one: live text may come as several events
/// where a late viewer's comes rolled up, so the two compare.
pub(crate) fn joined_text_runs(pieces: Vec<(String, Value)>) -> Vec<(String, Value)> {
    let mut runs: Vec<(String, Value)> = Vec::new();
    for (kind, data) in pieces {
        match runs.last_mut() {
            Some((last, Value::String(text))) if *last == "text" && kind == "text" => {
                text.push_str(data.as_str().unwrap_or_default());
            }
            _ => runs.push((kind, data)),
        }
    }
    runs
}

/// The `delta`s of the events of `event_type` (`text`, `reasoning`), joined.
/// Each frame of one of `kinds`: its type, and for text the delta's text,
/// for any other its data less its `task_id`.
pub(crate) fn pieces_of(events: &[SseEvent], kinds: &[&str]) -> Vec<(String, Value)> {
    events
        .iter()
        .filter(|e| kinds.iter().any(|kind| e.is(kind)))
        .map(|e| {
            let mut data = e.json();
            let kind = e.event.clone().unwrap_or_default();
            if kind == "text" {
                return (kind, data["delta"].clone());
            }
            data.as_object_mut().expect("an object").remove("task_id");
            (kind, data)
        })
        .collect()
}

pub(crate) fn deltas_of(events: &[SseEvent], event_type: &str) -> String {
    events
        .iter()
        .filter(|e| e.is(event_type))
        .map(|e| e.json()["delta"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[actix_web::test]
async fn an_ndjson_upload_is_applied_line_by_line_while_it_is_still_open() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "gen").await;
    let mut viewer = app.open_stream("/tasks/gen/events", &[]).await;
    assert!(viewer.next_message(SHORT).await.unwrap().is("progress"));
    let upload = Upload::start(&app, "gen", "application/x-ndjson");

    // Act / Assert: a token is delivered before the upload ends.
    upload
        .send("{\"progress\": 10, \"stage\": \"writing\"}\n")
        .await;
    upload.send("{\"delta\": \"Hel\"}\n{\"del").await;
    upload.send("ta\": \"lo \"}\n").await;
    let mut seen = Vec::new();
    while text_of(&seen) != "Hello " {
        seen.push(
            viewer
                .next_message(SHORT)
                .await
                .expect("a token while the upload is open"),
        );
    }
    assert!(
        !upload.answer.is_finished(),
        "answered before the body ended"
    );
    upload.send("{\"delta\": \"wörld\\n\", \"seq\": 7}\n").await;
    upload.send("{\"delta\": \"wörld\\n\", \"seq\": 7}\n").await;
    upload
        .send("{\"complete\": {\"result\": {\"tokens\": 3}}}")
        .await;
    let answer = upload.finish().await;

    // Assert
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = answer.json().await.expect("JSON");
    assert_eq!(answer["task"]["status"], "completed", "{answer}");
    assert_eq!(answer["task"]["result"], json!({"tokens": 3}));
    assert_eq!(
        answer["deltas"], 3,
        "the retried seq is not counted: {answer}"
    );
    assert_eq!(answer["chars"], 12, "nor are its characters: {answer}");
    seen.extend(viewer.read_to_end(SHORT).await);
    assert_eq!(
        text_of(&seen),
        "Hello wörld\n",
        "the retry did not double text"
    );
    assert!(
        seen.iter()
            .any(|e| e.is("progress") && e.json()["stage"] == "writing")
    );
    assert!(seen.last().unwrap().is("complete"), "{seen:?}");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let uploads = [("format", "ndjson"), ("outcome", "completed")];
    assert_eq!(
        labelled_sum(&metrics, "sse_task_uploads_total", &uploads),
        1.0
    );
    assert_eq!(
        sample_sum(&metrics, "sse_task_uploads_open"),
        0.0,
        "{metrics}"
    );
    let retries = [("outcome", "retry")];
    assert_eq!(
        labelled_sum(&metrics, "sse_task_deltas_total", &retries),
        1.0
    );
    let accepted = [("outcome", "accepted")];
    assert_eq!(
        labelled_sum(&metrics, "sse_task_deltas_total", &accepted),
        3.0
    );
}

#[actix_web::test]
async fn an_openai_and_an_ai_sdk_stream_are_piped_straight_in() {
    let app = spawn_app().await;
    for (id, body, expected, read_as) in [
        (
            "openai",
            concat!(
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Server-\"}}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Sent Events\"},\"finish_reason\":null}]}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                "data: [DONE]\n\n",
            ),
            "Server-Sent Events",
            "openai_chat",
        ),
        (
            "aisdk",
            concat!(
                "data: {\"type\":\"start\",\"messageId\":\"m1\"}\n\n",
                "data: {\"type\":\"start-step\"}\n\n",
                "data: {\"type\":\"text-start\",\"id\":\"t\"}\n\n",
                "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"Hello\"}\n\n",
                "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\", world\"}\n\n",
                "data: {\"type\":\"text-end\",\"id\":\"t\"}\n\n",
                "data: {\"type\":\"finish-step\"}\n\n",
                "data: {\"type\":\"finish\"}\n\n",
                "data: [DONE]\n\n",
            ),
            "Hello, world",
            "ai_sdk",
        ),
    ] {
        create(&app, id).await;
        let upload = Upload::start(&app, id, "text/event-stream");
        // Split mid-event, as a proxy would.
        let (head, tail) = body.split_at(body.len() / 2);
        upload.send(head).await;
        upload.send(tail).await;
        let answer = upload.finish().await;
        assert_eq!(answer.status().as_u16(), 200, "{id}");
        let answer: Value = answer.json().await.unwrap();
        assert_eq!(answer["task"]["status"], "completed", "{id}: {answer}");
        assert_eq!(answer["read_as"], read_as, "{id}: {answer}");
        let mut late = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
        let events = late.read_to_end(SHORT).await;
        assert_eq!(text_of(&events), expected, "{id}");
    }
}

#[actix_web::test]
async fn a_cancel_answers_the_open_upload_at_once_and_keeps_the_partial_text() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "cancelled").await;
    let upload = Upload::start(&app, "cancelled", "application/x-ndjson");
    upload.send("{\"delta\": \"partial \"}\n").await;
    crate::helpers::eventually(SHORT, "the first token to be stored", || async {
        let task = app.get_json("/tasks/cancelled").await;
        (task["status"] == "running").then_some(())
    })
    .await;

    // Act: a user cancels while the producer is still streaming.
    let cancel = app.post_json("/tasks/cancelled/cancel", &json!({})).await;
    assert_eq!(cancel.status().as_u16(), 200);

    // Assert: the upload is answered at once, although its body is open.
    let answer = tokio::time::timeout(SHORT, upload.answer)
        .await
        .expect("answered without waiting for the body")
        .expect("the upload task");
    assert_error(answer, 409, "task_cancelled").await;
    let mut late = app.open_stream("/tasks/cancelled/events", &[]).await;
    let events = late.read_to_end(SHORT).await;
    assert_eq!(text_of(&events), "partial ");
    let end = events.last().expect("the end");
    assert!(
        end.is("error") && end.json()["cancelled"] == true,
        "{end:?}"
    );
    drop(upload.body);
}

#[actix_web::test]
async fn a_cancel_before_the_first_line_answers_the_upload_at_once() {
    // Arrange: an upload open on a task nobody wrote to yet (the model is
    // still thinking), so this instance holds nothing of the task.
    let app = spawn_app().await;
    create(&app, "thinking").await;
    let upload = Upload::start(&app, "thinking", "application/x-ndjson");
    crate::helpers::eventually(SHORT, "the upload to be open", || async {
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        (sample_sum(&metrics, "sse_task_uploads_open") == 1.0).then_some(())
    })
    .await;

    // Act
    let cancel = app.post_json("/tasks/thinking/cancel", &json!({})).await;
    assert_eq!(cancel.status().as_u16(), 200);

    // Assert: not at the next line, not at the idle timeout: now.
    let answer = tokio::time::timeout(SHORT, upload.answer)
        .await
        .expect("answered although the producer sent nothing")
        .expect("the upload task");
    assert_error(answer, 409, "task_cancelled").await;
    drop(upload.body);
}

/// The stored `text` deltas, oldest first.
pub(crate) async fn stored_text(app: &TestApp) -> Vec<String> {
    let history = app
        .get_json("/sse/history?event_types=text&limit=100")
        .await;
    text_deltas(&history)
}

/// The deltas of the `text` events of a `/sse/history` answer, in order.
pub(crate) fn text_deltas(history: &Value) -> Vec<String> {
    history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["data"]["delta"].as_str().expect("a delta").to_owned())
        .collect()
}

/// Uploads "a"; once it is stored, "b" and, 100 ms later, "c"; answers the
/// text events the store holds.
async fn three_uploaded_deltas(app: &TestApp) -> Vec<String> {
    create(app, "window").await;
    let upload = Upload::start(app, "window", "application/x-ndjson");
    upload.send("{\"delta\": \"a\"}\n").await;
    crate::helpers::eventually(SHORT, "the first delta to be stored", || async {
        (stored_text(app).await.len() == 1).then_some(())
    })
    .await;
    upload.send("{\"delta\": \"b\"}\n").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    upload.send("{\"delta\": \"c\"}\n").await;
    let answer = upload.finish().await;
    assert_eq!(answer.status().as_u16(), 200);
    stored_text(app).await
}

#[actix_web::test]
async fn deltas_within_the_coalescing_window_become_one_text_event() {
    // An upload's next write waits out the window after its last one; what
    // arrives meanwhile goes into the same event.
    let app = spawn_app_with(|s| s.text_coalesce = Duration::from_millis(400)).await;
    assert_eq!(three_uploaded_deltas(&app).await, ["a", "bc"]);

    // Without a window every delta that finds nothing being stored is its
    // own event.
    let app = spawn_app_with(|s| s.text_coalesce = Duration::ZERO).await;
    assert_eq!(three_uploaded_deltas(&app).await, ["a", "b", "c"]);
}

#[actix_web::test]
async fn a_text_request_is_not_held_by_the_coalescing_window() {
    // A producer waiting for each answer cannot add to a window, only wait
    // it out: each request is stored at once.
    let app = spawn_app_with(|s| s.text_coalesce = Duration::from_secs(2)).await;
    create(&app, "requests").await;
    let started = std::time::Instant::now();
    for delta in ["a", "b", "c"] {
        let answer = app
            .post_json("/tasks/requests/text", &json!({ "delta": delta }))
            .await;
        assert_eq!(answer.status().as_u16(), 202);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "three requests took {:?}",
        started.elapsed()
    );
    assert_eq!(stored_text(&app).await, ["a", "b", "c"]);
}

#[actix_web::test]
async fn a_malformed_line_is_named_and_what_came_before_stays() {
    let app = spawn_app().await;
    create(&app, "bad-line").await;
    let upload = Upload::start(&app, "bad-line", "application/x-ndjson");
    upload
        .send("{\"delta\": \"kept \"}\n\n{\"delta\": 5}\n{\"delta\": \"lost\"}\n")
        .await;
    let answer = upload.finish().await;
    let body = assert_error(answer, 422, "invalid_payload").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("line 3:"), "{message}");
    let task = app.get_json("/tasks/bad-line").await;
    assert_eq!(task["status"], "running", "the task goes on: {task}");
    let mut late = app.open_stream("/tasks/bad-line/events", &[]).await;
    let first = late.next_message(SHORT).await.unwrap();
    assert_eq!(text_of(&[first]), "kept ");
}

#[actix_web::test]
async fn an_upload_is_cut_off_only_once_its_producer_is_silent_for_the_read_timeout() {
    let app = spawn_app_with(|s| s.body_read_timeout = Duration::from_secs(1)).await;
    create(&app, "slow-producer").await;
    let upload = Upload::start(&app, "slow-producer", "application/x-ndjson");
    // Slower than anyone would stream, never silent for the timeout: twice
    // the timeout in all, and the upload stays open throughout.
    for letter in ["a", "b", "c", "d", "e", "f"] {
        upload.send(&format!("{{\"delta\": \"{letter}\"}}\n")).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(!upload.answer.is_finished(), "cut off while still sending");

    // Then silent: answered 408 about a timeout later, the text kept.
    let silent_since = std::time::Instant::now();
    let answer = tokio::time::timeout(LONG, upload.answer)
        .await
        .expect("the silent upload is answered")
        .expect("the upload task");
    let waited = silent_since.elapsed();
    assert_error(answer, 408, "request_timeout").await;
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(3),
        "answered {waited:?} into the silence"
    );
    assert_eq!(stored_text(&app).await.concat(), "abcdef");
}

#[actix_web::test]
async fn an_upload_that_ends_without_a_terminal_line_leaves_the_task_running() {
    let app = spawn_app().await;
    create(&app, "open-end").await;
    let upload = Upload::start(&app, "open-end", "application/x-ndjson");
    upload.send("{\"delta\": \"a\"}\n{\"delta\": \"b\"}").await;
    let answer = upload.finish().await;
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["task"]["status"], "running");
    assert_eq!(
        (answer["deltas"].as_u64(), answer["chars"].as_u64()),
        (Some(2), Some(2))
    );

    // Another upload goes on where it stopped.
    let upload = Upload::start(&app, "open-end", "application/x-ndjson");
    upload
        .send("{\"delta\": \"c\"}\n{\"complete\": {}}\n")
        .await;
    assert_eq!(upload.finish().await.status().as_u16(), 200);
    let mut late = app.open_stream("/tasks/open-end/events", &[]).await;
    assert_eq!(text_of(&late.read_to_end(SHORT).await), "abc");
}

#[actix_web::test]
async fn uploads_are_refused_as_the_contract_says() {
    let app = spawn_app_with(|s| s.max_upload_line_bytes = 64 * 1024).await;
    create(&app, "r").await;
    let json_body = app
        .post_raw(
            "/tasks/r/stream",
            "{\"delta\": \"x\"}",
            Some("application/json"),
        )
        .await;
    assert_error(json_body, 415, "unsupported_media_type").await;
    let unknown = app
        .post_raw(
            "/tasks/nope/stream",
            "{\"delta\": \"x\"}\n",
            Some("application/x-ndjson"),
        )
        .await;
    assert_error(unknown, 404, "task_not_found").await;
    let bad_id = app
        .post_raw("/tasks/a.b/stream", "", Some("application/x-ndjson"))
        .await;
    assert_error(bad_id, 400, "invalid_task_id").await;
    let not_openai = app
        .post_raw(
            "/tasks/r/stream",
            "data: {\"x\": 1}\n\n",
            Some("text/event-stream"),
        )
        .await;
    let body = assert_error(not_openai, 422, "invalid_payload").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 1:")
    );
    // An SSE body is named by line too, not by event.
    let third_event = app
        .post_raw(
            "/tasks/r/stream",
            ": keep-alive\n\nevent: chunk\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"x\": 1}\n\n",
            Some("text/event-stream"),
        )
        .await;
    let body = assert_error(third_event, 422, "invalid_payload").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("line 6:"), "{message}");
    // An SSE upload is kept as text: a byte that is not UTF-8 is refused by
    // line, not replaced, and a content that is not text is not skipped.
    for (body, line) in [
        (
            &b"data: {\"choices\":[{\"delta\":{\"content\":\"a\xFF\"}}]}\n\n"[..],
            1,
        ),
        (
            &b"data: {\"type\":\"start\"}\n\ndata: {\"choices\":[{\"delta\":{\"content\":5}}]}\n\n"
                [..],
            3,
        ),
    ] {
        let refused = app
            .post_raw("/tasks/r/stream", body.to_vec(), Some("text/event-stream"))
            .await;
        let body = assert_error(refused, 422, "invalid_payload").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("line {line}:")), "{message}");
    }
    assert_eq!(
        stored_text(&app).await.concat(),
        "a",
        "only the first upload's delta"
    );
    // A whole line over the limit is refused like an unfinished one.
    let long_line = format!("{{\"delta\": \"{}\"}}\n", "x".repeat(70_000));
    let too_long = app
        .post_raw("/tasks/r/stream", long_line, Some("application/x-ndjson"))
        .await;
    let body = assert_error(too_long, 413, "payload_too_large").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("line 1 "), "{message}");
    app.post_json("/tasks/r/complete", &json!({})).await;
    let finished = app
        .post_raw(
            "/tasks/r/stream",
            "{\"delta\": \"late\"}\n",
            Some("application/x-ndjson"),
        )
        .await;
    assert_error(finished, 409, "task_finished").await;
}

#[actix_web::test]
async fn a_retried_seq_on_the_text_endpoint_never_doubles_text() {
    let app = spawn_app().await;
    create(&app, "retry").await;
    // Each delta answers the id of the event it went into, a retried one
    // `null` (`N` stands for the request's event id).
    for (body, answer) in [
        (json!({"delta": "one ", "seq": 1}), vec!["N"]),
        (json!({"delta": "one ", "seq": 1}), vec!["null"]),
        (
            json!({"deltas": [{"delta": "two ", "seq": 2}, {"delta": "two ", "seq": 2}, "free "]}),
            vec!["N", "null", "N"],
        ),
        (
            json!({"deltas": [{"delta": "two ", "seq": 2}, {"delta": "three ", "seq": 3}]}),
            vec!["null", "N"],
        ),
        (
            json!({"deltas": [{"delta": "four", "seq": 5}, {"delta": "late", "seq": 4}]}),
            vec!["N", "null"],
        ),
        (json!({"delta": "one ", "seq": 1}), vec!["null"]),
    ] {
        let response = app.post_json("/tasks/retry/text", &body).await;
        assert_eq!(response.status().as_u16(), 202, "{body}");
        let ids: Value = response.json().await.expect("ids");
        let ids = ids["ids"].as_array().expect("ids").clone();
        let shape: Vec<&str> = ids
            .iter()
            .map(|id| if id.is_null() { "null" } else { "N" })
            .collect();
        assert_eq!(shape, answer, "{body}: {ids:?}");
        let distinct: std::collections::BTreeSet<i64> =
            ids.iter().filter_map(Value::as_i64).collect();
        assert!(distinct.len() <= 1, "one event per request: {ids:?}");
    }
    app.post_json("/tasks/retry/complete", &json!({})).await;
    let mut late = app.open_stream("/tasks/retry/events", &[]).await;
    assert_eq!(
        text_of(&late.read_to_end(SHORT).await),
        "one two free three four"
    );
}

#[actix_web::test]
async fn a_late_viewer_of_a_long_finished_generation_gets_it_in_three_events() {
    // Arrange: 2,000 tokens, uploaded in pieces.
    let app = spawn_app().await;
    create(&app, "long").await;
    let upload = Upload::start(&app, "long", "application/x-ndjson");
    let mut expected = String::new();
    for n in 0..2000 {
        let token = format!("t{n} ");
        expected.push_str(&token);
        upload
            .send(&format!("{}\n", json!({ "delta": token })))
            .await;
        if n % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    upload.send("{\"complete\": {}}\n").await;
    assert_eq!(upload.finish().await.status().as_u16(), 200);

    // Act
    let mut late = app.open_stream("/tasks/long/events", &[]).await;
    let events = late.read_to_end(SHORT).await;

    // Assert: the text, the state, the end.
    let kinds: Vec<_> = events.iter().map(|e| e.event.as_deref()).collect();
    assert_eq!(kinds, [Some("text"), Some("progress"), Some("complete")]);
    assert!(text_of(&events) == expected, "the text is whole and exact");
}

#[actix_web::test]
async fn a_task_is_replayed_whole_from_both_sides_of_an_index_pass() {
    // Arrange: SQLite indexes a task's events in batches, at most every
    // 100 ms (store/sqlite_task_index.rs). Text written 150 ms apart is
    // indexed by the pass of the commit that stores it; text and the end
    // written right after are found by scanning past the pass's mark.
    // Without the replay cache, so every replay reads the store.
    let app = spawn_app_with(|s| s.replay_cache_events = 0).await;
    create(&app, "halves").await;
    let mut ids = Vec::new();
    for (n, delta) in ["a", "b", "c", "d"].into_iter().enumerate() {
        if n < 3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let answer = app
            .post_json("/tasks/halves/text", &json!({ "delta": delta }))
            .await;
        assert_eq!(answer.status().as_u16(), 202, "writing {delta}");
        let body: Value = answer.json().await.expect("json");
        ids.push(body["ids"][0].as_i64().expect("the text event's id"));
    }
    let answer = app.post_json("/tasks/halves/complete", &json!({})).await;
    assert!(answer.status().is_success(), "{}", answer.status());

    // Act
    let mut late = app.open_stream("/tasks/halves/events", &[]).await;
    let events = late.read_to_end(SHORT).await;

    // Assert: every piece once, in order, and the passes measured.
    let kinds: Vec<_> = events.iter().map(|e| e.event.as_deref()).collect();
    assert_eq!(kinds, [Some("text"), Some("progress"), Some("complete")]);
    assert_eq!(text_of(&events), "abcd");
    // A resume from the first text (indexed) misses text on both sides.
    let resumed_from = ids[0].to_string();
    let mut resumed = app
        .open_stream(
            "/tasks/halves/events",
            &[("Last-Event-ID", resumed_from.as_str())],
        )
        .await;
    let missed = resumed.read_to_end(SHORT).await;
    let kinds: Vec<_> = missed.iter().map(|e| e.event.as_deref()).collect();
    assert_eq!(kinds, [Some("text"), Some("progress"), Some("complete")]);
    assert_eq!(text_of(&missed), "bcd");
    assert_eq!(missed[0].id.as_deref(), Some(ids[3].to_string().as_str()));
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        sample_sum(&metrics, "sse_store_task_index_duration_seconds_count") >= 3.0,
        "{metrics}"
    );
}

#[actix_web::test]
async fn an_upload_that_says_the_generation_failed_fails_the_task_in_each_format() {
    let app = spawn_app().await;
    for (id, content_type, body, reason) in [
        (
            "failed-ndjson",
            "application/x-ndjson",
            "{\"delta\": \"Half an \"}\n{\"fail\": {\"error\": \"model down\"}}\n",
            "model down",
        ),
        (
            "failed-openai",
            "text/event-stream",
            concat!(
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Half an \"}}]}\n\n",
                "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}\n\n",
            ),
            "Rate limit reached",
        ),
        (
            "failed-aisdk",
            "text/event-stream",
            concat!(
                "data: {\"type\":\"start\"}\n\n",
                "data: {\"type\":\"text-start\",\"id\":\"t\"}\n\n",
                "data: {\"type\":\"text-delta\",\"id\":\"t\",\"delta\":\"Half an \"}\n\n",
                "data: {\"type\":\"error\",\"errorText\":\"rate limited\"}\n\n",
            ),
            "rate limited",
        ),
        // What `streamText(…).toUIMessageStreamResponse()` writes when the
        // model fails: its step's and answer's ends after the error.
        (
            "failed-aisdk-whole",
            "text/event-stream",
            concat!(
                "data: {\"type\":\"start\"}\n\n",
                "data: {\"type\":\"start-step\"}\n\n",
                "data: {\"type\":\"text-start\",\"id\":\"t1\"}\n\n",
                "data: {\"type\":\"text-delta\",\"id\":\"t1\",\"delta\":\"Half an \"}\n\n",
                "data: {\"type\":\"error\",\"errorText\":\"An error occurred.\"}\n\n",
                "data: {\"type\":\"text-end\",\"id\":\"t1\"}\n\n",
                "data: {\"type\":\"finish-step\"}\n\n",
                "data: {\"type\":\"finish\",\"finishReason\":\"error\"}\n\n",
                "data: [DONE]\n\n",
            ),
            "An error occurred.",
        ),
        // An OpenAI-compatible router: the error, then the choice's end.
        (
            "failed-router",
            "text/event-stream",
            concat!(
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Half an \"}}]}\n\n",
                "data: {\"error\":{\"message\":\"upstream died\"}}\n\n",
                "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"error\"}]}\n\n",
                "data: [DONE]\n\n",
            ),
            "upstream died",
        ),
        // The AI SDK goes on after a model's error part; its chat stops
        // reading there, and so does the task.
        (
            "failed-aisdk-goes-on",
            "text/event-stream",
            concat!(
                "data: {\"type\":\"start\"}\n\n",
                "data: {\"type\":\"text-start\",\"id\":\"t1\"}\n\n",
                "data: {\"type\":\"text-delta\",\"id\":\"t1\",\"delta\":\"Half an \"}\n\n",
                "data: {\"type\":\"error\",\"errorText\":\"bad chunk\"}\n\n",
                "data: {\"type\":\"text-delta\",\"id\":\"t1\",\"delta\":\"answer\"}\n\n",
                "data: {\"type\":\"text-end\",\"id\":\"t1\"}\n\n",
                "data: {\"type\":\"finish-step\"}\n\n",
                "data: {\"type\":\"finish\"}\n\n",
                "data: [DONE]\n\n",
            ),
            "bad chunk",
        ),
        // The same chunks as NDJSON lines.
        (
            "failed-aisdk-lines",
            "application/x-ndjson",
            concat!(
                "{\"type\":\"start\"}\n",
                "{\"type\":\"text-start\",\"id\":\"t1\"}\n",
                "{\"type\":\"text-delta\",\"id\":\"t1\",\"delta\":\"Half an \"}\n",
                "{\"type\":\"error\",\"errorText\":\"boom\"}\n",
                "{\"type\":\"finish-step\"}\n",
                "{\"type\":\"finish\"}\n",
            ),
            "boom",
        ),
    ] {
        create(&app, id).await;
        let upload = Upload::start(&app, id, content_type);
        upload.send(body).await;
        let answer = upload.finish().await;

        assert_eq!(answer.status().as_u16(), 200, "{id}");
        let answer: Value = answer.json().await.expect("JSON");
        assert_eq!(answer["task"]["status"], "failed", "{id}: {answer}");
        assert_eq!(answer["task"]["error"], reason, "{id}: {answer}");
        let task = app.get_json(&format!("/tasks/{id}")).await;
        assert_eq!(task["status"], "failed", "{id}: {task}");
        // A viewer opening it afterwards: the partial text, the state, the end.
        let mut late = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
        let events = late.read_to_end(SHORT).await;
        assert_eq!(text_of(&events), "Half an ", "{id}");
        let end = events.last().expect("the end");
        assert!(end.is("error"), "{id}: {events:?}");
        assert_eq!(end.json()["status"], "failed", "{id}: {end:?}");
        assert_eq!(end.json()["error"], reason, "{id}: {end:?}");
    }
}

#[actix_web::test]
async fn an_upload_resets_progress_with_force_as_a_patch_does() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "phases").await;

    // Act: the refusal of a lower progress names "force": the upload takes it.
    let upload = Upload::start(&app, "phases", "application/x-ndjson");
    upload
        .send("{\"progress\": 80, \"stage\": \"draft\"}\n{\"progress\": 5, \"stage\": \"revise\", \"force\": true}\n")
        .await;
    let answer = upload.finish().await;

    // Assert
    assert_eq!(answer.status().as_u16(), 200);
    let task = app.get_json("/tasks/phases").await;
    assert_eq!(task["progress"], 5.0, "{task}");
    assert_eq!(task["stage"], "revise", "{task}");
    let misplaced = Upload::start(&app, "phases", "application/x-ndjson");
    misplaced
        .send("{\"delta\": \"x\", \"force\": true}\n")
        .await;
    let refused = assert_error(misplaced.finish().await, 422, "invalid_payload").await;
    assert_eq!(
        refused["error"]["message"], "line 1: force goes with a progress",
        "{refused}"
    );
}

#[actix_web::test]
async fn a_line_the_task_refuses_is_named_and_what_came_before_stays() {
    let app = spawn_app().await;
    for (id, body, status, code, message) in [
        (
            "out-of-range",
            "{\"delta\": \"kept \"}\n{\"progress\": 150}\n{\"delta\": \"lost\"}\n",
            422,
            "invalid_field",
            "line 2: progress must be a number between 0 and 100",
        ),
        (
            "backwards",
            "{\"progress\": 50}\n{\"delta\": \"kept \"}\n{\"progress\": 10}\n",
            422,
            "invalid_field",
            "line 3: progress may not go backwards",
        ),
        (
            "after-the-end",
            "{\"delta\": \"kept \"}\n{\"complete\": {}}\n{\"delta\": \"lost\"}\n",
            409,
            "task_finished",
            "line 3: the task is already completed",
        ),
        // A second end is a write to an ended task like any other: never
        // a 200 that dropped it (a provider stream's end said again after
        // an error is another matter: see provider_streams.rs).
        (
            "complete-after-fail",
            "{\"delta\": \"kept \"}\n{\"fail\": {\"error\": \"first\"}}\n{\"complete\": {}}\n",
            409,
            "task_finished",
            "line 3: the task is already failed",
        ),
        (
            "complete-twice",
            "{\"delta\": \"kept \"}\n{\"complete\": {\"result\": {\"n\": 1}}}\n{\"complete\": {\"result\": {\"n\": 2}}}\n",
            409,
            "task_finished",
            "line 3: the task is already completed",
        ),
    ] {
        create(&app, id).await;
        let upload = Upload::start(&app, id, "application/x-ndjson");
        upload.send(body).await;
        let answer = upload.finish().await;

        let refused = assert_error(answer, status, code).await;
        let said = refused["error"]["message"].as_str().expect("a message");
        assert!(said.starts_with(message), "{id}: {said}");
        let mut late = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;
        let text = late.next_message(SHORT).await.expect("the text so far");
        assert_eq!(text_of(&[text]), "kept ", "{id}");
    }
}

#[actix_web::test]
async fn a_newer_upload_takes_over_and_the_older_ends_at_once() {
    // Arrange: an upload that wrote, and still looks open to the broker
    // (its producer timed out and retries).
    let app = spawn_app().await;
    create(&app, "retried").await;
    let first = Upload::start(&app, "retried", "application/x-ndjson");
    first.send("{\"delta\": \"One \", \"seq\": 1}\n").await;
    crate::helpers::eventually(SHORT, "the first token to be stored", || async {
        let task = app.get_json("/tasks/retried").await;
        (task["status"] == "running").then_some(())
    })
    .await;

    // Act: the retry opens a second upload to the same task.
    let second = Upload::start(&app, "retried", "application/x-ndjson");
    second.send("{\"delta\": \"One \", \"seq\": 1}\n").await;

    // Assert: the first is answered at once, its body still open.
    let answer = tokio::time::timeout(SHORT, first.answer)
        .await
        .expect("the older upload answered without waiting for its body")
        .expect("the upload task");
    assert_error(answer, 409, "upload_superseded").await;
    // What the older one sends now goes nowhere.
    let _ = first
        .body
        .send(Ok(Bytes::from_static(b"{\"delta\": \"stale \"}\n")))
        .await;
    second
        .send("{\"delta\": \"two\", \"seq\": 2}\n{\"complete\": {}}\n")
        .await;
    let answer = second.finish().await;
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = answer.json().await.expect("JSON");
    assert_eq!(
        answer["deltas"], 1,
        "the repeated seq is not counted: {answer}"
    );
    let mut late = app.open_stream("/tasks/retried/events", &[]).await;
    let events = late.read_to_end(SHORT).await;
    assert_eq!(
        text_of(&events),
        "One two",
        "no text of the older upload after the takeover"
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let superseded = [("format", "ndjson"), ("outcome", "superseded")];
    assert_eq!(
        labelled_sum(&metrics, "sse_task_uploads_total", &superseded),
        1.0
    );
}
