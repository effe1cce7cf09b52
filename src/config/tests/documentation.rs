//! What an operator reads: the masked effective configuration, `--help` and the docs.

use super::*;

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
        "publish_within_projects",
        "max_streams_per_user",
        "trusted_proxies",
        "health",
        "heartbeat_secs",
        "cleanup_interval_secs",
        "cleanup_batch_size",
        "stale_threshold_secs",
        "max_connections",
        "queue_capacity",
        "write_delay_ms",
        "replay_cache_events",
        "replay_cache_mib",
        "event_types",
        "cors_origins",
        "max_body_bytes",
        "max_upload_line_bytes",
        "upload_memory_mib",
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
        "tls_cert",
        "tls_key",
        "ticket_ttl_secs",
        "token_refresh_secs",
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
    let docs = include_str!("../../../docs/configuration.md");
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
