//! `soak`: churn for leak hunting. `--streams` streams stay open while a
//! churn loop closes and resumes `--churn` of them per second (each with
//! `Last-Event-ID` = the last id it saw) and publishers store `--rate`
//! events/s, for `--secs`. Every `--sample-secs` the broker's RSS and open
//! fds are sampled and printed; at the end every stream closes and, after
//! `--settle-secs`, the broker is sampled once more. Each stream must hold
//! every acknowledged event exactly once across all its connections.

mod report;
mod samples;

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use tokio::{
    sync::Notify,
    time::{Instant, MissedTickBehavior, interval_at, sleep, sleep_until},
};

use self::{
    report::SoakReport,
    samples::{FdSummary, Phase, RssSummary, SAMPLE_HEADER, Sample, Sampler},
};
use super::{SPARE_FDS, Verdict, ensure_fd_budget};
use crate::{
    cli::SoakArgs,
    cpu::{BrokerCpu, CpuMeter},
    fds::open_fds,
    http1::Target,
    latency::unix_micros,
    memory::MemoryProbe,
    publishers::{PublishJob, publish_all},
    report::{DeliveryStats, PublishStats, ResumeStats, emit},
    streams::{StreamContext, open_streams, stop_streams},
};

pub async fn run(args: &SoakArgs, target: Arc<Target>, deadline: Instant) -> Result<Verdict> {
    if args.payload.live_only {
        bail!("a soak checks resumes against stored events; --live-only events are never stored");
    }
    ensure_fd_budget(args.streams + args.publishers + SPARE_FDS);
    let sampler = Sampler {
        memory: MemoryProbe::new(args.broker_pid)?,
        pid: args.broker_pid,
    };
    open_fds(args.broker_pid)?;
    let run_id = unix_micros();
    let events = args.rate * args.secs;
    let context = StreamContext::resuming(&target, &args.payload.event_type, run_id, events)?;
    let json = args.common.json;
    let mut samples = Vec::new();
    let mut record = |sample: Sample| {
        // The JSON report must stay the only thing on stdout.
        if json {
            eprintln!("{sample}");
        } else {
            println!("{sample}");
        }
        samples.push(sample);
    };
    if json {
        eprintln!("{SAMPLE_HEADER}");
    } else {
        println!("{SAMPLE_HEADER}");
    }
    record(sampler.take(Phase::Before, 0.0, &context, None)?);

    eprintln!(
        "sse-bench: opening {} streams on {}",
        args.streams,
        target.url()
    );
    let open = open_streams(&context, args.streams, args.connect_concurrency, deadline).await?;
    let started = Instant::now();
    let run_for = Duration::from_secs(args.secs);
    let cpu = CpuMeter::start(args.broker_pid)?;
    let job = PublishJob::with_seqs(
        &target,
        &args.payload,
        run_id,
        0..events,
        Some(args.rate),
        Some(started + run_for),
    );
    let publishing = tokio::spawn(publish_all(Arc::clone(&job), args.publishers, deadline));
    let churning = tokio::spawn(churn(open.reconnect.clone(), args.churn, started + run_for));

    let period = Duration::from_secs(args.sample_secs);
    let mut next = started;
    while next <= started + run_for && next < deadline {
        sleep_until(next).await;
        let elapsed = started.elapsed().as_secs_f64();
        record(sampler.take(Phase::Run, elapsed, &context, Some(&job))?);
        next += period;
    }
    churning.await.context("the churn task failed")?;
    let publish = publishing.await.context("the publish task failed")??;

    let drain = deadline.min(Instant::now() + Duration::from_secs(args.drain_secs));
    context
        .wait_for_deliveries(publish.events_acked * args.streams, drain)
        .await;
    let cpu_seconds = cpu.seconds()?;
    let elapsed = started.elapsed().as_secs_f64();
    record(sampler.take(Phase::End, elapsed, &context, Some(&job))?);
    let logs = stop_streams(open.tasks, open.stop).await;
    sleep(Duration::from_secs(args.settle_secs)).await;
    let elapsed = started.elapsed().as_secs_f64();
    record(sampler.take(Phase::Closed, elapsed, &context, Some(&job))?);

    let delivery = DeliveryStats::tally(&logs, &publish);
    let report = SoakReport {
        mode: "soak",
        url: target.url().to_string(),
        event_type: args.payload.event_type.clone(),
        payload_bytes: args.payload.payload_bytes,
        batch: args.payload.batch,
        publishers: args.publishers,
        streams: open.stats,
        churn_per_sec: args.churn,
        rate_per_sec: args.rate,
        secs: args.secs,
        sample_secs: args.sample_secs,
        settle_secs: args.settle_secs,
        rss: RssSummary::of(&samples, args.secs as f64),
        fds: FdSummary::of(&samples),
        broker_cpu: BrokerCpu::of(cpu_seconds, delivery.received(), publish.events_acked),
        publish: PublishStats::from_outcome(&publish),
        delivery,
        resume: ResumeStats::tally(&logs),
        samples,
    };
    emit(&report, json)?;
    Ok(report.verdict())
}

/// Asks `per_sec` streams per second to close and resume, round robin,
/// until `until`.
async fn churn(streams: Vec<Arc<Notify>>, per_sec: u64, until: Instant) {
    if per_sec == 0 || streams.is_empty() {
        return;
    }
    let period = Duration::from_secs_f64(1.0 / per_sec as f64);
    // The first reconnect one period in, not at once: the run's first
    // sample then sees every stream open.
    let mut ticks = interval_at(Instant::now() + period, period);
    // A late tick is not made up for: the rate is an average, not a debt.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for stream in streams.iter().cycle() {
        ticks.tick().await;
        if Instant::now() >= until {
            return;
        }
        stream.notify_one();
    }
}
