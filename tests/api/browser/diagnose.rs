//! `diagnoseConnection` of client.js in Chromium: straight to the broker
//! the probes arrive as sent, and the verdict is clean; through a proxy
//! that buffers whole responses (nginx's `proxy_buffering on`, many CDNs)
//! they arrive in one lump, and the verdict says so.

use std::time::Duration;

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::Browser;
use crate::helpers::spawn_app;

/// A reverse proxy that holds each response until the broker has sent all
/// of it: one request per connection (`Connection: close` upstream), the
/// whole answer read, then written to the client at once.
struct BufferingProxy {
    port: u16,
    _accept: actix_rt::task::JoinHandle<()>,
}

impl BufferingProxy {
    async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let accept = actix_rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                actix_rt::spawn(relay(client, upstream));
            }
        });
        Self {
            port,
            _accept: accept,
        }
    }
}

/// One request: its head (and a Content-Length body) forwarded with
/// `Connection: close`, the response buffered whole, then passed on.
async fn relay(mut client: TcpStream, upstream: u16) {
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let body_length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while request.len() < head_end + body_length {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let mut rewritten: Vec<String> = head
        .trim_end()
        .lines()
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .map(str::to_owned)
        .collect();
    rewritten.push("Connection: close".into());
    let mut forwarded = format!("{}\r\n\r\n", rewritten.join("\r\n")).into_bytes();
    forwarded.extend_from_slice(&request[head_end..]);
    let Ok(mut broker) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    if broker.write_all(&forwarded).await.is_err() {
        return;
    }
    let mut response = Vec::new();
    let _ = broker.read_to_end(&mut response).await;
    let _ = client.write_all(&response).await;
    let _ = client.shutdown().await;
}

/// Runs `diagnoseConnection` of the page's origin's `/client.js`; answers
/// its verdict.
async fn diagnose_from(browser: &Browser, origin: &str) -> Value {
    browser.goto(&format!("{origin}/health")).await;
    browser
        .script(
            "window.verdict = null; \
             import('/client.js') \
               .then((m) => m.diagnoseConnection('/sse/diagnose')) \
               .then((v) => { window.verdict = v; }, (e) => { window.verdict = { error: String(e) }; }); \
             return true;",
        )
        .await;
    let verdict = browser
        .wait_for(
            "return window.verdict && JSON.stringify(window.verdict)",
            Duration::from_secs(15),
            "the diagnosis",
        )
        .await;
    serde_json::from_str(verdict.as_str().expect("a JSON string")).expect("a verdict")
}

#[actix_web::test]
async fn the_diagnosis_is_clean_straight_to_the_broker_and_names_a_buffering_proxy() {
    // Arrange
    let app = spawn_app().await;
    let proxy = BufferingProxy::start(app.port).await;
    let browser = Browser::launch().await;

    // Act
    let direct = diagnose_from(&browser, &app.address).await;
    let proxied = diagnose_from(&browser, &format!("http://127.0.0.1:{}", proxy.port)).await;

    // Assert
    assert_eq!(direct["ok"], true, "{direct}");
    assert_eq!(direct["buffered"], false, "{direct}");
    assert_eq!(direct["probes"], 6, "{direct}");
    assert_eq!(direct["protocol"]["broker"], "HTTP/1.1", "{direct}");
    assert_eq!(proxied["ok"], false, "{proxied}");
    assert_eq!(proxied["buffered"], true, "{proxied}");
    assert_eq!(proxied["probes"], 6, "every probe came, late: {proxied}");
    assert!(
        proxied["problems"].as_array().is_some_and(|p| p
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains("buffer")))),
        "{proxied}"
    );
}

#[actix_web::test]
async fn the_demo_pages_connection_check_reports_a_live_stream() {
    // Arrange
    let app = spawn_app().await;
    let browser = Browser::launch().await;
    browser.goto(&format!("{}/", app.address)).await;

    // Act
    browser.click("#check-connection").await;

    // Assert
    let verdict = browser
        .wait_for(
            "const v = document.getElementById('connection-verdict'); \
             return v && v.dataset.ok === 'true' && v.textContent",
            Duration::from_secs(15),
            "the demo page's verdict",
        )
        .await;
    assert!(
        verdict
            .as_str()
            .is_some_and(|v| v.starts_with("live: 6 probes")),
        "{verdict}"
    );
}
