//! A task written through several instances, each holding it in memory:
//! a producer's `seq` holds across them (CONTRACT §7: a retried write never
//! doubles text), and one instance's stale memory never overwrites what
//! another wrote to the task's row. Retention on PostgreSQL spares a
//! running generation's text.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    harness::{LONG, Node, TestDb, cluster_name, poll, settings, shared_redis_url},
    start_cluster,
};

/// `POST /tasks/gen/text` with one numbered delta: the id it answers
/// (`None` for a delta ignored as a retry).
async fn numbered(node: &Node, delta: &str, seq: u64) -> Option<i64> {
    let response = reqwest::Client::new()
        .post(node.url("/tasks/gen/text"))
        .json(&json!({"delta": delta, "seq": seq}))
        .send()
        .await
        .expect("the write sent");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON answer");
    assert_eq!(status, 202, "seq {seq} on {}: {body}", node.url(""));
    body["ids"][0].as_i64()
}

/// The deltas of the stored `text` events, oldest first.
async fn stored_text(node: &Node) -> Vec<String> {
    let (_, history) = node.get_json("/sse/history?event_types=text").await;
    crate::generations::text_deltas(&history)
}

#[actix_web::test]
async fn a_seq_accepted_on_one_instance_is_a_retry_on_another_that_wrote_the_task_before() {
    // Arrange: both instances hold the task in memory, each having
    // accepted a delta of it.
    let db = TestDb::create().await;
    let nodes = start_cluster(&db, &shared_redis_url(), 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let created = reqwest::Client::new()
        .post(a.url("/tasks"))
        .json(&json!({"task_id": "gen"}))
        .send()
        .await
        .expect("created");
    assert_eq!(created.status().as_u16(), 201);
    assert!(numbered(b, "a", 1).await.is_some());
    assert!(numbered(a, "b", 2).await.is_some());

    // Act: b, which last knew seq 1, is sent the retry of seq 2; then the
    // producer goes on, alternating instances.
    let retried_on_b = numbered(b, "b", 2).await;
    let retried_on_a = numbered(a, "a", 1).await;
    let next_on_b = numbered(b, "c", 3).await;
    let next_on_a = numbered(a, "d", 4).await;

    // Assert: retries ignored, new deltas taken, the text exact.
    assert_eq!((retried_on_b, retried_on_a), (None, None));
    assert!(next_on_b.is_some() && next_on_a.is_some());
    assert_eq!(stored_text(a).await, ["a", "b", "c", "d"]);
}

/// Sends `request`: its status and body.
async fn send(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Three instances; task `gen` created through a, one delta streamed
/// through b (so b holds the task in memory), then progress 40 and stage
/// `writing` set through a: b's memory of the row is stale, and c never
/// held the task (it answers from the row).
async fn task_held_by_b_then_changed_through_a(db: &TestDb) -> Vec<Node> {
    let nodes = start_cluster(db, &shared_redis_url(), 3).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let client = reqwest::Client::new();
    let created = send(
        client
            .post(a.url("/tasks"))
            .json(&json!({"task_id": "gen"})),
    )
    .await;
    assert_eq!(created.0, 201, "{created:?}");
    let streamed = send(
        client
            .post(b.url("/tasks/gen/text"))
            .json(&json!({"delta": "a"})),
    )
    .await;
    assert_eq!(streamed.0, 202, "{streamed:?}");
    let patched = send(
        client
            .patch(a.url("/tasks/gen"))
            .json(&json!({"progress": 40, "stage": "writing"})),
    )
    .await;
    assert_eq!(patched.0, 200, "{patched:?}");
    nodes
}

#[actix_web::test]
async fn a_progress_written_through_one_instance_survives_another_instances_row_refresh() {
    // Arrange
    let db = TestDb::create().await;
    let nodes = task_held_by_b_then_changed_through_a(&db).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let client = reqwest::Client::new();

    // Act: b's next delta, a row refresh later (once a second), rewrites
    // the row from b's memory, which never saw the progress.
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let text = send(
        client
            .post(b.url("/tasks/gen/text"))
            .json(&json!({"delta": "b"})),
    );
    assert_eq!(text.await.0, 202);

    // Assert: the row, and b's memory.
    let (_, task) = c.get_json("/tasks/gen").await;
    assert_eq!(
        (&task["progress"], &task["stage"], &task["status"]),
        (&json!(40.0), &json!("writing"), &json!("running")),
        "{task}"
    );
    let (_, held) = b.get_json("/tasks/gen").await;
    assert_eq!(held["progress"], json!(40.0), "{held}");
    assert_eq!(stored_text(a).await, ["a", "b"]);
}

/// A status poller behind a load balancer: every instance answers `GET`
/// and `HEAD /tasks/{id}` with the change made through another, also the
/// one whose memory of the task is older than the row (b, until its own
/// next row write).
#[actix_web::test]
async fn every_instance_reads_a_change_made_through_another_also_one_holding_the_task() {
    // Arrange
    let db = TestDb::create().await;
    let nodes = task_held_by_b_then_changed_through_a(&db).await;
    let client = reqwest::Client::new();

    // Act
    let mut read = Vec::new();
    for node in &nodes {
        let (_, task) = node.get_json("/tasks/gen").await;
        let head = client
            .head(node.url("/tasks/gen"))
            .send()
            .await
            .expect("HEAD sent");
        let progress = head.headers()["x-task-progress"]
            .to_str()
            .unwrap()
            .to_owned();
        read.push((task["progress"].clone(), task["stage"].clone(), progress));
    }

    // Assert
    for (at, (progress, stage, head)) in read.iter().enumerate() {
        assert_eq!(
            (progress, stage, head.as_str()),
            (&json!(40.0), &json!("writing"), "40"),
            "instance {at}"
        );
    }
}

#[actix_web::test]
async fn a_change_through_an_instance_with_a_stale_memory_is_applied_to_the_row_another_wrote() {
    // Arrange
    let db = TestDb::create().await;
    let nodes = task_held_by_b_then_changed_through_a(&db).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let client = reqwest::Client::new();

    // Act: a progress through b (its write is stale, so b reloads the task
    // and asks the change again), then a completion through b.
    let progressed = send(
        client
            .patch(b.url("/tasks/gen"))
            .json(&json!({"progress": 60})),
    )
    .await;
    let completed = send(
        client
            .post(b.url("/tasks/gen/complete"))
            .json(&json!({"result": {"ok": true}})),
    )
    .await;

    // Assert: both answered as if b had been current, and the row keeps
    // a's stage beside b's progress and result.
    assert_eq!(progressed.0, 200, "{progressed:?}");
    let answered: Value = serde_json::from_str(&progressed.1).expect("a JSON task");
    assert_eq!(
        (&answered["progress"], &answered["stage"]),
        (&json!(60.0), &json!("writing")),
        "{answered}"
    );
    assert_eq!(completed.0, 200, "{completed:?}");
    let (_, task) = c.get_json("/tasks/gen").await;
    assert_eq!(
        (&task["status"], &task["stage"], &task["result"]),
        (&json!("completed"), &json!("writing"), &json!({"ok": true})),
        "{task}"
    );
    assert_eq!(stored_text(a).await, ["a"]);
}

/// Retention on PostgreSQL spares an unfinished task's events, as on SQLite
/// (`replay::a_generation_running_longer_than_retention_keeps_its_whole_text`),
/// and takes them once the task has finished.
#[actix_web::test]
async fn retention_on_postgres_spares_a_running_generation_until_it_ends() {
    // Arrange: events kept for one second; a generation's first text and an
    // event of no task, both older than that before the generation goes on.
    let db = TestDb::create().await;
    let mut configured = settings(db.database_url(), None, &cluster_name(), "pg");
    configured.retention = Duration::from_secs(1);
    let node = Node::start(configured).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| client.post(node.url(path)).json(&body).send();
    let created = post("/tasks", json!({"task_id": "gen"}))
        .await
        .expect("sent");
    assert_eq!(created.status().as_u16(), 201);
    numbered(&node, "early ", 1).await;
    node.publish_one(&json!({"event_type": "commit"})).await;
    let others_pruned = || async {
        let (_, history) = node.get_json("/sse/history?event_types=commit").await;
        let left = history["events"].as_array().map_or(0, Vec::len);
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} left"))
        }
    };
    poll(
        LONG,
        "retention to prune the event of no task",
        others_pruned,
    )
    .await;

    // Act
    numbered(&node, "late", 2).await;

    // Assert: the running generation's text is whole.
    assert_eq!(stored_text(&node).await, ["early ", "late"]);
    // Once it ends, its old events go with the next prune.
    let done = post("/tasks/gen/complete", json!({})).await.expect("sent");
    assert_eq!(done.status().as_u16(), 200);
    let text_pruned = || async {
        let text = stored_text(&node).await;
        if text.is_empty() {
            Ok(())
        } else {
            Err(format!("{text:?}"))
        }
    };
    poll(
        LONG,
        "retention to prune the finished task's text",
        text_pruned,
    )
    .await;
}

