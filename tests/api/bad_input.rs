//! Bad input: every refusal has its status and JSON error code, and nothing
//! internal leaks into the message.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{SHORT, assert_error, eventually, labelled_sum, spawn_app, spawn_app_with};

#[actix_web::test]
async fn malformed_json_is_400_malformed_json() {
    let app = spawn_app().await;
    for body in [
        r#"{"event_type":"#,
        "[1, 2",
        "not json at all",
        r#"{"event_type":"commit",}"#,
        "",
        "   ",
    ] {
        let response = app
            .post_raw("/sse/publish", body, Some("application/json"))
            .await;
        assert_error(response, 400, "malformed_json").await;
    }
    // A field refused before the break is not the answer: the document is
    // malformed whatever its first key.
    for (path, body) in [
        ("/tasks", r#"{"a":"#),
        ("/tasks", r#"{"a":1}}}}"#),
        ("/sse/test-event", r#"{"zz":[[["#),
    ] {
        let response = app.post_raw(path, body, Some("application/json")).await;
        assert_error(response, 400, "malformed_json").await;
    }
}

#[actix_web::test]
async fn wrong_field_types_and_a_missing_event_type_are_422_invalid_field() {
    let app = spawn_app().await;
    for body in [
        json!({}),
        json!({"data": {"a": 1}}),
        json!({"event_type": 5}),
        json!({"event_type": null}),
        json!({"event_type": "commit", "persist": "yes"}),
        json!({"event_type": "commit", "project_id": 5}),
        json!({"event_type": "commit", "user_id": ["alice"]}),
        json!({"event_type": "commit", "project_id": "has space"}),
        json!({"event_type": "commit", "project_id": "line\r\nbreak"}),
        json!({"event_type": "commit", "user_id": "x".repeat(200)}),
        json!("just a string"),
        json!(42),
        json!([]),
        json!([{"event_type": "commit"}, {"event_type": 1}]),
    ] {
        let response = app.publish(&body).await;
        assert_error(response, 422, "invalid_field").await;
    }
}

#[actix_web::test]
async fn a_misspelt_field_is_422_naming_it_and_nothing_is_stored_or_sent() {
    // Ignored, `projectId` would have made a tenant's event everyone's.
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;
    let writes: [(&str, Value, &str); 9] = [
        (
            "/sse/publish",
            json!({"event_type": "commit", "projectId": "p1"}),
            "projectId",
        ),
        (
            "/sse/publish",
            json!([{"event_type": "commit", "user": "bob"}]),
            "user",
        ),
        ("/sse/test-event", json!({"userId": "bob"}), "userId"),
        (
            "/tasks",
            json!({"task_id": "typo", "projectId": "p1"}),
            "projectId",
        ),
        ("/tasks/typo/complete", json!({"resutl": {}}), "resutl"),
        (
            "/tasks/typo/text",
            json!({"delta": "a", "sequence": 1}),
            "sequence",
        ),
        (
            "/sse/subscribe",
            json!({"connection_id": stream.connection_id, "event_types": [], "projectid": "p1"}),
            "projectid",
        ),
        ("/sse/cleanup", json!({"batchsize": 5}), "batchsize"),
        ("/demo/generations", json!({"promt": "x"}), "promt"),
    ];
    for (path, body, field) in writes {
        let response = app.post_json(path, &body).await;
        let refused = assert_error(response, 422, "invalid_field").await;
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(field) && message.contains("is not a known field"),
            "{path}: {message}"
        );
    }
    assert_eq!(app.get("/tasks/typo").await.status().as_u16(), 404);
    let history = app.get_json("/sse/history").await;
    assert_eq!(history["events"], json!([]), "{history}");
    assert!(
        stream
            .next_message(Duration::from_millis(500))
            .await
            .is_none()
    );
}

#[actix_web::test]
async fn a_publish_that_gives_a_field_twice_is_422_naming_it_and_nothing_is_stored() {
    // Kept, the last `project_id` would decide where the event goes while a
    // reader of the body (or a proxy's check) saw the first.
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;
    for (body, message) in [
        (
            r#"{"event_type":"commit","project_id":"p1","project_id":"p2"}"#,
            "project_id is given more than once",
        ),
        (
            r#"[{"event_type":"commit"},{"event_type":"commit","persist":true,"persist":false}]"#,
            "event [1]: persist is given more than once",
        ),
    ] {
        let response = app
            .post_raw("/sse/publish", body, Some("application/json"))
            .await;
        let refused = assert_error(response, 422, "invalid_field").await;
        assert_eq!(refused["error"]["message"], message, "{body}");
    }
    // A payload's own keys are its business, as on every other endpoint.
    let response = app
        .post_raw(
            "/sse/publish",
            r#"{"event_type":"commit","data":{"k":1,"k":2}}"#,
            Some("application/json"),
        )
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let delivered = stream.next_message(SHORT).await.expect("the event").json();
    assert_eq!(delivered["k"], 2, "{delivered}");
    stream.assert_quiet(Duration::from_millis(300)).await;
    let history = app.get_json("/sse/history").await;
    assert_eq!(
        history["events"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
}

#[actix_web::test]
async fn an_unknown_event_type_is_422_with_the_list_of_valid_types() {
    let app = spawn_app_with(|s| {
        s.extra_event_types = vec![sse_broker::domain::EventType::parse("deploy").unwrap()];
    })
    .await;

    let response = app.publish(&json!({"event_type": "nope"})).await;

    let body = assert_error(response, 422, "unknown_event_type").await;
    let valid: Vec<&str> = body["error"]["valid_types"]
        .as_array()
        .expect("valid_types")
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for expected in [
        "file_change",
        "commit",
        "progress_update",
        "risk_alert",
        "task_update",
        "system_status",
        "progress",
        "text",
        "complete",
        "error",
        "deploy",
    ] {
        assert!(valid.contains(&expected), "{expected} not in {valid:?}");
    }
    // The extra type is accepted.
    app.publish_one(&json!({"event_type": "deploy"})).await;
}

#[actix_web::test]
async fn a_malformed_event_type_is_422() {
    let app = spawn_app().await;
    for name in [
        "Commit",
        "9lives",
        "has space",
        "new\nline",
        "",
        &"a".repeat(65),
    ] {
        let response = app.publish(&json!({"event_type": name})).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 422, "{name:?}: {text}");
        crate::helpers::assert_no_internals(&text);
        let code = serde_json::from_str::<Value>(&text).unwrap()["error"]["code"].clone();
        assert!(
            code == "invalid_event_type" || code == "unknown_event_type",
            "{name:?}: {text}"
        );
    }
}

#[actix_web::test]
async fn a_typed_payload_that_breaks_its_rules_is_422_invalid_payload() {
    let app = spawn_app().await;
    for body in [
        json!({"event_type": "progress_update"}),
        json!({"event_type": "progress_update", "data": {"progress": "50"}}),
        json!({"event_type": "progress_update", "data": {"progress": 101}}),
        json!({"event_type": "progress_update", "data": {"progress": -1}}),
        json!({"event_type": "progress", "data": {"message": "no progress"}}),
        json!({"event_type": "text", "data": {"delta": 5}}),
        json!({"event_type": "text", "data": {}}),
    ] {
        let response = app.publish(&body).await;
        assert_error(response, 422, "invalid_payload").await;
    }
    // The boundaries are accepted.
    for progress in [0, 100] {
        app.publish_one(&json!({"event_type": "progress_update", "data": {"progress": progress}}))
            .await;
    }
}

#[actix_web::test]
async fn a_batch_with_one_bad_event_publishes_nothing() {
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;

    let response = app
        .publish(&json!([
            {"event_type": "commit", "data": {"tag": "good"}},
            {"event_type": "nope"},
        ]))
        .await;

    assert_error(response, 422, "unknown_event_type").await;
    stream.assert_quiet(Duration::from_millis(300)).await;
    assert_eq!(app.stats().await["events_published"], 0);
}

#[actix_web::test]
async fn a_body_over_the_limit_is_413_payload_too_large() {
    let app = spawn_app_with(|s| s.max_body_bytes = 4096).await;
    let big = json!({"event_type": "commit", "data": {"pad": "x".repeat(8192)}});

    assert_error(app.publish(&big).await, 413, "payload_too_large").await;

    // Without a Content-Length too (a chunked upload).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .to_string()
        .into_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = app
        .post_raw("/sse/publish", body, Some("application/json"))
        .await;
    assert_error(response, 413, "payload_too_large").await;

    // Just under the limit is fine.
    app.publish_one(&json!({"event_type": "commit", "data": {"pad": "x".repeat(3000)}}))
        .await;
}

#[actix_web::test]
async fn a_non_numeric_last_event_id_is_400() {
    let app = spawn_app().await;
    for bad in ["abc", "-1", "1.5", "12abc", "0x10", "9223372036854775808"] {
        let header = app
            .stream_response("/sse/events", &[("Last-Event-ID", bad)])
            .await;
        let refused = assert_error(header, 400, "invalid_last_event_id").await;
        // Names both ways of giving it, and the range (one past it is a
        // non-negative integer too).
        assert_eq!(
            refused["error"]["message"],
            "Last-Event-ID (or ?last_event_id) must be a decimal integer from 0 to 9223372036854775807",
            "{bad}"
        );
        let query = app
            .stream_response(&format!("/sse/events?last_event_id={bad}"), &[])
            .await;
        assert_error(query, 400, "invalid_last_event_id").await;
    }
    // Two headers: which one was meant cannot be told.
    let two = app
        .stream_response(
            "/sse/events",
            &[("Last-Event-ID", "5"), ("Last-Event-ID", "7")],
        )
        .await;
    let refused = assert_error(two, 400, "invalid_last_event_id").await;
    assert_eq!(
        refused["error"]["message"], "two Last-Event-ID headers were sent; send one",
        "{refused}"
    );
}

#[actix_web::test]
async fn an_unknown_type_in_the_stream_query_is_422() {
    let app = spawn_app().await;

    let response = app
        .stream_response("/sse/events?event_types=commit,nope", &[])
        .await;

    assert_error(response, 422, "unknown_event_type").await;
}

#[actix_web::test]
async fn subscribe_refuses_unknown_connections_and_unknown_types() {
    let app = spawn_app().await;
    let stream = app.open_stream("/sse/events", &[]).await;

    for connection_id in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let response = app
            .post_json(
                "/sse/subscribe",
                &json!({"connection_id": connection_id, "event_types": ["commit"]}),
            )
            .await;
        assert_error(response, 404, "connection_not_found").await;
    }
    let response = app
        .post_json(
            "/sse/subscribe",
            &json!({"connection_id": stream.connection_id, "event_types": ["nope"]}),
        )
        .await;
    assert_error(response, 422, "unknown_event_type").await;
    let response = app
        .post_json("/sse/subscribe", &json!({"event_types": ["commit"]}))
        .await;
    assert_error(response, 422, "invalid_field").await;
    // "" is no project id: it would have cleared the stream's filter.
    let response = app
        .post_json(
            "/sse/subscribe",
            &json!({"connection_id": stream.connection_id, "event_types": ["commit"], "project_id": ""}),
        )
        .await;
    let refused = assert_error(response, 422, "invalid_field").await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("project_id")),
        "{refused}"
    );
    // A blank item would leave no type, which means every type.
    for types in [json!([""]), json!(["commit", " "])] {
        let response = app
            .post_json(
                "/sse/subscribe",
                &json!({"connection_id": stream.connection_id, "event_types": types}),
            )
            .await;
        let body = assert_error(response, 422, "invalid_field").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("not an empty string"), "{message}");
    }
}

