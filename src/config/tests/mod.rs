//! The one declaration, seen from every side: precedence per source, the
//! file's keys, typed values, validation, masking, `--help` and the docs.

use std::{collections::HashMap, ffi::OsString, io::Write, path::Path};

use clap::{Args, Command};
use secrecy::ExposeSecret;

use super::*;

/// Settings from `argv` (after the program name) and an environment of
/// exactly `env`, validated.
fn load(argv: &[&str], env: &[(&str, &str)]) -> Result<(Settings, Vec<String>), ConfigError> {
    let env: HashMap<OsString, OsString> = env
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let argv = std::iter::once("sse-broker").chain(argv.iter().copied());
    Settings::parse_from(argv, &|name| env.get(name).cloned())?.validated()
}

fn settings(argv: &[&str], env: &[(&str, &str)]) -> Settings {
    load(argv, env)
        .unwrap_or_else(|e| panic!("{argv:?} {env:?}: {e}"))
        .0
}

/// A config file holding `text`, and its path as an argument.
fn file(text: &str) -> (tempfile::NamedTempFile, String) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{text}").unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    (file, path)
}

fn types(settings: &Settings) -> Vec<&str> {
    settings
        .extra_event_types
        .iter()
        .map(EventType::as_str)
        .collect()
}

fn secrets(settings: &Settings) -> Vec<&str> {
    settings
        .auth
        .jwt_secrets
        .iter()
        .map(|s| s.expose_secret())
        .collect()
}

const SECRET_A: &str = "a-secret-of-at-least-thirty-two-bytes-0001";
const SECRET_B: &str = "b-secret-of-at-least-thirty-two-bytes-0002";
const SECRET_C: &str = "c-secret-of-at-least-thirty-two-bytes-0003";
const SECRET_D: &str = "d-secret-of-at-least-thirty-two-bytes-0004";

#[test]
fn defaults_match_the_contract() {
    let settings = settings(&[], &[]);
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
    assert_eq!(
        settings.limits.streams_per_user,
        RateLimit::parse("120/min").unwrap()
    );
    assert_eq!(settings.limits.streams_per_ip, None);
    assert_eq!(settings.cors_origins, CorsOrigins::None);
    assert!(settings.workers >= 1);
    assert_eq!(settings.instance_id.len(), 12);
}

#[test]
fn the_group_defaults_are_the_declared_ones() {
    assert_eq!(HealthThresholds::default().active_connections_warning, 1000);
    assert_eq!(HealthThresholds::default().cleanup_error_rate_alert, 0.10);
    assert_eq!(LimitSettings::default().max_streams_per_user, 100);
    assert_eq!(
        AuthSettings::default().jwks_refresh_interval,
        Duration::from_secs(300)
    );
    let for_tests = Settings::for_tests(DatabaseUrl::parse("sqlite://x.db").unwrap());
    assert_eq!(for_tests.bind.port(), 0);
    assert_eq!(for_tests.heartbeat, Duration::from_secs(15));
}

#[test]
fn flag_wins_over_file_and_file_over_default() {
    let (_file, path) =
        file("heartbeat_secs = 20\ncleanup_batch_size = 7\nevent_types = [\"deploy\"]");
    let settings = settings(&["--config", &path, "--heartbeat-secs", "5"], &[]);
    assert_eq!(settings.heartbeat, Duration::from_secs(5));
    assert_eq!(settings.cleanup_batch_size, 7);
    assert_eq!(settings.extra_event_types[0].as_str(), "deploy");
}

#[test]
fn a_scalar_takes_the_flag_then_the_environment_then_the_file_then_the_default() {
    let (_file, path) = file("heartbeat_secs = 20");
    let env = [("SSE_BROKER_HEARTBEAT_SECS", "7")];
    let secs = |argv: &[&str], env: &[(&str, &str)]| settings(argv, env).heartbeat.as_secs();

    assert_eq!(secs(&[], &[]), 15);
    assert_eq!(secs(&["--config", &path], &[]), 20);
    assert_eq!(secs(&["--config", &path], &env), 7);
    assert_eq!(secs(&["--config", &path, "--heartbeat-secs", "5"], &env), 5);
    // The file itself may be named by the environment.
    assert_eq!(secs(&[], &[("SSE_BROKER_CONFIG", path.as_str())]), 20);
}

#[test]
fn a_list_takes_the_flag_then_the_environment_then_the_file_and_is_never_merged() {
    let (_file, path) = file("event_types = [\"from.file\", \"also.file\"]");
    let env = [("SSE_BROKER_EVENT_TYPES", "from.env, also.env")];

    assert!(settings(&[], &[]).extra_event_types.is_empty());
    assert_eq!(
        types(&settings(&["--config", &path], &[])),
        ["from.file", "also.file"]
    );
    assert_eq!(
        types(&settings(&["--config", &path], &env)),
        ["from.env", "also.env"]
    );
    assert_eq!(
        types(&settings(
            &["--config", &path, "--event-types", "from.flag"],
            &env
        )),
        ["from.flag"]
    );
    // An empty variable means "none", and still hides the file's list.
    let empty = [("SSE_BROKER_EVENT_TYPES", "")];
    assert!(types(&settings(&["--config", &path], &empty)).is_empty());
    // The comma string form of the file.
    let (_csv, csv) = file("event_types = \"a.b, c.d\"");
    assert_eq!(types(&settings(&["--config", &csv], &[])), ["a.b", "c.d"]);
}

#[test]
fn a_secret_takes_the_flag_then_the_environment_then_the_file() {
    let (_file, path) = file(&format!("jwt_secret = [\"{SECRET_A}\", \"{SECRET_B}\"]"));
    let env = [("SSE_BROKER_JWT_SECRET", SECRET_C)];

    assert!(secrets(&settings(&[], &[])).is_empty());
    assert_eq!(
        secrets(&settings(&["--config", &path], &[])),
        [SECRET_A, SECRET_B]
    );
    assert_eq!(secrets(&settings(&["--config", &path], &env)), [SECRET_C]);
    assert_eq!(
        secrets(&settings(
            &[
                "--config",
                &path,
                "--jwt-secret",
                SECRET_D,
                "--jwt-secret",
                SECRET_A
            ],
            &env
        )),
        [SECRET_D, SECRET_A]
    );
    // An empty variable turns the file's secrets off.
    let empty = [("SSE_BROKER_JWT_SECRET", "")];
    assert!(secrets(&settings(&["--config", &path], &empty)).is_empty());
}

#[test]
fn a_file_key_overrides_the_default_but_not_the_environment() {
    let (_file, path) = file("queue_capacity = 300\nmax_body_bytes = 4096\nretention = \"90m\"");
    let settings = settings(&["--config", &path], &[("SSE_BROKER_QUEUE_CAPACITY", "64")]);
    assert_eq!(
        settings.queue_capacity, 64,
        "the environment beats the file"
    );
    assert_eq!(settings.max_body_bytes, 4096, "the file beats the default");
    assert_eq!(settings.retention, Duration::from_secs(90 * 60));
    assert_eq!(
        settings.max_connections, 10_000,
        "the default fills the rest"
    );
}

mod documentation;
mod validation;
