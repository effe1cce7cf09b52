//! The operators' monitoring guide (CONTRACT §9) read against the broker as
//! the operators read it: the `/sse/monitoring` document's names and shapes,
//! and the log lines their searches look for, in text and JSON formats.
//! The Prometheus side is in `prometheus.rs`.

use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    auth::SECRET,
    helpers::{BrokerProcess, EventStream, LONG, SHORT, TestApp, spawn_app_with},
};

// ---------------------------------------------------------------------------
// The monitoring document
// ---------------------------------------------------------------------------

/// The JSON types the guide's fields hold.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Text,
    Count,
    Number,
    Flag,
    List,
    /// A number, or `null` where the figure does not exist (no Redis).
    NumberOrNull,
}

impl Shape {
    fn holds(self, value: &Value) -> bool {
        match self {
            Self::Text => value.is_string(),
            Self::Count => value.is_u64(),
            Self::Number => value.is_number(),
            Self::Flag => value.is_boolean(),
            Self::List => value.is_array(),
            Self::NumberOrNull => value.is_number() || value.is_null(),
        }
    }
}

/// Every field of the guide's document, by its path.
const GUIDE_FIELDS: [(&str, Shape); 31] = [
    ("timestamp", Shape::Text),
    ("service_name", Shape::Text),
    ("connection_stats.active_connections", Shape::Count),
    (
        "connection_stats.redis_connection_counters",
        Shape::NumberOrNull,
    ),
    ("connection_stats.cleanup_task_running", Shape::Flag),
    ("cleanup_stats.total_cleanups", Shape::Count),
    ("cleanup_stats.total_connections_cleaned", Shape::Count),
    ("cleanup_stats.cleanup_errors", Shape::Count),
    ("cleanup_stats.failed_connections", Shape::Count),
    ("cleanup_stats.error_rate", Shape::Number),
    ("cleanup_stats.connection_failure_rate", Shape::Number),
    ("cleanup_stats.last_cleanup_duration_ms", Shape::Number),
    ("cleanup_stats.connections_per_cleanup", Shape::Number),
    ("cleanup_stats.stale", Shape::Count),
    ("cleanup_stats.active", Shape::Count),
    ("cleanup_stats.long_lived", Shape::Count),
    ("cleanup_stats.very_old", Shape::Count),
    ("health_indicators.overall_health", Shape::Text),
    ("health_indicators.alerts", Shape::List),
    ("health_indicators.warnings", Shape::List),
    ("performance_metrics.avg_cleanup_duration_ms", Shape::Number),
    ("performance_metrics.cleanup_efficiency_rate", Shape::Number),
    ("performance_metrics.cleanup_error_rate", Shape::Number),
    (
        "performance_metrics.connections_cleaned_per_operation",
        Shape::Number,
    ),
    ("configuration.cleanup_interval_seconds", Shape::Count),
    ("configuration.cleanup_batch_size", Shape::Count),
    ("configuration.stale_threshold_seconds", Shape::Count),
    ("configuration.periodic_cleanup_enabled", Shape::Flag),
    // Ours beside the guide's, kept.
    ("instance_id", Shape::Text),
    ("store_stats.status", Shape::Text),
    ("cleanup_stats.last_run_at", Shape::Text),
];

fn at<'a>(document: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(document, |value, key| &value[key])
}

async fn open(app: &TestApp) -> EventStream {
    EventStream::connected(app.stream_response("/sse/events", &[]).await, "a viewer").await
}

