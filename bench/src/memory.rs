//! The broker's resident memory, read from `/proc` (`--broker-pid`).

use std::{fmt, time::Duration};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::{sync::watch, task::JoinHandle, time::interval};

use crate::figures::round3;

/// Samples the broker's resident memory, when `--broker-pid` was given.
#[derive(Debug, Clone, Copy)]
pub struct MemoryProbe {
    pid: Option<u32>,
}

impl MemoryProbe {
    /// Fails early when the pid's status cannot be read, rather than after
    /// the streams are open.
    pub fn new(pid: Option<u32>) -> Result<Self> {
        let probe = Self { pid };
        probe.sample()?;
        Ok(probe)
    }

    /// `VmRSS` of the broker in KiB, or `None` without `--broker-pid`.
    pub fn sample(&self) -> Result<Option<u64>> {
        let Some(pid) = self.pid else {
            return Ok(None);
        };
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {path} (is --broker-pid the broker's pid?)"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .map(Some)
            .with_context(|| format!("{path} has no VmRSS line"))
    }
}

/// The highest RSS seen by a task sampling it until [`PeakWatch::finish`]:
/// a short peak (a storm) falls between the samples of a run's phases.
pub struct PeakWatch {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<Option<u64>>>,
}

impl PeakWatch {
    pub fn start(probe: MemoryProbe, period: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut peak = probe.sample()?;
            let mut ticks = interval(period);
            loop {
                tokio::select! {
                    biased;
                    _ = stopped.wait_for(|stop| *stop) => break,
                    _ = ticks.tick() => peak = peak.max(probe.sample()?),
                }
            }
            Ok(peak.max(probe.sample()?))
        });
        Self { stop, task }
    }

    /// The peak in KiB, or `None` without `--broker-pid`.
    pub async fn finish(self) -> Result<Option<u64>> {
        self.stop.send_replace(true);
        self.task.await.context("the RSS sampling task failed")?
    }
}

/// The broker's resident memory over the run, in KiB.
#[derive(Debug, Serialize)]
pub struct BrokerMemory {
    pid: u32,
    before_kib: u64,
    after_open_kib: u64,
    end_kib: u64,
    /// (after_open − before) / streams.
    per_stream_kib: f64,
}

impl BrokerMemory {
    pub fn new(
        pid: Option<u32>,
        streams: u64,
        before: Option<u64>,
        after_open: Option<u64>,
        end: Option<u64>,
    ) -> Option<Self> {
        let (pid, before_kib, after_open_kib, end_kib) = (pid?, before?, after_open?, end?);
        let growth = after_open_kib as f64 - before_kib as f64;
        Some(Self {
            pid,
            before_kib,
            after_open_kib,
            end_kib,
            per_stream_kib: round3(growth / streams as f64),
        })
    }
}

impl fmt::Display for BrokerMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |kib: u64| round3(kib as f64 / 1024.0);
        write!(
            f,
            "pid {}: before {} MiB, after open {} MiB, end {} MiB; {} KiB per stream",
            self.pid,
            mib(self.before_kib),
            mib(self.after_open_kib),
            mib(self.end_kib),
            self.per_stream_kib
        )
    }
}
