//! `sse-bench`: the load generator for `sse-broker`.
//!
//! It drives a running broker from the outside, over real HTTP/1.1 on
//! loopback, the way browsers and publishers do, and prints what it measured.
//! It shares no code with the broker: requests are written by hand on
//! `tokio::net::TcpStream`, and the chunked transfer encoding and the SSE
//! framing are decoded here (frames may split anywhere across reads), so a
//! framing bug in the broker shows up as an error rather than being smoothed
//! over by a client library.
//!
//! # Modes
//!
//! - `fanout`: opens `--streams` streams on `GET /sse/events?event_types=T`
//!   and waits for every stream's `event: connected` frame. Then it publishes
//!   `--events` events of type T at `--rate` events/s (0 = as fast as the
//!   broker acknowledges) over `--publishers` keep-alive connections
//!   (`POST /sse/publish`, `--batch` events per request, a JSON array when
//!   above 1). Each event's data is
//!   `{"run": R, "seq": n, "sent_us": <unix µs when the request was written>,
//!   "pad": "<--payload-bytes of x>"}`. Each stream records the latency
//!   (receive time − `sent_us`) of every event it receives, and checks the
//!   sequence: missing, duplicate and out-of-order `seq`, and `id:` values
//!   that fail to increase. After the last acknowledgement it waits up to
//!   `--drain-secs` for the deliveries still in flight. It reports the connect
//!   time, the publish throughput (events acknowledged with 202 per second),
//!   deliveries expected against received, latency percentiles over all
//!   deliveries, and the delivery throughput (deliveries per second from the
//!   first publish to the last delivery).
//! - `idle`: opens `--streams` streams that get nothing but heartbeats,
//!   holds them for `--hold-secs`, and reports the client's connect rate and
//!   how many streams the broker dropped during the hold.
//! - `publish`: publishes `--events` events over `--concurrency` connections
//!   with no stream open, and reports events stored per second and the request
//!   latency.
//!
//! With `--broker-pid` (fanout, idle) the broker's resident memory (`VmRSS` in
//! `/proc/PID/status`) is sampled before the streams open, once all are
//! connected, and at the end; memory per stream is
//! `(after_open − before) / streams`.
//!
//! # Reading the numbers
//!
//! - Latency runs from the moment a publish request is written to the moment
//!   the frame is parsed by a stream reader, so it includes the publish
//!   request, the store's commit, the fan-out and this client's scheduling.
//!   Both ends read the same clock, as they live in this process. The bench
//!   shares the CPUs with the broker; on a small machine that is part of
//!   the result.
//! - `sent_us` is taken when a request is written, not when the `--rate`
//!   schedule wanted it, so if the broker falls behind the schedule the wait
//!   of the backlog is not counted (coordinated omission). The achieved
//!   publish rate shows when that happens.
//! - With more than one publisher connection the broker may commit events in
//!   an order other than `seq`, so `seq_out_of_order` is informational.
//!   `id:` values that do not increase on a stream are always a broker bug.
//! - `run` is unique per invocation; frames of the right type from anyone
//!   else are counted as `foreign_frames` and otherwise ignored.
//! - Memory per stream means something only on a freshly started broker:
//!   the allocator keeps memory once freed, and the broker notices that a
//!   client has gone only when a write (a heartbeat) fails, so the streams
//!   of an earlier run may still be held for a while.
//!
//! # Safety rails
//!
//! Only loopback targets are accepted (127.0.0.0/8, ::1, `localhost`). Every
//! loop is bounded by a count and by `--timeout-secs`. The soft
//! `RLIMIT_NOFILE` is raised to the hard limit at start, with a warning when
//! that is still below what the run needs.
//!
//! Exit status: 0 when the run completed cleanly; 2 when it completed but
//! found faults (a delivery missing or duplicated, ids going backwards, a
//! stream dropped or refused publishes); 1 on an error.

use std::{
    fmt,
    io::{self, Write as _},
    ops::Range,
    process::ExitCode,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{Semaphore, mpsc, watch},
    task::JoinHandle,
    time::{Instant, sleep, sleep_until, timeout_at},
};
use url::Url;

use crate::http::{SseStream, Target};

/// Highest latency the histograms resolve (one hour, in µs); larger values
/// are clamped to it.
const LATENCY_MAX_MICROS: u64 = 3_600_000_000;
/// Three significant digits: 0.1% resolution at any magnitude.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// Latencies a stream buffers before merging them into the shared histogram,
/// so that the lock is taken once per batch rather than once per delivery.
const LATENCY_FLUSH_EVERY: usize = 512;
/// How often the drain phase checks whether every delivery has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// How long stream tasks get to hand back their logs after the stop signal.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// File descriptors set aside for the runtime, stdio and stray sockets.
const SPARE_FDS: u64 = 64;

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

#[derive(Debug, Parser)]
#[command(
    name = "sse-bench",
    version,
    about = "Load generator for sse-broker: fan-out latency, memory per idle stream, publish throughput (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Streams that all receive every published event: latency, delivery, throughput.
    Fanout(FanoutArgs),
    /// Streams that receive nothing: connect rate and broker memory per stream.
    Idle(IdleArgs),
    /// Publishing with no stream open: events stored per second, request latency.
    Publish(PublishArgs),
}

impl Mode {
    fn common(&self) -> &CommonArgs {
        match self {
            Mode::Fanout(args) => &args.common,
            Mode::Idle(args) => &args.common,
            Mode::Publish(args) => &args.common,
        }
    }
}

/// Options every mode takes.
#[derive(Debug, Args)]
struct CommonArgs {
    /// Base URL of the broker. Only loopback hosts are accepted.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: Url,
    /// Bearer token sent with every request, for a broker with auth on.
    #[arg(long, env = "SSE_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Upper bound on the whole run, in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_secs: u64,
    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    json: bool,
    /// Worker threads of the bench's own runtime (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

/// What the published events look like (fanout and publish).
#[derive(Debug, Args)]
struct PayloadArgs {
    /// Event type to publish (and, in fanout, to subscribe to).
    #[arg(long, default_value = "file_change", value_parser = parse_event_type)]
    event_type: String,
    /// Length of the `pad` string in each event's data.
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Events per publish request; above 1 the body is a JSON array.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Publish with `"persist": false`: delivered live, never stored.
    #[arg(long)]
    live_only: bool,
}

#[derive(Debug, Args)]
struct FanoutArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    payload: PayloadArgs,
    /// Streams to open.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    streams: u64,
    /// Publish to this broker instead of `--url` (cross-instance latency in
    /// cluster mode: streams on one instance, publishers on another).
    #[arg(long)]
    publish_url: Option<Url>,
    /// Events to publish.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Publish rate in events per second; 0 publishes as fast as the broker acknowledges.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Keep-alive connections publishing in parallel.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    publishers: u64,
    /// After the last acknowledgement, how long to wait for deliveries in flight.
    #[arg(long, default_value_t = 30)]
    drain_secs: u64,
    /// Streams being opened at once; more only overflows the listen backlog.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    connect_concurrency: u64,
    /// The broker's process id, to sample its memory (VmRSS) from /proc.
    #[arg(long)]
    broker_pid: Option<u32>,
}

