//! The health rules of `/sse/monitoring` (`health_indicators`) and
//! `/health`, each flipped by producing its condition for real: streams
//! that go stale, more streams than the warning allows, cleanup runs that
//! overrun their interval (the cluster's side, Redis: `redis_health`).
//! Also the gauges the `HealthSampler` and the Registry write from the same
//! rules (`sse_health_status`, `sse_stale_connections`,
//! `sse_cleanup_error_rate`, `sse_redis_bridge_up`).
//!
//! Rules whose condition takes hours or a broken actor (very old streams,
//! the cleanup timer stopped, the store gone) are unit-tested on hand-made
//! snapshots in `src/monitoring.rs`.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use sse_broker::config::HealthThresholds;

use crate::helpers::{LONG, OpenStream, SHORT, TestApp, spawn_app_with};

/// The Registry samples stream ages and the HealthSampler the verdict every
/// 5 s: two periods and some margin.
const GAUGE_WAIT: Duration = Duration::from_secs(12);

// ---------------------------------------------------------------------------
// Polling and reading the documents
// ---------------------------------------------------------------------------

/// Polls `probe` every `every` until it returns `Ok`; `Err` with the last
/// thing it saw after `timeout`.
pub(crate) async fn try_poll<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    mut probe: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Polls `/sse/monitoring` every `every` until `accept` holds for it.
pub(crate) async fn try_monitoring(
    app: &TestApp,
    timeout: Duration,
    every: Duration,
    accept: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    try_poll(timeout, every, || async {
        let monitoring = app.monitoring().await;
        if accept(&monitoring) {
            Ok(monitoring)
        } else {
            Err(format!(
                "health_indicators {}, cleanup_stats {}, connection_stats {}",
                monitoring["health_indicators"],
                monitoring["cleanup_stats"],
                monitoring["connection_stats"]
            ))
        }
    })
    .await
}

/// Polls `/sse/monitoring` until `accept` holds; panics with the
/// `health_indicators` (and the statistics behind them) last seen.
pub(crate) async fn wait_for_monitoring(
    app: &TestApp,
    timeout: Duration,
    what: &str,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    try_monitoring(app, timeout, Duration::from_millis(25), accept)
        .await
        .unwrap_or_else(|last| panic!("timed out after {timeout:?} waiting for {what}; {last}"))
}

/// `GET /health`: status and body.
pub(crate) async fn health(app: &TestApp) -> (u16, Value) {
    let response = app.get("/health").await;
    let status = response.status().as_u16();
    let text = response.text().await.expect("a /health body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("/health: {e}: {text}"));
    (status, body)
}

/// Polls `/health` until `accept(status, body)`; panics with the last answer.
pub(crate) async fn wait_for_health(
    app: &TestApp,
    what: &str,
    accept: impl Fn(u16, &Value) -> bool,
) -> Value {
    try_poll(SHORT, Duration::from_millis(25), || async {
        let (status, body) = health(app).await;
        if accept(status, &body) {
            Ok(body)
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await
    .unwrap_or_else(|last| {
        panic!("timed out after {SHORT:?} waiting for /health {what}; last: {last}")
    })
}

/// The finding of `rule` among `health_indicators[kind]` (`alerts` or
/// `warnings`); `/health` lists them under the same names.
pub(crate) fn finding<'a>(indicators: &'a Value, kind: &str, rule: &str) -> Option<&'a Value> {
    indicators[kind]
        .as_array()?
        .iter()
        .find(|finding| finding["type"] == rule)
}

fn no_findings(indicators: &Value, kind: &str) -> bool {
    indicators[kind].as_array().is_some_and(Vec::is_empty)
}

pub(crate) fn is_healthy(indicators: &Value) -> bool {
    indicators["overall_health"] == "healthy"
        && no_findings(indicators, "alerts")
        && no_findings(indicators, "warnings")
}

/// The value of the sample `name{labels...}` in a Prometheus exposition.
pub(crate) fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(label, value)| line.contains(&format!("{label}=\"{value}\"")))
        })
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// Polls `/metrics` until the sample `name{labels}` satisfies `accept`.
pub(crate) async fn wait_for_gauge(
    app: &TestApp,
    name: &str,
    labels: &[(&str, &str)],
    what: &str,
    accept: impl Fn(f64) -> bool,
) -> f64 {
    try_poll(GAUGE_WAIT, Duration::from_millis(100), || async {
        let text = app.get("/metrics").await.text().await.unwrap_or_default();
        match sample(&text, name, labels) {
            Some(value) if accept(value) => Ok(value),
            Some(value) => Err(format!("{name}{labels:?} = {value}")),
            None => Err(format!("no sample {name}{labels:?}")),
        }
    })
    .await
    .unwrap_or_else(|last| {
        panic!("timed out after {GAUGE_WAIT:?} waiting for {what}; last: {last}")
    })
}

