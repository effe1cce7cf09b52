//! Two deployments on one Redis with the same cluster name (staging beside
//! production, both left at the default name): neither sees the other's
//! events or instances, each keeps delivering its own, and `/health` warns.

use std::time::Duration;

use serde_json::json;
use sse_broker::config::DatabaseUrl;

use super::{
    harness::{
        LONG, Node, SHORT, TestDb, cluster_name, poll, settings, shared_redis_url, wait_for_health,
    },
    is_healthy_with_redis_up,
};

#[actix_web::test]
async fn a_deployment_on_another_database_sharing_the_cluster_name_is_ignored_and_reported() {
    let (production_db, staging_db) = (TestDb::create().await, TestDb::create().await);
    let (cluster, redis) = (cluster_name(), shared_redis_url());
    let production = Node::start(settings(
        production_db.database_url(),
        Some(&redis),
        &cluster,
        "prod-1",
    ))
    .await;
    let staging = Node::start(settings(
        staging_db.database_url(),
        Some(&redis),
        &cluster,
        "staging-1",
    ))
    .await;
    for node in [&production, &staging] {
        wait_for_health(node, SHORT, "Redis up", |status, body| {
            status == 200 && body["checks"]["redis"]["status"] == "up"
        })
        .await;
    }
    let mut watching_staging = staging.open_stream(None).await;

    // Production's event, with an id from its own database, and staging's.
    production
        .publish_one(&json!({"event_type": "commit", "project_id": "secret", "data": {"prod": "confidential"}}))
        .await;
    let own = staging
        .publish_one(&json!({"event_type": "commit", "data": {"staging": 1}}))
        .await;

    let first = watching_staging
        .next_message(LONG)
        .await
        .expect("staging's own event");
    assert_eq!(first.id_number(), Some(own), "{first:?}");
    assert_eq!(first.json()["staging"], 1, "{first:?}");
    watching_staging
        .assert_quiet(Duration::from_millis(500))
        .await;

    let health = poll(LONG, "staging to warn of the other deployment", || async {
        let (status, body) = staging.health().await;
        let warned = body["warnings"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["type"] == "foreign_deployment"));
        if status == 200 && warned {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    })
    .await;
    assert!(health.to_string().contains("prod-1"), "{health}");
    let stats = staging.stats().await;
    assert!(!stats.to_string().contains("prod-1"), "{stats}");
    assert!(
        !is_healthy_with_redis_up(200, &health),
        "degraded, not healthy: {health}"
    );
}

/// A developer's instance on its own SQLite file, pointed at production's
/// Redis with the default cluster name: its events (ids from its own file,
/// ahead of production's) must neither reach production's streams nor
/// make production drop its own next events as already routed.
#[actix_web::test]
async fn an_instance_on_an_sqlite_file_sharing_the_cluster_name_is_another_deployment() {
    let production_db = TestDb::create().await;
    let (cluster, redis) = (cluster_name(), shared_redis_url());
    let production = Node::start(settings(
        production_db.database_url(),
        Some(&redis),
        &cluster,
        "prod-1",
    ))
    .await;
    let dev_dir = tempfile::tempdir().expect("a temporary directory");
    let dev_file = DatabaseUrl::Sqlite {
        path: dev_dir.path().join("dev.db"),
    };
    let dev = Node::start(settings(dev_file, Some(&redis), &cluster, "devbox")).await;
    for node in [&production, &dev] {
        wait_for_health(node, SHORT, "Redis up", |status, body| {
            status == 200 && body["checks"]["redis"]["status"] == "up"
        })
        .await;
    }
    let mut watching_production = production.open_stream(None).await;

    // The developer's file runs ahead of production's ids.
    for n in 0..20 {
        dev.publish_one(&json!({"event_type": "commit", "data": {"dev": n}}))
            .await;
    }
    let own = production
        .publish_one(&json!({"event_type": "commit", "data": {"prod": 1}}))
        .await;

    let first = watching_production
        .next_message(LONG)
        .await
        .expect("production's own event");
    assert_eq!(first.id_number(), Some(own), "{first:?}");
    assert_eq!(first.json()["prod"], 1, "{first:?}");
    watching_production
        .assert_quiet(Duration::from_millis(500))
        .await;
    poll(
        LONG,
        "production to warn of the other deployment",
        || async {
            let (status, body) = production.health().await;
            let warned = body["warnings"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|w| w["type"] == "foreign_deployment" && w.to_string().contains("devbox"))
            });
            if warned {
                Ok(())
            } else {
                Err(format!("{status}: {body}"))
            }
        },
    )
    .await;
}

/// Two instances started with one `--instance-id` (cloned hosts, one
/// hostname) write one presence record: each says so on `/health` as a
/// warning naming the flag, and neither turns unhealthy (a load balancer
/// would take both out) over the counts that disagree because of it.
#[actix_web::test]
async fn an_instance_id_used_twice_is_a_warning_on_both_not_an_outage() {
    let db = TestDb::create().await;
    let (cluster, redis) = (cluster_name(), shared_redis_url());
    let first = Node::start(settings(db.database_url(), Some(&redis), &cluster, "twin")).await;
    let second = Node::start(settings(db.database_url(), Some(&redis), &cluster, "twin")).await;
    let mut streams = Vec::new();
    for _ in 0..15 {
        streams.push(second.open_stream(None).await);
    }
    for node in [&first, &second] {
        let body = wait_for_health(node, LONG, "the clash reported", |_, body| {
            body["warnings"]
                .as_array()
                .is_some_and(|w| w.iter().any(|w| w["type"] == "duplicate_instance_id"))
        })
        .await;
        assert!(body.to_string().contains("--instance-id"), "{body}");
    }
    // Past several presence refreshes, both still serve and say 200.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for node in [&first, &second] {
        let (status, body) = node.health().await;
        assert_eq!(status, 200, "{body}");
        assert!(
            !body.to_string().contains("connection_mismatch"),
            "the clash explains the counts: {body}"
        );
    }
}

