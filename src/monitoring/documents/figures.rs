//! `GET /sse/stats` and `GET /sse/monitoring` as typed documents.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::{ClusterTotals, DocumentContext, StoreCheck};
use crate::{
    actors::registry::RegistryStats,
    config::Settings,
    domain::{now_ms, rfc3339},
    monitoring::{HealthIndicators, Snapshot},
};

/// `GET /sse/stats`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsDocument {
    pub active_connections: usize,
    pub total_connections: u64,
    pub events_published: u64,
    pub events_delivered: u64,
    pub events_dropped: u64,
    pub connections_closed_slow: u64,
    pub events_by_type: BTreeMap<String, u64>,
    pub closed_by_reason: BTreeMap<&'static str, u64>,
    pub uptime_secs: u64,
    pub instance_id: String,
    /// Cluster totals; `null` without Redis.
    pub cluster: Option<ClusterTotals>,
}

impl StatsDocument {
    pub fn build(snapshot: &Snapshot, instance_id: &str) -> Self {
        let r = &snapshot.registry;
        Self {
            active_connections: r.active_connections,
            total_connections: r.total_connections,
            events_published: r.events_published,
            events_delivered: r.events_delivered,
            events_dropped: r.events_dropped,
            connections_closed_slow: r.connections_closed_slow,
            events_by_type: r.events_by_type.clone(),
            closed_by_reason: r.closed_by_reason.clone(),
            uptime_secs: snapshot.uptime_secs,
            instance_id: instance_id.to_owned(),
            cluster: ClusterTotals::of(snapshot),
        }
    }
}

/// `GET /sse/monitoring`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonitoringDocument {
    /// RFC 3339.
    pub timestamp: String,
    pub service_name: &'static str,
    pub instance_id: String,
    pub connection_stats: ConnectionStats,
    pub cleanup_stats: CleanupStatsView,
    pub health_indicators: HealthIndicators,
    /// The event store: `checks.store` of `/health`.
    pub store_stats: StoreCheck,
    pub performance_metrics: PerformanceMetrics,
    /// The settings as `check-config` prints them, secrets masked, with
    /// the monitoring guide's names for the cleanup settings beside them.
    pub configuration: ConfigurationView,
}

