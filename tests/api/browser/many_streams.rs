//! Twelve `EventSource` streams in one page: the reason to serve HTTPS.
//! Chromium opens at most six HTTP/1.1 connections per origin, and an
//! `EventSource` holds its connection for good, so over plain HTTP the
//! seventh stream never opens; over HTTPS the broker speaks HTTP/2 and all
//! twelve share one connection.

use std::time::Duration;

use serde_json::{Value, json};

use super::Browser;
use crate::{
    helpers::{TestApp, spawn_app},
    tls::{active_connections, https, spawn_tls_app, tls_client},
};

const STREAMS: usize = 12;
/// Chromium's connections per origin over HTTP/1.1.
const HTTP1_CAP: usize = 6;

/// Opens the streams from the page at `origin` and counts, per stream,
/// what it received.
async fn open_streams(browser: &Browser, origin: &str) {
    browser.goto(&format!("{origin}/health")).await;
    browser
        .script(&format!(
            "window.opened = 0; window.received = new Array({STREAMS}).fill(0); \
             for (let i = 0; i < {STREAMS}; i++) {{ \
               const source = new EventSource('/sse/events'); \
               source.addEventListener('connected', () => window.opened++); \
               source.addEventListener('commit', () => window.received[i]++); \
             }} \
             return true;"
        ))
        .await;
}

fn count(value: &Value) -> usize {
    value.as_u64().unwrap_or_default() as usize
}

#[actix_web::test]
async fn twelve_streams_in_one_page_all_receive_over_https_and_six_over_http1() {
    // Arrange
    let (tls_app, _certificate, _dir) = spawn_tls_app().await;
    let plain_app: TestApp = spawn_app().await;
    let browser = Browser::launch_with(&["--ignore-certificate-errors"]).await;
    let client = tls_client(false);

    // Act 1: over HTTPS.
    let origin = format!("https://127.0.0.1:{}", tls_app.port);
    open_streams(&browser, &origin).await;
    browser
        .wait_for(
            &format!("return window.opened === {STREAMS}"),
            Duration::from_secs(10),
            "twelve streams open over HTTPS",
        )
        .await;
    let published = client
        .post(https(&tls_app, "/sse/publish"))
        .json(&json!({"event_type": "commit"}))
        .send()
        .await
        .expect("a publish");
    assert_eq!(published.status().as_u16(), 202);

    // Assert 1: every stream got the event, over HTTP/2.
    browser
        .wait_for(
            "return window.received.every(n => n === 1)",
            Duration::from_secs(10),
            "the event on every stream",
        )
        .await;
    let protocol = browser
        .script("return performance.getEntriesByType('navigation')[0].nextHopProtocol")
        .await;
    assert_eq!(protocol, "h2", "the page came over HTTP/2");
    assert_eq!(active_connections(&tls_app).await, STREAMS as u64);

    // Act 2: the same page over plain HTTP/1.1.
    open_streams(&browser, &plain_app.address).await;
    browser
        .wait_for(
            &format!("return window.opened === {HTTP1_CAP}"),
            Duration::from_secs(10),
            "six streams open over HTTP/1.1",
        )
        .await;
    // The others wait for a connection that never frees up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    plain_app
        .publish_one(&json!({"event_type": "commit"}))
        .await;

    // Assert 2: the cap: six open and receiving, six held back.
    browser
        .wait_for(
            &format!("return window.received.filter(n => n === 1).length === {HTTP1_CAP}"),
            Duration::from_secs(10),
            "the event on the six open streams",
        )
        .await;
    let opened = count(&browser.script("return window.opened").await);
    let received = browser.script("return window.received").await;
    assert_eq!(
        opened, HTTP1_CAP,
        "HTTP/1.1 caps the page at six: {received}"
    );
    assert_eq!(plain_app.stats().await["active_connections"], HTTP1_CAP);
}
