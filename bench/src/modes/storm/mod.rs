//! `storm`: a reconnect storm. `--streams` streams open and each receives
//! one seed event, so that it has an id to resume from; then every stream
//! closes, `--events` events are stored with no stream open, and every
//! stream reconnects at once with `Last-Event-ID` = the last id it saw. The
//! run measures how long the streams take to replay what they missed,
//! checks that each got every missed event exactly once and in id order,
//! and probes `GET /health` meanwhile to see whether the broker still
//! answers plain requests.

mod report;

use std::{sync::Arc, time::Duration};

use anyhow::{Result, bail};
use tokio::time::{Instant, sleep};

use self::report::{BrokerDuringStorm, CatchUpStats, ReopenStats, SeedStats, StormReport};
use super::{SPARE_FDS, Verdict, ensure_fd_budget};
use crate::{
    cli::StormArgs,
    cpu::{BrokerCpu, CpuMeter},
    health_probe::HealthProbe,
    http1::Target,
    latency::unix_micros,
    memory::{MemoryProbe, PeakWatch},
    publishers::{PublishJob, publish_all},
    report::{DeliveryStats, PublishStats, ResumeStats, emit},
    streams::{StreamContext, open_streams, spawn_streams, stop_streams},
};

/// Events published while the streams are open, before the storm: each
/// stream's last id comes from them.
const SEED_EVENTS: u64 = 1;
/// After every stream caught up, how long to keep reading for a late
/// duplicate (nothing else is published by then).
const DUPLICATE_GRACE: Duration = Duration::from_millis(500);
/// Period of the broker's RSS samples during the storm.
const RSS_PERIOD: Duration = Duration::from_millis(20);

pub async fn run(args: &StormArgs, target: Arc<Target>, deadline: Instant) -> Result<Verdict> {
    if args.payload.live_only {
        bail!("a storm replays stored events; --live-only events are never stored");
    }
    // The health probe's connection and the publishers' come on top.
    ensure_fd_budget(args.streams + args.publishers + 1 + SPARE_FDS);
    let memory = MemoryProbe::new(args.broker_pid)?;
    let run_id = unix_micros();
    let total = SEED_EVENTS + args.events;
    let event_type = &args.payload.event_type;
    let context = StreamContext::resuming(&target, event_type, run_id, total)?;
    let drain = Duration::from_secs(args.drain_secs);

    eprintln!(
        "sse-bench: opening {} streams on {}",
        args.streams,
        target.url()
    );
    let open = open_streams(&context, args.streams, args.connect_concurrency, deadline).await?;
    let seed_job =
        PublishJob::with_seqs(&target, &args.payload, run_id, 0..SEED_EVENTS, None, None);
    let mut publish = publish_all(seed_job, 1, deadline).await?;
    if publish.events_acked != SEED_EVENTS {
        bail!(
            "the seed event was not acknowledged: {}",
            publish.first_error.as_deref().unwrap_or("no answer")
        );
    }
    let seeded = context
        .wait_for_deliveries(
            args.streams * SEED_EVENTS,
            deadline.min(Instant::now() + drain),
        )
        .await;
    let logs = stop_streams(open.tasks, open.stop).await;
    let unseeded = logs.iter().filter(|log| log.last_id().is_none()).count();
    if !seeded || unseeded > 0 {
        bail!(
            "{unseeded} of {} streams never received the seed event within --drain-secs, \
             so they have no id to resume from",
            logs.len()
        );
    }
    let seed = SeedStats::of(&logs);

    eprintln!(
        "sse-bench: publishing {} events with every stream closed",
        args.events
    );
    let missed_job = PublishJob::with_seqs(
        &target,
        &args.payload,
        run_id,
        SEED_EVENTS..total,
        None,
        None,
    );
    let missed = publish_all(missed_job, args.publishers, deadline).await?;
    let missed_publish = PublishStats::from_outcome(&missed);
    let missed_acked = missed.events_acked;
    publish.absorb(missed)?;

    eprintln!(
        "sse-bench: {} streams resume at once, each after its last id",
        logs.len()
    );
    let streams = logs.len() as u64;
    context.set_catch_up_target(publish.events_acked);
    let received_before: u64 = logs.iter().map(|log| log.received).sum();
    let rss_before = memory.sample()?;
    let peak = PeakWatch::start(memory, RSS_PERIOD);
    let health = HealthProbe::start(&target, Duration::from_millis(args.health_interval_ms))?;
    let cpu = CpuMeter::start(args.broker_pid)?;
    let concurrency = match args.reopen_concurrency {
        0 => streams,
        limit => limit,
    };
    let mut storm = spawn_streams(&context, logs, concurrency);
    let caught_up = context
        .wait_for_deliveries(
            streams * publish.events_acked,
            deadline.min(Instant::now() + drain),
        )
        .await;
    let storm_seconds = storm.started().elapsed().as_secs_f64();
    let cpu_seconds = cpu.seconds()?;
    let health = health.finish().await?;
    let peak_rss = peak.finish().await?;
    sleep(DUPLICATE_GRACE).await;
    let reopen = ReopenStats::of(&storm.connect_tally()?, storm.started());
    let logs = stop_streams(storm.tasks, storm.stop).await;

    let replayed = logs.iter().map(|log| log.received).sum::<u64>() - received_before;
    let frames_without_id = logs.iter().map(|log| log.without_id).sum();
    let report = StormReport {
        mode: "storm",
        url: target.url().to_string(),
        event_type: event_type.clone(),
        payload_bytes: args.payload.payload_bytes,
        batch: args.payload.batch,
        publishers: args.publishers,
        events: args.events,
        reopen_concurrency: (args.reopen_concurrency > 0).then_some(args.reopen_concurrency),
        open: open.stats,
        seed,
        missed_publish,
        reopen,
        catch_up: CatchUpStats::of(&logs, caught_up.then_some(storm_seconds)),
        replayed_frames: replayed,
        expected_replayed_frames: streams * missed_acked,
        frames_without_id,
        delivery: DeliveryStats::tally(&logs, &publish),
        resume: ResumeStats::tally(&logs),
        health,
        broker: rss_before
            .zip(peak_rss)
            .zip(BrokerCpu::of(cpu_seconds, replayed, 0))
            .map(|((before, peak), cpu)| BrokerDuringStorm {
                rss_before_kib: before,
                peak_rss_kib: peak,
                cpu,
            }),
    };
    emit(&report, args.common.json)?;
    Ok(report.verdict())
}
