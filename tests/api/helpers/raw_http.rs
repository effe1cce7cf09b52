//! Requests written byte for byte on a plain TCP connection, for what an
//! HTTP client library will not send (a 100 KB request target, 200 header
//! fields, a head without `Host`) and for pipelining.

use std::time::Duration;

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{SHORT, TestApp, assert_error_parts};

/// One response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// [`super::assert_error`] for a raw response.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        let content_type = self.header("content-type").unwrap_or_default();
        assert_error_parts(self.status, content_type, &self.body, status, code)
    }
}

/// Sends `request` as is and reads every response until the broker closes
/// the connection (or `wait` passes without a byte).
pub async fn exchange(app: &TestApp, request: &[u8], wait: Duration) -> Vec<RawResponse> {
    let mut stream = send(app, request).await;
    let mut received = Vec::new();
    let mut chunk = vec![0_u8; 64 * 1024];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
            Ok(Err(error)) => panic!(
                "reading the answer failed after {} bytes: {error}",
                received.len()
            ),
        }
    }
    parse_responses(&received)
}

/// Sends `request` on a new connection and reads until what came back
/// contains `until` (within [`SHORT`]); answers the connection, still
/// open, and what was read.
pub async fn open_until(app: &TestApp, request: &[u8], until: &str) -> (TcpStream, String) {
    let mut stream = send(app, request).await;
    let mut received = Vec::new();
    let mut chunk = [0_u8; 4096];
    while !String::from_utf8_lossy(&received).contains(until) {
        let read = tokio::time::timeout(SHORT, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no {until:?} within {SHORT:?}"))
            .expect("readable");
        assert!(
            read > 0,
            "closed before {until:?}: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&chunk[..read]);
    }
    (stream, String::from_utf8_lossy(&received).into_owned())
}

/// A new connection to the broker with `request` written on it.
async fn send(app: &TestApp, request: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("a connection to the broker");
    stream
        .write_all(request)
        .await
        .expect("the request written");
    stream
}

/// [`exchange`] for one request, asserting one response.
pub async fn exchange_one(app: &TestApp, request: &[u8]) -> RawResponse {
    let mut responses = exchange(app, request, SHORT).await;
    assert_eq!(responses.len(), 1, "one response expected: {responses:?}");
    responses.remove(0)
}

/// The responses in `bytes`, read off a raw connection.
pub fn parse_responses(mut bytes: &[u8]) -> Vec<RawResponse> {
    let mut responses = Vec::new();
    while !bytes.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(head_len)) = head.parse(bytes) else {
            panic!(
                "not an HTTP response: {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            );
        };
        let headers: Vec<(String, String)> = head
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse::<usize>().expect("a numeric length"));
        let end = head_len + length;
        responses.push(RawResponse {
            status: head.code.expect("a status code"),
            headers,
            body: String::from_utf8_lossy(&bytes[head_len..end]).into_owned(),
        });
        bytes = &bytes[end..];
    }
    responses
}
