//! What operators read: `/health`, `/metrics`, `/openapi.json`,
//! `/sse/stats`, `/sse/connections` and `/sse/monitoring`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::{SHORT, assert_error, eventually, sample_sum, spawn_app, spawn_app_with};

/// Every API route, with its methods: the OpenAPI document must describe
/// each of them (static assets are checked in `assets.rs`).
const ROUTES: [(&str, &[&str]); 28] = [
    ("/sse/events", &["get", "head"]),
    ("/sse/history", &["get", "head"]),
    ("/sse/tickets", &["post"]),
    ("/sse/diagnose", &["get"]),
    ("/sse/connections/{id}/token", &["post"]),
    ("/sse/connections/{connection_id}", &["delete"]),
    ("/tasks", &["post"]),
    ("/tasks/{id}", &["get", "head", "patch"]),
    ("/tasks/{id}/events", &["get", "head"]),
    ("/tasks/{id}/ui-message-stream", &["get", "head"]),
    ("/chats/{chat_id}/stream", &["get", "head"]),
    ("/chats/{chat_id}/cancel", &["post"]),
    ("/tasks/{id}/text", &["post"]),
    ("/tasks/{id}/stream", &["post"]),
    ("/tasks/{id}/complete", &["post"]),
    ("/tasks/{id}/fail", &["post"]),
    ("/tasks/{id}/cancel", &["post"]),
    ("/demo/generations", &["post"]),
    ("/sse/publish", &["post"]),
    ("/sse/test-event", &["post"]),
    ("/sse/subscribe", &["post"]),
    ("/sse/stats", &["get", "head"]),
    ("/sse/connections", &["get", "head"]),
    ("/sse/monitoring", &["get", "head"]),
    ("/sse/cleanup", &["post"]),
    ("/health", &["get", "head"]),
    ("/metrics", &["get", "head"]),
    ("/openapi.json", &["get", "head"]),
];

#[actix_web::test]
async fn health_is_200_and_healthy_with_its_checks() {
    let app = spawn_app().await;

    let health = app.get_json("/health").await;

    assert_eq!(health["status"], "healthy", "{health}");
    assert!(health["checks"].is_object(), "{health}");
    assert!(
        !health["checks"].as_object().unwrap().is_empty(),
        "{health}"
    );
}

