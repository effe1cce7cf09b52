//! Configuration: one typed [`Settings`], loaded in one place.
//!
//! Every setting has a flag, an environment variable and a key in an optional
//! TOML file (`--config FILE` / `SSE_BROKER_CONFIG`). Precedence is resolved
//! once, in [`Settings::load`]: flag > env > file > default. clap already
//! gives flag > env; the arguments are all `Option`s so that "not given" falls
//! through to the file and then to the default named beside each field.
//! [`Settings::validate`] returns warnings and errors as values so `serve`
//! logs them and `check-config` prints them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::EventType;

const DEFAULT_BIND: &str = "127.0.0.1:8080";
const DEFAULT_DATABASE_URL: &str = "sqlite://data/sse-broker.db";
/// Below any common proxy idle timeout (nginx: 60 s).
const DEFAULT_HEARTBEAT_SECS: u64 = 15;
const DEFAULT_CLEANUP_INTERVAL_SECS: u64 = 60;
const DEFAULT_CLEANUP_BATCH_SIZE: usize = 10;
/// Twenty missed heartbeats: long enough that a busy client is never stale.
const DEFAULT_STALE_THRESHOLD_SECS: u64 = 300;
/// Under the 20,000-descriptor limit of our machines, with room for the store.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// About a second of a fast token stream; past it the client is too slow.
const DEFAULT_QUEUE_CAPACITY: usize = 1024;
const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// A full 64 KiB body over a 20 kbit/s link; a client slower than that is
/// holding a connection open, not sending a request.
const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 30;
const DEFAULT_RETENTION: &str = "24h";
/// Five minutes without a token or progress report: the producer is gone.
const DEFAULT_TASK_ORPHAN_TIMEOUT_SECS: u64 = 300;
const DEFAULT_JWKS_REFRESH_SECS: u64 = 300;
/// An attacker sending random `kid`s costs the IdP one fetch per this.
const DEFAULT_JWKS_MIN_REFRESH_SECS: u64 = 10;
const DEFAULT_JWT_LEEWAY_SECS: u64 = 30;
/// Two reconnects a second, sustained, is a reconnect loop, not a user.
const DEFAULT_STREAM_RATE_PER_USER: &str = "120/min";
const DEFAULT_MAX_STREAMS_PER_USER: usize = 100;
/// A healthy commit or page read takes milliseconds; 5 s is far above that
/// (and above the old SQLite busy wait), yet short enough that a publisher
/// hears "503, retry" well before its own HTTP timeout (commonly 10-30 s)
/// instead of waiting out a lock or a stalled disk.
const DEFAULT_STORE_TIMEOUT_MS: u64 = 5000;
/// Under this, ordinary commits under load (fsync, a busy PostgreSQL) risk
/// being refused.
const STORE_TIMEOUT_WARN_BELOW_MS: u64 = 100;
/// Over this, publishers and resuming clients wait longer than most HTTP
/// clients and proxies do.
const STORE_TIMEOUT_WARN_ABOVE_MS: u64 = 60_000;

