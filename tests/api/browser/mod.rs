//! The demo page and `/client.js` in a real browser: headless Debian
//! Chromium driven over the W3C WebDriver protocol (chromedriver), talking
//! to a broker on loopback. Screenshots are saved under `artifacts/browser/`.
//!
//! - `dropped_stream`: the page's stream is dropped server-side mid-answer;
//!   the page recovers and ends with exactly the text the producer wrote (no
//!   gap, no repeated token). Also token→screen latency: a producer's
//!   `POST /tasks/{id}/text` to the DOM change in the page.
//! - `task_end`: a task cancelled mid-generation shows as cancelled, and
//!   neither its stream nor a general stream in the same page reconnects
//!   (the broker's `event: error` is not a network error).
//! - `many_streams`: one page opens twelve `EventSource` streams; over
//!   HTTPS (HTTP/2) every one is open and receives events, over plain
//!   HTTP/1.1 the browser holds the seventh and later back (its cap of six
//!   connections per origin).
//! - `react_demo`: the page runs on `/react.js` and the React the broker
//!   serves; a generation produced step by step shows its progress, stage,
//!   text and status to completion, and again whole after a reload.
//! - `refused_stream`: a stream the broker refuses (an unknown task, a bad
//!   id) ends the client with the broker's code, no reconnect; a broker
//!   that cannot be reached is retried.

mod diagnose;
mod dropped_stream;
mod many_streams;
mod react_demo;
mod refused_stream;
mod tab_sharing;
mod task_end;

use std::{
    os::unix::process::CommandExt,
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
pub(super) struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(super) async fn launch() -> Self {
        Self::launch_with(&[]).await
    }

    /// [`Self::launch`] with extra Chromium flags.
    pub(super) async fn launch_with(extra_args: &[&str]) -> Self {
        assert!(
            std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists(),
            "the browser test needs Debian's chromium and chromium-driver (bash .ci/test.sh installs them)"
        );
        let port = free_port();
        // Its own process group: the Chromium it starts is in it too, and
        // goes with it (killing chromedriver alone left Chromium running).
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
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
        let mut args = vec![
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
        args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
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

    pub(super) async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    pub(super) async fn click(&self, css: &str) {
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

    /// The current tab's handle.
    pub(super) async fn tab(&self) -> String {
        let handle = self
            .command(reqwest::Method::GET, "/window", Value::Null)
            .await;
        handle.as_str().expect("a window handle").to_owned()
    }

    /// Opens a tab in this browser (same profile) and switches to it.
    pub(super) async fn new_tab(&self) -> String {
        let created = self
            .command(
                reqwest::Method::POST,
                "/window/new",
                json!({ "type": "tab" }),
            )
            .await;
        let handle = created["handle"]
            .as_str()
            .expect("a new tab's handle")
            .to_owned();
        self.switch_to(&handle).await;
        handle
    }

    pub(super) async fn switch_to(&self, handle: &str) {
        self.command(
            reqwest::Method::POST,
            "/window",
            json!({ "handle": handle }),
        )
        .await;
    }

    /// Closes the current tab (the browser then has no current tab: switch).
    pub(super) async fn close_tab(&self) {
        self.command(reqwest::Method::DELETE, "/window", Value::Null)
            .await;
    }

    pub(super) async fn script(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Polls `script` until it returns something truthy.
    pub(super) async fn wait_for(&self, script: &str, timeout: Duration, what: &str) -> Value {
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

    /// On the demo page: starts a generation, waits until more than
    /// `chars` characters of it are on screen over a live stream, and
    /// answers its task id.
    pub(super) async fn start_demo_generation(&self, chars: usize) -> String {
        self.click("#generate").await;
        self.wait_for(
            &format!(
                "return document.getElementById('text').textContent.length > {chars} && \
                 document.getElementById('connection').dataset.state === 'connected'"
            ),
            Duration::from_secs(20),
            "the first tokens",
        )
        .await;
        self.script("return new URLSearchParams(location.search).get('task')")
            .await
            .as_str()
            .expect("the page names its task")
            .to_owned()
    }

    pub(super) async fn screenshot(&self, name: &str) -> PathBuf {
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
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.driver.wait();
    }
}

pub(super) async fn start_broker() -> (
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

pub(super) async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("a JSON answer")
}

/// The live streams the broker lists: `(connection_id, task_id)`.
pub(super) async fn live_streams(
    http: &reqwest::Client,
    broker: &str,
) -> Vec<(String, Option<String>)> {
    let listing = get_json(http, &format!("{broker}/sse/connections")).await;
    listing["connections"]
        .as_array()
        .expect("a connections array")
        .iter()
        .map(|c| {
            (
                c["connection_id"].as_str().unwrap_or_default().to_owned(),
                c["task_id"].as_str().map(str::to_owned),
            )
        })
        .collect()
}
