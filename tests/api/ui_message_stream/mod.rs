//! A task's stream as an AI SDK UI message stream (CONTRACT §7):
//! `GET /tasks/{id}/ui-message-stream` and `GET /chats/{chat_id}/stream`.
//! Here the parts are read off the wire and checked one by one; `ai_sdk.rs`
//! reads the same streams with the `ai` npm package itself.

mod ai_sdk;
mod ai_sdk_steps;
mod ai_sdk_tools;
mod answer_parts;
mod chats;
mod cited_parts;
mod continued;
mod message_metadata;
mod sequences;
mod text_parts;

use std::{process::Command, time::Duration};

use serde_json::{Value, json};

use crate::{
    cluster::harness::{
        Node, SHORT as CLUSTER_WAIT, TestDb, cluster_name, settings, shared_redis_url,
        wait_for_health,
    },
    helpers::{EventStream, LONG, SHORT, SseEvent, StreamEnd, TestApp},
};

/// The `[DONE]` marker, as [`UiStream::next_part`] answers it.
pub const DONE: &str = "[DONE]";

/// An open UI message stream, read part by part.
pub struct UiStream {
    events: EventStream,
}

impl UiStream {
    /// Opens `path`, asserting 200 and the protocol's headers.
    pub async fn open(app: &TestApp, path: &str) -> Self {
        Self::open_with(app, path, &[]).await
    }

    pub async fn open_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Self {
        Self::new(app.stream_response(path, headers).await, path)
    }

    /// The stream `response` answered to `what`.
    pub fn new(response: reqwest::Response, what: &str) -> Self {
        let status = response.status().as_u16();
        assert_eq!(status, 200, "GET {what}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
        assert_eq!(
            header("x-vercel-ai-ui-message-stream").as_deref(),
            Some("v1")
        );
        Self {
            events: EventStream::new(response),
        }
    }

    /// The next part (`"[DONE]"` as a JSON string), or `None` when the
    /// stream ended or `timeout` passed. Every event must be a bare `data:`
    /// event: the SDK's parser reads each event's data as a part, whatever
    /// its name or id.
    pub async fn next_part(&mut self, timeout: Duration) -> Option<Value> {
        let event = self.events.next_event(timeout).await?;
        assert!(
            event.event.is_none() && event.id.is_none(),
            "a UI message stream event has only data: {event:?}"
        );
        if event.data == DONE {
            return Some(json!(DONE));
        }
        Some(event.json())
    }

    /// Exactly `count` parts, in order.
    pub async fn take(&mut self, count: usize) -> Vec<Value> {
        let mut parts = Vec::with_capacity(count);
        while parts.len() < count {
            match self.next_part(SHORT).await {
                Some(part) => parts.push(part),
                None => panic!(
                    "expected {count} parts, got {parts:#?} (end: {:?})",
                    self.events.end()
                ),
            }
        }
        parts
    }

    /// Every part until the response ends, which it must within `timeout`.
    pub async fn read_to_end(&mut self, timeout: Duration) -> Vec<Value> {
        let parts: Vec<Value> = self
            .events
            .read_to_end(timeout)
            .await
            .iter()
            .map(|e| {
                if e.data == DONE {
                    json!(DONE)
                } else {
                    e.json()
                }
            })
            .collect();
        assert_eq!(self.events.end(), Some(&StreamEnd::Finished));
        parts
    }
}

pub fn start(task: &str) -> Value {
    json!({ "type": "start", "messageId": task })
}

/// The beginning of a step of the answer: before its first text.
pub fn start_step() -> Value {
    json!({ "type": "start-step" })
}

/// A step's end: after its text's end, before `finish`.
pub fn finish_step() -> Value {
    json!({ "type": "finish-step" })
}

pub fn text_start() -> Value {
    json!({ "type": "text-start", "id": "text" })
}

pub fn delta(text: &str) -> Value {
    json!({ "type": "text-delta", "id": "text", "delta": text })
}

pub fn text_end() -> Value {
    json!({ "type": "text-end", "id": "text" })
}

pub fn progress(progress: f64, stage: Option<&str>) -> Value {
    json!({ "type": "data-progress", "id": "progress", "data": { "progress": progress, "stage": stage, "message": null } })
}

/// Two instances on one fresh PostgreSQL database and the shared Redis,
/// each up with its Redis link; the database lives as long as the first.
pub async fn two_instances() -> (TestDb, Node, Node) {
    let db = TestDb::create().await;
    let cluster = cluster_name();
    let redis = shared_redis_url();
    let a = Node::start(settings(db.database_url(), Some(&redis), &cluster, "a")).await;
    let b = Node::start(settings(db.database_url(), Some(&redis), &cluster, "b")).await;
    for node in [&a, &b] {
        wait_for_health(node, CLUSTER_WAIT, "Redis up", |status, body| {
            status == 200 && body["checks"]["redis"]["status"] == "up"
        })
        .await;
    }
    (db, a, b)
}

/// Creates task `id` (in chat `chat`, if given).
pub async fn create(app: &TestApp, id: &str, chat: Option<&str>) {
    let mut body = json!({ "task_id": id });
    if let Some(chat) = chat {
        body["chat_id"] = json!(chat);
    }
    let response = app.post_json("/tasks", &body).await;
    assert_eq!(response.status().as_u16(), 201, "creating {id}");
}

/// Appends `text` to task `id`.
pub async fn write(app: &TestApp, id: &str, text: &str) {
    let response = app
        .post_json(&format!("/tasks/{id}/text"), &json!({ "delta": text }))
        .await;
    assert_eq!(response.status().as_u16(), 202, "text to {id}");
}

/// POSTs `/tasks/{id}/{action}` and asserts 200.
pub async fn end(app: &TestApp, id: &str, action: &str, body: Value) {
    let response = app.post_json(&format!("/tasks/{id}/{action}"), &body).await;
    assert_eq!(response.status().as_u16(), 200, "{action} {id}");
}

/// Pipes `body`, an AI SDK UI message stream, into the task `id` as an
/// app does (`POST /tasks/{id}/stream`): the upload's 200 answer.
pub async fn pipe_in(app: &TestApp, id: &str, body: impl Into<reqwest::Body>) -> Value {
    let answer = app
        .api_client
        .post(app.url(&format!("/tasks/{id}/stream")))
        .header("Content-Type", "text/event-stream")
        .body(body)
        .send()
        .await
        .expect("upload sent");
    assert_eq!(answer.status().as_u16(), 200, "the upload to {id}");
    answer.json().await.expect("a JSON answer")
}

/// A task's whole stream (`/tasks/{id}/events`) to its end, opened with
/// `headers`.
pub async fn read_task(app: &TestApp, id: &str, headers: &[(&str, &str)]) -> Vec<SseEvent> {
    let response = app
        .stream_response(&format!("/tasks/{id}/events"), headers)
        .await;
    assert_eq!(response.status().as_u16(), 200);
    EventStream::new(response).read_to_end(LONG).await
}

/// Runs `tests/js/ai_sdk/{script}`, a script of the `ai` package's own
/// code that prints one JSON line (the SDK's stream and what it makes of
/// it), and returns that line.
pub fn sdk_script(script: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/js/ai_sdk")
        .join(script);
    let output = Command::new("node")
        .arg(path)
        .output()
        .expect("node runs (Debian's nodejs; .ci/test.sh installs it)");
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON line")
}