#[derive(Debug, Args)]
struct IdleArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Streams to open.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    streams: u64,
    /// How long to hold the streams open once all are connected, in seconds.
    #[arg(long, default_value_t = 10)]
    hold_secs: u64,
    /// Event type the streams subscribe to (nothing is published).
    #[arg(long, default_value = "file_change", value_parser = parse_event_type)]
    event_type: String,
    /// Streams being opened at once; more only overflows the listen backlog.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    connect_concurrency: u64,
    /// The broker's process id, to sample its memory (VmRSS) from /proc.
    #[arg(long)]
    broker_pid: Option<u32>,
}

#[derive(Debug, Args)]
struct PublishArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    payload: PayloadArgs,
    /// Events to publish.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Keep-alive connections publishing in parallel.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
}

/// Accepts exactly what the broker accepts as a type name (its own parser),
/// which also keeps the name safe unescaped in a URL query and in JSON.
fn parse_event_type(raw: &str) -> Result<String, String> {
    sse_broker::domain::EventType::parse(raw)
        .map(|event_type| event_type.to_string())
        .map_err(|error| error.to_string())
}

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

/// How a completed run turned out; errors that stop a run are `Err` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Clean,
    /// The run completed but the broker lost, duplicated or reordered
    /// deliveries, dropped streams or refused publishes.
    Faults,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.mode.common().threads {
        builder.worker_threads(usize::from(threads));
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sse-bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(&cli.mode));
    // Tasks still holding sockets (after an error or a timeout) are dropped,
    // not awaited: the run is over.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(Verdict::Clean) => ExitCode::SUCCESS,
        Ok(Verdict::Faults) => ExitCode::from(2),
        Err(error) => {
            eprintln!("sse-bench: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mode: &Mode) -> Result<Verdict> {
    let common = mode.common();
    let deadline = Instant::now() + Duration::from_secs(common.timeout_secs);
    let target = Arc::new(Target::resolve(&common.url, common.token.as_deref()).await?);
    match mode {
        Mode::Fanout(args) => run_fanout(args, target, deadline).await,
        Mode::Idle(args) => run_idle(args, target, deadline).await,
        Mode::Publish(args) => run_publish(args, target, deadline).await,
    }
}

async fn run_fanout(args: &FanoutArgs, target: Arc<Target>, deadline: Instant) -> Result<Verdict> {
    ensure_fd_budget(args.streams + args.publishers + SPARE_FDS);
    let memory = MemoryProbe::new(args.broker_pid)?;
    let run_id = unix_micros();
    let context = Arc::new(StreamContext {
        path: target.path(&format!(
            "/sse/events?event_types={}",
            args.payload.event_type
        )),
        target: Arc::clone(&target),
        event_type: args.payload.event_type.clone(),
        run_id,
        events: args.events,
        latency: Arc::new(Mutex::new(new_histogram()?)),
        unique_deliveries: AtomicU64::new(0),
    });

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

async fn run_idle(args: &IdleArgs, target: Arc<Target>, deadline: Instant) -> Result<Verdict> {
    ensure_fd_budget(args.streams + SPARE_FDS);
    let memory = MemoryProbe::new(args.broker_pid)?;
    let context = Arc::new(StreamContext {
        path: target.path(&format!("/sse/events?event_types={}", args.event_type)),
        target: Arc::clone(&target),
        event_type: args.event_type.clone(),
        run_id: unix_micros(),
        events: 0,
        latency: Arc::new(Mutex::new(new_histogram()?)),
        unique_deliveries: AtomicU64::new(0),
    });

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

async fn run_publish(
    args: &PublishArgs,
    target: Arc<Target>,
    deadline: Instant,
) -> Result<Verdict> {
    ensure_fd_budget(args.concurrency + SPARE_FDS);
    eprintln!(
        "sse-bench: publishing {} events over {} connections to {}",
        args.events,
        args.concurrency,
        target.url()
    );
    let job = PublishJob::new(&target, &args.payload, unix_micros(), args.events, None);
    let outcome = publish_all(job, args.concurrency, deadline).await?;
    let report = PublishReport {
        mode: "publish",
        url: target.url().to_string(),
        event_type: args.payload.event_type.clone(),
        payload_bytes: args.payload.payload_bytes,
        batch: args.payload.batch,
        concurrency: args.concurrency,
        live_only: args.payload.live_only,
        publish: PublishStats::from_outcome(&outcome),
    };
    emit(&report, args.common.json)?;
    Ok(if report.publish.is_clean() {
        Verdict::Clean
    } else {
        Verdict::Faults
    })
}

/// Prints a report on stdout, as JSON or as text.
fn emit<R: Serialize + fmt::Display>(report: &R, json: bool) -> Result<()> {
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, report).context("writing the JSON report")?;
        writeln!(out).context("writing the report")?;
    } else {
        write!(out, "{report}").context("writing the report")?;
    }
    out.flush().context("writing the report")
}

// ---------------------------------------------------------------------------
// Process limits and broker memory
// ---------------------------------------------------------------------------

/// Raises the soft open-file limit to the hard one, and warns when even that
/// is below what the run needs.
fn ensure_fd_budget(needed: u64) {
    match raise_fd_limit() {
        Ok(limit) if limit < needed => eprintln!(
            "sse-bench: warning: the open-file limit is {limit} but this run needs about {needed}; \
             connections past the limit will fail"
        ),
        Ok(_) => {}
        Err(error) => eprintln!("sse-bench: warning: cannot raise the open-file limit: {error}"),
    }
}

/// Sets the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit.
fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the whole call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid `rlimit` for the whole call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}

/// Samples the broker's resident memory, when `--broker-pid` was given.
struct MemoryProbe {
    pid: Option<u32>,
}

impl MemoryProbe {
    /// Fails early when the pid's status cannot be read, rather than after
    /// the streams are open.
    fn new(pid: Option<u32>) -> Result<Self> {
        let probe = Self { pid };
        probe.sample()?;
        Ok(probe)
    }

    /// `VmRSS` of the broker in KiB, or `None` without `--broker-pid`.
    fn sample(&self) -> Result<Option<u64>> {
        let Some(pid) = self.pid else {
            return Ok(None);
        };
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {path} (is --broker-pid the broker's pid?)"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .map(Some)
            .with_context(|| format!("{path} has no VmRSS line"))
    }
}

// ---------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------

/// What every stream task of a run shares.
struct StreamContext {
    target: Arc<Target>,
    /// Path and query of the stream request.
    path: String,
    event_type: String,
    run_id: u64,
    /// Events the run publishes: seqs are `0..events`.
    events: u64,
    /// Delivery latencies of every stream, in µs.
    latency: Arc<Mutex<Histogram<u64>>>,
    /// Deliveries of a seq a stream had not seen before, over all streams;
    /// the drain phase is over when it reaches streams × events acknowledged.
    unique_deliveries: AtomicU64,
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
enum StreamEnd {
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
struct StreamLog {
    seen: SeqSet,
    /// Frames carrying this run's events, duplicates included.
    received: u64,
    duplicates: u64,
    /// Deliveries whose seq is below one this stream already received.
    seq_out_of_order: u64,
    /// Deliveries whose `id:` is not above the previous one.
    id_order_violations: u64,
    /// Frames of the subscribed type that are not this run's events.
    foreign_frames: u64,
    heartbeats: u64,
    highest_seq: Option<u64>,
    last_id: Option<u64>,
    last_receive: Option<Instant>,
    end: StreamEnd,
    latency: LatencyRecorder,
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

