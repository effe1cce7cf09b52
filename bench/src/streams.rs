//! The stream readers: open `--streams` streams, read and check every frame.

use std::{
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use serde::Deserialize;
use sse_broker::domain::SseEvent;
use tokio::{
    sync::{Semaphore, mpsc, watch},
    task::JoinHandle,
    time::{Instant, timeout_at},
};

use crate::{
    http1::Target,
    latency::{LatencyRecorder, LatencySummary, micros, new_histogram, unix_micros},
    report::{ConnectStats, rate_per_sec, round3},
    seq_set::SeqSet,
    sse::SseStream,
};

/// How long stream tasks get to hand back their logs after the stop signal.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What every stream task of a run shares.
pub struct StreamContext {
    target: Arc<Target>,
    /// Path and query of the stream request.
    path: String,
    event_type: String,
    run_id: u64,
    /// Events the run publishes: seqs are `0..events`.
    events: u64,
    /// Delivery latencies of every stream, in µs.
    pub latency: Arc<Mutex<Histogram<u64>>>,
    /// Deliveries of a seq a stream had not seen before, over all streams;
    /// the drain phase is over when it reaches streams × events acknowledged.
    pub unique_deliveries: AtomicU64,
}

/// The data of an event this bench published.
#[derive(Debug, Deserialize)]
struct Probe {
    run: u64,
    seq: u64,
    sent_us: u64,
}

/// Why a stream's reader stopped.
#[derive(Debug)]
pub enum StreamEnd {
    /// The bench told it to: the normal end.
    Stopped,
    /// The broker ended the response.
    ClosedByBroker,
    /// It never opened, or a read or the framing failed.
    Failed(String),
}

impl fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamEnd::Stopped => f.write_str("stopped by the bench"),
            StreamEnd::ClosedByBroker => f.write_str("closed by the broker"),
            StreamEnd::Failed(error) => f.write_str(error),
        }
    }
}

/// Everything one stream saw, kept to be checked against the acknowledged
/// publishes once the run is over.
pub struct StreamLog {
    pub seen: SeqSet,
    /// Frames carrying this run's events, duplicates included.
    pub received: u64,
    pub duplicates: u64,
    /// Deliveries whose seq is below one this stream already received.
    pub seq_out_of_order: u64,
    /// Deliveries whose `id:` is not above the previous one.
    pub id_order_violations: u64,
    /// Frames of the subscribed type that are not this run's events.
    pub foreign_frames: u64,
    pub heartbeats: u64,
    highest_seq: Option<u64>,
    last_id: Option<u64>,
    pub last_receive: Option<Instant>,
    pub end: StreamEnd,
    latency: LatencyRecorder,
}

impl StreamContext {
    /// A run's streams on `GET /sse/events?event_types=<event_type>`,
    /// expecting the seqs `0..events` of run `run_id`.
    pub fn new(
        target: &Arc<Target>,
        event_type: &str,
        run_id: u64,
        events: u64,
    ) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            path: target.path(&format!("/sse/events?event_types={event_type}")),
            target: Arc::clone(target),
            event_type: event_type.to_owned(),
            run_id,
            events,
            latency: Arc::new(Mutex::new(new_histogram()?)),
            unique_deliveries: AtomicU64::new(0),
        }))
    }
}

impl StreamLog {
    fn new(context: &StreamContext) -> Self {
        Self {
            seen: SeqSet::new(context.events),
            received: 0,
            duplicates: 0,
            seq_out_of_order: 0,
            id_order_violations: 0,
            foreign_frames: 0,
            heartbeats: 0,
            highest_seq: None,
            last_id: None,
            last_receive: None,
            end: StreamEnd::Stopped,
            latency: LatencyRecorder::new(Arc::clone(&context.latency)),
        }
    }

    fn observe(&mut self, frame: &SseEvent, context: &StreamContext) {
        if frame.event_type() != context.event_type {
            if frame.event_type() == "heartbeat" {
                self.heartbeats += 1;
            }
            return;
        }
        let probe = match serde_json::from_str::<Probe>(&frame.data) {
            Ok(probe) if probe.run == context.run_id && probe.seq < context.events => probe,
            _ => {
                self.foreign_frames += 1;
                return;
            }
        };
        self.latency
            .record(unix_micros().saturating_sub(probe.sent_us));
        self.received += 1;
        self.last_receive = Some(Instant::now());

        if let Some(id) = frame.id.as_deref() {
            // Ids are decimal integers; anything else cannot be in order.
            match id.parse::<u64>() {
                Ok(id) => {
                    if self.last_id.is_some_and(|last| id <= last) {
                        self.id_order_violations += 1;
                    }
                    self.last_id = Some(id);
                }
                Err(_) => self.id_order_violations += 1,
            }
        }

        if !self.seen.insert(probe.seq) {
            self.duplicates += 1;
            return;
        }
        context.unique_deliveries.fetch_add(1, Ordering::Relaxed);
        if self.highest_seq.is_some_and(|highest| probe.seq < highest) {
            self.seq_out_of_order += 1;
        }
        self.highest_seq = self.highest_seq.max(Some(probe.seq));
    }
}