/// An AI SDK answer in two uploads to one instance, text written through
/// the other between them: the second upload's opening `text-end` parts
/// the text before it from its own, though its instance last saw the task
/// with no text.
#[actix_web::test]
async fn a_text_parts_end_opening_an_upload_holds_though_another_instance_wrote_the_text() {
    // Arrange: `a` saw the task's first upload (no text); `b` wrote the
    // first paragraph.
    let db = TestDb::create().await;
    let nodes = start_cluster(&db, &shared_redis_url(), 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let client = reqwest::Client::new();
    let upload = |node: &Node, parts: &[Value]| {
        let body: String = parts
            .iter()
            .map(|part| format!("data: {part}\n\n"))
            .collect();
        client
            .post(node.url("/tasks/paragraphs/stream"))
            .header("Content-Type", "text/event-stream")
            .body(body)
            .send()
    };
    let created = client
        .post(a.url("/tasks"))
        .json(&json!({"task_id": "paragraphs"}))
        .send()
        .await
        .expect("created");
    assert_eq!(created.status().as_u16(), 201);
    let first = upload(
        a,
        &[json!({"type": "start"}), json!({"type": "start-step"})],
    );
    assert_eq!(first.await.expect("sent").status().as_u16(), 200);
    let written = client
        .post(b.url("/tasks/paragraphs/text"))
        .json(&json!({"delta": "One."}))
        .send()
        .await
        .expect("sent");
    assert_eq!(written.status().as_u16(), 202);

    // Act: the rest of the answer, to `a`.
    let rest = [
        json!({"type": "text-end", "id": "t1"}),
        json!({"type": "text-start", "id": "t2"}),
        json!({"type": "text-delta", "id": "t2", "delta": "Two."}),
        json!({"type": "text-end", "id": "t2"}),
        json!({"type": "finish-step"}),
        json!({"type": "finish"}),
    ];
    assert_eq!(upload(a, &rest).await.expect("sent").status().as_u16(), 200);

    // Assert: the paragraphs apart in the store, as every viewer reads them.
    let (_, history) = b
        .get_json("/sse/history?event_types=text,text_end&limit=10")
        .await;
    let kinds: Vec<_> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["event_type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["text", "text_end", "text"], "{history}");
    assert_eq!(stored_text(b).await, ["One.", "Two."]);
}
