//! Stream tickets (`POST /sse/tickets`, `?ticket=`): a short-lived,
//! single-use stand-in for the token in a stream's URL, carrying the
//! token's subject, scopes, projects and expiry; single use across a
//! cluster; never in the logs.

use std::time::Duration;

use serde_json::{Value, json};

use super::{SECRET, claims, now, root_token, sign, token, with_secret};
use crate::helpers::{BrokerProcess, EventStream, SHORT, TestApp, assert_error, spawn_app_with};

/// A ticket from the broker at `address` (201 asserted).
async fn ticket_at(client: &reqwest::Client, address: &str, token: &str) -> Value {
    let response = client
        .post(format!("{address}/sse/tickets"))
        .bearer_auth(token)
        .send()
        .await
        .expect("a ticket request");
    assert_eq!(response.status().as_u16(), 201, "a ticket is created");
    response.json().await.expect("JSON")
}

async fn ticket_for(app: &TestApp, token: &str) -> Value {
    ticket_at(&app.api_client, &app.address, token).await
}

async fn open_with_ticket(app: &TestApp, path: &str, ticket: &str) -> reqwest::Response {
    app.api_client
        .get(format!("{}{path}?ticket={ticket}", app.address))
        .send()
        .await
        .expect("a stream request")
}

async fn secured_app(ttl: Duration) -> TestApp {
    spawn_app_with(|s| {
        with_secret(s);
        s.auth.ticket_ttl = ttl;
    })
    .await
}

#[actix_web::test]
async fn a_ticket_opens_one_stream_once_and_forged_or_used_ones_get_401() {
    // Arrange
    let app = secured_app(Duration::from_secs(30)).await;
    let issued = ticket_for(&app, &token("alice", "subscribe", &["*"])).await;
    let ticket = issued["ticket"].as_str().expect("a ticket").to_owned();
    let expires_at = issued["expires_at"].as_i64().expect("an expiry");

    // Act
    let first = open_with_ticket(&app, "/sse/events", &ticket).await;
    let again = open_with_ticket(&app, "/sse/events", &ticket).await;
    let forged = open_with_ticket(&app, "/sse/events", &"0".repeat(64)).await;

    // Assert
    assert!(
        (now() + 25..=now() + 31).contains(&expires_at),
        "thirty seconds by default: {issued}"
    );
    assert_eq!(first.status().as_u16(), 200);
    let mut stream = EventStream::connected(first, "the ticket's stream").await;
    app.api_client
        .post(format!("{}/sse/publish", app.address))
        .bearer_auth(root_token())
        .json(&json!({"event_type": "commit", "data": {"n": 1}}))
        .send()
        .await
        .expect("a publish");
    let event = stream
        .next_message(SHORT)
        .await
        .expect("the stream is live");
    assert!(event.is("commit"));
    assert_error(again, 401, "unauthorized").await;
    assert_error(forged, 401, "unauthorized").await;
}

#[actix_web::test]
async fn asking_for_a_ticket_needs_a_token_with_the_subscribe_scope() {
    // Arrange
    let app = secured_app(Duration::from_secs(30)).await;
    let url = format!("{}/sse/tickets", app.address);

    // Act
    let anonymous = app.api_client.post(&url).send().await.expect("sent");
    let publisher = app
        .api_client
        .post(&url)
        .bearer_auth(token("backend", "publish", &["*"]))
        .send()
        .await
        .expect("sent");
    // A ticket is no token: it cannot ask for another one.
    let issued = ticket_for(&app, &token("alice", "subscribe", &["*"])).await;
    let by_ticket = app
        .api_client
        .post(format!(
            "{url}?ticket={}",
            issued["ticket"].as_str().unwrap()
        ))
        .send()
        .await
        .expect("sent");

    // Assert
    assert_error(anonymous, 401, "unauthorized").await;
    assert_error(publisher, 403, "forbidden").await;
    assert_error(by_ticket, 401, "unauthorized").await;
}

