//! The one declaration, seen from every side: precedence per source, the
//! file's keys, typed values, validation, masking, `--help` and the docs.

use std::{collections::HashMap, ffi::OsString, io::Write, path::Path};

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

#[test]
fn unknown_file_keys_are_refused() {
    let (_file, path) = file("heartbeat = 20");
    let refused = load(&["--config", &path], &[]);
    assert!(
        matches!(&refused, Err(ConfigError::ParseFile { message, .. }) if message.contains("`heartbeat`") && message.contains("`heartbeat_secs`")),
        "{refused:?}"
    );
    let (_file, path) = file("config = \"other.toml\"");
    assert!(
        load(&["--config", &path], &[]).is_err(),
        "--config is no key"
    );
}

#[test]
fn a_bad_value_names_its_source() {
    let (_file, path) = file("heartbeat_secs = \"soon\"\nbind = \"somewhere\"");
    let from_file = load(&["--config", &path, "--bind", "127.0.0.1:9"], &[])
        .unwrap_err()
        .to_string();
    assert!(from_file.contains("key heartbeat_secs"), "{from_file}");
    let from_env = load(&[], &[("SSE_BROKER_STREAM_RATE_PER_IP", "2/day")])
        .unwrap_err()
        .to_string();
    assert!(
        from_env.starts_with("SSE_BROKER_STREAM_RATE_PER_IP: rate \"2/day\""),
        "{from_env}"
    );
    let table = file("cors_origins = { any = true }");
    assert!(load(&["--config", &table.1], &[]).is_err());
    let flag = load(&["--log-format", "xml"], &[]).unwrap_err();
    assert_eq!(flag.exit_code(), 1, "a bad value is a configuration error");
}

#[test]
fn a_zero_interval_is_an_error() {
    let Err(ConfigError::Invalid(errors)) = load(&["--cleanup-interval-secs", "0"], &[]) else {
        panic!("expected an error");
    };
    assert!(errors[0].contains("cleanup_interval_secs"));
}

#[test]
fn an_unparsable_url_is_an_error() {
    assert!(load(&["--database-url", "mysql://x"], &[]).is_err());
    assert!(load(&["--redis-url", "not a url"], &[]).is_err());
    assert!(
        load(&[], &[("REDIS_URL", "")])
            .unwrap()
            .0
            .redis_url
            .is_none()
    );
}

#[test]
fn a_zero_store_timeout_is_an_error_and_an_extreme_one_a_warning() {
    let Err(ConfigError::Invalid(errors)) = load(&["--store-timeout-ms", "0"], &[]) else {
        panic!("expected an error");
    };
    assert!(errors[0].contains("store_timeout_ms"), "{errors:?}");
    for extreme in [50, 120_000] {
        let (settings, warnings) =
            load(&["--store-timeout-ms", &extreme.to_string()], &[]).unwrap();
        assert_eq!(settings.store_timeout, Duration::from_millis(extreme));
        assert!(
            warnings.iter().any(|w| w.contains("store_timeout_ms")),
            "{warnings:?}"
        );
    }
}

#[test]
fn unwise_values_are_warnings() {
    let (_, warnings) = load(
        &[
            "--cleanup-interval-secs",
            "5",
            "--cleanup-batch-size",
            "500",
            "--stale-threshold-secs",
            "20",
        ],
        &[],
    )
    .unwrap();
    let text = warnings.join("\n");
    assert!(text.contains("outside the recommended 10-300"), "{text}");
    assert!(text.contains("outside the recommended 1-100"), "{text}");
    assert!(text.contains("under 3x heartbeat"), "{text}");
}

#[test]
fn a_public_bind_without_auth_is_refused_unless_insecure() {
    assert!(load(&["--bind", "0.0.0.0:8080"], &[]).is_err());
    assert!(load(&["--bind", "0.0.0.0:8080", "--insecure-no-auth"], &[]).is_ok());
    let (_file, path) = file("bind = \"0.0.0.0:8080\"\ninsecure_no_auth = true");
    assert!(load(&["--config", &path], &[]).is_ok());
}

#[test]
fn an_hs256_secret_under_32_bytes_is_an_error() {
    let Err(ConfigError::Invalid(errors)) = load(&["--jwt-secret", "short"], &[]) else {
        panic!("expected an error");
    };
    assert!(errors[0].contains("5 bytes"), "{errors:?}");
}

