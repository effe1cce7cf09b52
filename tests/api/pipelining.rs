//! Pipelined requests (sent before the answer to the one before them):
//! each answered as if it came alone. actix-http encodes an answer with the
//! method and connection type of the last request it decoded, so the broker
//! hands it a pipelined request only once the answer before it has begun.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    SHORT, TestApp, eventually,
    raw_http::{RawResponse, exchange, parse_responses},
    spawn_app,
};

/// The answer to a `HEAD` at the start of `bytes` (its head only: a HEAD
/// answer has no body, whatever its `Content-Length`), and the rest.
fn head_answer(bytes: &[u8]) -> (u16, &[u8]) {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut fields);
    let Ok(httparse::Status::Complete(len)) = head.parse(bytes) else {
        panic!("not an HTTP response: {:?}", String::from_utf8_lossy(bytes));
    };
    (head.code.expect("a status"), &bytes[len..])
}

async fn read_all(app: &TestApp, request: &[u8], expected: usize) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("a connection");
    stream.write_all(request).await.expect("written");
    let mut received = Vec::new();
    let mut chunk = [0_u8; 16 * 1024];
    // Until the answers expected are in and nothing more comes.
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(300), stream.read(&mut chunk)).await
    {
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
    }
    let seen = String::from_utf8_lossy(&received)
        .matches("HTTP/1.1 ")
        .count();
    assert!(
        seen >= expected,
        "{seen} answers: {:?}",
        String::from_utf8_lossy(&received)
    );
    received
}

#[actix_web::test]
async fn a_pipelined_head_answer_carries_no_body_and_the_next_answer_is_whole() {
    let app = spawn_app().await;
    app.publish_one(&json!({"event_type": "commit"})).await;
    // Answers that take the actors or the store a moment (the desync
    // needed the next request decoded before the HEAD's answer).
    for path in ["/sse/stats", "/sse/history", "/tasks/unknown"] {
        let request = format!(
            "HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /sse/stats HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let received = read_all(&app, request.as_bytes(), 2).await;

        let (status, rest) = head_answer(&received);
        assert!(status == 200 || status == 404, "{path}: {status}");
        let rest: Vec<RawResponse> = parse_responses(rest);
        assert_eq!(rest.len(), 1, "{path}: {rest:?}");
        assert_eq!(rest[0].status, 200, "{path}: {rest:?}");
        let stats: serde_json::Value = serde_json::from_str(&rest[0].body)
            .unwrap_or_else(|e| panic!("{path}: the GET's body is JSON ({e}): {rest:?}"));
        assert!(stats.get("active_connections").is_some(), "{path}: {stats}");
    }
    // And the other way round: a GET answer keeps its body before a HEAD.
    let request =
        b"GET /sse/stats HTTP/1.1\r\nHost: x\r\n\r\nHEAD /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let received = read_all(&app, request, 2).await;
    let first = parse_responses(&received[..received.len() - tail_of_head(&received)]);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].body.contains("active_connections"), "{first:?}");
}

/// Bytes of the last answer (a HEAD's: head only) at the end of `bytes`.
fn tail_of_head(bytes: &[u8]) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let start = text.rfind("HTTP/1.1 ").expect("a last answer");
    bytes.len() - start
}

#[actix_web::test]
async fn a_request_pipelined_behind_an_answer_that_closes_is_not_run() {
    // Arrange
    let app = spawn_app().await;
    let before = app.get_json("/sse/history").await;
    let stored = before["events"].as_array().map_or(0, Vec::len);
    let publish = r#"{"event_type":"commit"}"#;

    // Act: a request refused with `Connection: close` (a body it does not
    // read), then a publish in the same write.
    let request = format!(
        "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}\
         POST /sse/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{publish}",
        publish.len()
    );
    let answers = exchange(&app, request.as_bytes(), SHORT).await;

    // Assert: one answer, the refusal; the publish never ran (a client
    // that believed the close and sent it again would have stored it twice).
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].status, 404);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = app.get_json("/sse/history").await;
    assert_eq!(
        after["events"].as_array().map_or(0, Vec::len),
        stored,
        "{after}"
    );
    // A publish on its own still goes through.
    eventually(SHORT, "a publish", || async {
        let answer = app.publish(&json!({"event_type": "commit"})).await;
        (answer.status().as_u16() == 202).then_some(())
    })
    .await;
}

/// `request` sent, then the sending side closed (`nc -N`, `socat`); what
/// the broker answers before it closes, within a few seconds.
async fn half_closed_exchange(app: &TestApp, request: &[u8]) -> Vec<RawResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("a connection");
    socket.write_all(request).await.expect("the request sent");
    socket.shutdown().await.expect("the sending side closed");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(SHORT, socket.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the broker closes after its answer");
    parse_responses(&answer)
}

/// A client that closes its sending side after its request still gets the
/// answer (RFC 9112 section 9.6): a publish was stored but its id never
/// told, so a retry without an idempotency key doubled it.
#[actix_web::test]
async fn a_request_whose_sender_half_closed_is_answered() {
    // Arrange
    let app = spawn_app().await;
    let body = r#"{"event_type":"task_update","data":{"n":1}}"#;
    let publish = format!(
        "POST /sse/publish HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );

    // Act
    let published = half_closed_exchange(&app, publish.as_bytes()).await;
    let stats = half_closed_exchange(&app, b"GET /sse/stats HTTP/1.0\r\n\r\n").await;

    // Assert
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].status, 202, "{published:?}");
    let id = serde_json::from_str::<serde_json::Value>(&published[0].body).expect("JSON")["ids"][0]
        .as_i64()
        .expect("the stored event's id");
    let history = app.get_json("/sse/history?event_types=task_update").await;
    assert_eq!(history["events"][0]["id"], id, "{history}");
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(stats[0].status, 200, "{stats:?}");
}

/// `curl --http2` over plain HTTP asks to upgrade to h2c; the broker
/// switches to nothing, and says the connection closes after its answer
/// (actix-http answered `connection: upgrade`, then closed without a word,
/// and a request sent behind it was never answered).
#[actix_web::test]
async fn an_h2c_upgrade_request_gets_an_answer_that_closes_its_connection() {
    // Arrange
    let app = spawn_app().await;
    let upgrade = b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n\
        Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";

    // Act
    let answers = exchange(&app, upgrade, Duration::from_secs(3)).await;

    // Assert
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].status, 200, "{answers:?}");
    assert_eq!(
        answers[0].header("connection"),
        Some("close"),
        "{answers:?}"
    );
    assert_eq!(answers[0].header("upgrade"), None, "{answers:?}");
}
