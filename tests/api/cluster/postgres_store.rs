//! One instance on PostgreSQL, held to what the SQLite tests hold the
//! default store to, where PostgreSQL differs underneath: an emptied
//! `events` table forgets its newest id (SQLite's AUTOINCREMENT keeps it),
//! and its `text` columns cannot hold a NUL (SQLite's can).

use std::time::Duration;

use serde_json::{Value, json};
use sse_broker::config::Settings;

use super::harness::{LONG, Node, SHORT, TestDb, cluster_name, poll, settings};
use crate::helpers::assert_error;

async fn start_alone(db: &TestDb, configure: impl FnOnce(&mut Settings)) -> Node {
    let mut configured = settings(db.database_url(), None, &cluster_name(), "pg");
    configure(&mut configured);
    Node::start(configured).await
}

async fn commit(node: &Node) -> i64 {
    node.publish_one(&json!({"event_type": "commit"})).await
}

/// Retention empties the table; the next event's predecessor is still the
/// newest pruned id, so a resume from before the gap is told of it (and not
/// served from memory as if nothing were missing), and one at the gap's
/// edge is neither reset nor truncated.
#[actix_web::test]
async fn after_retention_empties_the_store_a_resume_across_the_gap_says_replay_truncated() {
    // Arrange: events kept for one second, three of them, all pruned.
    let db = TestDb::create().await;
    let node = start_alone(&db, |s| s.retention = Duration::from_secs(1)).await;
    let first = commit(&node).await;
    commit(&node).await;
    let newest = commit(&node).await;
    let pruned = || async {
        let (_, history) = node.get_json("/sse/history").await;
        match history["events"].as_array().map_or(0, Vec::len) {
            0 => Ok(()),
            left => Err(format!("{left} left")),
        }
    };
    poll(LONG, "retention to prune every event", pruned).await;
    // At the edge while the table is empty: nothing missed, nothing reset.
    let mut at_edge = node.open_stream(Some(newest)).await;
    at_edge.assert_quiet(Duration::from_millis(300)).await;

    // Act: one more event, then a resume from before the gap.
    let live = commit(&node).await;
    let mut resumed = node.open_stream(Some(first)).await;

    // Assert
    assert!(live > newest, "ids go on after pruning: {live} <= {newest}");
    let truncated = resumed.next_message(SHORT).await.expect("a first frame");
    assert!(truncated.is("replay_truncated"), "{truncated:?}");
    assert_eq!(truncated.json()["last_event_id"], first);
    assert_eq!(truncated.json()["oldest_available_id"], newest + 1);
    let next = resumed.next_message(SHORT).await.expect("the new event");
    assert_eq!(next.id_number(), Some(live), "{next:?}");
    let at_edge_next = at_edge
        .next_message(SHORT)
        .await
        .expect("the new event live");
    assert_eq!(at_edge_next.id_number(), Some(live), "{at_edge_next:?}");
}

/// A NUL in a task's own text (stage, message, error) is refused with 422
/// on every route that writes it, as bad input, not as a store failure:
/// the store stays healthy and the task unchanged.
#[actix_web::test]
async fn a_nul_in_a_tasks_text_is_422_and_leaves_the_store_healthy() {
    // Arrange
    let db = TestDb::create().await;
    let node = start_alone(&db, |_| {}).await;
    let client = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, body: Value| {
        client.request(method, node.url(path)).json(&body).send()
    };
    let created = send(reqwest::Method::POST, "/tasks", json!({"task_id": "t1"}))
        .await
        .expect("sent");
    assert_eq!(created.status().as_u16(), 201);
    let upload = |line: &str| {
        client
            .post(node.url("/tasks/t1/stream"))
            .header("content-type", "application/x-ndjson")
            .body(format!("{{\"delta\":\"a\"}}\n{line}\n"))
            .send()
    };

    // Act
    let refused = [
        send(
            reqwest::Method::POST,
            "/tasks",
            json!({"message": "m\u{0}"}),
        )
        .await,
        send(reqwest::Method::POST, "/tasks", json!({"stage": "\u{0}"})).await,
        send(
            reqwest::Method::PATCH,
            "/tasks/t1",
            json!({"stage": "s\u{0}"}),
        )
        .await,
        send(
            reqwest::Method::PATCH,
            "/tasks/t1",
            json!({"message": "m\u{0}"}),
        )
        .await,
        send(
            reqwest::Method::POST,
            "/tasks/t1/fail",
            json!({"error": "e\u{0}"}),
        )
        .await,
    ];
    let uploaded = upload(r#"{"progress":5,"message":"m\u0000"}"#)
        .await
        .expect("sent");

    // Assert
    for response in refused {
        let body = assert_error(response.expect("sent"), 422, "invalid_field").await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("U+0000"), "{body}");
    }
    assert_eq!(uploaded.status().as_u16(), 422);
    let body: Value = uploaded.json().await.expect("JSON");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("line 2:") && message.contains("U+0000"),
        "{body}"
    );
    let (status, health) = node.health().await;
    assert_eq!(
        (status, &health["status"]),
        (200, &json!("healthy")),
        "{health}"
    );
    let (_, task) = node.get_json("/tasks/t1").await;
    assert_eq!(task["status"], "running", "{task}");
    assert_eq!(task["message"], Value::Null, "{task}");
    assert_eq!(task["error"], Value::Null, "{task}");
}

/// One producer writing one request after another through a store stall
/// gets 503 (retry) for each write the stall stops, never 409 `conflict`:
/// that one says writers raced, which one producer per task never sees,
/// and a worker that takes a 409 for "stop" would abandon a healthy job.
#[actix_web::test]
async fn one_producers_writes_through_a_store_stall_are_503_and_never_409() {
    let db = TestDb::create().await;
    let node = start_alone(&db, |s| s.store_timeout = Duration::from_millis(700)).await;
    let client = reqwest::Client::new();
    let write = |method: reqwest::Method, path: &str, body: Value| {
        let request = client.request(method, node.url(path)).json(&body);
        async move {
            let response = request.send().await.expect("an answer");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };
    let (created, body) = write(
        reqwest::Method::POST,
        "/tasks",
        json!({"task_id": "stalled"}),
    )
    .await;
    assert_eq!(created, 201, "{body}");
    // A write before the stall: the task is in the instance's memory.
    let (started, body) = write(
        reqwest::Method::PATCH,
        "/tasks/stalled",
        json!({"progress": 5}),
    )
    .await;
    assert_eq!(started, 200, "{body}");
    let (locker, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("a session of its own");
    actix_rt::spawn(connection);
    locker
        .batch_execute("BEGIN; LOCK TABLE events, tasks IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("the tables locked");

    let mut answers = Vec::new();
    for progress in 1..=4 {
        answers.push(
            write(
                reqwest::Method::PATCH,
                "/tasks/stalled",
                json!({"progress": progress * 10}),
            )
            .await,
        );
    }
    locker.batch_execute("COMMIT").await.expect("unlocked");

    for (status, body) in &answers {
        assert_eq!(*status, 503, "a write the stall stopped: {body}");
        assert!(body.contains("store_unavailable"), "{body}");
    }
    let recovered = poll(LONG, "a write after the stall", || async {
        let (status, body) = write(
            reqwest::Method::PATCH,
            "/tasks/stalled",
            json!({"progress": 50}),
        )
        .await;
        if status == 200 {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    })
    .await;
    assert!(recovered.contains("\"progress\":50"), "{recovered}");
}