/// Every document an operator or a probe reads answers `HEAD` as `GET`
/// does, headers and status, with no body (RFC 9110 §9.3.2).
#[actix_web::test]
async fn operator_documents_answer_head_with_their_status_and_no_body() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    for path in [
        "/health",
        "/metrics",
        "/openapi.json",
        "/sse/history",
        "/sse/stats",
        "/sse/connections",
        "/sse/monitoring",
    ] {
        let got = client.get(app.url(path)).send().await.expect("GET");
        let head = client.head(app.url(path)).send().await.expect("HEAD");

        assert_eq!(head.status(), got.status(), "{path}");
        assert_eq!(head.status().as_u16(), 200, "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            got.headers().get("content-type"),
            "{path}"
        );
        assert_eq!(head.bytes().await.expect("the answer").len(), 0, "{path}");
    }
    // Refusals too: the status GET would get.
    let refused = client
        .head(app.url("/sse/history?limit=0"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(refused.status().as_u16(), 400);
}

#[actix_web::test]
async fn openapi_describes_every_route_and_no_route_that_does_not_exist() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let document = app.get_json("/openapi.json").await;

    // Assert
    let version = document["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "OpenAPI {version}");
    let paths = document["paths"].as_object().expect("paths");
    for (path, methods) in ROUTES {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from /openapi.json; has {:?}", paths.keys()));
        for method in methods {
            assert!(
                item.get(*method).is_some(),
                "{method} {path} is not documented"
            );
        }
    }
    // Every operationId is unique, as OpenAPI requires (GET and HEAD of one
    // handler included).
    let mut ids = std::collections::BTreeMap::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("a path item") {
            if let Some(id) = operation.get("operationId").and_then(Value::as_str) {
                let earlier = ids.insert(id.to_owned(), format!("{method} {path}"));
                assert!(
                    earlier.is_none(),
                    "operationId {id} of {method} {path} is also {earlier:?}'s"
                );
            }
        }
    }
    // A HEAD never spends a ticket, so none lists one; a stream's GET does.
    let names = |method: &str, path: &str| -> Vec<String> {
        paths[path][method]["parameters"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(names("get", "/sse/events").contains(&"ticket".to_owned()));
    for (path, item) in paths {
        if item.get("head").is_some() {
            assert!(
                !names("head", path).contains(&"ticket".to_owned()),
                "HEAD {path}"
            );
        }
    }
    // Every documented GET without a path parameter is served.
    for (path, item) in paths {
        if path.contains('{') || item.get("get").is_none() {
            continue;
        }
        let response = app.get(path).await;
        assert_ne!(
            response.status().as_u16(),
            404,
            "{path} is documented but not routed"
        );
    }
}

#[actix_web::test]
async fn openapi_types_fields_as_the_broker_reads_and_writes_them() {
    // A client generated from the document must accept a task's `result`
    // of any JSON (null until it completes) and send `data` of any JSON.
    let app = spawn_app().await;

    let document = app.get_json("/openapi.json").await;

    let schemas = &document["components"]["schemas"];
    for (schema, field, optional) in [
        ("TaskView", "result", true),
        ("HistoryEvent", "data", false),
        ("PublishEvent", "data", true),
        ("TestEvent", "data", true),
        ("CompleteRequest", "result", true),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert!(property.is_object(), "{schema}.{field}: {property}");
        assert!(
            property.get("type").is_none() && property.get("$ref").is_none(),
            "{schema}.{field} is typed: {property}"
        );
        let required = schemas[schema]["required"]
            .as_array()
            .is_some_and(|required| required.contains(&json!(field)));
        assert_eq!(required, !optional, "{schema}.{field} required: {required}");
    }
    // With authentication off nothing needs a token.
    assert!(document["components"]["securitySchemes"].is_null());
    let secured: Vec<&String> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("an item")
                .values()
                .map(move |op| (path, op))
        })
        .filter(|(_, operation)| operation.get("security").is_some())
        .map(|(path, _)| path)
        .collect();
    assert!(
        secured.is_empty(),
        "secured without authentication: {secured:?}"
    );
    // Names hold their forms: an event type, a task id.
    assert_eq!(
        schemas["PublishEvent"]["properties"]["event_type"]["pattern"],
        "^[a-z][a-z0-9_.-]{0,63}$"
    );
    assert_eq!(
        schemas["CreateTask"]["properties"]["task_id"]["pattern"],
        "^[A-Za-z0-9_-]{1,128}$"
    );
    // Either form of a subscription's types, as sent: no serde tag.
    let forms: Vec<&Value> = schemas["EventTypeList"]["oneOf"]
        .as_array()
        .expect("oneOf")
        .iter()
        .map(|form| &form["type"])
        .collect();
    assert_eq!(forms, [&json!("array"), &json!("string")]);
    assert_eq!(
        schemas["EventTypeList"]["oneOf"][0]["items"]["pattern"],
        "^[a-z][a-z0-9_.-]{0,63}$"
    );
}

#[actix_web::test]
async fn metrics_use_sse_names_and_move_when_events_are_published() {
    // Arrange
    let app = spawn_app().await;
    let _stream = app.open_stream("/sse/events", &[]).await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let before = response.text().await.expect("text");

    // Act
    for _ in 0..3 {
        app.publish_one(&json!({"event_type": "commit"})).await;
    }

    // Assert: every sample is an `sse_` metric.
    let after = eventually(SHORT, "sse_events_published_total to move", || {
        let app = &app;
        let before = &before;
        async move {
            let text = app.get("/metrics").await.text().await.ok()?;
            let grown = sample_sum(&text, "sse_events_published_total")
                - sample_sum(before, "sse_events_published_total");
            (grown >= 3.0).then_some(text)
        }
    })
    .await;
    assert_eq!(
        sample_sum(&after, "sse_events_published_total")
            - sample_sum(&before, "sse_events_published_total"),
        3.0
    );
    assert_eq!(sample_sum(&after, "sse_active_connections"), 1.0, "{after}");
    for line in after.lines().filter(|l| !l.is_empty()) {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        assert!(name.starts_with("sse_"), "a metric outside sse_: {line}");
    }
}

