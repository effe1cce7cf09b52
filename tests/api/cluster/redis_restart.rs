//! A Redis restart keeps every instance in its load balancer's rotation
//! (troubleshooting.md, "Redis down"): no `/health` 503 at any moment,
//! also with enough streams that a false presence mismatch would alert.

use std::time::{Duration, Instant};

use super::{
    harness::{LONG, RedisServer, TestDb, wait_for_health},
    is_healthy_with_redis_up, start_cluster,
};

#[actix_web::test]
async fn a_redis_restart_never_makes_an_instance_unhealthy() {
    // Arrange: 30 streams on each instance (a mismatch of 30 alerts).
    let db = TestDb::create().await;
    let mut redis = RedisServer::start().await;
    let nodes = start_cluster(&db, &redis.url(), 2).await;
    let mut streams = Vec::new();
    for node in &nodes {
        for _ in 0..30 {
            streams.push(node.collect(None).await);
        }
    }
    for node in &nodes {
        wait_for_health(node, LONG, "Redis up, streams counted", |status, body| {
            is_healthy_with_redis_up(status, body)
        })
        .await;
    }

    // Act: Redis stops for 3 s and comes back empty.
    redis.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.restart().await;

    // Assert: polled every 100 ms until 8 s after the link is back.
    let mut back_since: Vec<Option<Instant>> = vec![None; nodes.len()];
    let deadline = Instant::now() + LONG;
    loop {
        for (node, back) in nodes.iter().zip(back_since.iter_mut()) {
            let (status, body) = node.health().await;
            assert_ne!(status, 503, "{}: {body}", node.instance_id);
            if back.is_none() && is_healthy_with_redis_up(status, &body) {
                *back = Some(Instant::now());
            }
        }
        if back_since
            .iter()
            .all(|back| back.is_some_and(|t| t.elapsed() > Duration::from_secs(8)))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the link came back: {back_since:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(streams);
}