/// A task's stream follows its task to its end: a subscription change
/// would keep `complete` from it (the stream would never end) and open it
/// to other events. Refused; the stream still ends with its task.
#[actix_web::test]
async fn subscribe_refuses_a_tasks_stream_which_still_ends_with_its_task() {
    // Arrange
    let app = spawn_app().await;
    let created = app.post_json("/tasks", &json!({"task_id": "t1"})).await;
    assert_eq!(created.status().as_u16(), 201);
    let mut stream = app.open_stream("/tasks/t1/events", &[]).await;

    // Act
    let response = app
        .post_json(
            "/sse/subscribe",
            &json!({"connection_id": stream.connection_id, "event_types": ["progress_update"]}),
        )
        .await;

    // Assert
    let body = assert_error(response, 409, "conflict").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("task's stream"),
        "{body}"
    );
    let completed = app.post_json("/tasks/t1/complete", &json!({})).await;
    assert_eq!(completed.status().as_u16(), 200);
    let events = stream.read_to_end(SHORT).await;
    let types: Vec<_> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert!(!types.contains(&"subscription_updated"), "{types:?}");
    assert_eq!(types.last(), Some(&"complete"), "{types:?}");
}

#[actix_web::test]
async fn cleanup_refuses_a_bad_batch_size() {
    let app = spawn_app().await;
    // Every wrong value says the same, the range it must be in.
    for body in [
        json!({"batch_size": 0}),
        json!({"batch_size": 1001}),
        json!({"batch_size": "ten"}),
        json!({"batch_size": -1}),
        json!({"batch_size": 5.5}),
    ] {
        let response = app.post_json("/sse/cleanup", &body).await;
        let error = assert_error(response, 422, "invalid_field").await;
        assert_eq!(
            error["error"]["message"], "batch_size must be a whole number from 1 to 1000",
            "{body}"
        );
    }
    for body in [
        json!({"batch_size": 1000}),
        json!({"batch_size": null}),
        json!({}),
    ] {
        let response = app.post_json("/sse/cleanup", &body).await;
        assert_eq!(response.status().as_u16(), 200, "{body}");
    }
}

