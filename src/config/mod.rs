//! Configuration: one typed [`Settings`], each setting declared once.
//!
//! A setting is one field. Its `///` line is its `--help` text; `#[arg]`
//! names its flag, its environment variable, its default (which `--help`
//! shows) and the parser that types its value at the edge; `#[serde]` names
//! the key `check-config` and `/sse/monitoring` show it under and, for a
//! secret, the serializer that masks it. Its key in the TOML file is the
//! long flag with `_`. Groups with rules of their own are flattened in from
//! their own files: [`AuthSettings`], [`LimitSettings`], [`HealthThresholds`],
//! [`TlsSettings`].
//!
//! [`parse_layered`] resolves flag > env > file > default once, through
//! clap, so a value from any source goes through the same parser (see
//! `load.rs`). [`Settings::validated`] then applies the rules that judge
//! parsed values (see `validate.rs`) and returns the warnings as values.
//!
//! Adding a setting: a field here (or in its group); a rule in `validate.rs`
//! if it needs one; its row in docs/configuration.md (a test checks that
//! every flag is there).

mod auth;
mod health;
mod limits;
mod load;
mod masked;
mod tls;
mod validate;
mod values;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;
use serde::Serialize;

pub use auth::{AuthSettings, MIN_HS256_SECRET_BYTES};
pub use health::HealthThresholds;
pub use limits::{LimitSettings, RateLimit};
use load::defaults;
pub use load::{ConfigError, Environment, parse_layered, process_environment};
pub use masked::masked_url;
pub use tls::TlsSettings;
pub use validate::Findings;
pub use values::{CorsOrigins, DatabaseUrl, LogFormat};

use crate::domain::EventType;
use values::{human, millis, seconds};

