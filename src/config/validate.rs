//! The contract's start-up rules, as values: impossible settings are errors
//! (start-up stops, exit 1), unwise ones warnings (logged, printed by
//! `check-config`). Parsing already refused what cannot be read; these rules
//! judge values that parse but cannot work, alone or together.

use secrecy::ExposeSecret;

use super::{ConfigError, DatabaseUrl, MIN_HS256_SECRET_BYTES, Settings};
use crate::domain::MAX_EVENTS_PER_PUBLISH;

/// The longest `--jwt-leeway-secs`: a day of clock skew.
const MAX_JWT_LEEWAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// The longest `--store-timeout-ms`: PostgreSQL's `statement_timeout` limit.
const MAX_STORE_TIMEOUT_MS: u128 = i32::MAX as u128;
/// Under this, ordinary commits under load (fsync, a busy PostgreSQL) risk
/// being refused.
const STORE_TIMEOUT_WARN_BELOW_MS: u128 = 100;
/// Over this, publishers and resuming clients wait longer than most HTTP
/// clients and proxies do.
const STORE_TIMEOUT_WARN_ABOVE_MS: u128 = 60_000;

/// What `validate` found: warnings are logged, errors stop start-up.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Findings {
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl Settings {
    /// The settings with their warnings, or every error.
    pub fn validated(mut self) -> Result<(Self, Vec<String>), ConfigError> {
        // An empty REDIS_URL or SSE_BROKER_JWT_SECRET means "none", and it
        // still overrides the file (docs/configuration.md): the parsers keep
        // the empty value so that it wins the precedence, and it goes here.
        self.redis_url = self.redis_url.filter(|url| !url.expose_secret().is_empty());
        self.auth
            .jwt_secrets
            .retain(|secret| !secret.expose_secret().is_empty());
        let findings = self.validate();
        if findings.errors.is_empty() {
            Ok((self, findings.warnings))
        } else {
            Err(ConfigError::Invalid(findings.errors))
        }
    }

    /// The contract's start-up rules: impossible values are errors, unwise
    /// ones warnings. Warnings are only looked for when there is no error.
    pub fn validate(&self) -> Findings {
        let mut findings = Findings {
            errors: self.errors(),
            warnings: Vec::new(),
        };
        if findings.errors.is_empty() {
            findings.warnings = self.warnings();
        }
        findings
    }

    fn errors(&self) -> Vec<String> {
        let at_least_one = [
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
                self.cluster_name.trim().is_empty(),
                "cluster_name must not be empty (it namespaces the Redis channel and keys)",
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
                self.max_upload_line_bytes == 0,
                "max_upload_line_bytes must be at least 1",
            ),
            (
                self.upload_memory_mib == 0,
                "upload_memory_mib must be at least 1",
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
            (
                self.auth.ticket_ttl.is_zero(),
                "ticket_ttl_secs must be at least 1",
            ),
        ];
        let mut errors: Vec<String> = at_least_one
            .iter()
            .filter(|(zero, _)| *zero)
            .map(|(_, message)| (*message).to_owned())
            .collect();
        // A held write is a batching window, not a pause: past a second it
        // would starve heartbeats' purpose and look like a stall.
        if self.write_delay > std::time::Duration::from_secs(1) {
            errors.push("write_delay_ms must be at most 1000".into());
        }
        // Clock skew, not a lifetime: past a day it is a mistake, and past
        // the Unix time itself the check of `exp` wraps into refusing every
        // token as expired.
        if self.auth.leeway > MAX_JWT_LEEWAY {
            errors.push(format!(
                "jwt_leeway_secs must be at most {} (a day): it is the clock skew tolerated \
                 on exp and nbf; a token's lifetime is its exp",
                MAX_JWT_LEEWAY.as_secs()
            ));
        }
        // PostgreSQL's statement_timeout and lock_timeout take at most
        // 2^31 - 1 ms, and the broker sets both to what is left of it.
        if self.store_timeout.as_millis() > MAX_STORE_TIMEOUT_MS {
            errors.push(format!(
                "store_timeout_ms must be at most {MAX_STORE_TIMEOUT_MS} (about 24.8 days, \
                 PostgreSQL's longest statement_timeout)"
            ));
        }
        if !self.auth.enabled()
            && !self.bind.ip().to_canonical().is_loopback()
            && !self.insecure_no_auth
        {
            errors.push(format!(
                "refusing to bind {} with authentication off: configure --jwt-secret, \
                 --jwt-public-key or --jwks-url, or pass --insecure-no-auth",
                self.bind
            ));
        }
        // Empty most often comes from a template's line left blank; taken
        // as given it would refuse every token that names an audience or
        // issuer, and accept only one naming "".
        for (name, value) in [
            ("jwt_audience", &self.auth.audience),
            ("jwt_issuer", &self.auth.issuer),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                errors.push(format!(
                    "{name} is empty: unset it to accept any, or give the value tokens carry"
                ));
            }
        }
        if let Some(url) = &self.auth.jwks_url
            && !matches!(url.scheme(), "http" | "https")
        {
            errors.push("jwks_url must be an http:// or https:// URL".into());
        }
        for (position, secret) in self.auth.jwt_secrets.iter().enumerate() {
            let length = secret.expose_secret().len();
            if length < MIN_HS256_SECRET_BYTES {
                errors.push(format!(
                    "jwt_secret #{} is {length} bytes; HS256 needs at least \
                     {MIN_HS256_SECRET_BYTES} (RFC 7518 section 3.2): generate one with \
                     `openssl rand -base64 48`",
                    position + 1
                ));
            }
        }
        for path in self.auth.jwt_public_keys.iter().filter(|p| !p.is_file()) {
            errors.push(format!(
                "jwt_public_key {} is not a readable file",
                path.display()
            ));
        }
        let rates = [
            self.health.cleanup_error_rate_warning,
            self.health.cleanup_error_rate_alert,
        ];
        if rates.iter().any(|r| !(0.0..=1.0).contains(r)) {
            errors.push("health cleanup error rates must be between 0 and 1".into());
        }
        errors.extend(self.tls.errors());
        for path in [&self.tls.cert, &self.tls.key].into_iter().flatten() {
            if !path.is_file() {
                errors.push(format!("{} is not a readable file", path.display()));
            }
        }
        errors
    }

    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let interval = self.cleanup_interval.as_secs();
        if !(10..=300).contains(&interval) {
            warnings.push(format!(
                "cleanup_interval_secs={interval} is outside the recommended 10-300 s"
            ));
        }
        if self.cleanup_batch_size > 100 {
            warnings.push(format!(
                "cleanup_batch_size={} is outside the recommended 1-100",
                self.cleanup_batch_size
            ));
        }
        if self.stale_threshold < self.cleanup_interval * 2 {
            warnings.push(format!(
                "stale_threshold_secs={} is under 2x cleanup_interval_secs={interval}: streams \
                 may be judged stale between two cleanups",
                self.stale_threshold.as_secs()
            ));
        }
        if self.stale_threshold < self.heartbeat * 3 {
            warnings.push(format!(
                "stale_threshold_secs={} is under 3x heartbeat_secs={}: healthy idle streams may \
                 be closed as stale",
                self.stale_threshold.as_secs(),
                self.heartbeat.as_secs()
            ));
        }
        if self.queue_capacity < MAX_EVENTS_PER_PUBLISH {
            warnings.push(format!(
                "queue_capacity={} is under the largest publish ({MAX_EVENTS_PER_PUBLISH} events \
                 in one array): one such publish closes every stream it reaches as slow",
                self.queue_capacity
            ));
        }
        let store_timeout_ms = self.store_timeout.as_millis();
        if store_timeout_ms < STORE_TIMEOUT_WARN_BELOW_MS {
            warnings.push(format!(
                "store_timeout_ms={store_timeout_ms} is under {STORE_TIMEOUT_WARN_BELOW_MS} ms: \
                 ordinary commits under load may be refused with 503"
            ));
        } else if store_timeout_ms > STORE_TIMEOUT_WARN_ABOVE_MS {
            warnings.push(format!(
                "store_timeout_ms={store_timeout_ms} is over {STORE_TIMEOUT_WARN_ABOVE_MS} ms: \
                 publishers wait that long on a stalled store, longer than most HTTP clients"
            ));
        }
        if let Some(url) = &self.auth.jwks_url
            && url.scheme() == "http"
            && !url.host_str().is_some_and(is_loopback_host)
        {
            warnings.push(
                "jwks_url is plain http: anyone on the path can substitute signing keys; use https"
                    .into(),
            );
        }
        if self.health.cleanup_error_rate_warning > self.health.cleanup_error_rate_alert {
            warnings.push(
                "health_cleanup_error_rate_warning is above health_cleanup_error_rate_alert: the \
                 warning never shows"
                    .into(),
            );
        }
        if self.redis_url.is_some() && matches!(self.database, DatabaseUrl::Sqlite { .. }) {
            warnings.push(
                "REDIS_URL with an SQLite store: instances on separate SQLite files hand out \
                 colliding ids; share one PostgreSQL database across the cluster"
                    .into(),
            );
        }
        warnings
    }
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
