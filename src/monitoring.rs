//! The monitoring document and the health rules behind `/sse/monitoring`,
//! `/sse/stats` and `/health`: one snapshot of the actors' counters, and one
//! function that turns it into `healthy` / `degraded` / `unhealthy`.

use std::time::Duration;

use serde::Serialize;

use crate::{
    actors::{
        janitor::{CleanupStats, GetCleanupStats},
        redis_bridge::{BridgeStatus, GetBridgeStatus, LinkState},
        registry::{AgeBuckets, GetStats, RegistryStats},
    },
    app::AppState,
    config::{HealthThresholds, Settings},
    store::{ClassReport, StoreHealthReport},
};

/// How long a failed store write (or read) makes the instance unhealthy
/// when nothing of the same kind is tried after it. Under traffic every
/// publish renews or clears the failure long before; without traffic the
/// evidence grows old, and an instance a load balancer took out of rotation
/// would otherwise never get the write that proves it well again. Past it
/// the failure is a warning (degraded, 200) until a write succeeds.
pub const STORE_FAILURE_HOLD: Duration = Duration::from_secs(30);

/// What `sse_store_failing` says about one kind of store operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailing {
    /// The last one succeeded (or none ran yet).
    No = 0,
    /// The last one failed within [`STORE_FAILURE_HOLD`]: an alert.
    Recently = 1,
    /// The last one failed longer ago, and none was tried since: a warning.
    Earlier = 2,
}

