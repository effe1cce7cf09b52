//! The `sse-broker` binary: parse the command line, run the subcommand, map
//! the outcome to an exit code. Everything else lives in the library.

use std::process::ExitCode;

use sse_broker::{
    app::Application,
    auth::{self, TokenRequest},
    cli::{Cli, Command, TokenArgs},
    config::{self, ConfigError, DatabaseUrl, Settings},
    http, shutdown, store, telemetry,
};

fn main() -> ExitCode {
    let cli = match Cli::load(std::env::args_os(), &config::process_environment) {
        Ok(cli) => cli,
        Err(error) => return refused(error),
    };
    let (settings, warnings) = match cli.settings.validated() {
        Ok(validated) => validated,
        Err(error) => return refused(error),
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings, warnings),
        Command::Migrate => migrate(&settings),
        Command::Token(args) => token(&settings, &args),
        Command::CheckConfig => check_config(&settings, &warnings),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Configuration that cannot run (or `--help`): clap prints its own errors
/// and help, with their usage hints.
fn refused(error: ConfigError) -> ExitCode {
    match &error {
        ConfigError::CommandLine(clap_error) => match secret_value_refusal(clap_error) {
            Some(message) => eprintln!("error: {message}"),
            None => {
                let _ = clap_error.print();
            }
        },
        _ => eprintln!("error: {error}"),
    }
    ExitCode::from(error.exit_code())
}

/// A refused value of a setting that may hold a password (a URL), said
/// without the value, which clap's own message repeats (the environment and
/// the file's refusals never do).
fn secret_value_refusal(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::ValueValidation {
        return None;
    }
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let may_hold_a_password = ["--database-url", "--redis-url", "--jwks-url"]
        .iter()
        .any(|name| arg.starts_with(name));
    if !may_hold_a_password {
        return None;
    }
    let reason = std::error::Error::source(error).map_or_else(String::new, ToString::to_string);
    Some(format!("invalid value for '{arg}': {reason}"))
}

fn serve(settings: Settings, warnings: Vec<String>) -> anyhow::Result<()> {
    let open_files = raise_open_file_limit();
    actix_web::rt::System::new().block_on(async move {
        let telemetry = telemetry::init_tracing(settings.log_format, &settings.instance_id);
        log_validation(&settings, &warnings);
        match open_files {
            Ok(limit) => {
                tracing::info!(open_files = limit, "open-file limit");
                if let Some(warning) = open_file_shortfall(settings.max_connections, limit) {
                    tracing::warn!(
                        open_files = limit,
                        max_connections = settings.max_connections,
                        "{warning}"
                    );
                }
            }
            Err(error) => {
                tracing::warn!(error.message = %error, "cannot raise the open-file limit")
            }
        }
        // One serving process per SQLite file (`store::InstanceLock`).
        // On PostgreSQL, one unclustered broker per database, said when not
        // so (`store::watch_postgres_share`).
        let _instance = match &settings.database {
            DatabaseUrl::Sqlite { path } => Some(store::InstanceLock::acquire(path)?),
            DatabaseUrl::Postgres { url } => {
                store::watch_postgres_share(url.clone(), settings.redis_url.is_some());
                None
            }
        };
        let json_logs = settings.log_format == config::LogFormat::Json;
        let application = match Application::build(settings).await {
            Ok(application) => application,
            Err(error) => {
                // A JSON log pipeline reads only JSON: the reason the start
                // failed is its most wanted line (stderr says it too).
                if json_logs {
                    tracing::error!(error.message = %format!("{error:#}"), "the broker could not start");
                }
                // Actors a failed build started have not run yet: one turn
                // lets them start inside the runtime, which otherwise
                // starts them while dropping them, outside it (a panic).
                tokio::task::yield_now().await;
                return Err(error);
            }
        };
        let trigger = application.shutdown_handle();
        actix_web::rt::spawn(shutdown::on_signals(trigger));
        let metrics = application.metrics().clone();
        let result = application.run_until_stopped().await;
        telemetry.shutdown(metrics).await;
        tracing::info!("bye");
        result
    })
}

fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let applied = runtime.block_on(store::run_migrations(&settings.database))?;
    println!(
        "applied {applied} migration(s) to {}",
        settings.database.masked()
    );
    Ok(())
}

