//! `fanout`: streams that all receive every published event.

use std::{
    fmt,
    sync::{Arc, PoisonError, atomic::Ordering},
    time::Duration,
};

use anyhow::Result;
use serde::Serialize;
use tokio::time::{Instant, sleep};

use super::{SPARE_FDS, Verdict, ensure_fd_budget};
use crate::{
    cli::FanoutArgs,
    http1::Target,
    latency::{LatencySummary, unix_micros},
    memory::{BrokerMemory, MemoryProbe},
    publishers::{PublishJob, publish_all},
    report::{ConnectStats, DeliveryStats, PublishStats, display_option, emit},
    streams::{StreamContext, open_streams, stop_streams},
};

/// How often the drain phase checks whether every delivery has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(20);

pub async fn run(args: &FanoutArgs, target: Arc<Target>, deadline: Instant) -> Result<Verdict> {
    ensure_fd_budget(args.streams + args.publishers + SPARE_FDS);
    let memory = MemoryProbe::new(args.broker_pid)?;
    let run_id = unix_micros();
    let context = StreamContext::new(&target, &args.payload.event_type, run_id, args.events)?;

    let rss_before = memory.sample()?;
    eprintln!(
        "sse-bench: opening {} streams on {}",
        args.streams,
        target.url()
    );
    let streams = open_streams(&context, args.streams, args.connect_concurrency, deadline).await?;
    let rss_after_open = memory.sample()?;

    let rate = (args.rate > 0).then_some(args.rate);
    eprintln!(
        "sse-bench: publishing {} events ({}) over {} connections",
        args.events,
        rate.map_or("unpaced".to_owned(), |rate| format!("{rate}/s")),
        args.publishers
    );
    let publish_target = match &args.publish_url {
        Some(url) => Arc::new(Target::resolve(url, args.common.token.as_deref()).await?),
        None => Arc::clone(&target),
    };
    let job = PublishJob::new(&publish_target, &args.payload, run_id, args.events, rate);
    let publish = publish_all(job, args.publishers, deadline).await?;

    let expected_unique = publish.events_acked * args.streams;
    let drain_until = deadline.min(Instant::now() + Duration::from_secs(args.drain_secs));
    while context.unique_deliveries.load(Ordering::Relaxed) < expected_unique
        && Instant::now() < drain_until
    {
        sleep(DRAIN_POLL).await;
    }
    let rss_end = memory.sample()?;
    let logs = stop_streams(streams.tasks, streams.stop).await;
    let latency = context
        .latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();

    let delivery = DeliveryStats::tally(&logs, &publish);
    let report = FanoutReport {
        mode: "fanout",
        url: target.url().to_string(),
        event_type: args.payload.event_type.clone(),
        payload_bytes: args.payload.payload_bytes,
        batch: args.payload.batch,
        publishers: args.publishers,
        rate_per_sec: rate,
        live_only: args.payload.live_only,
        streams: streams.stats,
        publish: PublishStats::from_outcome(&publish),
        delivery,
        latency: LatencySummary::of(&latency),
        broker_memory: BrokerMemory::new(
            args.broker_pid,
            args.streams,
            rss_before,
            rss_after_open,
            rss_end,
        ),
    };
    emit(&report, args.common.json)?;
    Ok(report.verdict())
}

#[derive(Debug, Serialize)]
pub struct FanoutReport {
    mode: &'static str,
    url: String,
    event_type: String,
    payload_bytes: usize,
    batch: u64,
    publishers: u64,
    /// `None` (null): unpaced.
    rate_per_sec: Option<u64>,
    live_only: bool,
    streams: ConnectStats,
    publish: PublishStats,
    delivery: DeliveryStats,
    /// Over every delivery of every stream.
    latency: Option<LatencySummary>,
    broker_memory: Option<BrokerMemory>,
}

impl FanoutReport {
    fn verdict(&self) -> Verdict {
        if self.publish.is_clean() && self.delivery.is_clean() {
            Verdict::Clean
        } else {
            Verdict::Faults
        }
    }
}

impl fmt::Display for FanoutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sse-bench fanout {}: type {}, {}-byte pad, batch {}, {} publishers, rate {}{}",
            self.url,
            self.event_type,
            self.payload_bytes,
            self.batch,
            self.publishers,
            self.rate_per_sec
                .map_or("unpaced".to_owned(), |rate| format!("{rate}/s")),
            if self.live_only { ", live only" } else { "" }
        )?;
        writeln!(f, "{:12}{}", "streams", self.streams)?;
        write!(f, "{:12}{}", "publish", self.publish)?;
        write!(f, "{:12}{}", "delivery", self.delivery)?;
        writeln!(
            f,
            "{:12}{}",
            "latency",
            display_option(self.latency.as_ref())
        )?;
        if let Some(memory) = &self.broker_memory {
            writeln!(f, "{:12}{memory}", "broker rss")?;
        }
        Ok(())
    }
}