/// The settings as given on the command line or in the environment.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct SettingsArgs {
    /// TOML file with any of the settings below (keys as the long flags, with `_`).
    #[arg(long, env = "SSE_BROKER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "SSE_BROKER_BIND", global = true)]
    pub bind: Option<String>,
    /// `sqlite://PATH` or `postgres://...` [default: sqlite://data/sse-broker.db].
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Redis URL; set = cluster mode over Redis pub/sub.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// HS256 key; set = authentication on. Repeat it to accept several
    /// during a rotation (the first signs `sse-broker token`).
    #[arg(
        long,
        env = "SSE_BROKER_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub jwt_secret: Vec<String>,
    /// PEM public key file (RS256 or ES256); set = authentication on.
    /// Repeatable, or comma-separated, to accept several during a rotation.
    #[arg(
        long,
        env = "SSE_BROKER_JWT_PUBLIC_KEY",
        global = true,
        value_delimiter = ','
    )]
    pub jwt_public_key: Vec<PathBuf>,
    /// JWKS endpoint (http or https), keys picked by `kid`; set = authentication on.
    #[arg(long, env = "SSE_BROKER_JWKS_URL", global = true)]
    pub jwks_url: Option<String>,
    /// Re-fetch the JWKS this often, in seconds [default: 300].
    #[arg(long, env = "SSE_BROKER_JWKS_REFRESH_SECS", global = true)]
    pub jwks_refresh_secs: Option<u64>,
    /// A token with an unknown `kid` re-fetches the JWKS at most this often,
    /// in seconds [default: 10].
    #[arg(long, env = "SSE_BROKER_JWKS_MIN_REFRESH_SECS", global = true)]
    pub jwks_min_refresh_secs: Option<u64>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds [default: 30].
    #[arg(long, env = "SSE_BROKER_JWT_LEEWAY_SECS", global = true)]
    pub jwt_leeway_secs: Option<u64>,
    /// Required `aud` claim, when set.
    #[arg(long, env = "SSE_BROKER_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// Required `iss` claim, when set.
    #[arg(long, env = "SSE_BROKER_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    /// Heartbeat event period in seconds [default: 15].
    #[arg(long, env = "SSE_BROKER_HEARTBEAT_SECS", global = true)]
    pub heartbeat_secs: Option<u64>,
    /// Janitor period in seconds [default: 60].
    #[arg(long, env = "SSE_BROKER_CLEANUP_INTERVAL_SECS", global = true)]
    pub cleanup_interval_secs: Option<u64>,
    /// Connections closed per cleanup batch [default: 10].
    #[arg(long, env = "SSE_BROKER_CLEANUP_BATCH_SIZE", global = true)]
    pub cleanup_batch_size: Option<usize>,
    /// No successful write for this long = stale, in seconds [default: 300].
    #[arg(long, env = "SSE_BROKER_STALE_THRESHOLD_SECS", global = true)]
    pub stale_threshold_secs: Option<u64>,
    /// Open streams allowed at once, then 503 [default: 10000].
    #[arg(long, env = "SSE_BROKER_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// Outgoing events queued per stream before it is closed as slow [default: 1024].
    #[arg(long, env = "SSE_BROKER_QUEUE_CAPACITY", global = true)]
    pub queue_capacity: Option<usize>,
    /// Extra event types, comma-separated.
    #[arg(long, env = "SSE_BROKER_EVENT_TYPES", global = true)]
    pub event_types: Option<String>,
    /// Allowed CORS origins, comma-separated, or `*`.
    #[arg(long, env = "SSE_BROKER_CORS_ORIGINS", global = true)]
    pub cors_origins: Option<String>,
    /// Publish body limit in bytes, then 413 [default: 65536].
    #[arg(long, env = "SSE_BROKER_MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<usize>,
    /// Seconds a client has to send a whole request body, then 408 [default: 30].
    #[arg(long, env = "SSE_BROKER_BODY_READ_TIMEOUT_SECS", global = true)]
    pub body_read_timeout_secs: Option<u64>,
    /// How long stored events are kept, e.g. `24h`, `90m` [default: 24h].
    #[arg(long, env = "SSE_BROKER_RETENTION", global = true)]
    pub retention: Option<String>,
    /// Longest wait for one event-store operation (publish commit, replay or
    /// history page, task write), in milliseconds; past it the request
    /// answers 503 and nothing is stored [default: 5000].
    #[arg(long, env = "SSE_BROKER_STORE_TIMEOUT_MS", global = true)]
    pub store_timeout_ms: Option<u64>,
    /// Allow binding a non-loopback address with authentication off.
    #[arg(long, env = "SSE_BROKER_INSECURE_NO_AUTH", global = true)]
    pub insecure_no_auth: bool,
    /// HTTP worker threads [default: number of cores].
    #[arg(long, env = "SSE_BROKER_WORKERS", global = true)]
    pub workers: Option<usize>,
    /// Namespace of this deployment's Redis channel and keys, so several
    /// deployments can share one Redis [default: sse-broker].
    #[arg(long, env = "SSE_BROKER_CLUSTER_NAME", global = true)]
    pub cluster_name: Option<String>,
    /// Fail a task whose producer wrote nothing for this long, in seconds [default: 300].
    #[arg(long, env = "SSE_BROKER_TASK_ORPHAN_TIMEOUT_SECS", global = true)]
    pub task_orphan_timeout_secs: Option<u64>,
    /// This instance's name in cluster listings [default: random].
    #[arg(long, env = "SSE_BROKER_INSTANCE_ID", global = true)]
    pub instance_id: Option<String>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "SSE_BROKER_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// New streams per client address: `N/s`, `N/min`, `N/h` or `off` [default: off].
    #[arg(long, env = "SSE_BROKER_STREAM_RATE_PER_IP", global = true)]
    pub stream_rate_per_ip: Option<String>,
    /// New streams per user (token `sub`) [default: 120/min].
    #[arg(long, env = "SSE_BROKER_STREAM_RATE_PER_USER", global = true)]
    pub stream_rate_per_user: Option<String>,
    /// Publishes (events, test events, task writes) per user [default: off].
    #[arg(long, env = "SSE_BROKER_PUBLISH_RATE_PER_USER", global = true)]
    pub publish_rate_per_user: Option<String>,
    /// Simultaneous streams per user on this instance; 0 = no cap [default: 100].
    #[arg(long, env = "SSE_BROKER_MAX_STREAMS_PER_USER", global = true)]
    pub max_streams_per_user: Option<usize>,
    /// Reverse proxies whose `X-Forwarded-For` names the client, comma-separated IPs.
    #[arg(long, env = "SSE_BROKER_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,
    /// Health warning above this many active streams [default: 1000].
    #[arg(
        long,
        env = "SSE_BROKER_HEALTH_ACTIVE_CONNECTIONS_WARNING",
        global = true
    )]
    pub health_active_connections_warning: Option<usize>,
    /// Health warning above this many stale streams [default: 50].
    #[arg(
        long,
        env = "SSE_BROKER_HEALTH_STALE_CONNECTIONS_WARNING",
        global = true
    )]
    pub health_stale_connections_warning: Option<usize>,
    /// Health warning above this many streams older than 6 h [default: 10].
    #[arg(
        long,
        env = "SSE_BROKER_HEALTH_VERY_OLD_CONNECTIONS_WARNING",
        global = true
    )]
    pub health_very_old_connections_warning: Option<usize>,
    /// Health warning above this cleanup error rate, 0-1 [default: 0.05].
    #[arg(
        long,
        env = "SSE_BROKER_HEALTH_CLEANUP_ERROR_RATE_WARNING",
        global = true
    )]
    pub health_cleanup_error_rate_warning: Option<f64>,
    /// Health alert (unhealthy) above this cleanup error rate, 0-1 [default: 0.10].
    #[arg(
        long,
        env = "SSE_BROKER_HEALTH_CLEANUP_ERROR_RATE_ALERT",
        global = true
    )]
    pub health_cleanup_error_rate_alert: Option<f64>,
    /// Local and Redis connection counts may differ by this much, or 10 %, before the
    /// mismatch alert [default: 5].
    #[arg(long, env = "SSE_BROKER_HEALTH_MISMATCH_TOLERANCE", global = true)]
    pub health_mismatch_tolerance: Option<usize>,
}

