//! The orphan timeout counts a producer's silence, not the store's: a
//! producer retrying through a store outage longer than the timeout keeps
//! its task, and a producer that really stopped still loses it. An upload
//! that stays open and sends, if only a provider's pings, is no silence.

use std::time::Duration;

use serde_json::json;

use crate::{
    generations::{Upload, create},
    helpers::{TestApp, eventually, spawn_app_with},
    store_timeouts::SqliteWriterLock,
};

const ORPHAN_TIMEOUT: Duration = Duration::from_secs(2);

async fn write_text(app: &TestApp, task: &str, n: u32) -> u16 {
    app.post_json(
        &format!("/tasks/{task}/text"),
        &json!({"delta": format!("{n} "), "seq": n}),
    )
    .await
    .status()
    .as_u16()
}

async fn status_of(app: &TestApp, task: &str) -> String {
    app.get_json(&format!("/tasks/{task}")).await["status"]
        .as_str()
        .expect("a status")
        .to_owned()
}

#[actix_web::test]
async fn a_store_outage_longer_than_the_orphan_timeout_fails_no_retrying_producer() {
    // Arrange
    let app = spawn_app_with(|s| {
        s.task_orphan_timeout = ORPHAN_TIMEOUT;
        s.store_timeout = Duration::from_millis(300);
    })
    .await;
    for task in ["retrying", "stopped"] {
        assert_eq!(
            app.post_json("/tasks", &json!({"task_id": task}))
                .await
                .status()
                .as_u16(),
            201
        );
    }
    assert_eq!(write_text(&app, "retrying", 1).await, 202);
    assert_eq!(write_text(&app, "stopped", 1).await, 202);

    // Act: the store refuses writes for 4 s (twice the timeout); the
    // producer's retries are refused; it backs off 1.5 s after the outage.
    let lock = SqliteWriterLock::take(&app, Duration::from_secs(4)).await;
    let mut refused = 0;
    for _ in 0..5 {
        if write_text(&app, "retrying", 2).await == 503 {
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    lock.release().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let retried = write_text(&app, "retrying", 2).await;

    // Assert: the retry lands; the task runs.
    assert!(refused >= 3, "the store refused the writes: {refused}");
    assert_eq!(retried, 202, "the retry after the outage is taken");
    assert_eq!(status_of(&app, "retrying").await, "running");
    // The producer that stopped is failed, a timeout after the outage.
    eventually(
        ORPHAN_TIMEOUT * 3,
        "the stopped producer's task failed",
        || {
            let app = &app;
            async move { (status_of(app, "stopped").await == "failed").then_some(()) }
        },
    )
    .await;
}

#[actix_web::test]
async fn an_upload_sending_only_a_providers_pings_keeps_its_task_past_the_orphan_timeout() {
    // Arrange: a model that searches for three orphan timeouts before it
    // answers, its provider pinging meanwhile (Anthropic's `ping` events).
    let app = spawn_app_with(|s| s.task_orphan_timeout = ORPHAN_TIMEOUT).await;
    create(&app, "searching").await;
    let upload = Upload::start(&app, "searching", "text/event-stream");
    upload
        .send("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[]}}\n\n")
        .await;

    // Act
    let pinging_for = ORPHAN_TIMEOUT * 3;
    let started = std::time::Instant::now();
    while started.elapsed() < pinging_for {
        upload
            .send("event: ping\ndata: {\"type\": \"ping\"}\n\n")
            .await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let still = status_of(&app, "searching").await;
    upload
        .send("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Found it.\"}}\n\n")
        .await;
    upload
        .send("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
        .await;
    let answer = upload.finish().await;

    // Assert: never taken for orphaned; the answer whole.
    assert_eq!(still, "pending", "alive after {pinging_for:?} of pings");
    assert_eq!(answer.status().as_u16(), 200);
    let summary: serde_json::Value = answer.json().await.expect("the summary");
    assert_eq!(summary["task"]["status"], "completed", "{summary}");
    let events = crate::ui_message_stream::read_task(&app, "searching", &[]).await;
    assert_eq!(crate::generations::deltas_of(&events, "text"), "Found it.");
}
