//! Configuration as the contract states it (§1): every setting by flag,
//! environment variable or TOML file, with flag > env > file > default,
//! checked through the real binary's `check-config`.

use std::io::Write;

use serde_json::Value;

use crate::helpers::broker_command;

/// The effective configuration `check-config` prints, given flags and env.
fn effective(flags: &[&str], env: &[(&str, &str)]) -> Value {
    let output = broker_command()
        .args(flags)
        .arg("check-config")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "check-config failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("check-config prints JSON")
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "heartbeat_secs = 20\nqueue_capacity = 300\nmax_body_bytes = 4096"
    )
    .unwrap();
    let config = file.path().to_str().unwrap();

    let defaults = effective(&[], &[]);
    assert_eq!(defaults["heartbeat_secs"], 15);
    assert_eq!(defaults["queue_capacity"], 1024);

    let from_file = effective(&["--config", config], &[]);
    assert_eq!(from_file["heartbeat_secs"], 20);
    assert_eq!(from_file["max_body_bytes"], 4096);

    let env_over_file = effective(
        &["--config", config],
        &[
            ("SSE_BROKER_HEARTBEAT_SECS", "7"),
            ("SSE_BROKER_QUEUE_CAPACITY", "64"),
        ],
    );
    assert_eq!(env_over_file["heartbeat_secs"], 7);
    assert_eq!(env_over_file["queue_capacity"], 64);
    assert_eq!(
        env_over_file["max_body_bytes"], 4096,
        "the file still fills the rest"
    );

    let flag_over_env = effective(
        &["--config", config, "--heartbeat-secs", "5"],
        &[("SSE_BROKER_HEARTBEAT_SECS", "7")],
    );
    assert_eq!(flag_over_env["heartbeat_secs"], 5);

    // The config file itself can come from the environment.
    let file_from_env = effective(&[], &[("SSE_BROKER_CONFIG", config)]);
    assert_eq!(file_from_env["heartbeat_secs"], 20);
}

#[test]
fn the_store_timeout_is_a_flag_an_environment_variable_and_a_file_key() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "store_timeout_ms = 2500").unwrap();
    let config = file.path().to_str().unwrap();

    assert_eq!(effective(&[], &[])["store_timeout_ms"], 5000);
    assert_eq!(
        effective(&["--config", config], &[])["store_timeout_ms"],
        2500
    );
    assert_eq!(
        effective(
            &["--config", config],
            &[("SSE_BROKER_STORE_TIMEOUT_MS", "1500")]
        )["store_timeout_ms"],
        1500
    );
    assert_eq!(
        effective(
            &["--config", config, "--store-timeout-ms", "750"],
            &[("SSE_BROKER_STORE_TIMEOUT_MS", "1500")]
        )["store_timeout_ms"],
        750
    );

    let zero = broker_command()
        .args(["--store-timeout-ms", "0", "check-config"])
        .output()
        .expect("the binary runs");
    assert_eq!(zero.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&zero.stderr);
    assert!(
        stderr.contains("store_timeout_ms must be at least 1"),
        "{stderr}"
    );
}

#[test]
fn an_impossible_value_stops_with_a_clear_message_and_exit_1() {
    let output = broker_command()
        .args(["--cleanup-interval-secs", "0", "check-config"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cleanup_interval_secs must be at least 1"),
        "{stderr}"
    );
}

/// An extra event type named like one of the broker's own frames would let
/// any publisher send `shutdown` or `connected` to every stream: refused
/// from a flag, the environment and the file alike.
#[test]
fn an_extra_event_type_named_like_a_control_frame_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("broker.toml");
    std::fs::write(&file, "event_types = \"deploy, token_expired\"\n").expect("written");
    let flag = broker_command()
        .args(["--event-types", "deploy,shutdown", "check-config"])
        .output()
        .expect("the binary runs");
    let env = broker_command()
        .env("SSE_BROKER_EVENT_TYPES", "heartbeat")
        .arg("check-config")
        .output()
        .expect("the binary runs");
    let from_file = broker_command()
        .arg("--config")
        .arg(&file)
        .arg("check-config")
        .output()
        .expect("the binary runs");

    for (output, name) in [
        (flag, "shutdown"),
        (env, "heartbeat"),
        (from_file, "token_expired"),
    ] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "\"{name}\" is the name of the broker's own frames"
            )),
            "{stderr}"
        );
    }
    let allowed = broker_command()
        .args(["--event-types", "deploy,shutdown_notice", "check-config"])
        .output()
        .expect("the binary runs");
    assert!(allowed.status.success(), "{allowed:?}");
}