#[actix_web::test]
async fn streams_past_max_connections_are_503_until_one_closes() {
    // Arrange
    let app = spawn_app_with(|s| s.max_connections = 2).await;
    let first = app.open_stream("/sse/events", &[]).await;
    let _second = app.open_stream("/sse/events", &[]).await;

    // Act
    let third = app.stream_response("/sse/events", &[]).await;

    // Assert
    assert_error(third, 503, "too_many_connections").await;
    // The refusal frees its socket at once: kept alive through the
    // keep-alive, refused clients would spend the file descriptors.
    let started = std::time::Instant::now();
    let raw = crate::helpers::raw_http::exchange(
        &app,
        b"GET /sse/events HTTP/1.1\r\nHost: a\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(raw.len(), 1, "{raw:?}");
    raw[0].assert_error(503, "too_many_connections");
    assert_eq!(raw[0].header("connection"), Some("close"), "{raw:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the broker closed the connection"
    );
    // An operator sees it: both refusals counted, beside the cap itself.
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let refused = labelled_sum(
        &metrics,
        "sse_connections_refused_total",
        &[("reason", "full")],
    );
    assert_eq!(refused, 2.0, "counted");
    assert_eq!(labelled_sum(&metrics, "sse_connections_max", &[]), 2.0);
    drop(first);
    eventually(SHORT, "a free slot after a stream closed", || {
        let app = &app;
        async move {
            let response = app.stream_response("/sse/events", &[]).await;
            (response.status().as_u16() == 200).then_some(())
        }
    })
    .await;
}

/// A client that sends its request and leaves at once (a reload, a flaky
/// network) may leave while the Registry admits its stream. Its place under
/// `--max-connections` must come back: before, about a quarter of such
/// streams stayed registered with no actor behind them, for good, until
/// they filled the broker.
#[actix_web::test]
async fn streams_whose_clients_leave_at_once_give_their_places_back() {
    use tokio::io::AsyncWriteExt;
    // Arrange
    let app = spawn_app_with(|s| s.max_connections = 50).await;

    // Act: 300 requests, each client gone as soon as it has sent.
    for _ in 0..300 {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
            .await
            .expect("connected");
        socket
            .write_all(b"GET /sse/events HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("request sent");
    }

    // Assert: every place is given back, and a stream opens.
    eventually(SHORT, "no stream left open", || {
        let app = &app;
        async move { (app.stats().await["active_connections"] == 0).then_some(()) }
    })
    .await;
    let stream = app.stream_response("/sse/events", &[]).await;
    assert_eq!(stream.status().as_u16(), 200);
}

#[actix_web::test]
async fn a_body_that_trickles_in_is_cut_off_with_408_at_the_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Arrange: two seconds to send a body.
    let app = crate::helpers::spawn_app_with(|s| {
        s.body_read_timeout = Duration::from_secs(2);
    })
    .await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connected");
    let body = br#"{"event_type": "commit", "data": {"slow": true}}"#;
    let head = format!(
        "POST /sse/publish HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.expect("head sent");

    // Act: one byte a second, forever.
    let started = std::time::Instant::now();
    let trickle = async {
        for byte in body {
            if socket.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let mut answer = Vec::new();
    tokio::select! {
        () = trickle => panic!("the whole trickled body was accepted"),
        () = async {
            tokio::time::sleep(Duration::from_millis(2500)).await;
        } => {}
    }
    let _ = tokio::time::timeout(SHORT, socket.read_to_end(&mut answer)).await;

    // Assert: a JSON 408 after the timeout, and nothing published.
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"request_timeout\""), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let history = app.get_json("/sse/history").await;
    assert_eq!(history["events"], serde_json::json!([]), "{history}");
}

#[actix_web::test]
async fn a_json_body_that_is_not_an_object_is_422_and_changes_nothing() {
    // serde reads a struct from an array of its fields: `[5]` completed a
    // task with result 5 before object bodies were required.
    let app = spawn_app().await;
    let created = app.post_json("/tasks", &json!({"task_id": "arrays"})).await;
    assert_eq!(created.status().as_u16(), 201);
    for (method, path, body) in [
        ("POST", "/tasks/arrays/complete", "[5]"),
        ("POST", "/tasks/arrays/fail", "[\"boom\"]"),
        ("PATCH", "/tasks/arrays", "[null, null, null, null, null]"),
        ("POST", "/tasks/arrays/text", "[\"a\"]"),
        ("POST", "/tasks", "[\"other\"]"),
        ("POST", "/sse/cleanup", "[5]"),
        ("POST", "/sse/test-event", "[null, null, null, null, null]"),
        ("POST", "/sse/test-event", "\"commit\""),
    ] {
        let response = app
            .api_client
            .request(method.parse().unwrap(), app.url(path))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        let error = assert_error(response, 422, "invalid_field").await;
        assert_eq!(
            error["error"]["message"], "the body must be a JSON object",
            "{method} {path} {body}"
        );
    }
    let task = app.get_json("/tasks/arrays").await;
    assert_eq!(
        (&task["status"], &task["result"], &task["error"]),
        (&json!("pending"), &Value::Null, &Value::Null),
        "{task}"
    );
    assert_eq!(app.stats().await["events_published"], 0);
}

#[actix_web::test]
async fn a_json_body_that_is_not_utf8_is_400_even_in_a_field_nobody_reads() {
    let app = spawn_app().await;
    for (path, body) in [
        (
            "/tasks",
            &b"{\"task_id\": \"u\", \"note\": \"\xFF\xFE\"}"[..],
        ),
        ("/sse/test-event", &b"{\"extra\": \"\xC3\x28\"}"[..]),
        (
            "/sse/publish",
            &b"{\"event_type\": \"commit\", \"x\": \"\xFF\"}"[..],
        ),
    ] {
        let response = app
            .post_raw(path, body.to_vec(), Some("application/json"))
            .await;
        let error = assert_error(response, 400, "malformed_json").await;
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("not valid UTF-8"), "{path}: {message}");
    }
    assert_eq!(app.get("/tasks/u").await.status().as_u16(), 404);
    assert_eq!(app.stats().await["events_published"], 0);
}

#[actix_web::test]
async fn a_null_body_where_the_body_is_optional_is_no_body() {
    // The document gives an optional body as `oneOf: [object, null]`.
    let app = spawn_app().await;
    let created = app.post_json("/tasks", &json!({"task_id": "nulls"})).await;
    assert_eq!(created.status().as_u16(), 201);
    let send = |path: &'static str| {
        app.api_client
            .post(app.url(path))
            .header("Content-Type", "application/json")
            .body("null")
            .send()
    };

    let test_event = send("/sse/test-event").await.expect("sent");
    let cleanup = send("/sse/cleanup").await.expect("sent");
    let complete = send("/tasks/nulls/complete").await.expect("sent");
    let required = send("/tasks/nulls/fail").await.expect("sent");

    assert_eq!(test_event.status().as_u16(), 202);
    assert_eq!(cleanup.status().as_u16(), 200);
    assert_eq!(complete.status().as_u16(), 200);
    let task = app.get_json("/tasks/nulls").await;
    assert_eq!(
        (&task["status"], &task["result"]),
        (&json!("completed"), &Value::Null),
        "{task}"
    );
    // Where a body is required, `null` is not one.
    assert_error(required, 422, "invalid_field").await;
}

/// A body sent with a `Content-Encoding` is refused, 415, before it is
/// read: a compressed body would be taken for broken JSON, and a plain one
/// mislabelled would be read as if the label were not there.
#[actix_web::test]
async fn a_compressed_request_body_is_415_and_nothing_of_it_is_applied() {
    let app = spawn_app().await;
    let created = app
        .post_json("/tasks", &json!({"task_id": "plain-only"}))
        .await;
    assert_eq!(created.status().as_u16(), 201);
    let send = |path: &str, content_type: &str, encoding: &str, body: &str| {
        app.api_client
            .post(app.url(path))
            .header("Content-Type", content_type)
            .header("Content-Encoding", encoding)
            .body(body.to_owned())
            .send()
    };
    let event = r#"{"event_type": "commit", "data": {"n": 1}}"#;
    for (path, content_type, encoding, body) in [
        ("/sse/publish", "application/json", "gzip", event),
        ("/sse/publish", "application/json", "br", event),
        ("/sse/publish", "application/json", "identity, zstd", event),
        (
            "/tasks/plain-only/text",
            "application/json",
            "gzip",
            r#"{"delta": "x"}"#,
        ),
        (
            "/tasks/plain-only/stream",
            "application/x-ndjson",
            "deflate",
            "{\"delta\": \"x\"}\n",
        ),
    ] {
        let response = send(path, content_type, encoding, body)
            .await
            .expect("sent");
        let refused = assert_error(response, 415, "unsupported_media_type").await;
        let message = refused["error"]["message"].as_str().expect("a message");
        assert!(
            message.contains("Content-Encoding"),
            "{path} {encoding}: {message}"
        );
    }
    let history = app.get_json("/sse/history").await;
    assert_eq!(history["events"], json!([]), "nothing was stored");
    let task = app.get_json("/tasks/plain-only").await;
    assert_eq!(task["status"], "pending", "nothing was written: {task}");

    // `identity` is no coding at all.
    let accepted = send("/sse/publish", "application/json", "identity", event)
        .await
        .expect("sent");
    assert_eq!(accepted.status().as_u16(), 202);
}

/// A task's fields refuse what they cannot hold: a project id of "" (as
/// `/sse/publish` refuses it), and a started task going back to pending.
#[actix_web::test]
async fn a_task_refuses_an_empty_project_and_a_way_back_to_pending() {
    // Arrange
    let app = spawn_app().await;
    let created = app.post_json("/tasks", &json!({"task_id": "t1"})).await;
    assert_eq!(created.status().as_u16(), 201);
    let patch = |body: Value| {
        app.api_client
            .patch(app.url("/tasks/t1"))
            .json(&body)
            .send()
    };
    let started = patch(json!({"progress": 10})).await.expect("sent");
    assert_eq!(started.status().as_u16(), 200);

    // Act
    let empty_project = app
        .post_json("/tasks", &json!({"task_id": "t2", "project_id": ""}))
        .await;
    let back = patch(json!({"status": "pending"})).await.expect("sent");

    // Assert
    assert_error(empty_project, 422, "invalid_field").await;
    let body = assert_error(back, 422, "invalid_field").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot go back to pending"),
        "{body}"
    );
    assert_eq!(app.get_json("/tasks/t1").await["status"], "running");
    assert_eq!(app.get("/tasks/t2").await.status().as_u16(), 404);
}

