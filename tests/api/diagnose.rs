//! `GET /sse/diagnose`: six probes 250 ms apart, then a summary of what the
//! broker saw (protocol, hops), so a client can tell a live stream from one
//! a proxy holds back. The browser side (`diagnoseConnection` of client.js,
//! direct and through a buffering proxy) is in `browser/diagnose.rs`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    helpers::{EventStream, SHORT, spawn_app},
    tls::{spawn_tls_app, tls_client},
};

/// Each event of a diagnosis with when it arrived.
async fn read_diagnosis(mut stream: EventStream) -> Vec<(crate::helpers::SseEvent, Instant)> {
    let mut events = Vec::new();
    while let Some(event) = stream.next_event(SHORT).await {
        events.push((event, Instant::now()));
    }
    assert!(stream.end().is_some(), "the diagnosis ends by itself");
    events
}

#[actix_web::test]
async fn probes_arrive_spread_out_then_a_summary_and_the_stream_ends() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let response = app
        .api_client
        .get(app.url("/sse/diagnose"))
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .expect("a diagnosis");
    let content_type = response.headers()["content-type"].clone();
    // A page on another origin may read the protocol its browser used.
    let timing = response.headers().get("timing-allow-origin").cloned();
    let events = read_diagnosis(EventStream::new(response)).await;

    // Assert
    assert_eq!(content_type, "text/event-stream");
    assert_eq!(timing.as_ref().map(|v| v.as_bytes()), Some(&b"*"[..]));
    let probes: Vec<_> = events.iter().filter(|(e, _)| e.is("probe")).collect();
    assert_eq!(probes.len(), 6, "{events:?}");
    for (seq, (probe, _)) in probes.iter().enumerate() {
        assert_eq!(probe.json()["seq"], seq);
    }
    let spread = probes[5].1 - probes[0].1;
    assert!(
        spread >= Duration::from_millis(1000),
        "sent 1250 ms apart, arrived {spread:?} apart"
    );
    let (summary, _) = events.last().expect("a summary");
    assert!(summary.is("summary"), "{summary:?}");
    let summary = summary.json();
    assert_eq!(summary["probes"], 6);
    assert_eq!(summary["interval_ms"], 250);
    assert_eq!(summary["protocol"], "HTTP/1.1");
    assert_eq!(summary["hops"], serde_json::json!(["x-forwarded-for"]));
}

/// HTTP/1.0 has no chunked encoding (RFC 9112 §6.1): the diagnosis, as
/// every stream, is delimited by the connection's close.
#[actix_web::test]
async fn an_http_1_0_client_gets_a_close_delimited_diagnosis_not_chunks() {
    // Arrange
    let app = spawn_app().await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connected");

    // Act: the whole answer, up to the close.
    socket
        .write_all(b"GET /sse/diagnose HTTP/1.0\r\n\r\n")
        .await
        .expect("request sent");
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut received))
        .await
        .expect("the diagnosis ends within 10 s")
        .expect("a read");

    // Assert: no chunk framing; the frames are the body itself.
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(
        body.starts_with("event: probe\ndata: {"),
        "chunk framing in {body:?}"
    );
    assert_eq!(body.matches("event: probe\n").count(), 6, "{body:?}");
    assert!(
        body.contains("\"protocol\":\"HTTP/1.0\"") && body.ends_with("\n\n"),
        "{body:?}"
    );
}

#[actix_web::test]
async fn over_https_the_summary_says_http2() {
    // Arrange
    let (app, _certificate, _dir) = spawn_tls_app().await;

    // Act
    let response = tls_client(false)
        .get(crate::tls::https(&app, "/sse/diagnose"))
        .send()
        .await
        .expect("a diagnosis");
    let events = read_diagnosis(EventStream::new(response)).await;

    // Assert
    let (summary, _) = events.last().expect("a summary");
    assert_eq!(summary.json()["protocol"], "HTTP/2.0");
    assert_eq!(summary.json()["hops"], serde_json::json!([]));
}

#[actix_web::test]
async fn head_answers_the_streams_headers_at_once_and_checks_the_token() {
    // Arrange
    let app = crate::auth::spawn_secured_app().await;
    let head = |token: Option<String>| {
        let mut request = app.api_client.head(app.url("/sse/diagnose"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    // Act
    let started = Instant::now();
    let allowed = head(Some(crate::auth::token("alice", "subscribe", &["*"])))
        .await
        .expect("an answer");
    let took = started.elapsed();
    let anonymous = head(None).await.expect("an answer");

    // Assert: a GET's headers, without waiting out the 1.5 s burst.
    assert_eq!(allowed.status().as_u16(), 200);
    assert_eq!(allowed.headers()["content-type"], "text/event-stream");
    assert_eq!(allowed.headers()["cache-control"], "no-cache");
    assert!(took < Duration::from_millis(1000), "took {took:?}");
    assert_eq!(allowed.bytes().await.expect("no body").len(), 0);
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[actix_web::test]
async fn a_diagnosis_counts_as_a_stream_against_the_rates_and_its_own_cap() {
    // Arrange
    let app = crate::helpers::spawn_app_with(|s| {
        crate::auth::with_secret(s);
        s.limits.streams_per_user = sse_broker::config::RateLimit::parse("2/min").unwrap();
    })
    .await;
    let diagnose = |user: &str| {
        app.api_client
            .get(app.url("/sse/diagnose"))
            .bearer_auth(crate::auth::token(user, "subscribe", &["*"]))
            .send()
    };

    // Act / Assert: the user's stream rate.
    for _ in 0..2 {
        assert_eq!(
            diagnose("alice").await.expect("sent").status().as_u16(),
            200
        );
    }
    let limited = diagnose("alice").await.expect("sent");
    crate::helpers::assert_error(limited, 429, "rate_limited").await;

    // Act / Assert: the instance's cap, whatever the users.
    let mut running = Vec::new();
    for n in 0..sse_broker::limits::DIAGNOSES_AT_ONCE {
        let answer = diagnose(&format!("user-{n}")).await.expect("sent");
        assert_eq!(answer.status().as_u16(), 200, "diagnosis {n}");
        running.push(answer);
    }
    let full = diagnose("one-more").await.expect("sent");
    crate::helpers::assert_error(full, 503, "too_many_connections").await;
    // A diagnosis that ends gives its place back.
    drop(running.pop());
    crate::helpers::eventually(SHORT, "a place given back", || async {
        let answer = diagnose("later").await.ok()?;
        (answer.status().as_u16() == 200).then_some(())
    })
    .await;
}
