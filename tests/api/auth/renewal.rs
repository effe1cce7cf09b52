//! A token renewed without a reconnect: `--token-refresh-secs` before its
//! token expires a stream receives `event: token_expiring`, and a fresh
//! token for the same subject, posted to `/sse/connections/{id}/token`,
//! keeps it alive to the new expiry.

use std::time::Duration;

use serde_json::json;

use super::{claims, now, open_stream_as, post_as, root_token, sign, with_secret};
use crate::helpers::{SHORT, TestApp, assert_error, spawn_app_with};

/// A token for `sub` (subscribe, project `p1`) expiring in `secs`.
fn expiring(sub: &str, secs: i64) -> (String, i64) {
    let mut short = claims(sub, "subscribe", &["p1"]);
    let exp = now() + secs;
    short["exp"] = json!(exp);
    (sign(&short), exp)
}

async fn renew(app: &TestApp, connection_id: &str, token: &str) -> reqwest::Response {
    post_as(
        app,
        &format!("/sse/connections/{connection_id}/token"),
        None,
        Some(token),
    )
    .await
}

async fn publish_to_p1(app: &TestApp, n: u32) {
    let response = post_as(
        app,
        "/sse/publish",
        Some(&json!({"event_type": "commit", "project_id": "p1", "data": {"n": n}})),
        Some(&root_token()),
    )
    .await;
    assert_eq!(response.status().as_u16(), 202);
}

#[actix_web::test]
async fn a_fresh_token_for_the_same_subject_keeps_the_stream_past_the_old_expiry() {
    // Arrange: a token 3 s from its end, warned 60 s ahead (the default).
    let app = spawn_app_with(with_secret).await;
    let (token, exp) = expiring("alice", 3);
    let mut stream = open_stream_as(&app, "/sse/events", &token).await;

    // Act 1: the warning.
    let warning = stream.next_message(SHORT).await.expect("token_expiring");

    // Assert 1
    assert!(warning.is("token_expiring"), "{warning:?}");
    assert_eq!(warning.json()["expires_at"], exp);
    assert_eq!(warning.id, None, "a control frame has no id");

    // Act 2: a fresh token for alice, an hour long.
    let (fresh, fresh_exp) = expiring("alice", 3600);
    let renewed = renew(&app, &stream.connection_id, &fresh).await;
    assert_eq!(renewed.status().as_u16(), 204);
    tokio::time::sleep(Duration::from_secs((exp - now()).max(0) as u64 + 2)).await;
    publish_to_p1(&app, 1).await;

    // Assert 2: alive past the old expiry, not warned again (the new one is
    // an hour away).
    let event = stream.next_message(SHORT).await.expect("still streaming");
    assert!(event.is("commit"), "{event:?}");
    assert_eq!(event.json()["n"], 1);
    assert!(fresh_exp > exp);
}

#[actix_web::test]
async fn without_a_fresh_token_the_stream_ends_at_its_expiry() {
    // Arrange
    let app = spawn_app_with(with_secret).await;
    let (token, _) = expiring("bob", 2);
    let mut stream = open_stream_as(&app, "/sse/events", &token).await;

    // Act
    let events = stream.read_to_end(Duration::from_secs(6)).await;

    // Assert: warned, then ended.
    let names: Vec<String> = events
        .iter()
        .filter(|e| !e.is_heartbeat())
        .filter_map(|e| e.event.clone())
        .collect();
    assert_eq!(names, ["token_expiring", "token_expired"], "{events:?}");
}

#[actix_web::test]
async fn the_warning_comes_token_refresh_secs_before_the_expiry() {
    // Arrange: warned 2 s ahead of an expiry 5 s away.
    let app = spawn_app_with(|s| {
        with_secret(s);
        s.auth.token_refresh = Duration::from_secs(2);
    })
    .await;
    let (token, exp) = expiring("carol", 5);
    let mut stream = open_stream_as(&app, "/sse/events", &token).await;

    // Act: `exp` is in whole seconds, so the warning is due 2 to 3 s after
    // the token was made, and the stream opened a little after that.
    let early = stream.next_message(Duration::from_millis(1500)).await;
    let warning = stream.next_message(SHORT).await.expect("token_expiring");

    // Assert
    assert!(
        early.is_none(),
        "nothing before the refresh window: {early:?}"
    );
    assert!(warning.is("token_expiring"));
    let warned_at = now();
    assert!(
        (exp - 3..=exp - 1).contains(&warned_at),
        "warned at {warned_at} for {exp}"
    );
}

