//! Large events read back: a `/sse/history` answer and a resume's store
//! reads are weighed (about 1 MiB of event data), not only counted, so one
//! request or one resuming stream cannot hold tens of megabytes; paging by
//! `next_after` and a resume still carry every event once, in order.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{LONG, TestApp, spawn_app_with};

/// Publishes `count` events of about `pad` bytes, 4 per request; answers
/// their ids in order.
async fn publish_padded(app: &TestApp, count: usize, pad: usize) -> Vec<i64> {
    let padding = "h".repeat(pad);
    let mut ids = Vec::new();
    for first in (0..count).step_by(4) {
        let events: Vec<Value> = (first..count.min(first + 4))
            .map(|n| json!({"event_type": "commit", "data": {"n": n, "pad": padding}}))
            .collect();
        ids.extend(app.publish_ok(&json!(events)).await.into_iter().flatten());
    }
    ids
}

async fn heavy_app() -> TestApp {
    spawn_app_with(|s| {
        s.max_body_bytes = 256 * 1024;
        s.replay_cache_events = 0;
    })
    .await
}

#[actix_web::test]
async fn a_history_page_of_large_events_ends_early_and_next_after_goes_on() {
    let app = heavy_app().await;
    let mut published = publish_padded(&app, 40, 60_000).await;
    published.extend(publish_padded(&app, 30, 100).await);

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get_json(&format!("/sse/history?after={after}&limit=1000"))
            .await;
        let events = page["events"].as_array().expect("events");
        let body_bytes = page.to_string().len();
        pages.push(events.len());
        assert!(
            body_bytes <= 3 << 20,
            "a page of {} events weighs {body_bytes} bytes",
            events.len()
        );
        seen.extend(events.iter().map(|e| e["id"].as_i64().expect("an id")));
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
        assert!(pages.len() < 20, "pages: {pages:?}");
    }
    assert_eq!(seen, published, "pages of {pages:?}");
    assert!(
        pages.len() >= 3,
        "2.4 MB of events came in {pages:?}: the pages were not weighed"
    );
}

#[actix_web::test]
async fn a_resume_over_large_and_small_events_from_the_store_is_exact() {
    let app = heavy_app().await;
    let mut published = publish_padded(&app, 30, 60_000).await;
    published.extend(publish_padded(&app, 300, 50).await);
    published.extend(publish_padded(&app, 30, 60_000).await);

    let mut stream = app
        .open_stream("/sse/events", &[("Last-Event-ID", "0")])
        .await;
    let mut seen = Vec::new();
    while seen.len() < published.len() {
        let event = stream
            .next_message(LONG)
            .await
            .unwrap_or_else(|| panic!("stalled after {} events", seen.len()));
        if event.is("commit") {
            seen.push(event.id_number().expect("an id"));
        }
    }
    assert_eq!(seen, published);
    stream.assert_quiet(Duration::from_millis(300)).await;
}
