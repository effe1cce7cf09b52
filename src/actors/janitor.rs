//! `Janitor`: every `cleanup_interval`, closes streams with no successful
//! write for `stale_threshold`, `cleanup_batch_size` at a time, and keeps the
//! statistics that `/sse/monitoring` and the metrics report.
//!
//! A stream whose client stopped reading (half-open TCP, a frozen tab, a
//! proxy holding the socket) never errors on its own; this is what reclaims
//! it. Runs never overlap: [`RunCleanup`] is handled atomically, whether the
//! timer or `POST /sse/cleanup` sent it.

use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, AtomicResponse, Context, Handler, MailboxError,
    Message, WrapFuture,
};
use futures_util::future::join_all;
use serde::Serialize;
use tokio::sync::watch;

use super::registry::{FindStale, Registry, Unregister};
use crate::{
    domain::now_ms,
    stream::{Close, CloseReason},
    telemetry::Metrics,
};

/// A pause between batches so a large cleanup never monopolises the Registry.
const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(5);

pub struct Janitor {
    registry: Addr<Registry>,
    interval: Duration,
    batch_size: usize,
    stale_threshold: Duration,
    stats: CleanupStats,
    /// Where readers find `stats` without asking the actor: its mailbox is
    /// blocked for the whole of a run.
    published: watch::Sender<CleanupStats>,
    metrics: Metrics,
}

/// Cumulative cleanup statistics.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct CleanupStats {
    pub total_runs: u64,
    pub total_cleaned: u64,
    pub total_failed: u64,
    /// Runs that could not complete (the Registry did not answer).
    pub total_errors: u64,
    pub total_batches: u64,
    /// Ms since the epoch; `/sse/monitoring` shows it as RFC 3339.
    pub last_run_at_ms: Option<i64>,
    pub last_cleanup_duration_ms: Option<f64>,
    /// Every run's duration added up: the mean is this over `total_runs`.
    pub total_duration_ms: f64,
    pub last_cleaned: u64,
    pub last_failed: u64,
    pub cleanup_task_running: bool,
    pub interval_secs: u64,
    pub batch_size: usize,
    pub stale_threshold_secs: u64,
}

impl CleanupStats {
    /// Failed runs over all runs since start, in percent (0 before the first).
    pub fn error_rate(&self) -> f64 {
        percent(self.total_errors, self.total_runs)
    }

    /// Streams a run failed to close over those it tried, in percent.
    pub fn connection_failure_rate(&self) -> f64 {
        percent(self.total_failed, self.total_cleaned + self.total_failed)
    }

    /// Streams closed per run, on average.
    pub fn connections_per_cleanup(&self) -> f64 {
        share(self.total_cleaned as f64, self.total_runs)
    }

    /// Mean duration of a run, in ms (0 before the first).
    pub fn avg_duration_ms(&self) -> f64 {
        share(self.total_duration_ms, self.total_runs)
    }
}

fn share(part: f64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part / whole as f64 }
}

fn percent(part: u64, whole: u64) -> f64 {
    share(part as f64, whole) * 100.0
}

/// What one cleanup run did.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct CleanupReport {
    pub cleaned: u64,
    pub failed: u64,
    pub batches: u64,
    pub duration_ms: f64,
    /// `false` when the run stopped at its deadline (one cleanup interval)
    /// with stale streams left for the next run: cleanup is falling behind,
    /// and the run counts as an error in the statistics.
    pub complete: bool,
    /// Streams open when the run looked, stale among them, and open > 1 h.
    pub total_before: usize,
    pub stale_found: usize,
    pub long_lived: usize,
}

impl CleanupReport {
    /// Streams closed over streams tried, in percent; 100 when none was.
    fn efficiency(&self) -> f64 {
        let tried = self.cleaned + self.failed;
        if tried == 0 {
            100.0
        } else {
            self.cleaned as f64 * 100.0 / tried as f64
        }
    }
}

impl Janitor {
    pub fn new(
        registry: Addr<Registry>,
        interval: Duration,
        batch_size: usize,
        stale_threshold: Duration,
        metrics: Metrics,
    ) -> Self {
        let stats = CleanupStats {
            interval_secs: interval.as_secs(),
            batch_size,
            stale_threshold_secs: stale_threshold.as_secs(),
            ..CleanupStats::default()
        };
        Self {
            registry,
            interval,
            batch_size,
            stale_threshold,
            published: watch::Sender::new(stats.clone()),
            stats,
            metrics,
        }
    }

    /// The statistics as they change, readable at any time.
    pub fn stats(&self) -> watch::Receiver<CleanupStats> {
        self.published.subscribe()
    }

    fn publish(&self) {
        self.published.send_replace(self.stats.clone());
    }
}

impl Actor for Janitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.stats.cleanup_task_running = true;
        self.publish();
        ctx.run_interval(self.interval, |_, ctx| {
            ctx.notify(RunCleanup {
                batch_size: None,
                periodic: true,
            });
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.stats.cleanup_task_running = false;
        self.publish();
    }
}

/// Run one cleanup now; `batch_size` overrides the configured one.
#[derive(Debug, Message)]
#[rtype(result = "Result<CleanupReport, CleanupError>")]
pub struct RunCleanup {
    pub batch_size: Option<usize>,
    /// Sent by the Janitor's own timer (not by `POST /sse/cleanup`): such
    /// runs also log the periodic cycle line, or the periodic error line.
    pub periodic: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CleanupError {
    #[error("the registry did not answer")]
    RegistryUnavailable,
}

impl Handler<RunCleanup> for Janitor {
    type Result = AtomicResponse<Self, Result<CleanupReport, CleanupError>>;

