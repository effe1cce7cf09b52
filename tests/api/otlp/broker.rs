//! `Broker`: the real `sse-broker` binary as a child process that exports
//! its telemetry to an [`OtlpReceiver`](super::receiver::OtlpReceiver),
//! killed when the test drops it.
//!
//! The telemetry is process-wide (one tracer and meter provider per
//! process, configured from `OTEL_*` at start), so these tests cannot use
//! the in-process `TestApp`: each broker is its own process.

use std::{
    fs::File,
    path::PathBuf,
    process::{Child, Stdio},
    time::Duration,
};

use serde_json::Value;
use tempfile::TempDir;
use tokio::time::Instant;

use crate::helpers::{EventStream, SseEvent, broker_command, free_port};

/// How long a broker may take to start (migrations included).
const START: Duration = Duration::from_secs(30);

/// Where a broker stores its events.
pub enum Store {
    /// A SQLite file in the broker's own temporary directory.
    Sqlite,
    /// This `postgres://` URL.
    Postgres(String),
}

/// How to start one broker.
pub struct BrokerSpec<'a> {
    pub instance_id: &'a str,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, if set.
    pub otlp_endpoint: Option<&'a str>,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, if set (the broker's default is gRPC).
    pub protocol: Option<&'a str>,
    /// More environment: per-signal variables, headers...
    pub env: Vec<(&'a str, String)>,
    pub store: Store,
    pub redis_url: Option<&'a str>,
    pub cluster_name: Option<&'a str>,
}

impl<'a> BrokerSpec<'a> {
    /// A SQLite broker exporting to `otlp_endpoint` over the default protocol.
    pub fn sqlite(instance_id: &'a str, otlp_endpoint: Option<&'a str>) -> Self {
        Self {
            instance_id,
            otlp_endpoint,
            protocol: None,
            env: Vec::new(),
            store: Store::Sqlite,
            redis_url: None,
            cluster_name: None,
        }
    }
}

/// A running `sse-broker` process.
pub struct Broker {
    pub instance_id: String,
    pub address: String,
    client: reqwest::Client,
    child: Child,
    log: PathBuf,
    /// Holds the log (and the SQLite file); removed on drop.
    _dir: TempDir,
}

impl Broker {
    /// Starts the binary with OTLP export as `spec` says (metrics every
    /// 500 ms, spans batched every 100 ms) and waits until `/health` answers
    /// 200.
    pub async fn start(spec: BrokerSpec<'_>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("broker.log");
        let log_file = File::create(&log).expect("a log file");
        let port = free_port();
        let database_url = match spec.store {
            Store::Sqlite => format!("sqlite://{}", dir.path().join("x.db").display()),
            Store::Postgres(url) => url,
        };
        let mut command = broker_command();
        command
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--database-url", &database_url])
            .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("SSE_BROKER_INSTANCE_ID", spec.instance_id)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("a log handle"))
            .stderr(log_file);
        if let Some(endpoint) = spec.otlp_endpoint {
            command.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
        }
        if let Some(protocol) = spec.protocol {
            command.env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol);
        }
        command.envs(spec.env.iter().map(|(name, value)| (name, value)));
        if let Some(redis_url) = spec.redis_url {
            command.args(["--redis-url", redis_url]);
        }
        if let Some(cluster_name) = spec.cluster_name {
            command.args(["--cluster-name", cluster_name]);
        }
        let child = command.spawn().expect("the sse-broker binary starts");
        let mut broker = Self {
            instance_id: spec.instance_id.to_owned(),
            address: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a reqwest client"),
            child,
            log,
            _dir: dir,
        };
        broker
            .wait_for_health("200", |status, _| status == 200)
            .await;
        broker
    }

    /// What the broker logged so far, for failure messages.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.address, path_and_query)
    }

    /// Polls `GET /health` until `accept(status, body)`; panics with the
    /// logs if the process exits or `START` passes.
    pub async fn wait_for_health(&mut self, what: &str, accept: impl Fn(u16, &Value) -> bool) {
        let deadline = Instant::now() + START;
        let mut last = String::from("no answer");
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "broker {} exited with {status}; logs:\n{}",
                    self.instance_id,
                    self.logs()
                );
            }
            if let Ok(response) = self.client.get(self.url("/health")).send().await {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                if accept(status, &body) {
                    return;
                }
                last = format!("{status} {text}");
            }
            assert!(
                Instant::now() < deadline,
                "broker {}: /health is not {what} after {START:?} (last: {last}); logs:\n{}",
                self.instance_id,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET path_and_query` with extra headers.
    pub async fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url(path_and_query));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path_and_query} on {}: {e}", self.instance_id))
    }

    /// `POST /sse/publish` of one stored event with extra headers; asserts
    /// 202 and returns its id.
    pub async fn publish_one(&self, body: &Value, headers: &[(&str, &str)]) -> i64 {
        let mut request = self.client.post(self.url("/sse/publish")).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("publish on {}: {e}", self.instance_id));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(
            status, 202,
            "publish of {body} on {} answered {status}: {text}",
            self.instance_id
        );
        let answer: Value = serde_json::from_str(&text).expect("publish answers JSON");
        match answer["ids"].as_array().map(Vec::as_slice) {
            Some([id]) => id
                .as_i64()
                .unwrap_or_else(|| panic!("no id for a stored event: {text}")),
            _ => panic!("one id expected in {text}"),
        }
    }

    /// Opens `GET /sse/events` with extra headers, asserts 200 and reads the
    /// `connected` frame: the stream is registered when this returns.
    pub async fn open_stream(&self, headers: &[(&str, &str)]) -> EventStream {
        let response = self.get("/sse/events", headers).await;
        EventStream::connected(response, &self.instance_id).await
    }
}

impl Broker {
    /// Sends SIGTERM and waits for the process to exit; panics with the
    /// logs if it does not within `timeout`.
    pub async fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "broker {} did not exit within {timeout:?} of SIGTERM; logs:\n{}",
                self.instance_id,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The next event on `stream` that is not a heartbeat; panics naming
/// `what` when none arrives within `timeout`.
pub async fn expect_message(stream: &mut EventStream, timeout: Duration, what: &str) -> SseEvent {
    match stream.next_message(timeout).await {
        Some(event) => event,
        None => panic!(
            "no event on {what} within {timeout:?} (end: {:?})",
            stream.end()
        ),
    }
}
