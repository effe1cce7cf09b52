//! Streams: the `connected` frame, response headers, heartbeats, filters by
//! type and project, private events, and live filter changes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{SHORT, assert_error, spawn_app, spawn_app_with};

#[actix_web::test]
async fn the_first_frame_is_connected_with_a_retry_hint_and_the_subscription() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let stream = app
        .open_stream(
            "/sse/events?event_types=risk_alert,commit&project_id=p1",
            &[],
        )
        .await;

    // Assert
    let connected = &stream.connected;
    assert_eq!(connected.retry.as_deref(), Some("3000"), "{connected:?}");
    assert_eq!(
        connected.id.as_deref(),
        Some("0"),
        "a live start names its position: nothing stored yet"
    );
    let data = connected.json();
    let connection_id = data["connection_id"].as_str().expect("connection_id");
    assert!(uuid::Uuid::parse_str(connection_id).is_ok(), "{data}");
    let mut types: Vec<&str> = data["event_types"]
        .as_array()
        .expect("event_types array")
        .iter()
        .map(|t| t.as_str().expect("type names"))
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["commit", "risk_alert"]);
    assert_eq!(data["project_id"], "p1");
}

#[actix_web::test]
async fn an_unfiltered_stream_lists_every_type_and_no_project() {
    let app = spawn_app().await;

    let stream = app.open_stream("/sse/events", &[]).await;

    let data = stream.connected.json();
    let types = data["event_types"].as_array().expect("event_types array");
    for built_in in [
        "file_change",
        "commit",
        "progress_update",
        "risk_alert",
        "task_update",
        "system_status",
    ] {
        assert!(
            types.contains(&json!(built_in)),
            "{built_in} missing in {data}"
        );
    }
    assert_eq!(data["project_id"], Value::Null);
}

#[actix_web::test]
async fn stream_headers_turn_off_buffering_and_compression() {
    // Arrange: an event stream and a task's stream.
    let app = spawn_app().await;
    let created = app
        .post_json("/tasks", &json!({"task_id": "headers"}))
        .await;
    assert_eq!(created.status().as_u16(), 201);

    for path in ["/sse/events", "/tasks/headers/events"] {
        // Act: a client that would accept gzip.
        let stream = app
            .open_stream(path, &[("Accept-Encoding", "gzip, deflate, br")])
            .await;

        // Assert
        let header = |name: &str| {
            stream
                .headers
                .get(name)
                .map(|v| v.to_str().expect("ASCII header").to_owned())
        };
        let content_type = header("content-type").expect("content-type");
        assert!(
            content_type.starts_with("text/event-stream"),
            "{path}: {content_type}"
        );
        assert!(
            header("cache-control").is_some_and(|v| v.contains("no-cache")),
            "{path}: cache-control: {:?}",
            header("cache-control")
        );
        assert_eq!(header("x-accel-buffering").as_deref(), Some("no"), "{path}");
        let encoding = header("content-encoding");
        assert!(
            encoding.is_none() || encoding.as_deref() == Some("identity"),
            "{path}: the stream is compressed: {encoding:?}"
        );
    }
    // The body is plain text: the next frame parses too.
    let mut stream = app
        .open_stream("/sse/events", &[("Accept-Encoding", "gzip, deflate, br")])
        .await;
    app.publish_one(&json!({"event_type": "commit"})).await;
    let event = stream.next_message(SHORT).await.expect("an event");
    assert_eq!(event.event.as_deref(), Some("commit"));
}