/// A byte order mark before an NDJSON upload's first line (Windows tools
/// and .NET write one) is not the producer's JSON: it is dropped.
#[actix_web::test]
async fn an_upload_that_begins_with_a_byte_order_mark_is_read() {
    let app = spawn_app().await;
    let created = app.post_json("/tasks", &json!({"task_id": "t1"})).await;
    assert_eq!(created.status().as_u16(), 201);

    let response = app
        .api_client
        .post(app.url("/tasks/t1/stream"))
        .header("Content-Type", "application/x-ndjson")
        .body("\u{feff}{\"delta\":\"Hi\"}\n{\"complete\":{}}\n")
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status().as_u16(), 200);
    let task = app.get_json("/tasks/t1").await;
    assert_eq!(task["status"], "completed", "{task}");
}

/// A byte order mark before a JSON body (RFC 8259 §8.1 lets a parser
/// ignore it) is dropped, as an upload's is: the publish, the task's
/// creation and its write go through; a BOM alone is an empty body.
#[actix_web::test]
async fn a_json_body_that_begins_with_a_byte_order_mark_is_read() {
    let app = spawn_app().await;
    let send = |path: &'static str, body: &'static str| {
        app.post_raw(
            path,
            format!("\u{feff}{body}").into_bytes(),
            Some("application/json"),
        )
    };

    let published = send("/sse/publish", r#"{"event_type":"commit","data":{"n":1}}"#).await;
    let created = send("/tasks", r#"{"task_id":"b1"}"#).await;
    let written = send("/tasks/b1/text", r#"{"delta":"Hi"}"#).await;
    let nothing = send("/sse/publish", "").await;

    assert_eq!(published.status().as_u16(), 202);
    assert_eq!(created.status().as_u16(), 201);
    assert_eq!(written.status().as_u16(), 202);
    let error = assert_error(nothing, 400, "malformed_json").await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("empty"),
        "{error}"
    );
    let history = app.get_json("/sse/history?event_types=commit").await;
    assert_eq!(history["events"][0]["data"], json!({"n": 1}), "{history}");
    let text = app.get_json("/sse/history?event_types=text").await;
    assert_eq!(text["events"][0]["data"]["delta"], "Hi", "{text}");
}