fn token(settings: &Settings, token: &TokenArgs) -> anyhow::Result<()> {
    let pem = token.private_key.as_ref().map(std::fs::read).transpose()?;
    let minted = auth::mint(
        &settings.auth,
        &TokenRequest {
            sub: &token.sub,
            scope: &token.scope,
            projects: &token.projects,
            ttl_secs: token.ttl,
            private_key_pem: pem.as_deref(),
        },
    )?;
    println!("{minted}");
    Ok(())
}

/// The settings through their `Serialize`, which masks every secret.
/// The operators' monitoring guide searches for these two lines by their
/// text: one when nothing was found, one listing every finding.
fn log_validation(settings: &Settings, warnings: &[String]) {
    if warnings.is_empty() {
        tracing::info!(
            "SSE configuration validated successfully: cleanup_interval={}s, batch_size={}, \
             stale_threshold={}s, ping_interval={}s",
            settings.cleanup_interval.as_secs(),
            settings.cleanup_batch_size,
            settings.stale_threshold.as_secs(),
            settings.heartbeat.as_secs(),
        );
    } else {
        tracing::warn!(
            "SSE configuration validation warnings: {}",
            warnings.join("; ")
        );
    }
    if !settings.auth.enabled() {
        tracing::warn!("{AUTH_OFF_WARNING}");
    }
}

/// Said apart from the validation's findings: a mode chosen (no key
/// configured), not a setting out of its range, so a valid configuration
/// without auth still logs the operators' success line.
const AUTH_OFF_WARNING: &str = "authentication is off: no JWT key configured; every caller has every scope and sees every project";

/// The configuration as `serve` would run it: the files it names are read
/// too (keys, certificate), so what would stop a start stops this.
fn check_config(settings: &Settings, warnings: &[String]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    auth::static_keys(&settings.auth).context("loading the JWT key")?;
    let certificate = match settings.tls.files() {
        Some((cert, key)) => {
            http::tls::Tls::check(cert, key).context("loading the TLS certificate")?
        }
        None => None,
    };
    println!("{}", serde_json::to_string_pretty(settings)?);
    for warning in warnings.iter().chain(&certificate) {
        eprintln!("warning: {warning}");
    }
    if !settings.auth.enabled() {
        eprintln!("warning: {AUTH_OFF_WARNING}");
    }
    Ok(())
}

/// Descriptors kept beside the streams: the store's and Redis's
/// connections, the listener, files, and sockets of requests being answered.
const SPARE_OPEN_FILES: u64 = 100;

/// What to say when `--max-connections` streams cannot all have a socket
/// under `limit` open files: past the limit, accepting fails (the client
/// sees a reset, `/health` may not answer) instead of a 503.
fn open_file_shortfall(max_connections: usize, limit: u64) -> Option<String> {
    let needed = (max_connections as u64).saturating_add(SPARE_OPEN_FILES);
    (needed > limit).then(|| {
        format!(
            "max_connections={max_connections} needs about {needed} open files, above the \
             limit of {limit}: past ~{} streams new connections fail instead of answering 503; \
             raise the limit (LimitNOFILE=, ulimit -n) or lower --max-connections",
            limit.saturating_sub(SPARE_OPEN_FILES)
        )
    })
}

/// Every stream holds a socket: lift the soft open-file limit to the hard
/// one (often 1024 → 65536 or more) so `--max-connections` is reachable.
fn raise_open_file_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::open_file_shortfall;

    #[test]
    fn max_connections_past_the_open_file_limit_is_said() {
        let said = open_file_shortfall(10_000, 1024).expect("a warning");
        assert!(said.contains("10100") && said.contains("~924"), "{said}");
        assert_eq!(open_file_shortfall(900, 1024), None);
        assert!(open_file_shortfall(usize::MAX, 1 << 20).is_some());
    }
}
