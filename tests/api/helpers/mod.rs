//! `TestApp`: a real broker on a random port with its own SQLite file, and
//! a client that speaks its API.
//!
//! Every test gets a fresh database in a temporary directory that lives as
//! long as the `TestApp`, so tests run in parallel without sharing state.
//! Set `TEST_LOG=1` to see the broker's logs.

pub mod event_stream;
mod process;
pub mod raw_http;

use std::{
    future::Future,
    sync::Once,
    time::{Duration, Instant},
};

use serde_json::Value;
use sse_broker::{
    app::Application,
    config::{DatabaseUrl, Settings},
};
use tempfile::TempDir;

pub use event_stream::{EventStream, SseEvent, StreamEnd};
pub use process::BrokerProcess;

/// How long a test waits for something that should be quick.
pub const SHORT: Duration = Duration::from_secs(5);
/// How long a test waits for something that involves many events.
pub const LONG: Duration = Duration::from_secs(30);

static TRACING: Once = Once::new();

fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .init();
        }
    });
}

/// A broker under test.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    pub port: u16,
    pub api_client: reqwest::Client,
    /// The settings it was built with (`bind` is port 0; see `port`).
    pub settings: Settings,
    running: Option<Running>,
    /// Keeps the database directory alive; removed when the app is dropped.
    _data_dir: TempDir,
}

struct Running {
    trigger_shutdown: Box<dyn Fn()>,
    handle: actix_rt::task::JoinHandle<Result<(), String>>,
}

/// A broker with the default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A broker whose settings `configure` adjusts first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    init_tracing();
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let database_path = data_dir.path().join("events.db");
    let mut settings = Settings::for_tests(DatabaseUrl::Sqlite {
        path: database_path.clone(),
    });
    configure(&mut settings);
    let api_client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a reqwest client");
    let mut app = TestApp {
        address: String::new(),
        port: 0,
        api_client,
        settings,
        running: None,
        _data_dir: data_dir,
    };
    app.start().await;
    app
}

impl TestApp {
    /// Builds and runs a broker with `self.settings` on a new random port.
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "the broker is already running");
        let application = Application::build(self.settings.clone())
            .await
            .expect("the broker builds");
        self.port = application.port();
        self.address = format!("http://127.0.0.1:{}", self.port);
        let shutdown = application.shutdown_handle();
        let handle = actix_rt::spawn(async move {
            application
                .run_until_stopped()
                .await
                .map_err(|e| format!("{e:#}"))
        });
        self.running = Some(Running {
            trigger_shutdown: Box::new(move || {
                shutdown.trigger();
            }),
            handle,
        });
    }

    /// Starts the graceful drain and waits until the broker has stopped.
    pub async fn stop(&mut self) {
        let running = self.running.take().expect("the broker is running");
        (running.trigger_shutdown)();
        match tokio::time::timeout(LONG, running.handle).await {
            Err(_) => panic!("the broker did not stop within {LONG:?} of shutdown"),
            Ok(Err(join_error)) => panic!("the broker task failed: {join_error}"),
            Ok(Ok(Err(error))) => panic!("run_until_stopped returned an error: {error}"),
            Ok(Ok(Ok(()))) => {}
        }
    }

    /// Stops the broker and builds a new one on the same SQLite file.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.address, path_and_query)
    }

    /// `POST /sse/publish` with a JSON body.
    pub async fn publish(&self, body: &Value) -> reqwest::Response {
        self.api_client
            .post(self.url("/sse/publish"))
            .json(body)
            .send()
            .await
            .expect("publish request sent")
    }

    /// Publishes and returns the ids, asserting 202.
    pub async fn publish_ok(&self, body: &Value) -> Vec<Option<i64>> {
        let response = self.publish(body).await;
        let status = response.status();
        let text = response.text().await.expect("publish response body");
        assert_eq!(
            status.as_u16(),
            202,
            "publish of {} answered {text}",
            brief(body)
        );
        let answer: Value = serde_json::from_str(&text).expect("publish answers JSON");
        answer["ids"]
            .as_array()
            .unwrap_or_else(|| panic!("no ids in {answer}"))
            .iter()
            .map(Value::as_i64)
            .collect()
    }

    /// Publishes one persisted event and returns its id.
    pub async fn publish_one(&self, body: &Value) -> i64 {
        let ids = self.publish_ok(body).await;
        assert_eq!(ids.len(), 1, "one id expected for {}", brief(body));
        ids[0].unwrap_or_else(|| panic!("a stored event has an id: {}", brief(body)))
    }

    /// `POST` any bytes with an optional `Content-Type`.
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.api_client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        request.send().await.expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.api_client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `GET`, sent again once if the pooled connection it went out on was
    /// closed under it: the broker may end an idle kept-alive connection
    /// at the moment the client reuses it (hyper reports an incomplete
    /// message), which a GET may simply retry.
    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        let send = || self.api_client.get(self.url(path_and_query)).send();
        match send().await {
            Ok(response) => response,
            Err(error) if error.is_request() && !error.is_timeout() => {
                send().await.expect("request sent")
            }
            Err(error) => panic!("request sent: {error:?}"),
        }
    }

    /// `GET` a JSON document, asserting 200.
    pub async fn get_json(&self, path_and_query: &str) -> Value {
        let response = self.get(path_and_query).await;
        let status = response.status();
        let text = response.text().await.expect("a response body");
        assert_eq!(status.as_u16(), 200, "GET {path_and_query} answered {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path_and_query}: {e}: {text}"))
    }

    pub async fn stats(&self) -> Value {
        self.get_json("/sse/stats").await
    }

    pub async fn monitoring(&self) -> Value {
        self.get_json("/sse/monitoring").await
    }

    /// The raw response of `GET path_and_query` with extra headers, for
    /// tests of refused streams.
    pub async fn stream_response(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.api_client.get(self.url(path_and_query));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("stream request sent")
    }

    /// Opens a stream, asserts 200 and reads its `connected` frame, so the
    /// stream is registered (and sees every later publish) when this returns.
    pub async fn open_stream(&self, path_and_query: &str, headers: &[(&str, &str)]) -> OpenStream {
        let response = self.stream_response(path_and_query, headers).await;
        let status = response.status();
        if status.as_u16() != 200 {
            let text = response.text().await.unwrap_or_default();
            panic!("GET {path_and_query} answered {status}: {text}");
        }
        let mut events = EventStream::new(response);
        let connected = events.next_event(SHORT).await.unwrap_or_else(|| {
            panic!(
                "no first frame on {path_and_query} (end: {:?})",
                events.end()
            )
        });
        assert!(
            connected.is("connected"),
            "the first frame of {path_and_query} is {connected:?}"
        );
        let connection_id = connected.json()["connection_id"]
            .as_str()
            .expect("connected carries connection_id")
            .to_owned();
        OpenStream {
            events,
            connected,
            connection_id,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Let the server threads go; nobody waits for the drain.
        if let Some(running) = self.running.take() {
            (running.trigger_shutdown)();
        }
    }
}

