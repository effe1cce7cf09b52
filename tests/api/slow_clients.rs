//! A slow client never slows others: when its queue is full the broker
//! closes that stream, counts it, and every other stream keeps receiving.
//!
//! The slow client is real: a stream whose response body the test never
//! polls, so the kernel socket buffers fill, then the broker's queue.

use serde_json::json;

use crate::helpers::{LONG, SHORT, StreamEnd, eventually, spawn_app_with};

/// Enough to fill the loopback socket buffers (a few MiB) many times over;
/// the test stops publishing soon after the slow stream is closed.
const MAX_EVENTS: usize = 1500;
const PAD_BYTES: usize = 64 * 1024;

#[actix_web::test]
async fn a_slow_client_is_closed_and_counted_while_a_healthy_stream_keeps_receiving() {
    // Arrange: a small queue, large events, one healthy reader, one stream
    // nobody reads after its first frame.
    let app = spawn_app_with(|s| {
        s.queue_capacity = 8;
        s.max_body_bytes = 256 * 1024;
    })
    .await;
    let mut healthy = app.open_stream("/sse/events", &[]).await;
    let mut slow = app.open_stream("/sse/events", &[]).await;
    let reader = actix_rt::spawn(async move {
        let mut received = Vec::new();
        loop {
            let event = healthy.next_message(LONG).await.unwrap_or_else(|| {
                panic!("the healthy stream stalled or ended: {:?}", healthy.end())
            });
            if event.is("system_status") {
                return received;
            }
            let seq = event.json()["seq"].as_u64().expect("seq");
            received.push((event.id_number().expect("an id"), seq));
        }
    });
    let pad = "x".repeat(PAD_BYTES);

    // Act: publish until the broker gives up on the slow stream, then some more.
    let mut published = Vec::new();
    let mut closed_at = None;
    while published.len() < MAX_EVENTS {
        let seq = published.len() as u64;
        let id = app
            .publish_one(&json!({"event_type": "commit", "data": {"seq": seq, "pad": pad}}))
            .await;
        published.push((id, seq));
        if closed_at.is_none()
            && seq % 16 == 15
            && app.stats().await["connections_closed_slow"].as_u64() >= Some(1)
        {
            closed_at = Some(published.len());
        }
        if closed_at.is_some_and(|at| published.len() >= at + 20) {
            break;
        }
    }
    let closed_at = closed_at.unwrap_or_else(|| {
        panic!("the slow stream was not closed after {MAX_EVENTS} events of {PAD_BYTES} bytes")
    });
    app.publish_one(&json!({"event_type": "system_status", "data": {"done": true}}))
        .await;

    // Assert: the healthy stream saw everything, in order.
    let received = tokio::time::timeout(LONG, reader)
        .await
        .expect("the healthy reader finished")
        .expect("the healthy reader did not panic");
    assert_eq!(
        received.len(),
        published.len(),
        "closed after {closed_at} events"
    );
    assert_eq!(received, published);

    // The slow stream got a gapless prefix, then was cut off.
    let slow_events = slow.read_to_end(LONG).await;
    let slow_seqs: Vec<u64> = slow_events
        .iter()
        .map(|e| e.json()["seq"].as_u64().expect("seq"))
        .collect();
    let prefix: Vec<u64> = (0..slow_seqs.len() as u64).collect();
    assert_eq!(
        slow_seqs, prefix,
        "the slow stream skipped events before its close"
    );
    assert!(
        slow_seqs.len() < published.len(),
        "the slow stream was not cut off"
    );
    assert!(
        matches!(slow.end(), Some(StreamEnd::Broken(_))),
        "a stream closed as slow ends abruptly: {:?}",
        slow.end()
    );

    // Counted once as slow; the healthy stream, dropped by its reader, is
    // gone too.
    let stats = eventually(SHORT, "the slow stream to be unregistered", || {
        let app = &app;
        async move {
            let stats = app.stats().await;
            (stats["active_connections"] == 0).then_some(stats)
        }
    })
    .await;
    assert_eq!(stats["connections_closed_slow"], 1, "{stats}");
    assert_eq!(stats["closed_by_reason"]["slow"], 1, "{stats}");
    assert!(stats["events_dropped"].as_u64() >= Some(1), "{stats}");
}