#[actix_web::test]
async fn heartbeats_arrive_at_the_configured_period() {
    // Arrange: an event stream, and a task's stream during a long silence
    // of its producer (a model still thinking), which proxies and the
    // Janitor must not take for a dead stream.
    let app = spawn_app_with(|s| s.heartbeat = Duration::from_secs(1)).await;
    let created = app
        .post_json("/tasks", &json!({"task_id": "thinking"}))
        .await;
    assert_eq!(created.status().as_u16(), 201);

    for path in ["/sse/events", "/tasks/thinking/events"] {
        let mut stream = app.open_stream(path, &[]).await;
        let opened = Instant::now();
        if path.starts_with("/tasks") {
            let state = stream.next_message(SHORT).await.expect("the task's state");
            assert!(state.is("progress"), "{path}: {state:?}");
        }

        // Act
        let mut arrivals = Vec::new();
        while arrivals.len() < 3 {
            let event = stream
                .next_event(Duration::from_secs(3))
                .await
                .unwrap_or_else(|| panic!("{path}: no heartbeat within 3 s; got {arrivals:?}"));
            assert!(event.is_heartbeat(), "{path}: unexpected {event:?}");
            assert_eq!(event.id, None, "{path}");
            let ts = event.json()["ts"].as_i64().expect("ts in ms");
            let now_ms = chrono::Utc::now().timestamp_millis();
            assert!(
                (now_ms - ts).abs() < 5_000,
                "{path}: ts {ts} is not now ({now_ms})"
            );
            arrivals.push(opened.elapsed());
        }

        // Assert: about one per second, neither bunched nor late.
        let mut previous = Duration::ZERO;
        for at in &arrivals {
            let gap = *at - previous;
            assert!(
                gap >= Duration::from_millis(500) && gap <= Duration::from_millis(2_500),
                "{path}: heartbeat gaps off a 1 s period: {arrivals:?}"
            );
            previous = *at;
        }
    }
}

/// One published event of the filter test: its type, project and a tag.
struct Published {
    event_type: &'static str,
    project_id: Option<&'static str>,
    tag: usize,
}

/// The filter a stream was opened with, as the test models it.
struct Filter {
    query: &'static str,
    types: &'static [&'static str],
    project_id: Option<&'static str>,
}

impl Filter {
    fn matches(&self, event: &Published) -> bool {
        (self.types.is_empty() || self.types.contains(&event.event_type))
            && self.project_id.is_none_or(|p| event.project_id == Some(p))
    }
}

