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
