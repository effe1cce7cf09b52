//! An app's own metadata of the message (`messageMetadata`, written by the
//! `ai` package's own `toUIMessageStreamResponse({ messageMetadata })` in
//! `tests/js/ai_sdk/message_metadata_stream.mjs`: a start time and a model
//! name, each step's and the answer's tokens), piped into the broker, must
//! come back to a reader of the broker, live, late and across uploads, as
//! the message metadata the SDK merges from its own stream. The task keeps
//! only what changes the merge, and a catch-up sends it merged, once.

use serde_json::{Value, json};

use super::{ai_sdk::Reader, ai_sdk_steps::parts};
use crate::{
    generations::{Upload, create},
    helpers::{LONG, SseEvent, assert_error, labelled_sum, spawn_app},
};

/// The SDK's answer: its stream's body and the message it assembles.
fn sdk_answer() -> (String, Value) {
    let printed = super::sdk_script("message_metadata_stream.mjs");
    let body = printed["body"].as_str().expect("the body").to_owned();
    (body, printed["message"].clone())
}

/// The metadata a reader of the broker ends with: the SDK's own, and why
/// the answer stopped, which the broker's `finish` says as metadata.
fn with_finish_reason(sdk_message: &Value) -> Value {
    let mut expected = sdk_message["metadata"].clone();
    expected["finishReason"] = json!("stop");
    expected
}

/// The `message_metadata` events among `events`, as their data's metadata,
/// with whether each carried an id.
fn metadata_of(events: &[SseEvent]) -> Vec<(bool, Value)> {
    events
        .iter()
        .filter(|event| event.is("message_metadata"))
        .map(|event| (event.id.is_some(), event.json()["metadata"].clone()))
        .collect()
}

