//! Cluster mode: several instances on one PostgreSQL database and one Redis,
//! held to CONTRACT.md §6 (every event on every instance exactly once, ids
//! increasing on every stream, resume anywhere, Redis or the database going
//! away) and to the cluster totals of `/sse/stats`.
//!
//! Needs PostgreSQL and Redis (see `harness`); each test makes its own
//! database and cluster name, so they run in parallel.

mod database_share;
pub(crate) mod harness;
mod joining_instance;
mod postgres_store;
mod redis_hang;
mod redis_restart;
mod shared_tasks;
mod stalled_instance;
mod store_outage;
mod two_deployments;

use std::{
    cell::{Cell, RefCell},
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use futures_util::{
    StreamExt,
    future::{join, join_all},
    stream,
};
use serde_json::{Value, json};

use crate::helpers::assert_error;
use harness::{
    Collector, LONG, Node, RedisServer, SHORT, TestDb, assert_exactly_once_in_order,
    assert_payloads, cluster_name, event, poll, publish_series, settings, shared_redis_url,
    wait_for_health,
};

/// `count` instances `a`, `b`, ... of one new cluster on `db` and `redis_url`.
pub(super) async fn start_cluster(db: &TestDb, redis_url: &str, count: usize) -> Vec<Node> {
    let cluster = cluster_name();
    let all = (0..count)
        .map(|i| {
            let id = ((b'a' + i as u8) as char).to_string();
            let mut settings = settings(db.database_url(), Some(redis_url), &cluster, &id);
            settings.heartbeat = Duration::from_secs(1);
            settings
        })
        .collect();
    Node::start_all(all).await
}

pub(super) fn is_healthy_with_redis_up(status: u16, body: &Value) -> bool {
    status == 200 && body["status"] == "healthy" && body["checks"]["redis"]["status"] == "up"
}

/// Trap 1 of ARCHITECTURE.md: two instances publish at once, and every
/// stream on every instance still gets every event once, in id order.
#[actix_web::test]
async fn concurrent_publishers_on_two_instances_reach_every_stream_once_in_order() {
    // Arrange
    let db = TestDb::create().await;
    let nodes = start_cluster(&db, &shared_redis_url(), 3).await;
    for node in &nodes {
        wait_for_health(node, SHORT, "Redis up", is_healthy_with_redis_up).await;
    }
    let mut streams = Vec::new();
    for node in &nodes {
        streams.push(node.collect(None).await);
    }

    // Act: 2 × 300 events, 4 requests in flight per publisher.
    let (from_a, from_b) = join(
        publish_series(&nodes[0], "a", 300, 4),
        publish_series(&nodes[1], "b", 300, 4),
    )
    .await;

    // Assert
    let mut published = BTreeMap::new();
    for (src, answers) in [("a", &from_a), ("b", &from_b)] {
        for (id, seq) in answers {
            let data = event(src, *seq)["data"].clone();
            assert!(
                published.insert(*id, data).is_none(),
                "id {id} answered twice"
            );
        }
    }
    assert_eq!(published.len(), 600, "600 distinct ids");
    let expected: BTreeSet<i64> = published.keys().copied().collect();
    for stream in &streams {
        let collected = stream.wait_for_all(&expected, LONG).await;
        assert_exactly_once_in_order(&stream.label, &collected.ids(), &expected);
        assert_payloads(&stream.label, &collected, &published);
        assert_eq!(collected.end, None, "{} closed", stream.label);
    }
}

/// Publishes `total` events round-robin over `publishers` (4 requests in
/// flight) while a client hops between `hops` instances every `per_hop`
/// events, resuming each time with the last id it saw. The ids it saw,
/// across every connection, must be exactly the published ones, in order.
async fn resume_while_publishing(publishers: &[&Node], hops: &[&Node], total: usize) {
    let per_hop = 10;
    let published = RefCell::new(BTreeSet::new());
    let done = Cell::new(false);
    let first = hops[0].collect(None).await;

    let publish = async {
        stream::iter(0..total)
            .for_each_concurrent(4, |n| {
                let published = &published;
                async move {
                    let node = publishers[n % publishers.len()];
                    let id = node.publish_one(&event(&node.instance_id, n)).await;
                    published.borrow_mut().insert(id);
                }
            })
            .await;
        done.set(true);
    };

    let client = async {
        let mut seen: Vec<i64> = Vec::new();
        let mut connections = 0usize;
        let mut resumed_while_publishing = 0usize;
        let mut current: Collector = first;
        loop {
            if done.get() {
                let expected = published.borrow().clone();
                let last = *expected.last().expect("something was published");
                let resumed_from = seen.last().copied().unwrap_or(0);
                current
                    .wait_until(LONG, &format!("id {last}"), |c| {
                        c.last_id().unwrap_or(resumed_from) >= last
                    })
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                seen.extend(current.close().ids());
                return (seen, connections, resumed_while_publishing);
            }
            current
                .wait_until(LONG, &format!("{per_hop} events or the end"), |c| {
                    c.events.len() >= per_hop || done.get()
                })
                .await;
            let label = current.label.clone();
            let got = current.close();
            assert_eq!(got.end, None, "{label} ended by itself");
            seen.extend(got.ids());
            connections += 1;
            if !done.get() {
                resumed_while_publishing += 1;
            }
            let next = hops[connections % hops.len()];
            current = next.collect(Some(seen.last().copied().unwrap_or(0))).await;
        }
    };

    let ((), (seen, connections, resumed_while_publishing)) = join(publish, client).await;
    let expected = published.into_inner();
    assert_eq!(expected.len(), total, "{total} distinct ids");
    assert!(
        resumed_while_publishing >= 3,
        "the client should have resumed several times while events were published; \
         it resumed {resumed_while_publishing} times in {connections} connections"
    );
    assert_exactly_once_in_order(
        &format!("a client resuming {connections} times across instances"),
        &seen,
        &expected,
    );
}

/// §6: a client that left instance `a` resumes on `b` (and back, and again)
/// while both keep publishing: no gap, no duplicate.
#[actix_web::test]
async fn a_client_resuming_on_another_instance_misses_nothing_and_sees_nothing_twice() {
    let db = TestDb::create().await;
    let nodes = start_cluster(&db, &shared_redis_url(), 2).await;
    for node in &nodes {
        wait_for_health(node, SHORT, "Redis up", is_healthy_with_redis_up).await;
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    resume_while_publishing(&[a, b], &[a, b], 400).await;
}

/// §6 and trap 2 on the PostgreSQL backend alone (no Redis): reconnects with
/// `Last-Event-ID` while 500 events are published.
#[actix_web::test]
async fn resuming_on_a_postgres_backed_instance_while_publishing_is_exact() {
    let db = TestDb::create().await;
    let node = Node::start(settings(db.database_url(), None, &cluster_name(), "pg")).await;
    let (status, health) = node.health().await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(
        health["checks"]["store"]["backend"], "postgresql",
        "{health}"
    );
    assert_eq!(health["checks"]["redis"]["status"], "disabled", "{health}");
    resume_while_publishing(&[&node], &[&node], 500).await;
}

/// §6 and trap 4: Redis dies and comes back. Meanwhile each instance serves
/// its own publishers, reads the others' events from the store, reports
/// `degraded`; afterwards it resubscribes by itself and reports `healthy`.
/// No stream loses or repeats an event, or sees one out of order.
#[actix_web::test]
async fn a_redis_outage_degrades_then_recovers_without_loss_or_duplicates() {
    // Arrange: a private Redis that this test may kill.
    let db = TestDb::create().await;
    let mut redis = RedisServer::start().await;
    let nodes = start_cluster(&db, &redis.url(), 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    for node in &nodes {
        wait_for_health(node, SHORT, "Redis up", is_healthy_with_redis_up).await;
    }
    let live_a = a.collect(None).await;
    let live_b = b.collect(None).await;
    let mut published = BTreeSet::new();
    for seq in 0..10 {
        published.insert(a.publish_one(&event("a", seq)).await);
        published.insert(b.publish_one(&event("b", seq)).await);
    }
    for stream in [&live_a, &live_b] {
        stream.wait_for_all(&published, SHORT).await;
    }
    let before_outage = *published.last().unwrap();

    // Act 1: kill Redis.
    redis.kill();
    for node in &nodes {
        let health = wait_for_health(node, SHORT, "degraded with Redis down", |status, body| {
            status == 200
                && body["status"] == "degraded"
                && body["checks"]["redis"]["status"] == "down"
        })
        .await;
        assert_eq!(health["checks"]["store"]["status"], "ok", "{health}");
    }
    // Publish on both instances; two clients resume mid-outage.
    let mut resumed = Vec::new();
    for seq in 10..30 {
        published.insert(a.publish_one(&event("a", seq)).await);
        published.insert(b.publish_one(&event("b", seq)).await);
        if seq == 20 {
            resumed.push(a.collect(Some(before_outage)).await);
            resumed.push(b.collect(Some(before_outage)).await);
        }
    }

    // Assert 1: each live stream got the other instance's events too (from
    // the store), while Redis is still down.
    for stream in [&live_a, &live_b] {
        let collected = stream.wait_for_all(&published, SHORT).await;
        assert_exactly_once_in_order(
            &format!("{} during the outage", stream.label),
            &collected.ids(),
            &published,
        );
    }
    // The listing of streams says it is one instance's, not the cluster's.
    let (status, listing) = a.get_json("/sse/connections").await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(
        (&listing["scope"], &listing["complete"]),
        (&json!("instance"), &json!(false)),
        "{listing}"
    );
    for node in &nodes {
        let (_, health) = node.health().await;
        assert_eq!(health["checks"]["redis"]["status"], "down", "{health}");
    }

    // Act 2: Redis comes back on the same port.
    redis.restart().await;
    for node in &nodes {
        let health = wait_for_health(node, LONG, "healthy again, Redis up", |status, body| {
            is_healthy_with_redis_up(status, body)
                && body["checks"]["redis"]["reconnects"]
                    .as_u64()
                    .is_some_and(|n| n >= 1)
        })
        .await;
        assert_eq!(health["status"], "healthy", "{health}");
    }
    for seq in 30..40 {
        published.insert(a.publish_one(&event("a", seq)).await);
        published.insert(b.publish_one(&event("b", seq)).await);
    }
    let late = b.collect(Some(0)).await;

    // Assert 2: every stream has everything, once, in order, and is open.
    assert_eq!(published.len(), 80);
    let after_outage: BTreeSet<i64> = published.range(before_outage + 1..).copied().collect();
    for (stream, expected) in [
        (&live_a, &published),
        (&live_b, &published),
        (&resumed[0], &after_outage),
        (&resumed[1], &after_outage),
        (&late, &published),
    ] {
        let collected = stream.wait_for_all(expected, LONG).await;
        assert_exactly_once_in_order(&stream.label, &collected.ids(), expected);
        assert_eq!(collected.end, None, "{} closed", stream.label);
    }
    for node in &nodes {
        let (status, health) = node.health().await;
        assert!(
            is_healthy_with_redis_up(status, &health),
            "{status} {health}"
        );
    }
}

/// Trap 4: an outage longer than the Redis client's own reconnect retries
/// (about 5-10 s of backoff, then it waits for a command to fail) must still
/// end with the bridge resubscribed by itself, and live events crossing
/// instances over Redis again.
#[actix_web::test]
async fn a_long_redis_outage_still_ends_with_the_bridge_resubscribed() {
    // Arrange
    let db = TestDb::create().await;
    let mut redis = RedisServer::start().await;
    let nodes = start_cluster(&db, &redis.url(), 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    for node in &nodes {
        wait_for_health(node, SHORT, "Redis up", is_healthy_with_redis_up).await;
    }
    let on_b = b.collect(None).await;
    let mut published = BTreeSet::new();

    // Act: Redis is gone for 12 s, longer than any retry budget of the client.
    redis.kill();
    for node in &nodes {
        wait_for_health(node, SHORT, "Redis down", |_, body| {
            body["checks"]["redis"]["status"] == "down"
        })
        .await;
    }
    published.insert(a.publish_one(&event("a", 0)).await);
    on_b.wait_for_all(&published, SHORT).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    redis.restart().await;

    // Assert: both bridges come back by themselves...
    for node in &nodes {
        wait_for_health(
            node,
            Duration::from_secs(8),
            "healthy again, Redis up",
            |status, body| {
                is_healthy_with_redis_up(status, body)
                    && body["checks"]["redis"]["reconnects"]
                        .as_u64()
                        .is_some_and(|n| n >= 1)
            },
        )
        .await;
    }
    // ...and are subscribed again: b gets a's live events, once, in order.
    for seq in 1..6 {
        published.insert(a.publish_one(&event("a", seq)).await);
    }
    let collected = on_b.wait_for_all(&published, SHORT).await;
    assert_exactly_once_in_order(&on_b.label, &collected.ids(), &published);
    assert_eq!(collected.end, None, "{} closed", on_b.label);
}

/// §2: the same `idempotency_key` sent to two instances at the same moment
/// is stored and delivered once, and both publishers get the same id.
#[actix_web::test]
async fn one_idempotency_key_sent_to_two_instances_at_once_is_one_event() {
    // Arrange
    let db = TestDb::create().await;
    let nodes = start_cluster(&db, &shared_redis_url(), 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    for node in &nodes {
        wait_for_health(node, SHORT, "Redis up", is_healthy_with_redis_up).await;
    }
    let streams = [a.collect(None).await, b.collect(None).await];
    let run = uuid::Uuid::new_v4().simple().to_string();
    let keys: Vec<String> = (0..10).map(|i| format!("order-{i}-{run}")).collect();
    let body = |key: &str, via: &str| {
        json!({
            "event_type": "system_status",
            "data": {"key": key, "via": via},
            "idempotency_key": key,
        })
    };

    // Act: 20 requests at once, each key to both instances.
    let answers = join_all(keys.iter().flat_map(|key| {
        [a, b]
            .into_iter()
            .map(move |node| async move { node.publish_one(&body(key, &node.instance_id)).await })
    }))
    .await;
    let sentinel = a.publish_one(&event("sentinel", 0)).await;

    // Assert: one id per key, one delivery per key on every stream.
    let mut key_of = BTreeMap::new();
    for (key, pair) in keys.iter().zip(answers.chunks(2)) {
        assert_eq!(
            pair[0], pair[1],
            "key {key}: instance a answered id {}, instance b answered id {}",
            pair[0], pair[1]
        );
        assert!(
            key_of.insert(pair[0], key.clone()).is_none(),
            "two keys got id {}",
            pair[0]
        );
    }
    let mut expected: BTreeSet<i64> = key_of.keys().copied().collect();
    expected.insert(sentinel);
    for stream in &streams {
        let collected = stream.wait_for_all(&expected, SHORT).await;
        assert_exactly_once_in_order(&stream.label, &collected.ids(), &expected);
        for (id, event) in &collected.events {
            if let Some(key) = key_of.get(id) {
                assert_eq!(event.json()["key"], key.as_str(), "event {id}");
            }
        }
    }

    // And a later repeat on the other instance is still the same event.
    let (first_id, first_key) = key_of.iter().next().unwrap();
    assert_eq!(b.publish_one(&body(first_key, "b-again")).await, *first_id);
    let sentinel = b.publish_one(&event("sentinel", 1)).await;
    expected.insert(sentinel);
    for stream in &streams {
        let collected = stream.wait_for_all(&expected, SHORT).await;
        assert_exactly_once_in_order(&stream.label, &collected.ids(), &expected);
    }
}

/// Trap 4: PostgreSQL goes away. Publishing answers 503 `store_unavailable`
/// within seconds, `/health` says `unhealthy` (503), and the process and its
/// open streams stay alive.
#[actix_web::test]
async fn an_unreachable_database_fails_publishes_fast_and_keeps_streams_open() {
    // Arrange
    let db = TestDb::create().await;
    let nodes = start_cluster(&db, &shared_redis_url(), 1).await;
    let node = &nodes[0];
    wait_for_health(node, SHORT, "Redis up", is_healthy_with_redis_up).await;
    let stream = node.collect(None).await;
    let id = node.publish_one(&event("before", 0)).await;
    stream.wait_for_all(&BTreeSet::from([id]), SHORT).await;
    const PING_ERRORS: &str = "sse_store_errors_total";
    let ping = [("operation", "ping")];
    assert_eq!(
        node.counter_sum(PING_ERRORS, &ping).await,
        0.0,
        "failed store round trips before the database went away"
    );
    assert_eq!(node.counter_sum("sse_store_up", &[]).await, 1.0);

    // Act: the database disappears under the running instance.
    db.drop_now().await;

    // Assert: publishing fails fast with 503.
    for attempt in 0..2 {
        let started = tokio::time::Instant::now();
        let response = node.publish(&event("during", attempt)).await;
        let took = started.elapsed();
        assert_error(response, 503, "store_unavailable").await;
        assert!(
            took < Duration::from_secs(8),
            "publish #{attempt} took {took:?} to fail"
        );
    }
    // /health: 503 unhealthy, the store named as the cause (first as
    // failing, from the refused publishes; then as unavailable, once the
    // health sampler's round trip fails too).
    let health = wait_for_health(node, LONG, "unhealthy (503)", |status, body| {
        status == 503
            && body["status"] == "unhealthy"
            && body["checks"]["store"]["status"] == "unavailable"
    })
    .await;
    assert_eq!(
        health["checks"]["store"]["status"], "unavailable",
        "{health}"
    );
    // What alert SseBrokerStoreUnavailable watches: the health sampler's
    // round trip failing (each one counted too), with no stream closed for
    // the store.
    assert_eq!(node.counter_sum("sse_store_up", &[]).await, 0.0);
    let failed_pings = node.counter_sum(PING_ERRORS, &ping).await;
    assert!(
        failed_pings >= 1.0,
        "failed round trips counted: {failed_pings}"
    );
    assert_eq!(
        node.counter_sum(
            "sse_connections_closed_total",
            &[("reason", "store_unavailable")]
        )
        .await,
        0.0,
        "no stream was closed for the store, yet the alert's signal is there"
    );
    // The process still answers, and the open stream still beats.
    let stats = node.stats().await;
    assert_eq!(stats["active_connections"], 1, "{stats}");
    let beats = stream.snapshot().heartbeats;
    let collected = stream
        .wait_until(SHORT, "two more heartbeats", |c| c.heartbeats >= beats + 2)
        .await;
    assert_eq!(collected.end, None, "the stream was closed");
    assert_eq!(collected.ids(), vec![id], "nothing but the first event");
}

/// `/sse/stats` on any instance reports the cluster's total of open streams.
#[actix_web::test]
async fn cluster_totals_add_up_the_streams_of_every_instance() {
    // Arrange
    let db = TestDb::create().await;
    let nodes = start_cluster(&db, &shared_redis_url(), 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut on_a = Vec::new();
    for _ in 0..2 {
        on_a.push(a.collect(None).await);
    }
    let mut on_b = Vec::new();
    for _ in 0..3 {
        on_b.push(b.collect(None).await);
    }

    // Assert: 2 + 3 seen from both sides.
    let expect_totals = |total: u64, per_instance: [(&'static str, u64); 2]| {
        move |stats: Value| -> Result<Value, String> {
            let cluster = &stats["cluster"];
            let mut entries: Vec<(String, u64)> = cluster["instances"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|i| {
                            (
                                i["instance_id"].as_str().unwrap_or_default().to_owned(),
                                i["active_connections"].as_u64().unwrap_or(u64::MAX),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            entries.sort();
            let wanted: Vec<(String, u64)> = per_instance
                .iter()
                .map(|(id, n)| ((*id).to_owned(), *n))
                .collect();
            if cluster["total_active_connections"] == total
                && cluster["instance_count"] == 2
                && entries == wanted
            {
                Ok(stats)
            } else {
                Err(stats.to_string())
            }
        }
    };
    for node in [a, b] {
        let check = expect_totals(5, [("a", 2), ("b", 3)]);
        let stats = poll(Duration::from_secs(10), "cluster totals 2 + 3", || async {
            check(node.stats().await)
        })
        .await;
        assert_eq!(stats["cluster"]["redis"], "up", "{stats}");
    }

    // Act: one stream on b goes away.
    drop(on_b.pop());

    // Assert: 2 + 2.
    for node in [a, b] {
        let check = expect_totals(4, [("a", 2), ("b", 2)]);
        poll(Duration::from_secs(10), "cluster totals 2 + 2", || async {
            check(node.stats().await)
        })
        .await;
    }
}

/// A cancel written through one instance wins over a generation written
/// through another: that instance's open upload is answered at once, its
/// next write is refused, and no text lands after the cancel.
#[actix_web::test]
async fn a_cancel_on_one_instance_stops_the_generation_written_through_another() {
    // Arrange: the task is written through a (held in a's memory) by an
    // open upload.
    let db = TestDb::create().await;
    let nodes = start_cluster(&db, &shared_redis_url(), 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let created = client
        .post(a.url("/tasks"))
        .json(&json!({"task_id": "gen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let (body, chunks) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    let upload = client
        .post(a.url("/tasks/gen/stream"))
        .header("Content-Type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(
            tokio_stream::wrappers::ReceiverStream::new(chunks),
        ))
        .send();
    let upload = actix_rt::spawn(upload);
    body.send(Ok("{\"delta\": \"kept\"}\n".into()))
        .await
        .unwrap();
    poll(SHORT, "the first delta stored", || async {
        match a.get_json("/tasks/gen").await {
            (200, task) if task["status"] == "running" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Act
    let cancelled = client
        .post(b.url("/tasks/gen/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status().as_u16(), 200);

    // Assert: a's upload is answered without waiting for its body...
    let answer = tokio::time::timeout(SHORT, upload)
        .await
        .expect("the upload on a is answered at once")
        .expect("the upload task")
        .expect("an answer");
    assert_error(answer, 409, "task_cancelled").await;
    drop(body);
    // ...a write through a is refused...
    let late = client
        .post(a.url("/tasks/gen/text"))
        .json(&json!({"delta": "late"}))
        .send()
        .await
        .unwrap();
    assert_error(late, 409, "task_cancelled").await;
    // ...and the stored text is what came before the cancel.
    let (_, history) = a.get_json("/sse/history?event_types=text").await;
    let texts: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["delta"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["kept"]);
}
