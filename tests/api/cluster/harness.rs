//! What the cluster tests run on: per-test PostgreSQL databases, broker
//! instances sharing one database and one Redis, a private `redis-server`
//! that a test may kill and restart, and stream collectors.
//!
//! Services: PostgreSQL at `SSE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432`, trust auth) and Redis at
//! `SSE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); a private Redis
//! is started from `SSE_TEST_REDIS_SERVER` (default `redis-server` on the
//! PATH). Every test uses its own database and its own `cluster_name`, so
//! tests run in parallel without sharing a channel, a key or a row. Set
//! `CLUSTER_TEST_LOG=1` to see the brokers' logs.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet, HashMap},
    process::{Child, Command, Stdio},
    rc::Rc,
    sync::Once,
    time::Duration,
};

use futures_util::{StreamExt, stream};
use secrecy::SecretString;
use serde_json::{Value, json};
use sse_broker::{
    app::Application,
    config::{DatabaseUrl, Settings},
    shutdown::ShutdownHandle,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    time::Instant,
};

use crate::helpers::{EventStream, SseEvent, StreamEnd, free_port};

/// Waits for something that should be quick.
pub const SHORT: Duration = Duration::from_secs(5);
/// Waits for many events, or for a reconnect with backoff.
pub const LONG: Duration = Duration::from_secs(15);

fn postgres_base() -> String {
    std::env::var("SSE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_owned()
}

pub fn shared_redis_url() -> String {
    std::env::var("SSE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

static TRACING: Once = Once::new();

fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var_os("CLUSTER_TEST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            // `try_init`: the other test modules may have set a subscriber.
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

/// A fresh database for one test, dropped (best effort) when this is dropped.
pub struct TestDb {
    pub name: String,
}

async fn admin_client() -> tokio_postgres::Client {
    let url = format!("{}/postgres", postgres_base());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must answer at {url} for the cluster tests: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

impl TestDb {
    pub async fn create() -> Self {
        let name = unique("sse_test_");
        admin_client()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        Self { name }
    }

    pub fn database_url(&self) -> DatabaseUrl {
        DatabaseUrl::Postgres {
            url: SecretString::from(self.url()),
        }
    }

    /// The `postgres://` URL, for brokers started as processes.
    pub fn url(&self) -> String {
        format!("{}/{}", postgres_base(), self.name)
    }

    /// Refuses new sessions on the database and closes those open (the
    /// brokers' pools included), until [`Self::reopen`]: an outage the
    /// database comes back from.
    pub async fn close_for_now(&self) {
        admin_client()
            .await
            .batch_execute(&format!(
                "ALTER DATABASE {0} ALLOW_CONNECTIONS false; \
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}'",
                self.name
            ))
            .await
            .unwrap_or_else(|e| panic!("closing {}: {e}", self.name));
    }

    /// Takes sessions on the database again after [`Self::close_for_now`].
    pub async fn reopen(&self) {
        admin_client()
            .await
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                self.name
            ))
            .await
            .unwrap_or_else(|e| panic!("reopening {}: {e}", self.name));
    }

    /// Drops the database now, closing every session on it (the brokers'
    /// pools included): PostgreSQL becomes unreachable for them.
    pub async fn drop_now(&self) {
        admin_client()
            .await
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap_or_else(|e| panic!("DROP DATABASE {}: {e}", self.name));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Best effort, on a thread of its own: Drop cannot await, and the
        // test's runtime may be gone already.
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let url = format!("{}/postgres", postgres_base());
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    let _ = client.batch_execute(&statement).await;
                }
            });
        })
        .join();
    }
}

// ---------------------------------------------------------------------------
// A private Redis
// ---------------------------------------------------------------------------

