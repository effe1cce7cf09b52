//! Typed values, parsed at the edge.
//!
//! Every setting's text, whether it came from a flag, the environment or the
//! file, goes through one of these parsers (as the field's clap
//! `value_parser`), so the rest of the broker reads `Duration`s, URLs and
//! enums and never re-checks. A parser's error says what was expected; clap,
//! or the loader for the environment and the file, adds which setting and
//! which source. The serializers beside them turn a value back into the unit
//! its flag is named in, for `check-config`.

use std::{convert::Infallible, net::IpAddr, net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};

use super::masked;
use crate::domain::{CONTROL_EVENT_TYPES, EventType};

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
                return Err("sqlite:// needs a file path".into());
            }
            if path.starts_with(":memory:") {
                return Err(
                    "an in-memory SQLite store is not supported: stored events must \
                            outlive the process (a resume reads them); give a file path"
                        .into(),
                );
            }
            if path.contains('?') {
                return Err(
                    "sqlite:// takes a file path, without a query: the broker sets \
                            SQLite's options itself"
                        .into(),
                );
            }
            return Ok(Self::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let url = url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
            let host_in_query = url.query_pairs().any(|(key, _)| key == "host");
            if url.host_str().is_none_or(str::is_empty) && !host_in_query {
                return Err(
                    "a postgres:// URL needs a host: postgres://USER@HOST:5432/DATABASE \
                            (or ?host=/run/postgresql for a socket)"
                        .into(),
                );
            }
            return Ok(Self::Postgres {
                url: SecretString::from(raw.to_owned()),
            });
        }
        Err("must start with sqlite:// or postgres://".into())
    }

    /// The URL with any password replaced by `***`.
    pub fn masked(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { url } => masked::mask_url(url.expose_secret()),
        }
    }
}

/// Only ever shown masked: the PostgreSQL URL carries the password.
impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.masked())
    }
}

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq)]
pub enum CorsOrigins {
    None,
    Any,
    Exact(Vec<String>),
}

