//! A restart on the same SQLite file: stored events, ids, idempotency keys
//! and a task's last accepted `seq` survive it; and a file deleted under a
//! running broker takes no acknowledged write with it.

use std::time::Duration;

use serde_json::json;

use sse_broker::config::DatabaseUrl;

use crate::helpers::{SHORT, assert_error, eventually, spawn_app};

#[actix_web::test]
async fn events_published_before_a_restart_replay_after_it() {
    // Arrange
    let mut app = spawn_app().await;
    let mut published = Vec::new();
    for n in 0..10 {
        let event_type = if n % 3 == 0 { "file_change" } else { "commit" };
        let id = app
            .publish_one(&json!({"event_type": event_type, "data": {"n": n}}))
            .await;
        published.push((id, event_type, n));
    }

    // Act
    app.restart().await;

    // Assert: everything replays from 0, with the same ids and data.
    assert_ne!(app.port, 0);
    let mut everything = app
        .open_stream("/sse/events", &[("Last-Event-ID", "0")])
        .await;
    let replayed = everything.take_messages(10, SHORT).await;
    for (event, (id, event_type, n)) in replayed.iter().zip(&published) {
        assert_eq!(event.id_number(), Some(*id));
        assert_eq!(event.event.as_deref(), Some(*event_type));
        assert_eq!(event.json(), json!({"n": n}));
    }
    // From an earlier id, filtered.
    let resume_at = published[4].0;
    let mut commits = app
        .open_stream(
            "/sse/events?event_types=commit",
            &[("Last-Event-ID", &resume_at.to_string())],
        )
        .await;
    let expected: Vec<i64> = published
        .iter()
        .filter(|(id, t, _)| *id > resume_at && *t == "commit")
        .map(|(id, _, _)| *id)
        .collect();
    let got: Vec<i64> = commits
        .take_messages(expected.len(), SHORT)
        .await
        .iter()
        .map(|e| e.id_number().expect("an id"))
        .collect();
    assert_eq!(got, expected);
    // Ids keep increasing across the restart.
    let newest = app.publish_one(&json!({"event_type": "commit"})).await;
    assert!(newest > published[9].0);
    for stream in [&mut everything, &mut commits] {
        let event = stream.next_message(SHORT).await.expect("the live event");
        assert_eq!(event.id_number(), Some(newest));
        stream.assert_quiet(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn an_idempotency_key_is_remembered_across_a_restart() {
    let mut app = spawn_app().await;
    let event = json!({"event_type": "commit", "idempotency_key": "survives-restart"});
    let before = app.publish_one(&event).await;

    app.restart().await;

    let mut stream = app.open_stream("/sse/events", &[]).await;
    let after = app.publish_one(&event).await;
    assert_eq!(after, before);
    stream.assert_quiet(Duration::from_millis(300)).await;
}

#[actix_web::test]
async fn a_retried_seq_after_a_restart_is_still_ignored() {
    // Arrange: seq 1-3 accepted, then the broker restarts, so the task is
    // read back from the store. The first text write also writes the task's
    // row; the second, within a second of it, only its `text` event (a text
    // write refreshes the row at most once a second), so seq 3 is known
    // from the event alone.
    let mut app = spawn_app().await;
    let created = app.post_json("/tasks", &json!({"task_id": "gen"})).await;
    assert_eq!(created.status().as_u16(), 201);
    let first = json!({"delta": "a", "seq": 1});
    let written = app.post_json("/tasks/gen/text", &first).await;
    assert_eq!(written.status().as_u16(), 202);
    let deltas = json!({"deltas": [{"delta": "b", "seq": 2}, {"delta": "c", "seq": 3}]});
    let written = app.post_json("/tasks/gen/text", &deltas).await;
    assert_eq!(written.status().as_u16(), 202);
    app.restart().await;

    // Act: the producer retries its last write, then goes on.
    let retried = app
        .post_json("/tasks/gen/text", &json!({"delta": "c", "seq": 3}))
        .await;
    let retried: serde_json::Value = retried.json().await.expect("JSON");
    let next = app
        .post_json("/tasks/gen/text", &json!({"delta": "d", "seq": 4}))
        .await;
    assert_eq!(next.status().as_u16(), 202);

    // Assert
    assert_eq!(retried["ids"], json!([null]), "the retry is ignored");
    app.post_json("/tasks/gen/complete", &json!({})).await;
    let mut viewer = app.open_stream("/tasks/gen/events", &[]).await;
    let text: String = viewer
        .read_to_end(SHORT)
        .await
        .iter()
        .filter(|e| e.is("text"))
        .map(|e| e.json()["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(text, "abcd");
}

#[actix_web::test]
async fn a_demo_generation_cut_off_by_a_restart_is_failed_soon_after_it() {
    // Arrange: a demo generation under way, the orphan timeout far away.
    let mut app = crate::helpers::spawn_app_with(|s| {
        s.task_orphan_timeout = Duration::from_secs(3600);
    })
    .await;
    let started = app
        .post_json("/demo/generations", &json!({"prompt": "restart me"}))
        .await;
    assert!(started.status().is_success(), "{}", started.status());
    let started: serde_json::Value = started.json().await.expect("the demo task");
    let task_id = started["task_id"].as_str().expect("a task id").to_owned();
    let task_path = format!("/tasks/{task_id}");
    crate::helpers::eventually(SHORT, "the demo to write text", || {
        let app = &app;
        let path = &task_path;
        async move { (app.get_json(path).await["stage"] == "writing").then_some(()) }
    })
    .await;

    // Act
    app.restart().await;

    // Assert: failed once it has been silent longer than a live demo ever is.
    let task = crate::helpers::eventually(
        Duration::from_secs(15),
        "the cut-off demo task to be failed",
        || {
            let app = &app;
            let path = &task_path;
            async move {
                let task = app.get_json(path).await;
                (task["status"] != "running" && task["status"] != "pending").then_some(task)
            }
        },
    )
    .await;
    assert_eq!(task["status"], "failed", "{task}");
    assert!(
        task["error"]
            .as_str()
            .is_some_and(|e| e.contains("demo producer")),
        "{task}"
    );
}

/// Two brokers on one SQLite file would each route only their own events
/// while their ids interleave: a client's resume point would skip the
/// other's for good. The second stops at start, saying why; once the
/// first has stopped, the file is free again.
#[actix_web::test]
async fn a_second_broker_on_the_same_sqlite_file_stops_at_start() {
    use crate::helpers::BrokerProcess;
    // Arrange
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let database = scratch.path().join("shared.db");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let mut first = BrokerProcess::spawn(&database, scratch.path().join("first.log"));
    first.wait_until_ready(&client).await;

    // Act
    let mut second = BrokerProcess::spawn(&database, scratch.path().join("second.log"));
    let status = second.wait_for_exit(SHORT).await;

    // Assert
    assert_eq!(status.code(), Some(1), "{}", second.logs());
    assert!(
        second.logs().contains("another sse-broker serves"),
        "{}",
        second.logs()
    );
    first.sigterm();
    assert_eq!(first.wait_for_exit(SHORT).await.code(), Some(0));
    let mut third = BrokerProcess::spawn(&database, scratch.path().join("third.log"));
    third.wait_until_ready(&client).await;
}

/// SQLite keeps writing to the file it opened: deleted or replaced under a
/// running broker, every write went on being acknowledged into a file
/// nothing reads again, lost at the next start. The broker refuses them.
#[actix_web::test]
async fn writes_to_a_sqlite_file_deleted_while_running_are_refused_not_lost() {
    // Arrange
    let app = spawn_app().await;
    app.publish_one(&json!({"event_type": "commit"})).await;
    let DatabaseUrl::Sqlite { path } = &app.settings.database else {
        panic!("the tests' store is SQLite");
    };

    // Act
    for file in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{file}", path.display()));
    }

    // Assert: within the watch's second, publishes are refused as the
    // store being unavailable (the log says why), for good; /health says
    // unhealthy.
    let refused = eventually(SHORT, "a publish to be refused", || async {
        let answer = app.publish(&json!({"event_type": "commit"})).await;
        (answer.status().as_u16() == 503).then_some(answer)
    })
    .await;
    assert_error(refused, 503, "store_unavailable").await;
    let again = app.publish(&json!({"event_type": "commit"})).await;
    assert_error(again, 503, "store_unavailable").await;
    let health = app.get("/health").await;
    assert_eq!(health.status().as_u16(), 503);
    // With no client writing, the broker's own test write keeps failing:
    // the alert is renewed every second, never fading to degraded (a load
    // balancer would put the instance back for half of every minute).
    eventually(SHORT, "the write probe's failure", || async {
        let response = app.get("/health").await;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.ok()?;
        (status == 503
            && body["checks"]["store"]["writes"]["last_failure"]["operation"] == "write_probe")
            .then_some(())
    })
    .await;
}

/// Retention emptied the table; after a restart a stream is admitted at
/// the last id the store gave, not at 0: resuming from its `connected` id
/// must not be told events were lost (an emptied table's `max(id)` is 0).
#[actix_web::test]
async fn a_restart_on_a_store_retention_emptied_admits_streams_at_the_last_id() {
    // Arrange
    let mut app = crate::helpers::spawn_app_with(|s| s.retention = Duration::from_secs(1)).await;
    let mut last = 0;
    for _ in 0..3 {
        last = app.publish_one(&json!({"event_type": "commit"})).await;
    }
    eventually(
        crate::helpers::LONG,
        "retention to prune every event",
        || {
            let history = app.api_client.get(app.url("/sse/history")).send();
            async move {
                let page: serde_json::Value = history.await.ok()?.json().await.ok()?;
                page["events"].as_array()?.is_empty().then_some(())
            }
        },
    )
    .await;

    // Act
    app.restart().await;

    // Assert
    let response = app.stream_response("/sse/events", &[]).await;
    let mut stream = crate::helpers::EventStream::new(response);
    let connected = stream.next_event(SHORT).await.expect("the connected frame");
    assert!(connected.is("connected"), "{connected:?}");
    assert_eq!(
        connected.id_number(),
        Some(last),
        "admitted at the last id given"
    );
    let mut resumed = app
        .open_stream("/sse/events", &[("Last-Event-ID", &last.to_string())])
        .await;
    resumed.assert_quiet(Duration::from_millis(300)).await;
}

/// A SQLite file damaged in its middle (a disk fault, a bad copy) opens,
/// and pages elsewhere in it still read and take writes: once a read finds
/// the damage (a history page answers 503), `/health` stays unhealthy,
/// naming it, however much succeeds after, until the file is mended.
#[actix_web::test]
async fn a_sqlite_file_found_damaged_keeps_health_unhealthy_whatever_succeeds_after() {
    // Arrange: 4,000 events, then garbage over the middle of the file.
    let mut app = spawn_app().await;
    let padding = "x".repeat(200);
    for batch in 0..40 {
        let events: Vec<serde_json::Value> = (0..100)
            .map(
                |n| json!({"event_type": "commit", "data": {"n": batch * 100 + n, "pad": padding}}),
            )
            .collect();
        assert_eq!(app.publish(&json!(events)).await.status().as_u16(), 202);
    }
    app.stop().await;
    let DatabaseUrl::Sqlite { path } = app.settings.database.clone() else {
        panic!("the tests' store is SQLite");
    };
    // Every page into the main file first, as a stopped SQLite leaves it.
    // The stopped broker's last connections may close a moment after
    // `stop` returns (on a loaded machine): until then a truncating
    // checkpoint is busy and leaves the WAL, so it is tried again.
    let wal_bytes = || std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len());
    for _ in 0..50 {
        use diesel::RunQueryDsl;
        let mut connection = crate::helpers::outside_sqlite(&path.to_string_lossy());
        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut connection)
            .expect("checkpointed");
        drop(connection);
        if wal_bytes() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(wal_bytes(), 0, "every page is in the main file");
    let mut bytes = std::fs::read(&path).expect("the file");
    let length = bytes.len();
    bytes[length / 3..length / 2].fill(0xA5);
    std::fs::write(&path, bytes).expect("written");
    app.start().await;

    // Act: read the history until a page cannot be read; publish after.
    let mut after = 0;
    let refused = loop {
        let page = app
            .get(&format!("/sse/history?after={after}&limit=500"))
            .await;
        if page.status().as_u16() == 503 {
            break true;
        }
        let page: serde_json::Value = page.json().await.expect("a page");
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break false,
        }
    };
    app.publish(&json!({"event_type": "commit"})).await;

    // Assert: still unhealthy after the sampler's probes read the store
    // fine (a few seconds), with the damage named.
    assert!(refused, "a history page read the damaged pages");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let health = app.get("/health").await;
    assert_eq!(health.status().as_u16(), 503);
    let health: serde_json::Value = health.json().await.expect("JSON");
    let alerts = health["alerts"].to_string();
    assert!(alerts.contains("damaged"), "{health}");
}
