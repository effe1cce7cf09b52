//! The operator assets of the repository, held to the broker they describe:
//! the Prometheus alert rules and their promtool unit tests
//! (`grafana/alerts/`), the Grafana dashboard and its provisioning
//! (`grafana/dashboards/`, `grafana/provisioning/`).
//!
//! - promtool must accept the rules and pass their unit tests, and every
//!   alert must have a test that fires it and one that keeps it quiet;
//! - every health rule of `/health` has its alert, with the same severity;
//! - every metric the dashboard or the rules query is one the broker really
//!   serves on `GET /metrics`, from start-up: freshly started brokers (one
//!   single, one clustered) are scraped before anything happens to them, so
//!   a `rate()` panel or an alert has its series from the first scrape.
//!
//! promtool comes with Debian's `prometheus` package; `.ci/test.sh` installs
//! it when it is missing.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::ErrorKind,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::{
    cluster::harness::RedisServer,
    helpers::{LONG, TestApp, spawn_app, spawn_app_with},
};

pub(crate) const RULES: &str = "grafana/alerts/sse-broker.rules.yml";
const RULE_TESTS: &str = "grafana/alerts/sse-broker.rules.test.yml";
const DASHBOARD: &str = "grafana/dashboards/sse-broker.json";
const DATASOURCES: &str = "grafana/provisioning/datasources/datasources.yaml";
const DASHBOARD_PROVIDERS: &str = "grafana/provisioning/dashboards/dashboards.yaml";
const TROUBLESHOOTING: &str = "docs/troubleshooting.md";
const MONITORING: &str = "docs/monitoring.md";

/// How a metric family turns into Prometheus series names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The family name is the series name (it already ends in `_total`).
    Counter,
    Gauge,
    /// `_bucket`, `_sum` and `_count` series; the family name itself is none.
    Histogram,
}

/// Every metric family of the observability spec, as Prometheus names them
/// on `GET /metrics`.
const SPEC_METRICS: [(&str, Kind); 59] = [
    ("sse_active_connections", Kind::Gauge),
    ("sse_connections_max", Kind::Gauge),
    ("sse_connections_refused_total", Kind::Counter),
    ("sse_redis_bridge_instance_id_clashes_total", Kind::Counter),
    ("sse_task_answer_parts_total", Kind::Counter),
    ("sse_connections_opened_total", Kind::Counter),
    ("sse_connections_closed_total", Kind::Counter),
    ("sse_events_published_total", Kind::Counter),
    ("sse_events_delivered_total", Kind::Counter),
    ("sse_events_dropped_total", Kind::Counter),
    ("sse_publish_latency_seconds", Kind::Histogram),
    ("sse_store_batch_size", Kind::Histogram),
    ("sse_store_commit_duration_seconds", Kind::Histogram),
    ("sse_store_checkpoint_duration_seconds", Kind::Histogram),
    ("sse_store_task_index_duration_seconds", Kind::Histogram),
    ("sse_store_errors_total", Kind::Counter),
    ("sse_store_up", Kind::Gauge),
    ("sse_store_failing", Kind::Gauge),
    ("sse_store_oldest_operation_seconds", Kind::Gauge),
    ("sse_replay_events_total", Kind::Counter),
    ("sse_cleanup_total", Kind::Counter),
    ("sse_cleanup_errors_total", Kind::Counter),
    ("sse_cleanup_cleaned_total", Kind::Counter),
    ("sse_total_connections_cleaned", Kind::Counter),
    ("sse_cleanup_failed_total", Kind::Counter),
    ("sse_cleanup_duration_seconds", Kind::Histogram),
    ("sse_task_time_to_first_token_seconds", Kind::Histogram),
    ("sse_task_token_gap_seconds", Kind::Histogram),
    ("sse_task_deltas_total", Kind::Counter),
    ("sse_task_tool_events_total", Kind::Counter),
    ("sse_task_step_ends_total", Kind::Counter),
    ("sse_task_text_deltas_per_event", Kind::Histogram),
    ("sse_task_uploads_total", Kind::Counter),
    ("sse_task_uploads_open", Kind::Gauge),
    ("sse_task_uploads_memory_bytes", Kind::Gauge),
    ("sse_task_finishes_total", Kind::Counter),
    ("sse_task_tokens_total", Kind::Counter),
    ("sse_delivery_lag_seconds", Kind::Histogram),
    ("sse_stream_frames_per_write", Kind::Histogram),
    ("sse_stream_queue_depth", Kind::Histogram),
    ("sse_stale_connections", Kind::Gauge),
    ("sse_long_lived_connections", Kind::Gauge),
    ("sse_very_old_connections", Kind::Gauge),
    ("sse_connections_redis", Kind::Gauge),
    ("sse_cleanup_error_rate", Kind::Gauge),
    ("sse_cleanup_running", Kind::Gauge),
    ("sse_cleanup_last_run_timestamp_seconds", Kind::Gauge),
    ("sse_start_time_seconds", Kind::Gauge),
    ("sse_redis_bridge_up", Kind::Gauge),
    ("sse_redis_bridge_reconnects_total", Kind::Counter),
    ("sse_redis_bridge_foreign_messages_total", Kind::Counter),
    ("sse_health_status", Kind::Gauge),
    ("sse_health_alerts", Kind::Gauge),
    ("sse_registry_resets_total", Kind::Counter),
    ("sse_rate_limited_total", Kind::Counter),
    ("sse_auth_failures_total", Kind::Counter),
    ("sse_jwks_refreshes_total", Kind::Counter),
    ("sse_heap_bytes", Kind::Gauge),
    ("sse_heap_trims_total", Kind::Counter),
];