/// The effective configuration of one broker instance.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Settings {
    /// TOML file with any of the settings below (keys as the long flags, with `_`).
    #[arg(long, env = "SSE_BROKER_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Listen address, IP:PORT.
    // Loopback, because authentication is off by default.
    #[arg(
        long,
        env = "SSE_BROKER_BIND",
        global = true,
        default_value = "127.0.0.1:8080",
        value_parser = values::socket_address
    )]
    pub bind: SocketAddr,

    /// Event store: `sqlite://PATH` or `postgres://...`.
    // SQLite, so that the broker runs with no other service.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        default_value = "sqlite://data/sse-broker.db",
        value_parser = DatabaseUrl::parse
    )]
    #[serde(rename = "database_url")]
    pub database: DatabaseUrl,

    /// Redis URL; set = cluster mode over Redis pub/sub.
    #[arg(
        long,
        env = "REDIS_URL",
        global = true,
        hide_env_values = true,
        value_parser = values::redis_url
    )]
    #[serde(serialize_with = "masked::secret_url")]
    pub redis_url: Option<SecretString>,

    #[command(flatten)]
    #[serde(flatten, serialize_with = "AuthSettings::serialize_with_enabled")]
    pub auth: AuthSettings,

    #[command(flatten)]
    #[serde(flatten)]
    pub limits: LimitSettings,

    #[command(flatten)]
    pub health: HealthThresholds,

    #[command(flatten)]
    #[serde(flatten)]
    pub tls: TlsSettings,

    /// Heartbeat event period, in seconds.
    // Below any common proxy idle timeout (nginx: 60 s).
    #[arg(
        long = "heartbeat-secs",
        env = "SSE_BROKER_HEARTBEAT_SECS",
        global = true,
        default_value = "15",
        value_parser = seconds::parse
    )]
    #[serde(rename = "heartbeat_secs", serialize_with = "seconds::serialize")]
    pub heartbeat: Duration,

    /// Janitor period, in seconds.
    #[arg(
        long = "cleanup-interval-secs",
        env = "SSE_BROKER_CLEANUP_INTERVAL_SECS",
        global = true,
        default_value = "60",
        value_parser = seconds::parse
    )]
    #[serde(
        rename = "cleanup_interval_secs",
        serialize_with = "seconds::serialize"
    )]
    pub cleanup_interval: Duration,

    /// Stale connections closed per cleanup batch.
    #[arg(
        long,
        env = "SSE_BROKER_CLEANUP_BATCH_SIZE",
        global = true,
        default_value_t = 10
    )]
    pub cleanup_batch_size: usize,

    /// No successful write for this long = stale, in seconds.
    // Twenty missed heartbeats: long enough that a busy client is never stale.
    #[arg(
        long = "stale-threshold-secs",
        env = "SSE_BROKER_STALE_THRESHOLD_SECS",
        global = true,
        default_value = "300",
        value_parser = seconds::parse
    )]
    #[serde(rename = "stale_threshold_secs", serialize_with = "seconds::serialize")]
    pub stale_threshold: Duration,

    /// Open streams allowed at once, then 503.
    // Under the 20,000-descriptor limit of our machines, with room for the store.
    #[arg(
        long,
        env = "SSE_BROKER_MAX_CONNECTIONS",
        global = true,
        default_value_t = 10_000
    )]
    pub max_connections: usize,

    /// Outgoing events queued per stream before it is closed as slow.
    // About a second of a fast token stream; past it the client is too slow.
    #[arg(
        long,
        env = "SSE_BROKER_QUEUE_CAPACITY",
        global = true,
        default_value_t = 1024
    )]
    pub queue_capacity: usize,

    /// Hold a frame reaching an idle stream this many ms, so the events
    /// arriving meanwhile leave in the same write (0: write at once).
    // Off by default: it adds its whole value to every event's latency; a
    // hub fanning frequent events out to many streams trades a few ms for
    // far fewer sends (docs/performance.md has the measurements).
    #[arg(
        long = "write-delay-ms",
        env = "SSE_BROKER_WRITE_DELAY_MS",
        global = true,
        default_value = "0",
        value_parser = millis::parse
    )]
    #[serde(rename = "write_delay_ms", serialize_with = "millis::serialize")]
    pub write_delay: Duration,

    /// Routed events kept in memory, encoded: a resume within them is
    /// replayed without the store (0: every replay reads the store).
    // A reconnect storm (a proxy restart) read from the store is one query
    // per page per stream; 16,384 typical events are a few MiB.
    #[arg(
        long,
        env = "SSE_BROKER_REPLAY_CACHE_EVENTS",
        global = true,
        default_value_t = 16_384
    )]
    pub replay_cache_events: usize,

    /// Upper bound of the replay cache's memory, in MiB (its frames, and the
    /// parsed data of task events); the oldest events leave first.
    #[arg(
        long,
        env = "SSE_BROKER_REPLAY_CACHE_MIB",
        global = true,
        default_value_t = 64
    )]
    pub replay_cache_mib: usize,

    /// Extra event types, comma-separated.
    // `std::vec::Vec` (not `Vec`): one value, split by the parser, which
    // trims entries and skips empty ones; unset (the hidden empty default)
    // adds none.
    #[arg(
        long = "event-types",
        env = "SSE_BROKER_EVENT_TYPES",
        global = true,
        default_value = "",
        hide_default_value = true,
        value_parser = values::event_types
    )]
    #[serde(rename = "event_types")]
    pub extra_event_types: std::vec::Vec<EventType>,

    /// Allowed CORS origins, comma-separated, or `*`.
    // Unset: no `Access-Control-Allow-Origin`, same-origin pages only.
    #[arg(
        long,
        env = "SSE_BROKER_CORS_ORIGINS",
        global = true,
        default_value = "",
        hide_default_value = true,
        value_parser = CorsOrigins::parse
    )]
    pub cors_origins: CorsOrigins,

    /// Publish body limit in bytes, then 413.
    #[arg(
        long,
        env = "SSE_BROKER_MAX_BODY_BYTES",
        global = true,
        default_value_t = 64 * 1024
    )]
    pub max_body_bytes: usize,

    /// The longest line (NDJSON) or event (an event stream's `data`) of a
    /// generation upload (`POST /tasks/{id}/stream`) in bytes, then 413;
    /// the body itself may be as long as the generation. Also the longest
    /// input of a tool call a provider streams in fragments.
    // A provider's closing events repeat its whole answer (OpenAI
    // Responses' `response.completed` and `*.done` events carry all the
    // text and reasoning summaries): 4 MiB holds an answer of the longest
    // output any model streams, with its JSON escapes.
    #[arg(
        long,
        env = "SSE_BROKER_MAX_UPLOAD_LINE_BYTES",
        global = true,
        default_value_t = 4 * 1024 * 1024
    )]
    pub max_upload_line_bytes: usize,

    /// Memory, in MiB, that all generation uploads together may hold in
    /// unfinished lines beyond 64 KiB each, one producer (a token's `sub`)
    /// at most half of it; an upload that needs more is refused with 503
    /// (`upload_memory_full`).
    // Each upload may hold a line of --max-upload-line-bytes (4 MiB) until
    // it ends, and nothing else bounds how many do so at once. A token or
    // a provider's chunk is far below the free 64 KiB; 256 MiB holds 64
    // answers' closing events of the longest output at once.
    #[arg(
        long,
        env = "SSE_BROKER_UPLOAD_MEMORY_MIB",
        global = true,
        default_value_t = 256
    )]
    pub upload_memory_mib: usize,

    /// Seconds a client has to send a whole request body, then 408.
    // A full 64 KiB body over a 20 kbit/s link; a client slower than that is
    // holding a connection open, not sending a request.
    #[arg(
        long = "body-read-timeout-secs",
        env = "SSE_BROKER_BODY_READ_TIMEOUT_SECS",
        global = true,
        default_value = "30",
        value_parser = seconds::parse
    )]
    #[serde(
        rename = "body_read_timeout_secs",
        serialize_with = "seconds::serialize"
    )]
    pub body_read_timeout: Duration,

    /// How long stored events are kept, e.g. `24h`, `90m`.
    #[arg(
        long,
        env = "SSE_BROKER_RETENTION",
        global = true,
        default_value = "24h",
        value_parser = human::parse
    )]
    #[serde(serialize_with = "human::serialize")]
    pub retention: Duration,

    /// Longest wait for one event-store operation (publish commit, replay or
    /// history page, task write), in milliseconds; past it the request
    /// answers 503 and nothing is stored.
    // A healthy commit or page read takes milliseconds; 5 s is far above that
    // (and above the old SQLite busy wait), yet short enough that a publisher
    // hears "503, retry" well before its own HTTP timeout (commonly 10-30 s)
    // instead of waiting out a lock or a stalled disk.
    #[arg(
        long = "store-timeout-ms",
        env = "SSE_BROKER_STORE_TIMEOUT_MS",
        global = true,
        default_value = "5000",
        value_parser = millis::parse
    )]
    #[serde(rename = "store_timeout_ms", serialize_with = "millis::serialize")]
    pub store_timeout: Duration,

    /// Allow binding a non-loopback address with authentication off.
    #[arg(long, env = "SSE_BROKER_INSECURE_NO_AUTH", global = true)]
    pub insecure_no_auth: bool,

    /// HTTP worker threads; 0 = one per core.
    #[arg(
        long,
        env = "SSE_BROKER_WORKERS",
        global = true,
        default_value = "0",
        value_parser = values::worker_count
    )]
    pub workers: usize,

    /// Namespace of this deployment's Redis channel and keys, so several
    /// deployments can share one Redis.
    #[arg(
        long,
        env = "SSE_BROKER_CLUSTER_NAME",
        global = true,
        default_value = "sse-broker"
    )]
    pub cluster_name: String,

    /// Fail a task whose producer wrote nothing for this long, in seconds.
    // Five minutes without a token or progress report: the producer is gone.
    #[arg(
        long = "task-orphan-timeout-secs",
        env = "SSE_BROKER_TASK_ORPHAN_TIMEOUT_SECS",
        global = true,
        default_value = "300",
        value_parser = seconds::parse
    )]
    #[serde(
        rename = "task_orphan_timeout_secs",
        serialize_with = "seconds::serialize"
    )]
    pub task_orphan_timeout: Duration,

    /// A streamed upload's deltas arriving within this many ms of its last
    /// write become one `text` event (0: only what arrived meanwhile). Deltas
    /// of several writers arriving while a write of the task is being stored
    /// always become one.
    // Below a frame at 60 Hz: a reader sees no difference, while a model
    // streaming faster than 100 tokens a second stores and delivers fewer
    // events. Only an upload is paced: a producer that waits for each
    // answer of `/text` could not add to the window, only wait it out.
    #[arg(
        long = "text-coalesce-ms",
        env = "SSE_BROKER_TEXT_COALESCE_MS",
        global = true,
        default_value = "10",
        value_parser = millis::parse
    )]
    #[serde(rename = "text_coalesce_ms", serialize_with = "millis::serialize")]
    pub text_coalesce: Duration,

    /// This instance's name in cluster listings, logs and metrics; a random
    /// one (12 hex digits) when unset.
    #[arg(
        long,
        env = "SSE_BROKER_INSTANCE_ID",
        global = true,
        default_value = "",
        hide_default_value = true,
        value_parser = values::instance_id
    )]
    pub instance_id: String,

    /// Log format.
    #[arg(
        long,
        env = "SSE_BROKER_LOG_FORMAT",
        global = true,
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

#[cfg(test)]
mod tests;
