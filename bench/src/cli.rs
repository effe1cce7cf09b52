//! The command line: one subcommand per mode, with the options each takes.

use clap::{Args, Parser, Subcommand};
use url::Url;

use crate::generation::Via;

#[derive(Debug, Parser)]
#[command(
    name = "sse-bench",
    version,
    about = "Load generator for sse-broker: fan-out latency, memory per idle stream, publish throughput, \
             reconnect storms and churn soaks (loopback only)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Streams that all receive every published event: latency, delivery, throughput.
    Fanout(FanoutArgs),
    /// Streams that receive nothing: connect rate and broker memory per stream.
    Idle(IdleArgs),
    /// Publishing with no stream open: events stored per second, request latency.
    Publish(PublishArgs),
    /// AI generations: tokens per second, per-token latency, exact text, catch-up.
    Tokens(TokensArgs),
    /// The most concurrent generations the broker holds within a token-latency p99.
    Capacity(CapacityArgs),
    /// The saturated publish path: stored publishes/s, deliveries/s, latency, CPU per event.
    Saturate(SaturateArgs),
    /// A reconnect storm: every stream resumes at once and replays what it missed.
    Storm(StormArgs),
    /// A churn soak: streams reconnect all the time; broker RSS and fds over time.
    Soak(SoakArgs),
}

impl Mode {
    pub fn common(&self) -> &CommonArgs {
        match self {
            Mode::Fanout(args) => &args.common,
            Mode::Idle(args) => &args.common,
            Mode::Publish(args) => &args.common,
            Mode::Tokens(args) => &args.common,
            Mode::Capacity(args) => &args.load.common,
            Mode::Saturate(args) => &args.common,
            Mode::Storm(args) => &args.common,
            Mode::Soak(args) => &args.common,
        }
    }

    /// `--timeout-secs`, or the mode's default: a soak is as long as it is
    /// told to be, so its bound is its planned length plus a margin.
    pub fn timeout_secs(&self) -> u64 {
        const MARGIN_SECS: u64 = 120;
        self.common().timeout_secs.unwrap_or(match self {
            Mode::Soak(args) => args.secs + args.drain_secs + args.settle_secs + MARGIN_SECS,
            _ => MARGIN_SECS,
        })
    }
}

/// Options every mode takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Base URL of the broker. Only loopback hosts are accepted.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: Url,
    /// Bearer token sent with every request, for a broker with auth on.
    #[arg(long, env = "SSE_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Upper bound on the whole run, in seconds [default: 120; soak: its
    /// --secs, --drain-secs and --settle-secs plus 120; capacity: each probe].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: Option<u64>,
    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
    /// Worker threads of the bench's own runtime (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

/// What the published events look like (fanout and publish).
#[derive(Debug, Args)]
pub struct PayloadArgs {
    /// Event type to publish (and, in fanout, to subscribe to).
    #[arg(long, default_value = "file_change", value_parser = parse_event_type)]
    pub event_type: String,
    /// Length of the `pad` string in each event's data.
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// Events per publish request; above 1 the body is a JSON array.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Publish with `"persist": false`: delivered live, never stored.
    #[arg(long)]
    pub live_only: bool,
}

#[derive(Debug, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Streams to open.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub streams: u64,
    /// Publish to this broker instead of `--url` (cross-instance latency in
    /// cluster mode: streams on one instance, publishers on another).
    #[arg(long)]
    pub publish_url: Option<Url>,
    /// Events to publish.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Publish rate in events per second; 0 publishes as fast as the broker acknowledges.
    #[arg(long, default_value_t = 500)]
    pub rate: u64,
    /// Keep-alive connections publishing in parallel.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub publishers: u64,
    /// After the last acknowledgement, how long to wait for deliveries in flight.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
    /// Streams being opened at once; more only overflows the listen backlog.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_concurrency: u64,
    /// The broker's process id, to sample its memory (VmRSS) from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Streams to open.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub streams: u64,
    /// How long to hold the streams open once all are connected, in seconds.
    #[arg(long, default_value_t = 10)]
    pub hold_secs: u64,
    /// Event type the streams subscribe to (nothing is published).
    #[arg(long, default_value = "file_change", value_parser = parse_event_type)]
    pub event_type: String,
    /// Streams being opened at once; more only overflows the listen backlog.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_concurrency: u64,
    /// The broker's process id, to sample its memory (VmRSS) from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Events to publish.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Keep-alive connections publishing in parallel.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
}

