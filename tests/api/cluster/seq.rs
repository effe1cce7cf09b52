//! A producer's `seq` across instances (CONTRACT §7: a retried write never
//! doubles text): an instance that wrote a task earlier must not take a
//! retry of a delta another instance has accepted since, nor refuse the
//! producer's next one.

use serde_json::{Value, json};

use super::{
    harness::{Node, TestDb, shared_redis_url},
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
    let (_, history) = a.get_json("/sse/history?event_types=text").await;
    let texts: Vec<&str> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["data"]["delta"].as_str().expect("a delta"))
        .collect();
    assert_eq!(texts, ["a", "b", "c", "d"]);
}
