//! Every refusal is the contract's JSON error with its status, also where
//! actix-http or actix-web would answer in their own format (an oversized or
//! malformed request head, a slow one, an unknown route), and every message
//! is plain words that name the field: never serde's or Rust's phrasing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_error,
    raw_http::{exchange, exchange_one, parse_responses},
    spawn_app,
};

/// Phrases of serde, actix and Rust's `Debug` that a message may not hold.
fn assert_plain(body: &Value) {
    let message = body["error"]["message"].as_str().expect("a message");
    for phrase in [
        "expected",
        "invalid type",
        "deserialize",
        "Deserialize",
        "\\u{",
        "at line",
        "usize",
        "u64",
        "f64",
        "struct ",
        "untagged",
        "`",
    ] {
        assert!(!message.contains(phrase), "{phrase:?} in {message:?}");
    }
}

/// Asserts the error and its exact message.
async fn assert_message(response: reqwest::Response, status: u16, code: &str, message: &str) {
    let body = assert_error(response, status, code).await;
    assert_eq!(body["error"]["message"], message, "{body}");
    assert_plain(&body);
}

#[actix_web::test]
async fn a_100_kb_query_string_is_400_invalid_query() {
    let app = spawn_app().await;
    let request = format!(
        "GET /sse/history?event_types={} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(100_000)
    );

    let response = exchange_one(&app, request.as_bytes()).await;

    let body = response.assert_error(400, "invalid_query");
    assert_plain(&body);
    assert_eq!(response.header("connection"), Some("close"));
    // A long query under the limit is still served.
    app.get_json(&format!("/sse/history?pad={}", "a".repeat(8_000)))
        .await;
}

#[actix_web::test]
async fn a_64_kb_header_and_too_many_header_fields_are_431_headers_too_large() {
    let app = spawn_app().await;
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let fields: String = (0..200).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
    let many = format!("GET /health HTTP/1.1\r\nHost: localhost\r\n{fields}\r\n");
    // Far past actix-http's own 128 KiB buffer: still bounded, still JSON.
    let absurd = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(512 * 1024)
    );

    for request in [big, many, absurd] {
        let body = exchange_one(&app, request.as_bytes())
            .await
            .assert_error(431, "headers_too_large");
        assert_plain(&body);
    }
    // An ordinary client sending a huge cookie reads the answer too.
    let response = app
        .api_client
        .get(app.url("/health"))
        .header("Cookie", format!("a={}", "b".repeat(64 * 1024)))
        .send()
        .await
        .expect("the request sent");
    assert_error(response, 431, "headers_too_large").await;
}

#[actix_web::test]
async fn a_malformed_request_head_is_400_malformed_request() {
    let app = spawn_app().await;
    for request in [
        "GET /health HTTP/1.1\r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
        "GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /sse/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /sse/publish HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}",
    ] {
        let response = exchange_one(&app, request.as_bytes()).await;
        let body = response.assert_error(400, "malformed_request");
        assert_plain(&body);
    }
}

#[actix_web::test]
async fn a_stalled_first_head_is_408_and_an_idle_connection_closes_quietly() {
    let app = spawn_app().await;
    let wait = Duration::from_secs(10);

    let started = Instant::now();
    let stalled = exchange(&app, b"GET /health HTTP/1.1\r\nHost: loc", wait).await;
    assert!(started.elapsed() < wait, "the broker never answered");
    assert_eq!(stalled.len(), 1, "{stalled:?}");
    assert_plain(&stalled[0].assert_error(408, "request_timeout"));

    // A browser's preconnect that never sends a byte gets no answer.
    let started = Instant::now();
    let idle = exchange(&app, b"", wait).await;
    assert!(idle.is_empty(), "{idle:?}");
    assert!(
        started.elapsed() < wait,
        "the idle connection was not closed"
    );
}

