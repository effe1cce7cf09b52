//! Rate limits and the per-user stream cap: 429 with `Retry-After` (and
//! `retry_after_secs` in the body), who shares a budget (a token's `sub`,
//! a client address, the rightmost untrusted `X-Forwarded-For` entry behind
//! a trusted proxy), recovery once the wait is over, nothing stored for a
//! refused publish, and `sse_rate_limited_total{limit}`.
//!
//! Tests that check recovery use `N/s` rates and wait what `Retry-After`
//! says; the others use `N/min`, so no refill can happen during the test.

use std::{net::IpAddr, time::Duration};

use reqwest::{Method, Response};
use serde_json::{Value, json};
use sse_broker::config::{RateLimit, Settings};

use super::{check_config, get_as, open_stream_as, post_as, root_token, token, with_secret};
use crate::helpers::{SHORT, TestApp, assert_error, eventually, spawn_app_with};

/// `raw` parsed as the flags parse it (`None` for `off`).
fn rate(raw: &str) -> Option<RateLimit> {
    RateLimit::parse(raw).unwrap_or_else(|e| panic!("{raw:?} is a valid rate: {e}"))
}

/// A secured broker with `configure`'s limits.
async fn spawn_secured_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|settings| {
        with_secret(settings);
        configure(settings);
    })
    .await
}