impl StoreFailing {
    pub fn of(class: &ClassReport) -> Self {
        match &class.failing {
            None => Self::No,
            Some(failure) if failure.ago <= STORE_FAILURE_HOLD => Self::Recently,
            Some(_) => Self::Earlier,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OverallHealth {
    Healthy,
    Degraded,
    Unhealthy,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Finding {
    /// Stable rule name, e.g. `cleanup_error_rate`.
    pub rule: &'static str,
    /// `high` for alerts, `medium` for warnings.
    pub severity: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HealthIndicators {
    pub overall_health: OverallHealth,
    pub alerts: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

/// The actors' answers at one moment.
pub struct Snapshot {
    pub registry: RegistryStats,
    pub cleanup: CleanupStats,
    /// The store answered a round trip (`SELECT 1`).
    pub store_ok: bool,
    /// What the store's real operations said lately: a round trip answers
    /// while every write fails or waits on a lock.
    pub store: StoreHealthReport,
    pub uptime_secs: u64,
    /// `None` unless clustered.
    pub bridge: Option<BridgeStatus>,
}

impl Snapshot {
    pub async fn collect(state: &AppState) -> Result<Self, actix::MailboxError> {
        Self::take(state, false).await
    }

    /// The HealthSampler's periodic snapshot: the same, and the Registry
    /// writes its age gauges and queue-depth sample in the same pass.
    pub async fn sample(state: &AppState) -> Result<Self, actix::MailboxError> {
        Self::take(state, true).await
    }

    async fn take(state: &AppState, record_gauges: bool) -> Result<Self, actix::MailboxError> {
        let registry = state
            .registry
            .send(GetStats {
                stale_threshold_ms: state.settings.stale_threshold.as_millis() as i64,
                record_gauges,
            })
            .await?;
        let cleanup = state.janitor.send(GetCleanupStats).await?;
        let store_ok = state.store.ping().await.is_ok();
        // Writes clear their own failures (every publish is one); reads are
        // rare, so the periodic sample re-checks failing ones itself.
        if record_gauges && state.store.health().reads.failing.is_some() {
            let _ = state.store.probe_reads().await;
        }
        let store = state.store.health();
        let bridge = match &state.bridge {
            Some(bridge) => Some(bridge.send(GetBridgeStatus).await?),
            None => None,
        };
        Ok(Self {
            registry,
            cleanup,
            store_ok,
            store,
            uptime_secs: state.started_at.elapsed().as_secs(),
            bridge,
        })
    }

    pub fn cleanup_error_rate(&self) -> f64 {
        ratio(self.cleanup.total_errors, self.cleanup.total_runs)
    }

    pub fn connection_failure_rate(&self) -> f64 {
        ratio(
            self.cleanup.total_failed,
            self.cleanup.total_cleaned + self.cleanup.total_failed,
        )
    }

    /// The health rules: any alert makes the instance unhealthy, any warning
    /// degraded.
    pub fn health(&self, thresholds: &HealthThresholds) -> HealthIndicators {
        let mut alerts = Vec::new();
        let mut warnings = Vec::new();
        let alert = |rule, message: String| Finding {
            rule,
            severity: "high",
            message,
        };
        let warning = |rule, message: String| Finding {
            rule,
            severity: "medium",
            message,
        };
        if !self.store_ok {
            alerts.push(alert(
                "store_unavailable",
                "the event store does not answer".into(),
            ));
        }
        if let Some(stalled) = self.store.stalled() {
            alerts.push(alert(
                "store_stalled",
                format!(
                    "a store {} has been waiting for {:.1} s, past the {} ms store timeout",
                    stalled.operation,
                    stalled.elapsed.as_secs_f64(),
                    self.store.timeout.as_millis()
                ),
            ));
        }
        for (kind, class) in [("write", &self.store.writes), ("read", &self.store.reads)] {
            let Some(failure) = &class.failing else {
                continue;
            };
            let message = format!(
                "the last store {kind} ({}) failed ({}) {:.0} s ago; no {kind} has succeeded since",
                failure.operation,
                failure.kind.as_str(),
                failure.ago.as_secs_f64()
            );
            match StoreFailing::of(class) {
                StoreFailing::Recently => alerts.push(alert("store_failing", message)),
                StoreFailing::Earlier => warnings.push(warning("store_failing", message)),
                StoreFailing::No => {}
            }
        }
        if !self.cleanup.cleanup_task_running {
            alerts.push(alert(
                "cleanup_not_running",
                "the stale-connection cleanup is not running".into(),
            ));
        }
        let error_rate = self.cleanup_error_rate();
        if error_rate > thresholds.cleanup_error_rate_alert {
            alerts.push(alert(
                "cleanup_error_rate",
                format!(
                    "cleanup error rate {:.1}% is above {:.0}%",
                    error_rate * 100.0,
                    thresholds.cleanup_error_rate_alert * 100.0
                ),
            ));
        } else if error_rate > thresholds.cleanup_error_rate_warning {
            warnings.push(warning(
                "cleanup_error_rate",
                format!(
                    "cleanup error rate {:.1}% is above {:.0}%",
                    error_rate * 100.0,
                    thresholds.cleanup_error_rate_warning * 100.0
                ),
            ));
        }
        if let Some(bridge) = &self.bridge {
            if bridge.state != LinkState::Up {
                let reason = bridge
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "connecting".into());
                warnings.push(warning(
                    "redis_unavailable",
                    format!(
                        "Redis is unreachable ({reason}); serving local publishers and streams"
                    ),
                ));
            } else if let Some(mismatch) = self.connection_mismatch(thresholds.mismatch_tolerance) {
                alerts.push(alert("connection_mismatch", mismatch));
            }
        }
        let active = self.registry.active_connections;
        if active > thresholds.active_connections_warning {
            warnings.push(warning(
                "high_connection_count",
                format!("{active} active connections"),
            ));
        }
        let AgeBuckets {
            stale, very_old, ..
        } = self.registry.age_buckets;
        if stale > thresholds.stale_connections_warning {
            warnings.push(warning(
                "stale_connections",
                format!("{stale} stale connections"),
            ));
        }
        if very_old > thresholds.very_old_connections_warning {
            warnings.push(warning(
                "very_old_connections",
                format!("{very_old} connections older than 6 h"),
            ));
        }
        let overall_health = if !alerts.is_empty() {
            OverallHealth::Unhealthy
        } else if !warnings.is_empty() {
            OverallHealth::Degraded
        } else {
            OverallHealth::Healthy
        };
        HealthIndicators {
            overall_health,
            alerts,
            warnings,
        }
    }
}

impl Snapshot {
    /// The count this instance last wrote to Redis against the count Redis
    /// held for it when it next looked: like with like. (The live count
    /// against Redis would measure the presence period instead: 100 streams
    /// opened at once are not in Redis for up to two refreshes.) They differ
    /// when the write did not stick: the key was evicted or expired, or
    /// another instance writes under this one's id. Right after a Redis
    /// outage there is nothing to compare (see `RedisBridge`).
    pub fn connection_mismatch(&self, tolerance: usize) -> Option<String> {
        let bridge = self.bridge.as_ref()?;
        let in_redis = bridge.own_redis_count?;
        let written = bridge.own_written_count?;
        let tolerance = tolerance.max(written / 10);
        (written.abs_diff(in_redis) > tolerance).then(|| {
            format!(
                "this instance wrote {written} active connections to Redis, {in_redis} recorded there"
            )
        })
    }

    /// `checks.store` of `/health` and `store_stats` of `/sse/monitoring`.
    pub fn store_check(&self, backend: &str) -> serde_json::Value {
        let store = &self.store;
        let status = if !self.store_ok {
            "unavailable"
        } else if store.stalled().is_some() {
            "stalled"
        } else if store.writes.failing.is_some() || store.reads.failing.is_some() {
            "failing"
        } else {
            "ok"
        };
        let class = |class: &ClassReport| {
            serde_json::json!({
                "status": if class.failing.is_some() { "failing" } else { "ok" },
                "last_ok_secs_ago": class.last_ok_ago.map(|ago| ago.as_secs_f64()),
                "last_failure": class.failing.as_ref().map(|f| serde_json::json!({
                    "operation": f.operation,
                    "kind": f.kind,
                    "secs_ago": f.ago.as_secs_f64(),
                })),
            })
        };
        serde_json::json!({
            "status": status,
            "backend": backend,
            "timeout_ms": store.timeout.as_millis() as u64,
            "writes": class(&store.writes),
            "reads": class(&store.reads),
            "in_flight": store.in_flight,
            "oldest_in_flight": store.oldest_in_flight.as_ref().map(|o| serde_json::json!({
                "operation": o.operation,
                "secs": o.elapsed.as_secs_f64(),
            })),
        })
    }

    /// Cluster-wide totals from every instance's Redis entry.
    pub fn cluster(&self) -> Option<serde_json::Value> {
        let bridge = self.bridge.as_ref()?;
        Some(serde_json::json!({
            "instances": bridge.instances,
            "instance_count": bridge.instances.len(),
            "total_active_connections": bridge.instances.iter().map(|i| i.active_connections).sum::<usize>(),
            "redis": bridge.state,
        }))
    }
}

/// p50/p90/p99 of the per-subscriber delivery lag since start, in ms,
/// interpolated within the histogram's buckets (as `histogram_quantile`
/// does); `null` before the first live delivery.
fn delivery_lag_quantiles(histogram: &prometheus::Histogram) -> serde_json::Value {
    use prometheus::core::Collector as _;
    let families = histogram.collect();
    let Some(metric) = families.first().and_then(|f| f.get_metric().first()) else {
        return serde_json::Value::Null;
    };
    let data = metric.get_histogram();
    let count = data.get_sample_count();
    if count == 0 {
        return serde_json::Value::Null;
    }
    let buckets: Vec<(f64, u64)> = data
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect();
    let quantile = |q: f64| {
        let rank = q * count as f64;
        let mut lower = (0.0, 0u64);
        for &(bound, cumulative) in &buckets {
            if cumulative as f64 >= rank {
                let in_bucket = (cumulative - lower.1) as f64;
                let position = if in_bucket == 0.0 {
                    1.0
                } else {
                    (rank - lower.1 as f64) / in_bucket
                };
                return (lower.0 + (bound - lower.0) * position) * 1000.0;
            }
            lower = (bound, cumulative);
        }
        // Above the last bucket: report its bound, as Prometheus does.
        lower.0 * 1000.0
    };
    serde_json::json!({
        "count": count,
        "mean": data.get_sample_sum() * 1000.0 / count as f64,
        "p50": quantile(0.50),
        "p90": quantile(0.90),
        "p99": quantile(0.99),
    })
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// `GET /sse/monitoring`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MonitoringDocument {
    pub timestamp: String,
    pub service_name: &'static str,
    pub instance_id: String,
    #[schema(value_type = Object)]
    pub connection_stats: serde_json::Value,
    #[schema(value_type = Object)]
    pub cleanup_stats: serde_json::Value,
    pub health_indicators: HealthIndicators,
    /// The event store: `checks.store` of `/health`.
    #[schema(value_type = Object)]
    pub store_stats: serde_json::Value,
    #[schema(value_type = Object)]
    pub performance_metrics: serde_json::Value,
    /// The settings as `check-config` prints them, secrets masked.
    #[schema(value_type = Object)]
    pub configuration: Settings,
}

impl MonitoringDocument {
    pub fn build(snapshot: &Snapshot, state: &AppState) -> Self {
        let r = &snapshot.registry;
        let c = &snapshot.cleanup;
        let uptime = snapshot.uptime_secs.max(1) as f64;
        Self {
            timestamp: crate::domain::rfc3339(crate::domain::now_ms()),
            service_name: "sse-broker",
            instance_id: state.settings.instance_id.clone(),
            connection_stats: serde_json::json!({
                "active_connections": r.active_connections,
                "total_connections": r.total_connections,
                "max_connections": state.settings.max_connections,
                "utilization_percent": r.active_connections as f64 * 100.0 / state.settings.max_connections as f64,
                "replaying_connections": r.replaying_connections,
                "queued_frames": r.queued_frames,
                "closed_by_reason": r.closed_by_reason,
                "connections_closed_slow": r.connections_closed_slow,
                "cleanup_task_running": c.cleanup_task_running,
                "redis_connections": snapshot.bridge.as_ref().and_then(|b| b.own_redis_count),
                "redis_connections_written": snapshot.bridge.as_ref().and_then(|b| b.own_written_count),
                "cluster": snapshot.cluster(),
            }),
            cleanup_stats: serde_json::json!({
                "total_runs": c.total_runs,
                "total_cleaned": c.total_cleaned,
                "total_failed": c.total_failed,
                "total_errors": c.total_errors,
                "total_batches": c.total_batches,
                "error_rate": snapshot.cleanup_error_rate(),
                "connection_failure_rate": snapshot.connection_failure_rate(),
                "last_run_at": c.last_run_at_ms.map(crate::domain::rfc3339),
                "last_cleanup_duration_ms": c.last_cleanup_duration_ms,
                "last_cleaned": c.last_cleaned,
                "last_failed": c.last_failed,
                "connections_per_cleanup": if c.total_runs == 0 { 0.0 } else { c.total_cleaned as f64 / c.total_runs as f64 },
                "cleanup_task_running": c.cleanup_task_running,
                "interval_secs": c.interval_secs,
                "batch_size": c.batch_size,
                "stale_threshold_secs": c.stale_threshold_secs,
                "age_buckets": r.age_buckets,
            }),
            health_indicators: snapshot.health(&state.settings.health),
            store_stats: snapshot.store_check(state.store.backend()),
            performance_metrics: serde_json::json!({
                "uptime_secs": snapshot.uptime_secs,
                "events_published": r.events_published,
                "events_delivered": r.events_delivered,
                "events_dropped": r.events_dropped,
                "events_published_per_second": r.events_published as f64 / uptime,
                "events_delivered_per_second": r.events_delivered as f64 / uptime,
                "events_by_type": r.events_by_type,
                "delivery_lag_ms": delivery_lag_quantiles(&state.metrics.delivery_lag()),
            }),
            configuration: Settings::clone(&state.settings),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The rules whose condition a running broker cannot produce in a test's
    //! time (streams older than 6 h, the cleanup timer stopped, the store
    //! gone) and the thresholds' edges, on hand-made snapshots. The
    //! integration tests in `tests/api/health_rules.rs` produce the others.

    use super::*;
    use crate::store::{FailureKind, FailureReport, InFlight};

    /// An instance with `active` fresh streams, a running cleanup without
    /// runs, a store that answers, not clustered.
    fn snapshot(active: usize) -> Snapshot {
        Snapshot {
            registry: RegistryStats {
                active_connections: active,
                total_connections: active as u64,
                events_published: 0,
                events_delivered: 0,
                events_dropped: 0,
                connections_closed_slow: 0,
                events_by_type: Default::default(),
                closed_by_reason: Default::default(),
                age_buckets: AgeBuckets {
                    active,
                    ..AgeBuckets::default()
                },
                replaying_connections: 0,
                queued_frames: 0,
            },
            cleanup: CleanupStats {
                cleanup_task_running: true,
                ..CleanupStats::default()
            },
            store_ok: true,
            store: StoreHealthReport {
                timeout: Duration::from_secs(5),
                ..StoreHealthReport::default()
            },
            uptime_secs: 60,
            bridge: None,
        }
    }

    /// The bridge with this instance's count as last written to Redis and
    /// as read back from it.
    fn bridge(state: LinkState, written: Option<usize>, in_redis: Option<usize>) -> BridgeStatus {
        BridgeStatus {
            state,
            last_error: (state == LinkState::Down).then(|| "connection refused".into()),
            reconnects: 0,
            last_routed_id: 0,
            repairs: 0,
            instances: Vec::new(),
            own_redis_count: in_redis,
            own_written_count: written,
        }
    }

    fn failure(operation: &'static str, kind: FailureKind, ago_secs: u64) -> ClassReport {
        ClassReport {
            last_ok_ago: Some(Duration::from_secs(ago_secs + 10)),
            failing: Some(FailureReport {
                operation,
                kind,
                ago: Duration::from_secs(ago_secs),
            }),
        }
    }

    fn with_cleanup_runs(mut snapshot: Snapshot, runs: u64, errors: u64) -> Snapshot {
        snapshot.cleanup.total_runs = runs;
        snapshot.cleanup.total_errors = errors;
        snapshot
    }

    fn rules(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.rule).collect()
    }

    fn defaults() -> HealthThresholds {
        HealthThresholds::default()
    }

    /// Asserts exactly `alerts` (severity high) and `warnings` (severity
    /// medium), and the overall verdict.
    #[track_caller]
    fn assert_health(
        indicators: &HealthIndicators,
        overall: OverallHealth,
        alerts: &[&str],
        warnings: &[&str],
    ) {
        assert_eq!(rules(&indicators.alerts), alerts, "{indicators:?}");
        assert_eq!(rules(&indicators.warnings), warnings, "{indicators:?}");
        assert!(
            indicators.alerts.iter().all(|f| f.severity == "high"),
            "{indicators:?}"
        );
        assert!(
            indicators.warnings.iter().all(|f| f.severity == "medium"),
            "{indicators:?}"
        );
        assert_eq!(indicators.overall_health, overall, "{indicators:?}");
    }

    #[test]
    fn an_instance_with_nothing_wrong_is_healthy() {
        let indicators = snapshot(3).health(&defaults());

        assert_health(&indicators, OverallHealth::Healthy, &[], &[]);
    }

    #[test]
    fn a_stopped_cleanup_is_an_alert_and_unhealthy() {
        let mut stopped = snapshot(0);
        stopped.cleanup.cleanup_task_running = false;

        let indicators = stopped.health(&defaults());

        assert_health(
            &indicators,
            OverallHealth::Unhealthy,
            &["cleanup_not_running"],
            &[],
        );
    }

    #[test]
    fn a_store_that_does_not_answer_is_an_alert_and_unhealthy() {
        let mut gone = snapshot(0);
        gone.store_ok = false;

        let indicators = gone.health(&defaults());

        assert_health(
            &indicators,
            OverallHealth::Unhealthy,
            &["store_unavailable"],
            &[],
        );
    }

    #[test]
    fn a_recent_failed_store_write_is_an_alert_and_an_old_one_a_warning() {
        let mut failing = snapshot(0);
        failing.store.writes = failure("insert_batch", FailureKind::Timeout, 2);

        let indicators = failing.health(&defaults());

        assert_health(
            &indicators,
            OverallHealth::Unhealthy,
            &["store_failing"],
            &[],
        );
        let message = &indicators.alerts[0].message;
        assert!(
            message.contains("write")
                && message.contains("insert_batch")
                && message.contains("timeout"),
            "{message}"
        );
        assert_eq!(failing.store_check("sqlite")["status"], "failing");

        // Nothing tried for longer than the hold: the evidence is old.
        failing.store.writes = failure("insert_batch", FailureKind::Error, 31);
        assert_health(
            &failing.health(&defaults()),
            OverallHealth::Degraded,
            &[],
            &["store_failing"],
        );
    }

    #[test]
    fn a_failed_store_read_is_an_alert_of_its_own() {
        let mut failing = snapshot(0);
        failing.store.reads = failure("events_after", FailureKind::Timeout, 0);

        let indicators = failing.health(&defaults());

        assert_health(
            &indicators,
            OverallHealth::Unhealthy,
            &["store_failing"],
            &[],
        );
        assert!(
            indicators.alerts[0].message.contains("read"),
            "{indicators:?}"
        );
    }

    #[test]
    fn a_store_operation_waiting_past_the_store_timeout_is_a_stall_alert() {
        let mut stuck = snapshot(0);
        stuck.store.in_flight = 1;
        stuck.store.oldest_in_flight = Some(InFlight {
            operation: "insert_batch",
            elapsed: Duration::from_millis(4_900),
        });
        assert_health(&stuck.health(&defaults()), OverallHealth::Healthy, &[], &[]);

        stuck.store.oldest_in_flight = Some(InFlight {
            operation: "insert_batch",
            elapsed: Duration::from_millis(7_200),
        });
        let indicators = stuck.health(&defaults());

        assert_health(
            &indicators,
            OverallHealth::Unhealthy,
            &["store_stalled"],
            &[],
        );
        assert_eq!(
            indicators.alerts[0].message,
            "a store insert_batch has been waiting for 7.2 s, past the 5000 ms store timeout"
        );
        assert_eq!(stuck.store_check("postgresql")["status"], "stalled");
    }

    #[test]
    fn more_very_old_streams_than_the_threshold_is_a_warning() {
        let old = |very_old| {
            let mut snapshot = snapshot(20);
            snapshot.registry.age_buckets.long_lived = very_old;
            snapshot.registry.age_buckets.very_old = very_old;
            snapshot
        };

        // Default: more than 10.
        assert_health(
            &old(10).health(&defaults()),
            OverallHealth::Healthy,
            &[],
            &[],
        );
        let indicators = old(11).health(&defaults());
        assert_health(
            &indicators,
            OverallHealth::Degraded,
            &[],
            &["very_old_connections"],
        );
        assert_eq!(
            indicators.warnings[0].message,
            "11 connections older than 6 h"
        );

        // Configured: more than 2.
        let thresholds = HealthThresholds {
            very_old_connections_warning: 2,
            ..defaults()
        };
        assert_health(
            &old(2).health(&thresholds),
            OverallHealth::Healthy,
            &[],
            &[],
        );
        assert_health(
            &old(3).health(&thresholds),
            OverallHealth::Degraded,
            &[],
            &["very_old_connections"],
        );
    }

    #[test]
    fn the_cleanup_error_rate_warns_above_5_percent_and_alerts_above_10() {
        let rate = |errors| with_cleanup_runs(snapshot(0), 100, errors).health(&defaults());

        assert_health(&rate(5), OverallHealth::Healthy, &[], &[]);
        assert_health(
            &rate(6),
            OverallHealth::Degraded,
            &[],
            &["cleanup_error_rate"],
        );
        assert_health(
            &rate(10),
            OverallHealth::Degraded,
            &[],
            &["cleanup_error_rate"],
        );
        assert_health(
            &rate(11),
            OverallHealth::Unhealthy,
            &["cleanup_error_rate"],
            &[],
        );
    }

    #[test]
    fn the_cleanup_error_rate_bands_follow_the_configured_thresholds() {
        let thresholds = HealthThresholds {
            cleanup_error_rate_warning: 0.2,
            cleanup_error_rate_alert: 0.5,
            ..defaults()
        };
        let rate = |errors| with_cleanup_runs(snapshot(0), 10, errors).health(&thresholds);

        // 20 % alerts by default; here it is at the warning, not above it.
        assert_health(
            &with_cleanup_runs(snapshot(0), 10, 2).health(&defaults()),
            OverallHealth::Unhealthy,
            &["cleanup_error_rate"],
            &[],
        );
        assert_health(&rate(2), OverallHealth::Healthy, &[], &[]);
        assert_health(
            &rate(3),
            OverallHealth::Degraded,
            &[],
            &["cleanup_error_rate"],
        );
        assert_health(
            &rate(5),
            OverallHealth::Degraded,
            &[],
            &["cleanup_error_rate"],
        );
        let alert = rate(6);
        assert_health(
            &alert,
            OverallHealth::Unhealthy,
            &["cleanup_error_rate"],
            &[],
        );
        assert_eq!(
            alert.alerts[0].message,
            "cleanup error rate 60.0% is above 50%"
        );
    }

    #[test]
    fn no_cleanup_run_yet_is_no_error_rate() {
        let indicators = with_cleanup_runs(snapshot(0), 0, 0).health(&defaults());

        assert_health(&indicators, OverallHealth::Healthy, &[], &[]);
    }

    #[test]
    fn active_and_stale_counts_above_the_configured_thresholds_are_warnings() {
        let thresholds = HealthThresholds {
            active_connections_warning: 4,
            stale_connections_warning: 1,
            ..defaults()
        };
        let mut busy = snapshot(5);
        busy.registry.age_buckets = AgeBuckets {
            stale: 2,
            active: 3,
            ..AgeBuckets::default()
        };

        assert_health(&busy.health(&defaults()), OverallHealth::Healthy, &[], &[]);
        assert_health(
            &busy.health(&thresholds),
            OverallHealth::Degraded,
            &[],
            &["high_connection_count", "stale_connections"],
        );
    }

    #[test]
    fn redis_down_in_cluster_mode_is_a_warning_and_skips_the_mismatch_rule() {
        let mut clustered = snapshot(100);
        // Far off, but Redis is down: the count there is not current.
        clustered.bridge = Some(bridge(LinkState::Down, Some(100), Some(0)));

        let indicators = clustered.health(&defaults());

        assert_health(
            &indicators,
            OverallHealth::Degraded,
            &[],
            &["redis_unavailable"],
        );
        assert!(
            indicators.warnings[0]
                .message
                .contains("connection refused"),
            "{indicators:?}"
        );
    }

    #[test]
    fn the_connection_mismatch_tolerance_is_the_larger_of_the_setting_and_10_percent() {
        let clustered = |written, in_redis, thresholds: &HealthThresholds| {
            let mut snapshot = snapshot(written);
            snapshot.bridge = Some(bridge(LinkState::Up, Some(written), in_redis));
            snapshot.health(thresholds)
        };
        let defaults = defaults();

        // Few streams: the tolerance of 5 applies.
        assert_health(
            &clustered(3, Some(8), &defaults),
            OverallHealth::Healthy,
            &[],
            &[],
        );
        assert_health(
            &clustered(3, Some(9), &defaults),
            OverallHealth::Unhealthy,
            &["connection_mismatch"],
            &[],
        );
        // 200 streams: 10 % (20) applies.
        assert_health(
            &clustered(200, Some(180), &defaults),
            OverallHealth::Healthy,
            &[],
            &[],
        );
        let alert = clustered(200, Some(179), &defaults);
        assert_health(
            &alert,
            OverallHealth::Unhealthy,
            &["connection_mismatch"],
            &[],
        );
        assert_eq!(
            alert.alerts[0].message,
            "this instance wrote 200 active connections to Redis, 179 recorded there"
        );
        // Nothing read back from Redis yet: nothing to compare.
        assert_health(
            &clustered(200, None, &defaults),
            OverallHealth::Healthy,
            &[],
            &[],
        );
        // Configured tolerance of 30.
        let tolerant = HealthThresholds {
            mismatch_tolerance: 30,
            ..defaults
        };
        assert_health(
            &clustered(3, Some(33), &tolerant),
            OverallHealth::Healthy,
            &[],
            &[],
        );
        assert_health(
            &clustered(3, Some(34), &tolerant),
            OverallHealth::Unhealthy,
            &["connection_mismatch"],
            &[],
        );
    }

    #[test]
    fn streams_opened_since_the_last_presence_write_are_no_mismatch() {
        // 100 streams opened at once: none of them is in Redis yet, and the
        // count written last (0) is exactly what Redis holds.
        let mut burst = snapshot(100);
        burst.bridge = Some(bridge(LinkState::Up, Some(0), Some(0)));
        assert_health(&burst.health(&defaults()), OverallHealth::Healthy, &[], &[]);

        // Right after a Redis outage there is nothing to compare.
        burst.bridge = Some(bridge(LinkState::Up, None, None));
        assert_health(&burst.health(&defaults()), OverallHealth::Healthy, &[], &[]);
    }

    #[test]
    fn any_alert_outweighs_warnings() {
        let thresholds = HealthThresholds {
            active_connections_warning: 1,
            ..defaults()
        };
        let mut both = snapshot(2);
        both.store_ok = false;

        let indicators = both.health(&thresholds);

        assert_health(
            &indicators,
            OverallHealth::Unhealthy,
            &["store_unavailable"],
            &["high_connection_count"],
        );
    }
}