/// actix-http times only a connection's first head; the guard times every
/// head from its first byte, so a kept-alive connection cannot be held by
/// a second head sent a byte at a time (each byte kept actix-http's own
/// keep-alive timer from closing it).
#[actix_web::test]
async fn a_later_head_trickled_on_a_kept_alive_connection_is_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let wait = Duration::from_secs(12);
    let socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connected");
    let (mut reading, mut writing) = socket.into_split();

    // A first request, then a second head a byte every 400 ms, never done.
    let started = Instant::now();
    let trickle = actix_rt::spawn(async move {
        let first = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nX-Slow: ";
        if writing.write_all(first).await.is_err() {
            return;
        }
        while started.elapsed() < Duration::from_secs(12) {
            tokio::time::sleep(Duration::from_millis(400)).await;
            if writing.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let mut received = Vec::new();
    let mut chunk = vec![0_u8; 16 * 1024];
    while let Ok(Ok(read @ 1..)) = tokio::time::timeout(wait, reading.read(&mut chunk)).await {
        received.extend_from_slice(&chunk[..read]);
    }
    trickle.abort();

    let answers = parse_responses(&received);
    assert!(
        started.elapsed() < wait,
        "still open after {wait:?}: {answers:?}"
    );
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0].status, 200, "{answers:?}");
    assert_plain(&answers[1].assert_error(408, "request_timeout"));
}

#[actix_web::test]
async fn a_kept_alive_connection_is_answered_in_order_up_to_a_refused_head() {
    let app = spawn_app().await;
    // Blank lines inside a body must not look like the end of a head.
    let event = "{\"event_type\":\"commit\",\r\n\r\n\"data\":{\"n\":1}}";
    let mut chunked = String::new();
    for piece in [&event[..10], &event[10..]] {
        chunked.push_str(&format!("{:x}\r\n{piece}\r\n", piece.len()));
    }
    chunked.push_str("0\r\n\r\n");
    let requests = [
        format!(
            "POST /sse/publish HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{event}",
            event.len()
        ),
        format!(
            "POST /sse/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"
        ),
        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        format!(
            "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(40 * 1024)
        ),
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
    ]
    .concat();

    let responses = exchange(&app, requests.as_bytes(), Duration::from_secs(5)).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [202, 202, 404, 431], "{responses:?}");
    responses[2].assert_error(404, "not_found");
    responses[3].assert_error(431, "headers_too_large");
    assert_eq!(app.stats().await["events_published"], 2);
}

#[actix_web::test]
async fn unknown_routes_are_404_and_known_paths_with_another_method_are_405() {
    let app = spawn_app().await;
    let request = |method: &str, path: &str| {
        app.api_client
            .request(method.parse().unwrap(), app.url(path))
            .send()
    };

    assert_error(
        request("GET", "/no/such/route").await.unwrap(),
        404,
        "not_found",
    )
    .await;
    for (method, path, allowed) in [
        ("DELETE", "/sse/publish", vec!["POST"]),
        ("POST", "/health", vec!["GET"]),
        ("PUT", "/tasks/abc", vec!["GET", "HEAD", "PATCH"]),
    ] {
        let response = request(method, path).await.unwrap();
        let allow = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = assert_error(response, 405, "method_not_allowed").await;
        let listed: Vec<&str> = body["error"]["allowed_methods"]
            .as_array()
            .expect("allowed_methods")
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        for method in &allowed {
            assert!(listed.contains(method), "{method} in {body}");
            assert!(allow.contains(method), "{method} in Allow: {allow}");
        }
    }
}

#[actix_web::test]
async fn a_wrong_query_parameter_is_named_in_plain_words() {
    let app = spawn_app().await;
    for (path, message) in [
        ("/sse/history?limit=abc", "limit must be a whole number"),
        ("/sse/history?limit=-5", "limit must be a whole number"),
        (
            "/sse/history?limit=1001",
            "limit must be between 1 and 1000",
        ),
        ("/sse/history?limit=0", "limit must be between 1 and 1000"),
        (
            "/sse/history?limit=1&limit=2",
            "limit is given more than once",
        ),
        ("/sse/connections?offset=x", "offset must be a whole number"),
        (
            "/sse/connections?limit=99999999999999999999999",
            "limit is too large",
        ),
    ] {
        assert_message(app.get(path).await, 400, "invalid_query", message).await;
    }
}

