//! The broker's CPU time, read from `/proc/PID/stat` (`--broker-pid`), and
//! the report part that divides it by what it bought.

use std::fmt;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::figures::round3;

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`), 100 on every
/// Linux architecture the bench runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds the broker has used, every thread together;
/// `None` without `--broker-pid`.
pub fn cpu_seconds(pid: Option<u32>) -> Result<Option<f64>> {
    let Some(pid) = pid else {
        return Ok(None);
    };
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (is --broker-pid the broker's pid?)"))?;
    parse_stat(&stat)
        .map(Some)
        .with_context(|| format!("{path} has no utime and stime"))
}

/// The broker's CPU time over one phase of a run.
pub struct CpuMeter {
    pid: Option<u32>,
    start: Option<f64>,
}

impl CpuMeter {
    /// Starts the phase; without `--broker-pid` it measures nothing.
    pub fn start(pid: Option<u32>) -> Result<Self> {
        Ok(Self {
            pid,
            start: cpu_seconds(pid)?,
        })
    }

    /// CPU seconds the broker used since [`Self::start`].
    pub fn seconds(&self) -> Result<Option<f64>> {
        Ok(cpu_seconds(self.pid)?
            .zip(self.start)
            .map(|(now, start)| now - start))
    }
}

/// The broker's CPU time over a phase, per unit of the work it did.
#[derive(Debug, Serialize)]
pub struct BrokerCpu {
    pub seconds: f64,
    pub micros_per_delivery: Option<f64>,
    pub micros_per_publish: Option<f64>,
}

impl BrokerCpu {
    /// `None` without `--broker-pid`.
    pub fn of(seconds: Option<f64>, deliveries: u64, publishes: u64) -> Option<Self> {
        let seconds = seconds?;
        let per = |count: u64| (count > 0).then(|| round3(seconds * 1e6 / count as f64));
        Some(Self {
            seconds: round3(seconds),
            micros_per_delivery: per(deliveries),
            micros_per_publish: per(publishes),
        })
    }
}

impl fmt::Display for BrokerCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} s user+system", self.seconds)?;
        if let Some(micros) = self.micros_per_delivery {
            write!(f, ", {micros} µs per delivery")?;
        }
        if let Some(micros) = self.micros_per_publish {
            write!(f, ", {micros} µs per publish")?;
        }
        Ok(())
    }
}

/// utime and stime are fields 14 and 15; the command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after its `)`.
fn parse_stat(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_past_a_name_with_spaces() {
        let stat = "4242 (sse broker) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 25 0 0 20 0 3 0";
        assert_eq!(parse_stat(stat), Some(1.75));
    }

    #[test]
    fn cpu_is_divided_by_what_it_bought() {
        let cpu = BrokerCpu::of(Some(0.5), 250_000, 0).unwrap();
        assert_eq!(cpu.micros_per_delivery, Some(2.0));
        assert_eq!(cpu.micros_per_publish, None);
        assert!(BrokerCpu::of(None, 1, 1).is_none());
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        let seconds = cpu_seconds(Some(std::process::id())).unwrap().unwrap();
        assert!(seconds >= 0.0);
        assert_eq!(cpu_seconds(None).unwrap(), None);
    }
}
