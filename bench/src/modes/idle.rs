//! `idle`: streams that receive nothing but heartbeats.

use std::{fmt, sync::Arc, time::Duration};

use anyhow::Result;
use serde::Serialize;
use tokio::time::{Instant, sleep_until};

use super::{SPARE_FDS, Verdict, ensure_fd_budget};
use crate::{
    cli::IdleArgs,
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
    eprintln!(
        "sse-bench: opening {} idle streams on {}",
        args.streams,
        target.url()
    );
    let streams = open_streams(&context, args.streams, args.connect_concurrency, deadline).await?;
    let rss_after_open = memory.sample()?;

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