/// Any request with an optional JSON body and bearer token.
async fn send_as(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    token: &str,
) -> Response {
    let mut request = app
        .api_client
        .request(method, app.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request sent")
}

/// `GET` a stream with a bearer token, without reading it.
async fn stream_as(app: &TestApp, path: &str, token: &str) -> Response {
    let authorization = format!("Bearer {token}");
    app.stream_response(path, &[("Authorization", &authorization)])
        .await
}

/// The `Retry-After` header in whole seconds.
fn retry_after(response: &Response) -> Option<u64> {
    let value = response.headers().get("retry-after")?;
    let text = value.to_str().expect("an ASCII Retry-After");
    Some(
        text.parse()
            .unwrap_or_else(|e| panic!("Retry-After {text:?} is not seconds: {e}")),
    )
}

/// Asserts a 429 `rate_limited` whose `Retry-After` header (at least 1 s)
/// and body's `retry_after_secs` agree. Returns how long to wait.
async fn assert_rate_limited(response: Response) -> Duration {
    let header = retry_after(&response);
    let body = assert_error(response, 429, "rate_limited").await;
    let secs = header.unwrap_or_else(|| panic!("a 429 without Retry-After: {body}"));
    assert!(secs >= 1, "Retry-After: {secs} ({body})");
    assert_eq!(
        body["error"]["retry_after_secs"].as_u64(),
        Some(secs),
        "retry_after_secs should match Retry-After: {secs}: {body}"
    );
    Duration::from_secs(secs)
}

/// Asserts a 429 `too_many_streams` with `Retry-After: 1`.
async fn assert_too_many_streams(response: Response) {
    let header = retry_after(&response);
    let body = assert_error(response, 429, "too_many_streams").await;
    assert_eq!(header, Some(1), "Retry-After of the stream cap: {body}");
}

/// The value of `sse_rate_limited_total{limit="<limit>"}` (0 when absent).
async fn rate_limited_total(app: &TestApp, limit: &str) -> f64 {
    let text = app
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics text");
    let label = format!("limit=\"{limit}\"");
    text.lines()
        .filter(|line| line.starts_with("sse_rate_limited_total{") && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the counter for `limit` reaches `expected`, then asserts it
/// did not pass it.
async fn assert_rate_limited_total(app: &TestApp, limit: &str, expected: f64) {
    let value = eventually(
        SHORT,
        &format!("sse_rate_limited_total{{limit=\"{limit}\"}} to reach {expected}"),
        || async move {
            let value = rate_limited_total(app, limit).await;
            (value >= expected).then_some(value)
        },
    )
    .await;
    assert_eq!(
        value, expected,
        "sse_rate_limited_total{{limit=\"{limit}\"}}"
    );
}

/// Creates the task `id` (no project) with the root token.
async fn create_task(app: &TestApp, id: &str) {
    let response = post_as(
        app,
        "/tasks",
        Some(&json!({ "task_id": id })),
        Some(&root_token()),
    )
    .await;
    assert_eq!(response.status().as_u16(), 201, "creating task {id}");
}

/// The `data.n` of every event in `token`'s history, oldest first.
async fn history_ns(app: &TestApp, token: &str) -> Vec<i64> {
    let response = get_as(app, "/sse/history?after=0", Some(token)).await;
    let status = response.status().as_u16();
    let text = response.text().await.expect("a history body");
    assert_eq!(status, 200, "history answered {text}");
    let history: Value = serde_json::from_str(&text).expect("history is JSON");
    history["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {history}"))
        .iter()
        .filter_map(|event| event["data"]["n"].as_i64())
        .collect()
}

#[test]
fn rates_parse_as_documented() {
    for valid in ["2/s", "120/min", "5/h"] {
        assert!(
            matches!(RateLimit::parse(valid), Ok(Some(_))),
            "{valid} should parse"
        );
    }
    assert!(matches!(RateLimit::parse("off"), Ok(None)));
    for invalid in ["2", "2/day", "x/s", "/s", "-1/s"] {
        assert!(
            RateLimit::parse(invalid).is_err(),
            "{invalid:?} should be refused"
        );
    }
}

// ---------------------------------------------------------------------------
// Per user

#[actix_web::test]
async fn a_user_opening_streams_too_fast_gets_429_with_retry_after_and_recovers() {
    // Arrange
    let app = spawn_secured_with(|s| s.limits.streams_per_user = rate("2/s")).await;
    create_task(&app, "t-1").await;
    let alice = token("alice", "subscribe", &[]);
    let bob = token("bob", "subscribe", &[]);
    let _first = open_stream_as(&app, "/sse/events", &alice).await;
    let _second = open_stream_as(&app, "/sse/events", &alice).await;

    // Act: a third stream of either kind within the second.
    let refused = stream_as(&app, "/sse/events", &alice).await;
    let refused_task = stream_as(&app, "/tasks/t-1/events", &alice).await;

    // Assert
    let wait = assert_rate_limited(refused).await;
    assert_rate_limited(refused_task).await;
    // Another user has a budget of their own, and only new streams count.
    let _bob = open_stream_as(&app, "/sse/events", &bob).await;
    let history = get_as(&app, "/sse/history", Some(&alice)).await;
    assert_eq!(history.status().as_u16(), 200, "alice's history");
    assert_rate_limited_total(&app, "streams_per_user", 2.0).await;
    // Retry-After is enough.
    tokio::time::sleep(wait).await;
    let _third = open_stream_as(&app, "/sse/events", &alice).await;
}

#[actix_web::test]
async fn a_user_minting_tickets_too_fast_gets_429_and_others_still_get_theirs() {
    // Arrange: tickets at the stream rate, counted apart from streams.
    let app = spawn_secured_with(|s| s.limits.streams_per_user = rate("3/min")).await;
    let alice = token("alice", "subscribe", &[]);
    let bob = token("bob", "subscribe", &[]);
    let mut tickets = Vec::new();
    for _ in 0..3 {
        let issued = send_as(&app, Method::POST, "/sse/tickets", None, &alice).await;
        assert_eq!(issued.status().as_u16(), 201);
        let body: Value = issued.json().await.expect("a ticket");
        tickets.push(body["ticket"].as_str().expect("a ticket").to_owned());
    }

    // Act
    let refused = send_as(&app, Method::POST, "/sse/tickets", None, &alice).await;
    let bobs = send_as(&app, Method::POST, "/sse/tickets", None, &bob).await;

    // Assert
    assert_rate_limited(refused).await;
    assert_eq!(bobs.status().as_u16(), 201, "bob has a budget of his own");
    assert_rate_limited_total(&app, "tickets_per_user", 1.0).await;
    // A ticket minted within the rate opens its stream (charged as one).
    let opened = app
        .stream_response(&format!("/sse/events?ticket={}", tickets[0]), &[])
        .await;
    assert_eq!(opened.status().as_u16(), 200);
    assert_rate_limited_total(&app, "streams_per_user", 0.0).await;
}

#[actix_web::test]
async fn a_user_publishing_too_fast_gets_429_and_the_refused_event_is_not_stored() {
    // Arrange
    let app = spawn_secured_with(|s| s.limits.publishes_per_user = rate("3/s")).await;
    let alice = token("alice", "subscribe publish", &[]);
    let bob = token("bob", "publish", &[]);
    let publish = |n: i64, token: &str| {
        let body = json!({"event_type": "commit", "data": {"n": n}});
        let token = token.to_owned();
        let app = &app;
        async move {
            (
                n,
                post_as(app, "/sse/publish", Some(&body), Some(&token)).await,
            )
        }
    };

    // Act: four publishes at once, one more than the burst.
    let answers = futures_util::future::join_all((1..=4).map(|n| publish(n, &alice))).await;

    // Assert: three stored, one refused with nothing stored for it.
    let mut refused = Vec::new();
    let mut accepted = Vec::new();
    for (n, response) in answers {
        match response.status().as_u16() {
            202 => accepted.push(n),
            429 => refused.push((n, response)),
            other => panic!("publish {n} answered {other}"),
        }
    }
    assert_eq!(accepted.len(), 3, "accepted {accepted:?}");
    let (refused_n, response) = refused.pop().expect("one publish refused");
    let wait = assert_rate_limited(response).await;
    let (_, bob_answer) = publish(100, &bob).await;
    assert_eq!(bob_answer.status().as_u16(), 202, "bob is not limited");
    let mut expected = accepted.clone();
    expected.push(100);
    let mut stored = history_ns(&app, &root_token()).await;
    stored.sort_unstable();
    assert_eq!(stored, expected, "event {refused_n} was refused");
    assert_rate_limited_total(&app, "publishes_per_user", 1.0).await;

    // Recovers after Retry-After.
    tokio::time::sleep(wait).await;
    let (_, answer) = publish(5, &alice).await;
    assert_eq!(answer.status().as_u16(), 202, "a publish after Retry-After");
    assert!(
        history_ns(&app, &root_token()).await.contains(&5),
        "the publish after recovery is stored"
    );
}

#[actix_web::test]
async fn test_events_and_task_writes_share_the_publish_budget() {
    // Arrange: a budget of three writes a minute.
    let app = spawn_secured_with(|s| s.limits.publishes_per_user = rate("3/min")).await;
    create_task(&app, "t-1").await;
    let alice = token("alice", "subscribe publish", &[]);
    let writes = [
        (Method::POST, "/tasks/t-1/text", json!({"delta": "Hel"})),
        (Method::POST, "/sse/test-event", json!({})),
        (
            Method::POST,
            "/sse/publish",
            json!({"event_type": "commit", "data": {"n": 1}}),
        ),
    ];
    for (method, path, body) in &writes {
        let response = send_as(&app, method.clone(), path, Some(body), &alice).await;
        assert_eq!(response.status().as_u16(), 202, "{method} {path}");
    }

    // Act / Assert: every kind of write is refused now.
    let refused = [
        (
            Method::POST,
            "/sse/publish",
            json!({"event_type": "commit"}),
        ),
        (Method::POST, "/sse/test-event", json!({})),
        (Method::POST, "/tasks/t-1/text", json!({"delta": "lo"})),
        (Method::PATCH, "/tasks/t-1", json!({"progress": 50})),
        (Method::POST, "/tasks/t-1/complete", json!({})),
    ];
    for (method, path, body) in &refused {
        let response = send_as(&app, method.clone(), path, Some(body), &alice).await;
        assert_eq!(response.status().as_u16(), 429, "{method} {path}");
        assert_rate_limited(response).await;
    }
    // Reads are not writes.
    let task = get_as(&app, "/tasks/t-1", Some(&alice)).await;
    assert_eq!(task.status().as_u16(), 200, "reading the task");
    assert_rate_limited_total(&app, "publishes_per_user", refused.len() as f64).await;
}

#[actix_web::test]
async fn a_user_at_the_stream_cap_gets_429_until_one_of_their_streams_closes() {
    // Arrange
    let app = spawn_secured_with(|s| {
        s.limits.max_streams_per_user = 2;
        s.limits.streams_per_user = None;
    })
    .await;
    create_task(&app, "t-1").await;
    let alice = token("alice", "subscribe", &[]);
    let bob = token("bob", "subscribe", &[]);
    let first = open_stream_as(&app, "/sse/events", &alice).await;
    let _second = open_stream_as(&app, "/tasks/t-1/events", &alice).await;
    let _bob = open_stream_as(&app, "/sse/events", &bob).await;

    // Act
    let refused = stream_as(&app, "/sse/events", &alice).await;
    let refused_task = stream_as(&app, "/tasks/t-1/events", &alice).await;

    // Assert
    assert_too_many_streams(refused).await;
    assert_too_many_streams(refused_task).await;
    assert_rate_limited_total(&app, "streams_per_user_cap", 2.0).await;

    // Closing one of alice's streams makes room for one more.
    drop(first);
    let root = root_token();
    eventually(SHORT, "alice's first stream to be gone", || {
        let (app, root) = (&app, &root);
        async move {
            let stats: Value = get_as(app, "/sse/stats", Some(root))
                .await
                .json()
                .await
                .ok()?;
            (stats["active_connections"] == 2).then_some(())
        }
    })
    .await;
    let _replacement = open_stream_as(&app, "/sse/events", &alice).await;
    let refused = stream_as(&app, "/sse/events", &alice).await;
    assert_too_many_streams(refused).await;
}

#[actix_web::test]
async fn without_authentication_the_per_user_rates_do_not_apply() {
    // Arrange: rates that one user would exceed at once.
    let app = spawn_app_with(|s| {
        s.limits.streams_per_user = rate("1/min");
        s.limits.publishes_per_user = rate("1/min");
    })
    .await;

    // Act
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(app.open_stream("/sse/events?user_id=alice", &[]).await);
    }
    for n in 0..3 {
        app.publish_one(&json!({"event_type": "commit", "data": {"n": n}}))
            .await;
    }

    // Assert
    assert_eq!(rate_limited_total(&app, "streams_per_user").await, 0.0);
    assert_eq!(rate_limited_total(&app, "publishes_per_user").await, 0.0);
}

#[actix_web::test]
async fn without_authentication_the_per_user_stream_cap_does_not_apply() {
    // Arrange: the cap is per token `sub`; `?user_id=` is a claim anyone
    // can make, and there is no token.
    let app = spawn_app_with(|s| s.limits.max_streams_per_user = 1).await;

    // Act
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(app.open_stream("/sse/events?user_id=alice", &[]).await);
    }

    // Assert
    assert_eq!(rate_limited_total(&app, "streams_per_user_cap").await, 0.0);
}