/// A restart under the same `--instance-id` (a deploy) finds its
/// predecessor's presence record, signed by another process, still in
/// Redis for a few seconds: that is no second instance, and says nothing.
#[actix_web::test]
async fn a_restart_under_the_same_instance_id_is_no_duplicate() {
    let db = TestDb::create().await;
    let (cluster, redis) = (cluster_name(), shared_redis_url());
    let first = Node::start(settings(
        db.database_url(),
        Some(&redis),
        &cluster,
        "deploy",
    ))
    .await;
    wait_for_health(&first, LONG, "the presence written twice", |_, body| {
        body["checks"]["redis"]["status"] == "up"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(first);

    let second = Node::start(settings(
        db.database_url(),
        Some(&redis),
        &cluster,
        "deploy",
    ))
    .await;

    // Past three presence refreshes of the new process.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (status, body) = second.health().await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.to_string().contains("duplicate_instance_id"),
        "a restart is no duplicate: {body}"
    );
}

/// Staging restored from production's dump carries production's store
/// identity in `broker_state`. Started elsewhere (another database), it
/// draws one of its own, so sharing production's Redis and cluster name it
/// is another deployment: its events never reach production's streams,
/// nor make production drop its own.
#[actix_web::test]
async fn a_database_restored_from_anothers_dump_is_another_deployment() {
    let (production_db, staging_db) = (TestDb::create().await, TestDb::create().await);
    let (cluster, redis) = (cluster_name(), shared_redis_url());
    // Staging's schema, then production's marks as its dump would bring them.
    drop(
        Node::start(settings(
            staging_db.database_url(),
            None,
            &cluster,
            "schema",
        ))
        .await,
    );
    let production = Node::start(settings(
        production_db.database_url(),
        Some(&redis),
        &cluster,
        "prod-1",
    ))
    .await;
    let client = |db: &TestDb| {
        let url = db.url();
        async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("a session");
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
    };
    let (from, to) = (client(&production_db).await, client(&staging_db).await);
    for row in from
        .query(
            "SELECT key, value FROM broker_state WHERE key LIKE 'store_%'",
            &[],
        )
        .await
        .expect("production's marks")
    {
        let (key, value): (String, i64) = (row.get(0), row.get(1));
        to.execute(
            "INSERT INTO broker_state (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )
        .await
        .expect("the mark restored");
    }
    let staging = Node::start(settings(
        staging_db.database_url(),
        Some(&redis),
        &cluster,
        "staging-1",
    ))
    .await;
    for node in [&production, &staging] {
        wait_for_health(node, SHORT, "Redis up", |status, body| {
            status == 200 && body["checks"]["redis"]["status"] == "up"
        })
        .await;
    }
    let mut watching_production = production.open_stream(None).await;

    for n in 0..5 {
        staging
            .publish_one(&json!({"event_type": "commit", "data": {"staging": n}}))
            .await;
    }
    let own = production
        .publish_one(&json!({"event_type": "commit", "data": {"prod": 1}}))
        .await;

    let first = watching_production
        .next_message(LONG)
        .await
        .expect("production's own event");
    assert_eq!(first.id_number(), Some(own), "{first:?}");
    assert_eq!(first.json()["prod"], 1, "{first:?}");
    watching_production
        .assert_quiet(Duration::from_millis(500))
        .await;
}

/// Another deployment's instance started with one of ours' id writes its
/// presence record over ours: ours says both, another deployment and
/// another process with its id, and neither turns it unhealthy.
#[actix_web::test]
async fn another_deployments_instance_under_our_id_is_named_as_both() {
    let production_db = TestDb::create().await;
    let (cluster, redis) = (cluster_name(), shared_redis_url());
    let production = Node::start(settings(
        production_db.database_url(),
        Some(&redis),
        &cluster,
        "web-1",
    ))
    .await;
    let dev_dir = tempfile::tempdir().expect("a temporary directory");
    let dev_file = DatabaseUrl::Sqlite {
        path: dev_dir.path().join("dev.db"),
    };
    let _dev = Node::start(settings(dev_file, Some(&redis), &cluster, "web-1")).await;
    let mut streams = Vec::new();
    for _ in 0..15 {
        streams.push(production.open_stream(None).await);
    }

    let body = wait_for_health(&production, LONG, "both warnings", |_, body| {
        let warned = |kind: &str| {
            body["warnings"]
                .as_array()
                .is_some_and(|w| w.iter().any(|w| w["type"] == kind))
        };
        warned("foreign_deployment") && warned("duplicate_instance_id")
    })
    .await;

    assert!(!body.to_string().contains("connection_mismatch"), "{body}");
    let (status, _) = production.health().await;
    assert_eq!(status, 200);
}
