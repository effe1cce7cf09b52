//! The stream readers: open `--streams` streams, read and check every frame,
//! and (for the modes that churn or storm) close and resume them with
//! `Last-Event-ID`, keeping one [`StreamLog`] per stream across connections.

mod connect_stats;
mod context;
mod log;
mod task;

use std::{sync::Arc, time::Duration};

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use tokio::{
    sync::{Notify, Semaphore, mpsc, watch},
    task::JoinHandle,
    time::{Instant, timeout_at},
};

use self::task::{ConnectReport, run_stream};
pub use self::{
    connect_stats::ConnectStats,
    context::StreamContext,
    log::{StreamEnd, StreamLog},
};
use crate::{
    figures::{rate_per_sec, round3},
    latency::{LatencySummary, micros, new_histogram},
};

/// How long stream tasks get to hand back their logs after the stop signal.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Stream tasks that have been started, connected or not yet.
pub struct SpawnedStreams {
    pub tasks: Vec<JoinHandle<StreamLog>>,
    /// Sending `true` (or dropping it) stops every reader.
    pub stop: watch::Sender<bool>,
    /// One per stream: `notify_one` makes it close and resume.
    pub reconnect: Vec<Arc<Notify>>,
    /// Each stream's first connect attempt, reported once.
    ready: mpsc::UnboundedReceiver<ConnectReport>,
    started: Instant,
}

/// Streams that are open and being read.
pub struct OpenStreams {
    pub tasks: Vec<JoinHandle<StreamLog>>,
    pub stop: watch::Sender<bool>,
    pub reconnect: Vec<Arc<Notify>>,
    pub stats: ConnectStats,
}

/// Starts one stream task per log, at most `concurrency` connecting at
/// once; a log that saw an event resumes after its last id.
pub fn spawn_streams(
    context: &Arc<StreamContext>,
    logs: Vec<StreamLog>,
    concurrency: u64,
) -> SpawnedStreams {
    let (stop, stop_receiver) = watch::channel(false);
    let (ready_sender, ready) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(
        usize::try_from(concurrency).unwrap_or(Semaphore::MAX_PERMITS),
    ));
    let reconnect: Vec<Arc<Notify>> = logs.iter().map(|_| Arc::new(Notify::new())).collect();
    let tasks = logs
        .into_iter()
        .zip(&reconnect)
        .map(|(log, reconnect)| {
            tokio::spawn(run_stream(
                Arc::clone(context),
                log,
                Arc::clone(&permits),
                ready_sender.clone(),
                stop_receiver.clone(),
                Arc::clone(reconnect),
            ))
        })
        .collect();
    SpawnedStreams {
        tasks,
        stop,
        reconnect,
        ready,
        started: Instant::now(),
    }
}

/// Opens `count` fresh streams and returns once every one has its
/// `connected` frame. Fails when any stream cannot open, or at the deadline.
pub async fn open_streams(
    context: &Arc<StreamContext>,
    count: u64,
    concurrency: u64,
    deadline: Instant,
) -> Result<OpenStreams> {
    let logs = (0..count).map(|_| StreamLog::new(context)).collect();
    let mut spawned = spawn_streams(context, logs, concurrency);
    let mut tally = ConnectTally::new()?;
    while tally.reported() < count {
        match timeout_at(deadline, spawned.ready.recv()).await {
            Ok(Some(report)) => tally.add(report),
            Ok(None) => bail!("stream tasks ended without reporting"),
            Err(_) => bail!(
                "--timeout-secs ran out with {} of {count} streams connected",
                tally.connected()
            ),
        }
    }
    if let Some(error) = &tally.first_failure {
        bail!(
            "{} of {count} streams failed to open; the first: {error}",
            tally.failed
        );
    }
    let stats = tally.stats(spawned.started);
    Ok(OpenStreams {
        tasks: spawned.tasks,
        stop: spawned.stop,
        reconnect: spawned.reconnect,
        stats,
    })
}

impl SpawnedStreams {
    /// The first connect attempts reported so far.
    pub fn connect_tally(&mut self) -> Result<ConnectTally> {
        let mut tally = ConnectTally::new()?;
        while let Ok(report) = self.ready.try_recv() {
            tally.add(report);
        }
        Ok(tally)
    }

    pub fn started(&self) -> Instant {
        self.started
    }
}

/// How the first connect attempts of a set of streams went.
pub struct ConnectTally {
    latency: Histogram<u64>,
    pub failed: u64,
    pub first_failure: Option<String>,
    last_connected: Option<Instant>,
}

impl ConnectTally {
    fn new() -> Result<Self> {
        Ok(Self {
            latency: new_histogram()?,
            failed: 0,
            first_failure: None,
            last_connected: None,
        })
    }

    fn add(&mut self, report: ConnectReport) {
        match report {
            Ok((took, at)) => {
                self.latency.saturating_record(micros(took));
                self.last_connected = self.last_connected.max(Some(at));
            }
            Err(error) => {
                self.failed += 1;
                self.first_failure.get_or_insert(error);
            }
        }
    }

    pub fn connected(&self) -> u64 {
        self.latency.len()
    }

    fn reported(&self) -> u64 {
        self.connected() + self.failed
    }

    /// The connect rate of the streams that connected at the first try,
    /// from `started` to the last `connected` frame.
    pub fn stats(&self, started: Instant) -> ConnectStats {
        let elapsed = self
            .last_connected
            .map_or(0.0, |last| last.duration_since(started).as_secs_f64());
        ConnectStats {
            streams: self.connected(),
            seconds: round3(elapsed),
            per_sec: rate_per_sec(self.connected(), elapsed),
            latency: LatencySummary::of(&self.latency),
        }
    }
}

/// Tells every reader to stop and collects their logs.
pub async fn stop_streams(
    tasks: Vec<JoinHandle<StreamLog>>,
    stop: watch::Sender<bool>,
) -> Vec<StreamLog> {
    stop.send_replace(true);
    let grace = Instant::now() + STOP_GRACE;
    let mut logs = Vec::with_capacity(tasks.len());
    for task in tasks {
        match timeout_at(grace, task).await {
            Ok(Ok(log)) => logs.push(log),
            Ok(Err(error)) => eprintln!("sse-bench: warning: a stream task failed: {error}"),
            Err(_) => {
                eprintln!(
                    "sse-bench: warning: stream readers did not stop within {STOP_GRACE:?}; \
                     their numbers are left out"
                );
                break;
            }
        }
    }
    logs
}