/// The same keys, read from the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    bind: Option<String>,
    database_url: Option<String>,
    redis_url: Option<String>,
    jwt_secret: Option<StringOrList>,
    jwt_public_key: Option<StringOrList>,
    jwks_url: Option<String>,
    jwks_refresh_secs: Option<u64>,
    jwks_min_refresh_secs: Option<u64>,
    jwt_leeway_secs: Option<u64>,
    jwt_audience: Option<String>,
    jwt_issuer: Option<String>,
    heartbeat_secs: Option<u64>,
    cleanup_interval_secs: Option<u64>,
    cleanup_batch_size: Option<usize>,
    stale_threshold_secs: Option<u64>,
    max_connections: Option<usize>,
    queue_capacity: Option<usize>,
    event_types: Option<StringOrList>,
    cors_origins: Option<StringOrList>,
    max_body_bytes: Option<usize>,
    body_read_timeout_secs: Option<u64>,
    retention: Option<String>,
    store_timeout_ms: Option<u64>,
    insecure_no_auth: Option<bool>,
    workers: Option<usize>,
    cluster_name: Option<String>,
    task_orphan_timeout_secs: Option<u64>,
    instance_id: Option<String>,
    log_format: Option<String>,
    stream_rate_per_ip: Option<String>,
    stream_rate_per_user: Option<String>,
    publish_rate_per_user: Option<String>,
    max_streams_per_user: Option<usize>,
    trusted_proxies: Option<StringOrList>,
    health_active_connections_warning: Option<usize>,
    health_stale_connections_warning: Option<usize>,
    health_very_old_connections_warning: Option<usize>,
    health_cleanup_error_rate_warning: Option<f64>,
    health_cleanup_error_rate_alert: Option<f64>,
    health_mismatch_tolerance: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrList {
    String(String),
    List(Vec<String>),
}

impl StringOrList {
    fn into_csv(self) -> String {
        match self {
            Self::String(s) => s,
            Self::List(items) => items.join(","),
        }
    }

    fn into_list(self) -> Vec<String> {
        match self {
            Self::String(s) => vec![s],
            Self::List(items) => items,
        }
    }
}

/// Where events are stored.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Sqlite { path: PathBuf },
    Postgres { url: SecretString },
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("DATABASE_URL sqlite:// needs a file path".into());
            }
            return Ok(Self::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            url::Url::parse(raw).map_err(|e| format!("DATABASE_URL is not a valid URL: {e}"))?;
            return Ok(Self::Postgres {
                url: SecretString::from(raw.to_owned()),
            });
        }
        Err("DATABASE_URL must start with sqlite:// or postgres://".into())
    }

    /// The URL with any password replaced by `***`.
    pub fn masked(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { url } => mask_url(url.expose_secret()),
        }
    }
}

fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(url) => masked_url(&url),
        Err(_) => "***".into(),
    }
}

/// `url` fit for logs and listings: a password and every query value become
/// `***` (API keys travel there), and so does a user name that comes with a
/// password (`https://user:pass@idp/...`). Scheme, host, port, path and the
/// query's parameter names stay, so an operator can still tell which
/// endpoint is meant.
pub fn masked_url(url: &url::Url) -> String {
    let mut masked = url.clone();
    if masked.password().is_some() {
        let _ = masked.set_password(Some("***"));
        let _ = masked.set_username("***");
    }
    if masked.query().is_some() {
        let names: Vec<String> = url
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        masked
            .query_pairs_mut()
            .clear()
            .extend_pairs(names.iter().map(|name| (name.as_str(), "***")));
    }
    masked.to_string()
}

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq)]
pub enum CorsOrigins {
    None,
    Any,
    Exact(Vec<String>),
}

/// The shortest HS256 key accepted: a key as long as the hash output (RFC
/// 7518 §3.2); anything shorter can be brute-forced from one token.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// JWT verification settings; any key set turns authentication on.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// HS256 keys; several during a rotation, the first one signs.
    pub jwt_secrets: Vec<SecretString>,
    /// RS256/ES256 PEM public key files.
    pub jwt_public_keys: Vec<PathBuf>,
    pub jwks_url: Option<url::Url>,
    pub jwks_refresh_interval: Duration,
    /// Floor between two refreshes caused by unknown `kid`s.
    pub jwks_min_refresh_interval: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    pub audience: Option<String>,
    pub issuer: Option<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secrets: Vec::new(),
            jwt_public_keys: Vec::new(),
            jwks_url: None,
            jwks_refresh_interval: Duration::from_secs(DEFAULT_JWKS_REFRESH_SECS),
            jwks_min_refresh_interval: Duration::from_secs(DEFAULT_JWKS_MIN_REFRESH_SECS),
            leeway: Duration::from_secs(DEFAULT_JWT_LEEWAY_SECS),
            audience: None,
            issuer: None,
        }
    }
}

impl AuthSettings {
    pub fn enabled(&self) -> bool {
        !self.jwt_secrets.is_empty() || !self.jwt_public_keys.is_empty() || self.jwks_url.is_some()
    }
}

/// `N` requests per `period`: a burst of `N`, refilled evenly (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub period: Duration,
}