    fn observe(&mut self, frame: &sse::Frame, context: &StreamContext) {
        if frame.event != context.event_type {
            if frame.event == "heartbeat" {
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
            frame = stream.next_frame() => match frame {
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
    match stream.next_frame().await? {
        Some(frame) if frame.event == "connected" => Ok(stream),
        Some(frame) => bail!(
            "the first frame of the stream is `{}`, not `connected`",
            frame.event
        ),
        None => bail!("the broker ended the stream before its `connected` frame"),
    }
}

/// Streams that are open and being read.
struct OpenStreams {
    tasks: Vec<JoinHandle<StreamLog>>,
    /// Sending `true` (or dropping it) stops every reader.
    stop: watch::Sender<bool>,
    stats: ConnectStats,
}

/// Opens `count` streams and returns once every one has its `connected`
/// frame. Fails when any stream cannot open, or at the deadline.
async fn open_streams(
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
async fn stop_streams(
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

// ---------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------

/// A publish run's fixed parameters, shared by its publisher connections.
struct PublishJob {
    target: Arc<Target>,
    path: String,
    event_type: String,
    run_id: u64,
    pad: String,
    total_events: u64,
    batch: u64,
    live_only: bool,
    /// Events per second; `None` publishes as fast as acknowledged.
    rate: Option<u64>,
    /// The next seq not yet taken by a publisher.
    next_seq: AtomicU64,
}

impl PublishJob {
    fn new(
        target: &Arc<Target>,
        payload: &PayloadArgs,
        run_id: u64,
        total_events: u64,
        rate: Option<u64>,
    ) -> Arc<Self> {
        Arc::new(Self {
            target: Arc::clone(target),
            path: target.path("/sse/publish"),
            event_type: payload.event_type.clone(),
            run_id,
            pad: "x".repeat(payload.payload_bytes),
            total_events,
            batch: payload.batch,
            live_only: payload.live_only,
            rate,
            next_seq: AtomicU64::new(0),
        })
    }

    /// Writes the request body for `seqs`: one event object, or an array
    /// when the run publishes in batches.
    fn encode(&self, body: &mut String, seqs: Range<u64>, sent_us: u64) {
        use std::fmt::Write as _;

        body.clear();
        let as_array = self.batch > 1;
        if as_array {
            body.push('[');
        }
        let persist = if self.live_only {
            r#","persist":false"#
        } else {
            ""
        };
        for (index, seq) in seqs.enumerate() {
            if index > 0 {
                body.push(',');
            }
            // Writing into a String cannot fail. The event type and pad need
            // no escaping: both are checked to be plain ASCII.
            let _ = write!(
                body,
                r#"{{"event_type":"{}"{persist},"data":{{"run":{},"seq":{seq},"sent_us":{sent_us},"pad":"{}"}}}}"#,
                self.event_type, self.run_id, self.pad
            );
        }
        if as_array {
            body.push(']');
        }
    }
}

/// The acknowledgement of `POST /sse/publish`.
#[derive(Debug, Deserialize)]
struct PublishAccepted {
    ids: Vec<serde_json::Value>,
}

/// What one publisher connection did.
struct PublisherLog {
    acked: Vec<Range<u64>>,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    timed_out: bool,
    request_latency: Histogram<u64>,
    first_send: Option<Instant>,
    last_ack: Option<Instant>,
}

impl PublisherLog {
    fn note_error(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }
}

/// Takes batches of seqs from the job until none are left, each at its slot
/// in the `--rate` schedule, and publishes them on one keep-alive connection.
async fn run_publisher(
    job: Arc<PublishJob>,
    schedule_start: Instant,
    deadline: Instant,
) -> Result<PublisherLog> {
    let mut client = http::Client::new(Arc::clone(&job.target));
    let mut log = PublisherLog {
        acked: Vec::new(),
        requests: 0,
        errors: 0,
        first_error: None,
        timed_out: false,
        request_latency: new_histogram()?,
        first_send: None,
        last_ack: None,
    };
    let mut body = String::new();
    loop {
        let first = job.next_seq.fetch_add(job.batch, Ordering::Relaxed);
        if first >= job.total_events {
            break;
        }
        let seqs = first..(first + job.batch).min(job.total_events);
        let due = match job.rate {
            Some(rate) => schedule_start + Duration::from_secs_f64(first as f64 / rate as f64),
            None => Instant::now(),
        };
        if due >= deadline {
            log.timed_out = true;
            break;
        }
        sleep_until(due).await;

        job.encode(&mut body, seqs.clone(), unix_micros());
        let sent = Instant::now();
        log.first_send.get_or_insert(sent);
        log.requests += 1;
        let response =
            match timeout_at(deadline, client.post_json(&job.path, body.as_bytes())).await {
                Ok(response) => response,
                Err(_) => {
                    log.note_error("a publish request outlived --timeout-secs".to_owned());
                    log.timed_out = true;
                    break;
                }
            };
        let acknowledged = response.and_then(|response| {
            if response.status != 202 {
                bail!(
                    "HTTP {}: {}",
                    response.status,
                    http::snippet(&response.body)
                );
            }
            let accepted: PublishAccepted =
                serde_json::from_slice(&response.body).with_context(|| {
                    format!("unexpected 202 body: {}", http::snippet(&response.body))
                })?;
            Ok(accepted.ids.len())
        });
        match acknowledged {
            Ok(ids) if ids as u64 == seqs.end - seqs.start => {
                let now = Instant::now();
                log.request_latency
                    .saturating_record(micros(now.duration_since(sent)));
                log.last_ack = Some(now);
                log.acked.push(seqs);
            }
            Ok(ids) => log.note_error(format!(
                "published {} events, the broker answered {ids} ids",
                seqs.end - seqs.start
            )),
            Err(error) => log.note_error(format!("{error:#}")),
        }
    }
    Ok(log)
}

/// Every publisher connection's work, merged.
struct PublishOutcome {
    events_requested: u64,
    acked: SeqSet,
    events_acked: u64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    timed_out: bool,
    request_latency: Histogram<u64>,
    first_send: Option<Instant>,
    last_ack: Option<Instant>,
}

/// Publishes the job over `connections` connections and waits for all of them.
async fn publish_all(
    job: Arc<PublishJob>,
    connections: u64,
    deadline: Instant,
) -> Result<PublishOutcome> {
    let schedule_start = Instant::now();
    let publishers: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(run_publisher(Arc::clone(&job), schedule_start, deadline)))
        .collect();
    let mut outcome = PublishOutcome {
        events_requested: job.total_events,
        acked: SeqSet::new(job.total_events),
        events_acked: 0,
        requests: 0,
        errors: 0,
        first_error: None,
        timed_out: false,
        request_latency: new_histogram()?,
        first_send: None,
        last_ack: None,
    };
    for publisher in publishers {
        let log = publisher.await.context("a publisher task failed")??;
        for seqs in log.acked {
            outcome.events_acked += seqs.end - seqs.start;
            seqs.for_each(|seq| {
                outcome.acked.insert(seq);
            });
        }
        outcome.requests += log.requests;
        outcome.errors += log.errors;
        if outcome.first_error.is_none() {
            outcome.first_error = log.first_error;
        }
        outcome.timed_out |= log.timed_out;
        outcome
            .request_latency
            .add(&log.request_latency)
            .context("merging request latencies")?;
        outcome.first_send = earliest(outcome.first_send, log.first_send);
        outcome.last_ack = outcome.last_ack.max(log.last_ack);
    }
    Ok(outcome)
}

// ---------------------------------------------------------------------------
// Bookkeeping
// ---------------------------------------------------------------------------

/// A set of seqs in `0..capacity`, one bit each.
struct SeqSet {
    words: Vec<u64>,
    capacity: u64,
}

impl SeqSet {
    fn new(capacity: u64) -> Self {
        let words = usize::try_from(capacity.div_ceil(64)).unwrap_or(usize::MAX);
        Self {
            words: vec![0; words],
            capacity,
        }
    }

    /// Adds `seq`; false when it was already there or is out of range.
    fn insert(&mut self, seq: u64) -> bool {
        if seq >= self.capacity {
            return false;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        let was_absent = self.words[word] & (1 << bit) == 0;
        self.words[word] |= 1 << bit;
        was_absent
    }

    fn len(&self) -> u64 {
        self.words
            .iter()
            .map(|word| u64::from(word.count_ones()))
            .sum()
    }

    /// How many seqs are in both sets.
    fn common_with(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(mine, theirs)| u64::from((mine & theirs).count_ones()))
            .sum()
    }
}

/// Buffers one stream's latencies and merges them into the run's histogram in
/// batches.
struct LatencyRecorder {
    pending: Vec<u64>,
    sink: Arc<Mutex<Histogram<u64>>>,
}

impl LatencyRecorder {
    fn new(sink: Arc<Mutex<Histogram<u64>>>) -> Self {
        // No allocation until the first delivery: idle streams stay small.
        Self {
            pending: Vec::new(),
            sink,
        }
    }

    fn record(&mut self, micros: u64) {
        self.pending.push(micros);
        if self.pending.len() >= LATENCY_FLUSH_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut histogram = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        for &micros in &self.pending {
            histogram.saturating_record(micros);
        }
        self.pending.clear();
    }
}

fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_max(LATENCY_MAX_MICROS, LATENCY_SIGNIFICANT_DIGITS)
        .context("creating a latency histogram")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, micros)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn rate_per_sec(count: u64, seconds: f64) -> Option<f64> {
    (seconds > 0.0).then(|| (count as f64 / seconds * 10.0).round() / 10.0)
}

// ---------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
struct LatencySummary {
    samples: u64,
    mean_ms: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

impl LatencySummary {
    /// `None` when nothing was measured.
    fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| round3(micros as f64 / 1000.0);
        Some(Self {
            samples: histogram.len(),
            mean_ms: round3(histogram.mean() / 1000.0),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        })
    }
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {} ms, p90 {} ms, p99 {} ms, p99.9 {} ms, max {} ms (mean {} ms, {} samples)",
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            self.mean_ms,
            self.samples
        )
    }
}

/// How the streams opened.
#[derive(Debug, Serialize)]
struct ConnectStats {
    streams: u64,
    /// From the first connect to the last `connected` frame.
    seconds: f64,
    per_sec: Option<f64>,
    /// Per stream: TCP connect to `connected` frame.
    latency: Option<LatencySummary>,
}

impl fmt::Display for ConnectStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connected in {} s ({} streams/s)",
            self.streams,
            self.seconds,
            display_option(self.per_sec)
        )?;
        if let Some(latency) = &self.latency {
            write!(
                f,
                "; per stream p50 {} ms, p99 {} ms, max {} ms",
                latency.p50_ms, latency.p99_ms, latency.max_ms
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize)]
struct PublishStats {
    events_requested: u64,
    events_acked: u64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    timed_out: bool,
    /// From the first request written to the last acknowledgement.
    seconds: Option<f64>,
    events_per_sec: Option<f64>,
    request_latency: Option<LatencySummary>,
}

impl PublishStats {
    fn from_outcome(outcome: &PublishOutcome) -> Self {
        let seconds = match (outcome.first_send, outcome.last_ack) {
            (Some(first), Some(last)) => Some(last.duration_since(first).as_secs_f64()),
            _ => None,
        };
        Self {
            events_requested: outcome.events_requested,
            events_acked: outcome.events_acked,
            requests: outcome.requests,
            errors: outcome.errors,
            first_error: outcome.first_error.clone(),
            timed_out: outcome.timed_out,
            seconds: seconds.map(round3),
            events_per_sec: seconds.and_then(|s| rate_per_sec(outcome.events_acked, s)),
            request_latency: LatencySummary::of(&outcome.request_latency),
        }
    }

