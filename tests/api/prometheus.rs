//! A real Prometheus (Debian's `prometheus`, which `.ci/test.sh` installs
//! with promtool) scraping a broker every second, with the shipped alert
//! rules loaded. Through Prometheus's HTTP API, after a short workload:
//!
//! - every query of the operators' monitoring guide (CONTRACT §9), every
//!   dashboard query and every alert expression evaluates without error,
//!   and every series it names exists in Prometheus;
//! - the stale-connection alert goes pending, then firing, when its
//!   condition is produced for real (60 streams silent past the stale
//!   threshold, more than the rule's 50);
//! - a broker killed outright (nothing of its own can say so) raises
//!   SseBrokerInstanceDown, and started twice more on its port,
//!   SseBrokerRestarting.

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{
    helpers::{BrokerProcess, EventStream, LONG, TestApp, free_port, spawn_app_with},
    operator_assets::{
        CLUSTER_ONLY, RULES, alert_rules, dashboard, dashboard_queries, repo_path, sse_identifiers,
    },
};

/// The guide's own queries, as operators type them.
const GUIDE_QUERIES: [&str; 11] = [
    "sse_active_connections",
    "sse_cleanup_error_rate",
    "sse_total_connections_cleaned",
    "sse_cleanup_total",
    "sse_cleanup_errors_total",
    "rate(sse_cleanup_errors_total[5m]) / rate(sse_cleanup_total[5m]) * 100",
    "sse_stale_connections",
    "sse_long_lived_connections",
    "sse_very_old_connections",
    "sse_health_status",
    "sse_health_alerts",
];

/// Streams the workload leaves open and silent: more than the
/// `SseBrokerStaleConnections` rule's 50.
const STALE_STREAMS: usize = 60;

