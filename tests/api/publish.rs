//! Publishing: single and batch publish, increasing ids, `persist: false`,
//! the test event, any content type, idempotency keys, and payloads that try
//! to break the wire format.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{LONG, SHORT, assert_error, eventually, spawn_app, spawn_app_with};

#[actix_web::test]
async fn a_published_event_reaches_a_stream_with_its_id_type_and_compact_data() {
    // Arrange
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;
    let data = json!({"progress": 75, "message": "Update completed", "nested": {"a": [1, 2]}});

    // Act
    let id = app
        .publish_one(&json!({"event_type": "progress_update", "data": data}))
        .await;

    // Assert
    let event = stream.next_message(SHORT).await.expect("the event");
    assert_eq!(event.id_number(), Some(id));
    assert_eq!(event.event.as_deref(), Some("progress_update"));
    assert_eq!(event.json(), data);
    assert_eq!(
        event.data,
        serde_json::to_string(&event.json()).unwrap(),
        "not compact JSON"
    );
    assert_eq!(event.retry, None);
}

#[actix_web::test]
async fn data_defaults_to_an_empty_object_and_any_json_value_is_carried() {
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;

    app.publish_one(&json!({"event_type": "commit"})).await;
    for data in [json!("a string"), json!(42), json!([1, "two"]), json!(null)] {
        app.publish_one(&json!({"event_type": "commit", "data": data}))
            .await;
    }

    let events = stream.take_messages(5, SHORT).await;
    let received: Vec<Value> = events.iter().map(|e| e.json()).collect();
    assert_eq!(
        received,
        [
            json!({}),
            json!("a string"),
            json!(42),
            json!([1, "two"]),
            json!(null)
        ]
    );
}

#[actix_web::test]
async fn a_batch_publish_answers_strictly_increasing_ids_delivered_in_order() {
    // Arrange
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;
    let batch: Vec<Value> = (0..25)
        .map(|i| json!({"event_type": if i % 2 == 0 { "commit" } else { "file_change" }, "data": {"seq": i}}))
        .collect();

    // Act
    let ids: Vec<i64> = app
        .publish_ok(&Value::Array(batch))
        .await
        .into_iter()
        .map(|id| id.expect("stored events have ids"))
        .collect();
    let later = app.publish_one(&json!({"event_type": "commit"})).await;

    // Assert
    assert_eq!(ids.len(), 25);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not increasing: {ids:?}"
    );
    assert!(later > ids[24]);
    let events = stream.take_messages(26, SHORT).await;
    for (i, event) in events.iter().take(25).enumerate() {
        assert_eq!(event.id_number(), Some(ids[i]));
        assert_eq!(event.json()["seq"], i);
    }
    assert_eq!(events[25].id_number(), Some(later));
}

#[actix_web::test]
async fn unpersisted_events_arrive_live_without_an_id_and_are_never_replayed() {
    // Arrange
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;

    // Act
    let ids = app
        .publish_ok(&json!([
            {"event_type": "commit", "data": {"tag": "stored-1"}},
            {"event_type": "commit", "data": {"tag": "live"}, "persist": false},
            {"event_type": "commit", "data": {"tag": "stored-2"}},
        ]))
        .await;
    let alone = app
        .publish_ok(&json!({"event_type": "text", "data": {"delta": "hi"}, "persist": false}))
        .await;

    // Assert
    let (first, second) = (ids[0].expect("stored id"), ids[2].expect("stored id"));
    assert_eq!(ids[1], None);
    assert!(first < second);
    assert_eq!(alone, [None]);
    let events = stream.take_messages(4, SHORT).await;
    let seen: Vec<(Option<i64>, String)> = events
        .iter()
        .map(|e| {
            (
                e.id_number(),
                e.json()["tag"].as_str().unwrap_or("text").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some(first), "stored-1".into()),
            (None, "live".into()),
            (Some(second), "stored-2".into()),
            (None, "text".into()),
        ]
    );
    // A resume replays the stored ones only.
    let mut resumed = app
        .open_stream(
            "/sse/events",
            &[("Last-Event-ID", &(first - 1).to_string())],
        )
        .await;
    let replayed = resumed.take_messages(2, SHORT).await;
    assert_eq!(replayed[0].id_number(), Some(first));
    assert_eq!(replayed[1].id_number(), Some(second));
    resumed.assert_quiet(Duration::from_millis(200)).await;
}

