//! What the broker logs about a request never holds a credential: a token
//! or ticket in the query is hidden whatever spelling its name has
//! (`access%5Ftoken` is decoded to `access_token` when the token is read).

use super::{SECRET, claims, sign, token};
use crate::helpers::BrokerProcess;

#[actix_web::test]
async fn a_credential_in_the_query_never_reaches_the_logs_whatever_its_spelling() {
    // Arrange
    let dir = tempfile::tempdir().expect("a scratch directory");
    let mut broker = BrokerProcess::spawn_with(
        &dir.path().join("events.db"),
        dir.path().join("broker.log"),
        &[],
        // Refused requests are logged at debug ("request refused").
        &[
            ("SSE_BROKER_JWT_SECRET", SECRET),
            ("RUST_LOG", "info,sse_broker=debug"),
        ],
    );
    let client = reqwest::Client::new();
    broker.wait_until_ready(&client).await;
    // Accepted, but without the scope (403); expired (401); fine (200).
    let no_scope = token("alice", "publish", &["*"]);
    let mut expired_claims = claims("alice", "subscribe", &["*"]);
    expired_claims["exp"] = serde_json::json!(super::now() - 3600);
    let expired = sign(&expired_claims);
    let valid = token("alice", "subscribe", &["*"]);
    let ticket = "tkt_0123456789abcdefSECRET";
    let requests = [
        (format!("/sse/history?access%5Ftoken={no_scope}"), 403),
        (
            format!("/sse/history?%61ccess_token={expired}&after=0"),
            401,
        ),
        (format!("/sse/history?after=x&access%5ftoken={valid}"), 400),
        (format!("/sse/history?ticket={ticket}"), 401),
        (format!("/sse/history?%74icket={ticket}"), 401),
    ];

    // Act
    for (path, status) in &requests {
        let response = client
            .get(format!("{}{path}", broker.address))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status().as_u16(), *status, "{path}");
    }
    broker.sigterm();
    broker.wait_for_exit(crate::helpers::LONG).await;

    // Assert: the requests were logged, their credentials were not.
    let logs = broker.logs();
    assert!(
        logs.contains("REDACTED"),
        "the refused requests are logged with the credential hidden:\n{logs}"
    );
    for secret in [&no_scope, &expired, &valid] {
        let signature = secret.rsplit('.').next().expect("a JWT signature");
        assert!(
            !logs.contains(signature),
            "a token reached the logs:\n{logs}"
        );
    }
    assert!(!logs.contains(ticket), "a ticket reached the logs:\n{logs}");
}

/// Behind a trusted proxy a request's log lines name the client the rate
/// limits count (the forwarded address), and the proxy beside it; before,
/// every line named the proxy, so a client refused by
/// `--stream-rate-per-ip` could not be found in the logs.
#[actix_web::test]
async fn behind_a_trusted_proxy_a_request_is_logged_with_its_client() {
    // Arrange
    let dir = tempfile::tempdir().expect("a scratch directory");
    let mut broker = BrokerProcess::spawn_with(
        &dir.path().join("events.db"),
        dir.path().join("broker.log"),
        &["--trusted-proxies", "127.0.0.1"],
        &[],
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    broker.wait_until_ready(&client).await;

    // Act: a stream opened through the "proxy", whose client is 203.0.113.7
    // (the left entry is whatever the client wrote, so never the client).
    let response = client
        .get(format!("{}/sse/events", broker.address))
        .header("X-Forwarded-For", "198.51.100.1, 203.0.113.7")
        .send()
        .await
        .expect("a stream");
    assert_eq!(response.status().as_u16(), 200);
    let mut stream = crate::helpers::EventStream::new(response);
    let connected = stream
        .next_event(crate::helpers::SHORT)
        .await
        .expect("connected");
    assert!(connected.is("connected"));

    // Assert
    let logs = broker.logs();
    let opened = logs
        .lines()
        .find(|line| line.contains("stream opened"))
        .unwrap_or_else(|| panic!("no `stream opened` line: {logs}"));
    assert!(opened.contains("http.client_ip=203.0.113.7"), "{opened}");
    assert!(
        opened.contains("network.peer.address=127.0.0.1"),
        "{opened}"
    );
}