    fn is_clean(&self) -> bool {
        self.errors == 0 && !self.timed_out && self.events_acked == self.events_requested
    }
}

impl fmt::Display for PublishStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} of {} events acknowledged in {} s: {} events/s ({} requests, {} errors{})",
            self.events_acked,
            self.events_requested,
            display_option(self.seconds),
            display_option(self.events_per_sec),
            self.requests,
            self.errors,
            if self.timed_out { ", timed out" } else { "" }
        )?;
        if let Some(latency) = &self.request_latency {
            writeln!(f, "{:12}request {latency}", "")?;
        }
        if let Some(error) = &self.first_error {
            writeln!(f, "{:12}first error: {error}", "")?;
        }
        Ok(())
    }
}

/// Deliveries counted against the acknowledged publishes.
#[derive(Debug, Serialize)]
struct DeliveryStats {
    /// Streams read to the end × events acknowledged.
    expected: u64,
    /// Frames of this run's events, duplicates included.
    received: u64,
    missing: u64,
    duplicates: u64,
    /// Delivered, but their publish request was never acknowledged.
    unexpected: u64,
    seq_out_of_order: u64,
    id_order_violations: u64,
    foreign_frames: u64,
    streams_complete: u64,
    streams_closed_by_broker: u64,
    streams_failed: u64,
    first_stream_error: Option<String>,
    /// From the first publish request to the last delivery.
    seconds: Option<f64>,
    deliveries_per_sec: Option<f64>,
}

impl DeliveryStats {
    fn tally(logs: &[StreamLog], publish: &PublishOutcome) -> Self {
        let mut stats = Self {
            expected: publish.events_acked * logs.len() as u64,
            received: 0,
            missing: 0,
            duplicates: 0,
            unexpected: 0,
            seq_out_of_order: 0,
            id_order_violations: 0,
            foreign_frames: 0,
            streams_complete: 0,
            streams_closed_by_broker: 0,
            streams_failed: 0,
            first_stream_error: None,
            seconds: None,
            deliveries_per_sec: None,
        };
        let mut last_receive = None;
        for log in logs {
            let delivered = log.seen.common_with(&publish.acked);
            stats.received += log.received;
            stats.missing += publish.events_acked - delivered;
            stats.duplicates += log.duplicates;
            stats.unexpected += log.seen.len() - delivered;
            stats.seq_out_of_order += log.seq_out_of_order;
            stats.id_order_violations += log.id_order_violations;
            stats.foreign_frames += log.foreign_frames;
            if delivered == publish.events_acked {
                stats.streams_complete += 1;
            }
            match &log.end {
                StreamEnd::Stopped => {}
                StreamEnd::ClosedByBroker => stats.streams_closed_by_broker += 1,
                StreamEnd::Failed(error) => {
                    stats.streams_failed += 1;
                    stats
                        .first_stream_error
                        .get_or_insert_with(|| error.clone());
                }
            }
            last_receive = last_receive.max(log.last_receive);
        }
        if let (Some(first), Some(last)) = (publish.first_send, last_receive) {
            let seconds = last.duration_since(first).as_secs_f64();
            stats.seconds = Some(round3(seconds));
            stats.deliveries_per_sec = rate_per_sec(stats.received, seconds);
        }
        stats
    }