#[actix_web::test]
async fn stats_count_connections_and_events_by_type() {
    // Arrange
    let app = spawn_app_with(|s| s.instance_id = "stats-test".into()).await;
    let mut stream = app.open_stream("/sse/events", &[]).await;

    // Act
    for event_type in ["commit", "commit", "risk_alert"] {
        app.publish_one(&json!({"event_type": event_type})).await;
    }
    stream.take_messages(3, SHORT).await;

    // Assert
    let stats = app.stats().await;
    for field in [
        "active_connections",
        "total_connections",
        "events_published",
        "events_delivered",
        "events_dropped",
        "connections_closed_slow",
        "uptime_secs",
    ] {
        assert!(stats[field].is_u64(), "{field} missing: {stats}");
    }
    assert_eq!(stats["active_connections"], 1);
    assert_eq!(stats["total_connections"], 1);
    assert_eq!(stats["events_published"], 3);
    assert_eq!(stats["events_delivered"], 3);
    assert_eq!(stats["events_by_type"]["commit"], 2);
    assert_eq!(stats["events_by_type"]["risk_alert"], 1);
    assert_eq!(stats["instance_id"], "stats-test");
    for reason in [
        "client_gone",
        "slow",
        "stale",
        "shutdown",
        "store_unavailable",
    ] {
        assert_eq!(stats["closed_by_reason"][reason], 0, "{stats}");
    }

    // A client that goes away is counted as such.
    drop(stream);
    eventually(SHORT, "the closed stream to be counted", || {
        let app = &app;
        async move {
            let stats = app.stats().await;
            (stats["closed_by_reason"]["client_gone"] == 1 && stats["active_connections"] == 0)
                .then_some(())
        }
    })
    .await;
}

#[actix_web::test]
async fn connections_lists_live_streams_a_page_at_a_time() {
    // Arrange
    let app = spawn_app_with(|s| s.instance_id = "listing-test".into()).await;
    let mut streams = Vec::new();
    for query in [
        "/sse/events",
        "/sse/events?event_types=commit&project_id=p1",
        "/sse/events?user_id=alice&event_types=risk_alert",
    ] {
        streams.push(app.open_stream(query, &[]).await);
    }
    let id = app
        .publish_one(&json!({"event_type": "commit", "project_id": "p1"}))
        .await;
    for stream in &mut streams[..2] {
        stream.next_message(SHORT).await.expect("the commit");
    }
    // An event not stored is sent as well: counted, though it moves no
    // resume point.
    let answer = app
        .publish(&json!({"event_type": "commit", "project_id": "p1", "persist": false}))
        .await;
    assert!(answer.status().is_success(), "{}", answer.status());
    for stream in &mut streams[..2] {
        stream
            .next_message(SHORT)
            .await
            .expect("the unstored commit");
    }

    // Act
    let first_page = app.get_json("/sse/connections?limit=2&offset=0").await;
    let second_page = app.get_json("/sse/connections?limit=2&offset=2").await;
    // One instance alone: its streams are all the streams there are.
    assert_eq!(first_page["scope"], "instance");
    assert_eq!(first_page["complete"], true);

    // Assert
    assert_eq!(first_page["total"], 3);
    assert_eq!(first_page["limit"], 2);
    assert_eq!(first_page["offset"], 0);
    assert_eq!(first_page["connections"].as_array().unwrap().len(), 2);
    assert_eq!(second_page["connections"].as_array().unwrap().len(), 1);
    let listed: Vec<Value> = first_page["connections"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second_page["connections"].as_array().unwrap())
        .cloned()
        .collect();
    let listed_ids: BTreeSet<&str> = listed
        .iter()
        .map(|c| c["connection_id"].as_str().unwrap())
        .collect();
    let opened_ids: BTreeSet<&str> = streams.iter().map(|s| s.connection_id.as_str()).collect();
    assert_eq!(listed_ids, opened_ids);
    for connection in &listed {
        for field in [
            "connection_id",
            "user_id",
            "event_types",
            "project_id",
            "connected_at",
            "last_activity_at",
            "last_event_id",
            "queued",
            "lag_ms",
            "events_sent",
            "instance_id",
        ] {
            assert!(
                connection.get(field).is_some(),
                "{field} missing: {connection}"
            );
        }
        assert_eq!(connection["instance_id"], "listing-test");
    }
    let by_id = |wanted: &str| {
        listed
            .iter()
            .find(|c| c["connection_id"] == wanted)
            .unwrap()
            .clone()
    };
    let filtered = by_id(&streams[1].connection_id);
    assert_eq!(filtered["event_types"], json!(["commit"]));
    assert_eq!(filtered["project_id"], "p1");
    assert_eq!(filtered["last_event_id"], id);
    assert_eq!(filtered["events_sent"], 2);
    // Publish time to the frame handed to this client: a live delivery on
    // loopback, so well under the test's timeout.
    let lag = filtered["lag_ms"]
        .as_i64()
        .expect("a lag after a live event");
    assert!((0..SHORT.as_millis() as i64).contains(&lag), "{filtered}");
    let private = by_id(&streams[2].connection_id);
    assert_eq!(private["user_id"], "alice");
    assert_eq!(private["events_sent"], 0);
    assert_eq!(private["last_event_id"], Value::Null);
    assert_eq!(private["lag_ms"], Value::Null, "no live event written yet");
}