#[actix_web::test]
async fn the_test_event_defaults_to_system_status() {
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;

    let response = app.post_raw("/sse/test-event", "", None).await;
    assert_eq!(response.status().as_u16(), 202);
    let answer: Value = response.json().await.expect("JSON");
    let id = answer["id"].as_i64().expect("an id");
    let typed = app
        .post_json(
            "/sse/test-event",
            &json!({"event_type": "risk_alert", "data": {"x": 1}}),
        )
        .await;
    assert_eq!(typed.status().as_u16(), 202);

    let events = stream.take_messages(2, SHORT).await;
    assert_eq!(events[0].event.as_deref(), Some("system_status"));
    assert_eq!(events[0].id_number(), Some(id));
    assert_eq!(events[1].event.as_deref(), Some("risk_alert"));
    assert_eq!(events[1].json(), json!({"x": 1}));
}

/// The test event's fields mean what they mean on `/sse/publish`: a
/// repeated idempotency key is stored and delivered once (the first id),
/// a wrong type for it is 422, and a task_id must name a task (one no task
/// can have is 400, as on the task API).
#[actix_web::test]
async fn the_test_event_keeps_the_publish_rules_for_its_fields() {
    // Arrange
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;
    let keyed = json!({"idempotency_key": "same"});

    // Act
    let first: Value = app
        .post_json("/sse/test-event", &keyed)
        .await
        .json()
        .await
        .expect("JSON");
    let again: Value = app
        .post_json("/sse/test-event", &keyed)
        .await
        .json()
        .await
        .expect("JSON");
    let wrong_type = app
        .post_json("/sse/test-event", &json!({"idempotency_key": 5}))
        .await;
    let unknown_task = app
        .post_json("/sse/test-event", &json!({"task_id": "nope"}))
        .await;
    // `.` is a project's or a user's, never a task's.
    let impossible_task = app
        .post_json("/sse/test-event", &json!({"task_id": "a.b"}))
        .await;
    let impossible_published = app
        .post_json(
            "/sse/publish",
            &json!({"event_type": "commit", "data": {}, "task_id": "a b"}),
        )
        .await;

    // Assert
    assert_eq!(first["id"], again["id"], "{first} {again}");
    assert_error(wrong_type, 422, "invalid_field").await;
    assert_error(unknown_task, 404, "task_not_found").await;
    for impossible in [impossible_task, impossible_published] {
        let error = assert_error(impossible, 400, "invalid_task_id").await;
        assert_eq!(
            error["error"]["message"],
            "task_id: a task id is 1 to 128 letters, digits, _ or -"
        );
    }
    let delivered = stream.take_messages(1, SHORT).await;
    assert_eq!(delivered[0].id_number(), first["id"].as_i64());
    stream.assert_quiet(Duration::from_millis(200)).await;
}

#[actix_web::test]
async fn a_publish_is_accepted_whatever_the_content_type() {
    // curl -d sends application/x-www-form-urlencoded.
    let app = spawn_app().await;
    let body = r#"{"event_type":"commit","data":{"via":"curl"}}"#;
    for content_type in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("application/json; charset=utf-8"),
    ] {
        let response = app.post_raw("/sse/publish", body, content_type).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 202, "content type {content_type:?}: {text}");
    }
}

#[actix_web::test]
async fn a_repeated_idempotency_key_is_stored_and_delivered_once() {
    // Arrange
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;
    let event =
        json!({"event_type": "commit", "data": {"tag": "once"}, "idempotency_key": "deploy-42"});

    // Act: twice in a row, then twice at the same moment, then a marker.
    let first = app.publish_one(&event).await;
    let again = app.publish_one(&event).await;
    let concurrent =
        json!({"event_type": "commit", "data": {"tag": "concurrent"}, "idempotency_key": "k-2"});
    let (a, b) = tokio::join!(app.publish_one(&concurrent), app.publish_one(&concurrent));
    let in_one_batch = app
        .publish_ok(&json!([
            {"event_type": "commit", "data": {"tag": "batched"}, "idempotency_key": "k-3"},
            {"event_type": "commit", "data": {"tag": "batched"}, "idempotency_key": "k-3"},
        ]))
        .await;
    let marker = app
        .publish_one(&json!({"event_type": "commit", "data": {"tag": "marker"}}))
        .await;

    // Assert
    assert_eq!(first, again, "the repeat answers the first id");
    assert_eq!(a, b, "concurrent repeats answer one id");
    assert_eq!(
        in_one_batch[0], in_one_batch[1],
        "a repeat inside a batch answers the first id"
    );
    let events = stream.take_messages(4, SHORT).await;
    let seen: Vec<(Option<i64>, String)> = events
        .iter()
        .map(|e| {
            (
                e.id_number(),
                e.json()["tag"].as_str().expect("tag").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some(first), "once".into()),
            (Some(a), "concurrent".into()),
            (in_one_batch[0], "batched".into()),
            (Some(marker), "marker".into()),
        ]
    );
    stream.assert_quiet(Duration::from_millis(200)).await;
}