    fn handle(&mut self, msg: RunCleanup, _: &mut Context<Self>) -> Self::Result {
        let registry = self.registry.clone();
        let batch_size = msg.batch_size.unwrap_or(self.batch_size).max(1);
        let threshold_ms = self.stale_threshold.as_millis() as i64;
        let deadline = self.interval;
        let started = Instant::now();
        let run = async move {
            let scan = registry
                .send(FindStale { threshold_ms })
                .await
                .map_err(|_| CleanupError::RegistryUnavailable)?;
            let mut report = CleanupReport {
                total_before: scan.total,
                stale_found: scan.stale.len(),
                long_lived: scan.long_lived,
                ..CleanupReport::default()
            };
            let batches = scan.stale.chunks(batch_size);
            let total_batches = batches.len();
            for (index, batch) in batches.enumerate() {
                let results = join_all(batch.iter().map(|s| {
                    s.connection.send(Close {
                        reason: CloseReason::Stale,
                    })
                }))
                .await;
                for (stale, result) in batch.iter().zip(results) {
                    // Closed, or no actor behind the stream any more
                    // (nothing else will deregister it): off the table now,
                    // not when the stream's own word arrives from its
                    // thread (whichever comes second does nothing), so a
                    // run right after this one does not find it again and
                    // count it failed.
                    let actor_gone = match result {
                        Ok(()) => false,
                        Err(MailboxError::Closed) => true,
                        Err(MailboxError::Timeout) => {
                            report.failed += 1;
                            continue;
                        }
                    };
                    report.cleaned += 1;
                    registry.do_send(Unregister {
                        id: stale.id,
                        reason: CloseReason::Stale,
                    });
                    if actor_gone {
                        tracing::warn!(connection_id = %stale.id, idle_ms = stale.idle_ms, "removed a stale stream whose actor was gone");
                    } else {
                        tracing::info!(connection_id = %stale.id, idle_ms = stale.idle_ms, "closed stale stream");
                    }
                }
                report.batches += 1;
                if index + 1 == total_batches {
                    break;
                }
                if started.elapsed() >= deadline {
                    return Ok(report);
                }
                actix_rt::time::sleep(PAUSE_BETWEEN_BATCHES).await;
            }
            report.complete = true;
            Ok::<_, CleanupError>(report)
        };
        let periodic = msg.periodic;
        AtomicResponse::new(Box::pin(run.into_actor(self).map(move |result, act, _| {
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            let done = result.as_ref().copied().unwrap_or_default();
            let failure = match &result {
                Ok(report) if report.complete => None,
                Ok(_) => Some(format!(
                    "the run stopped at its {} ms deadline with stale streams left",
                    act.interval.as_millis()
                )),
                Err(error) => Some(error.to_string()),
            };
            act.record_run(&done, duration_ms, failure.is_some());
            act.log_run(
                &done,
                duration_ms,
                batch_size,
                failure.as_deref(),
                periodic,
                result.is_ok(),
            );
            act.metrics.record_cleanup(&result, duration_ms / 1000.0);
            act.publish();
            result.map(|report| CleanupReport {
                duration_ms,
                ..report
            })
        })))
    }
}

impl Janitor {
    fn record_run(&mut self, done: &CleanupReport, duration_ms: f64, failed: bool) {
        let stats = &mut self.stats;
        stats.total_runs += 1;
        stats.total_errors += u64::from(failed);
        stats.last_run_at_ms = Some(now_ms());
        stats.last_cleanup_duration_ms = Some(duration_ms);
        stats.total_duration_ms += duration_ms;
        stats.total_cleaned += done.cleaned;
        stats.total_failed += done.failed;
        stats.total_batches += done.batches;
        stats.last_cleaned = done.cleaned;
        stats.last_failed = done.failed;
    }

    /// The log lines of the operators' monitoring guide, word for word:
    /// their log searches and alerts look for these texts, so the figures
    /// are in the message itself (in JSON too), not only in fields.
    fn log_run(
        &self,
        done: &CleanupReport,
        duration_ms: f64,
        batch_size: usize,
        failure: Option<&str>,
        periodic: bool,
        scanned: bool,
    ) {
        let stats = &self.stats;
        if let Some(error) = failure {
            if periodic {
                tracing::error!("Error during periodic SSE cleanup: {error}");
            } else {
                tracing::error!("Error during requested SSE cleanup: {error}");
            }
            if !scanned {
                return;
            }
        }
        let total_after = done.total_before.saturating_sub(done.cleaned as usize);
        tracing::info!(
            "SSE cleanup completed: cleaned={}, failed={}, total_before={}, total_after={total_after}, \
             duration_ms={duration_ms:.2}, efficiency={:.1}%, batch_size={batch_size}, \
             threshold_seconds={}, stale_connections={}, active_connections={total_after}, \
             long_lived_connections={}",
            done.cleaned,
            done.failed,
            done.total_before,
            done.efficiency(),
            self.stale_threshold.as_secs(),
            done.stale_found,
            done.long_lived,
        );
        if periodic {
            let error_rate = stats.error_rate();
            tracing::info!(
                "Periodic cleanup cycle: cleaned={} connections, cycle_duration_ms={duration_ms:.2}, \
                 total_cleanups={}, total_cleaned={}, error_rate={error_rate:.1}%",
                done.cleaned,
                stats.total_runs,
                stats.total_cleaned,
            );
        }
    }
}
