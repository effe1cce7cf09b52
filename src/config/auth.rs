//! JWT verification settings: any key set turns authentication on.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;
use serde::{Serialize, Serializer};

use super::{masked, values, values::seconds};

/// The shortest HS256 key accepted: a key as long as the hash output (RFC
/// 7518 §3.2); anything shorter can be brute-forced from one token.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// JWT verification settings; any key set turns authentication on.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct AuthSettings {
    /// HS256 key; set = authentication on. Repeat it to accept several
    /// during a rotation (the first signs `sse-broker token`).
    #[arg(
        long = "jwt-secret",
        env = "SSE_BROKER_JWT_SECRET",
        global = true,
        hide_env_values = true,
        value_parser = values::secret
    )]
    #[serde(flatten, serialize_with = "masked::secrets")]
    pub jwt_secrets: Vec<SecretString>,

    /// PEM public key file (RS256 or ES256); set = authentication on.
    /// Repeatable, or comma-separated, to accept several during a rotation.
    #[arg(
        long = "jwt-public-key",
        env = "SSE_BROKER_JWT_PUBLIC_KEY",
        global = true,
        value_delimiter = ','
    )]
    pub jwt_public_keys: Vec<PathBuf>,

    /// JWKS endpoint (http or https), keys picked by `kid`; set = authentication on.
    #[arg(
        long,
        env = "SSE_BROKER_JWKS_URL",
        global = true,
        hide_env_values = true,
        value_parser = values::jwks_url
    )]
    #[serde(serialize_with = "masked::url")]
    pub jwks_url: Option<url::Url>,

    /// Re-fetch the JWKS this often, in seconds.
    // A key the identity provider removes is refused at most this late.
    #[arg(
        long = "jwks-refresh-secs",
        env = "SSE_BROKER_JWKS_REFRESH_SECS",
        global = true,
        default_value = "300",
        value_parser = seconds::parse
    )]
    #[serde(rename = "jwks_refresh_secs", serialize_with = "seconds::serialize")]
    pub jwks_refresh_interval: Duration,

    /// A token with an unknown `kid` re-fetches the JWKS at most this often,
    /// in seconds.
    // An attacker sending random `kid`s costs the IdP one fetch per this.
    #[arg(
        long = "jwks-min-refresh-secs",
        env = "SSE_BROKER_JWKS_MIN_REFRESH_SECS",
        global = true,
        default_value = "10",
        value_parser = seconds::parse
    )]
    #[serde(
        rename = "jwks_min_refresh_secs",
        serialize_with = "seconds::serialize"
    )]
    pub jwks_min_refresh_interval: Duration,

    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    // Covers hosts kept in sync by NTP.
    #[arg(
        long = "jwt-leeway-secs",
        env = "SSE_BROKER_JWT_LEEWAY_SECS",
        global = true,
        default_value = "30",
        value_parser = seconds::parse
    )]
    #[serde(rename = "jwt_leeway_secs", serialize_with = "seconds::serialize")]
    pub leeway: Duration,

    /// Required `aud` claim, when set.
    #[arg(long = "jwt-audience", env = "SSE_BROKER_JWT_AUDIENCE", global = true)]
    #[serde(rename = "jwt_audience")]
    pub audience: Option<String>,

    /// Required `iss` claim, when set.
    #[arg(long = "jwt-issuer", env = "SSE_BROKER_JWT_ISSUER", global = true)]
    #[serde(rename = "jwt_issuer")]
    pub issuer: Option<String>,

    /// Lifetime of a stream ticket (`POST /sse/tickets`), in seconds.
    // Long enough for a page to fetch one and open its stream, short enough
    // that one read from a log is useless (it is single-use anyway).
    #[arg(
        long = "ticket-ttl-secs",
        env = "SSE_BROKER_TICKET_TTL_SECS",
        global = true,
        default_value = "30",
        value_parser = seconds::parse
    )]
    #[serde(rename = "ticket_ttl_secs", serialize_with = "seconds::serialize")]
    pub ticket_ttl: Duration,

    /// `event: token_expiring` goes to a stream this many seconds before its
    /// token expires, for the client to send a fresh one.
    // A minute: room for a token refresh round trip and a retry or two.
    #[arg(
        long = "token-refresh-secs",
        env = "SSE_BROKER_TOKEN_REFRESH_SECS",
        global = true,
        default_value = "60",
        value_parser = seconds::parse
    )]
    #[serde(rename = "token_refresh_secs", serialize_with = "seconds::serialize")]
    pub token_refresh: Duration,

    /// A token that does not grant every project publishes, and writes
    /// tasks, only within its projects: no event or task without a project.
    // Off by default: events without a project reach every stream, and a
    // one-tenant deployment's backends rely on publishing them.
    #[arg(
        long = "publish-within-projects",
        env = "SSE_BROKER_PUBLISH_WITHIN_PROJECTS",
        global = true
    )]
    pub publish_within_projects: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        super::defaults()
    }
}

impl AuthSettings {
    pub fn enabled(&self) -> bool {
        !self.jwt_secrets.is_empty() || !self.jwt_public_keys.is_empty() || self.jwks_url.is_some()
    }

    /// The group as `check-config` shows it: `auth_enabled` first, as
    /// operators look for it, then the settings.
    pub(super) fn serialize_with_enabled<S: Serializer>(
        &self,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            auth_enabled: bool,
            #[serde(flatten)]
            settings: &'a AuthSettings,
        }
        Shown {
            auth_enabled: self.enabled(),
            settings: self,
        }
        .serialize(serializer)
    }
}