#[derive(Debug, Clone, Args)]
pub struct TokensArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Generations (tasks) written at the same time.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub generations: u64,
    /// Tokens per generation.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub tokens: u64,
    /// Bytes per token (ASCII).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub token_bytes: u64,
    /// Tokens per second of each generation; 0 writes as fast as the broker takes them.
    #[arg(long, default_value_t = 50)]
    pub rate: u64,
    /// How tokens are written: one streamed upload per generation, or one request each.
    #[arg(long, value_enum, default_value_t = Via::Upload)]
    pub via: Via,
    /// Task streams per generation watching while it is written.
    #[arg(long, default_value_t = 1)]
    pub viewers: u64,
    /// Task streams per generation opened after it completed (catch-up).
    #[arg(long, default_value_t = 1)]
    pub late_viewers: u64,
    /// The broker's process id, to read its CPU time from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
}

/// `tokens` runs at growing and then bisected `--generations`, each on the
/// same broker, until the largest that stays within `--p99-ms` is known.
#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// The load of each probe; its `--generations` is the first probe's.
    #[command(flatten)]
    pub load: TokensArgs,
    /// A probe is within when every token was accepted, every viewer's text
    /// was exact and the live viewers' token latency p99 is at most this.
    #[arg(long, default_value_t = 50.0)]
    pub p99_ms: f64,
    /// No probe above this many generations.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_generations: u64,
    /// The search stops once the largest probe within and the smallest
    /// beyond are this close.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..))]
    pub resolution: u64,
    /// Pause between probes, for the broker to close the last probe's
    /// streams and catch up with its store.
    #[arg(long, default_value_t = 5)]
    pub settle_secs: u64,
}

#[derive(Debug, Args)]
pub struct SaturateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Event type to publish and subscribe to.
    #[arg(long, default_value = "file_change", value_parser = parse_event_type)]
    pub event_type: String,
    /// Length of the `pad` string in each event's data.
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// Streams subscribed to every event.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub streams: u64,
    /// Keep-alive connections publishing one stored event per request.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub publishers: u64,
    /// How long to publish, in seconds (unless --events is given).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub secs: u64,
    /// Publish exactly this many events instead of publishing for --secs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: Option<u64>,
    /// After the last acknowledgement, how long to wait for deliveries in flight.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
    /// Streams being opened at once; more only overflows the listen backlog.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_concurrency: u64,
    /// The broker's process id, to read its CPU time and memory from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Streams that close and then all resume at once.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub streams: u64,
    /// Events published while every stream is closed: what each one must replay.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Keep-alive connections publishing the missed events.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub publishers: u64,
    /// Streams being opened at once for the first time.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_concurrency: u64,
    /// Streams reconnecting at once in the storm; 0: all of them.
    #[arg(long, default_value_t = 0)]
    pub reopen_concurrency: u64,
    /// How long to wait for the seed event, and for the storm to catch up.
    #[arg(long, default_value_t = 60)]
    pub drain_secs: u64,
    /// Period of the `GET /health` probe during the storm, in milliseconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub health_interval_ms: u64,
    /// The broker's process id, to read its CPU time and memory from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Streams kept open (each one closed and resumed now and then).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub streams: u64,
    /// Streams closed and resumed per second, round robin; 0: no churn.
    #[arg(long, default_value_t = 50)]
    pub churn: u64,
    /// Publish rate in events per second.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// Keep-alive connections publishing in parallel.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub publishers: u64,
    /// How long to publish and churn, in seconds.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u64).range(1..))]
    pub secs: u64,
    /// Period of the broker samples (RSS, open fds), in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_secs: u64,
    /// After every stream is closed, how long to wait before the last sample.
    #[arg(long, default_value_t = 10)]
    pub settle_secs: u64,
    /// After the last acknowledgement, how long to wait for deliveries in flight.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
    /// Streams being opened at once at the start.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_concurrency: u64,
    /// The broker's process id, to sample its RSS, fds and CPU time from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
}

/// Accepts exactly what the broker accepts as a type name (its own parser),
/// which also keeps the name safe unescaped in a URL query and in JSON.
fn parse_event_type(raw: &str) -> Result<String, String> {
    sse_broker::domain::EventType::parse(raw)
        .map(|event_type| event_type.to_string())
        .map_err(|error| error.to_string())
}