/// A `redis-server` child process on a free port, to kill and restart.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port; returns once it answers PING.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let binary =
            std::env::var("SSE_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + SHORT;
        while !self.answers_ping().await {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within {SHORT:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn answers_ping(&self) -> bool {
        let Ok(mut socket) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if socket.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        matches!(
            tokio::time::timeout(SHORT, socket.read_exact(&mut reply)).await,
            Ok(Ok(_)) if &reply == b"+PONG\r\n"
        )
    }

    /// SIGSTOPs the server: it hangs, its connections stay open (a network
    /// partition, as its clients see it), until [`RedisServer::resume`].
    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("redis-server is running");
        let status = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILLs the server: every client connection breaks at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// Broker instances
// ---------------------------------------------------------------------------

/// Test settings for one instance of cluster `cluster_name`.
pub fn settings(
    database: DatabaseUrl,
    redis_url: Option<&str>,
    cluster_name: &str,
    instance_id: &str,
) -> Settings {
    let mut settings = Settings::for_tests(database);
    settings.redis_url = redis_url.map(|url| SecretString::from(url.to_owned()));
    settings.cluster_name = cluster_name.to_owned();
    settings.instance_id = instance_id.to_owned();
    settings
}

/// A unique cluster name, so parallel tests never share a Redis channel.
pub fn cluster_name() -> String {
    unique("test-")
}

/// One running broker instance.
pub struct Node {
    pub instance_id: String,
    pub address: String,
    client: reqwest::Client,
    shutdown: ShutdownHandle,
}

impl Node {
    pub async fn start(settings: Settings) -> Self {
        init_tracing();
        let instance_id = settings.instance_id.clone();
        let app = Application::build(settings)
            .await
            .unwrap_or_else(|e| panic!("instance {instance_id} builds: {e:#}"));
        let address = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_handle();
        actix_rt::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a reqwest client");
        Self {
            instance_id,
            address,
            client,
            shutdown,
        }
    }

    /// Starts several instances at once (their migrations race on purpose).
    pub async fn start_all(all: Vec<Settings>) -> Vec<Self> {
        futures_util::future::join_all(all.into_iter().map(Self::start)).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn publish(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/sse/publish"))
            .timeout(LONG)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("publish to {}: {e}", self.instance_id))
    }

    /// Publishes one stored event, asserting 202; returns its id.
    pub async fn publish_one(&self, body: &Value) -> i64 {
        let response = self.publish(body).await;
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

    /// `GET path`: status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .timeout(LONG)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.instance_id));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}: {text}", self.instance_id));
        (status, body)
    }

    pub async fn health(&self) -> (u16, Value) {
        self.get_json("/health").await
    }

    /// The sum of every sample of counter `name` (`/metrics`) whose labels
    /// include all of `labels`.
    pub async fn counter_sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .timeout(LONG)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /metrics on {}: {e}", self.instance_id))
            .text()
            .await
            .unwrap_or_default();
        crate::helpers::labelled_sum(&text, name, labels)
    }

    pub async fn stats(&self) -> Value {
        let (status, body) = self.get_json("/sse/stats").await;
        assert_eq!(status, 200, "/sse/stats on {}: {body}", self.instance_id);
        body
    }

    /// Opens `GET /sse/events` (resuming after `last_event_id`), asserts 200
    /// and reads the `connected` frame: the stream is registered when this
    /// returns.
    pub async fn open_stream(&self, last_event_id: Option<i64>) -> EventStream {
        let mut request = self.client.get(self.url("/sse/events"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("stream on {}: {e}", self.instance_id));
        EventStream::connected(response, &self.instance_id).await
    }

    /// Opens a stream and collects it in the background.
    pub async fn collect(&self, last_event_id: Option<i64>) -> Collector {
        let label = match last_event_id {
            Some(id) => format!("stream on {} after {id}", self.instance_id),
            None => format!("stream on {}", self.instance_id),
        };
        Collector::spawn(label, self.open_stream(last_event_id).await)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// One test event: `system_status` with `{"src": src, "seq": seq}`.
pub fn event(src: &str, seq: usize) -> Value {
    json!({"event_type": "system_status", "data": {"src": src, "seq": seq}})
}

/// Publishes `count` events `event(src, 0..count)` on `node`, `in_flight`
/// requests at a time; returns `(id, seq)` per event.
pub async fn publish_series(
    node: &Node,
    src: &str,
    count: usize,
    in_flight: usize,
) -> Vec<(i64, usize)> {
    stream::iter(0..count)
        .map(|seq| async move { (node.publish_one(&event(src, seq)).await, seq) })
        .buffer_unordered(in_flight)
        .collect()
        .await
}

// ---------------------------------------------------------------------------
// Collecting streams
// ---------------------------------------------------------------------------

/// What a stream delivered so far.
#[derive(Debug, Default, Clone)]
pub struct Collected {
    /// Events with an id, in arrival order.
    pub events: Vec<(i64, SseEvent)>,
    /// Events without an id other than heartbeats (control frames).
    pub control: Vec<SseEvent>,
    pub heartbeats: usize,
    pub end: Option<StreamEnd>,
}

impl Collected {
    pub fn ids(&self) -> Vec<i64> {
        self.events.iter().map(|(id, _)| *id).collect()
    }

    pub fn last_id(&self) -> Option<i64> {
        self.events.last().map(|(id, _)| *id)
    }
}

/// A stream read in the background into a [`Collected`].
pub struct Collector {
    pub label: String,
    state: Rc<RefCell<Collected>>,
    task: actix_rt::task::JoinHandle<()>,
}

impl Collector {
    pub fn spawn(label: String, mut events: EventStream) -> Self {
        let state = Rc::new(RefCell::new(Collected::default()));
        let sink = state.clone();
        let task = actix_rt::spawn(async move {
            loop {
                match events.next_event(Duration::from_secs(3600)).await {
                    Some(event) if event.is_heartbeat() => sink.borrow_mut().heartbeats += 1,
                    Some(event) => match event.id_number() {
                        Some(id) => sink.borrow_mut().events.push((id, event)),
                        None => sink.borrow_mut().control.push(event),
                    },
                    None => {
                        if let Some(end) = events.end() {
                            sink.borrow_mut().end = Some(end.clone());
                            return;
                        }
                    }
                }
            }
        });
        Self { label, state, task }
    }

    pub fn snapshot(&self) -> Collected {
        self.state.borrow().clone()
    }

    /// Waits until `done` holds for what was collected; panics after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Collected) -> bool,
    ) -> Collected {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let state = self.state.borrow();
                if done(&state) {
                    return state.clone();
                }
                if Instant::now() >= deadline {
                    panic!(
                        "{}: timed out after {timeout:?} waiting for {what}; got {} events \
                         (last id {:?}), end {:?}, control {:?}",
                        self.label,
                        state.events.len(),
                        state.last_id(),
                        state.end,
                        state.control
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every id of `expected` arrived (or more events than
    /// that), then a little longer so duplicates and strays show up.
    pub async fn wait_for_all(&self, expected: &BTreeSet<i64>, timeout: Duration) -> Collected {
        let last = *expected.last().expect("something expected");
        self.wait_until(timeout, &format!("{} events", expected.len()), |c| {
            c.events.len() >= expected.len() || c.last_id().is_some_and(|id| id >= last)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.snapshot()
    }

    /// Closes the stream (as a client that goes away) and returns what it got.
    pub fn close(self) -> Collected {
        self.task.abort();
        self.state.borrow().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------

/// `seen` is exactly `expected`: every id once, strictly increasing.
pub fn assert_exactly_once_in_order(what: &str, seen: &[i64], expected: &BTreeSet<i64>) {
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for id in seen {
        *counts.entry(*id).or_default() += 1;
    }
    let mut duplicates: Vec<(i64, usize)> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (*id, *n))
        .collect();
    duplicates.sort_unstable();
    let missing: Vec<i64> = expected
        .iter()
        .filter(|id| !counts.contains_key(id))
        .copied()
        .collect();
    let unexpected: BTreeSet<i64> = seen
        .iter()
        .filter(|id| !expected.contains(id))
        .copied()
        .collect();
    let disorder: Vec<(usize, i64, i64)> = seen
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] <= w[0])
        .map(|(i, w)| (i + 1, w[0], w[1]))
        .collect();
    let short = |v: &dyn std::fmt::Debug| {
        let text = format!("{v:?}");
        if text.len() > 600 {
            format!("{}...", &text[..600])
        } else {
            text
        }
    };
    assert!(
        duplicates.is_empty() && missing.is_empty() && unexpected.is_empty() && disorder.is_empty(),
        "{what}: {} ids seen, {} expected\n  duplicated (id, times): {}\n  missing: {}\n  \
         unexpected: {}\n  out of order (position, previous, id): {}",
        seen.len(),
        expected.len(),
        short(&duplicates),
        short(&missing),
        short(&unexpected),
        short(&disorder)
    );
}

/// Every delivered payload is the one published under that id.
pub fn assert_payloads(what: &str, collected: &Collected, published: &BTreeMap<i64, Value>) {
    for (id, event) in &collected.events {
        if let Some(data) = published.get(id) {
            assert_eq!(
                &event.json(),
                data,
                "{what}: event {id} carries the wrong data"
            );
        }
    }
}

/// Polls `probe` every 50 ms until it returns `Some`; panics after `timeout`
/// with the last value it saw.
pub async fn poll<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until `/health` of `node` satisfies `accept(status, body)`.
pub async fn wait_for_health(
    node: &Node,
    timeout: Duration,
    what: &str,
    accept: impl Fn(u16, &Value) -> bool,
) -> Value {
    poll(
        timeout,
        &format!("{what} on {}", node.instance_id),
        || async {
            let (status, body) = node.health().await;
            if accept(status, &body) {
                Ok(body)
            } else {
                Err(format!("{status} {body}"))
            }
        },
    )
    .await
}