#[actix_web::test]
async fn a_renewed_token_is_warned_about_token_refresh_secs_before_its_own_expiry() {
    // Arrange: warned 8 s ahead; a token 9 s long, renewed on its warning
    // with one 10 s long, which expires 2 s after the first would have.
    let app = spawn_app_with(|s| {
        with_secret(s);
        s.auth.token_refresh = Duration::from_secs(8);
    })
    .await;
    let (token, first_exp) = expiring("erin", 9);
    let mut stream = open_stream_as(&app, "/sse/events", &token).await;
    let warning = stream.next_message(SHORT).await.expect("token_expiring");
    assert_eq!(warning.json()["expires_at"], first_exp);

    // Act
    let (fresh, fresh_exp) = expiring("erin", 10);
    assert_eq!(
        renew(&app, &stream.connection_id, &fresh)
            .await
            .status()
            .as_u16(),
        204
    );
    let second = stream
        .next_message(Duration::from_secs(12))
        .await
        .expect("a second token_expiring");

    // Assert: warned for the new expiry about 8 s before it (within the
    // watcher's look-again step of 2 s and the seconds' rounding), not at
    // the first token's expiry, 2 s before the new one.
    assert!(second.is("token_expiring"), "{second:?}");
    assert_eq!(second.json()["expires_at"], fresh_exp);
    let warned_at = now();
    assert!(
        warned_at <= fresh_exp - 4,
        "warned at {warned_at}, {} s before the new expiry {fresh_exp}",
        fresh_exp - warned_at
    );
}

#[actix_web::test]
async fn another_subject_fewer_projects_an_unknown_stream_or_no_token_are_refused() {
    // Arrange
    let app = spawn_app_with(with_secret).await;
    let (token, _) = expiring("dave", 30);
    let stream = open_stream_as(&app, "/sse/events", &token).await;
    let id = stream.connection_id.clone();
    let mut other_project = claims("dave", "subscribe", &["p2"]);
    other_project["exp"] = json!(now() + 3600);

    // Act
    let other_subject = renew(&app, &id, &expiring("mallory", 3600).0).await;
    let fewer_projects = renew(&app, &id, &sign(&other_project)).await;
    let unknown = renew(&app, "00000000-0000-4000-8000-000000000000", &token).await;
    let malformed = renew(&app, "not-an-id", &token).await;
    let anonymous = app
        .api_client
        .post(app.url(&format!("/sse/connections/{id}/token")))
        .send()
        .await
        .expect("sent");

    // Assert
    // CONTRACT §8: another `sub` → 403.
    assert_error(other_subject, 403, "forbidden").await;
    assert_error(fewer_projects, 403, "forbidden").await;
    assert_error(unknown, 404, "connection_not_found").await;
    assert_error(malformed, 404, "connection_not_found").await;
    assert_error(anonymous, 401, "unauthorized").await;
}