/// Every health rule of `/health` with its severity, and the alert that
/// stands for it. `store_failing` is a rule at both
/// levels.
const HEALTH_RULES: [(&str, &str, &str); 16] = [
    ("connection_mismatch", "high", "SseBrokerConnectionMismatch"),
    ("foreign_deployment", "medium", "SseBrokerForeignDeployment"),
    (
        "duplicate_instance_id",
        "medium",
        "SseBrokerDuplicateInstanceId",
    ),
    (
        "high_cleanup_error_rate",
        "high",
        "SseBrokerCleanupErrorRateHigh",
    ),
    ("cleanup_not_running", "high", "SseBrokerCleanupNotRunning"),
    ("store_unavailable", "high", "SseBrokerStoreUnavailable"),
    ("store_failing", "high", "SseBrokerStoreFailing"),
    ("store_stalled", "high", "SseBrokerStoreStalled"),
    ("store_failing", "medium", "SseBrokerStoreFailedEarlier"),
    (
        "high_connection_count",
        "medium",
        "SseBrokerHighConnectionCount",
    ),
    (
        "elevated_error_rate",
        "medium",
        "SseBrokerCleanupErrorRateElevated",
    ),
    (
        "stale_connection_accumulation",
        "medium",
        "SseBrokerStaleConnections",
    ),
    (
        "very_old_connections",
        "medium",
        "SseBrokerVeryOldConnections",
    ),
    ("redis_unavailable", "medium", "SseBrokerRedisDown"),
    // Redis answers, refusing writes: the overall `degraded` stands for it.
    ("redis_presence_refused", "medium", "SseBrokerDegraded"),
    (
        "signing_keys_unavailable",
        "medium",
        "SseBrokerSigningKeysUnavailable",
    ),
];

/// The overall status (`sse_health_status`) has an alert per level too.
const OVERALL_HEALTH: [(&str, &str, &str); 2] = [
    ("unhealthy", "high", "SseBrokerUnhealthy"),
    ("degraded", "medium", "SseBrokerDegraded"),
];

// ---------------------------------------------------------------------------
// Files and promtool
// ---------------------------------------------------------------------------

pub(crate) fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// Runs `promtool` in the repository; panics (never skips) when it is not
/// installed.
fn promtool(args: &[&str]) -> Output {
    match Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "promtool is not on the PATH ({e}). Run `bash .ci/test.sh`, which installs it \
             (Debian package `prometheus`), or `apt-get install -y prometheus`"
        ),
        Err(e) => panic!("cannot run promtool {args:?}: {e}"),
    }
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// ---------------------------------------------------------------------------
// Reading the rules file (no YAML crate: a line scan of its known layout)
// ---------------------------------------------------------------------------

