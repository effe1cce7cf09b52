//! A stream lives no longer than its token: at `exp` it receives
//! `event: token_expired` and ends (the verification leeway does not extend
//! a live stream).

use std::time::{Duration, Instant};

use serde_json::json;

use super::{claims, now, open_stream_as, post_as, root_token, sign, spawn_secured_app};
use crate::helpers::{SHORT, StreamEnd};

#[actix_web::test]
async fn a_stream_ends_with_token_expired_when_its_token_expires() {
    // Arrange
    let app = spawn_secured_app().await;
    let mut short_lived = claims("alice", "subscribe", &["p1"]);
    let exp = now() + 2;
    short_lived["exp"] = json!(exp);
    let token = sign(&short_lived);
    let mut stream = open_stream_as(&app, "/sse/events", &token).await;
    let long_lived = open_stream_as(&app, "/sse/events", &root_token()).await;
    // Within --token-refresh-secs (60 s) of its expiry: warned at once.
    let warning = stream.next_message(SHORT).await.expect("token_expiring");
    assert!(warning.is("token_expiring"), "{warning:?}");
    assert_eq!(warning.json()["expires_at"], exp);

    // Events still flow before expiry.
    let response = post_as(
        &app,
        "/sse/publish",
        Some(&json!({"event_type": "commit", "project_id": "p1"})),
        Some(&root_token()),
    )
    .await;
    assert_eq!(response.status().as_u16(), 202);
    let before = stream.next_message(SHORT).await.expect("a live event");
    assert!(before.is("commit"), "{before:?}");

    // Act: wait for the end, at most 3 s past expiry.
    let started = Instant::now();
    let deadline = Duration::from_secs((exp - now()).max(0) as u64 + 3);
    let events = stream.read_to_end(deadline).await;
    let ended_at = super::now();

    // Assert
    let last = events.last().unwrap_or_else(|| {
        panic!(
            "the stream ended after {:?} without token_expired (end: {:?})",
            started.elapsed(),
            stream.end()
        )
    });
    assert!(
        last.is("token_expired"),
        "the last frame is {last:?} of {events:?}"
    );
    assert_eq!(last.id, None, "a control frame has no id");
    assert_eq!(last.json()["reason"], "token_expired");
    assert!(
        events[..events.len() - 1].iter().all(|e| e.is_heartbeat()),
        "{events:?}"
    );
    assert_eq!(stream.end(), Some(&StreamEnd::Finished));
    assert!(
        ended_at >= exp - 1,
        "closed before the token expired: exp {exp}, closed at {ended_at}"
    );
    // The other stream is untouched.
    crate::helpers::eventually(SHORT, "one active connection left", || async {
        let stats: serde_json::Value = super::get_as(&app, "/sse/stats", Some(&root_token()))
            .await
            .json()
            .await
            .ok()?;
        (stats["active_connections"] == 1).then_some(())
    })
    .await;
    drop(long_lived);
}

#[actix_web::test]
async fn a_token_past_exp_but_within_the_leeway_gets_no_lasting_stream() {
    let app = spawn_secured_app().await;
    let mut expired = claims("alice", "subscribe", &[]);
    expired["exp"] = json!(now() - 5);
    let token = sign(&expired);

    let mut stream = open_stream_as(&app, "/sse/events", &token).await;

    let events = stream.read_to_end(SHORT).await;
    assert!(
        events.last().is_some_and(|e| e.is("token_expired")),
        "{events:?}"
    );
}

#[actix_web::test]
async fn a_far_future_exp_keeps_the_stream_open() {
    let app = spawn_secured_app().await;
    let mut forever = claims("alice", "subscribe", &[]);
    forever["exp"] = json!(u64::MAX);
    let token = sign(&forever);

    let mut stream = open_stream_as(&app, "/sse/events", &token).await;

    let response = post_as(
        &app,
        "/sse/publish",
        Some(&json!({"event_type": "commit"})),
        Some(&root_token()),
    )
    .await;
    assert_eq!(response.status().as_u16(), 202);
    let event = stream.next_message(SHORT).await.expect("a live event");
    assert!(event.is("commit"), "{event:?}");
    assert_eq!(stream.end(), None);
}