/// A stream opened on the instance at `address` with `token`, and its
/// connection id.
async fn open_on(
    client: &reqwest::Client,
    address: &str,
    token: &str,
) -> (crate::helpers::EventStream, String) {
    let response = client
        .get(format!("{address}/sse/events"))
        .bearer_auth(token)
        .send()
        .await
        .expect("a stream");
    let mut stream = crate::helpers::EventStream::new(response);
    let connected = stream.next_event(SHORT).await.expect("connected");
    let id = connected.json()["connection_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    (stream, id)
}

#[actix_web::test]
async fn in_a_cluster_a_renewal_reaching_another_instance_renews_the_stream_where_it_is() {
    // Arrange: two instances on one Redis; the stream on `a`.
    let (a, b, _store) = super::secured_cluster().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let (token, exp) = expiring("erin", 3);
    let (mut stream, id) = open_on(&client, &a.address, &token).await;
    let warning = stream.next_message(SHORT).await.expect("token_expiring");
    assert!(warning.is("token_expiring"));
    let post = |token: String, id: String| {
        let client = client.clone();
        let address = b.address.clone();
        async move {
            client
                .post(format!("{address}/sse/connections/{id}/token"))
                .bearer_auth(token)
                .send()
                .await
                .expect("sent")
        }
    };

    // Act: every renewal goes to `b`.
    let foreign = post(expiring("mallory", 3600).0, id.clone()).await;
    let unknown = post(
        expiring("erin", 3600).0,
        "00000000-0000-4000-8000-000000000000".into(),
    )
    .await;
    let renewed = post(expiring("erin", 3600).0, id.clone()).await;

    // Assert: `a` answered through the cluster; the stream outlives `exp`.
    // Another subject's stream, held by `a`: 403 (CONTRACT §8).
    assert_error(foreign, 403, "forbidden").await;
    assert_error(unknown, 404, "connection_not_found").await;
    assert_eq!(renewed.status().as_u16(), 204);
    tokio::time::sleep(Duration::from_secs((exp - now()).max(0) as u64 + 2)).await;
    let published = client
        .post(format!("{}/sse/publish", a.address))
        .bearer_auth(root_token())
        .json(&json!({"event_type": "commit", "project_id": "p1", "data": {"n": 9}}))
        .send()
        .await
        .expect("a publish");
    assert_eq!(published.status().as_u16(), 202);
    let event = stream.next_message(SHORT).await.expect("still streaming");
    assert!(event.is("commit"), "{event:?}");
}

/// While Redis does not answer, an instance that does not hold the stream
/// cannot ask the one that does: a renewal, a subscription change or an
/// admin's drop says so (503 `cluster_unavailable`, retry), never "no
/// such stream" (404) for a stream that is open; the holder itself still
/// renews it.
#[actix_web::test]
async fn with_redis_down_a_stream_on_another_instance_is_unreachable_not_unknown() {
    use crate::cluster::harness::{self, Node, RedisServer, TestDb};
    // Arrange: two instances on a Redis of their own; erin's stream on `a`.
    let mut redis = RedisServer::start().await;
    let store = TestDb::create().await;
    let cluster = harness::cluster_name();
    let node = |id: &str| {
        let mut settings =
            harness::settings(store.database_url(), Some(&redis.url()), &cluster, id);
        with_secret(&mut settings);
        settings
    };
    let (a, b) = (Node::start(node("a")).await, Node::start(node("b")).await);
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let (token, _) = expiring("erin", 3600);
    let (_stream, id) = open_on(&client, &a.address, &token).await;

    // Act: Redis goes away; both instances see it.
    redis.kill();
    for node in [&a, &b] {
        harness::wait_for_health(node, harness::LONG, "Redis down", |_, body| {
            body["checks"]["redis"]["status"] == "down"
        })
        .await;
    }
    let renew = |address: String| {
        let (client, token, id) = (client.clone(), expiring("erin", 7200).0, id.clone());
        async move {
            client
                .post(format!("{address}/sse/connections/{id}/token"))
                .bearer_auth(token)
                .send()
                .await
                .expect("sent")
        }
    };
    let through_b = renew(b.address.clone()).await;
    let subscribe_through_b = client
        .post(format!("{}/sse/subscribe", b.address))
        .bearer_auth(&token)
        .json(&json!({ "connection_id": id, "event_types": ["commit"] }))
        .send()
        .await
        .expect("sent");
    let delete_through_b = client
        .delete(format!("{}/sse/connections/{id}", b.address))
        .bearer_auth(super::root_token())
        .send()
        .await
        .expect("sent");
    let through_a = renew(a.address.clone()).await;

    // Assert
    assert!(through_b.headers().contains_key("retry-after"));
    assert_error(through_b, 503, "cluster_unavailable").await;
    assert_error(subscribe_through_b, 503, "cluster_unavailable").await;
    assert_error(delete_through_b, 503, "cluster_unavailable").await;
    assert_eq!(through_a.status().as_u16(), 204, "the holder renews it");
}