impl RateLimit {
    /// `N/s`, `N/min` or `N/h`; `off` (or empty) is `None`.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let invalid = || format!("rate {raw:?} must look like 10/s, 120/min, 1000/h or off");
        let (count, unit) = raw.split_once('/').ok_or_else(invalid)?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(invalid()),
        };
        if count == 0 {
            return Err(format!(
                "rate {raw:?} allows nothing; use off to disable it"
            ));
        }
        Ok(Some(Self { count, period }))
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => return write!(f, "{}/{}s", self.count, self.period.as_secs()),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Admission limits, per instance.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub streams_per_ip: Option<RateLimit>,
    pub streams_per_user: Option<RateLimit>,
    pub publishes_per_user: Option<RateLimit>,
    /// Simultaneous streams per user; 0 = no cap.
    pub max_streams_per_user: usize,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            streams_per_ip: None,
            streams_per_user: RateLimit::parse(DEFAULT_STREAM_RATE_PER_USER)
                .expect("the default rate parses"),
            publishes_per_user: None,
            max_streams_per_user: DEFAULT_MAX_STREAMS_PER_USER,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Thresholds of the health rules behind `/health` and `/sse/monitoring`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthThresholds {
    /// Active streams above this: warning.
    pub active_connections_warning: usize,
    /// Stale streams above this: warning.
    pub stale_connections_warning: usize,
    /// Streams older than 6 h above this: warning.
    pub very_old_connections_warning: usize,
    /// Cleanup error rate above this: warning.
    pub cleanup_error_rate_warning: f64,
    /// Cleanup error rate above this: alert.
    pub cleanup_error_rate_alert: f64,
    /// Local vs Redis connection counts may differ by this much (or 10 %).
    pub mismatch_tolerance: usize,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            active_connections_warning: 1000,
            stale_connections_warning: 50,
            very_old_connections_warning: 10,
            cleanup_error_rate_warning: 0.05,
            cleanup_error_rate_alert: 0.10,
            mismatch_tolerance: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The effective configuration of one broker instance.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database: DatabaseUrl,
    pub redis_url: Option<SecretString>,
    pub auth: AuthSettings,
    pub heartbeat: Duration,
    pub cleanup_interval: Duration,
    pub cleanup_batch_size: usize,
    pub stale_threshold: Duration,
    pub max_connections: usize,
    pub queue_capacity: usize,
    pub extra_event_types: Vec<EventType>,
    pub cors_origins: CorsOrigins,
    pub max_body_bytes: usize,
    /// The whole body of a request must arrive within this.
    pub body_read_timeout: Duration,
    pub retention: Duration,
    /// Bound of every event-store operation (see `store::Deadline`).
    pub store_timeout: Duration,
    pub insecure_no_auth: bool,
    pub workers: usize,
    pub cluster_name: String,
    pub task_orphan_timeout: Duration,
    pub instance_id: String,
    pub log_format: LogFormat,
    pub limits: LimitSettings,
    pub health: HealthThresholds,
}