// ---------------------------------------------------------------------------
// Per client address

const LOOPBACK: &str = "127.0.0.1";

fn forwarded_for(value: &str) -> [(&str, &str); 1] {
    [("X-Forwarded-For", value)]
}

#[actix_web::test]
async fn the_stream_rate_per_address_limits_anonymous_clients_and_recovers() {
    // Arrange
    let app = spawn_app_with(|s| s.limits.streams_per_ip = rate("2/s")).await;
    let _first = app.open_stream("/sse/events", &[]).await;
    let _second = app.open_stream("/sse/events?user_id=alice", &[]).await;

    // Act: a claimed identity does not give a new budget.
    let refused = app.stream_response("/sse/events?user_id=bob", &[]).await;

    // Assert
    let wait = assert_rate_limited(refused).await;
    assert_rate_limited_total(&app, "streams_per_ip", 1.0).await;
    tokio::time::sleep(wait).await;
    let _third = app.open_stream("/sse/events", &[]).await;
}

#[actix_web::test]
async fn a_forwarded_for_header_from_an_untrusted_peer_does_not_escape_the_limit() {
    // Arrange: no trusted proxies; every request comes from 127.0.0.1.
    let app = spawn_app_with(|s| s.limits.streams_per_ip = rate("2/min")).await;
    let _first = app
        .open_stream("/sse/events", &forwarded_for("203.0.113.1"))
        .await;
    let _second = app
        .open_stream("/sse/events", &forwarded_for("203.0.113.2"))
        .await;

    // Act
    let spoofed = app
        .stream_response("/sse/events", &forwarded_for("203.0.113.3"))
        .await;
    let plain = app.stream_response("/sse/events", &[]).await;

    // Assert
    assert_rate_limited(spoofed).await;
    assert_rate_limited(plain).await;
    assert_rate_limited_total(&app, "streams_per_ip", 2.0).await;
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    // Arrange: the test's own address is the trusted proxy.
    let app = spawn_app_with(|s| {
        s.limits.streams_per_ip = rate("2/min");
        s.limits.trusted_proxies = vec![LOOPBACK.parse::<IpAddr>().unwrap()];
    })
    .await;
    let mut streams = Vec::new();
    for _ in 0..2 {
        streams.push(
            app.open_stream("/sse/events", &forwarded_for("203.0.113.1"))
                .await,
        );
    }

    // Act / Assert: 203.0.113.1 has used its budget, also when it prepends
    // a made-up address (the rightmost untrusted entry is the client).
    for header in ["203.0.113.1", "198.51.100.99, 203.0.113.1"] {
        let response = app
            .stream_response("/sse/events", &forwarded_for(header))
            .await;
        assert_eq!(response.status().as_u16(), 429, "X-Forwarded-For: {header}");
        assert_rate_limited(response).await;
    }
    // Other clients behind the proxy have their own budgets; trusted
    // entries on the right are skipped to find the client.
    for header in [
        "203.0.113.2",
        "203.0.113.2",
        "203.0.113.3, 127.0.0.1",
        "203.0.113.3, 127.0.0.1",
    ] {
        streams.push(app.open_stream("/sse/events", &forwarded_for(header)).await);
    }
    let response = app
        .stream_response("/sse/events", &forwarded_for("203.0.113.3"))
        .await;
    assert_rate_limited(response).await;
    assert_rate_limited_total(&app, "streams_per_ip", 3.0).await;
}