/// Connection phase of a stream, reported to `open_streams` once.
type ConnectReport = Result<Duration, String>;

/// One stream: opens it (at most `permits` at once), reports how long the
/// `connected` frame took, then reads until told to stop or the stream ends.
async fn run_stream(
    context: Arc<StreamContext>,
    permits: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<ConnectReport>,
    mut stop: watch::Receiver<bool>,
) -> StreamLog {
    let mut log = StreamLog::new(&context);
    let mut stream = {
        let Ok(_permit) = permits.acquire().await else {
            log.end = StreamEnd::Failed("the connect limiter closed".to_owned());
            return log;
        };
        let started = Instant::now();
        match open_connected_stream(&context).await {
            Ok(stream) => {
                // The receiver is gone only when the run has already failed.
                let _ = ready.send(Ok(started.elapsed()));
                stream
            }
            Err(error) => {
                let message = format!("{error:#}");
                let _ = ready.send(Err(message.clone()));
                log.end = StreamEnd::Failed(message);
                return log;
            }
        }
    };
    drop(ready);

    let stopped = stop.wait_for(|stop| *stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            // A dropped sender means the run is over too.
            _ = &mut stopped => break,
            frame = stream.next_event() => match frame {
                Ok(Some(frame)) => log.observe(&frame, &context),
                Ok(None) => {
                    log.end = StreamEnd::ClosedByBroker;
                    break;
                }
                Err(error) => {
                    log.end = StreamEnd::Failed(format!("{error:#}"));
                    break;
                }
            },
        }
    }
    log.latency.flush();
    log
}

/// Opens a stream and waits for its first frame, which must be `connected`.
async fn open_connected_stream(context: &StreamContext) -> Result<SseStream> {
    let mut stream = SseStream::open(&context.target, &context.path).await?;
    match stream.next_event().await? {
        Some(frame) if frame.event_type() == "connected" => Ok(stream),
        Some(frame) => bail!(
            "the first frame of the stream is `{}`, not `connected`",
            frame.event_type()
        ),
        None => bail!("the broker ended the stream before its `connected` frame"),
    }
}

/// Streams that are open and being read.
pub struct OpenStreams {
    pub tasks: Vec<JoinHandle<StreamLog>>,
    /// Sending `true` (or dropping it) stops every reader.
    pub stop: watch::Sender<bool>,
    pub stats: ConnectStats,
}

/// Opens `count` streams and returns once every one has its `connected`
/// frame. Fails when any stream cannot open, or at the deadline.
pub async fn open_streams(
    context: &Arc<StreamContext>,
    count: u64,
    concurrency: u64,
    deadline: Instant,
) -> Result<OpenStreams> {
    let (stop, stop_receiver) = watch::channel(false);
    let (ready_sender, mut ready) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(
        usize::try_from(concurrency).unwrap_or(Semaphore::MAX_PERMITS),
    ));
    let started = Instant::now();
    let tasks = (0..count)
        .map(|_| {
            tokio::spawn(run_stream(
                Arc::clone(context),
                Arc::clone(&permits),
                ready_sender.clone(),
                stop_receiver.clone(),
            ))
        })
        .collect();
    drop(ready_sender);

    let mut connect_latency = new_histogram()?;
    let mut failed = 0_u64;
    let mut first_failure = None;
    while connect_latency.len() + failed < count {
        match timeout_at(deadline, ready.recv()).await {
            Ok(Some(Ok(latency))) => connect_latency.saturating_record(micros(latency)),
            Ok(Some(Err(error))) => {
                failed += 1;
                first_failure.get_or_insert(error);
            }
            Ok(None) => bail!("stream tasks ended without reporting"),
            Err(_) => bail!(
                "--timeout-secs ran out with {} of {count} streams connected",
                connect_latency.len()
            ),
        }
    }
    if let Some(error) = first_failure {
        bail!("{failed} of {count} streams failed to open; the first: {error}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(OpenStreams {
        tasks,
        stop,
        stats: ConnectStats {
            streams: count,
            seconds: round3(elapsed),
            per_sec: rate_per_sec(count, elapsed),
            latency: LatencySummary::of(&connect_latency),
        },
    })
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