/// A stream opened after events were published is told, in its
/// `connected` frame's `id:`, where it resumes from; the listing says the
/// same before any event follows, as the client's resume point.
#[actix_web::test]
async fn a_fresh_streams_listed_last_event_id_is_the_id_its_connected_frame_gave() {
    let app = spawn_app().await;
    let newest = app.publish_one(&json!({"event_type": "commit"})).await;
    let stream = app.open_stream("/sse/events", &[]).await;
    assert_eq!(stream.connected.id_number(), Some(newest));

    let page = app.get_json("/sse/connections").await;

    let listed = &page["connections"][0];
    assert_eq!(listed["connection_id"], stream.connection_id.as_str());
    assert_eq!(listed["last_event_id"], newest, "{listed}");
    assert_eq!(listed["events_sent"], 0, "{listed}");
}

#[actix_web::test]
async fn monitoring_reports_connections_cleanup_health_and_configuration() {
    let app = spawn_app().await;
    let _stream = app.open_stream("/sse/events", &[]).await;

    let monitoring = app.monitoring().await;

    for field in [
        "timestamp",
        "connection_stats",
        "cleanup_stats",
        "health_indicators",
        "performance_metrics",
        "configuration",
    ] {
        assert!(
            monitoring.get(field).is_some(),
            "{field} missing: {monitoring}"
        );
    }
    assert_eq!(monitoring["service_name"], "sse-broker");
    let health = &monitoring["health_indicators"];
    assert_eq!(health["overall_health"], "healthy", "{health}");
    assert!(health["alerts"].is_array() && health["warnings"].is_array());
    for field in [
        "total_cleanups",
        "total_connections_cleaned",
        "failed_connections",
    ] {
        assert!(
            monitoring["cleanup_stats"][field].is_u64(),
            "{field}: {monitoring}"
        );
    }
}

#[actix_web::test]
async fn an_unknown_route_is_a_json_404() {
    let app = spawn_app().await;

    assert_error(app.get("/no/such/route").await, 404, "not_found").await;
    assert_error(
        app.post_raw("/sse/nothing", "{}", None).await,
        404,
        "not_found",
    )
    .await;
}