impl CorsOrigins {
    /// Comma-separated origins; `*` anywhere allows any; empty allows none.
    /// Each is kept as a browser writes its `Origin` header
    /// (`https://app.example.com`, lower case, no default port), so a
    /// trailing `/` or capitals in the setting do not make it never match.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Ok(match split_csv(raw) {
            origins if origins.is_empty() => Self::None,
            origins if origins.iter().any(|o| o == "*") => Self::Any,
            origins => Self::Exact(
                origins
                    .iter()
                    .map(|origin| web_origin(origin))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// `raw` as the `Origin` header a browser on that site sends.
fn web_origin(raw: &str) -> Result<String, String> {
    let refused =
        |why: &str| format!("{raw:?} is not a web origin like https://app.example.com: {why}");
    let url = url::Url::parse(raw).map_err(|e| refused(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refused("the scheme is not http or https"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(refused("an origin has no path, query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("an origin has no user name or password"));
    }
    Ok(url.origin().ascii_serialization())
}

/// As the list it was given as: `[]`, `["*"]` or the origins.
impl Serialize for CorsOrigins {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::None => serializer.collect_seq(std::iter::empty::<&str>()),
            Self::Any => serializer.collect_seq(["*"]),
            Self::Exact(origins) => serializer.collect_seq(origins),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

pub(super) fn socket_address(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not an address like 127.0.0.1:8080"))
}

/// Empty is accepted here and means "no Redis" (see `Settings::validated`).
pub(super) fn redis_url(raw: &str) -> Result<SecretString, String> {
    if !raw.is_empty() {
        match url::Url::parse(raw) {
            Ok(url) if matches!(url.scheme(), "redis" | "unix" | "redis+unix") => {}
            Ok(url) if url.scheme() == "rediss" => {
                return Err(
                    "rediss:// (TLS) is not supported by this build; use redis:// on a \
                     private network or a TLS-terminating proxy"
                        .into(),
                );
            }
            _ => return Err("not a URL like redis://127.0.0.1:6379".into()),
        }
    }
    Ok(SecretString::from(raw.to_owned()))
}

pub(super) fn jwks_url(raw: &str) -> Result<url::Url, String> {
    url::Url::parse(raw).map_err(|_| "not a valid URL".into())
}

/// Empty is accepted here and dropped later (see `Settings::validated`).
pub(super) fn secret(raw: &str) -> Result<SecretString, Infallible> {
    Ok(SecretString::from(raw.to_owned()))
}

/// Comma-separated event types; empty entries are skipped, and the names
/// of the broker's own frames refused.
pub(super) fn event_types(raw: &str) -> Result<Vec<EventType>, String> {
    split_csv(raw)
        .iter()
        .map(|name| {
            if CONTROL_EVENT_TYPES.contains(&name.as_str()) {
                return Err(format!(
                    "event type {name:?} is the name of the broker's own frames; choose another"
                ));
            }
            EventType::parse(name).map_err(|e| format!("event type: {e}"))
        })
        .collect()
}

/// Comma-separated IP addresses; no host names, no ranges.
pub(super) fn ip_addresses(raw: &str) -> Result<Vec<IpAddr>, String> {
    split_csv(raw)
        .iter()
        .map(|entry| {
            entry
                .parse()
                .map_err(|_| format!("trusted proxy {entry:?} is not an IP address"))
        })
        .collect()
}

/// actix-server's own limit: past it, the server panics at start.
const MAX_WORKERS: usize = 512;

/// `0` is one worker per core.
pub(super) fn worker_count(raw: &str) -> Result<usize, String> {
    match raw.parse().map_err(|e| format!("{e}"))? {
        0 => Ok(std::thread::available_parallelism().map_or(2, |n| n.get())),
        workers if workers > MAX_WORKERS => Err(format!(
            "at most {MAX_WORKERS} worker threads (0 = one per core)"
        )),
        workers => Ok(workers),
    }
}

/// Empty draws a random name, so instances that were given none still
/// differ in cluster listings.
pub(super) fn instance_id(raw: &str) -> Result<String, Infallible> {
    Ok(if raw.is_empty() {
        uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
    } else {
        raw.to_owned()
    })
}

fn split_csv(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The longest period any setting takes. Longer ones are a way of saying
/// "never" that the broker's clock arithmetic (milliseconds since 1970 in
/// an `i64`) cannot hold: refused, so "never" is spelt 100 years at most.
/// (humantime's year: 365.25 days, so `100years` is taken.)
const MAX_PERIOD: Duration = Duration::from_secs(100 * 31_557_600);

fn at_most_max(period: Duration, raw: &str) -> Result<Duration, String> {
    if period > MAX_PERIOD {
        Err(format!(
            "{raw} is longer than the longest period a setting takes, 100 years ({} s)",
            MAX_PERIOD.as_secs()
        ))
    } else {
        Ok(period)
    }
}

/// A period given in whole seconds (`--heartbeat-secs`).
pub(super) mod seconds {
    use super::*;

    pub fn parse(raw: &str) -> Result<Duration, String> {
        let secs: u64 = raw.parse().map_err(|e| format!("{e}"))?;
        at_most_max(Duration::from_secs(secs), raw)
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }
}

/// A period given in milliseconds (`--store-timeout-ms`).
pub(super) mod millis {
    use super::*;

    pub fn parse(raw: &str) -> Result<Duration, String> {
        let millis: u64 = raw.parse().map_err(|e| format!("{e}"))?;
        at_most_max(Duration::from_millis(millis), raw)
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_millis() as u64)
    }
}

/// A period written for people: `24h`, `90m`, `1h 30m` (`--retention`).
pub(super) mod human {
    use super::*;

    pub fn parse(raw: &str) -> Result<Duration, String> {
        let period = humantime::parse_duration(raw)
            .map_err(|_| format!("{raw:?} is not a duration like 24h or 90m"))?;
        at_most_max(period, raw)
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_list_is_trimmed_and_skips_empty_entries() {
        let types = event_types(" deploy,, build.finished ,").unwrap();
        assert_eq!(
            types.iter().map(EventType::as_str).collect::<Vec<_>>(),
            ["deploy", "build.finished"]
        );
        assert!(event_types("").unwrap().is_empty());
        assert!(event_types("Deploy").is_err());
    }

    #[test]
    fn a_star_among_the_origins_allows_any() {
        assert_eq!(CorsOrigins::parse("").unwrap(), CorsOrigins::None);
        assert_eq!(
            CorsOrigins::parse("https://a, *").unwrap(),
            CorsOrigins::Any
        );
        assert_eq!(
            CorsOrigins::parse("https://a,https://b").unwrap(),
            CorsOrigins::Exact(vec!["https://a".into(), "https://b".into()])
        );
        assert_eq!(
            CorsOrigins::parse("HTTPS://App.Example.com/, http://localhost:5173, https://b:443")
                .unwrap(),
            CorsOrigins::Exact(vec![
                "https://app.example.com".into(),
                "http://localhost:5173".into(),
                "https://b".into()
            ])
        );
        for bad in [
            "not a url",
            "https://a/app",
            "ftp://a",
            "https://a?x=1",
            "https://u:p@a",
        ] {
            let refused = CorsOrigins::parse(bad).unwrap_err();
            assert!(refused.contains("not a web origin"), "{bad}: {refused}");
        }
    }

    #[test]
    fn an_empty_instance_id_draws_a_random_one() {
        let drawn = instance_id("").unwrap();
        assert_eq!(drawn.len(), 12);
        assert_ne!(drawn, instance_id("").unwrap());
        assert_eq!(instance_id("broker-1").unwrap(), "broker-1");
    }

    #[test]
    fn zero_workers_is_one_per_core() {
        assert!(worker_count("0").unwrap() >= 1);
        assert_eq!(worker_count("3").unwrap(), 3);
        assert_eq!(worker_count("512").unwrap(), 512);
        assert!(worker_count("513").unwrap_err().contains("at most 512"));
        assert!(worker_count("-1").is_err());
    }

    #[test]
    fn a_rediss_url_is_refused_and_an_empty_one_accepted() {
        assert!(redis_url("rediss://h:6380").unwrap_err().contains("TLS"));
        assert!(redis_url("not a url").is_err());
        assert!(redis_url("").is_ok());
        assert!(redis_url("redis://127.0.0.1:6379").is_ok());
    }
}
