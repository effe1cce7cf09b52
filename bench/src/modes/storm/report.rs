//! What a storm reports, as text or JSON.

use std::fmt;

use serde::Serialize;
use tokio::time::Instant;

use crate::{
    cpu::BrokerCpu,
    health_probe::HealthStats,
    latency::{LatencySummary, micros, new_histogram},
    modes::Verdict,
    report::{ConnectStats, DeliveryStats, PublishStats, ResumeStats, display_option, round3},
    streams::{ConnectTally, StreamLog},
};

#[derive(Debug, Serialize)]
pub struct StormReport {
    pub mode: &'static str,
    pub url: String,
    pub event_type: String,
    pub payload_bytes: usize,
    pub batch: u64,
    pub publishers: u64,
    /// Events published while every stream was closed.
    pub events: u64,
    /// `None` (null): every stream reconnected at once.
    pub reopen_concurrency: Option<u64>,
    /// The first opening, before the seed event.
    pub open: ConnectStats,
    pub seed: SeedStats,
    /// The events published with no stream open.
    pub missed_publish: PublishStats,
    pub reopen: ReopenStats,
    pub catch_up: CatchUpStats,
    /// Frames of this run's events read after the reconnect.
    pub replayed_frames: u64,
    /// Streams resumed × missed events acknowledged.
    pub expected_replayed_frames: u64,
    /// Frames of this run's events (all stored: the seed's and the
    /// replay's) without an `id:` line, which a client could not resume from.
    pub frames_without_id: u64,
    /// Over the seed and the missed events, every stream's connections.
    pub delivery: DeliveryStats,
    pub resume: ResumeStats,
    /// `GET /health` from the reconnect until every stream caught up.
    pub health: HealthStats,
    pub broker: Option<BrokerDuringStorm>,
}

impl StormReport {
    pub fn verdict(&self) -> Verdict {
        let clean = self.missed_publish.is_clean()
            && self.catch_up.caught_up == self.catch_up.streams
            && self.delivery.is_clean()
            && self.resume.is_clean()
            && self.frames_without_id == 0
            && self.health.is_clean();
        if clean {
            Verdict::Clean
        } else {
            Verdict::Faults
        }
    }
}

/// The ids the streams resume from.
#[derive(Debug, Serialize)]
pub struct SeedStats {
    pub lowest_last_id: Option<u64>,
    pub highest_last_id: Option<u64>,
}

impl SeedStats {
    pub fn of(logs: &[StreamLog]) -> Self {
        let ids = || logs.iter().filter_map(StreamLog::last_id);
        Self {
            lowest_last_id: ids().min(),
            highest_last_id: ids().max(),
        }
    }
}

/// The reconnects' first attempts.
#[derive(Debug, Serialize)]
pub struct ReopenStats {
    /// Streams connected at their first attempt: how fast, how many per second.
    pub connect: ConnectStats,
    /// First attempts the broker refused or that failed (each retried).
    pub failed_first_try: u64,
    pub first_failure: Option<String>,
}

impl ReopenStats {
    pub fn of(tally: &ConnectTally, started: Instant) -> Self {
        Self {
            connect: tally.stats(started),
            failed_first_try: tally.failed,
            first_failure: tally.first_failure.clone(),
        }
    }
}

/// How long the streams took to hold every missed event.
#[derive(Debug, Serialize)]
pub struct CatchUpStats {
    pub streams: u64,
    pub caught_up: u64,
    /// From the storm's start until the last stream caught up; `None`
    /// (null) when some never did within `--drain-secs`.
    pub all_seconds: Option<f64>,
    /// Per stream: its first reconnect attempt → its last missed event.
    pub per_stream: Option<LatencySummary>,
}

impl CatchUpStats {
    pub fn of(logs: &[StreamLog], all_seconds: Option<f64>) -> Self {
        let mut histogram = new_histogram().ok();
        let mut caught_up = 0;
        for took in logs.iter().filter_map(StreamLog::catch_up_time) {
            caught_up += 1;
            if let Some(histogram) = histogram.as_mut() {
                histogram.saturating_record(micros(took));
            }
        }
        Self {
            streams: logs.len() as u64,
            caught_up,
            all_seconds: all_seconds.map(round3),
            per_stream: histogram.as_ref().and_then(LatencySummary::of),
        }
    }
}

/// The broker's resources from the reconnect until every stream caught up.
#[derive(Debug, Serialize)]
pub struct BrokerDuringStorm {
    pub rss_before_kib: u64,
    pub peak_rss_kib: u64,
    /// Per delivery: per replayed frame.
    pub cpu: BrokerCpu,
}

impl fmt::Display for StormReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sse-bench storm {}: {} streams resume after {} missed events; type {}, \
             {}-byte pad, batch {}, {} publishers, reconnect concurrency {}",
            self.url,
            self.catch_up.streams,
            self.events,
            self.event_type,
            self.payload_bytes,
            self.batch,
            self.publishers,
            self.reopen_concurrency
                .map_or("unlimited".to_owned(), |limit| limit.to_string())
        )?;
        writeln!(f, "{:12}{}", "open", self.open)?;
        writeln!(
            f,
            "{:12}every stream received it; last ids {}..{}, then all closed",
            "seed",
            display_option(self.seed.lowest_last_id),
            display_option(self.seed.highest_last_id)
        )?;
        write!(f, "{:12}{}", "missed", self.missed_publish)?;
        write!(f, "{:12}{}", "reconnect", self.reopen.connect)?;
        writeln!(f, "; {} failed first try", self.reopen.failed_first_try)?;
        if let Some(failure) = &self.reopen.first_failure {
            writeln!(f, "{:12}first failure: {failure}", "")?;
        }
        let catch_up = &self.catch_up;
        writeln!(
            f,
            "{:12}{} of {} streams caught up; all in {} s from the storm's start",
            "catch-up",
            catch_up.caught_up,
            catch_up.streams,
            display_option(catch_up.all_seconds)
        )?;
        if let Some(per_stream) = &catch_up.per_stream {
            writeln!(
                f,
                "{:12}per stream (first attempt → last missed event) p50 {} ms, p99 {} ms, max {} ms",
                "", per_stream.p50_ms, per_stream.p99_ms, per_stream.max_ms
            )?;
        }
        writeln!(
            f,
            "{:12}{} of {} expected frames, as ordinary `{}` frames; {} without an `id:`",
            "replay",
            self.replayed_frames,
            self.expected_replayed_frames,
            self.event_type,
            self.frames_without_id
        )?;
        write!(f, "{:12}{}", "correctness", self.delivery.correctness())?;
        write!(f, "{:12}{}", "resume", self.resume)?;
        write!(f, "{:12}{}", "/health", self.health)?;
        if let Some(broker) = &self.broker {
            let mib = |kib: u64| round3(kib as f64 / 1024.0);
            writeln!(
                f,
                "{:12}RSS {} MiB before, peak {} MiB; cpu {} (per replayed frame)",
                "broker",
                mib(broker.rss_before_kib),
                mib(broker.peak_rss_kib),
                broker.cpu
            )?;
        }
        Ok(())
    }
}