#[actix_web::test]
async fn a_ticket_carries_its_tokens_projects_and_ends_with_it() {
    // Arrange: a token for project `a` only, ending in 10 s.
    let app = secured_app(Duration::from_secs(30)).await;
    let mut short = claims("bob", "subscribe", &["a"]);
    short["exp"] = json!(now() + 10);
    let issued = ticket_for(&app, &sign(&short)).await;
    let foreign = ticket_for(&app, &token("bob", "subscribe", &["a"])).await;

    // Act
    let stream = open_with_ticket(&app, "/sse/events", issued["ticket"].as_str().unwrap()).await;
    let other_project = app
        .api_client
        .get(format!(
            "{}/sse/events?project_id=b&ticket={}",
            app.address,
            foreign["ticket"].as_str().unwrap()
        ))
        .send()
        .await
        .expect("sent");

    // Assert
    assert!(
        issued["expires_at"].as_i64().unwrap() <= now() + 10,
        "never past the token: {issued}"
    );
    assert_eq!(stream.status().as_u16(), 200);
    let mut stream = EventStream::connected(stream, "bob's stream").await;
    for project in ["b", "a"] {
        app.api_client
            .post(format!("{}/sse/publish", app.address))
            .bearer_auth(root_token())
            .json(&json!({"event_type": "commit", "project_id": project, "data": {"p": project}}))
            .send()
            .await
            .expect("a publish");
    }
    // Its token ends within --token-refresh-secs: the warning comes first.
    let warning = stream.next_message(SHORT).await.expect("token_expiring");
    assert!(warning.is("token_expiring"), "{warning:?}");
    let event = stream.next_message(SHORT).await.expect("project a's event");
    assert_eq!(event.json()["p"], "a", "project b's event is not for bob");
    assert_error(other_project, 403, "forbidden").await;
}

#[actix_web::test]
async fn an_expired_ticket_gets_401() {
    // Arrange
    let app = secured_app(Duration::from_secs(1)).await;
    let issued = ticket_for(&app, &token("carol", "subscribe", &["*"])).await;

    // Act
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = open_with_ticket(&app, "/sse/events", issued["ticket"].as_str().unwrap()).await;

    // Assert
    assert_error(late, 401, "unauthorized").await;
}

#[actix_web::test]
async fn a_ticket_opens_a_tasks_stream() {
    // Arrange
    let app = secured_app(Duration::from_secs(30)).await;
    let task: Value = app
        .api_client
        .post(format!("{}/tasks", app.address))
        .bearer_auth(root_token())
        .json(&json!({"task_type": "tickets"}))
        .send()
        .await
        .expect("a task")
        .json()
        .await
        .expect("JSON");
    let task_id = task["task_id"].as_str().expect("an id");
    let issued = ticket_for(&app, &root_token()).await;

    // Act
    let stream = open_with_ticket(
        &app,
        &format!("/tasks/{task_id}/events"),
        issued["ticket"].as_str().unwrap(),
    )
    .await;

    // Assert
    assert_eq!(stream.status().as_u16(), 200);
    let mut stream = EventStream::connected(stream, "the task's stream").await;
    app.api_client
        .post(format!("{}/tasks/{task_id}/text", app.address))
        .bearer_auth(root_token())
        .json(&json!({"delta": "hi"}))
        .send()
        .await
        .expect("a delta");
    // After the task's state (`progress`), its text.
    let mut seen = Vec::new();
    while let Some(event) = stream.next_message(SHORT).await {
        let text = event.is("text");
        seen.push(event);
        if text {
            return;
        }
    }
    panic!("no text event on the task's stream: {seen:?}");
}

/// The AI SDK's streams open with a ticket too (a page may read them with
/// `EventSource`, or fetch without its token in a header), once.
#[actix_web::test]
async fn a_ticket_opens_a_tasks_ui_message_stream_and_a_chats_once() {
    // Arrange
    let app = secured_app(Duration::from_secs(30)).await;
    let created = app
        .api_client
        .post(format!("{}/tasks", app.address))
        .bearer_auth(root_token())
        .json(&json!({"task_id": "t1", "chat_id": "c1"}))
        .send()
        .await
        .expect("a task");
    assert_eq!(created.status().as_u16(), 201);

    for path in ["/tasks/t1/ui-message-stream", "/chats/c1/stream"] {
        let issued = ticket_for(&app, &root_token()).await;
        let ticket = issued["ticket"].as_str().unwrap();

        // Act
        let first = open_with_ticket(&app, path, ticket).await;
        let again = open_with_ticket(&app, path, ticket).await;

        // Assert
        assert_eq!(first.status().as_u16(), 200, "{path}");
        assert_eq!(
            first.headers()["x-vercel-ai-ui-message-stream"],
            "v1",
            "{path}"
        );
        assert_error(again, 401, "unauthorized").await;
    }
}

#[actix_web::test]
async fn in_a_cluster_a_ticket_issued_by_one_instance_opens_a_stream_on_another_once() {
    // Arrange: two instances on one Redis.
    let (a, b, _store) = super::secured_cluster().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let issued = ticket_at(&client, &a.address, &token("dave", "subscribe", &["*"])).await;
    let ticket = issued["ticket"].as_str().expect("a ticket");

    // Act
    let on_b = client
        .get(format!("{}/sse/events?ticket={ticket}", b.address))
        .send()
        .await
        .expect("sent");
    let again_on_a = client
        .get(format!("{}/sse/events?ticket={ticket}", a.address))
        .send()
        .await
        .expect("sent");

    // Assert
    assert_eq!(on_b.status().as_u16(), 200, "instance b redeems a's ticket");
    assert_error(again_on_a, 401, "unauthorized").await;
    drop(on_b);
}

