//! `--write-delay-ms`: a frame reaching an idle stream is held for the
//! delay, and the events published meanwhile leave with it in one write.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{LONG, labelled_sum, spawn_app_with};

/// The largest delay allowed: the three publishes below fit in it easily,
/// even on a loaded machine.
const DELAY: Duration = Duration::from_millis(1000);

#[actix_web::test]
async fn events_published_within_the_delay_arrive_together_after_it_in_order() {
    let app = spawn_app_with(|s| s.write_delay = DELAY).await;
    let mut stream = app.open_stream("/sse/events", &[]).await;

    let started = Instant::now();
    let mut published = Vec::new();
    for seq in 0..3 {
        let id = app
            .publish_one(&json!({"event_type": "commit", "data": {"seq": seq}}))
            .await;
        published.push((id, seq));
    }
    let mut received = Vec::new();
    while received.len() < published.len() {
        let event = stream
            .next_message(LONG + DELAY)
            .await
            .unwrap_or_else(|| panic!("only {received:?} of {published:?} arrived"));
        if event.is("commit") {
            if received.is_empty() {
                // Held for the delay from when it reached the stream, which
                // is after its publish began.
                assert!(
                    started.elapsed() >= DELAY,
                    "the first event arrived {:?} after its publish, before the {DELAY:?} delay",
                    started.elapsed()
                );
            }
            let seq = event.json()["seq"].as_u64().expect("seq");
            received.push((event.id_number().expect("an id"), seq));
        }
    }
    assert_eq!(received, published);

    // The three left in one write: a write of three frames, counted.
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let bucket = |le: &str| {
        labelled_sum(
            &metrics,
            "sse_stream_frames_per_write_bucket",
            &[("le", le)],
        )
    };
    assert!(
        bucket("3") - bucket("2") >= 1.0,
        "no write of three frames in sse_stream_frames_per_write:\n{}",
        metrics
            .lines()
            .filter(|line| line.starts_with("sse_stream_frames_per_write"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
