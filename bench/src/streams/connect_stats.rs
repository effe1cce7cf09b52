//! How a run's streams opened, as the reports show it.

use std::fmt;

use serde::Serialize;

use crate::{figures::display_option, latency::LatencySummary};

/// How the streams opened.
#[derive(Debug, Serialize)]
pub struct ConnectStats {
    pub streams: u64,
    /// From the first connect to the last `connected` frame.
    pub seconds: f64,
    pub per_sec: Option<f64>,
    /// Per stream: TCP connect to `connected` frame.
    pub latency: Option<LatencySummary>,
}

impl fmt::Display for ConnectStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connected in {} s ({} streams/s)",
            self.streams,
            self.seconds,
            display_option(self.per_sec)
        )?;
        if let Some(latency) = &self.latency {
            write!(
                f,
                "; per stream p50 {} ms, p99 {} ms, max {} ms",
                latency.p50_ms, latency.p99_ms, latency.max_ms
            )?;
        }
        Ok(())
    }
}
