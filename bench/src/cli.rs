//! The command line: one subcommand per mode, with the options each takes.

use clap::{Args, Parser, Subcommand};
use url::Url;

use crate::generation::Via;

#[derive(Debug, Parser)]
#[command(
    name = "sse-bench",
    version,
    about = "Load generator for sse-broker: fan-out latency, memory per idle stream, publish throughput (loopback only)"
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
}

impl Mode {
    pub fn common(&self) -> &CommonArgs {
        match self {
            Mode::Fanout(args) => &args.common,
            Mode::Idle(args) => &args.common,
            Mode::Publish(args) => &args.common,
            Mode::Tokens(args) => &args.common,
        }
    }
}

/// Options every mode takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Base URL of the broker. Only loopback hosts are accepted.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: Url,
    /// Bearer token sent with every request, for a broker with auth on.
    #[arg(long, env = "SSE_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Upper bound on the whole run, in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: u64,
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

#[derive(Debug, Args)]
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

/// Accepts exactly what the broker accepts as a type name (its own parser),
/// which also keeps the name safe unescaped in a URL query and in JSON.
fn parse_event_type(raw: &str) -> Result<String, String> {
    sse_broker::domain::EventType::parse(raw)
        .map(|event_type| event_type.to_string())
        .map_err(|error| error.to_string())
}