/// `count` streams opened at once, each past its `connected` frame.
pub(crate) async fn open_streams(app: &TestApp, count: usize) -> Vec<OpenStream> {
    stream::iter(0..count)
        .map(|_| app.open_stream("/sse/events", &[]))
        .buffer_unordered(50)
        .collect()
        .await
}

// ---------------------------------------------------------------------------
// Warnings: degraded, 200
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn streams_idle_past_the_stale_threshold_degrade_health_until_they_close() {
    // Arrange: after `connected` nothing is written (heartbeats a minute
    // apart), the Janitor waits five minutes, and more than 2 stale streams
    // is a warning.
    let app = spawn_app_with(|s| {
        s.heartbeat = Duration::from_secs(60);
        s.stale_threshold = Duration::from_secs(2);
        s.cleanup_interval = Duration::from_secs(300);
        s.health.stale_connections_warning = 2;
    })
    .await;
    let streams = open_streams(&app, 3).await;
    let fresh = app.monitoring().await["health_indicators"].clone();
    assert!(
        is_healthy(&fresh),
        "3 fresh streams are not stale; found {fresh}"
    );

    // Act: nothing but time, past the threshold.
    let monitoring = wait_for_monitoring(
        &app,
        SHORT,
        "a stale_connection_accumulation warning",
        |m| {
            finding(
                &m["health_indicators"],
                "warnings",
                "stale_connection_accumulation",
            )
            .is_some()
        },
    )
    .await;

    // Assert: a medium warning, degraded, /health 200 "degraded".
    let indicators = &monitoring["health_indicators"];
    let warning = finding(indicators, "warnings", "stale_connection_accumulation").unwrap();
    assert_eq!(warning["severity"], "medium", "{indicators}");
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m == "Stale connections accumulating: 3"),
        "{indicators}"
    );
    assert_eq!(warning["value"], 3.0, "{indicators}");
    assert_eq!(indicators["overall_health"], "degraded", "{indicators}");
    assert!(no_findings(indicators, "alerts"), "{indicators}");
    assert_eq!(
        monitoring["cleanup_stats"]["stale"], 3,
        "{}",
        monitoring["cleanup_stats"]
    );
    let (status, body) = health(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        finding(&body, "warnings", "stale_connection_accumulation").is_some(),
        "{body}"
    );
    wait_for_gauge(
        &app,
        "sse_stale_connections",
        &[],
        "3 stale streams in the age gauge",
        |v| v == 3.0,
    )
    .await;
    wait_for_gauge(&app, "sse_health_status", &[], "degraded (1)", |v| v == 1.0).await;
    wait_for_gauge(
        &app,
        "sse_health_alerts",
        &[],
        "a warning is no alert",
        |v| v == 0.0,
    )
    .await;

    // Act 2: the clients go away.
    drop(streams);

    // Assert 2: the warning clears, everywhere.
    wait_for_monitoring(&app, SHORT, "healthy once the streams closed", |m| {
        m["connection_stats"]["active_connections"] == 0 && is_healthy(&m["health_indicators"])
    })
    .await;
    let body = wait_for_health(&app, "200 healthy", |status, body| {
        status == 200 && body["status"] == "healthy"
    })
    .await;
    assert!(no_findings(&body, "warnings"), "{body}");
    wait_for_gauge(
        &app,
        "sse_stale_connections",
        &[],
        "no stale stream in the age gauge",
        |v| v == 0.0,
    )
    .await;
    wait_for_gauge(&app, "sse_health_status", &[], "healthy (0)", |v| v == 0.0).await;
}

#[actix_web::test]
async fn more_active_streams_than_the_configured_warning_degrade_health() {
    // Arrange: more than 2 active streams is a warning; 2 is not.
    let app = spawn_app_with(|s| s.health.active_connections_warning = 2).await;
    let mut streams = open_streams(&app, 2).await;
    let at_the_threshold = app.monitoring().await["health_indicators"].clone();
    assert!(
        is_healthy(&at_the_threshold),
        "2 streams are not above a warning at 2; found {at_the_threshold}"
    );

    // Act
    streams.push(app.open_stream("/sse/events", &[]).await);

    // Assert
    let monitoring = app.monitoring().await;
    let indicators = &monitoring["health_indicators"];
    let warning = finding(indicators, "warnings", "high_connection_count")
        .unwrap_or_else(|| panic!("no high_connection_count warning; found {indicators}"));
    assert_eq!(warning["severity"], "medium", "{indicators}");
    assert!(
        warning["message"].as_str().is_some_and(|m| m.contains('3')),
        "{indicators}"
    );
    assert_eq!(indicators["overall_health"], "degraded", "{indicators}");
    assert!(no_findings(indicators, "alerts"), "{indicators}");
    let (status, body) = health(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        finding(&body, "warnings", "high_connection_count").is_some(),
        "{body}"
    );

    // Act 2 / Assert 2: back to 2 streams, back to healthy.
    drop(streams.pop());
    wait_for_monitoring(&app, SHORT, "healthy with 2 streams again", |m| {
        m["connection_stats"]["active_connections"] == 2 && is_healthy(&m["health_indicators"])
    })
    .await;
    wait_for_health(&app, "200 healthy", |status, body| {
        status == 200 && body["status"] == "healthy"
    })
    .await;
}