/// A Prometheus server on a port of its own, stopped on drop.
struct Prometheus {
    child: Child,
    url: String,
    client: reqwest::Client,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` (`host:port`) every second, evaluates `rules` every
    /// second.
    async fn start(target: &str, rules: &Path) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}\n\
                 scrape_configs:\n  - job_name: sse-broker\n    static_configs:\n      - targets: ['{target}']\n",
                rules = rules.display()
            ),
        )
        .expect("the configuration written");
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("a log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("a log handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start prometheus ({e}). Run `bash .ci/test.sh`, which installs it \
                     (Debian package `prometheus`)"
                )
            });
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a client"),
            log,
            _dir: dir,
        };
        prometheus
            .wait("ready", |p| async move {
                p.client
                    .get(format!("{}/-/ready", p.url))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
            .await;
        prometheus
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `done` until it holds; panics with the log after [`LONG`].
    async fn wait<'a, F, Fut>(&'a self, what: &str, done: F)
    where
        F: Fn(&'a Self) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + LONG;
        while !done(self).await {
            assert!(
                Instant::now() < deadline,
                "prometheus: no {what} after {LONG:?}; its log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `GET /api/v1/<path>`: the `data` of a success, or the error text.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let response = self
            .client
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"], body["error"]))
        }
    }

    async fn query(&self, promql: &str) -> Result<Value, String> {
        self.api("query", &[("query", promql)]).await
    }

    /// Every metric name Prometheus holds.
    async fn names(&self) -> BTreeSet<String> {
        let names = self
            .api("label/__name__/values", &[])
            .await
            .expect("the metric names");
        names
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes, delivers, resumes, writes a task's text, runs a cleanup; then
/// opens the silent streams.
async fn workload(app: &TestApp) -> Vec<EventStream> {
    let mut reader =
        EventStream::connected(app.stream_response("/sse/events", &[]).await, "a reader").await;
    for progress in [10, 20, 30] {
        app.publish_one(&json!({"event_type": "progress_update", "data": {"progress": progress}}))
            .await;
    }
    reader.take_messages(3, LONG).await;
    let task: Value = app
        .post_json("/tasks", &json!({"task_type": "prometheus"}))
        .await
        .json()
        .await
        .expect("a task");
    let task_id = task["task_id"].as_str().expect("a task id");
    let upload = app
        .post_raw(
            &format!("/tasks/{task_id}/stream"),
            "{\"delta\": \"Hello\"}\n{\"delta\": \" world\"}\n{\"complete\": {}}\n",
            Some("application/x-ndjson"),
        )
        .await;
    assert_eq!(upload.status().as_u16(), 200, "the upload is applied");
    let cleanup = app.post_json("/sse/cleanup", &json!({})).await;
    assert_eq!(cleanup.status().as_u16(), 200);
    let mut streams = vec![reader];
    for _ in 0..STALE_STREAMS {
        streams.push(
            EventStream::connected(app.stream_response("/sse/events", &[]).await, "a viewer").await,
        );
    }
    streams
}

/// A dashboard query with Grafana's variables given values.
fn as_promql(query: &str) -> String {
    query
        .replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$__interval", "15s")
        .replace("$max_connections", "10000")
        .replace("$instance", ".*")
}

#[actix_web::test]
async fn prometheus_evaluates_every_guide_dashboard_and_alert_query_and_fires_an_alert() {
    // Arrange: streams stale one second after their last write (heartbeats
    // a minute apart), a Janitor that leaves them alone for the test.
    let app = spawn_app_with(|s| {
        s.heartbeat = Duration::from_secs(60);
        s.stale_threshold = Duration::from_secs(1);
        s.cleanup_interval = Duration::from_secs(3600);
    })
    .await;
    let rules = repo_path(RULES);
    let prometheus = Prometheus::start(&format!("127.0.0.1:{}", app.port), &rules).await;

    // Act
    let _streams = workload(&app).await;
    prometheus
        .wait("scrape of the stale streams", |p| async move {
            p.query(&format!("sse_stale_connections >= {STALE_STREAMS}"))
                .await
                .is_ok_and(|data| data["result"].as_array().is_some_and(|r| !r.is_empty()))
        })
        .await;

    // Assert 1: every series a query names exists (cluster-only ones aside:
    // this instance has no Redis).
    let names = prometheus.names().await;
    let dashboard = dashboard();
    let dashboard_queries: Vec<String> = dashboard_queries(&dashboard)
        .into_iter()
        .filter(|q| !q.starts_with("label_values("))
        .collect();
    let rules = alert_rules();
    let every_query: Vec<(String, String)> = GUIDE_QUERIES
        .iter()
        .map(|q| (format!("guide: {q}"), (*q).to_owned()))
        .chain(
            dashboard_queries
                .iter()
                .map(|q| (format!("dashboard: {q}"), as_promql(q))),
        )
        .chain(
            rules
                .iter()
                .map(|r| (format!("alert {}", r.name), r.expr.clone())),
        )
        .collect();
    let missing: Vec<String> = every_query
        .iter()
        .flat_map(|(place, query)| {
            sse_identifiers(query)
                .into_iter()
                .filter(|name| !names.contains(name) && !CLUSTER_ONLY.contains(&name.as_str()))
                .map(move |name| format!("{name} (in {place})"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "series Prometheus does not have: {missing:#?}"
    );

    // Assert 2: every query evaluates.
    let mut failed = Vec::new();
    for (place, query) in &every_query {
        if let Err(error) = prometheus.query(query).await {
            failed.push(format!("{place}: {error}"));
        }
    }
    assert!(failed.is_empty(), "queries Prometheus refused: {failed:#?}");
    for query in GUIDE_QUERIES.iter().filter(|q| !q.contains('(')) {
        let data = prometheus.query(query).await.expect("evaluated");
        assert!(
            data["result"].as_array().is_some_and(|r| !r.is_empty()),
            "the guide's {query} has no series: {data}"
        );
    }

    // Assert 3: every rule evaluated without error.
    prometheus
        .wait("evaluation of every rule", |p| async move {
            p.api("rules", &[]).await.is_ok_and(|data| {
                let health: Vec<&str> = data["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                    .filter_map(|r| r["health"].as_str())
                    .collect();
                !health.is_empty() && health.iter().all(|h| *h != "unknown")
            })
        })
        .await;
    let data = prometheus.api("rules", &[]).await.expect("the rules");
    let unhealthy: Vec<String> = data["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
        .collect();
    assert!(
        unhealthy.is_empty(),
        "rules Prometheus failed to evaluate: {unhealthy:#?}"
    );
    let loaded = data["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .count();
    assert_eq!(loaded, rules.len(), "every alert of {RULES} is loaded");

    // Assert 4: the stale-connection alert is active (pending for its 5
    // minutes, then firing) with its labels.
    prometheus
        .wait("SseBrokerStaleConnections alert", |p| async move {
            p.api("alerts", &[]).await.is_ok_and(|data| {
                data["alerts"].as_array().into_iter().flatten().any(|a| {
                    a["labels"]["alertname"] == "SseBrokerStaleConnections"
                        && matches!(a["state"].as_str(), Some("pending" | "firing"))
                        && a["labels"]["severity"] == "medium"
                        && a["labels"]["job"] == "sse-broker"
                })
            })
        })
        .await;
    let health = app.monitoring().await["health_indicators"].clone();
    assert!(
        health["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|w| w["type"] == "stale_connection_accumulation"),
        "the broker's own rule agrees: {health}"
    );
}

/// Whether Prometheus holds `alert` for the scrape target on `port`, in one
/// of `states`.
async fn alert_active(prometheus: &Prometheus, alert: &str, port: u16, states: &[&str]) -> bool {
    prometheus.api("alerts", &[]).await.is_ok_and(|data| {
        data["alerts"].as_array().into_iter().flatten().any(|a| {
            a["labels"]["alertname"] == alert
                && a["labels"]["instance"] == format!("127.0.0.1:{port}")
                && a["labels"]["severity"] == "high"
                && a["state"].as_str().is_some_and(|s| states.contains(&s))
        })
    })
}

#[actix_web::test]
async fn a_killed_broker_raises_instance_down_and_one_that_keeps_starting_raises_restarting() {
    // Arrange: a broker process scraped by Prometheus.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = dir.path().join("events.db");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let start = |port: u16, n: usize| {
        BrokerProcess::spawn_on(
            port,
            &database,
            dir.path().join(format!("broker-{n}.log")),
            &[],
            &[],
        )
    };
    let mut broker =
        BrokerProcess::spawn_with(&database, dir.path().join("broker-0.log"), &[], &[]);
    broker.wait_until_ready(&client).await;
    let port = broker.port();
    let prometheus = Prometheus::start(&format!("127.0.0.1:{port}"), &repo_path(RULES)).await;
    let scraped = |starts: usize| {
        let prometheus = &prometheus;
        async move {
            prometheus
                .query(&format!(
                    "count_over_time(sse_start_time_seconds[10m]) > 0 and changes(sse_start_time_seconds[10m]) >= {}",
                    starts - 1
                ))
                .await
                .is_ok_and(|data| data["result"].as_array().is_some_and(|r| !r.is_empty()))
        }
    };
    prometheus
        .wait("a scrape of the broker", |_| scraped(1))
        .await;
    assert!(
        !alert_active(
            &prometheus,
            "SseBrokerInstanceDown",
            port,
            &["pending", "firing"]
        )
        .await,
        "a broker that answers is not down"
    );

    // Act 1: kill it outright; it cannot say anything.
    broker.signal("KILL");
    broker.wait_for_exit(LONG).await;

    // Assert 1: its failed scrapes raise the alert (pending for its minute).
    prometheus
        .wait("SseBrokerInstanceDown for the killed broker", |p| {
            alert_active(p, "SseBrokerInstanceDown", port, &["pending", "firing"])
        })
        .await;

    // Act 2: it comes back on its port, then crashes and comes back again,
    // twice: each start scraped, so `up` never stays 0 for long.
    for n in 1..=3 {
        let mut again = start(port, n);
        again.wait_until_ready(&client).await;
        prometheus
            .wait("a scrape of the restarted broker", |_| scraped(n + 1))
            .await;
        if n < 3 {
            again.signal("KILL");
            again.wait_for_exit(LONG).await;
        } else {
            broker = again;
        }
    }

    // Assert 2: four starts within 15 minutes are a crash loop; the
    // instance down is over once it answers again.
    prometheus
        .wait("SseBrokerRestarting firing", |p| {
            alert_active(p, "SseBrokerRestarting", port, &["firing"])
        })
        .await;
    prometheus
        .wait("SseBrokerInstanceDown resolved", |p| async move {
            !alert_active(p, "SseBrokerInstanceDown", port, &["pending", "firing"]).await
        })
        .await;
    drop(broker);
}