/// Configuration that cannot run. The message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// What `validate` found: warnings are logged, errors stop start-up.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Findings {
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl Settings {
    /// Resolves flag > env > file > default, parses every value, and
    /// validates. Returns the settings with their warnings.
    pub fn load(args: &SettingsArgs) -> Result<(Self, Vec<String>), ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let mut errors = Vec::new();
        let settings = Self::resolve(args, file, &mut errors);
        match settings {
            Some(settings) if errors.is_empty() => {
                let findings = settings.validate();
                if findings.errors.is_empty() {
                    Ok((settings, findings.warnings))
                } else {
                    Err(ConfigError::Invalid(findings.errors))
                }
            }
            _ => Err(ConfigError::Invalid(errors)),
        }
    }

    /// Settings for tests and embedding: defaults, an in-memory-free SQLite
    /// path of the caller's choice, port 0.
    pub fn for_tests(database: DatabaseUrl) -> Self {
        let mut errors = Vec::new();
        let mut settings = Self::resolve(
            &SettingsArgs::default(),
            FileSettings::default(),
            &mut errors,
        )
        .expect("defaults are valid");
        settings.bind = "127.0.0.1:0".parse().expect("valid address");
        settings.database = database;
        settings.workers = 1;
        settings
    }

    fn resolve(args: &SettingsArgs, file: FileSettings, errors: &mut Vec<String>) -> Option<Self> {
        let bind_raw = pick(args.bind.clone(), file.bind, DEFAULT_BIND.to_owned());
        let bind = bind_raw
            .parse::<SocketAddr>()
            .map_err(|_| {
                errors.push(format!(
                    "bind {bind_raw:?} is not an address like 127.0.0.1:8080"
                ))
            })
            .ok();
        let database_raw = pick(
            args.database_url.clone(),
            file.database_url,
            DEFAULT_DATABASE_URL.to_owned(),
        );
        let database = DatabaseUrl::parse(&database_raw)
            .map_err(|e| errors.push(e))
            .ok();
        let redis_url = args
            .redis_url
            .clone()
            .or(file.redis_url)
            .filter(|s| !s.is_empty());
        if let Some(raw) = &redis_url {
            match url::Url::parse(raw) {
                Ok(url) if matches!(url.scheme(), "redis" | "unix" | "redis+unix") => {}
                Ok(url) if url.scheme() == "rediss" => errors.push(
                    "REDIS_URL rediss:// (TLS) is not supported by this build; use redis:// on a \
                     private network or a TLS-terminating proxy"
                        .into(),
                ),
                _ => errors.push("REDIS_URL must be a URL like redis://127.0.0.1:6379".into()),
            }
        }
        let jwks_url = args.jwks_url.clone().or(file.jwks_url).and_then(|raw| {
            url::Url::parse(&raw)
                .map_err(|_| errors.push("SSE_BROKER_JWKS_URL is not a valid URL".into()))
                .ok()
        });
        let retention_raw = pick(
            args.retention.clone(),
            file.retention,
            DEFAULT_RETENTION.to_owned(),
        );
        let retention = humantime::parse_duration(&retention_raw)
            .map_err(|_| {
                errors.push(format!(
                    "retention {retention_raw:?} is not a duration like 24h or 90m"
                ))
            })
            .ok();
        let extra_event_types = split_csv(&pick(
            args.event_types.clone(),
            file.event_types.map(StringOrList::into_csv),
            String::new(),
        ))
        .into_iter()
        .filter_map(|name| {
            EventType::parse(&name)
                .map_err(|e| errors.push(format!("event type: {e}")))
                .ok()
        })
        .collect();
        let cors_origins = match split_csv(&pick(
            args.cors_origins.clone(),
            file.cors_origins.map(StringOrList::into_csv),
            String::new(),
        )) {
            origins if origins.is_empty() => CorsOrigins::None,
            origins if origins.iter().any(|o| o == "*") => CorsOrigins::Any,
            origins => CorsOrigins::Exact(origins),
        };
        let log_format =
            match pick(args.log_format.clone(), file.log_format, "text".into()).as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    errors.push(format!("log format {other:?} must be text or json"));
                    LogFormat::Text
                }
            };
        let workers = pick(args.workers, file.workers, 0);
        let mut rate = |flag: &str, arg: &Option<String>, file: Option<String>, default: &str| {
            RateLimit::parse(&pick(arg.clone(), file, default.to_owned()))
                .map_err(|e| errors.push(format!("{flag}: {e}")))
                .ok()
                .flatten()
        };
        let default_limits = LimitSettings::default();
        let limits = LimitSettings {
            streams_per_ip: rate(
                "stream_rate_per_ip",
                &args.stream_rate_per_ip,
                file.stream_rate_per_ip,
                "off",
            ),
            streams_per_user: rate(
                "stream_rate_per_user",
                &args.stream_rate_per_user,
                file.stream_rate_per_user,
                DEFAULT_STREAM_RATE_PER_USER,
            ),
            publishes_per_user: rate(
                "publish_rate_per_user",
                &args.publish_rate_per_user,
                file.publish_rate_per_user,
                "off",
            ),
            max_streams_per_user: pick(
                args.max_streams_per_user,
                file.max_streams_per_user,
                default_limits.max_streams_per_user,
            ),
            trusted_proxies: split_csv(&pick(
                args.trusted_proxies.clone(),
                file.trusted_proxies.map(StringOrList::into_csv),
                String::new(),
            ))
            .into_iter()
            .filter_map(|raw| {
                raw.parse()
                    .map_err(|_| errors.push(format!("trusted proxy {raw:?} is not an IP address")))
                    .ok()
            })
            .collect(),
        };
        let default_health = HealthThresholds::default();
        let health = HealthThresholds {
            active_connections_warning: pick(
                args.health_active_connections_warning,
                file.health_active_connections_warning,
                default_health.active_connections_warning,
            ),
            stale_connections_warning: pick(
                args.health_stale_connections_warning,
                file.health_stale_connections_warning,
                default_health.stale_connections_warning,
            ),
            very_old_connections_warning: pick(
                args.health_very_old_connections_warning,
                file.health_very_old_connections_warning,
                default_health.very_old_connections_warning,
            ),
            cleanup_error_rate_warning: pick(
                args.health_cleanup_error_rate_warning,
                file.health_cleanup_error_rate_warning,
                default_health.cleanup_error_rate_warning,
            ),
            cleanup_error_rate_alert: pick(
                args.health_cleanup_error_rate_alert,
                file.health_cleanup_error_rate_alert,
                default_health.cleanup_error_rate_alert,
            ),
            mismatch_tolerance: pick(
                args.health_mismatch_tolerance,
                file.health_mismatch_tolerance,
                default_health.mismatch_tolerance,
            ),
        };
        Some(Self {
            bind: bind?,
            database: database?,
            redis_url: redis_url.map(SecretString::from),
            auth: AuthSettings {
                jwt_secrets: pick_list(
                    &args.jwt_secret,
                    file.jwt_secret.map(StringOrList::into_list),
                )
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(SecretString::from)
                .collect(),
                jwt_public_keys: pick_list(
                    &args.jwt_public_key,
                    file.jwt_public_key
                        .map(|keys| keys.into_list().into_iter().map(PathBuf::from).collect()),
                ),
                jwks_url,
                jwks_refresh_interval: Duration::from_secs(pick(
                    args.jwks_refresh_secs,
                    file.jwks_refresh_secs,
                    DEFAULT_JWKS_REFRESH_SECS,
                )),
                jwks_min_refresh_interval: Duration::from_secs(pick(
                    args.jwks_min_refresh_secs,
                    file.jwks_min_refresh_secs,
                    DEFAULT_JWKS_MIN_REFRESH_SECS,
                )),
                leeway: Duration::from_secs(pick(
                    args.jwt_leeway_secs,
                    file.jwt_leeway_secs,
                    DEFAULT_JWT_LEEWAY_SECS,
                )),
                audience: args.jwt_audience.clone().or(file.jwt_audience),
                issuer: args.jwt_issuer.clone().or(file.jwt_issuer),
            },
            heartbeat: Duration::from_secs(pick(
                args.heartbeat_secs,
                file.heartbeat_secs,
                DEFAULT_HEARTBEAT_SECS,
            )),
            cleanup_interval: Duration::from_secs(pick(
                args.cleanup_interval_secs,
                file.cleanup_interval_secs,
                DEFAULT_CLEANUP_INTERVAL_SECS,
            )),
            cleanup_batch_size: pick(
                args.cleanup_batch_size,
                file.cleanup_batch_size,
                DEFAULT_CLEANUP_BATCH_SIZE,
            ),
            stale_threshold: Duration::from_secs(pick(
                args.stale_threshold_secs,
                file.stale_threshold_secs,
                DEFAULT_STALE_THRESHOLD_SECS,
            )),
            max_connections: pick(
                args.max_connections,
                file.max_connections,
                DEFAULT_MAX_CONNECTIONS,
            ),
            queue_capacity: pick(
                args.queue_capacity,
                file.queue_capacity,
                DEFAULT_QUEUE_CAPACITY,
            ),
            extra_event_types,
            cors_origins,
            max_body_bytes: pick(
                args.max_body_bytes,
                file.max_body_bytes,
                DEFAULT_MAX_BODY_BYTES,
            ),
            body_read_timeout: Duration::from_secs(pick(
                args.body_read_timeout_secs,
                file.body_read_timeout_secs,
                DEFAULT_BODY_READ_TIMEOUT_SECS,
            )),
            retention: retention?,
            store_timeout: Duration::from_millis(pick(
                args.store_timeout_ms,
                file.store_timeout_ms,
                DEFAULT_STORE_TIMEOUT_MS,
            )),
            insecure_no_auth: args.insecure_no_auth || file.insecure_no_auth.unwrap_or(false),
            workers: if workers == 0 {
                std::thread::available_parallelism().map_or(2, |n| n.get())
            } else {
                workers
            },
            cluster_name: pick(
                args.cluster_name.clone(),
                file.cluster_name,
                "sse-broker".into(),
            ),
            task_orphan_timeout: Duration::from_secs(pick(
                args.task_orphan_timeout_secs,
                file.task_orphan_timeout_secs,
                DEFAULT_TASK_ORPHAN_TIMEOUT_SECS,
            )),
            instance_id: args
                .instance_id
                .clone()
                .or(file.instance_id)
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()),
            log_format,
            limits,
            health,
        })
    }

    /// The contract's start-up rules: impossible values are errors, unwise
    /// ones warnings.
    pub fn validate(&self) -> Findings {
        let mut findings = Findings::default();
        let zero_checks = [
            (
                self.heartbeat.is_zero(),
                "heartbeat_secs must be at least 1",
            ),
            (
                self.cleanup_interval.is_zero(),
                "cleanup_interval_secs must be at least 1",
            ),
            (
                self.cleanup_batch_size == 0,
                "cleanup_batch_size must be at least 1",
            ),
            (
                self.stale_threshold.is_zero(),
                "stale_threshold_secs must be at least 1",
            ),
            (
                self.max_connections == 0,
                "max_connections must be at least 1",
            ),
            (
                self.queue_capacity == 0,
                "queue_capacity must be at least 1",
            ),
            (
                self.max_body_bytes == 0,
                "max_body_bytes must be at least 1",
            ),
            (
                self.body_read_timeout.is_zero(),
                "body_read_timeout_secs must be at least 1",
            ),
            (
                self.retention.is_zero(),
                "retention must be longer than zero",
            ),
            (
                self.store_timeout.is_zero(),
                "store_timeout_ms must be at least 1",
            ),
            (
                self.task_orphan_timeout.is_zero(),
                "task_orphan_timeout_secs must be at least 1",
            ),
            (
                self.auth.jwks_refresh_interval.is_zero(),
                "jwks_refresh_secs must be at least 1",
            ),
        ];
        findings.errors.extend(
            zero_checks
                .iter()
                .filter(|(bad, _)| *bad)
                .map(|(_, message)| (*message).to_owned()),
        );
        if !self.auth.enabled() && !self.bind.ip().is_loopback() && !self.insecure_no_auth {
            findings.errors.push(format!(
                "refusing to bind {} with authentication off: configure --jwt-secret, \
                 --jwt-public-key or --jwks-url, or pass --insecure-no-auth",
                self.bind
            ));
        }
        if let Some(url) = &self.auth.jwks_url
            && !matches!(url.scheme(), "http" | "https")
        {
            findings
                .errors
                .push("jwks_url must be an http:// or https:// URL".into());
        }
        for (position, secret) in self.auth.jwt_secrets.iter().enumerate() {
            let length = secret.expose_secret().len();
            if length < MIN_HS256_SECRET_BYTES {
                findings.errors.push(format!(
                    "jwt_secret #{} is {length} bytes; HS256 needs at least \
                     {MIN_HS256_SECRET_BYTES} (RFC 7518 section 3.2): generate one with \
                     `openssl rand -base64 48`",
                    position + 1
                ));
            }
        }
        for path in self.auth.jwt_public_keys.iter().filter(|p| !p.is_file()) {
            findings.errors.push(format!(
                "jwt_public_key {} is not a readable file",
                path.display()
            ));
        }
        let rates = [
            self.health.cleanup_error_rate_warning,
            self.health.cleanup_error_rate_alert,
        ];
        if rates.iter().any(|r| !(0.0..=1.0).contains(r)) {
            findings
                .errors
                .push("health cleanup error rates must be between 0 and 1".into());
        }
        if !findings.errors.is_empty() {
            return findings;
        }
        let interval = self.cleanup_interval.as_secs();
        if !(10..=300).contains(&interval) {
            findings.warnings.push(format!(
                "cleanup_interval_secs={interval} is outside the recommended 10-300 s"
            ));
        }
        if self.cleanup_batch_size > 100 {
            findings.warnings.push(format!(
                "cleanup_batch_size={} is outside the recommended 1-100",
                self.cleanup_batch_size
            ));
        }
        if self.stale_threshold < self.cleanup_interval * 2 {
            findings.warnings.push(format!(
                "stale_threshold_secs={} is under 2x cleanup_interval_secs={interval}: streams may be judged stale between two cleanups",
                self.stale_threshold.as_secs()
            ));
        }
        if self.stale_threshold < self.heartbeat * 3 {
            findings.warnings.push(format!(
                "stale_threshold_secs={} is under 3x heartbeat_secs={}: healthy idle streams may be closed as stale",
                self.stale_threshold.as_secs(),
                self.heartbeat.as_secs()
            ));
        }
        let store_timeout_ms = self.store_timeout.as_millis() as u64;
        if store_timeout_ms < STORE_TIMEOUT_WARN_BELOW_MS {
            findings.warnings.push(format!(
                "store_timeout_ms={store_timeout_ms} is under {STORE_TIMEOUT_WARN_BELOW_MS} ms: \
                 ordinary commits under load may be refused with 503"
            ));
        } else if store_timeout_ms > STORE_TIMEOUT_WARN_ABOVE_MS {
            findings.warnings.push(format!(
                "store_timeout_ms={store_timeout_ms} is over {STORE_TIMEOUT_WARN_ABOVE_MS} ms: \
                 publishers wait that long on a stalled store, longer than most HTTP clients"
            ));
        }
        if !self.auth.enabled() {
            findings
                .warnings
                .push("authentication is off: no JWT key configured".into());
        }
        if let Some(url) = &self.auth.jwks_url
            && url.scheme() == "http"
            && !url.host_str().is_some_and(is_loopback_host)
        {
            findings.warnings.push(
                "jwks_url is plain http: anyone on the path can substitute signing keys; use https"
                    .into(),
            );
        }
        if self.health.cleanup_error_rate_warning > self.health.cleanup_error_rate_alert {
            findings.warnings.push(
                "health_cleanup_error_rate_warning is above health_cleanup_error_rate_alert: the \
                 warning never shows"
                    .into(),
            );
        }
        if self.redis_url.is_some() && matches!(self.database, DatabaseUrl::Sqlite { .. }) {
            findings.warnings.push(
                "REDIS_URL with an SQLite store: instances on separate SQLite files hand out \
                 colliding ids; share one PostgreSQL database across the cluster"
                    .into(),
            );
        }
        findings
    }

    /// The configuration as shown by `check-config` and `/sse/monitoring`,
    /// secrets masked.
    pub fn effective(&self) -> EffectiveConfig {
        EffectiveConfig {
            bind: self.bind.to_string(),
            database_url: self.database.masked(),
            redis_url: self.redis_url.as_ref().map(|u| mask_url(u.expose_secret())),
            auth_enabled: self.auth.enabled(),
            jwt_secret: (!self.auth.jwt_secrets.is_empty()).then(|| "***".into()),
            jwt_secret_count: self.auth.jwt_secrets.len(),
            jwt_public_keys: self
                .auth
                .jwt_public_keys
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            jwks_url: self.auth.jwks_url.as_ref().map(masked_url),
            jwks_refresh_secs: self.auth.jwks_refresh_interval.as_secs(),
            jwks_min_refresh_secs: self.auth.jwks_min_refresh_interval.as_secs(),
            jwt_leeway_secs: self.auth.leeway.as_secs(),
            stream_rate_per_ip: rate_text(self.limits.streams_per_ip),
            stream_rate_per_user: rate_text(self.limits.streams_per_user),
            publish_rate_per_user: rate_text(self.limits.publishes_per_user),
            max_streams_per_user: self.limits.max_streams_per_user,
            trusted_proxies: self
                .limits
                .trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect(),
            health: self.health,
            heartbeat_secs: self.heartbeat.as_secs(),
            cleanup_interval_secs: self.cleanup_interval.as_secs(),
            cleanup_batch_size: self.cleanup_batch_size,
            stale_threshold_secs: self.stale_threshold.as_secs(),
            max_connections: self.max_connections,
            queue_capacity: self.queue_capacity,
            event_types: self
                .extra_event_types
                .iter()
                .map(ToString::to_string)
                .collect(),
            cors_origins: match &self.cors_origins {
                CorsOrigins::None => vec![],
                CorsOrigins::Any => vec!["*".into()],
                CorsOrigins::Exact(origins) => origins.clone(),
            },
            max_body_bytes: self.max_body_bytes,
            body_read_timeout_secs: self.body_read_timeout.as_secs(),
            retention: humantime::format_duration(self.retention).to_string(),
            store_timeout_ms: self.store_timeout.as_millis() as u64,
            insecure_no_auth: self.insecure_no_auth,
            workers: self.workers,
            cluster_name: self.cluster_name.clone(),
            task_orphan_timeout_secs: self.task_orphan_timeout.as_secs(),
            instance_id: self.instance_id.clone(),
            log_format: self.log_format,
        }
    }
}

