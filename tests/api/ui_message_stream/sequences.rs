//! The exact parts of a task's UI message stream: live, on a reconnect,
//! for a finished, failed or cancelled task; a viewer leaving cancels
//! nothing; heartbeats and the open counter.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    DONE, UiStream, create, delta, end, finish_step, progress, start, start_step, text_end,
    text_start, write,
};
use crate::helpers::{LONG, SHORT, eventually, labelled_sum, spawn_app};

/// The text the `text-delta` parts of `parts` carry.
fn text_of(parts: &[Value]) -> String {
    parts
        .iter()
        .filter(|p| p["type"] == "text-delta")
        .map(|p| p["delta"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn a_live_generation_is_its_exact_part_sequence() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "live", None).await;
    let mut viewer = UiStream::open(&app, "/tasks/live/ui-message-stream").await;
    assert_eq!(
        viewer.take(2).await,
        [start("live"), progress(0.0, None)],
        "an empty task's prefix: start, then its progress"
    );

    // Act / Assert: each write shows as it is made.
    write(&app, "live", "Hel").await;
    assert_eq!(
        viewer.take(3).await,
        [start_step(), text_start(), delta("Hel")]
    );
    write(&app, "live", "lo, \"wörld\"\n").await;
    assert_eq!(viewer.take(1).await, [delta("lo, \"wörld\"\n")]);
    let patched = app
        .api_client
        .patch(app.url("/tasks/live"))
        .json(&json!({ "progress": 50, "stage": "writing" }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    assert_eq!(viewer.take(1).await, [progress(50.0, Some("writing"))]);
    end(
        &app,
        "live",
        "complete",
        json!({ "result": { "tokens": 2 } }),
    )
    .await;

    // Assert: the end (a completed task is at 100), then the response ends.
    assert_eq!(
        viewer.read_to_end(SHORT).await,
        [
            text_end(),
            finish_step(),
            progress(100.0, Some("writing")),
            json!({ "type": "finish" }),
            json!(DONE),
        ]
    );
}

#[actix_web::test]
async fn a_reconnect_mid_generation_begins_with_the_text_so_far_in_one_delta() {
    // Arrange: text written before anyone watches, in several events.
    let app = spawn_app().await;
    create(&app, "mid", None).await;
    for piece in ["Hel", "lo ", "wor"] {
        write(&app, "mid", piece).await;
    }

    // Act
    let mut viewer = UiStream::open(&app, "/tasks/mid/ui-message-stream").await;

    // Assert: one grammar-valid prefix, then live deltas only.
    assert_eq!(
        viewer.take(5).await,
        [
            start("mid"),
            start_step(),
            text_start(),
            delta("Hello wor"),
            progress(0.0, None),
        ]
    );
    write(&app, "mid", "ld").await;
    assert_eq!(viewer.take(1).await, [delta("ld")]);
    end(&app, "mid", "complete", json!({})).await;
    assert_eq!(
        viewer.read_to_end(SHORT).await,
        [
            text_end(),
            finish_step(),
            progress(100.0, None),
            json!({ "type": "finish" }),
            json!(DONE),
        ]
    );
}

#[actix_web::test]
async fn viewers_joining_while_text_streams_each_get_the_whole_text_once() {
    // Arrange: a producer writing 150 deltas back to back.
    let app = spawn_app().await;
    create(&app, "busy", None).await;
    let expected: String = (0..150).map(|n| format!("t{n} ")).collect();
    let producer = {
        let client = app.api_client.clone();
        let url = app.url("/tasks/busy/text");
        actix_rt::spawn(async move {
            for n in 0..150 {
                let response = client
                    .post(&url)
                    .json(&json!({ "delta": format!("t{n} ") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 202);
            }
        })
    };

    // Act: viewers open at different points of the generation.
    let mut viewers = Vec::new();
    for _ in 0..4 {
        viewers.push(UiStream::open(&app, "/tasks/busy/ui-message-stream").await);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    producer.await.unwrap();
    end(&app, "busy", "complete", json!({})).await;

    // Assert: each has exactly the text, in a valid grammar.
    for (n, viewer) in viewers.iter_mut().enumerate() {
        let parts = viewer.read_to_end(LONG).await;
        assert_eq!(text_of(&parts), expected, "viewer {n}");
        let types: Vec<&str> = parts.iter().filter_map(|p| p["type"].as_str()).collect();
        assert_eq!(types[0], "start", "viewer {n}: {types:?}");
        let count = |t: &str| types.iter().filter(|x| **x == t).count();
        assert_eq!(
            (count("start"), count("text-start"), count("text-end")),
            (1, 1, 1)
        );
        let at = |t: &str| types.iter().position(|x| *x == t).unwrap();
        assert!(at("text-start") < at("text-delta") && at("text-end") < at("finish"));
        assert_eq!(parts.last(), Some(&json!(DONE)), "viewer {n}");
    }
}

#[actix_web::test]
async fn a_finished_task_is_its_whole_message_then_its_end() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "done", None).await;
    write(&app, "done", "All ").await;
    write(&app, "done", "of it.").await;
    end(&app, "done", "complete", json!({})).await;

    // Act
    let mut viewer = UiStream::open(&app, "/tasks/done/ui-message-stream").await;

    // Assert
    let parts = viewer.read_to_end(SHORT).await;
    assert_eq!(
        parts,
        [
            start("done"),
            start_step(),
            text_start(),
            delta("All of it."),
            progress(100.0, None),
            text_end(),
            finish_step(),
            json!({ "type": "finish" }),
            json!(DONE),
        ]
    );
}

#[actix_web::test]
async fn a_failure_ends_with_error_and_a_cancel_with_abort_for_every_viewer_keeping_the_text() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "fails", None).await;
    create(&app, "cancelled", None).await;
    let mut failing = UiStream::open(&app, "/tasks/fails/ui-message-stream").await;
    let mut first = UiStream::open(&app, "/tasks/cancelled/ui-message-stream").await;
    write(&app, "fails", "Half").await;
    write(&app, "cancelled", "Part").await;
    failing.take(5).await;
    first.take(5).await;
    let mut second = UiStream::open(&app, "/tasks/cancelled/ui-message-stream").await;
    second.take(5).await;

    // Act
    end(
        &app,
        "fails",
        "fail",
        json!({ "error": "model overloaded" }),
    )
    .await;
    end(&app, "cancelled", "cancel", Value::Null).await;

    // Assert
    assert_eq!(
        failing.read_to_end(SHORT).await,
        [
            text_end(),
            json!({ "type": "error", "errorText": "model overloaded" }),
            json!(DONE),
        ]
    );
    for viewer in [&mut first, &mut second] {
        assert_eq!(
            viewer.read_to_end(SHORT).await,
            [text_end(), json!({ "type": "abort" }), json!(DONE)],
            "the text part ends (its text kept), then abort"
        );
    }
    let late = UiStream::open(&app, "/tasks/cancelled/ui-message-stream")
        .await
        .read_to_end(SHORT)
        .await;
    assert_eq!(
        text_of(&late),
        "Part",
        "a later viewer gets the partial text"
    );
    assert_eq!(
        &late[late.len() - 2..],
        [json!({ "type": "abort" }), json!(DONE)]
    );
}

#[actix_web::test]
async fn a_viewer_closing_its_stream_never_cancels_the_task() {
    // Arrange
    let app = spawn_app().await;
    create(&app, "keeps", None).await;
    let mut viewer = UiStream::open(&app, "/tasks/keeps/ui-message-stream").await;
    write(&app, "keeps", "still ").await;
    viewer.take(4).await;

    // Act: the viewer goes away.
    drop(viewer);
    eventually(SHORT, "the viewer's stream to close", || async {
        let stats = app.stats().await;
        (stats["active_connections"] == 0).then_some(())
    })
    .await;

    // Assert: the producer writes on and finishes; the task never was cancelled.
    write(&app, "keeps", "going").await;
    let task = app.get_json("/tasks/keeps").await;
    assert_eq!(task["status"], "running", "{task}");
    end(&app, "keeps", "complete", json!({})).await;
    let parts = UiStream::open(&app, "/tasks/keeps/ui-message-stream")
        .await
        .read_to_end(SHORT)
        .await;
    assert_eq!(text_of(&parts), "still going");
    assert_eq!(
        &parts[parts.len() - 2..],
        [json!({ "type": "finish" }), json!(DONE)]
    );
}

#[actix_web::test]
async fn ui_message_streams_are_counted_apart_and_heartbeats_are_comments() {
    // Arrange: heartbeats every second.
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.heartbeat = Duration::from_secs(1);
    })
    .await;
    create(&app, "hb", None).await;
    let _events = app.open_stream("/tasks/hb/events", &[]).await;
    let response = app
        .stream_response("/tasks/hb/ui-message-stream", &[])
        .await;

    // Act: read raw bytes across a heartbeat.
    let mut body = response;
    let mut raw = String::new();
    let deadline = tokio::time::Instant::now() + SHORT;
    while !raw.contains(": heartbeat\n\n") && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, body.chunk()).await {
            raw.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    // Assert
    assert!(raw.contains(": heartbeat\n\n"), "{raw:?}");
    assert!(!raw.contains("event:") && !raw.contains("id:"), "{raw:?}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let opened = |format| {
        labelled_sum(
            &metrics,
            "sse_connections_opened_total",
            &[("format", format)],
        )
    };
    assert_eq!(opened("ui_message_stream"), 1.0, "{metrics}");
    assert_eq!(opened("sse"), 1.0);
}