/// One alerting rule as written in the rules file.
#[derive(Debug, Default, Clone)]
pub(crate) struct AlertRule {
    pub(crate) name: String,
    pub(crate) expr: String,
    severity: Option<String>,
    runbook_url: Option<String>,
    summary: Option<String>,
    description: Option<String>,
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn unquote(value: &str) -> String {
    let value = value.trim();
    let quoted = value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')));
    if quoted {
        value[1..value.len() - 1].to_owned()
    } else {
        value.to_owned()
    }
}

/// The value of `key: value` at `lines[*at]`, following a block scalar
/// (`|`, `>`) onto its more indented lines; `*at` ends on the last line read.
fn scalar(lines: &[&str], at: &mut usize, value: &str) -> String {
    let value = value.trim();
    if !(value.starts_with('|') || value.starts_with('>')) {
        return unquote(value);
    }
    let key_indentation = indentation(lines[*at]);
    let mut block = Vec::new();
    while let Some(next) = lines.get(*at + 1) {
        if !next.trim().is_empty() && indentation(next) <= key_indentation {
            break;
        }
        block.push(next.trim());
        *at += 1;
    }
    block.join("\n").trim().to_owned()
}

pub(crate) fn alert_rules() -> Vec<AlertRule> {
    let text = read(RULES);
    let lines: Vec<&str> = text.lines().collect();
    let mut rules: Vec<AlertRule> = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let trimmed = lines[at].trim();
        if trimmed.starts_with('#') {
            at += 1;
            continue;
        }
        let trimmed = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        if let Some((key, value)) = trimmed.split_once(':') {
            let key = key.trim();
            if key == "alert" {
                rules.push(AlertRule {
                    name: unquote(value),
                    ..AlertRule::default()
                });
            } else if let Some(rule) = rules.last_mut() {
                match key {
                    "expr" => rule.expr = scalar(&lines, &mut at, value),
                    "severity" => rule.severity = Some(unquote(value)),
                    "runbook_url" => rule.runbook_url = Some(unquote(value)),
                    "summary" => rule.summary = Some(scalar(&lines, &mut at, value)),
                    "description" => rule.description = Some(scalar(&lines, &mut at, value)),
                    _ => {}
                }
            }
        }
        at += 1;
    }
    assert!(!rules.is_empty(), "no `alert:` rule found in {RULES}");
    rules
}

// ---------------------------------------------------------------------------
// Metric names in queries and in the exposition
// ---------------------------------------------------------------------------

/// `query` without its string literals (label values, regexes), so that only
/// metric and label names remain.
fn without_string_literals(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in query.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '"' | '\'' | '`') => {
                quote = Some(c);
                out.push_str("\"\"");
            }
            None => out.push(c),
        }
    }
    out
}

/// Every `sse_[a-z0-9_]+` identifier of a PromQL query.
pub(crate) fn sse_identifiers(query: &str) -> BTreeSet<String> {
    let query = without_string_literals(query);
    let bytes = query.as_bytes();
    let is_name_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut found = BTreeSet::new();
    let mut from = 0;
    while let Some(offset) = query[from..].find("sse_") {
        let start = from + offset;
        let end = start
            + query[start..]
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
                .count();
        if start == 0 || !is_name_byte(bytes[start - 1]) {
            found.insert(query[start..end].to_owned());
        }
        from = end.max(start + 4);
    }
    found
}

/// The dashboard as JSON.
pub(crate) fn dashboard() -> Value {
    let text = read(DASHBOARD);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every PromQL query of the dashboard: each `expr` (panel targets, also in
/// collapsed rows) and each query variable's query.
pub(crate) fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut queries = Vec::new();
    walk(&dashboard["panels"], &mut queries);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] == "query" {
            let query = &variable["query"];
            let text = query["query"]
                .as_str()
                .or(query.as_str())
                .unwrap_or_default();
            queries.push(text.to_owned());
        }
    }
    queries
}

/// Metric name → where it is queried.
fn referenced_metrics<'a>(
    queries: impl IntoIterator<Item = (String, &'a str)>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (place, query) in queries {
        for name in sse_identifiers(query) {
            names.entry(name).or_default().insert(place.clone());
        }
    }
    names
}