async fn new_task(app: &TestApp) -> String {
    let response = app.post_json("/tasks", &json!({})).await;
    assert_eq!(response.status().as_u16(), 201);
    let task: Value = response.json().await.unwrap();
    task["task_id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_batchs_refused_event_is_named_by_its_place_the_first_too() {
    let app = spawn_app().await;
    let unstored = json!({"event_type": "commit", "persist": false, "idempotency_key": "k"});
    for (body, code, begins) in [
        (
            json!([{"event_type": "bad"}, {"event_type": "commit"}]),
            "unknown_event_type",
            "event [0]: ",
        ),
        (
            json!([unstored, {"event_type": "commit"}]),
            "invalid_payload",
            "event [0]: idempotency_key needs a stored event",
        ),
        (
            json!([{"event_type": "commit"}, unstored]),
            "invalid_payload",
            "event [1]: idempotency_key needs a stored event",
        ),
        (
            json!({"event_type": "bad"}),
            "unknown_event_type",
            "unknown event type",
        ),
    ] {
        let error = assert_error(app.post_json("/sse/publish", &body).await, 422, code).await;
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(begins), "{body}: {message}");
    }
    assert_eq!(app.stats().await["events_published"], 0);
}

#[actix_web::test]
async fn a_wrong_body_field_is_named_in_plain_words() {
    let app = spawn_app().await;
    let task = new_task(&app).await;
    let subscribe = |event_types: Value| json!({"connection_id": "x", "event_types": event_types});
    for (path, body, message) in [
        (
            "/sse/publish",
            json!({"event_type": 5}),
            "event_type must be a string",
        ),
        ("/sse/publish", json!({}), "event_type is required"),
        (
            "/sse/publish",
            json!({"event_type": "commit", "persist": "yes"}),
            "persist must be true or false",
        ),
        (
            "/sse/publish",
            json!([{"event_type": "commit"}, {"event_type": 1}]),
            "event [1]: event_type must be a string",
        ),
        (
            "/sse/subscribe",
            subscribe(json!(5)),
            "event_types must be an array of event types or a comma-separated string",
        ),
        (
            "/sse/subscribe",
            subscribe(json!(["commit", 2])),
            "event_types[1] must be a string",
        ),
        (
            "/sse/cleanup",
            json!({"batch_size": "ten"}),
            "batch_size must be a whole number from 1 to 1000",
        ),
        ("/tasks", json!({"task_id": 5}), "task_id must be a string"),
        (
            &format!("/tasks/{task}/text"),
            json!({"delta": 5}),
            "delta must be a string",
        ),
        (
            &format!("/tasks/{task}/text"),
            json!({"deltas": "abc"}),
            "deltas must be an array",
        ),
    ] {
        let response = app.post_json(path, &body).await;
        assert_message(response, 422, "invalid_field", message).await;
    }
    let response = app
        .api_client
        .patch(app.url(&format!("/tasks/{task}")))
        .json(&json!({"progress": "50"}))
        .send()
        .await
        .unwrap();
    assert_message(response, 422, "invalid_field", "progress must be a number").await;
}

#[actix_web::test]
async fn malformed_json_is_described_without_the_parser_s_words() {
    let app = spawn_app().await;
    for (body, reason) in [
        (
            r#"{"event_type":"#,
            "it ends before the document is complete",
        ),
        (
            "{event_type: 1}",
            "object keys must be strings in double quotes",
        ),
        (r#"{"event_type":"commit",}"#, "a comma comes right before"),
    ] {
        let response = app
            .post_raw("/sse/publish", body, Some("application/json"))
            .await;
        let error = assert_error(response, 400, "malformed_json").await;
        assert_plain(&error);
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{body}: {message}");
    }
}

#[actix_web::test]
async fn echoed_input_is_json_escaped_never_rust_escaped() {
    let app = spawn_app().await;
    let task = new_task(&app).await;

    let response = app.publish(&json!({"event_type": "a\u{2028}b\nc"})).await;
    let body = assert_error(response, 422, "unknown_event_type").await;
    assert_plain(&body);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"a\u{2028}b\\nc\""), "{message}");

    let response = app
        .api_client
        .patch(app.url(&format!("/tasks/{task}")))
        .json(&json!({"status": "pa\tused"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 422, "invalid_field").await;
    assert_plain(&body);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"pa\\tused\""), "{message}");
}