    fn is_clean(&self) -> bool {
        self.missing == 0
            && self.duplicates == 0
            && self.id_order_violations == 0
            && self.streams_closed_by_broker == 0
            && self.streams_failed == 0
    }
}

impl fmt::Display for DeliveryStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} of {} expected received in {} s: {} deliveries/s",
            self.received,
            self.expected,
            display_option(self.seconds),
            display_option(self.deliveries_per_sec)
        )?;
        writeln!(
            f,
            "{:12}missing {}, duplicates {}, unexpected {}, seq out of order {}, \
             id order violations {}, foreign frames {}",
            "",
            self.missing,
            self.duplicates,
            self.unexpected,
            self.seq_out_of_order,
            self.id_order_violations,
            self.foreign_frames
        )?;
        writeln!(
            f,
            "{:12}streams complete {}, closed by the broker {}, failed {}",
            "", self.streams_complete, self.streams_closed_by_broker, self.streams_failed
        )?;
        if let Some(error) = &self.first_stream_error {
            writeln!(f, "{:12}first stream error: {error}", "")?;
        }
        Ok(())
    }
}

/// The broker's resident memory over the run, in KiB.
#[derive(Debug, Serialize)]
struct BrokerMemory {
    pid: u32,
    before_kib: u64,
    after_open_kib: u64,
    end_kib: u64,
    /// (after_open − before) / streams.
    per_stream_kib: f64,
}

impl BrokerMemory {
    fn new(
        pid: Option<u32>,
        streams: u64,
        before: Option<u64>,
        after_open: Option<u64>,
        end: Option<u64>,
    ) -> Option<Self> {
        let (pid, before_kib, after_open_kib, end_kib) = (pid?, before?, after_open?, end?);
        let growth = after_open_kib as f64 - before_kib as f64;
        Some(Self {
            pid,
            before_kib,
            after_open_kib,
            end_kib,
            per_stream_kib: round3(growth / streams as f64),
        })
    }
}

impl fmt::Display for BrokerMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |kib: u64| round3(kib as f64 / 1024.0);
        write!(
            f,
            "pid {}: before {} MiB, after open {} MiB, end {} MiB; {} KiB per stream",
            self.pid,
            mib(self.before_kib),
            mib(self.after_open_kib),
            mib(self.end_kib),
            self.per_stream_kib
        )
    }
}

#[derive(Debug, Serialize)]
struct FanoutReport {
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

#[derive(Debug, Serialize)]
struct IdleReport {
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

#[derive(Debug, Serialize)]
struct PublishReport {
    mode: &'static str,
    url: String,
    event_type: String,
    payload_bytes: usize,
    batch: u64,
    concurrency: u64,
    live_only: bool,
    publish: PublishStats,
}

impl fmt::Display for PublishReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sse-bench publish {}: type {}, {}-byte pad, batch {}, {} connections{}",
            self.url,
            self.event_type,
            self.payload_bytes,
            self.batch,
            self.concurrency,
            if self.live_only { ", live only" } else { "" }
        )?;
        write!(f, "{:12}{}", "publish", self.publish)
    }
}

fn display_option<T: fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |value| value.to_string())
}

// ---------------------------------------------------------------------------
// HTTP/1.1 on a raw socket
// ---------------------------------------------------------------------------

/// Just enough HTTP/1.1 for the bench: keep-alive request/response for
/// publishing, and a long-lived streaming response for SSE. Response heads are
/// parsed by `httparse`; bodies (fixed length, chunked, or until close) are
/// decoded here.
mod http {
    use std::{net::SocketAddr, sync::Arc, time::Duration};