/// What the broker's limits and outages make any operation of a kind
/// answer is in the document, so a generated client has a branch for it;
/// and the document's forms hold for what the broker really sends.
#[actix_web::test]
async fn openapi_lists_the_limits_and_outages_every_operation_may_answer() {
    let app = spawn_app().await;
    let document = app.get_json("/openapi.json").await;
    let operation = |path: &str, method: &str| document["paths"][path][method].clone();
    let lists = |path: &str, method: &str, status: &str| {
        operation(path, method)["responses"].get(status).is_some()
    };

    // With authentication off no per-user budget is kept, so no write is
    // rate limited (`auth::documented_statuses` checks them with it on);
    // every body may be too large or too slow; every stream open may be
    // refused for its address's rate or a full instance; everything but
    // the open documents may meet an unavailable store.
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for (path, method) in [
        ("/sse/publish", "post"),
        ("/sse/test-event", "post"),
        ("/tasks", "post"),
        ("/tasks/{id}", "patch"),
        ("/tasks/{id}/text", "post"),
        ("/tasks/{id}/stream", "post"),
        ("/tasks/{id}/complete", "post"),
        ("/tasks/{id}/fail", "post"),
        ("/tasks/{id}/cancel", "post"),
        ("/chats/{chat_id}/cancel", "post"),
        ("/demo/generations", "post"),
    ] {
        if !lists(path, method, "503") {
            missing.push(format!("{method} {path}: 503"));
        }
        if lists(path, method, "429") {
            wrong.push(format!("{method} {path}: 429"));
        }
    }
    // Nor does any operation answer 403, nor 401 but a stream open's
    // `?ticket=`.
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, listed) in item.as_object().expect("an item") {
            let takes_ticket = listed["parameters"]
                .as_array()
                .is_some_and(|all| all.iter().any(|p| p["name"] == "ticket"));
            if lists(path, method, "403") || lists(path, method, "401") != takes_ticket {
                wrong.push(format!("{method} {path}: 401/403"));
            }
        }
    }
    assert!(
        lists("/tasks/{id}/events", "get", "401"),
        "a task stream opened with an unknown ticket"
    );
    assert!(wrong.is_empty(), "with authentication off: {wrong:#?}");
    for (path, method) in [
        ("/tasks", "post"),
        ("/tasks/{id}/text", "post"),
        ("/sse/subscribe", "post"),
    ] {
        for status in ["408", "413"] {
            if !lists(path, method, status) {
                missing.push(format!("{method} {path}: {status}"));
            }
        }
    }
    for path in [
        "/sse/events",
        "/tasks/{id}/events",
        "/tasks/{id}/ui-message-stream",
        "/chats/{chat_id}/stream",
    ] {
        for status in ["429", "503"] {
            if !lists(path, "get", status) {
                missing.push(format!("get {path}: {status}"));
            }
        }
    }
    assert!(
        lists("/sse/publish", "post", "404"),
        "an event naming an unknown task"
    );
    assert!(missing.is_empty(), "not in the document: {missing:#?}");

    // An upload takes each of the formats the broker reads.
    let formats = operation("/tasks/{id}/stream", "post")["requestBody"]["content"].clone();
    for format in [
        "application/x-ndjson",
        "application/jsonl",
        "text/event-stream",
    ] {
        assert!(formats.get(format).is_some(), "{format} in {formats}");
    }
    // A header is text or absent, never null.
    let last_event_id = operation("/sse/events", "get")["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "Last-Event-ID")
        .expect("the header")
        .clone();
    assert_eq!(last_event_id["schema"]["type"], "string", "{last_event_id}");

    // A single instance's listing says `scope: "instance"`, and the
    // document's form of that field takes it.
    let listing = app.get_json("/sse/connections").await;
    let scope = listing["scope"].as_str().expect("a scope").to_owned();
    let form = &document["components"]["schemas"]["ConnectionPage"]["properties"]["scope"];
    if let Some(pattern) = form["pattern"].as_str() {
        let allowed: Vec<&str> = pattern
            .trim_start_matches("^(")
            .trim_end_matches(")$")
            .split('|')
            .collect();
        assert!(allowed.contains(&scope.as_str()), "{scope} against {form}");
    }
    let query = operation("/sse/connections", "get")["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "scope")
        .expect("the scope parameter")
        .clone();
    assert_eq!(query["schema"]["pattern"], "^(cluster|local)$", "{query}");
}