/// A store URL the broker cannot keep events in, or one without a host,
/// is refused with the reason; a refused URL's password never echoes.
#[test]
fn a_database_url_that_cannot_hold_the_events_is_refused_saying_why() {
    let cases = [
        ("sqlite::memory:", "in-memory SQLite store is not supported"),
        ("sqlite://events.db?mode=rwc", "without a query"),
        ("postgres:///events", "needs a host"),
    ];
    for (url, reason) in cases {
        let flag = broker_command()
            .args(["--database-url", url, "check-config"])
            .output()
            .expect("the binary runs");
        let env = broker_command()
            .env("DATABASE_URL", url)
            .arg("check-config")
            .output()
            .expect("the binary runs");
        for output in [flag, env] {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_ne!(output.status.code(), Some(0), "{url}: {stderr}");
            assert!(stderr.contains(reason), "{url}: {stderr}");
        }
    }
    for (flag, url) in [
        ("--database-url", "postgres://bob:hunter2@[bad/db"),
        ("--redis-url", "rediss://:hunter2@[bad:6379"),
    ] {
        let output = broker_command()
            .args([flag, url, "check-config"])
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{flag}: {stderr}");
        assert!(stderr.contains(flag), "{flag}: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "{flag} echoes its password: {stderr}"
        );
    }
}

/// A start that fails once the store is open (the port taken, a key that
/// does not fit its certificate) ends with its one clear message and exit
/// 1: no panic of an actor dropped before it ever ran.
#[test]
fn a_start_that_fails_late_says_why_once_and_panics_nowhere() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let port = taken.local_addr().expect("its address").port();
    let dir = tempfile::tempdir().expect("a temp dir");
    let database = format!("sqlite://{}", dir.path().join("events.db").display());
    let certificate = dir.path().join("cert.pem");
    let other_key = dir.path().join("key.pem");
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a cert");
    let unrelated = rcgen::KeyPair::generate().expect("a key");
    std::fs::write(&certificate, issued.cert.pem()).expect("cert written");
    std::fs::write(&other_key, unrelated.serialize_pem()).expect("key written");
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let free_port = free.local_addr().expect("its address").port();
    drop(free);
    let cases = [
        (
            vec!["--bind".to_owned(), format!("127.0.0.1:{port}")],
            format!("error: binding 127.0.0.1:{port}"),
        ),
        (
            vec![
                "--bind".to_owned(),
                format!("127.0.0.1:{free_port}"),
                "--tls-cert".to_owned(),
                certificate.display().to_string(),
                "--tls-key".to_owned(),
                other_key.display().to_string(),
            ],
            "error: loading the TLS certificate".to_owned(),
        ),
    ];

    for (args, reason) in cases {
        let output = broker_command()
            .args(&args)
            .args(["--database-url", &database])
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("the binary runs");

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&reason), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // The cause is said once, not again as the error's source.
        let error_line = stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_default();
        let (_, cause) = error_line.rsplit_once(": ").unwrap_or_default();
        assert_eq!(error_line.matches(cause).count(), 1, "{error_line}");
    }
}

