//! The demo page in a real browser: headless Debian Chromium driven over the
//! W3C WebDriver protocol (chromedriver), talking to a broker on loopback.
//!
//! It starts a generation, drops the page's stream server-side mid-answer,
//! and checks the page recovers and ends with exactly the text the producer
//! wrote (no gap, no repeated token). A screenshot is saved under
//! `artifacts/browser/`. It also measures token→screen latency: the time
//! from a producer's `POST /tasks/{id}/text` to the DOM change in the page.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::helpers::free_port;
use sse_broker::{
    app::Application,
    config::{DatabaseUrl, Settings},
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn launch() -> Self {
        assert!(
            std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists(),
            "the browser test needs Debian's chromium and chromium-driver (bash .ci/test.sh installs them)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(response) = ready
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("a profile directory");
        // The flags keep Chromium off the (closed) network and quiet in CI.
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1000,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("session request")
            .json()
            .await
            .expect("session answer");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Self {
            driver,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response: Value = request
            .send()
            .await
            .expect("webdriver request")
            .json()
            .await
            .expect("webdriver answer");
        assert!(
            response["value"].get("error").is_none(),
            "webdriver {path}: {response}"
        );
        response["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn click(&self, css: &str) {
        let element = self
            .command(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        let id = element[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {css}: {element}"))
            .to_owned();
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Polls `script` until it returns something truthy.
    async fn wait_for(&self, script: &str, timeout: Duration, what: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.script(script).await;
            if !(value.is_null() || value == false || value == "") {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let encoded = self
            .command(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 screenshot"))
            .expect("valid base64");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts/browser");
        std::fs::create_dir_all(&dir).expect("artifact directory");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("screenshot written");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn start_broker() -> (
    String,
    tempfile::TempDir,
    sse_broker::shutdown::ShutdownHandle,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings::for_tests(DatabaseUrl::Sqlite {
        path: dir.path().join("events.db"),
    });
    let app = Application::build(settings).await.expect("broker starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_handle();
    actix_rt::spawn(app.run_until_stopped());
    (address, dir, shutdown)
}

#[actix_web::test]
async fn the_demo_page_survives_a_dropped_stream_and_ends_with_the_whole_text() {
    let (broker, _dir, shutdown) = start_broker().await;
    let http = reqwest::Client::new();
    let browser = Browser::launch().await;

    browser.goto(&format!("{broker}/")).await;
    browser.click("#generate").await;
    // Some text is on screen and the stream is live.
    browser
        .wait_for(
            "return document.getElementById('text').textContent.length > 40 && \
             document.getElementById('connection').dataset.state === 'connected'",
            Duration::from_secs(20),
            "the first tokens",
        )
        .await;
    let task_id = browser
        .script("return new URLSearchParams(location.search).get('task')")
        .await
        .as_str()
        .expect("the page names its task")
        .to_owned();

    // Drop the page's stream server-side, mid-generation.
    let listing: Value = http
        .get(format!("{broker}/sse/connections"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stream = listing["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["task_id"] == task_id.as_str())
        .expect("the page's task stream is listed");
    let dropped = http
        .delete(format!(
            "{broker}/sse/connections/{}",
            stream["connection_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(dropped.status(), 204);

    // The page reconnects by itself and finishes.
    browser
        .wait_for(
            "return document.body.dataset.done === 'true'",
            Duration::from_secs(40),
            "the end of the generation",
        )
        .await;
    let on_screen = browser
        .script("return document.getElementById('text').textContent")
        .await;
    let task: Value = http
        .get(format!("{broker}/tasks/{task_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["status"], "completed");
    assert_eq!(
        on_screen, task["result"]["text"],
        "the page must show exactly the produced text: no gap, no repeated token"
    );
    let stats: Value = http
        .get(format!("{broker}/sse/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["closed_by_reason"]["disconnected"], 1,
        "the stream was dropped once"
    );
    assert!(
        stats["total_connections"].as_u64().unwrap() >= 2,
        "the page reconnected: {stats}"
    );
    let typing_hidden = browser
        .script("return getComputedStyle(document.getElementById('typing')).display === 'none'")
        .await;
    assert_eq!(
        typing_hidden, true,
        "the typing indicator disappears when the answer is complete"
    );
    let screenshot = browser.screenshot("demo-completed.png").await;
    println!("screenshot: {}", screenshot.display());

    // Token→screen latency: producer POST → DOM mutation, same machine clock.
    let latency = http
        .post(format!("{broker}/tasks"))
        .json(&json!({ "task_id": "latency" }))
        .send()
        .await
        .unwrap();
    assert_eq!(latency.status(), 201);
    browser.goto(&format!("{broker}/?task=latency")).await;
    browser
        .wait_for(
            "return document.getElementById('connection').dataset.state === 'connected'",
            Duration::from_secs(10),
            "the latency page to connect",
        )
        .await;
    browser
        .script(
            "window.__marks = []; new MutationObserver(() => window.__marks.push(Date.now()))\
             .observe(document.getElementById('text'), { childList: true, characterData: true, subtree: true }); return true;",
        )
        .await;
    let mut latencies = Vec::new();
    for token in 0..30 {
        let sent = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let answer = http
            .post(format!("{broker}/tasks/latency/text"))
            .json(&json!({ "delta": format!("t{token} ") }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202);
        let seen = browser
            .wait_for(
                &format!("return window.__marks.length > {token} ? window.__marks[{token}] : null"),
                Duration::from_secs(5),
                "a token on screen",
            )
            .await;
        latencies.push(seen.as_i64().unwrap() - sent);
    }
    let text = browser
        .script("return document.getElementById('text').textContent")
        .await;
    let expected: String = (0..30).map(|t| format!("t{t} ")).collect();
    assert_eq!(text, expected.as_str());
    latencies.sort_unstable();
    println!(
        "token->screen latency over {} tokens: p50 {} ms, p90 {} ms, max {} ms",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 9 / 10],
        latencies[latencies.len() - 1]
    );
    shutdown.trigger();
}
