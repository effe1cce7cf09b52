//! `fanout`: streams that all receive every published event. The run itself
//! ([`measure`]) is shared with `saturate`, which is the same run unpaced
//! and bounded by time.

use std::{
    fmt,
    sync::{Arc, PoisonError},
    time::Duration,
};

use anyhow::Result;
use serde::Serialize;
use tokio::time::Instant;

use super::{SPARE_FDS, Verdict, ensure_fd_budget};
use crate::{
    cli::{FanoutArgs, PayloadArgs},
    cpu::{BrokerCpu, CpuMeter},
    http1::Target,
    latency::{LatencySummary, unix_micros},
    memory::{BrokerMemory, MemoryProbe},
    publishers::{PublishJob, publish_all},
    report::{ConnectStats, DeliveryStats, PublishStats, display_option, emit},
    streams::{StreamContext, open_streams, stop_streams},
};

pub async fn run(args: &FanoutArgs, target: Arc<Target>, deadline: Instant) -> Result<Verdict> {
    let publish_target = match &args.publish_url {
        Some(url) => Arc::new(Target::resolve(url, args.common.token.as_deref()).await?),
        None => Arc::clone(&target),
    };
    let rate = (args.rate > 0).then_some(args.rate);
    let plan = FanoutPlan {
        payload: &args.payload,
        streams: args.streams,
        publishers: args.publishers,
        events: args.events,
        rate,
        publish_for: None,
        drain_secs: args.drain_secs,
        connect_concurrency: args.connect_concurrency,
        broker_pid: args.broker_pid,
        publish_target,
    };
    let measured = measure(&plan, &target, deadline).await?;
    let report = FanoutReport {
        mode: "fanout",
        url: target.url().to_string(),
        event_type: args.payload.event_type.clone(),
        payload_bytes: args.payload.payload_bytes,
        batch: args.payload.batch,
        publishers: args.publishers,
        rate_per_sec: rate,
        live_only: args.payload.live_only,
        measured,
    };
    emit(&report, args.common.json)?;
    Ok(report.measured.verdict())
}

/// What a fan-out run does; `fanout` and `saturate` fill it from their flags.
pub struct FanoutPlan<'a> {
    pub payload: &'a PayloadArgs,
    pub streams: u64,
    pub publishers: u64,
    /// Seqs `0..events`; all are published unless `publish_for` runs out first.
    pub events: u64,
    /// Events per second; `None` publishes as fast as acknowledged.
    pub rate: Option<u64>,
    pub publish_for: Option<Duration>,
    pub drain_secs: u64,
    pub connect_concurrency: u64,
    pub broker_pid: Option<u32>,
    pub publish_target: Arc<Target>,
}

/// What a fan-out run measured.
#[derive(Debug, Serialize)]
pub struct FanoutMeasure {
    pub streams: ConnectStats,
    pub publish: PublishStats,
    pub delivery: DeliveryStats,
    /// Publish → deliver, over every delivery of every stream.
    pub latency: Option<LatencySummary>,
    pub broker_memory: Option<BrokerMemory>,
    /// Over the publish and drain phase.
    pub broker_cpu: Option<BrokerCpu>,
}

impl FanoutMeasure {
    pub fn verdict(&self) -> Verdict {
        if self.publish.is_clean() && self.delivery.is_clean() {
            Verdict::Clean
        } else {
            Verdict::Faults
        }
    }
}

/// Opens the streams, publishes, waits for the deliveries in flight, and
/// checks every stream's deliveries against the acknowledged publishes.
pub async fn measure(
    plan: &FanoutPlan<'_>,
    target: &Arc<Target>,
    deadline: Instant,
) -> Result<FanoutMeasure> {
    ensure_fd_budget(plan.streams + plan.publishers + SPARE_FDS);
    let memory = MemoryProbe::new(plan.broker_pid)?;
    let run_id = unix_micros();
    let context = StreamContext::new(target, &plan.payload.event_type, run_id, plan.events)?;

    let rss_before = memory.sample()?;
    eprintln!(
        "sse-bench: opening {} streams on {}",
        plan.streams,
        target.url()
    );
    let streams = open_streams(&context, plan.streams, plan.connect_concurrency, deadline).await?;
    let rss_after_open = memory.sample()?;

    eprintln!(
        "sse-bench: publishing {} over {} connections",
        match plan.publish_for {
            Some(duration) => format!("for {} s", duration.as_secs_f64()),
            None => format!("{} events", plan.events),
        },
        plan.publishers
    );
    let cpu = CpuMeter::start(plan.broker_pid)?;
    let stop_at = plan.publish_for.map(|duration| Instant::now() + duration);
    let job = PublishJob::with_seqs(
        &plan.publish_target,
        plan.payload,
        run_id,
        0..plan.events,
        plan.rate,
        stop_at,
    );
    let publish = publish_all(job, plan.publishers, deadline).await?;

    let expected_unique = publish.events_acked * plan.streams;
    let drain_until = deadline.min(Instant::now() + Duration::from_secs(plan.drain_secs));
    context
        .wait_for_deliveries(expected_unique, drain_until)
        .await;
    let cpu_seconds = cpu.seconds()?;
    let rss_end = memory.sample()?;
    let logs = stop_streams(streams.tasks, streams.stop).await;
    let latency = context
        .latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();

    let delivery = DeliveryStats::tally(&logs, &publish);
    Ok(FanoutMeasure {
        broker_cpu: BrokerCpu::of(cpu_seconds, delivery.received(), publish.events_acked),
        streams: streams.stats,
        publish: PublishStats::from_outcome(&publish),
        delivery,
        latency: LatencySummary::of(&latency),
        broker_memory: BrokerMemory::new(
            plan.broker_pid,
            plan.streams,
            rss_before,
            rss_after_open,
            rss_end,
        ),
    })
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
    #[serde(flatten)]
    measured: FanoutMeasure,
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
        let measured = &self.measured;
        writeln!(f, "{:12}{}", "streams", measured.streams)?;
        write!(f, "{:12}{}", "publish", measured.publish)?;
        write!(f, "{:12}{}", "delivery", measured.delivery)?;
        writeln!(
            f,
            "{:12}{}",
            "latency",
            display_option(measured.latency.as_ref())
        )?;
        if let Some(memory) = &measured.broker_memory {
            writeln!(f, "{:12}{memory}", "broker rss")?;
        }
        if let Some(cpu) = &measured.broker_cpu {
            writeln!(f, "{:12}{cpu}", "broker cpu")?;
        }
        Ok(())
    }
}
