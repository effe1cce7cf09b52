//! Admission limits, per instance: rates of new streams and publishes, the
//! per-user stream cap, and which proxies name the client.

use std::{net::IpAddr, time::Duration};

use serde::{Serialize, Serializer};

use super::values;

/// Admission limits, per instance.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct LimitSettings {
    /// New streams per client address: `N/s`, `N/min`, `N/h` or `off`.
    // Off: behind a proxy every client shares the proxy's address.
    //
    // `std::option::Option` (not `Option`) makes clap hand the whole value
    // to `RateLimit::parse`, which reads `off` as `None`.
    #[arg(
        long = "stream-rate-per-ip",
        env = "SSE_BROKER_STREAM_RATE_PER_IP",
        global = true,
        default_value = "off",
        value_parser = RateLimit::parse
    )]
    #[serde(
        rename = "stream_rate_per_ip",
        serialize_with = "RateLimit::serialize_or_off"
    )]
    pub streams_per_ip: std::option::Option<RateLimit>,

    /// New streams per user (token `sub`).
    // Two reconnects a second, sustained, is a reconnect loop, not a user.
    #[arg(
        long = "stream-rate-per-user",
        env = "SSE_BROKER_STREAM_RATE_PER_USER",
        global = true,
        default_value = "120/min",
        value_parser = RateLimit::parse
    )]
    #[serde(
        rename = "stream_rate_per_user",
        serialize_with = "RateLimit::serialize_or_off"
    )]
    pub streams_per_user: std::option::Option<RateLimit>,

    /// Publishes (events, test events, task writes) per user.
    // Off: publish tokens belong to trusted backends.
    #[arg(
        long = "publish-rate-per-user",
        env = "SSE_BROKER_PUBLISH_RATE_PER_USER",
        global = true,
        default_value = "off",
        value_parser = RateLimit::parse
    )]
    #[serde(
        rename = "publish_rate_per_user",
        serialize_with = "RateLimit::serialize_or_off"
    )]
    pub publishes_per_user: std::option::Option<RateLimit>,

    /// Simultaneous streams per user on this instance; 0 = no cap.
    #[arg(
        long,
        env = "SSE_BROKER_MAX_STREAMS_PER_USER",
        global = true,
        default_value_t = 100
    )]
    pub max_streams_per_user: usize,

    /// Reverse proxies whose `X-Forwarded-For` names the client, comma-separated IPs.
    // `std::vec::Vec` (not `Vec`): one value, split by the parser, which
    // trims entries and skips empty ones; unset (the hidden empty default)
    // trusts no proxy.
    #[arg(
        long,
        env = "SSE_BROKER_TRUSTED_PROXIES",
        global = true,
        default_value = "",
        hide_default_value = true,
        value_parser = values::ip_addresses
    )]
    pub trusted_proxies: std::vec::Vec<IpAddr>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        super::defaults()
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

    /// Normalised text (`30/min`), or `off`.
    fn serialize_or_off<S: Serializer>(
        limit: &Option<Self>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match limit {
            Some(limit) => serializer.collect_str(limit),
            None => serializer.serialize_str("off"),
        }
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
