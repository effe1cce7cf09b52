//! The health rules: one function that turns a [`Snapshot`] into
//! `healthy` / `degraded` / `unhealthy`, with the alerts and warnings that
//! say why. `/health`, `/sse/monitoring` and the `sse_health_status` gauge
//! all read it.

use std::time::Duration;

use serde::Serialize;

use super::Snapshot;
use crate::{
    actors::redis_bridge::{FOREIGN_WARNING_FOR, LinkState},
    actors::registry::AgeBuckets,
    config::HealthThresholds,
    store::ClassReport,
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
    /// The last one failed longer ago, and none was tried since; or the
    /// write probe succeeded since: a warning.
    Earlier = 2,
}

impl StoreFailing {
    pub fn of(class: &ClassReport) -> Self {
        match &class.failing {
            None => Self::No,
            Some(failure) if failure.file_damaged => Self::Recently,
            Some(failure) if failure.probed_ok_since => Self::Earlier,
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

/// One alert or warning, in the shape of the operators' monitoring guide:
/// `{type, message, severity, value}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Finding {
    /// Stable rule name, e.g. `high_cleanup_error_rate`.
    #[serde(rename = "type")]
    pub rule: &'static str,
    pub message: String,
    /// `high` for alerts, `medium` for warnings.
    pub severity: &'static str,
    /// The figure the rule judged: a count, a percentage or seconds.
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HealthIndicators {
    pub overall_health: OverallHealth,
    pub alerts: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl Snapshot {
    /// The health rules: any alert makes the instance unhealthy, any warning
    /// degraded.
    pub fn health(&self, thresholds: &HealthThresholds) -> HealthIndicators {
        let mut alerts = Vec::new();
        let mut warnings = Vec::new();
        let alert = |rule, message: String, value: f64| Finding {
            rule,
            message,
            severity: "high",
            value,
        };
        let warning = |rule, message: String, value: f64| Finding {
            rule,
            message,
            severity: "medium",
            value,
        };
        if !self.store_ok {
            alerts.push(alert(
                "store_unavailable",
                "The event store does not answer".into(),
                0.0,
            ));
        }
        if let Some(stalled) = self.store.stalled() {
            let secs = stalled.elapsed.as_secs_f64();
            alerts.push(alert(
                "store_stalled",
                format!(
                    "A store {} has been waiting for {secs:.1} s, past the {} ms store timeout",
                    stalled.operation,
                    self.store.timeout.as_millis()
                ),
                secs,
            ));
        }
        // Writes and reads failing together are one `store_failing` entry
        // per list, whose message names both: an entry's name is its key.
        let mut recent: Vec<(String, f64)> = Vec::new();
        let mut earlier: Vec<(String, f64)> = Vec::new();
        for (kind, class) in [("write", &self.store.writes), ("read", &self.store.reads)] {
            let Some(failure) = &class.failing else {
                continue;
            };
            let ago = failure.ago.as_secs_f64();
            let since = if failure.file_damaged {
                "the SQLite file is damaged (SQLite finds it malformed, or not a database): \
                 stop the broker and restore the file from a backup"
                    .to_owned()
            } else if failure.probed_ok_since {
                format!("the broker's own test {kind} has succeeded since, no other {kind} yet")
            } else {
                format!("no {kind} has succeeded since")
            };
            let message = format!(
                "The last store {kind} ({}) failed ({}) {ago:.0} s ago; {since}",
                failure.operation,
                failure.kind.as_str(),
            );
            match StoreFailing::of(class) {
                StoreFailing::Recently => recent.push((message, ago)),
                StoreFailing::Earlier => earlier.push((message, ago)),
                StoreFailing::No => {}
            }
        }
        if let Some((message, ago)) = joined(recent) {
            alerts.push(alert("store_failing", message, ago));
        }
        if let Some((message, ago)) = joined(earlier) {
            warnings.push(warning("store_failing", message, ago));
        }
        if !self.cleanup.cleanup_task_running {
            alerts.push(alert(
                "cleanup_not_running",
                "Periodic cleanup task is not running".into(),
                0.0,
            ));
        }
        // The thresholds are fractions (0-1), the rate a percentage.
        let error_rate = self.cleanup_error_rate();
        if error_rate > thresholds.cleanup_error_rate_alert * 100.0 {
            alerts.push(alert(
                "high_cleanup_error_rate",
                format!(
                    "High cleanup error rate: {error_rate:.1}% (above {:.0}%)",
                    thresholds.cleanup_error_rate_alert * 100.0
                ),
                error_rate,
            ));
        } else if error_rate > thresholds.cleanup_error_rate_warning * 100.0 {
            warnings.push(warning(
                "elevated_error_rate",
                format!(
                    "Elevated cleanup error rate: {error_rate:.1}% (above {:.0}%)",
                    thresholds.cleanup_error_rate_warning * 100.0
                ),
                error_rate,
            ));
        }
        if let Some(bridge) = &self.bridge {
            if let Some(foreign) = bridge
                .foreign
                .as_ref()
                .filter(|seen| seen.at.elapsed() < FOREIGN_WARNING_FOR)
            {
                warnings.push(warning(
                    "foreign_deployment",
                    format!(
                        "Another deployment (instance {}, storing in another database) uses this \
                         cluster's Redis channels; its messages are ignored ({} so far). Give \
                         each deployment its own --cluster-name",
                        foreign.instance_id, foreign.ignored
                    ),
                    foreign.ignored as f64,
                ));
            }
            // Two processes with one id write one presence record: their
            // counts disagree by design, which says nothing of either.
            let id_clash = bridge
                .id_clash_at
                .is_some_and(|at| at.elapsed() < FOREIGN_WARNING_FOR);
            if id_clash {
                warnings.push(warning(
                    "duplicate_instance_id",
                    "Another process runs with this instance's --instance-id and writes its \
                     presence record: the connection counts in Redis and the cluster's views of \
                     this instance are unreliable. Give each instance its own --instance-id"
                        .into(),
                    0.0,
                ));
            }
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
                    0.0,
                ));
            } else if let Some(reason) = &bridge.presence_refused {
                warnings.push(warning(
                    "redis_presence_refused",
                    format!(
                        "Redis refuses this instance's presence writes ({reason}): events still \
                         flow between instances, but the cluster's connection totals and the \
                         presence check are stale. Free memory in Redis (maxmemory) or make it \
                         writable"
                    ),
                    0.0,
                ));
            } else if !id_clash
                && let Some((message, gap)) =
                    self.connection_mismatch(thresholds.mismatch_tolerance)
            {
                alerts.push(alert("connection_mismatch", message, gap as f64));
            }
        }
        if self.jwks.is_some_and(|jwks| jwks.keys.is_none()) {
            warnings.push(warning(
                "signing_keys_unavailable",
                "No signing keys fetched from the JWKS endpoint yet; tokens that need them get \
                 503 auth_unavailable"
                    .into(),
                0.0,
            ));
        }
        let active = self.registry.active_connections;
        if active > thresholds.active_connections_warning {
            warnings.push(warning(
                "high_connection_count",
                format!("High connection count: {active}"),
                active as f64,
            ));
        }
        let AgeBuckets {
            stale, very_old, ..
        } = self.registry.age_buckets;
        if stale > thresholds.stale_connections_warning {
            warnings.push(warning(
                "stale_connection_accumulation",
                format!("Stale connections accumulating: {stale}"),
                stale as f64,
            ));
        }
        if very_old > thresholds.very_old_connections_warning {
            warnings.push(warning(
                "very_old_connections",
                format!("Connections older than 6 hours detected: {very_old}"),
                very_old as f64,
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

/// Messages joined into one, with the most recent of their ages.
fn joined(parts: Vec<(String, f64)>) -> Option<(String, f64)> {
    let ago = parts.iter().map(|(_, ago)| *ago).reduce(f64::min)?;
    let messages: Vec<String> = parts.into_iter().map(|(message, _)| message).collect();
    Some((messages.join("; "), ago))
}

#[cfg(test)]
mod tests {
    //! The rules whose condition a running broker cannot produce in a test's
    //! time (streams older than 6 h, the cleanup timer stopped, the store
    //! gone) and the thresholds' edges, on hand-made snapshots. The
    //! integration tests in `tests/api/health_rules.rs` produce the others.

    use super::*;
    use crate::{
        actors::{janitor::CleanupStats, redis_bridge::BridgeStatus, registry::RegistryStats},
        monitoring::{JwksState, documents::StoreCheck},
        store::{FailureKind, FailureReport, InFlight, StoreHealthReport},
    };

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
            jwks: None,
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
            own_record_misses: if written == in_redis { 0 } else { 2 },
            presence_refused: None,
            foreign: None,
            id_clash_at: None,
        }
    }

    fn failure(operation: &'static str, kind: FailureKind, ago_secs: u64) -> ClassReport {
        ClassReport {
            last_ok_ago: Some(Duration::from_secs(ago_secs + 10)),
            failing: Some(FailureReport {
                operation,
                kind,
                ago: Duration::from_secs(ago_secs),
                probed_ok_since: false,
                file_damaged: false,
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
    fn a_store_file_found_damaged_is_an_alert_however_long_ago() {
        let mut damaged = snapshot(0);
        let mut report = failure("events_after", FailureKind::Error, 3600);
        if let Some(failing) = report.failing.as_mut() {
            failing.file_damaged = true;
        }
        damaged.store.reads = report;

        let indicators = damaged.health(&defaults());

        assert_health(
            &indicators,
            OverallHealth::Unhealthy,
            &["store_failing"],
            &[],
        );
        let message = &indicators.alerts[0].message;
        assert!(
            message.contains("damaged") && message.contains("backup"),
            "{message}"
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
        assert_eq!(StoreCheck::of(&failing, "sqlite").status, "failing");

        // Nothing tried for longer than the hold: the evidence is old.
        failing.store.writes = failure("insert_batch", FailureKind::Error, 31);
        assert_health(
            &failing.health(&defaults()),
            OverallHealth::Degraded,
            &[],
            &["store_failing"],
        );

        // A second ago, but the broker's test write succeeded since.
        let mut probed = failure("insert_batch", FailureKind::Error, 1);
        if let Some(report) = probed.failing.as_mut() {
            report.probed_ok_since = true;
        }
        failing.store.writes = probed;
        let indicators = failing.health(&defaults());
        assert_health(
            &indicators,
            OverallHealth::Degraded,
            &[],
            &["store_failing"],
        );
        let message = &indicators.warnings[0].message;
        assert!(
            message.contains("test write has succeeded") && !message.contains("no write has"),
            "{message}"
        );
    }

    #[test]
    fn failed_writes_and_reads_are_one_store_failing_alert_naming_both() {
        let mut failing = snapshot(0);
        failing.store.writes = failure("insert_batch", FailureKind::Timeout, 3);
        failing.store.reads = failure("events_after", FailureKind::Error, 1);

        let indicators = failing.health(&defaults());

        assert_health(
            &indicators,
            OverallHealth::Unhealthy,
            &["store_failing"],
            &[],
        );
        let only = &indicators.alerts[0];
        assert!(
            only.message.contains("insert_batch") && only.message.contains("events_after"),
            "{}",
            only.message
        );
        assert_eq!(only.value, 1.0, "the most recent failure's age");
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
            "A store insert_batch has been waiting for 7.2 s, past the 5000 ms store timeout"
        );
        assert_eq!(StoreCheck::of(&stuck, "postgresql").status, "stalled");
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
            "Connections older than 6 hours detected: 11"
        );
        assert_eq!(indicators.warnings[0].value, 11.0);

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
            &["elevated_error_rate"],
        );
        assert_health(
            &rate(10),
            OverallHealth::Degraded,
            &[],
            &["elevated_error_rate"],
        );
        assert_health(
            &rate(11),
            OverallHealth::Unhealthy,
            &["high_cleanup_error_rate"],
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
            &["high_cleanup_error_rate"],
            &[],
        );
        assert_health(&rate(2), OverallHealth::Healthy, &[], &[]);
        assert_health(
            &rate(3),
            OverallHealth::Degraded,
            &[],
            &["elevated_error_rate"],
        );
        assert_health(
            &rate(5),
            OverallHealth::Degraded,
            &[],
            &["elevated_error_rate"],
        );
        let alert = rate(6);
        assert_health(
            &alert,
            OverallHealth::Unhealthy,
            &["high_cleanup_error_rate"],
            &[],
        );
        assert_eq!(
            alert.alerts[0].message,
            "High cleanup error rate: 60.0% (above 50%)"
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
            &["high_connection_count", "stale_connection_accumulation"],
        );
    }

    #[test]
    fn another_deployments_recent_messages_are_a_warning_until_they_stop() {
        let mut clustered = snapshot(0);
        let mut status = bridge(LinkState::Up, None, None);
        status.foreign = Some(crate::actors::redis_bridge::ForeignSighting {
            instance_id: "staging-1".into(),
            ignored: 3,
            at: std::time::Instant::now(),
        });
        clustered.bridge = Some(status.clone());
        let indicators = clustered.health(&defaults());
        assert_health(
            &indicators,
            OverallHealth::Degraded,
            &[],
            &["foreign_deployment"],
        );
        assert!(
            indicators.warnings[0].message.contains("staging-1"),
            "{indicators:?}"
        );
        assert!(
            !indicators.warnings[0].message.contains("  "),
            "one sentence, no runs of spaces: {indicators:?}"
        );

        let long_ago = std::time::Instant::now() - FOREIGN_WARNING_FOR;
        if let Some(seen) = status.foreign.as_mut() {
            seen.at = long_ago;
        }
        clustered.bridge = Some(status);
        assert_health(
            &clustered.health(&defaults()),
            OverallHealth::Healthy,
            &[],
            &[],
        );
    }

    #[test]
    fn two_processes_with_one_instance_id_are_a_warning_naming_it_not_a_mismatch_alert() {
        let mut clustered = snapshot(6);
        let mut status = bridge(LinkState::Up, Some(6), Some(20));
        status.id_clash_at = Some(std::time::Instant::now());
        clustered.bridge = Some(status.clone());
        let indicators = clustered.health(&defaults());
        assert_health(
            &indicators,
            OverallHealth::Degraded,
            &[],
            &["duplicate_instance_id"],
        );
        assert!(
            indicators.warnings[0].message.contains("--instance-id"),
            "{indicators:?}"
        );

        // Once the other process is gone, the counts are compared again.
        status.id_clash_at = Some(std::time::Instant::now() - FOREIGN_WARNING_FOR);
        clustered.bridge = Some(status);
        assert_health(
            &clustered.health(&defaults()),
            OverallHealth::Unhealthy,
            &["connection_mismatch"],
            &[],
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
    fn signing_keys_never_fetched_from_a_jwks_endpoint_are_a_warning() {
        let mut waiting = snapshot(1);
        waiting.jwks = Some(JwksState { keys: None });
        let mut fetched = snapshot(1);
        fetched.jwks = Some(JwksState { keys: Some(2) });

        assert_health(
            &waiting.health(&defaults()),
            OverallHealth::Degraded,
            &[],
            &["signing_keys_unavailable"],
        );
        assert_health(
            &fetched.health(&defaults()),
            OverallHealth::Healthy,
            &[],
            &[],
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

        // Few streams: the tolerance of 10 applies (the guide's gap > 10).
        assert_health(
            &clustered(3, Some(13), &defaults),
            OverallHealth::Healthy,
            &[],
            &[],
        );
        assert_health(
            &clustered(3, Some(14), &defaults),
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
            "Connection count mismatch: this instance wrote 200 active connections to Redis, \
             179 recorded there"
        );
        assert_eq!(alert.alerts[0].value, 21.0);
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
    fn a_record_lost_once_is_no_mismatch_and_a_refused_write_is_a_warning() {
        let defaults = defaults();
        let with = |change: &dyn Fn(&mut BridgeStatus)| {
            let mut snapshot = snapshot(15);
            let mut bridge = bridge(LinkState::Up, Some(15), Some(0));
            change(&mut bridge);
            snapshot.bridge = Some(bridge);
            snapshot.health(&defaults)
        };
        // A FLUSHALL: the record was gone at one refresh, rewritten since.
        assert_health(
            &with(&|bridge| bridge.own_record_misses = 1),
            OverallHealth::Healthy,
            &[],
            &[],
        );
        assert_health(
            &with(&|bridge| bridge.own_record_misses = 2),
            OverallHealth::Unhealthy,
            &["connection_mismatch"],
            &[],
        );
        // Redis at maxmemory: the link is up, the writes refused.
        let refused = with(&|bridge| {
            bridge.presence_refused = Some("OOM command not allowed".into());
            bridge.own_written_count = None;
            bridge.own_redis_count = None;
        });
        assert_health(
            &refused,
            OverallHealth::Degraded,
            &[],
            &["redis_presence_refused"],
        );
        assert!(refused.warnings[0].message.contains("OOM"), "{refused:?}");
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