/// Serializable, secret-free view of [`Settings`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EffectiveConfig {
    pub bind: String,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub auth_enabled: bool,
    pub jwt_secret: Option<String>,
    pub jwt_secret_count: usize,
    pub jwt_public_keys: Vec<String>,
    pub jwks_url: Option<String>,
    pub jwks_refresh_secs: u64,
    pub jwks_min_refresh_secs: u64,
    pub jwt_leeway_secs: u64,
    pub stream_rate_per_ip: String,
    pub stream_rate_per_user: String,
    pub publish_rate_per_user: String,
    pub max_streams_per_user: usize,
    pub trusted_proxies: Vec<String>,
    pub health: HealthThresholds,
    pub heartbeat_secs: u64,
    pub cleanup_interval_secs: u64,
    pub cleanup_batch_size: usize,
    pub stale_threshold_secs: u64,
    pub max_connections: usize,
    pub queue_capacity: usize,
    pub event_types: Vec<String>,
    pub cors_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub body_read_timeout_secs: u64,
    pub retention: String,
    pub store_timeout_ms: u64,
    pub insecure_no_auth: bool,
    pub workers: usize,
    pub cluster_name: String,
    pub task_orphan_timeout_secs: u64,
    pub instance_id: String,
    #[schema(value_type = String)]
    pub log_format: LogFormat,
}