// ---------------------------------------------------------------------------
// Alerts: unhealthy, 503
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn cleanup_runs_that_overrun_their_interval_raise_the_error_rate_alert_and_503() {
    // Arrange: a run every second, one stream per batch (5 ms apart), every
    // stream stale a second after `connected`: 400 stale streams cannot be
    // closed within one interval, so a run fails with `Overran`.
    let app = spawn_app_with(|s| {
        s.heartbeat = Duration::from_secs(60);
        s.stale_threshold = Duration::from_secs(1);
        s.cleanup_interval = Duration::from_secs(1);
        s.cleanup_batch_size = 1;
    })
    .await;
    let before = app.monitoring().await["health_indicators"].clone();
    assert!(
        finding(&before, "alerts", "high_cleanup_error_rate").is_none(),
        "{before}"
    );

    // Act
    let _streams = open_streams(&app, 400).await;

    // Assert: a failed run, an error rate above 10 %: a high alert.
    let monitoring = wait_for_monitoring(
        &app,
        LONG,
        "a failed cleanup run and an error rate above 10 %",
        |m| {
            let cleanup = &m["cleanup_stats"];
            cleanup["cleanup_errors"].as_u64().is_some_and(|n| n >= 1)
                && cleanup["error_rate"].as_f64().is_some_and(|r| r > 10.0)
        },
    )
    .await;
    let indicators = &monitoring["health_indicators"];
    let alert = finding(indicators, "alerts", "high_cleanup_error_rate")
        .unwrap_or_else(|| panic!("no high_cleanup_error_rate alert; found {indicators}"));
    assert_eq!(alert["severity"], "high", "{indicators}");
    assert!(
        finding(indicators, "warnings", "elevated_error_rate").is_none(),
        "an alert is not also a warning: {indicators}"
    );
    assert_eq!(indicators["overall_health"], "unhealthy", "{indicators}");
    let body = wait_for_health(&app, "503 unhealthy", |status, body| {
        status == 503 && body["status"] == "unhealthy"
    })
    .await;
    assert!(
        finding(&body, "alerts", "high_cleanup_error_rate").is_some(),
        "{body}"
    );
    assert!(
        body["checks"]["cleanup"]["error_rate"]
            .as_f64()
            .is_some_and(|r| r > 10.0),
        "{body}"
    );
    wait_for_gauge(
        &app,
        "sse_cleanup_error_rate",
        &[],
        "an error rate above 10 % in the gauge",
        |v| v > 10.0,
    )
    .await;
    wait_for_gauge(&app, "sse_health_status", &[], "unhealthy (2)", |v| {
        v == 2.0
    })
    .await;
    // The guide's alert count and its 5-minute error rate's counters.
    let alerts = indicators["alerts"].as_array().map_or(0, Vec::len) as f64;
    wait_for_gauge(&app, "sse_health_alerts", &[], "the alerts counted", |v| {
        v == alerts
    })
    .await;
    let errors = wait_for_gauge(
        &app,
        "sse_cleanup_errors_total",
        &[],
        "failed runs counted",
        |v| v >= 1.0,
    )
    .await;
    wait_for_gauge(&app, "sse_cleanup_total", &[], "every run counted", |v| {
        v >= errors
    })
    .await;
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn monitoring_shows_the_configured_health_thresholds() {
    // Arrange: every threshold off its default.
    let thresholds = HealthThresholds {
        active_connections_warning: 7,
        stale_connections_warning: 3,
        very_old_connections_warning: 4,
        cleanup_error_rate_warning: 0.25,
        cleanup_error_rate_alert: 0.5,
        mismatch_tolerance: 9,
    };
    assert_ne!(thresholds, HealthThresholds::default());
    let app = spawn_app_with(|s| s.health = thresholds).await;

    // Act
    let monitoring = app.monitoring().await;

    // Assert
    let configuration = &monitoring["configuration"];
    assert_eq!(
        configuration["health"],
        json!({
            "active_connections_warning": 7,
            "stale_connections_warning": 3,
            "very_old_connections_warning": 4,
            "cleanup_error_rate_warning": 0.25,
            "cleanup_error_rate_alert": 0.5,
            "mismatch_tolerance": 9,
        }),
        "{configuration}"
    );
    assert!(
        is_healthy(&monitoring["health_indicators"]),
        "{}",
        monitoring["health_indicators"]
    );
}
