//! The Janitor: stale streams (no successful write for the threshold) are
//! closed in batches, by `POST /sse/cleanup` and by its own timer, and its
//! statistics add up.
//!
//! Streams go stale for real: heartbeats are an hour apart and the
//! threshold is one second, so an idle stream has written nothing since its
//! `connected` frame. Waiting out the threshold is the condition under
//! test, not a synchronisation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{SHORT, eventually, spawn_app_with};

const STALE_THRESHOLD: Duration = Duration::from_secs(1);

fn stale_quickly(settings: &mut sse_broker::config::Settings) {
    settings.heartbeat = Duration::from_secs(3600);
    settings.stale_threshold = STALE_THRESHOLD;
    // The timer stays out of the way unless a test wants it.
    settings.cleanup_interval = Duration::from_secs(3600);
    settings.cleanup_batch_size = 10;
}

async fn wait_out_the_threshold() {
    tokio::time::sleep(STALE_THRESHOLD + Duration::from_millis(300)).await;
}

#[actix_web::test]
async fn cleanup_closes_stale_streams_in_batches_and_the_statistics_add_up() {
    // Arrange: seven idle streams, stale after the threshold, and one
    // opened afterwards that is fresh.
    let app = spawn_app_with(stale_quickly).await;
    let mut stale = Vec::new();
    for _ in 0..7 {
        stale.push(app.open_stream("/sse/events", &[]).await);
    }
    wait_out_the_threshold().await;
    let mut fresh = app.open_stream("/sse/events", &[]).await;
    let before = app.monitoring().await["cleanup_stats"].clone();
    assert_eq!(app.stats().await["active_connections"], 8);

    // Act
    let response = app
        .post_json("/sse/cleanup", &json!({"batch_size": 3}))
        .await;

    // Assert
    assert_eq!(response.status().as_u16(), 200);
    let report: Value = response.json().await.expect("JSON");
    assert_eq!(report["cleaned"], 7, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["batches"], 3, "ceil(7 / 3): {report}");
    assert!(report["duration_ms"].as_f64().is_some(), "{report}");
    assert_eq!(report["complete"], true, "{report}");
    for stream in &mut stale {
        stream.read_to_end(SHORT).await;
    }
    eventually(SHORT, "the stale streams to be unregistered", || {
        let app = &app;
        async move {
            let stats = app.stats().await;
            (stats["active_connections"] == 1).then_some(stats)
        }
    })
    .await;
    let stats = app.stats().await;
    assert_eq!(stats["closed_by_reason"]["stale"], 7, "{stats}");
    let after = app.monitoring().await["cleanup_stats"].clone();
    let grew = |field: &str| after[field].as_u64().unwrap() - before[field].as_u64().unwrap();
    assert_eq!(grew("total_cleanups"), 1, "{after}");
    assert_eq!(grew("total_connections_cleaned"), 7, "{after}");
    assert_eq!(grew("failed_connections"), 0, "{after}");
    // The guide's counter and ours count the same closes.
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    assert_eq!(value("sse_total_connections_cleaned"), 7.0);
    assert_eq!(value("sse_cleanup_cleaned_total"), 7.0);
    // The fresh stream is untouched and still live.
    app.publish_one(&json!({"event_type": "commit"})).await;
    let event = fresh
        .next_message(SHORT)
        .await
        .expect("the fresh stream is live");
    assert!(event.is("commit"));

    // A run with nothing stale cleans nothing and still counts.
    let report: Value = app
        .post_json("/sse/cleanup", &json!({}))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(report["cleaned"], 0, "{report}");
    assert_eq!(report["batches"], 0, "{report}");
    let again = app.monitoring().await["cleanup_stats"].clone();
    assert_eq!(
        again["total_cleanups"].as_u64().unwrap(),
        after["total_cleanups"].as_u64().unwrap() + 1
    );
}

