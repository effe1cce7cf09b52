//! `GET /health` asked again and again on one keep-alive connection while
//! a load runs: how long the broker keeps a plain request waiting.

use std::{fmt, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::{
    sync::{oneshot, watch},
    time::{Instant, MissedTickBehavior, interval, timeout},
};

use crate::{
    http1::{Client, Target},
    latency::{LatencySummary, micros, new_histogram},
};

/// A probe unanswered for this long counts as an error; the next one
/// starts on a fresh connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A probe loop running on its own thread until [`HealthProbe::finish`]:
/// on the bench's runtime it would wait behind the bench's own work (ten
/// thousand streams to read) and measure the bench, not the broker.
pub struct HealthProbe {
    stop: watch::Sender<bool>,
    done: oneshot::Receiver<Result<HealthStats>>,
}

/// What the probes saw.
#[derive(Debug, Serialize)]
pub struct HealthStats {
    pub interval_ms: u64,
    pub probes: u64,
    /// Answered 200.
    pub ok: u64,
    /// Answered, but not 200 (503: unhealthy).
    pub not_ok: u64,
    /// No answer: a connection error, or nothing within the probe timeout.
    pub errors: u64,
    pub first_problem: Option<String>,
    /// Request written → answer read, over the answered probes.
    pub latency: Option<LatencySummary>,
}

impl HealthProbe {
    /// Starts probing `target` every `period` (or back to back, when an
    /// answer takes longer than that).
    pub fn start(target: &Arc<Target>, period: Duration) -> Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let histogram = new_histogram()?;
        let target = Arc::clone(target);
        let (report, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("health-probe".into())
            .spawn(move || {
                let stats = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("the /health probe's runtime")
                    .and_then(|runtime| {
                        runtime.block_on(probe_loop(target, period, stopped, histogram))
                    });
                let _ = report.send(stats);
            })
            .context("starting the /health probe's thread")?;
        Ok(Self { stop, done })
    }

    pub async fn finish(self) -> Result<HealthStats> {
        self.stop.send_replace(true);
        self.done
            .await
            .context("the /health probe's thread failed")?
    }
}

async fn probe_loop(
    target: Arc<Target>,
    period: Duration,
    mut stopped: watch::Receiver<bool>,
    mut latency: Histogram<u64>,
) -> Result<HealthStats> {
    let path = target.path("/health");
    let mut client = Client::new(target);
    let mut stats = HealthStats {
        interval_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX),
        probes: 0,
        ok: 0,
        not_ok: 0,
        errors: 0,
        first_problem: None,
        latency: None,
    };
    let mut ticks = interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stopped.wait_for(|stop| *stop) => break,
            _ = ticks.tick() => {}
        }
        stats.probes += 1;
        let sent = Instant::now();
        match timeout(PROBE_TIMEOUT, client.get(&path)).await {
            Ok(Ok(answer)) => {
                latency.saturating_record(micros(sent.elapsed()));
                if answer.status == 200 {
                    stats.ok += 1;
                } else {
                    stats.not_ok += 1;
                    stats
                        .first_problem
                        .get_or_insert_with(|| format!("HTTP {}", answer.status));
                }
            }
            Ok(Err(error)) => {
                stats.errors += 1;
                stats
                    .first_problem
                    .get_or_insert_with(|| format!("{error:#}"));
            }
            Err(_) => {
                stats.errors += 1;
                stats
                    .first_problem
                    .get_or_insert_with(|| format!("no answer within {PROBE_TIMEOUT:?}"));
                // The late answer would be read as the next probe's.
                client = Client::new(Arc::clone(client.target()));
            }
        }
    }
    stats.latency = LatencySummary::of(&latency);
    Ok(stats)
}

impl HealthStats {
    pub fn is_clean(&self) -> bool {
        self.errors == 0 && self.not_ok == 0
    }
}

impl fmt::Display for HealthStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} probes every {} ms: {} ok, {} not ok, {} unanswered",
            self.probes, self.interval_ms, self.ok, self.not_ok, self.errors
        )?;
        if let Some(latency) = &self.latency {
            write!(
                f,
                "; p50 {} ms, p99 {} ms, max {} ms",
                latency.p50_ms, latency.p99_ms, latency.max_ms
            )?;
        }
        writeln!(f)?;
        if let Some(problem) = &self.first_problem {
            writeln!(f, "{:12}first problem: {problem}", "")?;
        }
        Ok(())
    }
}