#[actix_web::test]
async fn the_apps_message_metadata_reads_back_merged_as_the_sdks_live_late_and_rolled_up() {
    // Arrange
    let (body, sdk_message) = sdk_answer();
    let said = body.matches(r#""messageMetadata""#).count();
    assert!(said > 8, "the SDK says it with every part: {said}");
    assert_eq!(sdk_message["metadata"]["usage"]["outputTokens"], 5);
    let app = spawn_app().await;
    super::create(&app, "meta", None).await;
    let mut live = Reader::start_with(&app, "task", "meta", &["ai_sdk=7"]);
    live.until_snapshot(|_| true).await;
    let mut viewer = app.open_stream("/tasks/meta/events", &[]).await;

    // Act
    let answer = super::pipe_in(&app, "meta", body).await;

    // Assert: only what changed the merge was kept, each as it was said.
    assert_eq!(answer["task"]["status"], "completed", "{answer}");
    assert_eq!(answer["message_metadata"], 3, "{answer}");
    let live_events = viewer.read_to_end(LONG).await;
    let started = json!({ "createdAt": 1_765_000_000_000_u64, "model": "mock-1", "usage": { "inputTokens": null } });
    assert_eq!(
        metadata_of(&live_events),
        [
            (true, started),
            (true, json!({ "usage": { "inputTokens": 12 } })),
            (
                true,
                json!({ "usage": { "outputTokens": 5 }, "done": true })
            ),
        ]
    );
    let live = live.finish().await;
    assert_eq!(live["errors"], json!([]), "{live}");
    assert_eq!(
        live["message"]["metadata"],
        with_finish_reason(&sdk_message)
    );
    assert_eq!(parts(&live["message"]), parts(&sdk_message));
    // Late: merged into one frame with no id, the same message; the
    // catch-up still carries the text as one event and the progress once
    // (CONTRACT §7), the metadata said between the tokens breaking no run.
    let late_events = super::read_task(&app, "meta", &[]).await;
    assert_eq!(
        metadata_of(&late_events),
        [(false, sdk_message["metadata"].clone())]
    );
    let count = |kind: &str| late_events.iter().filter(|event| event.is(kind)).count();
    assert_eq!(
        (count("text"), count("progress")),
        (1, 1),
        "{late_events:?}"
    );
    for version in ["ai_sdk=7", "ai_sdk=5"] {
        let late = Reader::start_with(&app, "task", "meta", &[version])
            .finish()
            .await;
        assert_eq!(late["errors"], json!([]), "{late}");
        assert_eq!(
            late["message"]["metadata"],
            with_finish_reason(&sdk_message),
            "{version}"
        );
    }
    // A resume after the first: what came after, merged.
    let first_id = live_events
        .iter()
        .find(|event| event.is("message_metadata"))
        .and_then(|event| event.id.clone())
        .expect("an id");
    let resumed = super::read_task(&app, "meta", &[("Last-Event-ID", &first_id)]).await;
    assert_eq!(
        metadata_of(&resumed),
        [(
            false,
            json!({ "usage": { "inputTokens": 12, "outputTokens": 5 }, "done": true })
        )]
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let counted = labelled_sum(
        &metrics,
        "sse_task_answer_parts_total",
        &[("kind", "message_metadata")],
    );
    assert_eq!(counted, 3.0);
}

/// An answer uploaded in two parts (a producer that reconnects mid-answer):
/// the second upload's metadata merges into the first's.
#[actix_web::test]
async fn metadata_said_across_two_uploads_merges_into_one_message() {
    // Arrange: cut after the third token.
    let (body, sdk_message) = sdk_answer();
    let events: Vec<&str> = body.split_inclusive("\n\n").collect();
    let cut = 1 + events
        .iter()
        .position(|event| event.contains(r#""delta":"cold ""#))
        .expect("the third token");
    let app = spawn_app().await;
    super::create(&app, "meta-cut", None).await;

    // Act
    for (upload, status) in [
        (events[..cut].concat(), "running"),
        (events[cut..].concat(), "completed"),
    ] {
        let answer = super::pipe_in(&app, "meta-cut", upload).await;
        assert_eq!(answer["task"]["status"], status, "{answer}");
    }

    // Assert
    let late = Reader::start_with(&app, "task", "meta-cut", &["ai_sdk=7"])
        .finish()
        .await;
    assert_eq!(late["errors"], json!([]), "{late}");
    assert_eq!(
        late["message"]["metadata"],
        with_finish_reason(&sdk_message)
    );
    assert_eq!(parts(&late["message"]), parts(&sdk_message));
}

#[actix_web::test]
async fn ndjson_message_metadata_lines_are_kept_and_a_non_object_is_refused_by_line() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "meta-nd").await;
    create(&app, "meta-bad").await;

    // Act
    let upload = Upload::start(&app, "meta-nd", "application/x-ndjson");
    for line in [
        json!({ "message_metadata": { "model": "m1" } }),
        json!({ "delta": "Hi" }),
        json!({ "message_metadata": { "model": "m1" } }),
        json!({ "message_metadata": { "tokens": 1 } }),
        json!({ "complete": {} }),
    ] {
        upload.send(&format!("{line}\n")).await;
    }
    let answer = upload.finish().await;
    let refused = Upload::start(&app, "meta-bad", "text/event-stream");
    refused
        .send("data: {\"type\":\"start\",\"messageMetadata\":\"mock-1\"}\n\n")
        .await;
    let refused = refused.finish().await;

    // Assert
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = answer.json().await.expect("a JSON answer");
    assert_eq!(answer["message_metadata"], 2, "{answer}");
    let late = super::read_task(&app, "meta-nd", &[]).await;
    assert_eq!(
        metadata_of(&late),
        [(false, json!({ "model": "m1", "tokens": 1 }))]
    );
    let error = assert_error(refused, 422, "invalid_payload").await;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("a start part's messageMetadata must be an object"),
        "{error}"
    );
}

/// A value the app replaced with `null`, then with an object again: a
/// viewer resuming after the first gets the reset and what followed, in
/// order, so its merge drops the keys the app dropped (one frame of both
/// merged would keep them).
#[actix_web::test]
async fn a_resume_across_a_reset_gets_the_reset_before_what_followed() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "meta-reset").await;
    let mut viewer = app.open_stream("/tasks/meta-reset/events", &[]).await;
    let upload = Upload::start(&app, "meta-reset", "application/x-ndjson");
    for line in [
        json!({ "message_metadata": { "x": { "a": 1 }, "n": 1 } }),
        json!({ "delta": "Hello" }),
        json!({ "message_metadata": { "x": null } }),
        json!({ "delta": " world" }),
        json!({ "message_metadata": { "x": { "b": 2 }, "n": 2 } }),
        json!({ "complete": {} }),
    ] {
        upload.send(&format!("{line}\n")).await;
    }
    assert_eq!(upload.finish().await.status().as_u16(), 200);
    let live = viewer.read_to_end(LONG).await;
    let first_id = live
        .iter()
        .find(|event| event.is("message_metadata"))
        .and_then(|event| event.id.clone())
        .expect("an id");

    // Act
    let resumed = super::read_task(&app, "meta-reset", &[("Last-Event-ID", &first_id)]).await;

    // Assert
    assert_eq!(
        metadata_of(&resumed),
        [
            (false, json!({ "x": null })),
            (false, json!({ "x": { "b": 2 }, "n": 2 })),
        ]
    );
}