fn dashboard_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let dashboard = dashboard();
    let queries = dashboard_queries(&dashboard);
    assert!(!queries.is_empty(), "no query found in {DASHBOARD}");
    referenced_metrics(
        queries
            .iter()
            .enumerate()
            .map(|(i, query)| (format!("query {i}: {query}"), query.as_str())),
    )
}

fn rule_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let rules = alert_rules();
    referenced_metrics(
        rules
            .iter()
            .map(|rule| (rule.name.clone(), rule.expr.as_str())),
    )
}

/// The series names a scrape of the spec's metrics can hold.
fn spec_series_names() -> BTreeSet<String> {
    SPEC_METRICS
        .iter()
        .flat_map(|(name, kind)| match kind {
            Kind::Counter | Kind::Gauge => vec![(*name).to_owned()],
            Kind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|suffix| format!("{name}{suffix}"))
                .collect(),
        })
        .collect()
}

/// The series names of a Prometheus text exposition: what a query can
/// select (for a histogram `x_bucket`, `x_sum`, `x_count`, never `x`).
fn exposed_series(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// `referenced` names that `exported` lacks, with where each is queried.
fn missing_from(
    referenced: &BTreeMap<String, BTreeSet<String>>,
    exported: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    referenced
        .iter()
        .filter(|(name, _)| !exported.contains(*name))
        .map(|(name, places)| (name.clone(), places.clone()))
        .collect()
}

fn list(names: &BTreeMap<String, BTreeSet<String>>) -> String {
    names
        .iter()
        .map(|(name, places)| {
            let places: Vec<&str> = places.iter().map(String::as_str).collect();
            format!("  {name}  (in {})", places.join("; "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------
// Brokers that export every metric
// ---------------------------------------------------------------------------

async fn metrics_text(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    let status = response.status().as_u16();
    let text = response.text().await.expect("a /metrics body");
    assert_eq!(status, 200, "GET /metrics answered {status}: {text}");
    text
}

/// Polls `/metrics` until `done` holds or `timeout` passes; returns the last
/// exposition either way (what is missing is for the caller to report).
async fn metrics_once(app: &TestApp, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = metrics_text(app).await;
        if done(&text) || Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `/health` until `done` holds for its `checks.redis.status` or
/// `timeout` passes.
async fn redis_check_once(app: &TestApp, timeout: Duration, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let health: Value = app.get("/health").await.json().await.unwrap_or(Value::Null);
        let status = health["checks"]["redis"]["status"].as_str().unwrap_or("");
        if done(status) || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Series only an instance in cluster mode has: a single instance leaves
/// them out rather than report a Redis it does not use.
pub(crate) const CLUSTER_ONLY: [&str; 2] = ["sse_connections_redis", "sse_redis_bridge_up"];

/// What two freshly started brokers export before anything happened to
/// them: a single instance at once, and a clustered one once its Redis link
/// is up. Nothing is published, opened, refused or cleaned: every series a
/// dashboard or an alert reads must exist from start-up. Computed once per
/// test run and shared by the tests that need it.
async fn exported_series() -> &'static StartUpSeries {
    static EXPORTED: OnceCell<StartUpSeries> = OnceCell::const_new();
    EXPORTED.get_or_init(scrape_fresh_brokers).await
}

struct StartUpSeries {
    single: BTreeSet<String>,
    clustered: BTreeSet<String>,
}

impl StartUpSeries {
    /// What an operator's queries see: the single instance's series, and
    /// the cluster-only ones from the clustered instance.
    fn all(&self) -> BTreeSet<String> {
        let mut all = self.single.clone();
        all.extend(
            self.clustered
                .iter()
                .filter(|name| CLUSTER_ONLY.contains(&name.as_str()))
                .cloned(),
        );
        all
    }
}

async fn scrape_fresh_brokers() -> StartUpSeries {
    let single = spawn_app_with(|s| s.instance_id = "assets-single".into()).await;
    let single = exposed_series(&metrics_text(&single).await);
    let redis = RedisServer::start().await;
    let redis_url = redis.url();
    let clustered = spawn_app_with(|s| {
        s.redis_url = Some(SecretString::from(redis_url));
        s.cluster_name = format!("assets-{}", uuid::Uuid::new_v4().simple());
        s.instance_id = "assets-cluster".into();
    })
    .await;
    redis_check_once(&clustered, LONG, |status| status == "up").await;
    // This instance's count in Redis is read back from the second presence
    // refresh on (the first finds nothing written yet).
    let text = metrics_once(&clustered, LONG, |text| {
        CLUSTER_ONLY
            .iter()
            .all(|name| exposed_series(text).contains(*name))
    })
    .await;
    StartUpSeries {
        single,
        clustered: exposed_series(&text),
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    // Arrange
    let rules = repo_path(RULES);
    let tests = repo_path(RULE_TESTS);

    // Act
    let check = promtool(&["check", "rules", rules.to_str().expect("a UTF-8 path")]);
    let unit_tests = promtool(&["test", "rules", tests.to_str().expect("a UTF-8 path")]);

    // Assert
    assert!(
        check.status.success(),
        "promtool check rules {RULES}: {}",
        describe(&check)
    );
    assert!(
        unit_tests.status.success(),
        "promtool test rules {RULE_TESTS}: {}",
        describe(&unit_tests)
    );
}

#[test]
fn every_alert_has_a_unit_test_that_fires_it_and_one_that_keeps_it_quiet() {
    // Arrange
    let alerts: BTreeSet<String> = alert_rules().into_iter().map(|rule| rule.name).collect();
    let text = read(RULE_TESTS);
    let lines: Vec<&str> = text.lines().collect();

    // Act: each `alertname:` is followed by `exp_alerts: []` (quiet) or by
    // `exp_alerts:` and a list (fires).
    let mut firing: BTreeSet<String> = BTreeSet::new();
    let mut quiet: BTreeSet<String> = BTreeSet::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(name) = line.trim().strip_prefix("alertname:") else {
            continue;
        };
        let expectation = lines[at + 1..]
            .iter()
            .map(|l| l.trim())
            .find(|l| l.starts_with("exp_alerts:"))
            .unwrap_or_else(|| panic!("no exp_alerts after line {}: {line}", at + 1));
        let target = if expectation == "exp_alerts: []" {
            &mut quiet
        } else {
            &mut firing
        };
        target.insert(unquote(name));
    }

    // Assert
    let never_fired: Vec<&String> = alerts.difference(&firing).collect();
    let never_quiet: Vec<&String> = alerts.difference(&quiet).collect();
    let unknown: Vec<&String> = firing
        .union(&quiet)
        .filter(|a| !alerts.contains(*a))
        .collect();
    assert!(
        never_fired.is_empty() && never_quiet.is_empty() && unknown.is_empty(),
        "{RULE_TESTS}: alerts no test fires: {never_fired:?}; alerts no test keeps quiet: \
         {never_quiet:?}; tested alerts that {RULES} does not define: {unknown:?}"
    );
}

#[test]
fn every_health_rule_has_an_alert() {
    // Arrange
    let rules = alert_rules();
    let by_name: BTreeMap<&str, &AlertRule> = rules.iter().map(|r| (r.name.as_str(), r)).collect();

    // Act
    let mut problems = Vec::new();
    for (rule, severity, alert) in HEALTH_RULES.iter().chain(&OVERALL_HEALTH) {
        match by_name.get(alert) {
            None => problems.push(format!("health rule {rule} ({severity}): no alert {alert}")),
            Some(found) if found.severity.as_deref() != Some(*severity) => problems.push(format!(
                "health rule {rule}: {alert} has severity {:?}, not {severity:?}",
                found.severity
            )),
            Some(_) => {}
        }
    }
    for rule in &rules {
        if !matches!(rule.severity.as_deref(), Some("high" | "medium")) {
            problems.push(format!("{}: severity {:?}", rule.name, rule.severity));
        }
        if rule.summary.as_deref().is_none_or(str::is_empty)
            || rule.description.as_deref().is_none_or(str::is_empty)
        {
            problems.push(format!("{}: no summary or description", rule.name));
        }
        if !rule
            .runbook_url
            .as_deref()
            .is_some_and(|url| url.starts_with("docs/troubleshooting.md#"))
        {
            problems.push(format!(
                "{}: runbook_url {:?} is not a docs/troubleshooting.md# anchor",
                rule.name, rule.runbook_url
            ));
        }
    }
    // The health-rule table of docs/monitoring.md lists the same rules.
    let documented: BTreeSet<(String, String)> = read(MONITORING)
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let rule = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let severity = cells.next()?.split_whitespace().next()?;
            matches!(severity, "high" | "medium").then(|| (rule.to_owned(), severity.to_owned()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = HEALTH_RULES
        .iter()
        .map(|(rule, severity, _)| ((*rule).to_owned(), (*severity).to_owned()))
        .collect();

    // Assert
    assert!(problems.is_empty(), "{RULES}:\n  {}", problems.join("\n  "));
    assert_eq!(
        documented, expected,
        "the health rules documented in {MONITORING} against those this test knows"
    );
}

#[test]
fn alert_runbook_links_point_to_troubleshooting_sections() {
    // Arrange: GitHub's heading anchors, plus explicit `id="…"` anchors.
    let path = repo_path(TROUBLESHOOTING);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the alerts' runbook_url links need {TROUBLESHOOTING}: {e}"));
    let mut anchors: BTreeSet<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| {
            heading
                .trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect();
    for piece in text.split("id=\"").skip(1) {
        if let Some((id, _)) = piece.split_once('"') {
            anchors.insert(id.to_owned());
        }
    }

    // Act
    let broken: Vec<String> = alert_rules()
        .into_iter()
        .filter_map(|rule| {
            let url = rule.runbook_url?;
            let anchor = url.split_once('#')?.1.to_owned();
            (!anchors.contains(&anchor)).then(|| format!("{}: {url}", rule.name))
        })
        .collect();

    // Assert
    assert!(
        broken.is_empty(),
        "runbook links without a section in {TROUBLESHOOTING}: {broken:?}; its anchors: {anchors:?}"
    );
}

#[test]
fn dashboard_and_rules_query_only_metrics_of_the_spec() {
    // Arrange
    let spec = spec_series_names();

    // Act
    let from_dashboard = missing_from(&dashboard_metrics(), &spec);
    let from_rules = missing_from(&rule_metrics(), &spec);

    // Assert
    assert!(
        from_dashboard.is_empty() && from_rules.is_empty(),
        "names that are no series of the spec's metrics (a typo, a histogram without \
         _bucket/_sum/_count, a counter without _total):\n{DASHBOARD}:\n{}\n{RULES}:\n{}",
        list(&from_dashboard),
        list(&from_rules)
    );
}

#[test]
fn dashboard_queries_are_valid_promql() {
    // Arrange: each query as a recording rule, Grafana's variables replaced
    // by values, for promtool to parse.
    let dashboard = dashboard();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in dashboard_queries(&dashboard).iter().enumerate() {
        if query.starts_with("label_values(") {
            continue; // a Grafana function, not PromQL
        }
        let query = query
            .replace("$__rate_interval", "5m")
            .replace("$__range", "1h")
            .replace("$__interval", "1m")
            .replace("$max_connections", "10000")
            .replace("$instance", ".*");
        let quoted = serde_json::to_string(&query).expect("a JSON string");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, &rules).expect("the queries written");

    // Act
    let check = promtool(&["check", "rules", file.to_str().expect("a UTF-8 path")]);

    // Assert
    assert!(
        check.status.success(),
        "{DASHBOARD} holds queries promtool cannot parse: {}\n{rules}",
        describe(&check)
    );
}

#[test]
fn dashboard_is_provisioned_with_its_datasources_and_filters_every_query_by_instance() {
    // Arrange
    let dashboard = dashboard();
    let datasources = read(DATASOURCES);
    let providers = read(DASHBOARD_PROVIDERS);

    // Act
    let mut targets = Vec::new();
    fn collect_targets<'a>(panels: &'a Value, out: &mut Vec<(&'a Value, &'a Value)>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push((panel, target));
            }
            collect_targets(&panel["panels"], out);
        }
    }
    collect_targets(&dashboard["panels"], &mut targets);
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();

    // Assert
    assert_eq!(dashboard["schemaVersion"], 39, "{DASHBOARD} schemaVersion");
    assert!(
        variables.contains(&"instance"),
        "{DASHBOARD} has no `instance` variable: {variables:?}"
    );
    assert!(!targets.is_empty(), "{DASHBOARD} has no panel target");
    for (panel, target) in targets {
        let title = &panel["title"];
        for datasource in [&panel["datasource"], &target["datasource"]] {
            assert_eq!(
                datasource["uid"], "prometheus",
                "panel {title}: datasource {datasource}"
            );
        }
        let expr = target["expr"].as_str().unwrap_or_default();
        assert!(
            expr.contains("instance=~\"$instance\""),
            "panel {title}: the query does not filter by $instance: {expr}"
        );
    }
    for uid in [
        "uid: prometheus",
        "uid: tempo",
        "url: http://prometheus:9090",
    ] {
        assert!(datasources.contains(uid), "{DATASOURCES} lacks `{uid}`");
    }
    assert!(
        providers.contains("path: /var/lib/grafana/dashboards"),
        "{DASHBOARD_PROVIDERS} does not load /var/lib/grafana/dashboards"
    );
}

#[actix_web::test]
async fn dashboard_queries_reference_only_metrics_exported_from_start_up() {
    // Arrange
    let referenced = dashboard_metrics();

    // Act
    let exported = exported_series().await.all();

    // Assert
    let missing = missing_from(&referenced, &exported);
    assert!(
        missing.is_empty(),
        "{DASHBOARD} queries metrics that GET /metrics of a fresh broker does not export:\n{}\n\
         exported: {exported:?}",
        list(&missing)
    );
}

#[actix_web::test]
async fn alert_rules_reference_only_metrics_exported_from_start_up() {
    // Arrange
    let referenced = rule_metrics();

    // Act
    let exported = exported_series().await.all();

    // Assert
    let missing = missing_from(&referenced, &exported);
    assert!(
        missing.is_empty(),
        "{RULES} queries metrics that GET /metrics of a fresh broker does not export:\n{}\n\
         exported: {exported:?}",
        list(&missing)
    );
}

#[actix_web::test]
async fn a_single_instance_exports_every_metric_of_the_spec_but_the_cluster_ones_from_start_up() {
    // Arrange
    let spec = spec_series_names();

    // Act
    let exported = &exported_series().await.single;

    // Assert
    let missing: Vec<&String> = spec.difference(exported).collect();
    let expected_missing: Vec<&str> = CLUSTER_ONLY.to_vec();
    assert_eq!(
        missing, expected_missing,
        "a fresh single instance lacks these series of the spec"
    );
}

#[actix_web::test]
async fn the_metric_reference_names_every_series_a_broker_exports() {
    // Arrange: the reference table of the monitoring guide.
    let reference = read(MONITORING);
    let documented = |name: &str| reference.contains(&format!("| `{name}`"));

    // Act
    let exported = exported_series().await.all();

    // Assert: each series by its own name, or a histogram's by its family's.
    let undocumented: Vec<&String> = exported
        .iter()
        .filter(|series| {
            !documented(series)
                && !["_bucket", "_sum", "_count"]
                    .iter()
                    .filter_map(|suffix| series.strip_suffix(suffix))
                    .any(documented)
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "{MONITORING}'s metric reference lacks {undocumented:?}"
    );
}

#[actix_web::test]
async fn every_upload_outcome_the_reference_names_is_served_from_start_up() {
    // Arrange: the outcomes the reference lists for `sse_task_uploads_total`
    // (each a backticked word after `outcome` =, up to the column's end).
    let reference = read(MONITORING);
    let row = reference
        .lines()
        .find(|line| line.starts_with("| `sse_task_uploads_total`"))
        .expect("the uploads counter's row");
    let labels = row.split('|').nth(3).expect("the labels column");
    let outcomes: Vec<&str> = labels
        .split("`outcome` =")
        .nth(1)
        .expect("the outcomes")
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect();
    assert!(outcomes.len() >= 10, "{outcomes:?}");

    // Act
    let app = spawn_app().await;
    let text = metrics_text(&app).await;

    // Assert: a `rate()` of each has its series from the first scrape.
    let missing: Vec<&&str> = outcomes
        .iter()
        .filter(|outcome| {
            !text.lines().any(|line| {
                line.starts_with("sse_task_uploads_total{")
                    && line.contains(&format!("outcome=\"{outcome}\""))
            })
        })
        .collect();
    assert!(missing.is_empty(), "not served at start-up: {missing:?}");
}