/// A stream past its `connected` frame.
pub struct OpenStream {
    pub events: EventStream,
    pub connected: SseEvent,
    pub connection_id: String,
}

impl std::ops::Deref for OpenStream {
    type Target = EventStream;
    fn deref(&self) -> &EventStream {
        &self.events
    }
}

impl std::ops::DerefMut for OpenStream {
    fn deref_mut(&mut self) -> &mut EventStream {
        &mut self.events
    }
}

/// Polls `probe` every 25 ms until it returns `Some`, or panics after
/// `timeout` naming `what` it waited for.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Asserts an error response: status, JSON `{"error":{"code","message"}}`
/// with `code`, and nothing internal in the body. Returns the body.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("an error body");
    assert_error_parts(actual, &content_type, &text, status, code)
}

/// [`assert_error`] on a response already taken apart (a raw exchange).
pub fn assert_error_parts(
    actual: u16,
    content_type: &str,
    text: &str,
    status: u16,
    code: &str,
) -> Value {
    assert_eq!(
        actual, status,
        "expected {status} {code}, got {actual}: {text}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "error content type is {content_type:?}: {text}"
    );
    assert_no_internals(text);
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    assert_eq!(body["error"]["code"], code, "wrong error code in {text}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without a message: {text}"
    );
    body
}

/// `value` as JSON, cut to a readable length for failure messages.
pub fn brief(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text,
    }
}

/// Nothing internal (SQL, paths, panics) may reach a client.
/// The sum of every sample of `metric` (all label sets).
pub fn sample_sum(exposition: &str, metric: &str) -> f64 {
    labelled_sum(exposition, metric, &[])
}

/// The sum of the samples of `metric` whose labels include every one of
/// `labels`.
pub fn labelled_sum(exposition: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?;
            (rest.starts_with('{') || rest.starts_with(' ')).then_some(rest)
        })
        .filter(|rest| {
            labels
                .iter()
                .all(|(name, value)| rest.contains(&format!("{name}=\"{value}\"")))
        })
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn assert_no_internals(text: &str) {
    let lower = text.to_lowercase();
    for leak in [
        "sqlite",
        "select ",
        "insert ",
        "diesel",
        "panicked",
        "/tmp",
        "/work",
        ".rs:",
        "backtrace",
    ] {
        assert!(!lower.contains(leak), "{leak:?} leaked into {text}");
    }
}

/// A port nobody listens on right now (for child processes we start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The real `sse-broker` binary, with nothing from the test run's
/// environment able to reconfigure it.
pub fn broker_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sse-broker"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("SSE_BROKER_")
            || name.starts_with("OTEL_")
            || name == "DATABASE_URL"
            || name == "REDIS_URL"
        {
            command.env_remove(name);
        }
    }
    command
}

/// A connection of the test's own to a broker's SQLite file, waiting up to
/// 5 s for the file's write lock as the broker's connections do: the
/// broker writes it too (its probes, a checkpoint), and without the wait
/// the test's write fails at once with "database is locked".
pub fn outside_sqlite(path: &str) -> diesel::SqliteConnection {
    use diesel::{Connection, RunQueryDsl};
    let mut connection = diesel::SqliteConnection::establish(path).expect("the SQLite file opens");
    diesel::sql_query("PRAGMA busy_timeout = 5000")
        .execute(&mut connection)
        .expect("the busy timeout set");
    connection
}
