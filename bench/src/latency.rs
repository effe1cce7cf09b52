//! Latency histograms, their batched recording, and their summary.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::figures::round3;

/// Highest latency the histograms resolve (one hour, in µs); larger values
/// are clamped to it.
const LATENCY_MAX_MICROS: u64 = 3_600_000_000;
/// Three significant digits: 0.1% resolution at any magnitude.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// Latencies a stream buffers before merging them into the shared histogram,
/// so that the lock is taken once per batch rather than once per delivery.
const LATENCY_FLUSH_EVERY: usize = 512;

/// Buffers one stream's latencies and merges them into the run's histogram in
/// batches.
pub struct LatencyRecorder {
    pending: Vec<u64>,
    sink: Arc<Mutex<Histogram<u64>>>,
}

impl LatencyRecorder {
    pub fn new(sink: Arc<Mutex<Histogram<u64>>>) -> Self {
        // No allocation until the first delivery: idle streams stay small.
        Self {
            pending: Vec::new(),
            sink,
        }
    }

    pub fn record(&mut self, micros: u64) {
        self.pending.push(micros);
        if self.pending.len() >= LATENCY_FLUSH_EVERY {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut histogram = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        for &micros in &self.pending {
            histogram.saturating_record(micros);
        }
        self.pending.clear();
    }
}

pub fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_max(LATENCY_MAX_MICROS, LATENCY_SIGNIFICANT_DIGITS)
        .context("creating a latency histogram")
}

pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, micros)
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// `None` when nothing was measured.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| round3(micros as f64 / 1000.0);
        Some(Self {
            samples: histogram.len(),
            mean_ms: round3(histogram.mean() / 1000.0),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        })
    }
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {} ms, p90 {} ms, p99 {} ms, p99.9 {} ms, max {} ms (mean {} ms, {} samples)",
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            self.mean_ms,
            self.samples
        )
    }
}