#[test]
fn secrets_are_masked_in_the_effective_configuration() {
    let settings = settings(
        &[
            "--jwt-secret",
            "hunter2-hunter2-hunter2-hunter2-hunter2",
            "--database-url",
            "postgres://u:pw@localhost/db",
            "--redis-url",
            "redis://:redispw@localhost:6379",
            "--jwks-url",
            "https://idp.example/keys?key=apikey",
        ],
        &[],
    );
    let shown = serde_json::to_value(&settings).unwrap();
    let text = shown.to_string();
    for secret in ["hunter2", ":pw@", "redispw", "apikey"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(shown["jwt_secret"], "***");
    assert_eq!(shown["jwt_secret_count"], 1);
    assert_eq!(shown["database_url"], "postgres://***:***@localhost/db");
    assert_eq!(shown["jwks_url"], "https://idp.example/keys?key=***");
    assert!(!format!("{settings:?}").contains("hunter2"));
}

/// The keys `check-config` printed before the settings were one declaration;
/// tests, docs and dashboards read them.
#[test]
fn the_effective_configuration_keeps_its_keys() {
    let shown = serde_json::to_value(settings(&[], &[])).unwrap();
    let keys: Vec<&str> = shown
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected = [
        "bind",
        "database_url",
        "redis_url",
        "auth_enabled",
        "jwt_secret",
        "jwt_secret_count",
        "jwt_public_keys",
        "jwks_url",
        "jwks_refresh_secs",
        "jwks_min_refresh_secs",
        "jwt_leeway_secs",
        "jwt_audience",
        "jwt_issuer",
        "stream_rate_per_ip",
        "stream_rate_per_user",
        "publish_rate_per_user",
        "max_streams_per_user",
        "trusted_proxies",
        "health",
        "heartbeat_secs",
        "cleanup_interval_secs",
        "cleanup_batch_size",
        "stale_threshold_secs",
        "max_connections",
        "queue_capacity",
        "event_types",
        "cors_origins",
        "max_body_bytes",
        "body_read_timeout_secs",
        "retention",
        "store_timeout_ms",
        "insecure_no_auth",
        "workers",
        "cluster_name",
        "task_orphan_timeout_secs",
        "text_coalesce_ms",
        "instance_id",
        "log_format",
    ];
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    let mut expected_sorted = expected.to_vec();
    expected_sorted.sort_unstable();
    assert_eq!(sorted, expected_sorted);
    assert_eq!(keys.len(), expected.len());
    assert_eq!(shown["retention"], "1day");
    assert_eq!(shown["health"]["cleanup_error_rate_alert"], 0.1);
}

fn long_help() -> String {
    Settings::augment_args(Command::new("sse-broker"))
        .mut_args(|arg| arg.env(None))
        .render_long_help()
        .to_string()
}

#[test]
fn help_shows_each_default_once() {
    let help = long_help();
    let command = Settings::augment_args(Command::new("sse-broker"));
    let shown_defaults = command
        .get_arguments()
        .filter(|arg| {
            arg.get_action().takes_values()
                && !arg.get_default_values().is_empty()
                && !arg.is_hide_default_value_set()
        })
        .count();
    assert_eq!(help.matches("[default: ").count(), shown_defaults, "{help}");
    for arg in command.get_arguments() {
        let text = arg.get_help().map(ToString::to_string).unwrap_or_default();
        assert!(
            !text.contains("[default"),
            "--{} repeats its default in prose: {text}",
            arg.get_long().unwrap_or_default()
        );
    }
    assert!(help.contains("[default: 15]"), "{help}");
    assert!(help.contains("[default: 120/min]"), "{help}");
}

#[test]
fn every_flag_is_documented() {
    let docs = include_str!("../../docs/configuration.md");
    let command = Settings::augment_args(Command::new("sse-broker"));
    for arg in command.get_arguments() {
        let long = arg.get_long().expect("every setting has a long flag");
        assert!(
            docs.contains(&format!("`--{long}`")),
            "--{long} is missing from docs/configuration.md"
        );
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy();
            assert!(
                docs.contains(&format!("`{env}`")),
                "{env} is missing from docs/configuration.md"
            );
        }
    }
}
