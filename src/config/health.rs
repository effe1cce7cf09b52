//! Thresholds of the health rules behind `/health` and `/sse/monitoring`.

use serde::Serialize;

/// Thresholds of the health rules behind `/health` and `/sse/monitoring`;
/// `check-config` shows them as one `health` object, without the prefix.
#[derive(Debug, Clone, Copy, PartialEq, clap::Args, Serialize)]
pub struct HealthThresholds {
    /// Health warning above this many active streams.
    #[arg(
        long = "health-active-connections-warning",
        env = "SSE_BROKER_HEALTH_ACTIVE_CONNECTIONS_WARNING",
        global = true,
        default_value_t = 1000
    )]
    pub active_connections_warning: usize,

    /// Health warning above this many stale streams.
    // With the default cleanup every stale stream is gone within a minute.
    #[arg(
        long = "health-stale-connections-warning",
        env = "SSE_BROKER_HEALTH_STALE_CONNECTIONS_WARNING",
        global = true,
        default_value_t = 50
    )]
    pub stale_connections_warning: usize,

    /// Health warning above this many streams older than 6 h.
    #[arg(
        long = "health-very-old-connections-warning",
        env = "SSE_BROKER_HEALTH_VERY_OLD_CONNECTIONS_WARNING",
        global = true,
        default_value_t = 10
    )]
    pub very_old_connections_warning: usize,

    /// Health warning above this cleanup error rate, 0-1.
    #[arg(
        long = "health-cleanup-error-rate-warning",
        env = "SSE_BROKER_HEALTH_CLEANUP_ERROR_RATE_WARNING",
        global = true,
        default_value_t = 0.05
    )]
    pub cleanup_error_rate_warning: f64,

    /// Health alert (unhealthy) above this cleanup error rate, 0-1.
    #[arg(
        long = "health-cleanup-error-rate-alert",
        env = "SSE_BROKER_HEALTH_CLEANUP_ERROR_RATE_ALERT",
        global = true,
        default_value_t = 0.10
    )]
    pub cleanup_error_rate_alert: f64,

    /// Local and Redis connection counts may differ by this much, or 10 %,
    /// before the mismatch alert.
    // The monitoring guide's gap of 10 (CONTRACT §9).
    #[arg(
        long = "health-mismatch-tolerance",
        env = "SSE_BROKER_HEALTH_MISMATCH_TOLERANCE",
        global = true,
        default_value_t = 10
    )]
    pub mismatch_tolerance: usize,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        super::defaults()
    }
}
