//! What a soak reports, as text or JSON.

use std::fmt;

use serde::Serialize;

use super::samples::{FdSummary, RssSummary, Sample};
use crate::{
    cpu::BrokerCpu,
    modes::Verdict,
    report::{ConnectStats, DeliveryStats, PublishStats, ResumeStats, display_option, round3},
};

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub mode: &'static str,
    pub url: String,
    pub event_type: String,
    pub payload_bytes: usize,
    pub batch: u64,
    pub publishers: u64,
    /// The first opening of every stream.
    pub streams: ConnectStats,
    pub churn_per_sec: u64,
    pub rate_per_sec: u64,
    pub secs: u64,
    pub sample_secs: u64,
    pub settle_secs: u64,
    /// `None` (null) without `--broker-pid`.
    pub rss: Option<RssSummary>,
    pub fds: Option<FdSummary>,
    /// From the first publish to the end of the drain.
    pub broker_cpu: Option<BrokerCpu>,
    pub publish: PublishStats,
    /// Every stream against every acknowledged event, across its connections.
    pub delivery: DeliveryStats,
    pub resume: ResumeStats,
    pub samples: Vec<Sample>,
}

impl SoakReport {
    pub fn verdict(&self) -> Verdict {
        if self.publish.is_clean() && self.delivery.is_clean() && self.resume.is_clean() {
            Verdict::Clean
        } else {
            Verdict::Faults
        }
    }
}

fn mib(kib: u64) -> f64 {
    round3(kib as f64 / 1024.0)
}

fn mib_or_na(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".to_owned(), |kib| format!("{} MiB", mib(kib)))
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sse-bench soak {}: {} streams, {} resumed per second, {} events/s for {} s; \
             type {}, {}-byte pad, batch {}, {} publishers",
            self.url,
            self.streams.streams,
            self.churn_per_sec,
            self.rate_per_sec,
            self.secs,
            self.event_type,
            self.payload_bytes,
            self.batch,
            self.publishers
        )?;
        writeln!(f, "{:12}{}", "streams", self.streams)?;
        if let Some(rss) = &self.rss {
            writeln!(
                f,
                "{:12}start {} MiB, after 1 min {}, max {} MiB, end of run {}, after close {}",
                "broker rss",
                mib(rss.start_kib),
                mib_or_na(rss.after_first_minute_kib),
                mib(rss.max_kib),
                mib_or_na(rss.end_kib),
                mib_or_na(rss.after_close_kib)
            )?;
            writeln!(
                f,
                "{:12}trend over the run's second half: {} MiB per 10 min",
                "",
                display_option(rss.slope_mib_per_10_min)
            )?;
        }
        if let Some(fds) = &self.fds {
            writeln!(
                f,
                "{:12}start {}, max {}, end of run {}, after close {}",
                "broker fds",
                fds.start,
                fds.max,
                display_option(fds.end),
                display_option(fds.after_close)
            )?;
        }
        if let Some(cpu) = &self.broker_cpu {
            writeln!(f, "{:12}{cpu}", "broker cpu")?;
        }
        write!(f, "{:12}{}", "publish", self.publish)?;
        write!(f, "{:12}{}", "delivery", self.delivery)?;
        write!(f, "{:12}{}", "resume", self.resume)
    }
}