#[actix_web::test]
async fn the_monitoring_document_has_every_field_of_the_guide_under_its_name_and_shape() {
    // Arrange: one stream above a warning threshold of 0, and one cleanup
    // run done, so that every figure exists.
    let app = spawn_app_with(|s| {
        s.health.active_connections_warning = 0;
        s.cleanup_interval = Duration::from_secs(45);
        s.cleanup_batch_size = 7;
        s.stale_threshold = Duration::from_secs(200);
    })
    .await;
    let _viewer = open(&app).await;
    // Before any run, too, every field has its shape (no `null` number),
    // but the time of the last run, which there is not.
    let fresh = app.monitoring().await;
    assert_eq!(at(&fresh, "cleanup_stats.last_run_at"), &Value::Null);
    let wrong_fresh: Vec<String> = GUIDE_FIELDS
        .iter()
        .filter(|(path, _)| *path != "cleanup_stats.last_run_at")
        .filter(|(path, shape)| !shape.holds(at(&fresh, path)))
        .map(|(path, shape)| format!("{path}: {shape:?}, found {}", at(&fresh, path)))
        .collect();
    assert!(
        wrong_fresh.is_empty(),
        "before the first run: {wrong_fresh:#?}\n{fresh:#}"
    );
    let run = app.post_json("/sse/cleanup", &json!({})).await;
    assert_eq!(run.status().as_u16(), 200);

    // Act: the census of streams by age runs once a second.
    let deadline = tokio::time::Instant::now() + SHORT;
    let document = loop {
        let document = app.monitoring().await;
        if document["cleanup_stats"]["active"] == 1 || tokio::time::Instant::now() >= deadline {
            break document;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Assert: every field, with its shape.
    let wrong: Vec<String> = GUIDE_FIELDS
        .iter()
        .filter(|(path, shape)| !shape.holds(at(&document, path)))
        .map(|(path, shape)| format!("{path}: {shape:?}, found {}", at(&document, path)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}\n{document:#}");
    let timestamp = document["timestamp"].as_str().unwrap_or_default();
    assert!(
        timestamp.ends_with('Z') && timestamp.len() >= 20,
        "RFC 3339 in UTC: {timestamp}"
    );
    // The figures mean what the guide says.
    let cleanup = &document["cleanup_stats"];
    assert_eq!(cleanup["total_cleanups"], 1, "{cleanup}");
    assert_eq!(cleanup["error_rate"], 0.0, "{cleanup}");
    assert_eq!(cleanup["active"], 1, "{cleanup}");
    assert_eq!(
        document["connection_stats"]["redis_connection_counters"],
        Value::Null,
        "no Redis, no Redis counter"
    );
    let performance = &document["performance_metrics"];
    assert_eq!(
        performance["cleanup_efficiency_rate"], 100.0,
        "{performance}"
    );
    assert_eq!(
        performance["avg_cleanup_duration_ms"], cleanup["last_cleanup_duration_ms"],
        "one run: its duration is the mean"
    );
    let configuration = &document["configuration"];
    assert_eq!(configuration["cleanup_interval_seconds"], 45);
    assert_eq!(configuration["cleanup_batch_size"], 7);
    assert_eq!(configuration["stale_threshold_seconds"], 200);
    assert_eq!(configuration["periodic_cleanup_enabled"], true);
    // The indicators: `{type, message, severity, value}`, nothing else.
    let indicators = &document["health_indicators"];
    assert_eq!(indicators["overall_health"], "degraded", "{indicators}");
    let warning = &indicators["warnings"][0];
    let mut keys: Vec<&str> = warning
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["message", "severity", "type", "value"], "{warning}");
    assert_eq!(warning["type"], "high_connection_count", "{warning}");
    assert_eq!(warning["severity"], "medium", "{warning}");
    assert_eq!(warning["value"], 1.0, "{warning}");
    assert_eq!(warning["message"], "High connection count: 1", "{warning}");
}

// ---------------------------------------------------------------------------
// The log lines
// ---------------------------------------------------------------------------

/// The `key=value` pairs after `prefix` in `message`, in order, when it
/// starts so.
fn pairs<'a>(message: &'a str, prefix: &str) -> Option<Vec<(&'a str, &'a str)>> {
    let start = message.find(prefix)? + prefix.len();
    message[start..]
        .trim_end()
        .split(", ")
        .map(|pair| pair.split_once('='))
        .collect()
}

/// `value` is a decimal with exactly `decimals` digits after the point.
fn decimal(value: &str, decimals: usize) -> bool {
    value.split_once('.').is_some_and(|(whole, fraction)| {
        !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.len() == decimals
            && fraction.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The guide's cleanup line, with this run's figures (the duration varies).
fn is_completed_line(message: &str, cleaned: usize, total_before: usize) -> bool {
    let Some(pairs) = pairs(message, "SSE cleanup completed: ") else {
        return false;
    };
    let after = (total_before - cleaned).to_string();
    let (cleaned, total_before) = (cleaned.to_string(), total_before.to_string());
    let expected = [
        ("cleaned", cleaned.as_str()),
        ("failed", "0"),
        ("total_before", total_before.as_str()),
        ("total_after", after.as_str()),
        ("duration_ms", ""),
        ("efficiency", "100.0%"),
        ("batch_size", "10"),
        ("threshold_seconds", "1"),
        ("stale_connections", cleaned.as_str()),
        ("active_connections", after.as_str()),
        ("long_lived_connections", "0"),
    ];
    pairs.len() == expected.len()
        && pairs
            .iter()
            .zip(expected)
            .all(|((key, value), (name, want))| {
                *key == name
                    && if name == "duration_ms" {
                        decimal(value, 2)
                    } else {
                        *value == want
                    }
            })
}

/// `Periodic cleanup cycle: cleaned=3 connections, cycle_duration_ms=8.30,
/// total_cleanups=45, total_cleaned=89, error_rate=2.2%`.
fn is_periodic_line(message: &str) -> bool {
    let Some(pairs) = pairs(message, "Periodic cleanup cycle: ") else {
        return false;
    };
    let count = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let keys: Vec<&str> = pairs.iter().map(|(key, _)| *key).collect();
    keys == [
        "cleaned",
        "cycle_duration_ms",
        "total_cleanups",
        "total_cleaned",
        "error_rate",
    ] && pairs[0].1.strip_suffix(" connections").is_some_and(count)
        && decimal(pairs[1].1, 2)
        && count(pairs[2].1)
        && count(pairs[3].1)
        && pairs[4].1.strip_suffix('%').is_some_and(|v| decimal(v, 1))
}

#[test]
fn the_line_checks_tell_the_guides_lines_from_others() {
    let completed = "SSE cleanup completed: cleaned=5, failed=0, total_before=150, \
                     total_after=145, duration_ms=12.50, efficiency=100.0%, batch_size=10, \
                     threshold_seconds=1, stale_connections=5, active_connections=145, \
                     long_lived_connections=0";
    assert!(is_completed_line(completed, 5, 150));
    assert!(!is_completed_line(completed, 4, 150));
    assert!(!is_completed_line(
        &completed.replace("12.50", "12.5"),
        5,
        150
    ));
    let periodic = "Periodic cleanup cycle: cleaned=3 connections, cycle_duration_ms=8.30, \
                    total_cleanups=45, total_cleaned=89, error_rate=2.2%";
    assert!(is_periodic_line(periodic));
    assert!(!is_periodic_line(&periodic.replace("2.2%", "2.2")));
}

/// The message of each log line: the line itself in text format, the
/// `message` field in JSON format (every line must then be JSON).
fn messages(logs: &str, json: bool) -> Vec<String> {
    logs.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            if json {
                let entry: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
                entry["message"].as_str().unwrap_or_default().to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect()
}

/// A broker whose streams go stale after a second and whose Janitor runs
/// every second; no heartbeat comes between.
async fn cleaning_broker(dir: &TempDir, format: &str) -> BrokerProcess {
    let mut broker = BrokerProcess::spawn_with(
        &dir.path().join("events.db"),
        dir.path().join(format!("{format}.log")),
        &[
            "--log-format",
            format,
            "--stale-threshold-secs",
            "1",
            "--cleanup-interval-secs",
            "1",
            "--heartbeat-secs",
            "60",
        ],
        &[],
    );
    broker.wait_until_ready(&client()).await;
    broker
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client")
}

/// Polls the broker's log until `found` holds.
async fn wait_for_log(broker: &BrokerProcess, what: &str, found: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + LONG;
    while !found(&broker.logs()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what} in the log:\n{}",
            broker.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn the_cleanup_log_lines_are_the_guides_in_text_and_json() {
    for format in ["text", "json"] {
        let json = format == "json";
        let dir = tempfile::tempdir().expect("a temporary directory");
        let broker = cleaning_broker(&dir, format).await;

        // Act: a stream that goes stale; the Janitor closes it.
        let response = client()
            .get(format!("{}/sse/events", broker.address))
            .send()
            .await
            .expect("a stream");
        let mut viewer = EventStream::connected(response, "a viewer").await;
        wait_for_log(&broker, "the cleanup of the stale stream", |logs| {
            messages(logs, json)
                .iter()
                .any(|m| is_completed_line(m, 1, 1))
        })
        .await;

        // Assert
        let logs = broker.logs();
        let messages = messages(&logs, json);
        assert!(
            messages.iter().any(|m| is_periodic_line(m)),
            "{format}: no periodic cycle line:\n{logs}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("SSE configuration validation warnings: ")
                    && m.contains("cleanup_interval_secs")),
            "{format}: no validation warnings line listing the finding:\n{logs}"
        );
        assert!(
            !logs.contains('\u{1b}'),
            "{format}: no terminal colour codes in a log file:\n{logs}"
        );
        if json {
            let line = logs
                .lines()
                .find(|line| line.contains("SSE cleanup completed: cleaned=1"))
                .expect("the line");
            let entry: Value = serde_json::from_str(line).expect("JSON");
            assert!(
                entry["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("SSE cleanup completed: ")),
                "the text is the message field: {entry}"
            );
        }
        // The close is the broker's own line; actix-http's report of the
        // aborted body would put a routine close into an error-log alert.
        viewer.read_to_end(SHORT).await;
        wait_for_log(&broker, "the stale stream's close", |logs| {
            logs.contains("stream closed") && logs.contains("stale")
        })
        .await;
        let logs = broker.logs();
        assert!(
            !logs.contains("Response payload stream error"),
            "{format}: a deliberate close logged as an error:\n{logs}"
        );
    }
}

#[actix_web::test]
async fn a_valid_configuration_logs_the_guides_success_line() {
    // Arrange: nothing out of range, with authentication on and off (the
    // default: a mode chosen, said on a line of its own, not a finding).
    for auth in [&["--jwt-secret", SECRET][..], &[]] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut broker = BrokerProcess::spawn_with(
            &dir.path().join("events.db"),
            dir.path().join("broker.log"),
            auth,
            &[],
        );

        // Act
        broker.wait_until_ready(&client()).await;

        // Assert
        let logs = broker.logs();
        assert!(
            logs.contains(
                "SSE configuration validated successfully: cleanup_interval=60s, batch_size=10, \
                 stale_threshold=300s, ping_interval=15s"
            ),
            "{auth:?}: {logs}"
        );
        assert!(
            !logs.contains("SSE configuration validation warnings"),
            "{auth:?}: {logs}"
        );
        assert_eq!(
            logs.contains("authentication is off: no JWT key configured"),
            auth.is_empty(),
            "{auth:?}: {logs}"
        );
    }
}

#[actix_web::test]
async fn a_periodic_run_that_overruns_its_interval_logs_the_guides_error_line() {
    // Arrange: one stream per batch, 5 ms apart, a run every second: 400
    // stale streams cannot be closed within one interval.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut broker = BrokerProcess::spawn_with(
        &dir.path().join("events.db"),
        dir.path().join("broker.log"),
        &[
            "--stale-threshold-secs",
            "1",
            "--cleanup-interval-secs",
            "1",
            "--cleanup-batch-size",
            "1",
            "--heartbeat-secs",
            "60",
        ],
        &[],
    );
    broker.wait_until_ready(&client()).await;

    // Act
    let client = client();
    let url = format!("{}/sse/events", broker.address);
    let mut viewers = Vec::new();
    for _ in 0..400 {
        viewers.push(client.get(&url).send());
    }
    let _viewers = futures_util::future::join_all(viewers).await;

    // Assert
    wait_for_log(&broker, "the periodic error line", |logs| {
        logs.contains(
            "Error during periodic SSE cleanup: the run stopped at its 1000 ms deadline with \
             stale streams left",
        )
    })
    .await;
}

#[actix_web::test]
async fn a_refused_request_is_logged_at_debug_never_at_warn() {
    // Arrange: the broker's own debug lines on, in JSON.
    let dir = TempDir::new().unwrap();
    let mut broker = BrokerProcess::spawn_with(
        &dir.path().join("events.db"),
        dir.path().join("refusals.log"),
        &["--log-format", "json"],
        &[("RUST_LOG", "info,sse_broker=debug")],
    );
    broker.wait_until_ready(&client()).await;
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", broker.port());

    // Act: a malformed body (400) and an unknown task (404).
    let malformed = client()
        .post(url("/sse/publish"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(malformed.status().as_u16(), 400);
    let unknown = client()
        .get(url("/tasks/nosuch"))
        .send()
        .await
        .expect("sent");
    assert_eq!(unknown.status().as_u16(), 404);

    // Assert: one DEBUG line each, with its status and route; nothing at
    // WARN or above.
    fn refused(status: u64, route: &str) -> impl Fn(&str) -> bool + '_ {
        move |logs: &str| {
            logs.lines().any(|line| {
                let entry: Value = serde_json::from_str(line).unwrap_or_default();
                entry["message"] == "request refused"
                    && entry["level"] == "DEBUG"
                    && entry["http.status_code"] == json!(status)
                    && line.contains(route)
            })
        }
    }
    wait_for_log(&broker, "the 400's line", refused(400, "/sse/publish")).await;
    wait_for_log(&broker, "the 404's line", refused(404, "/tasks/{id}")).await;
    let logs = broker.logs();
    let loud: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\""))
        .filter(|line| !line.contains("authentication is off"))
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
}

#[actix_web::test]
async fn streams_closed_as_slow_and_at_shutdown_have_their_stream_closed_line() {
    // Arrange: a stream whose reader never reads (a queue of 4 frames), and
    // one that does.
    let dir = TempDir::new().expect("a directory");
    let mut broker = BrokerProcess::spawn_with(
        &dir.path().join("events.db"),
        dir.path().join("closes.log"),
        &["--log-format", "json", "--queue-capacity", "4"],
        &[],
    );
    broker.wait_until_ready(&client()).await;
    let address = broker.address.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&address)
        .await
        .expect("a connection");
    tokio::io::AsyncWriteExt::write_all(
        &mut stalled,
        format!("GET /sse/events HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes(),
    )
    .await
    .expect("a request");
    let mut stream = client()
        .get(format!("{}/sse/events", broker.address))
        .send()
        .await
        .expect("a stream");
    let reader = actix_rt::spawn(async move { while let Ok(Some(_)) = stream.chunk().await {} });
    wait_for_log(&broker, "both streams opened", |logs| {
        logs.matches("stream opened").count() >= 2
    })
    .await;

    // Act: events too big for the stalled reader's socket, then SIGTERM.
    let big = "x".repeat(50 * 1024);
    for n in 0..30 {
        let answer = client()
            .post(format!("{}/sse/publish", broker.address))
            .json(&json!({"event_type": "system_status", "data": {"n": n, "pad": big}}))
            .send()
            .await
            .expect("a publish");
        assert!(answer.status().is_success(), "{}", answer.status());
    }
    wait_for_log(&broker, "the slow close", |logs| {
        logs.contains("closing slow stream")
    })
    .await;
    broker.sigterm();
    broker.wait_for_exit(LONG).await;
    reader.abort();
    drop(stalled);

    // Assert: one `stream closed` line per close, with its reason and fields.
    let closes: Vec<Value> = broker
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["message"] == "stream closed")
        .collect();
    let reasons: Vec<&str> = closes
        .iter()
        .map(|entry| entry["reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "slow").count(),
        1,
        "{closes:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| **r == "shutdown").count(),
        1,
        "{closes:?}"
    );
    for entry in &closes {
        assert!(entry["connection_id"].is_string(), "{entry}");
        assert!(entry["events_sent"].is_u64(), "{entry}");
        assert!(entry["duration_secs"].is_f64(), "{entry}");
    }
}
