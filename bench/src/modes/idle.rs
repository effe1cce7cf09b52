//! `idle`: streams that receive nothing but heartbeats.

use std::{fmt, sync::Arc, time::Duration};

use anyhow::Result;
use serde::Serialize;
use tokio::time::{Instant, sleep_until};

use super::{SPARE_FDS, Verdict, ensure_fd_budget};
use crate::{
    cli::IdleArgs,
    cpu::CpuMeter,
    http1::Target,
    latency::unix_micros,
    memory::{BrokerMemory, MemoryProbe},
    report::{ConnectStats, emit, round3},
    streams::{StreamContext, StreamEnd, StreamLog, open_streams, stop_streams},
};

pub async fn run(args: &IdleArgs, target: Arc<Target>, deadline: Instant) -> Result<Verdict> {
    ensure_fd_budget(args.streams + SPARE_FDS);
    let memory = MemoryProbe::new(args.broker_pid)?;
    let context = StreamContext::new(&target, &args.event_type, unix_micros(), 0)?;

    let rss_before = memory.sample()?;
    let broker_cpu = CpuMeter::start(args.broker_pid)?;
    let own_cpu = CpuMeter::start(Some(std::process::id()))?;
    eprintln!(
        "sse-bench: opening {} idle streams on {}",
        args.streams,
        target.url()
    );
    let streams = open_streams(&context, args.streams, args.connect_concurrency, deadline).await?;
    let rss_after_open = memory.sample()?;
    let connect_cpu = ConnectCpu::of(
        broker_cpu.seconds()?,
        own_cpu.seconds()?,
        streams.stats.seconds,
        args.streams,
    );

    let hold_started = Instant::now();
    let hold_until = deadline.min(hold_started + Duration::from_secs(args.hold_secs));
    eprintln!("sse-bench: holding for {} s", args.hold_secs);
    sleep_until(hold_until).await;
    let held = hold_started.elapsed();
    let rss_end = memory.sample()?;
    let logs = stop_streams(streams.tasks, streams.stop).await;

    let lost: Vec<&StreamLog> = logs
        .iter()
        .filter(|log| !matches!(log.end, StreamEnd::Stopped))
        .collect();
    let report = IdleReport {
        mode: "idle",
        url: target.url().to_string(),
        event_type: args.event_type.clone(),
        streams: streams.stats,
        connect_cpu,
        hold_secs: round3(held.as_secs_f64()),
        streams_lost: lost.len() as u64,
        first_loss: lost.first().map(|log| log.end.to_string()),
        heartbeats: logs.iter().map(|log| log.heartbeats).sum(),
        broker_memory: BrokerMemory::new(
            args.broker_pid,
            args.streams,
            rss_before,
            rss_after_open,
            rss_end,
        ),
    };
    emit(&report, args.common.json)?;
    Ok(if report.streams_lost == 0 {
        Verdict::Clean
    } else {
        Verdict::Faults
    })
}

#[derive(Debug, Serialize)]
pub struct IdleReport {
    mode: &'static str,
    url: String,
    event_type: String,
    streams: ConnectStats,
    /// The broker's and the bench's CPU while the streams connected.
    connect_cpu: Option<ConnectCpu>,
    hold_secs: f64,
    /// Streams that ended before the bench stopped them.
    streams_lost: u64,
    first_loss: Option<String>,
    heartbeats: u64,
    broker_memory: Option<BrokerMemory>,
}

impl fmt::Display for IdleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sse-bench idle {}: type {}", self.url, self.event_type)?;
        writeln!(f, "{:12}{}", "streams", self.streams)?;
        if let Some(cpu) = &self.connect_cpu {
            writeln!(f, "{:12}{cpu}", "connect cpu")?;
        }
        writeln!(
            f,
            "{:12}{} s: {} streams lost, {} heartbeats received",
            "held", self.hold_secs, self.streams_lost, self.heartbeats
        )?;
        if let Some(loss) = &self.first_loss {
            writeln!(f, "{:12}first loss: {loss}", "")?;
        }
        if let Some(memory) = &self.broker_memory {
            writeln!(f, "{:12}{memory}", "broker rss")?;
        }
        Ok(())
    }
}

/// Who was busy while the streams connected: a broker below one core's
/// worth of CPU over the phase was waiting for the bench, so the connect
/// rate measured the bench, and `broker_connects_per_core_second` is what
/// the broker's own cost per connect allows.
#[derive(Debug, Serialize)]
pub struct ConnectCpu {
    broker_seconds: f64,
    bench_seconds: f64,
    /// The phase's wall time.
    wall_seconds: f64,
    broker_micros_per_connect: f64,
    broker_connects_per_core_second: f64,
}

impl ConnectCpu {
    /// `None` without `--broker-pid`, or when nothing connected.
    fn of(broker: Option<f64>, bench: Option<f64>, wall: f64, streams: u64) -> Option<Self> {
        let broker = broker?;
        if streams == 0 || broker <= 0.0 {
            return None;
        }
        Some(Self {
            broker_seconds: round3(broker),
            bench_seconds: round3(bench.unwrap_or(0.0)),
            wall_seconds: round3(wall),
            broker_micros_per_connect: round3(broker * 1e6 / streams as f64),
            broker_connects_per_core_second: round3(streams as f64 / broker),
        })
    }
}

impl fmt::Display for ConnectCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "broker {} s, bench {} s over {} s: {} µs of broker CPU per connect \
             ({} connects per broker core-second)",
            self.broker_seconds,
            self.bench_seconds,
            self.wall_seconds,
            self.broker_micros_per_connect,
            self.broker_connects_per_core_second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_cost_per_connect_is_its_cpu_over_the_streams() {
        let cpu = ConnectCpu::of(Some(0.5), Some(1.0), 1.0, 10_000).unwrap();
        assert_eq!(cpu.broker_micros_per_connect, 50.0);
        assert_eq!(cpu.broker_connects_per_core_second, 20_000.0);
        assert!(ConnectCpu::of(None, Some(1.0), 1.0, 10).is_none());
        assert!(ConnectCpu::of(Some(0.5), None, 1.0, 0).is_none());
    }
}
