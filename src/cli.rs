//! The command line: subcommands, and the settings every subcommand shares.

use std::ffi::OsString;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{self, ConfigError, Environment, Settings};

/// sse-broker: a Server-Sent Events broker with resumable streams.
#[derive(Debug, Parser)]
#[command(name = "sse-broker", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: Settings,
}

impl Cli {
    /// The command line, with every setting not given as a flag taken from
    /// `environment`, else the config file, else its default.
    pub fn load(
        argv: impl IntoIterator<Item = impl Into<OsString>>,
        environment: Environment,
    ) -> Result<Self, ConfigError> {
        config::parse_layered(Self::command(), argv, environment)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker (the default when no subcommand is given).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Mint a signed JWT for local use, with the configured key.
    Token(TokenArgs),
    /// Load and validate the configuration, print it with secrets masked.
    CheckConfig,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The token's subject (user id).
    #[arg(long)]
    pub sub: String,
    /// Space-separated scopes: subscribe, publish, admin.
    #[arg(long, default_value = "subscribe")]
    pub scope: String,
    /// A project the token grants (repeatable); `*` grants every project.
    #[arg(long = "project")]
    pub projects: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// PEM private key to sign with, when the broker verifies RS256/ES256.
    #[arg(long)]
    pub private_key: Option<std::path::PathBuf>,
}