/// Each setting `--help` lists: its flag and its variable.
fn settings_in_help() -> Vec<(String, Option<String>)> {
    let output = broker_command()
        .arg("--help")
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "--help failed");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let mut settings: Vec<(String, Option<String>)> = Vec::new();
    for line in help.lines().map(str::trim_start) {
        if let Some(flag) = line.strip_prefix("--") {
            let flag = flag.split([' ', '=', '<']).next().unwrap_or_default();
            if !["help", "version", "config"].contains(&flag) {
                settings.push((format!("--{flag}"), None));
            }
        }
        if let (Some(at), Some(last)) = (line.find("[env: "), settings.last_mut())
            && last.1.is_none()
        {
            let env = &line[at + "[env: ".len()..];
            last.1 = env.split(['=', ']']).next().map(str::to_owned);
        }
    }
    settings
}

#[test]
fn every_setting_of_help_is_in_the_readmes_table_and_the_configuration_guide() {
    let read = |path: &str| {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let (readme, guide) = (read("README.md"), read("docs/configuration.md"));
    let settings = settings_in_help();
    assert!(settings.len() > 40, "{settings:?}");

    let missing: Vec<String> = settings
        .iter()
        .filter_map(|(flag, env)| {
            let in_readme = readme.lines().any(|row| {
                // The row's first cell names the flag (one row may name two).
                row.split('|')
                    .nth(1)
                    .is_some_and(|cell| cell.contains(&format!("`{flag}`")))
                    && env
                        .as_ref()
                        .is_none_or(|env| row.contains(&format!("`{env}`")))
            });
            let in_guide = guide.contains(&format!("`{flag}`"));
            (!in_readme || !in_guide).then(|| {
                format!("{flag} ({env:?}): README row {in_readme}, configuration.md {in_guide}")
            })
        })
        .collect();
    assert!(missing.is_empty(), "undocumented settings: {missing:#?}");
}

/// One setting the contract names (§1, §7, §8): its flag, its environment
/// variable, a value to give it, and what `check-config` must then show.
struct Named {
    flag: &'static str,
    env: &'static str,
    value: &'static str,
    /// The key of the effective configuration, and the value it must hold.
    key: &'static str,
    shows: Value,
}

fn contract_settings() -> Vec<Named> {
    use serde_json::json;
    let named = |flag, env, value, key, shows| Named {
        flag,
        env,
        value,
        key,
        shows,
    };
    vec![
        named(
            "--bind",
            "SSE_BROKER_BIND",
            "127.0.0.1:9191",
            "bind",
            json!("127.0.0.1:9191"),
        ),
        named(
            "--database-url",
            "DATABASE_URL",
            "sqlite:///var/tmp/named.db",
            "database_url",
            json!("sqlite:///var/tmp/named.db"),
        ),
        named(
            "--redis-url",
            "REDIS_URL",
            "redis://127.0.0.1:6390/",
            "redis_url",
            json!("redis://127.0.0.1:6390/"),
        ),
        named(
            "--jwt-secret",
            "SSE_BROKER_JWT_SECRET",
            "a-secret-of-thirty-two-bytes-or-more",
            "auth_enabled",
            json!(true),
        ),
        named(
            "--jwks-url",
            "SSE_BROKER_JWKS_URL",
            "http://127.0.0.1:1/jwks.json",
            "jwks_url",
            json!("http://127.0.0.1:1/jwks.json"),
        ),
        named(
            "--heartbeat-secs",
            "SSE_BROKER_HEARTBEAT_SECS",
            "20",
            "heartbeat_secs",
            json!(20),
        ),
        named(
            "--cleanup-interval-secs",
            "SSE_BROKER_CLEANUP_INTERVAL_SECS",
            "90",
            "cleanup_interval_secs",
            json!(90),
        ),
        named(
            "--cleanup-batch-size",
            "SSE_BROKER_CLEANUP_BATCH_SIZE",
            "25",
            "cleanup_batch_size",
            json!(25),
        ),
        named(
            "--stale-threshold-secs",
            "SSE_BROKER_STALE_THRESHOLD_SECS",
            "600",
            "stale_threshold_secs",
            json!(600),
        ),
        named(
            "--max-connections",
            "SSE_BROKER_MAX_CONNECTIONS",
            "1234",
            "max_connections",
            json!(1234),
        ),
        named(
            "--queue-capacity",
            "SSE_BROKER_QUEUE_CAPACITY",
            "77",
            "queue_capacity",
            json!(77),
        ),
        named(
            "--event-types",
            "SSE_BROKER_EVENT_TYPES",
            "build_done,deploy_done",
            "event_types",
            json!(["build_done", "deploy_done"]),
        ),
        named(
            "--cors-origins",
            "SSE_BROKER_CORS_ORIGINS",
            "https://a.example,https://b.example",
            "cors_origins",
            json!(["https://a.example", "https://b.example"]),
        ),
        named(
            "--max-body-bytes",
            "SSE_BROKER_MAX_BODY_BYTES",
            "4096",
            "max_body_bytes",
            json!(4096),
        ),
        named(
            "--retention",
            "SSE_BROKER_RETENTION",
            "2h",
            "retention",
            json!("2h"),
        ),
        named(
            "--text-coalesce-ms",
            "SSE_BROKER_TEXT_COALESCE_MS",
            "25",
            "text_coalesce_ms",
            json!(25),
        ),
        named(
            "--ticket-ttl-secs",
            "SSE_BROKER_TICKET_TTL_SECS",
            "45",
            "ticket_ttl_secs",
            json!(45),
        ),
        named(
            "--token-refresh-secs",
            "SSE_BROKER_TOKEN_REFRESH_SECS",
            "90",
            "token_refresh_secs",
            json!(90),
        ),
    ]
}

/// The names the contract requires are the names the binary reads: each
/// setting by its flag and by its environment variable (a renamed one
/// would be refused as a flag, or silently ignored as a variable, and a
/// deployment would run on the default).
#[test]
fn every_setting_the_contract_names_is_read_by_its_flag_and_its_variable() {
    let mut failures = Vec::new();
    for setting in contract_settings() {
        let by_flag = effective(&[setting.flag, setting.value], &[]);
        if by_flag[setting.key] != setting.shows {
            failures.push(format!(
                "{} {}: {} is {}",
                setting.flag, setting.value, setting.key, by_flag[setting.key]
            ));
        }
        let by_env = effective(&[], &[(setting.env, setting.value)]);
        if by_env[setting.key] != setting.shows {
            failures.push(format!(
                "{}={}: {} is {}",
                setting.env, setting.value, setting.key, by_env[setting.key]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// File-valued settings: the binary reads the path given by the flag or
/// the variable (a missing file is named in the refusal).
#[test]
fn the_key_and_certificate_settings_are_read_by_their_flags_and_variables() {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let missing = scratch.path().join("missing.pem");
    let missing = missing.to_str().expect("a UTF-8 path");
    for (flag, env) in [
        ("--jwt-public-key", "SSE_BROKER_JWT_PUBLIC_KEY"),
        ("--tls-cert", "SSE_BROKER_TLS_CERT"),
        ("--tls-key", "SSE_BROKER_TLS_KEY"),
    ] {
        for output in [
            broker_command()
                .args([flag, missing, "check-config"])
                .output()
                .expect("the binary runs"),
            broker_command()
                .arg("check-config")
                .env(env, missing)
                .output()
                .expect("the binary runs"),
        ] {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{flag} / {env}: {stderr}");
            assert!(
                stderr.contains(missing) && stderr.contains("not a readable file"),
                "{flag} / {env}: the refusal names the file: {stderr}"
            );
        }
    }
}

/// With nothing set, the effective configuration is the contract's
/// defaults (§1, §8; the coalescing window is the documented one).
#[test]
fn with_nothing_set_the_settings_are_the_contracts_defaults() {
    use serde_json::json;
    let defaults = effective(&[], &[]);
    for (key, expected) in [
        ("bind", json!("127.0.0.1:8080")),
        ("database_url", json!("sqlite://data/sse-broker.db")),
        ("redis_url", Value::Null),
        ("auth_enabled", json!(false)),
        ("jwks_url", Value::Null),
        ("heartbeat_secs", json!(15)),
        ("cleanup_interval_secs", json!(60)),
        ("cleanup_batch_size", json!(10)),
        ("stale_threshold_secs", json!(300)),
        ("max_connections", json!(10000)),
        ("queue_capacity", json!(1024)),
        ("event_types", json!([])),
        ("cors_origins", json!([])),
        ("max_body_bytes", json!(65536)),
        ("text_coalesce_ms", json!(10)),
        ("ticket_ttl_secs", json!(30)),
        ("token_refresh_secs", json!(60)),
        ("tls_cert", Value::Null),
        ("tls_key", Value::Null),
    ] {
        assert_eq!(defaults[key], expected, "default {key}: {defaults}");
    }
    // 24 hours, however the duration is spelled.
    let retention = defaults["retention"].as_str().expect("retention");
    assert!(
        ["1day", "24h", "1d"].contains(&retention),
        "default retention {retention}"
    );
}

/// `check-config` prints every validation warning, and exits 0 on them:
/// a stale threshold under twice the cleanup interval is one.
#[test]
fn check_config_prints_the_stale_threshold_warning_and_still_succeeds() {
    let output = broker_command()
        .args([
            "--cleanup-interval-secs",
            "100",
            "--stale-threshold-secs",
            "150",
            "check-config",
        ])
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let warning = stderr
        .lines()
        .find(|line| line.starts_with("warning:") && line.contains("stale_threshold"))
        .unwrap_or_else(|| panic!("no stale-threshold warning in {stderr}"));
    assert!(
        warning.contains("2x cleanup_interval_secs") || warning.contains("2× cleanup"),
        "the warning names the rule: {warning}"
    );
}

/// `migrate` applies the store's migrations and exits; a second run finds
/// nothing left to apply.
#[test]
fn migrate_applies_the_migrations_and_exits() {
    use std::time::{Duration, Instant};
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let path = scratch.path().join("migrated.db");
    let url = format!("sqlite://{}", path.display());
    let run = || {
        let started = Instant::now();
        let output = broker_command()
            .args(["--database-url", &url, "migrate"])
            .output()
            .expect("the binary runs");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "migrate returned"
        );
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };

    let first = run();
    let applied: u32 = first
        .trim()
        .strip_prefix("applied ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {first:?}"));
    assert!(applied >= 5, "{first}");
    let tables = {
        use diesel::{RunQueryDsl, sql_types::Text};
        #[derive(diesel::QueryableByName)]
        struct Table {
            #[diesel(sql_type = Text)]
            name: String,
        }
        let mut connection = crate::helpers::outside_sqlite(&path.to_string_lossy());
        diesel::sql_query("SELECT name FROM sqlite_master WHERE type = 'table'")
            .load::<Table>(&mut connection)
            .expect("its tables")
            .into_iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
    };
    for table in ["events", "tasks"] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }

    let second = run();
    assert!(second.starts_with("applied 0 migration(s)"), "{second}");
}

#[test]
fn an_unreachable_database_at_start_is_named_in_the_json_log_and_on_stderr() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = closed.local_addr().expect("an address").port();
    drop(closed);
    let output = broker_command()
        .args(["--bind", "127.0.0.1:0"])
        .args([
            "--database-url",
            &format!("postgres://app:s3cret@127.0.0.1:{port}/events"),
        ])
        .env("SSE_BROKER_LOG_FORMAT", "json")
        .output()
        .expect("the binary runs");

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let address = format!("127.0.0.1:{port}");
    assert!(
        stderr.contains("error:") && stderr.contains(&address) && stderr.contains("refused"),
        "{stderr}"
    );
    let logged = stdout
        .lines()
        .chain(stderr.lines())
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == "the broker could not start")
        .unwrap_or_else(|| panic!("no JSON line for the failed start:\n{stdout}\n{stderr}"));
    let reason = logged["error.message"].as_str().unwrap_or_default();
    assert!(reason.contains(&address), "{logged}");
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"));
}
