//! An answer given before a chunked request body has ended (a bad line in
//! an upload, a cancel during it, a body over the limit) closes the
//! connection soon after, even when the client then goes silent; a chunked
//! body read to its end keeps the connection alive.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    SHORT, TestApp, eventually,
    raw_http::{RawResponse, exchange},
    spawn_app,
};

/// Longer than the broker could ever take to close after its answer (its
/// linger is one second), and shorter than the silence the read waits for.
const CLOSED_WITHIN: Duration = Duration::from_secs(4);
const SILENCE: Duration = Duration::from_secs(8);

/// A chunked request whose body stops after `chunk`, never ended.
fn unfinished(path: &str, content_type: &str, chunk: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        chunk.len()
    )
    .into_bytes();
    request.extend_from_slice(chunk);
    request.extend_from_slice(b"\r\n");
    request
}

/// Sends `request` and stays silent: the one answer, and when the
/// connection was closed (or the silence ran out).
async fn answer_of_silent_client(app: &TestApp, request: &[u8]) -> (RawResponse, Instant) {
    let mut responses = exchange(app, request, SILENCE).await;
    assert_eq!(responses.len(), 1, "{responses:?}");
    (responses.remove(0), Instant::now())
}

fn assert_closed_soon(open_for: Duration, what: &str) {
    assert!(
        open_for < CLOSED_WITHIN,
        "{what}: the connection stayed open {open_for:?} after the answer"
    );
}

async fn create(app: &TestApp, id: &str) {
    let response = app.post_json("/tasks", &json!({ "task_id": id })).await;
    assert_eq!(response.status().as_u16(), 201);
}

#[actix_web::test]
async fn a_refused_upload_closes_its_connection_though_the_producer_goes_silent() {
    let app = spawn_app().await;
    create(&app, "silent").await;
    let request = unfinished(
        "/tasks/silent/stream",
        "application/x-ndjson",
        b"{\"delta\": \"kept\"}\n{bad\n",
    );

    let started = Instant::now();
    let (answer, closed) = answer_of_silent_client(&app, &request).await;

    answer.assert_error(422, "invalid_payload");
    assert_eq!(answer.header("connection"), Some("close"));
    assert_closed_soon(closed - started, "422 mid-upload");
    let task = app.get_json("/tasks/silent").await;
    assert_eq!(task["status"], "running", "{task}");
}

#[actix_web::test]
async fn a_cancel_closes_the_open_upload_though_the_producer_goes_silent() {
    let app = spawn_app().await;
    create(&app, "cancel-silent").await;
    let request = unfinished(
        "/tasks/cancel-silent/stream",
        "application/x-ndjson",
        b"{\"delta\": \"partial\"}\n",
    );
    let cancel = async {
        eventually(SHORT, "the delta to be stored", || async {
            let task = app.get_json("/tasks/cancel-silent").await;
            (task["status"] == "running").then_some(())
        })
        .await;
        let cancel = app
            .post_json("/tasks/cancel-silent/cancel", &json!({}))
            .await;
        assert_eq!(cancel.status().as_u16(), 200);
        Instant::now()
    };

    let ((answer, closed), cancelled) =
        tokio::join!(answer_of_silent_client(&app, &request), cancel);

    answer.assert_error(409, "task_cancelled");
    assert_closed_soon(closed - cancelled, "409 after a cancel");
}

#[actix_web::test]
async fn a_chunked_body_over_the_limit_closes_its_connection() {
    let app = spawn_app().await;
    let mut chunk = b"{\"event_type\": \"commit\", \"data\": {\"p\": \"".to_vec();
    chunk.resize(70_000, b'a');
    let request = unfinished("/sse/publish", "application/json", &chunk);

    let started = Instant::now();
    let (answer, closed) = answer_of_silent_client(&app, &request).await;

    answer.assert_error(413, "payload_too_large");
    assert_closed_soon(closed - started, "413 mid-body");
}

#[actix_web::test]
async fn a_chunked_body_read_to_its_end_keeps_the_connection_alive() {
    let app = spawn_app().await;
    let mut requests = unfinished(
        "/sse/publish",
        "application/json",
        br#"{"event_type": "commit", "data": {"n": 1}}"#,
    );
    requests.extend_from_slice(b"0\r\n\r\n");
    requests
        .extend_from_slice(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");

    let responses = exchange(&app, &requests, SILENCE).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [202, 200], "{responses:?}");
}