/// While Redis is down a ticket is refused promptly (503, the page tries
/// again); after Redis restarts, the first ticket asked for is issued, and
/// redeemed: the connection the tickets keep learns of the restart from
/// that first command (a broken pipe) and the command is tried again, not
/// refused.
#[actix_web::test]
async fn with_redis_down_a_ticket_is_refused_promptly_and_after_it_restarts_the_first_is_issued() {
    use crate::cluster::harness::{self, Node, RedisServer};
    // Arrange: one instance on a Redis of its own, tickets used once.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut redis = RedisServer::start().await;
    let mut settings = harness::settings(
        sse_broker::config::DatabaseUrl::Sqlite {
            path: dir.path().join("events.db"),
        },
        Some(&redis.url()),
        &harness::cluster_name(),
        "a",
    );
    with_secret(&mut settings);
    let node = Node::start(settings).await;
    let redis_up = |_: u16, body: &Value| body["checks"]["redis"]["status"] == "up";
    harness::wait_for_health(&node, harness::LONG, "Redis up", redis_up).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let token = token("erin", "subscribe", &["*"]);
    ticket_at(&client, &node.address, &token).await;

    // Act: Redis goes away (the bridge sees it), then comes back.
    redis.kill();
    let redis_down = |_: u16, body: &Value| body["checks"]["redis"]["status"] == "down";
    harness::wait_for_health(&node, harness::LONG, "Redis down", redis_down).await;
    let asked = std::time::Instant::now();
    let refused = client
        .post(format!("{}/sse/tickets", node.address))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    let waited = asked.elapsed();
    assert!(refused.headers().contains_key("retry-after"));
    assert_error(refused, 503, "auth_unavailable").await;
    // The manager's default reconnects held it 7.5 s; a page waits on it.
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    redis.restart().await;
    harness::wait_for_health(&node, harness::LONG, "Redis up again", redis_up).await;
    let issued = ticket_at(&client, &node.address, &token).await;
    let ticket = issued["ticket"].as_str().expect("a ticket");
    let stream = client
        .get(format!("{}/sse/events?ticket={ticket}", node.address))
        .send()
        .await
        .expect("sent");

    // Assert
    assert_eq!(stream.status().as_u16(), 200);
}

#[actix_web::test]
async fn a_real_ticket_never_reaches_the_logs() {
    // Arrange
    let dir = tempfile::tempdir().expect("a scratch directory");
    let mut broker = BrokerProcess::spawn_with(
        &dir.path().join("events.db"),
        dir.path().join("broker.log"),
        &[],
        &[("SSE_BROKER_JWT_SECRET", SECRET), ("RUST_LOG", "debug")],
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    broker.wait_until_ready(&client).await;
    let issued = ticket_at(
        &client,
        &broker.address,
        &token("erin", "subscribe", &["*"]),
    )
    .await;
    let ticket = issued["ticket"].as_str().expect("a ticket").to_owned();

    // Act: used once (200), then again (401).
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let response = client
            .get(format!("{}/sse/events?ticket={ticket}", broker.address))
            .send()
            .await
            .expect("sent");
        statuses.push(response.status().as_u16());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Assert
    assert_eq!(statuses, [200, 401]);
    let logs = broker.logs();
    assert!(!logs.contains(&ticket), "the ticket is in the log:\n{logs}");
    assert!(logs.contains("ticket=REDACTED"), "{logs}");
}

/// Two tickets in one URL are refused as two tokens are: taking the first
/// or the last would let their order decide whose stream opens. Neither is
/// spent.
#[actix_web::test]
async fn two_tickets_in_one_url_are_refused_and_neither_is_spent() {
    // Arrange
    let app = secured_app(Duration::from_secs(30)).await;
    let alice = ticket_for(&app, &token("alice", "subscribe", &["p1"])).await;
    let bob = ticket_for(&app, &token("bob", "subscribe", &["p2"])).await;
    let (alice, bob) = (
        alice["ticket"].as_str().expect("a ticket").to_owned(),
        bob["ticket"].as_str().expect("a ticket").to_owned(),
    );

    // Act
    let both = app
        .api_client
        .get(format!(
            "{}/sse/events?ticket={alice}&ticket={bob}",
            app.address
        ))
        .send()
        .await
        .expect("a stream request");

    // Assert
    // The status first: an opened stream's body never ends.
    assert_eq!(both.status().as_u16(), 401, "{:?}", both.headers());
    let body: Value = both.json().await.expect("JSON");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("two tokens were sent")),
        "{body}"
    );
    for ticket in [&alice, &bob] {
        let alone = open_with_ticket(&app, "/sse/events", ticket).await;
        assert_eq!(
            alone.status().as_u16(),
            200,
            "an unspent ticket still opens its stream"
        );
    }
}
