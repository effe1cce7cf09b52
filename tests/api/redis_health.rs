//! The cluster's side of `/health`: this instance's presence record in
//! Redis checked against what it wrote (`connection_mismatch`, which a
//! record lost once, as by a `FLUSHALL`, does not raise), Redis refusing
//! the writes (`redis_presence_refused`), and Redis outages, which degrade
//! health but never make it answer 503.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::{
    cluster::harness::RedisServer,
    health_rules::{
        finding, health, is_healthy, open_streams, sample, try_monitoring, try_poll,
        wait_for_gauge, wait_for_health, wait_for_monitoring,
    },
    helpers::{LONG, SHORT, TestApp, spawn_app_with},
};

#[actix_web::test]
async fn a_count_in_redis_far_from_the_local_one_is_an_alert_until_the_broker_rewrites_it() {
    // Arrange: a clustered broker on a private Redis, one stream, its count
    // read back from Redis as 1.
    let redis = RedisServer::start().await;
    let cluster_name = format!("health-{}", uuid::Uuid::new_v4().simple());
    let instance_id = "mismatch-a";
    let app = spawn_app_with(|s| {
        s.redis_url = Some(SecretString::from(redis.url()));
        s.cluster_name = cluster_name.clone();
        s.instance_id = instance_id.into();
    })
    .await;
    let _stream = app.open_stream("/sse/events", &[]).await;
    wait_for_monitoring(&app, LONG, "Redis up, 1 stream recorded in Redis", |m| {
        let connections = &m["connection_stats"];
        connections["cluster"]["redis"] == "up"
            && connections["redis_connection_counters"] == 1
            && is_healthy(&m["health_indicators"])
    })
    .await;
    wait_for_gauge(&app, "sse_redis_bridge_up", &[], "the link up (1)", |v| {
        v == 1.0
    })
    .await;
    wait_for_gauge(
        &app,
        "sse_connections_redis",
        &[("instance", instance_id)],
        "1 stream recorded in Redis",
        |v| v == 1.0,
    )
    .await;
    let mut redis_client = redis::Client::open(redis.url())
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("a connection to the private Redis");
    let key = format!("{cluster_name}:instance:{instance_id}");

    // Act: someone else keeps writing 500 under this instance's key (a
    // second process with its --instance-id): the record the bridge reads
    // back at each refresh (every 2 s) is not what it wrote, refresh after
    // refresh.
    let foreign_writer = {
        let key = key.clone();
        let instance_id = instance_id.to_owned();
        actix_rt::spawn(async move {
            loop {
                let presence = json!({
                    "instance_id": instance_id,
                    "active_connections": 500,
                    "updated_at_ms": chrono::Utc::now().timestamp_millis(),
                });
                let () = redis_client
                    .set(&key, presence.to_string())
                    .await
                    .expect("SET the presence key");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let monitoring = try_monitoring(
        &app,
        Duration::from_secs(12),
        Duration::from_millis(100),
        |m| finding(&m["health_indicators"], "alerts", "connection_mismatch").is_some(),
    )
    .await
    .unwrap_or_else(|last| {
        panic!("no connection_mismatch alert while 500 was written in Redis; last: {last}")
    });

    // Assert: a high alert, unhealthy, /health 503.
    let indicators = &monitoring["health_indicators"];
    let alert = finding(indicators, "alerts", "connection_mismatch").unwrap();
    assert_eq!(alert["severity"], "high", "{indicators}");
    assert!(
        alert["message"].as_str().is_some_and(|m| m.contains("500")),
        "{indicators}"
    );
    assert_eq!(indicators["overall_health"], "unhealthy", "{indicators}");
    assert_eq!(
        monitoring["connection_stats"]["redis_connection_counters"], 500,
        "{}",
        monitoring["connection_stats"]
    );
    let body = wait_for_health(&app, "503 with connection_mismatch", |status, body| {
        status == 503
            && body["status"] == "unhealthy"
            && finding(body, "alerts", "connection_mismatch").is_some()
    })
    .await;
    assert_eq!(body["checks"]["redis"]["status"], "up", "{body}");

    // Assert 2: the other writer gone, the broker rewrites its true count
    // and the alert clears.
    foreign_writer.abort();
    wait_for_monitoring(&app, SHORT, "the mismatch to clear by itself", |m| {
        m["connection_stats"]["redis_connection_counters"] == 1
            && is_healthy(&m["health_indicators"])
    })
    .await;
    wait_for_health(&app, "200 healthy again", |status, body| {
        status == 200 && body["status"] == "healthy"
    })
    .await;
}

#[actix_web::test]
async fn a_flushed_redis_never_makes_health_answer_503() {
    // Arrange: more streams than the mismatch tolerance (10), their count
    // written to Redis and read back.
    let redis = RedisServer::start().await;
    let app = clustered(&redis, "flush-a").await;
    let _streams = open_streams(&app, 15).await;
    wait_for_monitoring(&app, LONG, "15 streams recorded in Redis, healthy", |m| {
        m["connection_stats"]["redis_connection_counters"] == 15
            && is_healthy(&m["health_indicators"])
    })
    .await;
    let mut redis_client = redis_client(&redis).await;

    // Act: another user of the Redis flushes it, /health sampled every
    // 100 ms for 6 s (three presence refreshes).
    let flush = async {
        let () = redis::cmd("FLUSHALL")
            .query_async(&mut redis_client)
            .await
            .expect("FLUSHALL");
    };
    let (_, samples) =
        futures_util::future::join(flush, sample_health(&app, Duration::from_secs(6))).await;

    // Assert: the record lost once is rewritten, and no load balancer
    // takes the instance out for it.
    assert_never_503("a FLUSHALL", &samples);
    wait_for_monitoring(&app, SHORT, "15 streams recorded in Redis again", |m| {
        m["connection_stats"]["redis_connection_counters"] == 15
            && is_healthy(&m["health_indicators"])
    })
    .await;
}

#[actix_web::test]
async fn redis_refusing_presence_writes_degrades_health_without_breaking_the_link() {
    // Arrange: a clustered broker, healthy, its link up once.
    let redis = RedisServer::start().await;
    let app = clustered(&redis, "oom-a").await;
    wait_for_monitoring(&app, LONG, "Redis up, healthy", |m| {
        m["connection_stats"]["cluster"]["redis"] == "up" && is_healthy(&m["health_indicators"])
    })
    .await;
    let before = reconnects(&app).await;
    let mut redis_client = redis_client(&redis).await;
    let set = |name: &'static str, value: &'static str| {
        redis::cmd("CONFIG").arg("SET").arg(name).arg(value).clone()
    };

    // Act: Redis at maxmemory, refusing writes (OOM), for 6 s.
    let () = set("maxmemory-policy", "noeviction")
        .query_async(&mut redis_client)
        .await
        .expect("CONFIG SET");
    let () = set("maxmemory", "1")
        .query_async(&mut redis_client)
        .await
        .expect("CONFIG SET");
    let samples = sample_health(&app, Duration::from_secs(6)).await;

    // Assert: degraded with the refusal's words, the link up throughout.
    let last = &samples.last().expect("samples").1;
    assert_eq!(last["status"], "degraded", "{last}");
    let warning = finding(last, "warnings", "redis_presence_refused")
        .unwrap_or_else(|| panic!("no redis_presence_refused: {last}"));
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m.contains("OOM")),
        "{warning}"
    );
    assert!(
        samples
            .iter()
            .all(|(status, body)| *status == 200 && body["checks"]["redis"]["status"] == "up"),
        "the link flapped or /health answered 503: {:?}",
        samples
            .iter()
            .map(|(status, body)| (status, &body["checks"]["redis"]["status"]))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        reconnects(&app).await,
        before,
        "no reconnect for a refused write"
    );

    // Assert 2: Redis takes writes again, and health is back.
    let () = set("maxmemory", "0")
        .query_async(&mut redis_client)
        .await
        .expect("CONFIG SET");
    wait_for_health(&app, "healthy once Redis takes writes", |status, body| {
        status == 200 && body["status"] == "healthy"
    })
    .await;
}

/// How often the bridge reconnected to Redis, as `/metrics` says.
async fn reconnects(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap_or_default();
    sample(&text, "sse_redis_bridge_reconnects_total", &[]).unwrap_or(0.0)
}

async fn redis_client(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("a connection to the private Redis")
}

/// A broker clustered over `redis`, on its own cluster name.
async fn clustered(redis: &RedisServer, instance_id: &str) -> TestApp {
    let cluster_name = format!("health-{}", uuid::Uuid::new_v4().simple());
    spawn_app_with(|s| {
        s.redis_url = Some(SecretString::from(redis.url()));
        s.cluster_name = cluster_name;
        s.instance_id = instance_id.into();
    })
    .await
}

/// `/health` every 100 ms for `period`: each answer's status and body.
async fn sample_health(app: &TestApp, period: Duration) -> Vec<(u16, Value)> {
    let deadline = Instant::now() + period;
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        samples.push(health(app).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    samples
}

/// Asserts no sample was a 503; names the first that was.
fn assert_never_503(what: &str, samples: &[(u16, Value)]) {
    let failures: Vec<&(u16, Value)> = samples
        .iter()
        .filter(|(status, _)| *status == 503)
        .collect();
    assert!(
        failures.is_empty(),
        "{what}: {} of {} /health samples answered 503; the first: {}",
        failures.len(),
        samples.len(),
        failures[0].1
    );
}

#[actix_web::test]
async fn a_hundred_streams_opened_at_once_never_make_health_answer_503() {
    // Arrange: a clustered broker whose presence count (0) is in Redis.
    let redis = RedisServer::start().await;
    let app = clustered(&redis, "burst-a").await;
    wait_for_monitoring(&app, LONG, "Redis up, 0 streams recorded there", |m| {
        let connections = &m["connection_stats"];
        connections["cluster"]["redis"] == "up"
            && connections["redis_connection_counters"] == 0
            && is_healthy(&m["health_indicators"])
    })
    .await;

    // Act: 100 streams at once, /health sampled every 100 ms meanwhile and
    // for 5 s (two presence refreshes and more).
    let (streams, samples) = futures_util::future::join(
        open_streams(&app, 100),
        sample_health(&app, Duration::from_secs(5)),
    )
    .await;

    // Assert: never 503; the count in Redis catches up by itself.
    assert_eq!(streams.len(), 100);
    assert_never_503("100 streams opened at once", &samples);
    wait_for_monitoring(&app, SHORT, "100 streams recorded in Redis, healthy", |m| {
        m["connection_stats"]["redis_connection_counters"] == 100
            && is_healthy(&m["health_indicators"])
    })
    .await;
}

#[actix_web::test]
async fn a_redis_restart_degrades_health_but_never_makes_it_503() {
    // Arrange: 20 streams, their count written to Redis and read back.
    let mut redis = RedisServer::start().await;
    let app = clustered(&redis, "restart-a").await;
    let _streams = open_streams(&app, 20).await;
    wait_for_monitoring(&app, LONG, "20 streams recorded in Redis, healthy", |m| {
        m["connection_stats"]["redis_connection_counters"] == 20
            && is_healthy(&m["health_indicators"])
    })
    .await;

    // Act: Redis is killed, comes back on the same port 2 s later (empty:
    // it keeps nothing on disk), while /health is sampled every 100 ms
    // through the outage and for 8 s after it.
    let outage = async {
        redis.kill();
        tokio::time::sleep(Duration::from_secs(2)).await;
        redis.restart().await;
    };
    let (_, samples) =
        futures_util::future::join(outage, sample_health(&app, Duration::from_secs(10))).await;

    // Assert: degraded (200) while Redis was down, as the docs promise, and
    // never 503, during the outage or after it.
    assert_never_503("a Redis restart", &samples);
    assert!(
        samples.iter().any(|(status, body)| *status == 200
            && body["status"] == "degraded"
            && body["checks"]["redis"]["status"] == "down"),
        "the outage never showed as degraded: {:?}",
        samples
            .iter()
            .map(|(_, b)| &b["status"])
            .collect::<Vec<_>>()
    );
    wait_for_health(&app, "healthy with Redis up", |status, body| {
        status == 200 && body["status"] == "healthy" && body["checks"]["redis"]["status"] == "up"
    })
    .await;
}

/// `sse_redis_bridge_up` moves with the link, as `/health` does: read right
/// after `/health` says the link went down (or came back), the gauge says
/// so too. It once waited for the sampler's next turn, up to 5 s.
#[actix_web::test]
async fn the_redis_link_gauge_moves_with_the_link_not_with_the_sampler() {
    let mut redis = RedisServer::start().await;
    let app = spawn_app_with(|s| {
        s.redis_url = Some(SecretString::from(redis.url()));
        s.cluster_name = format!("link-{}", uuid::Uuid::new_v4().simple());
    })
    .await;
    wait_for_gauge(&app, "sse_redis_bridge_up", &[], "the link up (1)", |v| {
        v == 1.0
    })
    .await;
    let link_is = |up: bool| {
        let app = &app;
        async move {
            try_poll(LONG, Duration::from_millis(20), || async move {
                let health: Value = app.get("/health").await.json().await.expect("JSON");
                let redis = &health["checks"]["redis"]["status"];
                if (*redis == "up") == up {
                    Ok(())
                } else {
                    Err(format!("{health}"))
                }
            })
            .await
            .unwrap_or_else(|seen| panic!("/health never said the link is up={up}: {seen}"));
            let text = app.get("/metrics").await.text().await.unwrap_or_default();
            (
                sample(&text, "sse_redis_bridge_up", &[]),
                sample(&text, "sse_connections_redis", &[]),
            )
        }
    };
    wait_for_gauge(
        &app,
        "sse_connections_redis",
        &[],
        "a count read from Redis",
        |v| v == 0.0,
    )
    .await;

    redis.kill();
    let (up, recorded) = link_is(false).await;
    assert_eq!(up, Some(0.0), "the gauge when /health says down");
    // The count in Redis cannot be read while the link is down: absent,
    // not the last value read.
    assert_eq!(recorded, None, "sse_connections_redis with the link down");
    redis.restart().await;
    let (up, _) = link_is(true).await;
    assert_eq!(up, Some(1.0), "the gauge when /health says up");
    wait_for_gauge(
        &app,
        "sse_connections_redis",
        &[],
        "the count read again",
        |v| v == 0.0,
    )
    .await;
}