#[actix_web::test]
async fn refused_stream_opens_use_none_of_the_budget() {
    // Arrange: three opens a minute per address and per user.
    let app = spawn_secured_with(|s| {
        s.limits.streams_per_ip = rate("3/min");
        s.limits.streams_per_user = rate("3/min");
    })
    .await;
    let alice = token("alice", "subscribe publish", &["p1"]);
    create_task(&app, "t-1").await;

    // Act: refusals of every kind before any valid open.
    let refusals = [
        ("/sse/events?project_id=p2", 403),
        ("/sse/events?event_types=nope", 422),
        ("/sse/events?last_event_id=abc", 400),
        ("/tasks/unknown-task/events", 404),
        ("/tasks/bad!id/events", 400),
    ];
    for (path, status) in refusals {
        let response = stream_as(&app, path, &alice).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
    }

    // Assert: the whole budget is still there, and then it is spent.
    let mut open = Vec::new();
    for path in [
        "/sse/events",
        "/sse/events?project_id=p1",
        "/tasks/t-1/events",
    ] {
        open.push(open_stream_as(&app, path, &alice).await);
    }
    assert_rate_limited(stream_as(&app, "/sse/events", &alice).await).await;
}

#[actix_web::test]
async fn opens_refused_by_the_stream_cap_or_a_full_broker_use_none_of_the_budget() {
    // Arrange: three opens a minute per address, two per user; one stream
    // per user, two on the broker.
    let app = spawn_secured_with(|s| {
        s.limits.streams_per_ip = rate("3/min");
        s.limits.streams_per_user = rate("2/min");
        s.limits.max_streams_per_user = 1;
        s.max_connections = 2;
    })
    .await;
    create_task(&app, "t-1").await;
    let alice = token("alice", "subscribe", &[]);
    let bob = token("bob", "subscribe", &[]);
    let carol = token("carol", "subscribe", &[]);
    let root = root_token();
    let open_streams = |count: u64| {
        let (app, root) = (&app, &root);
        eventually(SHORT, "the closed stream to be gone", move || async move {
            let stats: Value = get_as(app, "/sse/stats", Some(root))
                .await
                .json()
                .await
                .ok()?;
            (stats["active_connections"] == count).then_some(())
        })
    };
    let first = open_stream_as(&app, "/sse/events", &alice).await;

    // Act: alice at her cap, on every kind of stream.
    for path in [
        "/sse/events",
        "/tasks/t-1/events",
        "/tasks/t-1/ui-message-stream",
    ] {
        assert_too_many_streams(stream_as(&app, path, &alice).await).await;
    }
    // The broker full: bob's stream is the second, carol's is refused.
    let _bob = open_stream_as(&app, "/sse/events", &bob).await;
    let full = stream_as(&app, "/sse/events", &carol).await;
    assert_error(full, 503, "too_many_connections").await;

    // Assert: the four refusals cost nothing. Alice's budget paid for one
    // stream and the address's for two, so once her first is gone she
    // opens a second (the address's third), and only then is she over.
    drop(first);
    open_streams(1).await;
    let second = open_stream_as(&app, "/tasks/t-1/events", &alice).await;
    drop(second);
    open_streams(1).await;
    assert_rate_limited(stream_as(&app, "/sse/events", &alice).await).await;
    assert_rate_limited_total(&app, "streams_per_user_cap", 3.0).await;
}

