//! Refusals and warnings: each names its source.

use super::*;

#[test]
fn unknown_file_keys_are_refused() {
    let (_file, path) = file("heartbeat = 20");
    let refused = load(&["--config", &path], &[]);
    assert!(
        matches!(&refused, Err(ConfigError::UnknownKey { key, hint, .. }) if key == "heartbeat" && hint.contains("`heartbeat_secs`")),
        "{refused:?}"
    );
    let message = refused.unwrap_err().to_string();
    assert!(
        !message.contains("TOML"),
        "the file is valid TOML: {message}"
    );
    let (_file, path) = file("colour = \"blue\"");
    let far = load(&["--config", &path], &[]).unwrap_err().to_string();
    assert!(
        far.contains("unknown key `colour`") && far.contains("--help"),
        "{far}"
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
fn a_list_is_refused_for_a_single_value_and_taken_for_a_list_setting() {
    for text in [
        "retention = [\"2h\"]",
        "bind = [\"127.0.0.1:9\"]",
        "max_connections = [\"7\"]",
        "heartbeat_secs = [1, 30]",
    ] {
        let (_file, path) = file(text);
        let refused = load(&["--config", &path], &[]).unwrap_err().to_string();
        assert!(refused.contains("not a list"), "{text}: {refused}");
    }
    let (_file, path) = file(
        "event_types = [\"deploy\", \"audit\"]\ntrusted_proxies = [\"10.0.0.1\"]\njwt_secret = [\"a-secret-of-at-least-thirty-two-bytes!!\"]",
    );
    let (settings, _) = load(&["--config", &path], &[]).expect("lists where lists belong");
    assert!(
        types(&settings).contains(&"deploy"),
        "{:?}",
        types(&settings)
    );
}

#[test]
fn an_empty_cluster_name_is_an_error() {
    let Err(ConfigError::Invalid(errors)) = load(&["--cluster-name", ""], &[]) else {
        panic!("expected an error");
    };
    assert!(errors[0].contains("cluster_name"), "{errors:?}");
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
    // Past PostgreSQL's statement_timeout, a start would fail on the store.
    assert!(load(&["--store-timeout-ms", "2147483647"], &[]).is_ok());
    let Err(ConfigError::Invalid(errors)) = load(&["--store-timeout-ms", "2147483648"], &[]) else {
        panic!("expected an error");
    };
    assert!(errors[0].contains("at most 2147483647"), "{errors:?}");
}

#[test]
fn a_jwt_leeway_past_a_day_is_an_error() {
    assert!(load(&["--jwt-leeway-secs", "86400"], &[]).is_ok());
    // Past the Unix time it would refuse every token as expired.
    for too_long in ["86401", "3155760000"] {
        let Err(ConfigError::Invalid(errors)) = load(&["--jwt-leeway-secs", too_long], &[]) else {
            panic!("expected an error for {too_long}");
        };
        assert!(
            errors[0].contains("jwt_leeway_secs must be at most 86400"),
            "{errors:?}"
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

/// Periods past what the clock arithmetic holds (milliseconds since 1970 in
/// an `i64`) wrapped: a retention of a billion years pruned everything at
/// start-up, a huge heartbeat panicked. Every period setting refuses more
/// than 100 years, naming its source; 100 years itself is taken.
#[test]
fn a_period_longer_than_a_century_is_refused() {
    for (flag, value) in [
        ("--retention", "1000000000years"),
        ("--heartbeat-secs", "18446744073709551615"),
        ("--cleanup-interval-secs", "9223372036854775807"),
        ("--task-orphan-timeout-secs", "18446744073709551615"),
        ("--ticket-ttl-secs", "3155760001"),
        ("--store-timeout-ms", "18446744073709551615"),
    ] {
        let refused = load(&[flag, value], &[]).unwrap_err();
        let message = refused.to_string();
        assert!(message.contains("100 years"), "{flag} {value}: {message}");
        assert_eq!(refused.exit_code(), 1, "{flag}");
    }
    let from_env = load(&[], &[("SSE_BROKER_RETENTION", "300000000years")])
        .unwrap_err()
        .to_string();
    assert!(
        from_env.starts_with("SSE_BROKER_RETENTION:") && from_env.contains("100 years"),
        "{from_env}"
    );
    let (settings, _) = load(
        &[
            "--retention",
            "100years",
            "--task-orphan-timeout-secs",
            "3155760000",
        ],
        &[],
    )
    .expect("a century is taken");
    assert_eq!(settings.retention.as_secs(), 3_155_760_000);
}

/// An empty audience or issuer (an env file's line left blank) would have
/// refused every token the broker's own `token` command mints.
#[test]
fn an_empty_audience_or_issuer_is_an_error() {
    for (variable, key) in [
        ("SSE_BROKER_JWT_AUDIENCE", "jwt_audience"),
        ("SSE_BROKER_JWT_ISSUER", "jwt_issuer"),
    ] {
        let Err(ConfigError::Invalid(errors)) = load(&[], &[(variable, " ")]) else {
            panic!("{variable}: expected an error");
        };
        assert!(errors.iter().any(|e| e.starts_with(key)), "{errors:?}");
        let (_file, path) = file(&format!("{key} = \"\""));
        assert!(load(&["--config", &path], &[]).is_err(), "{key} in a file");
    }
    assert!(load(&["--jwt-audience", "sse-broker"], &[]).is_ok());
}
