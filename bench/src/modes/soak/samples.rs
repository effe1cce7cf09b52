//! The soak's samples of the broker (RSS, open fds) and of the run
//! (streams open, events published, deliveries), and what they add up to.

use std::{fmt, sync::atomic::Ordering};

use anyhow::Result;
use serde::Serialize;

use crate::{
    fds::open_fds, memory::MemoryProbe, publishers::PublishJob, report::round3,
    streams::StreamContext, trend::slope,
};

/// RSS growth is reported per this many seconds (10 minutes).
const SLOPE_PER_SECS: f64 = 600.0;
/// "After the first minute".
const FIRST_MINUTE_SECS: f64 = 60.0;

/// Where in the run a sample was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before any stream opened.
    Before,
    /// While publishing and churning.
    Run,
    /// After the drain, every stream still open.
    End,
    /// `--settle-secs` after every stream closed.
    Closed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub phase: Phase,
    /// Since publishing and churning began (0 before that).
    pub elapsed_secs: f64,
    pub rss_kib: Option<u64>,
    pub fds: Option<u64>,
    pub streams_open: u64,
    pub events_published: u64,
    pub deliveries: u64,
}

/// Takes samples of the broker and of the run.
pub struct Sampler {
    pub memory: MemoryProbe,
    pub pid: Option<u32>,
}

impl Sampler {
    pub fn take(
        &self,
        phase: Phase,
        elapsed_secs: f64,
        context: &StreamContext,
        job: Option<&PublishJob>,
    ) -> Result<Sample> {
        Ok(Sample {
            phase,
            elapsed_secs: round3(elapsed_secs),
            rss_kib: self.memory.sample()?,
            fds: open_fds(self.pid)?,
            streams_open: context.connected_now.load(Ordering::Relaxed),
            events_published: job.map_or(0, PublishJob::acked_so_far),
            deliveries: context.unique_deliveries.load(Ordering::Relaxed),
        })
    }
}

/// The header of the sample lines.
pub const SAMPLE_HEADER: &str =
    "phase    elapsed s    rss MiB     fds  streams open  events published  deliveries";

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase {
            Phase::Before => "before",
            Phase::Run => "run",
            Phase::End => "end",
            Phase::Closed => "closed",
        };
        let rss = self.rss_kib.map_or("n/a".to_owned(), |kib| {
            format!("{:.1}", kib as f64 / 1024.0)
        });
        let fds = self.fds.map_or("n/a".to_owned(), |fds| fds.to_string());
        write!(
            f,
            "{phase:8}{:>10.1}{rss:>11}{fds:>8}{:>14}{:>18}{:>12}",
            self.elapsed_secs, self.streams_open, self.events_published, self.deliveries
        )
    }
}

/// The broker's RSS over the soak, in KiB, and its trend.
#[derive(Debug, Serialize, PartialEq)]
pub struct RssSummary {
    pub start_kib: u64,
    /// The first sample at least a minute into the run.
    pub after_first_minute_kib: Option<u64>,
    pub max_kib: u64,
    /// After the drain, streams still open.
    pub end_kib: Option<u64>,
    pub after_close_kib: Option<u64>,
    /// Least-squares slope over the samples of the run's second half.
    pub slope_mib_per_10_min: Option<f64>,
}

/// The broker's open fds over the soak.
#[derive(Debug, Serialize, PartialEq)]
pub struct FdSummary {
    pub start: u64,
    pub max: u64,
    pub end: Option<u64>,
    pub after_close: Option<u64>,
}

fn in_phase<T>(
    samples: &[Sample],
    phase: Phase,
    value: impl Fn(&Sample) -> Option<T>,
) -> Option<T> {
    samples
        .iter()
        .find(|sample| sample.phase == phase)
        .and_then(value)
}

impl RssSummary {
    /// `None` without `--broker-pid`; `run_secs` is how long the run
    /// published and churned.
    pub fn of(samples: &[Sample], run_secs: f64) -> Option<Self> {
        let second_half: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.phase == Phase::Run && s.elapsed_secs >= run_secs / 2.0)
            .filter_map(|s| Some((s.elapsed_secs, s.rss_kib? as f64 / 1024.0)))
            .collect();
        Some(Self {
            start_kib: in_phase(samples, Phase::Before, |s| s.rss_kib)?,
            after_first_minute_kib: samples
                .iter()
                .find(|s| s.phase == Phase::Run && s.elapsed_secs >= FIRST_MINUTE_SECS)
                .and_then(|s| s.rss_kib),
            max_kib: samples.iter().filter_map(|s| s.rss_kib).max()?,
            end_kib: in_phase(samples, Phase::End, |s| s.rss_kib),
            after_close_kib: in_phase(samples, Phase::Closed, |s| s.rss_kib),
            slope_mib_per_10_min: slope(&second_half)
                .map(|per_sec| round3(per_sec * SLOPE_PER_SECS)),
        })
    }
}

impl FdSummary {
    pub fn of(samples: &[Sample]) -> Option<Self> {
        Some(Self {
            start: in_phase(samples, Phase::Before, |s| s.fds)?,
            max: samples.iter().filter_map(|s| s.fds).max()?,
            end: in_phase(samples, Phase::End, |s| s.fds),
            after_close: in_phase(samples, Phase::Closed, |s| s.fds),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(phase: Phase, elapsed_secs: f64, rss_mib: u64, fds: u64) -> Sample {
        Sample {
            phase,
            elapsed_secs,
            rss_kib: Some(rss_mib * 1024),
            fds: Some(fds),
            streams_open: 0,
            events_published: 0,
            deliveries: 0,
        }
    }

    #[test]
    fn the_summary_reads_each_phase_and_the_second_half_trend() {
        let mut samples = vec![sample(Phase::Before, 0.0, 10, 20)];
        // 240 s run, a sample every 30 s: flat at 50 MiB for the first
        // half, then growing by 1 MiB per 30 s (20 MiB per 10 min).
        for k in 0..=8 {
            let elapsed = 30.0 * k as f64;
            let rss = if k <= 4 { 50 } else { 50 + (k - 4) };
            samples.push(sample(Phase::Run, elapsed, rss, 100 + k));
        }
        samples.push(sample(Phase::End, 250.0, 55, 110));
        samples.push(sample(Phase::Closed, 260.0, 30, 21));

        let rss = RssSummary::of(&samples, 240.0).unwrap();
        assert_eq!(rss.start_kib, 10 * 1024);
        assert_eq!(rss.after_first_minute_kib, Some(50 * 1024));
        assert_eq!(rss.max_kib, 55 * 1024);
        assert_eq!(rss.end_kib, Some(55 * 1024));
        assert_eq!(rss.after_close_kib, Some(30 * 1024));
        // Second half: x = 120..240, rss 50, 51, 52, 53, 54: 1 MiB per 30 s.
        assert_eq!(rss.slope_mib_per_10_min, Some(20.0));

        let fds = FdSummary::of(&samples).unwrap();
        assert_eq!(
            fds,
            FdSummary {
                start: 20,
                max: 110,
                end: Some(110),
                after_close: Some(21)
            }
        );
    }

    #[test]
    fn a_run_shorter_than_a_minute_has_no_first_minute_figure() {
        let samples = [
            sample(Phase::Before, 0.0, 10, 5),
            sample(Phase::Run, 0.0, 12, 6),
            sample(Phase::Run, 30.0, 12, 6),
        ];
        let rss = RssSummary::of(&samples, 30.0).unwrap();
        assert_eq!(rss.after_first_minute_kib, None);
        // One second-half sample: no trend.
        assert_eq!(rss.slope_mib_per_10_min, None);
    }
}