/// The streams a run closed are off the table when it answers: the
/// counts say so at once, and a run right after finds none of them again
/// (a stream still closing was counted a second time, as failed).
#[actix_web::test]
async fn a_run_right_after_another_finds_none_of_the_streams_it_closed() {
    // Arrange
    let app = spawn_app_with(stale_quickly).await;
    let mut stale = Vec::new();
    for _ in 0..40 {
        stale.push(app.open_stream("/sse/events", &[]).await);
    }
    wait_out_the_threshold().await;

    // Act
    let first: Value = app
        .post_json("/sse/cleanup", &json!({"batch_size": 20}))
        .await
        .json()
        .await
        .expect("JSON");
    let active = app.stats().await["active_connections"].clone();
    let second: Value = app
        .post_json("/sse/cleanup", &json!({"batch_size": 1}))
        .await
        .json()
        .await
        .expect("JSON");

    // Assert
    assert_eq!(
        (first["cleaned"].as_u64(), first["failed"].as_u64()),
        (Some(40), Some(0)),
        "{first}"
    );
    assert_eq!(
        active, 0,
        "closed streams still counted right after the run"
    );
    assert_eq!(
        (second["cleaned"].as_u64(), second["failed"].as_u64()),
        (Some(0), Some(0)),
        "{second}"
    );
    let cleanup = app.monitoring().await["cleanup_stats"].clone();
    assert_eq!(cleanup["failed_connections"], 0, "{cleanup}");
    assert_eq!(cleanup["total_connections_cleaned"], 40, "{cleanup}");
    let stats = app.stats().await;
    assert_eq!(
        stats["closed_by_reason"]["stale"], 40,
        "each close counted once: {stats}"
    );
    for stream in &mut stale {
        stream.read_to_end(SHORT).await;
    }
}

#[actix_web::test]
async fn a_cleanup_without_a_body_uses_the_configured_batch_size() {
    let app = spawn_app_with(|s| {
        stale_quickly(s);
        s.cleanup_batch_size = 2;
    })
    .await;
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(app.open_stream("/sse/events", &[]).await);
    }
    wait_out_the_threshold().await;

    let response = app.post_raw("/sse/cleanup", "", None).await;

    assert_eq!(response.status().as_u16(), 200);
    let report: Value = response.json().await.expect("JSON");
    assert_eq!(report["cleaned"], 5, "{report}");
    assert_eq!(report["batches"], 3, "ceil(5 / 2): {report}");
}

#[actix_web::test]
async fn the_janitor_runs_by_itself_every_cleanup_interval() {
    // Arrange
    let app = spawn_app_with(|s| {
        stale_quickly(s);
        s.cleanup_interval = Duration::from_secs(1);
    })
    .await;
    let mut streams = vec![
        app.open_stream("/sse/events", &[]).await,
        app.open_stream("/sse/events", &[]).await,
    ];

    // Act: nothing but time.
    let monitoring = eventually(Duration::from_secs(10), "the timer's cleanup", || {
        let app = &app;
        async move {
            let monitoring = app.monitoring().await;
            (monitoring["cleanup_stats"]["total_connections_cleaned"] == 2).then_some(monitoring)
        }
    })
    .await;

    // Assert
    let cleanup = &monitoring["cleanup_stats"];
    assert!(
        cleanup["total_cleanups"].as_u64().unwrap() >= 1,
        "{cleanup}"
    );
    assert_eq!(cleanup["failed_connections"], 0, "{cleanup}");
    for stream in &mut streams {
        stream.read_to_end(SHORT).await;
    }
    eventually(SHORT, "no active connection", || {
        let app = &app;
        async move { (app.stats().await["active_connections"] == 0).then_some(()) }
    })
    .await;
}

#[actix_web::test]
async fn health_answers_at_once_while_a_long_cleanup_run_is_under_way() {
    // Arrange: 300 stale streams, closed one per batch (the Janitor pauses
    // between batches), so the run takes well over a second.
    let app = spawn_app_with(stale_quickly).await;
    let mut stale = Vec::new();
    for _ in 0..300 {
        stale.push(app.open_stream("/sse/events", &[]).await);
    }
    wait_out_the_threshold().await;
    let client = app.api_client.clone();
    let cleanup_url = app.url("/sse/cleanup");
    let run = actix_rt::spawn(async move {
        client
            .post(cleanup_url)
            .json(&json!({"batch_size": 1}))
            .send()
            .await
            .expect("cleanup request sent")
            .json::<Value>()
            .await
            .expect("a cleanup report")
    });
    eventually(SHORT, "the cleanup run to be under way", || {
        let app = &app;
        async move {
            let stats = app.stats().await;
            (stats["closed_by_reason"]["stale"].as_u64() >= Some(1)).then_some(())
        }
    })
    .await;

    // Act
    let asked = std::time::Instant::now();
    let health = app.get("/health").await;
    let answered_in = asked.elapsed();

    // Assert: /health did not wait for the run, which is still going.
    assert_eq!(health.status().as_u16(), 200);
    assert!(!run.is_finished(), "the run ended before /health was asked");
    assert!(
        answered_in < Duration::from_millis(250),
        "/health waited {answered_in:?} for the cleanup run"
    );
    let report = run.await.expect("the cleanup task");
    assert_eq!(report["cleaned"], 300, "{report}");
    drop(stale);
}