// ---------------------------------------------------------------------------
// Flags

#[test]
fn the_limit_flags_have_the_documented_defaults_and_refuse_bad_values() {
    // Act
    let (code, defaults, stderr) = check_config(&[]);
    let (set_code, set, set_stderr) = check_config(&[
        "--stream-rate-per-ip",
        "30/min",
        "--stream-rate-per-user",
        "off",
        "--publish-rate-per-user",
        "10/s",
        "--max-streams-per-user",
        "0",
        "--trusted-proxies",
        "10.0.0.5, ::1",
    ]);
    let (bad_rate, _, bad_rate_stderr) = check_config(&["--stream-rate-per-ip", "2/day"]);
    let (bad_proxy, _, bad_proxy_stderr) = check_config(&["--trusted-proxies", "nginx.local"]);

    // Assert
    assert_eq!(code, Some(0), "{stderr}");
    let defaults: Value = serde_json::from_str(&defaults).expect("check-config prints JSON");
    assert_eq!(defaults["stream_rate_per_ip"], "off", "{defaults}");
    assert_eq!(defaults["stream_rate_per_user"], "120/min", "{defaults}");
    assert_eq!(defaults["publish_rate_per_user"], "off", "{defaults}");
    assert_eq!(defaults["max_streams_per_user"], 100, "{defaults}");
    assert_eq!(defaults["trusted_proxies"], json!([]), "{defaults}");
    assert_eq!(set_code, Some(0), "{set_stderr}");
    let set: Value = serde_json::from_str(&set).expect("check-config prints JSON");
    assert_eq!(set["stream_rate_per_ip"], "30/min", "{set}");
    assert_eq!(set["stream_rate_per_user"], "off", "{set}");
    assert_eq!(set["publish_rate_per_user"], "10/s", "{set}");
    assert_eq!(set["max_streams_per_user"], 0, "{set}");
    assert_eq!(set["trusted_proxies"], json!(["10.0.0.5", "::1"]), "{set}");
    assert_eq!(bad_rate, Some(1), "a rate per day: {bad_rate_stderr}");
    assert!(bad_rate_stderr.contains("2/day"), "{bad_rate_stderr}");
    assert_eq!(bad_proxy, Some(1), "a host name: {bad_proxy_stderr}");
    assert!(
        bad_proxy_stderr.contains("nginx.local"),
        "{bad_proxy_stderr}"
    );
}