    use anyhow::{Context, Result, bail};
    use bytes::{Buf, BytesMut};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpStream, lookup_host},
        time::timeout,
    };
    use url::{Host, Url};

    use crate::sse;

    /// A response head larger than this is refused.
    const MAX_HEAD_BYTES: usize = 64 * 1024;
    /// A publish acknowledgement larger than this is refused.
    const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
    /// Room made in a read buffer before each read.
    const READ_RESERVE: usize = 4096;
    /// A chunk-size or trailer line longer than this is a framing error.
    const MAX_CHUNK_LINE_BYTES: usize = 1024;
    /// How long to wait for the body of an error answer to a stream request.
    const ERROR_BODY_WAIT: Duration = Duration::from_secs(2);

    /// The broker under test: a loopback socket address, plus the headers
    /// every request carries.
    #[derive(Debug)]
    pub struct Target {
        url: Url,
        address: SocketAddr,
        host_header: String,
        /// The URL's path without its trailing `/`, put before every endpoint.
        base_path: String,
        authorization: Option<String>,
    }

    impl Target {
        /// Checks that `url` is plain HTTP on loopback and resolves it.
        pub async fn resolve(url: &Url, token: Option<&str>) -> Result<Self> {
            if url.scheme() != "http" {
                bail!(
                    "--url must be http:// (got {}://): the bench speaks plain HTTP/1.1",
                    url.scheme()
                );
            }
            let port = url.port_or_known_default().unwrap_or(80);
            let refuse = |host: &str| {
                anyhow::anyhow!(
                    "refusing to load {host}: sse-bench only targets loopback \
                     (127.0.0.0/8, ::1 or localhost), as load is allowed on loopback only"
                )
            };
            let candidates: Vec<SocketAddr> = match url.host() {
                Some(Host::Ipv4(ip)) => vec![SocketAddr::from((ip, port))],
                Some(Host::Ipv6(ip)) => vec![SocketAddr::from((ip, port))],
                Some(Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => {
                    lookup_host((name, port))
                        .await
                        .with_context(|| format!("resolving {name}"))?
                        .collect()
                }
                Some(Host::Domain(name)) => return Err(refuse(name)),
                None => bail!("--url has no host"),
            };
            if let Some(outside) = candidates
                .iter()
                .find(|address| !address.ip().is_loopback())
            {
                return Err(refuse(&outside.ip().to_string()));
            }
            let address = *candidates
                .first()
                .with_context(|| format!("{url} resolves to no address"))?;
            let host = url.host_str().unwrap_or_default();
            let host_header = match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            Ok(Self {
                url: url.clone(),
                address,
                host_header,
                base_path: url.path().trim_end_matches('/').to_owned(),
                authorization: token.map(|token| format!("Bearer {token}")),
            })
        }

        pub fn url(&self) -> &Url {
            &self.url
        }

        /// The request target for an endpoint (`/sse/publish`, with any query).
        pub fn path(&self, endpoint: &str) -> String {
            format!("{}{endpoint}", self.base_path)
        }

        async fn connect(&self) -> Result<TcpStream> {
            let socket = TcpStream::connect(self.address)
                .await
                .with_context(|| format!("connecting to {}", self.address))?;
            // Requests go out in one write; don't let Nagle hold them back.
            socket.set_nodelay(true).context("setting TCP_NODELAY")?;
            Ok(socket)
        }

        /// A whole request, head and body, ready for a single write.
        fn request(
            &self,
            method: &str,
            path: &str,
            headers: &[(&str, &str)],
            body: &[u8],
        ) -> Vec<u8> {
            let mut request = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sse-bench/{}\r\n",
                self.host_header,
                env!("CARGO_PKG_VERSION")
            );
            if let Some(authorization) = &self.authorization {
                request.push_str(&format!("Authorization: {authorization}\r\n"));
            }
            for (name, value) in headers {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            if !body.is_empty() {
                request.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            request.push_str("\r\n");
            let mut bytes = request.into_bytes();
            bytes.extend_from_slice(body);
            bytes
        }
    }

    /// The start of a response body, for error messages.
    pub fn snippet(body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        match text.char_indices().nth(300) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        }
    }

    /// How a response body is delimited.
    #[derive(Debug)]
    pub enum BodyFraming {
        Chunked(ChunkedDecoder),
        Length { remaining: u64 },
        UntilClose,
    }

    impl BodyFraming {
        /// Moves the body bytes available in `input` to `body`; true once the
        /// body is complete.
        pub fn decode(&mut self, input: &mut BytesMut, body: &mut BytesMut) -> Result<bool> {
            match self {
                BodyFraming::Chunked(decoder) => decoder.decode(input, body),
                BodyFraming::Length { remaining } => {
                    let take = input
                        .len()
                        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    body.extend_from_slice(&input[..take]);
                    input.advance(take);
                    *remaining -= take as u64;
                    Ok(*remaining == 0)
                }
                BodyFraming::UntilClose => {
                    body.extend_from_slice(input);
                    input.clear();
                    Ok(false)
                }
            }
        }
    }

    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    enum ChunkState {
        /// Expecting `<hex size>[;extensions]\r\n`.
        #[default]
        Size,
        Data {
            remaining: u64,
        },
        /// Expecting the `\r\n` after a chunk's data.
        DataEnd,
        /// After the last (zero) chunk: trailer lines up to an empty one.
        Trailer,
        Done,
    }

    /// Incremental decoder of `Transfer-Encoding: chunked`: input may stop
    /// anywhere, even inside a size line or a CRLF.
    #[derive(Debug, Default)]
    pub struct ChunkedDecoder {
        state: ChunkState,
    }

    impl ChunkedDecoder {
        /// Consumes what it can of `input`, appending chunk data to `body`;
        /// true once the terminating chunk and trailers have been read.
        pub fn decode(&mut self, input: &mut BytesMut, body: &mut BytesMut) -> Result<bool> {
            loop {
                match self.state {
                    ChunkState::Size => {
                        let Some(line) = take_line(input)? else {
                            return Ok(false);
                        };
                        let size = line[..].split(|&b| b == b';').next().unwrap_or_default();
                        let size = std::str::from_utf8(size)
                            .ok()
                            .and_then(|size| u64::from_str_radix(size.trim(), 16).ok())
                            .with_context(|| {
                                format!("malformed chunk size line {:?}", snippet(&line))
                            })?;
                        self.state = if size == 0 {
                            ChunkState::Trailer
                        } else {
                            ChunkState::Data { remaining: size }
                        };
                    }
                    ChunkState::Data { remaining } => {
                        if input.is_empty() {
                            return Ok(false);
                        }
                        let take = input
                            .len()
                            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                        body.extend_from_slice(&input[..take]);
                        input.advance(take);
                        let remaining = remaining - take as u64;
                        self.state = if remaining == 0 {
                            ChunkState::DataEnd
                        } else {
                            ChunkState::Data { remaining }
                        };
                    }
                    ChunkState::DataEnd => {
                        let Some(line) = take_line(input)? else {
                            return Ok(false);
                        };
                        if !line.is_empty() {
                            bail!("a chunk is longer than its declared size");
                        }
                        self.state = ChunkState::Size;
                    }
                    ChunkState::Trailer => {
                        let Some(line) = take_line(input)? else {
                            return Ok(false);
                        };
                        if line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                    }
                    ChunkState::Done => return Ok(true),
                }
            }
        }
    }

    /// Takes one line off `input`, without its CRLF (or bare LF).
    fn take_line(input: &mut BytesMut) -> Result<Option<BytesMut>> {
        match input.iter().position(|&b| b == b'\n') {
            Some(newline) => {
                let mut line = input.split_to(newline + 1);
                line.truncate(newline);
                if line.last() == Some(&b'\r') {
                    line.truncate(newline - 1);
                }
                Ok(Some(line))
            }
            None if input.len() > MAX_CHUNK_LINE_BYTES => {
                bail!("a chunked-encoding line is longer than {MAX_CHUNK_LINE_BYTES} bytes")
            }
            None => Ok(None),
        }
    }

    /// The parts of a response head the bench uses.
    #[derive(Debug)]
    struct ResponseHead {
        status: u16,
        content_type: Option<String>,
        framing: BodyFraming,
        keep_alive: bool,
    }

    /// Parses a complete response head at the start of `buf`, returning it
    /// with its length; `None` while the head is still incomplete.
    fn parse_response_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response
            .parse(buf)
            .context("malformed HTTP response head")?
        {
            httparse::Status::Complete(head_len) => head_len,
            httparse::Status::Partial => return Ok(None),
        };
        let status = response.code.context("response without a status code")?;
        let mut content_type = None;
        let mut chunked = false;
        let mut content_length = None;
        // HTTP/1.0 closes unless told otherwise; HTTP/1.1 keeps alive.
        let mut close = response.version == Some(0);
        for header in response.headers.iter() {
            let value = String::from_utf8_lossy(header.value);
            let has_token = |token: &str| {
                value
                    .split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            };
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = has_token("chunked");
            } else if header.name.eq_ignore_ascii_case("content-length") {
                let length = value
                    .trim()
                    .parse::<u64>()
                    .with_context(|| format!("bad Content-Length {value:?}"))?;
                content_length = Some(length);
            } else if header.name.eq_ignore_ascii_case("connection") {
                if has_token("close") {
                    close = true;
                } else if has_token("keep-alive") {
                    close = false;
                }
            } else if header.name.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.into_owned());
            }
        }
        let framing = if chunked {
            BodyFraming::Chunked(ChunkedDecoder::default())
        } else if let Some(remaining) = content_length {
            BodyFraming::Length { remaining }
        } else if status == 204 || status == 304 {
            BodyFraming::Length { remaining: 0 }
        } else {
            BodyFraming::UntilClose
        };
        let keep_alive = !close && !matches!(framing, BodyFraming::UntilClose);
        Ok(Some((
            ResponseHead {
                status,
                content_type,
                framing,
                keep_alive,
            },
            head_len,
        )))
    }

    /// Reads until a whole response head is in `buf`, and removes it; body
    /// bytes that came with it stay in `buf`.
    async fn read_response_head(
        socket: &mut TcpStream,
        buf: &mut BytesMut,
    ) -> Result<ResponseHead> {
        loop {
            if let Some((head, head_len)) = parse_response_head(buf)? {
                buf.advance(head_len);
                return Ok(head);
            }
            if buf.len() > MAX_HEAD_BYTES {
                bail!("the response head is larger than {MAX_HEAD_BYTES} bytes");
            }
            buf.reserve(READ_RESERVE);
            if socket
                .read_buf(buf)
                .await
                .context("reading the response head")?
                == 0
            {
                bail!("the broker closed the connection before answering");
            }
        }
    }

    /// Reads a whole (bounded) response body.
    async fn read_body(
        socket: &mut TcpStream,
        buf: &mut BytesMut,
        framing: &mut BodyFraming,
        limit: usize,
    ) -> Result<BytesMut> {
        let mut body = BytesMut::new();
        loop {
            if framing.decode(buf, &mut body)? {
                return Ok(body);
            }
            if body.len() > limit {
                bail!("the response body is larger than {limit} bytes");
            }
            buf.reserve(READ_RESERVE);
            if socket
                .read_buf(buf)
                .await
                .context("reading the response body")?
                == 0
            {
                if matches!(framing, BodyFraming::UntilClose) {
                    return Ok(body);
                }
                bail!("the broker closed the connection in the middle of a response body");
            }
        }
    }

    pub struct Response {
        pub status: u16,
        pub body: BytesMut,
    }

    struct Connection {
        socket: TcpStream,
        buf: BytesMut,
    }

    /// A keep-alive connection for request/response exchanges. After an
    /// error, or when the broker asks to close, the next request opens a new
    /// one. Requests that fail are not retried, so a publish is never sent
    /// twice.
    pub struct Client {
        target: Arc<Target>,
        connection: Option<Connection>,
    }

    impl Client {
        pub fn new(target: Arc<Target>) -> Self {
            Self {
                target,
                connection: None,
            }
        }

        pub async fn post_json(&mut self, path: &str, body: &[u8]) -> Result<Response> {
            let request = self.target.request(
                "POST",
                path,
                &[
                    ("Content-Type", "application/json"),
                    ("Accept", "application/json"),
                ],
                body,
            );
            // Taken out so that an error drops the connection.
            let mut connection = match self.connection.take() {
                Some(connection) => connection,
                None => Connection {
                    socket: self.target.connect().await?,
                    buf: BytesMut::with_capacity(READ_RESERVE),
                },
            };
            connection
                .socket
                .write_all(&request)
                .await
                .context("sending the request")?;
            let mut head = read_response_head(&mut connection.socket, &mut connection.buf).await?;
            let body = read_body(
                &mut connection.socket,
                &mut connection.buf,
                &mut head.framing,
                MAX_RESPONSE_BYTES,
            )
            .await?;
            // Leftover bytes would belong to no request: start afresh.
            if head.keep_alive && connection.buf.is_empty() {
                self.connection = Some(connection);
            }
            Ok(Response {
                status: head.status,
                body,
            })
        }
    }

    /// A `text/event-stream` response being read frame by frame.
    pub struct SseStream {
        socket: TcpStream,
        /// Bytes read off the socket, still in transfer encoding.
        raw: BytesMut,
        /// Decoded body bytes not yet parsed into frames.
        body: BytesMut,
        framing: BodyFraming,
        parser: sse::Parser,
        /// The body ended (terminating chunk or EOF): only `body` is left.
        finished: bool,
    }

    impl SseStream {
        /// Sends `GET path` and checks the answer is `200` with
        /// `text/event-stream`; an error answer's body goes into the error.
        pub async fn open(target: &Target, path: &str) -> Result<Self> {
            let mut socket = target.connect().await?;
            let request = target.request(
                "GET",
                path,
                &[
                    ("Accept", "text/event-stream"),
                    ("Cache-Control", "no-cache"),
                ],
                &[],
            );
            socket
                .write_all(&request)
                .await
                .context("sending the stream request")?;
            let mut raw = BytesMut::with_capacity(READ_RESERVE);
            let mut head = read_response_head(&mut socket, &mut raw).await?;
            if head.status != 200 {
                let body = timeout(
                    ERROR_BODY_WAIT,
                    read_body(&mut socket, &mut raw, &mut head.framing, READ_RESERVE),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
                bail!(
                    "GET {path} answered HTTP {}: {}",
                    head.status,
                    snippet(&body)
                );
            }
            let is_event_stream = head
                .content_type
                .as_deref()
                .is_some_and(|content_type| content_type.starts_with("text/event-stream"));
            if !is_event_stream {
                bail!(
                    "GET {path} answered Content-Type {:?}, not text/event-stream",
                    head.content_type
                );
            }
            Ok(Self {
                socket,
                raw,
                body: BytesMut::new(),
                framing: head.framing,
                parser: sse::Parser::default(),
                finished: false,
            })
        }

        /// The next frame, or `None` once the broker has ended the stream.
        ///
        /// Cancel-safe: all state lives in `self` and the only await is a
        /// `read_buf`, so it can sit in a `select!`.
        pub async fn next_frame(&mut self) -> Result<Option<sse::Frame>> {
            loop {
                if self.framing.decode(&mut self.raw, &mut self.body)? {
                    self.finished = true;
                }
                if let Some(frame) = self.parser.next_frame(&mut self.body)? {
                    return Ok(Some(frame));
                }
                if self.finished {
                    return Ok(None);
                }
                self.raw.reserve(READ_RESERVE);
                if self
                    .socket
                    .read_buf(&mut self.raw)
                    .await
                    .context("reading the stream")?
                    == 0
                {
                    self.finished = true;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// SSE framing
// ---------------------------------------------------------------------------

/// An incremental `text/event-stream` parser after the WHATWG algorithm:
/// lines end in CRLF, LF or CR; `field: value` with one optional space;
/// `data` lines join with `\n`; a blank line dispatches; `:` starts a comment.
mod sse {
    use anyhow::{Context, Result, bail};
    use bytes::BytesMut;

    /// A line longer than this means the stream is broken.
    const MAX_LINE_BYTES: usize = 1 << 20;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Frame {
        /// The `event:` field; `message` when absent.
        pub event: String,
        /// The `data:` lines joined with `\n`.
        pub data: String,
        /// This frame's own `id:` field, if it had one.
        pub id: Option<String>,
    }

    /// Fields of the frame being read.
    #[derive(Debug, Default)]
    pub struct Parser {
        event: Option<String>,
        data: Option<String>,
        id: Option<String>,
    }

    impl Parser {
        /// Consumes complete lines from `input` up to the end of the next
        /// frame; leaves an incomplete line in `input` for the next call.
        pub fn next_frame(&mut self, input: &mut BytesMut) -> Result<Option<Frame>> {
            while let Some((line_len, terminator_len)) = find_line_end(input) {
                let line = input.split_to(line_len + terminator_len);
                if let Some(frame) = self.process_line(&line[..line_len])? {
                    return Ok(Some(frame));
                }
            }
            if input.len() > MAX_LINE_BYTES {
                bail!("an SSE line is longer than {MAX_LINE_BYTES} bytes");
            }
            Ok(None)
        }

        fn process_line(&mut self, line: &[u8]) -> Result<Option<Frame>> {
            if line.is_empty() {
                return Ok(self.dispatch());
            }
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &[][..]),
            };
            if name.is_empty() {
                return Ok(None); // a comment
            }
            let value = std::str::from_utf8(value).context("an SSE field is not UTF-8")?;
            match name {
                b"event" => self.event = Some(value.to_owned()),
                b"data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                b"id" if !value.contains('\0') => self.id = Some(value.to_owned()),
                _ => {} // `retry` and unknown fields
            }
            Ok(None)
        }

        /// Ends a frame at a blank line. One without data is dropped, as
        /// an `EventSource` drops it.
        fn dispatch(&mut self) -> Option<Frame> {
            let event = self.event.take();
            let id = self.id.take();
            let data = self.data.take()?;
            Some(Frame {
                event: event.unwrap_or_else(|| "message".to_owned()),
                data,
                id,
            })
        }
    }

    /// The length of the first line and of its terminator, once both are
    /// known. A CR at the very end may be the first half of a CRLF, so it
    /// waits for the next byte.
    fn find_line_end(input: &[u8]) -> Option<(usize, usize)> {
        let end = input.iter().position(|&b| b == b'\n' || b == b'\r')?;
        match (input[end], input.get(end + 1)) {
            (b'\n', _) => Some((end, 1)),
            (_, Some(b'\n')) => Some((end, 2)),
            (_, Some(_)) => Some((end, 1)),
            (_, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    /// Feeds `input` to `step` split at `cut`, the way two reads would.
    fn in_two_reads<T>(
        input: &[u8],
        cut: usize,
        mut step: impl FnMut(&mut BytesMut) -> Vec<T>,
    ) -> Vec<T> {
        let mut buffer = BytesMut::from(&input[..cut]);
        let mut out = step(&mut buffer);
        buffer.extend_from_slice(&input[cut..]);
        out.extend(step(&mut buffer));
        out
    }

    fn frames(parser: &mut sse::Parser, buffer: &mut BytesMut) -> Vec<sse::Frame> {
        std::iter::from_fn(|| parser.next_frame(buffer).unwrap()).collect()
    }

    #[test]
    fn chunked_bodies_decode_the_same_wherever_the_reads_split() {
        let wire = b"7\r\nevent: \r\n19;ext=1\r\nconnected\ndata: {\"a\":1}\n\n\r\n0\r\nX-Trailer: y\r\n\r\n";
        let expected = b"event: connected\ndata: {\"a\":1}\n\n";
        for cut in 0..=wire.len() {
            let mut decoder = http::ChunkedDecoder::default();
            let mut body = BytesMut::new();
            let mut done = false;
            in_two_reads(wire, cut, |input| {
                done = decoder.decode(input, &mut body).unwrap();
                Vec::<()>::new()
            });
            assert!(done, "cut at {cut}");
            assert_eq!(&body[..], &expected[..], "cut at {cut}");
        }
    }

    #[test]
    fn a_chunk_longer_than_its_size_is_an_error() {
        let mut decoder = http::ChunkedDecoder::default();
        let mut input = BytesMut::from(&b"2\r\nabc\r\n"[..]);
        assert!(decoder.decode(&mut input, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn sse_frames_parse_the_same_wherever_the_reads_split() {
        let wire = b"retry: 3000\r\nid: 42\r\nevent: progress_update\r\ndata: {\"progress\":75}\r\n\r\n: comment\n\nevent: heartbeat\rdata:{\"ts\":1}\r\rdata: a\ndata: b\n\n";
        let expected = vec![
            sse::Frame {
                event: "progress_update".into(),
                data: "{\"progress\":75}".into(),
                id: Some("42".into()),
            },
            sse::Frame {
                event: "heartbeat".into(),
                data: "{\"ts\":1}".into(),
                id: None,
            },
            sse::Frame {
                event: "message".into(),
                data: "a\nb".into(),
                id: None,
            },
        ];
        for cut in 0..=wire.len() {
            let mut parser = sse::Parser::default();
            let parsed = in_two_reads(wire, cut, |buffer| frames(&mut parser, buffer));
            assert_eq!(parsed, expected, "cut at {cut}");
        }
    }

    #[test]
    fn a_frame_without_data_is_not_dispatched() {
        let mut parser = sse::Parser::default();
        let mut buffer = BytesMut::from(&b"event: lonely\n\ndata: x\n\n"[..]);
        let parsed = frames(&mut parser, &mut buffer);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].event, "message");
    }

    #[test]
    fn seq_sets_count_duplicates_and_overlap() {
        let mut seen = SeqSet::new(130);
        assert!(seen.insert(0));
        assert!(seen.insert(129));
        assert!(!seen.insert(129));
        assert!(!seen.insert(130));
        let mut acked = SeqSet::new(130);
        acked.insert(129);
        acked.insert(5);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen.common_with(&acked), 1);
    }

    fn payload(batch: u64, live_only: bool) -> PayloadArgs {
        PayloadArgs {
            event_type: "file_change".into(),
            payload_bytes: 3,
            batch,
            live_only,
        }
    }

    async fn loopback_target() -> Arc<Target> {
        let url = Url::parse("http://127.0.0.1:8080").unwrap();
        Arc::new(Target::resolve(&url, None).await.unwrap())
    }

    #[tokio::test]
    async fn a_single_event_is_published_as_an_object() {
        let job = PublishJob::new(&loopback_target().await, &payload(1, false), 9, 10, None);
        let mut body = String::new();
        job.encode(&mut body, 4..5, 1234);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"event_type": "file_change",
                "data": {"run": 9, "seq": 4, "sent_us": 1234, "pad": "xxx"}})
        );
    }

    #[tokio::test]
    async fn batches_are_published_as_arrays() {
        let job = PublishJob::new(&loopback_target().await, &payload(3, true), 9, 10, None);
        let mut body = String::new();
        job.encode(&mut body, 8..10, 1);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let events = value.as_array().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1]["data"]["seq"], 9);
        assert_eq!(events[1]["persist"], false);
    }

    #[tokio::test]
    async fn only_loopback_targets_are_accepted() {
        for accepted in [
            "http://127.0.0.1:8080",
            "http://127.3.4.5:1/prefix/",
            "http://[::1]:8080",
            "http://localhost:8080",
        ] {
            let url = Url::parse(accepted).unwrap();
            assert!(Target::resolve(&url, None).await.is_ok(), "{accepted}");
        }
        for refused in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "http://[2001:db8::1]/",
            "https://127.0.0.1:8443",
        ] {
            let url = Url::parse(refused).unwrap();
            assert!(Target::resolve(&url, None).await.is_err(), "{refused}");
        }
    }

    #[tokio::test]
    async fn endpoints_keep_the_url_path_as_a_prefix() {
        let url = Url::parse("http://127.0.0.1:9/broker/").unwrap();
        let target = Target::resolve(&url, None).await.unwrap();
        assert_eq!(target.path("/sse/publish"), "/broker/sse/publish");
    }
}