#[actix_web::test]
async fn a_stream_receives_exactly_the_events_inside_its_filter() {
    // Arrange: streams with every kind of filter.
    let app = spawn_app().await;
    let filters = [
        Filter {
            query: "/sse/events",
            types: &[],
            project_id: None,
        },
        Filter {
            query: "/sse/events?event_types=commit",
            types: &["commit"],
            project_id: None,
        },
        Filter {
            query: "/sse/events?project_id=p1",
            types: &[],
            project_id: Some("p1"),
        },
        Filter {
            query: "/sse/events?event_types=commit&project_id=p1",
            types: &["commit"],
            project_id: Some("p1"),
        },
        Filter {
            query: "/sse/events?event_types=risk_alert,file_change&project_id=p2",
            types: &["risk_alert", "file_change"],
            project_id: Some("p2"),
        },
    ];
    let mut streams = Vec::new();
    for filter in &filters {
        streams.push(app.open_stream(filter.query, &[]).await);
    }

    // Act: every type × project combination, then commit/p1 and
    // risk_alert/p2 last, so each stream's last expected event is among the
    // last published and anything unexpected would arrive before it.
    let mut published = Vec::new();
    let types = ["commit", "risk_alert", "file_change", "system_status"];
    let projects = [None, Some("p1"), Some("p2"), Some("p3")];
    for event_type in types {
        for project_id in projects {
            published.push(Published {
                event_type,
                project_id,
                tag: published.len(),
            });
        }
    }
    for (event_type, project_id) in [("commit", Some("p1")), ("risk_alert", Some("p2"))] {
        published.push(Published {
            event_type,
            project_id,
            tag: published.len(),
        });
    }
    let mut ids = Vec::new();
    for event in &published {
        let mut body = json!({"event_type": event.event_type, "data": {"tag": event.tag}});
        if let Some(project) = event.project_id {
            body["project_id"] = json!(project);
        }
        ids.push(app.publish_one(&body).await);
    }

    // Assert
    for (filter, stream) in filters.iter().zip(streams.iter_mut()) {
        let expected: Vec<(i64, usize)> = published
            .iter()
            .filter(|e| filter.matches(e))
            .map(|e| (ids[e.tag], e.tag))
            .collect();
        let received: Vec<(i64, usize)> = stream
            .take_messages(expected.len(), SHORT)
            .await
            .into_iter()
            .map(|e| {
                let tag = e.json()["tag"].as_u64().expect("tag") as usize;
                assert_eq!(e.event.as_deref(), Some(published[tag].event_type));
                (e.id_number().expect("stored events carry an id"), tag)
            })
            .collect();
        assert_eq!(received, expected, "stream {}", filter.query);
        stream.assert_quiet(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn private_events_reach_only_the_user_they_name() {
    // Arrange
    let app = spawn_app().await;
    let mut anonymous = app.open_stream("/sse/events", &[]).await;
    let mut alice = app.open_stream("/sse/events?user_id=alice", &[]).await;
    let mut bob = app.open_stream("/sse/events?user_id=bob", &[]).await;

    // Act
    for (user, tag) in [(Some("alice"), "a"), (Some("bob"), "b"), (None, "public")] {
        let mut body = json!({"event_type": "commit", "data": {"tag": tag}});
        if let Some(user) = user {
            body["user_id"] = json!(user);
        }
        app.publish_one(&body).await;
    }

    // Assert
    let tags = |events: Vec<crate::helpers::SseEvent>| -> Vec<String> {
        events
            .iter()
            .map(|e| e.json()["tag"].as_str().expect("tag").to_owned())
            .collect()
    };
    assert_eq!(tags(alice.take_messages(2, SHORT).await), ["a", "public"]);
    assert_eq!(tags(bob.take_messages(2, SHORT).await), ["b", "public"]);
    assert_eq!(tags(anonymous.take_messages(1, SHORT).await), ["public"]);
    for stream in [&mut anonymous, &mut alice, &mut bob] {
        stream.assert_quiet(Duration::from_millis(200)).await;
    }
    // The history follows the same rule as the streams.
    let history_tags = |page: Value| -> Vec<String> {
        page["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["data"]["tag"].as_str().expect("tag").to_owned())
            .collect()
    };
    let as_alice = app.get_json("/sse/history?user_id=alice").await;
    let as_nobody = app.get_json("/sse/history").await;
    let as_empty = app.get_json("/sse/history?user_id=").await;
    assert_eq!(history_tags(as_alice), ["a", "public"]);
    assert_eq!(history_tags(as_nobody), ["public"]);
    assert_eq!(
        history_tags(as_empty),
        ["public"],
        "an empty user_id is unset"
    );
}

#[actix_web::test]
async fn subscribe_changes_a_live_streams_filter() {
    // Arrange: a stream of commits only.
    let app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events?event_types=commit", &[]).await;
    app.publish_one(&json!({"event_type": "risk_alert", "data": {"tag": "before-risk"}}))
        .await;
    app.publish_one(&json!({"event_type": "commit", "data": {"tag": "before-commit"}}))
        .await;
    let first = stream.next_message(SHORT).await.expect("the commit");
    assert_eq!(first.json()["tag"], "before-commit");

    // Act: switch to risk alerts of project p1.
    let response = app
        .post_json(
            "/sse/subscribe",
            &json!({
                "connection_id": stream.connection_id,
                "event_types": ["risk_alert"],
                "project_id": "p1",
            }),
        )
        .await;

    // Assert
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["event_types"], json!(["risk_alert"]));
    assert_eq!(answer["project_id"], "p1");
    let updated = stream
        .next_message(SHORT)
        .await
        .expect("subscription_updated");
    assert_eq!(
        updated.event.as_deref(),
        Some("subscription_updated"),
        "{updated:?}"
    );
    assert_eq!(updated.id, None);
    assert_eq!(
        updated.json(),
        json!({
            "connection_id": stream.connection_id,
            "event_types": ["risk_alert"],
            "project_id": "p1",
        })
    );
    for (event_type, project, tag) in [
        ("commit", Some("p1"), "old-type"),
        ("risk_alert", None, "no-project"),
        ("risk_alert", Some("p2"), "other-project"),
        ("risk_alert", Some("p1"), "wanted"),
    ] {
        let mut body = json!({"event_type": event_type, "data": {"tag": tag}});
        if let Some(project) = project {
            body["project_id"] = json!(project);
        }
        app.publish_one(&body).await;
    }
    let next = stream.next_message(SHORT).await.expect("the wanted event");
    assert_eq!(next.json()["tag"], "wanted", "{next:?}");
    stream.assert_quiet(Duration::from_millis(200)).await;
}

#[actix_web::test]
async fn subscribe_accepts_a_comma_separated_list_and_answers_404_after_the_stream_is_gone() {
    let app = spawn_app().await;
    let stream = app.open_stream("/sse/events", &[]).await;
    let connection_id = stream.connection_id.clone();

    let response = app
        .post_json(
            "/sse/subscribe",
            &json!({"connection_id": connection_id, "event_types": "commit,file_change"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);

    drop(stream);
    // The broker notices the client is gone; then the id is unknown.
    crate::helpers::eventually(SHORT, "the dropped stream to be forgotten", || {
        let app = &app;
        let connection_id = connection_id.clone();
        async move {
            let response = app
                .post_json(
                    "/sse/subscribe",
                    &json!({"connection_id": connection_id, "event_types": ["commit"]}),
                )
                .await;
            (response.status().as_u16() == 404).then_some(response)
        }
    })
    .await;
    let response = app
        .post_json(
            "/sse/subscribe",
            &json!({"connection_id": connection_id, "event_types": ["commit"]}),
        )
        .await;
    assert_error(response, 404, "connection_not_found").await;
}

/// Reads from `socket` until `needle` has arrived (or panics after SHORT).
async fn read_until(socket: &mut tokio::net::TcpStream, received: &mut Vec<u8>, needle: &str) {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + SHORT;
    while !String::from_utf8_lossy(received).contains(needle) {
        let mut buffer = [0u8; 4096];
        let read = tokio::time::timeout_at(deadline, socket.read(&mut buffer))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{needle:?} did not arrive; got {:?}",
                    String::from_utf8_lossy(received)
                )
            })
            .expect("a read");
        assert!(
            read > 0,
            "closed before {needle:?}: {:?}",
            String::from_utf8_lossy(received)
        );
        received.extend_from_slice(&buffer[..read]);
    }
}

#[actix_web::test]
async fn an_http_1_0_client_gets_a_close_delimited_stream_not_chunks() {
    // Arrange
    let app = spawn_app().await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connected");
    tokio::io::AsyncWriteExt::write_all(&mut socket, b"GET /sse/events HTTP/1.0\r\n\r\n")
        .await
        .expect("request sent");
    let mut received = Vec::new();
    read_until(&mut socket, &mut received, "event: connected").await;

    // Act
    let id = app
        .publish_one(&json!({"event_type": "commit", "data": {"sha": "abc"}}))
        .await;
    read_until(&mut socket, &mut received, "\"sha\":\"abc\"").await;

    // Assert: no chunk framing anywhere; the frames are the body itself.
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1."), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(!head.contains("keep-alive"), "{head}");
    assert!(
        body.starts_with("retry: 3000\n"),
        "chunk framing in {body:?}"
    );
    assert!(
        body.contains(&format!(
            "id: {id}\nevent: commit\ndata: {{\"sha\":\"abc\"}}\n\n"
        )),
        "{body:?}"
    );
}

#[actix_web::test]
async fn a_stream_dropped_before_its_first_event_resumes_from_its_connected_id_without_a_gap() {
    // Arrange: history the stream must not get, then a live start.
    let app = spawn_app().await;
    let before = publish_commit(&app, 0).await;
    let stream = app.open_stream("/sse/events?event_types=commit", &[]).await;
    let start = stream
        .connected
        .id
        .clone()
        .expect("a live start names its position");
    assert_eq!(start, before.to_string(), "the last id stored before it");
    drop(stream);

    // Act: published while the client is away, then the browser's reconnect.
    let missed = [publish_commit(&app, 1).await, publish_commit(&app, 2).await];
    let mut resumed = app
        .open_stream(
            "/sse/events?event_types=commit",
            &[("Last-Event-ID", &start)],
        )
        .await;

    // Assert: exactly what was missed; a resumed stream's `connected` keeps
    // the client's own resume point (no `id:`).
    assert_eq!(resumed.connected.id, None, "{:?}", resumed.connected);
    let got: Vec<i64> = resumed
        .take_messages(2, SHORT)
        .await
        .iter()
        .filter_map(|event| event.id_number())
        .collect();
    assert_eq!(got, missed);
    resumed.assert_quiet(Duration::from_millis(200)).await;
}

#[actix_web::test]
async fn a_live_start_after_a_restart_names_the_last_id_stored_before_it() {
    let mut app = spawn_app().await;
    let last = publish_commit(&app, 0).await;

    app.restart().await;
    let stream = app.open_stream("/sse/events", &[]).await;

    assert_eq!(stream.connected.id, Some(last.to_string()));
}

async fn publish_commit(app: &crate::helpers::TestApp, n: u64) -> i64 {
    app.publish_one(&json!({ "event_type": "commit", "data": { "n": n } }))
        .await
}

/// The stream URLs answer `HEAD` as `GET` would (RFC 9110 §9.3.2): the
/// status and headers, no body, and no stream opened.
#[actix_web::test]
async fn stream_urls_answer_head_with_the_status_of_a_get_and_open_nothing() {
    // Arrange: a running task in a chat, and a finished one.
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    for (id, chat) in [("running", "chat-1"), ("finished", "chat-2")] {
        let created = app
            .post_json("/tasks", &json!({"task_id": id, "chat_id": chat}))
            .await;
        assert_eq!(created.status().as_u16(), 201);
        let text = app
            .post_json(&format!("/tasks/{id}/text"), &json!({"delta": "x"}))
            .await;
        assert_eq!(text.status().as_u16(), 202);
    }
    let done = app.post_json("/tasks/finished/complete", &json!({})).await;
    assert_eq!(done.status().as_u16(), 200);
    let last = app.get_json("/sse/history?limit=1000").await["events"]
        .as_array()
        .and_then(|events| events.last().cloned())
        .and_then(|event| event["id"].as_i64())
        .expect("the newest stored id");
    let last = last.to_string();

    // Act / Assert
    for (path, resume, status) in [
        ("/sse/events", None, 200),
        ("/sse/events?event_types=commit,nope", None, 422),
        ("/sse/events?last_event_id=abc", None, 400),
        ("/tasks/running/events", None, 200),
        ("/tasks/finished/events", None, 200),
        ("/tasks/finished/events", Some(last.as_str()), 204),
        ("/tasks/nobody/events", None, 404),
        ("/tasks/running/ui-message-stream", None, 200),
        ("/tasks/nobody/ui-message-stream", None, 404),
        ("/chats/chat-1/stream", None, 200),
        ("/chats/chat-2/stream", None, 204),
        ("/chats/bad!id/stream", None, 400),
    ] {
        let mut head = client.head(app.url(path));
        if let Some(resume) = resume {
            head = head.header("Last-Event-ID", resume);
        }
        let head = head.send().await.expect("HEAD");
        assert_eq!(head.status().as_u16(), status, "HEAD {path} {resume:?}");
        if status == 200 {
            assert_eq!(
                head.headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap()),
                Some("text/event-stream"),
                "{path}"
            );
            let ui = path.contains("ui-message-stream") || path.starts_with("/chats/");
            assert_eq!(
                head.headers().contains_key("x-vercel-ai-ui-message-stream"),
                ui,
                "{path}"
            );
        }
        assert_eq!(head.bytes().await.expect("the answer").len(), 0, "{path}");
    }
    let stats = app.get_json("/sse/stats").await;
    assert_eq!(
        stats["total_connections"], 0,
        "HEAD opened a stream: {stats}"
    );
}
