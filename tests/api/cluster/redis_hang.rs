//! A Redis that hangs (a partition, a paused server) instead of refusing:
//! publishes time out, the instance delivers its own batches itself, and
//! when Redis wakes up their echoes come back. Stored events are deduped by
//! id; live-only ones (`persist: false`) have none, and must still reach
//! each stream once (CONTRACT §6).

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;
use tokio::time::Instant;

use super::{
    harness::{LONG, RedisServer, SHORT, TestDb, wait_for_health},
    is_healthy_with_redis_up, start_cluster,
};
use crate::helpers::EventStream;

#[actix_web::test]
async fn live_only_events_reach_a_stream_once_across_a_redis_hang() {
    // Arrange: one instance on a private Redis it may pause, and a stream
    // of a live-only type.
    let db = TestDb::create().await;
    let redis = RedisServer::start().await;
    let nodes = start_cluster(&db, &redis.url(), 1).await;
    let node = &nodes[0];
    wait_for_health(node, SHORT, "Redis up", is_healthy_with_redis_up).await;
    let response = reqwest::Client::new()
        .get(node.url("/sse/events?event_types=system_status"))
        .send()
        .await
        .expect("stream opened");
    let mut stream = EventStream::connected(response, &node.instance_id).await;

    // Act: Redis hangs while live-only events are published, long enough
    // for the bridge to give up on the publishes in flight, then wakes.
    redis.pause();
    let mut sent = 0u64;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let body = json!({"event_type": "system_status", "persist": false, "data": {"n": sent}});
        let response = node.publish(&body).await;
        assert_eq!(response.status().as_u16(), 202, "publish {sent}");
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis.resume();
    wait_for_health(node, LONG, "Redis up again", is_healthy_with_redis_up).await;

    // Assert: every event once.
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    while let Some(event) = stream.next_message(Duration::from_secs(3)).await {
        if let Some(n) = event.json()["n"].as_u64() {
            *seen.entry(n).or_default() += 1;
        }
    }
    let twice: Vec<u64> = seen
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .collect();
    let missing: Vec<u64> = (0..sent).filter(|n| !seen.contains_key(n)).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?} of {sent}");
    assert!(missing.is_empty(), "never delivered: {missing:?} of {sent}");
}