fn pick<T>(arg: Option<T>, file: Option<T>, default: T) -> T {
    arg.or(file).unwrap_or(default)
}

/// A repeatable flag: the flag's values when given, else the file's.
fn pick_list<T: Clone>(arg: &[T], file: Option<Vec<T>>) -> Vec<T> {
    if arg.is_empty() {
        file.unwrap_or_default()
    } else {
        arg.to_vec()
    }
}

fn rate_text(limit: Option<RateLimit>) -> String {
    limit.map_or_else(|| "off".into(), |l| l.to_string())
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn split_csv(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn args() -> SettingsArgs {
        SettingsArgs::default()
    }

    #[test]
    fn defaults_match_the_contract() {
        let (settings, _) = Settings::load(&args()).unwrap();
        assert_eq!(settings.bind.to_string(), "127.0.0.1:8080");
        assert!(
            matches!(settings.database, DatabaseUrl::Sqlite { ref path } if path == Path::new("data/sse-broker.db"))
        );
        assert_eq!(settings.heartbeat, Duration::from_secs(15));
        assert_eq!(settings.cleanup_interval, Duration::from_secs(60));
        assert_eq!(settings.cleanup_batch_size, 10);
        assert_eq!(settings.stale_threshold, Duration::from_secs(300));
        assert_eq!(settings.max_connections, 10_000);
        assert_eq!(settings.queue_capacity, 1024);
        assert_eq!(settings.max_body_bytes, 65536);
        assert_eq!(settings.retention, Duration::from_secs(24 * 3600));
        assert_eq!(settings.store_timeout, Duration::from_millis(5000));
    }

    #[test]
    fn flag_wins_over_file_and_file_over_default() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "heartbeat_secs = 20\ncleanup_batch_size = 7\nevent_types = [\"deploy\"]"
        )
        .unwrap();
        let mut given = args();
        given.config = Some(file.path().to_owned());
        given.heartbeat_secs = Some(5);
        let (settings, _) = Settings::load(&given).unwrap();
        assert_eq!(settings.heartbeat, Duration::from_secs(5));
        assert_eq!(settings.cleanup_batch_size, 7);
        assert_eq!(settings.extra_event_types[0].as_str(), "deploy");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "heartbeat = 20").unwrap();
        let mut given = args();
        given.config = Some(file.path().to_owned());
        assert!(matches!(
            Settings::load(&given),
            Err(ConfigError::ParseFile { .. })
        ));
    }

    #[test]
    fn a_zero_interval_is_an_error() {
        let mut given = args();
        given.cleanup_interval_secs = Some(0);
        let Err(ConfigError::Invalid(errors)) = Settings::load(&given) else {
            panic!("expected an error");
        };
        assert!(errors[0].contains("cleanup_interval_secs"));
    }

    #[test]
    fn an_unparsable_url_is_an_error() {
        let mut given = args();
        given.database_url = Some("mysql://x".into());
        assert!(Settings::load(&given).is_err());
        given.database_url = None;
        given.redis_url = Some("not a url".into());
        assert!(Settings::load(&given).is_err());
    }

    #[test]
    fn a_zero_store_timeout_is_an_error_and_an_extreme_one_a_warning() {
        let mut given = args();
        given.store_timeout_ms = Some(0);
        let Err(ConfigError::Invalid(errors)) = Settings::load(&given) else {
            panic!("expected an error");
        };
        assert!(errors[0].contains("store_timeout_ms"), "{errors:?}");
        for extreme in [50, 120_000] {
            given.store_timeout_ms = Some(extreme);
            let (settings, warnings) = Settings::load(&given).unwrap();
            assert_eq!(settings.store_timeout, Duration::from_millis(extreme));
            assert!(
                warnings.iter().any(|w| w.contains("store_timeout_ms")),
                "{warnings:?}"
            );
        }
    }

    #[test]
    fn unwise_values_are_warnings() {
        let mut given = args();
        given.cleanup_interval_secs = Some(5);
        given.cleanup_batch_size = Some(500);
        given.stale_threshold_secs = Some(20);
        let (_, warnings) = Settings::load(&given).unwrap();
        let text = warnings.join("\n");
        assert!(text.contains("outside the recommended 10-300"), "{text}");
        assert!(text.contains("outside the recommended 1-100"), "{text}");
        assert!(text.contains("under 3x heartbeat"), "{text}");
    }

    #[test]
    fn a_public_bind_without_auth_is_refused_unless_insecure() {
        let mut given = args();
        given.bind = Some("0.0.0.0:8080".into());
        assert!(Settings::load(&given).is_err());
        given.insecure_no_auth = true;
        assert!(Settings::load(&given).is_ok());
    }

    #[test]
    fn a_masked_url_keeps_the_endpoint_and_hides_every_credential() {
        let url: url::Url = "https://user:pass@idp.example:8443/keys?key=K1&tenant=acme"
            .parse()
            .unwrap();
        assert_eq!(
            masked_url(&url),
            "https://***:***@idp.example:8443/keys?key=***&tenant=***"
        );
        let plain: url::Url = "https://idp.example/keys".parse().unwrap();
        assert_eq!(masked_url(&plain), "https://idp.example/keys");
    }

    #[test]
    fn secrets_are_masked_in_the_effective_configuration() {
        let mut given = args();
        given.jwt_secret = vec!["hunter2-hunter2-hunter2-hunter2-hunter2".into()];
        given.database_url = Some("postgres://u:pw@localhost/db".into());
        let (settings, _) = Settings::load(&given).unwrap();
        let shown = serde_json::to_string(&settings.effective()).unwrap();
        assert!(
            !shown.contains("hunter2") && !shown.contains(":pw@"),
            "{shown}"
        );
    }
}
