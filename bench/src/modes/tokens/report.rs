//! What a `tokens` run reports: the producers' side, each group of
//! viewers, the store's cost and the broker's CPU.

use std::{
    fmt,
    sync::{Mutex, PoisonError},
};

use serde::Serialize;

use super::rate_label;
use crate::{
    generation::{Produced, Via, Viewed},
    latency::{LatencySummary, new_histogram},
    modes::Verdict,
    report::{display_option, rate_per_sec, round3},
};

#[derive(Debug, Serialize)]
pub(super) struct TokensReport {
    pub(super) mode: &'static str,
    pub(super) url: String,
    pub(super) via: Via,
    pub(super) generations: u64,
    pub(super) tokens_per_generation: u64,
    pub(super) token_bytes: usize,
    /// `None` (null): full speed.
    pub(super) rate_per_generation: Option<u64>,
    pub(super) produce: ProduceStats,
    pub(super) live: ViewStats,
    pub(super) late: ViewStats,
    pub(super) store: Option<StoreCost>,
    pub(super) broker_cpu: Option<BrokerCpu>,
}

impl TokensReport {
    pub(super) fn verdict(&self) -> Verdict {
        let expected = self.generations * self.tokens_per_generation;
        if self.produce.errors == 0
            && self.produce.tokens_accepted == expected
            && self.live.is_clean()
            && self.late.is_clean()
        {
            Verdict::Clean
        } else {
            Verdict::Faults
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct ProduceStats {
    pub(super) tokens_sent: u64,
    pub(super) tokens_accepted: u64,
    pub(super) requests: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
    /// From the first producer starting to the last task completed.
    pub(super) seconds: f64,
    pub(super) tokens_per_sec: Option<f64>,
    /// `--via text`: one request per token.
    pub(super) request_latency: Option<LatencySummary>,
}

impl ProduceStats {
    pub(super) fn of(
        produced: &[Produced],
        seconds: f64,
        request_latency: &Mutex<hdrhistogram::Histogram<u64>>,
    ) -> Self {
        let accepted = produced.iter().map(|p| p.tokens_accepted).sum();
        let errors: Vec<&String> = produced.iter().filter_map(|p| p.error.as_ref()).collect();
        Self {
            tokens_sent: produced.iter().map(|p| p.tokens_sent).sum(),
            tokens_accepted: accepted,
            requests: produced.iter().map(|p| p.requests).sum(),
            errors: errors.len() as u64,
            first_error: errors.first().map(|error| (*error).clone()),
            seconds: round3(seconds),
            tokens_per_sec: rate_per_sec(accepted, seconds),
            request_latency: LatencySummary::of(
                &request_latency
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            ),
        }
    }
}

/// What a group of viewers read.
#[derive(Debug, Serialize)]
pub(super) struct ViewStats {
    pub(super) viewers: u64,
    /// Read the generation's text byte for byte, then `complete`.
    pub(super) exact: u64,
    pub(super) failed: u64,
    pub(super) first_error: Option<String>,
    pub(super) tokens_delivered: u64,
    pub(super) text_events: u64,
    pub(super) tokens_per_text_event: Option<f64>,
    pub(super) frames_per_viewer: Option<f64>,
    /// Live viewers: each token, producer's socket → viewer's parser.
    pub(super) token_latency: Option<LatencySummary>,
    /// Stream request → `complete` parsed (for late viewers, the catch-up).
    pub(super) until_complete: Option<LatencySummary>,
}

impl ViewStats {
    pub(super) fn of(
        viewed: &[Viewed],
        tokens: u64,
        token_latency: Option<&Mutex<hdrhistogram::Histogram<u64>>>,
    ) -> Self {
        let count = viewed.len() as u64;
        let text_events: u64 = viewed.iter().map(|v| v.text_events).sum();
        let frames: u64 = viewed.iter().map(|v| v.frames).sum();
        let delivered: u64 = viewed.iter().map(|v| v.tokens.min(tokens)).sum();
        let mut until_complete = new_histogram().ok();
        for elapsed in viewed.iter().filter_map(|v| v.elapsed) {
            if let Some(histogram) = until_complete.as_mut() {
                histogram.saturating_record(crate::latency::micros(elapsed));
            }
        }
        let errors: Vec<&String> = viewed.iter().filter_map(|v| v.error.as_ref()).collect();
        Self {
            viewers: count,
            exact: viewed.iter().filter(|v| v.exact).count() as u64,
            failed: errors.len() as u64,
            first_error: errors.first().map(|error| (*error).clone()),
            tokens_delivered: delivered,
            text_events,
            tokens_per_text_event: (text_events > 0)
                .then(|| round3(delivered as f64 / text_events as f64)),
            frames_per_viewer: (count > 0).then(|| round3(frames as f64 / count as f64)),
            token_latency: token_latency.and_then(|histogram| {
                LatencySummary::of(&histogram.lock().unwrap_or_else(PoisonError::into_inner))
            }),
            until_complete: until_complete.as_ref().and_then(LatencySummary::of),
        }
    }

    fn is_clean(&self) -> bool {
        self.failed == 0 && self.exact == self.viewers
    }
}

/// What the run's text cost the store, from `/metrics` before and after.
#[derive(Debug, Serialize)]
pub(super) struct StoreCost {
    pub(super) text_events_stored: f64,
    pub(super) deltas_stored: f64,
    pub(super) commits: f64,
    pub(super) tokens_per_text_event: Option<f64>,
    pub(super) tokens_per_commit: Option<f64>,
}

impl StoreCost {
    pub(super) fn of(
        before: Option<[f64; 3]>,
        after: Option<[f64; 3]>,
        tokens: u64,
    ) -> Option<Self> {
        let (before, after) = (before?, after?);
        let [events, deltas, commits] = [0, 1, 2].map(|i| after[i] - before[i]);
        let per = |count: f64| (count > 0.0).then(|| round3(tokens as f64 / count));
        Some(Self {
            text_events_stored: events,
            deltas_stored: deltas,
            commits,
            tokens_per_text_event: per(events),
            tokens_per_commit: per(commits),
        })
    }
}

#[derive(Debug, Serialize)]
pub(super) struct BrokerCpu {
    pub(super) seconds: f64,
    pub(super) micros_per_token: Option<f64>,
}

impl BrokerCpu {
    pub(super) fn of(seconds: f64, tokens: u64) -> Self {
        Self {
            seconds: round3(seconds),
            micros_per_token: (tokens > 0).then(|| round3(seconds * 1e6 / tokens as f64)),
        }
    }
}

impl fmt::Display for TokensReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sse-bench tokens {}: {} generations × {} tokens of {} bytes via {:?}, {}",
            self.url,
            self.generations,
            self.tokens_per_generation,
            self.token_bytes,
            self.via,
            rate_label(self.rate_per_generation.unwrap_or(0)),
        )?;
        let p = &self.produce;
        writeln!(
            f,
            "{:12}{} of {} tokens accepted in {} s: {} tokens/s ({} requests, {} errors)",
            "produce",
            p.tokens_accepted,
            p.tokens_sent,
            p.seconds,
            display_option(p.tokens_per_sec),
            p.requests,
            p.errors
        )?;
        if let Some(latency) = &p.request_latency {
            writeln!(f, "{:12}request {latency}", "")?;
        }
        if let Some(error) = &p.first_error {
            writeln!(f, "{:12}first error: {error}", "")?;
        }
        for (name, stats) in [("live", &self.live), ("late", &self.late)] {
            writeln!(
                f,
                "{name:12}{} of {} viewers exact, {} failed; {} tokens in {} text events \
                 ({} per event), {} frames per viewer",
                stats.exact,
                stats.viewers,
                stats.failed,
                stats.tokens_delivered,
                stats.text_events,
                display_option(stats.tokens_per_text_event),
                display_option(stats.frames_per_viewer)
            )?;
            if let Some(latency) = &stats.token_latency {
                writeln!(f, "{:12}token {latency}", "")?;
            }
            if let Some(latency) = &stats.until_complete {
                writeln!(f, "{:12}until complete {latency}", "")?;
            }
            if let Some(error) = &stats.first_error {
                writeln!(f, "{:12}first error: {error}", "")?;
            }
        }
        if let Some(store) = &self.store {
            writeln!(
                f,
                "{:12}{} text events, {} commits: {} tokens per event, {} per commit",
                "store",
                store.text_events_stored,
                store.commits,
                display_option(store.tokens_per_text_event),
                display_option(store.tokens_per_commit)
            )?;
        }
        if let Some(cpu) = &self.broker_cpu {
            writeln!(
                f,
                "{:12}{} s: {} µs per token",
                "broker cpu",
                cpu.seconds,
                display_option(cpu.micros_per_token)
            )?;
        }
        Ok(())
    }
}
