//! `saturate`: the saturated publish path. A fan-out run ([`super::fanout`])
//! with every publisher unpaced, one stored event per request, bounded by
//! time: what the broker sustains when publishers only wait for its
//! acknowledgement, and what each publish and delivery costs it.

use std::{fmt, sync::Arc, time::Duration};

use anyhow::Result;
use serde::Serialize;
use tokio::time::Instant;

use super::{
    Verdict,
    fanout::{FanoutMeasure, FanoutPlan, measure},
};
use crate::{
    cli::{PayloadArgs, SaturateArgs},
    http1::Target,
    report::{display_option, emit},
};

/// Ceiling on a time-bound run's publish rate, far above what a store
/// commits on loopback: it only sizes each stream's record of seqs.
const EVENTS_PER_SEC_CEILING: u64 = 50_000;

pub async fn run(args: &SaturateArgs, target: Arc<Target>, deadline: Instant) -> Result<Verdict> {
    let payload = PayloadArgs {
        event_type: args.event_type.clone(),
        payload_bytes: args.payload_bytes,
        batch: 1,
        live_only: false,
    };
    let (events, publish_for) = match args.events {
        Some(events) => (events, None),
        None => (
            args.secs * EVENTS_PER_SEC_CEILING,
            Some(Duration::from_secs(args.secs)),
        ),
    };
    let plan = FanoutPlan {
        payload: &payload,
        streams: args.streams,
        publishers: args.publishers,
        events,
        rate: None,
        publish_for,
        drain_secs: args.drain_secs,
        connect_concurrency: args.connect_concurrency,
        broker_pid: args.broker_pid,
        publish_target: Arc::clone(&target),
    };
    let measured = measure(&plan, &target, deadline).await?;
    let report = SaturateReport {
        mode: "saturate",
        url: target.url().to_string(),
        event_type: args.event_type.clone(),
        payload_bytes: args.payload_bytes,
        publishers: args.publishers,
        secs: publish_for.map(|_| args.secs),
        events: args.events,
        measured,
    };
    emit(&report, args.common.json)?;
    Ok(report.measured.verdict())
}

#[derive(Debug, Serialize)]
pub struct SaturateReport {
    mode: &'static str,
    url: String,
    event_type: String,
    payload_bytes: usize,
    publishers: u64,
    /// Publishing for this long (`null`: bounded by `events`).
    secs: Option<u64>,
    /// Publishing exactly this many (`null`: bounded by `secs`).
    events: Option<u64>,
    #[serde(flatten)]
    measured: FanoutMeasure,
}

impl fmt::Display for SaturateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let measured = &self.measured;
        writeln!(
            f,
            "sse-bench saturate {}: {} streams, {} unpaced publishers of one stored event \
             per request, {}; type {}, {}-byte pad",
            self.url,
            measured.streams.streams,
            self.publishers,
            match (self.secs, self.events) {
                (Some(secs), _) => format!("for {secs} s"),
                (None, events) => format!("{} events", display_option(events)),
            },
            self.event_type,
            self.payload_bytes
        )?;
        writeln!(f, "{:12}{}", "streams", measured.streams)?;
        writeln!(
            f,
            "{:12}{} stored publishes/s acknowledged",
            "throughput",
            display_option(measured.publish.events_per_sec()),
        )?;
        writeln!(
            f,
            "{:12}{} deliveries/s",
            "",
            display_option(measured.delivery.deliveries_per_sec())
        )?;
        write!(f, "{:12}{}", "publish", measured.publish)?;
        if let Some(latency) = &measured.latency {
            writeln!(
                f,
                "{:12}publish → deliver p50 {} ms, p90 {} ms, p99 {} ms, max {} ms ({} deliveries)",
                "latency",
                latency.p50_ms,
                latency.p90_ms,
                latency.p99_ms,
                latency.max_ms,
                latency.samples
            )?;
        }
        write!(f, "{:12}{}", "delivery", measured.delivery)?;
        if let Some(cpu) = &measured.broker_cpu {
            writeln!(f, "{:12}{cpu}", "broker cpu")?;
        }
        if let Some(memory) = &measured.broker_memory {
            writeln!(f, "{:12}{memory}", "broker rss")?;
        }
        Ok(())
    }
}