/// `configuration` of `/sse/monitoring`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigurationView {
    pub cleanup_interval_seconds: u64,
    pub cleanup_batch_size: usize,
    pub stale_threshold_seconds: u64,
    /// Always `true`: the Janitor runs whenever the broker does (a zero
    /// interval is refused at start-up).
    pub periodic_cleanup_enabled: bool,
    /// Every other setting, under its configuration-file key.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl ConfigurationView {
    fn of(settings: &Settings) -> Self {
        let mut all = match serde_json::to_value(settings) {
            Ok(serde_json::Value::Object(all)) => all,
            // Settings is a struct of plain values: it always serializes
            // to an object.
            _ => serde_json::Map::new(),
        };
        // Shown once, under the guide's name.
        all.remove("cleanup_batch_size");
        Self {
            cleanup_interval_seconds: settings.cleanup_interval.as_secs(),
            cleanup_batch_size: settings.cleanup_batch_size,
            stale_threshold_seconds: settings.stale_threshold.as_secs(),
            periodic_cleanup_enabled: true,
            settings: all,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionStats {
    pub active_connections: usize,
    pub total_connections: u64,
    pub max_connections: usize,
    pub utilization_percent: f64,
    /// Streams still replaying stored events after a resume.
    pub replaying_connections: usize,
    /// Frames waiting in every stream's queue.
    pub queued_frames: usize,
    pub closed_by_reason: BTreeMap<&'static str, u64>,
    pub connections_closed_slow: u64,
    pub cleanup_task_running: bool,
    /// This instance's count as Redis holds it; `null` without Redis.
    pub redis_connection_counters: Option<usize>,
    /// The count this instance last wrote to Redis.
    pub redis_connections_written: Option<usize>,
    pub cluster: Option<ClusterTotals>,
}

/// `cleanup_stats` of `/sse/monitoring`. Rates are percentages (0-100).
#[derive(Debug, Serialize, ToSchema)]
pub struct CleanupStatsView {
    /// Cleanup runs since start, periodic and requested.
    pub total_cleanups: u64,
    pub total_connections_cleaned: u64,
    /// Runs that failed: the Registry did not answer, or the run stopped at
    /// its deadline with stale streams left.
    pub cleanup_errors: u64,
    /// Stale streams a run failed to close.
    pub failed_connections: u64,
    /// `cleanup_errors / total_cleanups`, in percent.
    pub error_rate: f64,
    /// `failed_connections / (total_connections_cleaned + failed_connections)`, in percent.
    pub connection_failure_rate: f64,
    /// 0 before the first run (`last_run_at` is `null` then): the guide's
    /// shape is a number, and dashboards read it as one.
    pub last_cleanup_duration_ms: f64,
    pub connections_per_cleanup: f64,
    /// Streams by age now (sampled once a second): no write for the stale
    /// threshold, written recently, open > 1 h, open > 6 h.
    pub stale: usize,
    pub active: usize,
    pub long_lived: usize,
    pub very_old: usize,
    pub total_batches: u64,
    /// RFC 3339.
    pub last_run_at: Option<String>,
    pub last_cleaned: u64,
    pub last_failed: u64,
    pub cleanup_task_running: bool,
    pub interval_secs: u64,
    pub batch_size: usize,
    pub stale_threshold_secs: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PerformanceMetrics {
    pub uptime_secs: u64,
    pub events_published: u64,
    pub events_delivered: u64,
    pub events_dropped: u64,
    pub events_published_per_second: f64,
    pub events_delivered_per_second: f64,
    pub events_by_type: BTreeMap<String, u64>,
    /// Publish→write lag per subscriber since start; `null` before the
    /// first live delivery.
    pub delivery_lag_ms: Option<LagQuantiles>,
    /// Mean duration of a cleanup run since start (0 before the first).
    pub avg_cleanup_duration_ms: f64,
    /// Stale streams closed over those a run tried to close, in percent
    /// (100 when none was tried).
    pub cleanup_efficiency_rate: f64,
    /// `cleanup_stats.error_rate`.
    pub cleanup_error_rate: f64,
    /// `cleanup_stats.connections_per_cleanup`.
    pub connections_cleaned_per_operation: f64,
}

/// Quantiles in ms, interpolated within the histogram's buckets (as
/// `histogram_quantile` does).
#[derive(Debug, Serialize, ToSchema)]
pub struct LagQuantiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl MonitoringDocument {
    pub fn build(snapshot: &Snapshot, context: &DocumentContext<'_>) -> Self {
        let r: &RegistryStats = &snapshot.registry;
        let c = &snapshot.cleanup;
        let uptime = snapshot.uptime_secs.max(1) as f64;
        let connections_per_cleanup = c.connections_per_cleanup();
        Self {
            timestamp: rfc3339(now_ms()),
            service_name: "sse-broker",
            instance_id: context.instance_id.to_owned(),
            connection_stats: ConnectionStats {
                active_connections: r.active_connections,
                total_connections: r.total_connections,
                max_connections: context.max_connections,
                utilization_percent: r.active_connections as f64 * 100.0
                    / context.max_connections.max(1) as f64,
                replaying_connections: r.replaying_connections,
                queued_frames: r.queued_frames,
                closed_by_reason: r.closed_by_reason.clone(),
                connections_closed_slow: r.connections_closed_slow,
                cleanup_task_running: c.cleanup_task_running,
                redis_connection_counters: snapshot.bridge.as_ref().and_then(|b| b.own_redis_count),
                redis_connections_written: snapshot
                    .bridge
                    .as_ref()
                    .and_then(|b| b.own_written_count),
                cluster: ClusterTotals::of(snapshot),
            },
            cleanup_stats: CleanupStatsView {
                total_cleanups: c.total_runs,
                total_connections_cleaned: c.total_cleaned,
                cleanup_errors: c.total_errors,
                failed_connections: c.total_failed,
                error_rate: snapshot.cleanup_error_rate(),
                connection_failure_rate: snapshot.connection_failure_rate(),
                last_cleanup_duration_ms: c.last_cleanup_duration_ms.unwrap_or(0.0),
                connections_per_cleanup,
                stale: r.age_buckets.stale,
                active: r.age_buckets.active,
                long_lived: r.age_buckets.long_lived,
                very_old: r.age_buckets.very_old,
                total_batches: c.total_batches,
                last_run_at: c.last_run_at_ms.map(rfc3339),
                last_cleaned: c.last_cleaned,
                last_failed: c.last_failed,
                cleanup_task_running: c.cleanup_task_running,
                interval_secs: c.interval_secs,
                batch_size: c.batch_size,
                stale_threshold_secs: c.stale_threshold_secs,
            },
            health_indicators: snapshot.health(context.thresholds),
            store_stats: StoreCheck::of(snapshot, context.store_backend),
            performance_metrics: PerformanceMetrics {
                uptime_secs: snapshot.uptime_secs,
                events_published: r.events_published,
                events_delivered: r.events_delivered,
                events_dropped: r.events_dropped,
                events_published_per_second: r.events_published as f64 / uptime,
                events_delivered_per_second: r.events_delivered as f64 / uptime,
                events_by_type: r.events_by_type.clone(),
                delivery_lag_ms: delivery_lag_quantiles(context.delivery_lag),
                avg_cleanup_duration_ms: c.avg_duration_ms(),
                cleanup_efficiency_rate: 100.0 - snapshot.connection_failure_rate(),
                cleanup_error_rate: snapshot.cleanup_error_rate(),
                connections_cleaned_per_operation: connections_per_cleanup,
            },
            configuration: ConfigurationView::of(context.configuration),
        }
    }
}

/// p50/p90/p99 of the per-subscriber delivery lag since start, in ms.
fn delivery_lag_quantiles(histogram: &prometheus::Histogram) -> Option<LagQuantiles> {
    use prometheus::core::Collector as _;
    let families = histogram.collect();
    let metric = families.first().and_then(|f| f.get_metric().first())?;
    let data = metric.get_histogram();
    let count = data.get_sample_count();
    if count == 0 {
        return None;
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
    Some(LagQuantiles {
        count,
        mean: data.get_sample_sum() * 1000.0 / count as f64,
        p50: quantile(0.50),
        p90: quantile(0.90),
        p99: quantile(0.99),
    })
}
