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