#[actix_web::test]
async fn line_breaks_in_published_data_never_split_or_forge_a_frame() {
    // Arrange
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;
    let hostile = "a\n\nid: 999999\nevent: shutdown\r\ndata: forged\rretry: 1\n\n";
    let data = json!({"text": hostile, "list": [hostile]});

    // Act
    let id = app
        .publish_one(&json!({"event_type": "commit", "data": data}))
        .await;
    let string_id = app
        .publish_one(&json!({"event_type": "commit", "data": hostile}))
        .await;

    // Assert
    let events = stream.take_messages(2, SHORT).await;
    assert_eq!(events[0].id_number(), Some(id));
    assert_eq!(events[0].event.as_deref(), Some("commit"));
    assert_eq!(events[0].retry, None);
    assert_eq!(events[0].json(), data);
    assert_eq!(events[1].id_number(), Some(string_id));
    assert_eq!(
        events[1].json(),
        json!(hostile),
        "a JSON string is sent quoted"
    );
    stream.assert_quiet(Duration::from_millis(200)).await;
}

/// The idempotency window is ten minutes: a key repeated at nine minutes
/// is still the first event, one repeated past ten is a new event,
/// stored and delivered. The stored rows are aged by hand, as the clock
/// would have aged them.
#[actix_web::test]
async fn an_idempotency_key_is_remembered_for_ten_minutes_and_no_longer() {
    use diesel::RunQueryDsl;
    use sse_broker::config::DatabaseUrl;

    let app = spawn_app().await;
    let DatabaseUrl::Sqlite { path } = &app.settings.database else {
        panic!("an SQLite broker");
    };
    let mut connection = crate::helpers::outside_sqlite(&path.to_string_lossy());
    let mut age = |id: i64, ms: i64| {
        diesel::sql_query(format!(
            "UPDATE events SET created_at_ms = created_at_ms - {ms} WHERE id = {id}"
        ))
        .execute(&mut connection)
        .expect("the row is aged");
    };
    let event =
        |key: &str| json!({"event_type": "commit", "data": {"key": key}, "idempotency_key": key});

    let within = app.publish_one(&event("nine-minutes")).await;
    age(within, 9 * 60_000);
    let past = app.publish_one(&event("eleven-minutes")).await;
    age(past, 10 * 60_000 + 60_000);
    let mut stream = app
        .open_stream("/sse/events", &[("Last-Event-ID", &past.to_string())])
        .await;

    assert_eq!(
        app.publish_one(&event("nine-minutes")).await,
        within,
        "a repeat within ten minutes answers the first id"
    );
    let again = app.publish_one(&event("eleven-minutes")).await;
    assert!(
        again > past,
        "a repeat past ten minutes is a new event: {again} after {past}"
    );
    let delivered = stream
        .next_message(crate::helpers::SHORT)
        .await
        .expect("the new event delivered");
    assert_eq!(delivered.id_number(), Some(again), "{delivered:?}");
    assert_eq!(delivered.json()["key"], "eleven-minutes", "{delivered:?}");
    stream
        .assert_quiet(std::time::Duration::from_millis(300))
        .await;
}

/// A retention shorter than the idempotency window does not shorten the
/// window: the key lives on the event's row, so retention spares a keyed
/// event for ten minutes, and a retry within them is still the first one.
#[actix_web::test]
async fn a_retention_shorter_than_ten_minutes_still_remembers_keys_for_ten() {
    let app = spawn_app_with(|s| s.retention = Duration::from_secs(1)).await;
    let keyed = json!({"event_type": "commit", "data": {"n": 1}, "idempotency_key": "ret-1"});
    let first = app.publish_one(&keyed).await;
    let unkeyed = app.publish_one(&json!({"event_type": "commit"})).await;
    eventually(
        LONG,
        "retention to prune the event without a key",
        || async {
            let history = app.get_json("/sse/history").await;
            let ids: Vec<i64> = history["events"]
                .as_array()?
                .iter()
                .filter_map(|e| e["id"].as_i64())
                .collect();
            (!ids.contains(&unkeyed)).then_some(ids)
        },
    )
    .await;
    let mut stream = app
        .open_stream("/sse/events", &[("Last-Event-ID", &unkeyed.to_string())])
        .await;

    assert_eq!(
        app.publish_one(&keyed).await,
        first,
        "the retry is the first event"
    );
    stream.assert_quiet(Duration::from_millis(300)).await;
}
