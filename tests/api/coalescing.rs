//! An upload's coalescing window (`--text-coalesce-ms`): text that arrives
//! within it waits for the window's end to go as one event, and is never
//! lost or overtaken meanwhile: not by another request that ends the task
//! (a producer that closes its upload and fails the task at once), not by
//! a cancel, not by the drain of a shutdown.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    generations::{Upload, create, stored_text, text_deltas},
    helpers::{BrokerProcess, LONG, SHORT, TestApp, eventually, spawn_app_with},
};

/// Uploads "a" and waits until it is stored: the next text is within the
/// window that write opened.
async fn first_delta_stored(app: &TestApp, id: &str) -> Upload {
    create(app, id).await;
    let upload = Upload::start(app, id, "application/x-ndjson");
    upload.send("{\"delta\": \"a\", \"seq\": 1}\n").await;
    eventually(SHORT, "the first delta to be stored", || async {
        (stored_text(app).await.len() == 1).then_some(())
    })
    .await;
    upload
}

#[actix_web::test]
async fn text_within_the_window_comes_before_a_fail_or_cancel_sent_after_it() {
    for (ending, status) in [("fail", "failed"), ("cancel", "cancelled")] {
        // Arrange: a window far longer than the test's steps.
        let app = spawn_app_with(|s| s.text_coalesce = Duration::from_secs(5)).await;
        let id = format!("ended-by-{ending}");
        let upload = first_delta_stored(&app, &id).await;
        let mut viewer = app.open_stream(&format!("/tasks/{id}/events"), &[]).await;

        // Act: more text within the window, the upload closed, and the task
        // ended by another request at once.
        upload.send("{\"delta\": \"b\", \"seq\": 2}\n").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let body = (ending == "fail").then(|| json!({"error": "the model's stream broke off"}));
        let ended = match &body {
            Some(body) => app.post_json(&format!("/tasks/{id}/{ending}"), body).await,
            None => {
                app.post_raw(&format!("/tasks/{id}/{ending}"), "", None)
                    .await
            }
        };
        let started = std::time::Instant::now();
        let answer = upload.finish().await;

        // Assert: the text came first (stored, and to the viewer), without
        // waiting out the window; the end after it.
        assert_eq!(ended.status().as_u16(), 200, "{ending}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the window was not waited out"
        );
        assert_eq!(stored_text(&app).await.concat(), "ab", "{ending}");
        let task = app.get_json(&format!("/tasks/{id}")).await;
        assert_eq!(task["status"], status, "{task}");
        let events = viewer.read_to_end(LONG).await;
        let text: String = events
            .iter()
            .filter(|e| e.is("text"))
            .map(|e| e.json()["delta"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(text, "ab", "the viewer's text: {events:?}");
        assert!(events.last().is_some_and(|e| e.is("error")), "{events:?}");
        assert_eq!(
            answer.status().as_u16(),
            409,
            "{ending}: the upload is told the task ended"
        );
    }
}

#[actix_web::test]
async fn text_within_the_window_is_stored_before_a_shutdown_answers_the_upload() {
    // Arrange: the real binary (SIGTERM, a restart on the same store).
    let dir = tempfile::tempdir().expect("a scratch directory");
    let database = dir.path().join("events.db");
    let args = ["--text-coalesce-ms", "5000"];
    let mut broker = BrokerProcess::spawn_with(&database, dir.path().join("first.log"), &args, &[]);
    let client = reqwest::Client::new();
    broker.wait_until_ready(&client).await;
    let url = |path: &str| format!("{}{path}", broker.address);
    let created = client
        .post(url("/tasks"))
        .json(&json!({"task_id": "drained"}))
        .send()
        .await
        .expect("created");
    assert_eq!(created.status().as_u16(), 201);
    let (body, chunks) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    let request = client
        .post(url("/tasks/drained/stream"))
        .header("Content-Type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(
            tokio_stream::wrappers::ReceiverStream::new(chunks),
        ));
    let answer = actix_rt::spawn(async move { request.send().await.expect("upload sent") });
    let send = |line: &'static str| body.send(Ok(bytes::Bytes::from(line)));
    send("{\"delta\": \"a\", \"seq\": 1}\n")
        .await
        .expect("open");
    eventually(SHORT, "the first delta to be stored", || async {
        let task: Value = client
            .get(url("/tasks/drained"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (task["status"] == "running").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Act: text within the window, then SIGTERM.
    send("{\"delta\": \"b\", \"seq\": 2}\n")
        .await
        .expect("open");
    tokio::time::sleep(Duration::from_millis(50)).await;
    broker.sigterm();
    let answer = tokio::time::timeout(LONG, answer)
        .await
        .expect("the upload is answered")
        .expect("the upload task");
    broker.wait_for_exit(LONG).await;

    // Assert: "the lines before this answer are applied" holds for the
    // text the window held.
    let status = answer.status().as_u16();
    assert_eq!(status, 503, "{}", answer.text().await.unwrap_or_default());
    let mut again = BrokerProcess::spawn(&database, dir.path().join("second.log"));
    again.wait_until_ready(&client).await;
    let history: Value = client
        .get(format!("{}/sse/history?event_types=text", again.address))
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("JSON");
    assert_eq!(text_deltas(&history).concat(), "ab", "{history}");
}
