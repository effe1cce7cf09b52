//! Precedence, resolved once: flag > environment > file > default.
//!
//! clap knows every setting: its flag, its variable, its built-in default
//! and its parser. The loader only decides, per setting, which text wins,
//! and lets clap parse it:
//!
//! 1. parse the command line alone (clap's own environment lookup off), to
//!    learn which settings were given as flags and which file to read;
//! 2. for every other setting, take its environment variable, else its key
//!    in the file, check that text with the setting's own parser (so an
//!    error names the variable or the key), and make it the argument's
//!    default;
//! 3. parse again: a flag beats that default, which replaced the built-in one.
//!
//! The loader reads the environment itself, instead of leaving it to clap,
//! so that a test can hand it one: changing the process environment is
//! unsafe while other tests run.

use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
};

use clap::{
    Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches, error::ErrorKind,
    parser::ValueSource,
};

use super::{DatabaseUrl, Settings};

/// The id of the argument that names the file (`--config`).
const CONFIG: &str = "config";

/// Reads one environment variable.
pub type Environment<'a> = &'a dyn Fn(&OsStr) -> Option<OsString>;

/// The process's environment.
pub fn process_environment(name: &OsStr) -> Option<OsString> {
    std::env::var_os(name)
}

/// Configuration that cannot run. The message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    ParseFile { path: PathBuf, message: String },
    /// Valid TOML with a key no setting has: a typo, most often.
    #[error("config file {path}: unknown key `{key}`: {hint}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        hint: String,
    },
    /// A value from the environment or the file its setting cannot parse.
    #[error("{origin}: {message}")]
    Value { origin: String, message: String },
    /// The command line: a usage error, a flag's value, or `--help`.
    #[error(transparent)]
    CommandLine(#[from] clap::Error),
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl ConfigError {
    /// 1 for configuration that cannot run, whatever its source (the
    /// contract's `check-config` rule); clap's own codes for help (0) and
    /// usage errors (2).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::CommandLine(e) if is_bad_value(e.kind()) => 1,
            Self::CommandLine(e) => e.exit_code() as u8,
            _ => 1,
        }
    }
}

fn is_bad_value(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::ValueValidation | ErrorKind::InvalidValue)
}

/// `argv` parsed by `command`, each setting taken from its flag, else its
/// environment variable, else the file's key, else its default.
pub fn layered_matches(
    command: Command,
    argv: impl IntoIterator<Item = impl Into<OsString>>,
    environment: Environment,
) -> Result<ArgMatches, ConfigError> {
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let command = command.mut_args(value_named_as_flag);
    let settings: Vec<Setting> = command.get_arguments().filter_map(Setting::of).collect();
    let bare = command.clone().mut_args(|arg| arg.env(None));
    let given = match bare.clone().try_get_matches_from(&argv) {
        Ok(given) => given,
        // Help from the command that still knows the variables, so
        // `--help` lists them.
        Err(e) if !e.use_stderr() => {
            return Err(command
                .try_get_matches_from(&argv)
                .err()
                .unwrap_or(e)
                .into());
        }
        Err(e) => return Err(e.into()),
    };
    let on_command_line = |id: &str| given.value_source(id) == Some(ValueSource::CommandLine);

    let path = match settings.iter().find(|s| s.id == CONFIG) {
        Some(_) if on_command_line(CONFIG) => given.get_one::<PathBuf>(CONFIG).cloned(),
        Some(config) => environment(&config.env).map(PathBuf::from),
        None => None,
    };
    let mut file = match &path {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::default(),
    };
    file.refuse_unknown_keys(&settings)?;

    let mut layered = bare;
    for setting in settings
        .iter()
        .filter(|s| s.id != CONFIG && !on_command_line(&s.id))
    {
        if let Some(values) = setting.below_the_flag(environment, &mut file)? {
            layered = layered.mut_arg(&setting.id, |arg| arg.default_values(values));
        }
    }
    Ok(layered.try_get_matches_from(&argv)?)
}

/// `--heartbeat-secs <HEARTBEAT_SECS>` in `--help` and in errors, as the
/// flag reads, not `<HEARTBEAT>` after the field that holds the `Duration`.
fn value_named_as_flag(arg: Arg) -> Arg {
    match arg.get_long() {
        Some(long) if arg.get_env().is_some() && arg.get_action().takes_values() => {
            let name = long.replace('-', "_").to_uppercase();
            arg.value_name(name)
        }
        _ => arg,
    }
}

/// One setting as the loader sees it.
struct Setting {
    id: String,
    /// Its environment variable.
    env: OsString,
    /// Its key in the file: the long flag with `_`.
    key: String,
    /// Takes one value per occurrence (`--jwt-secret a --jwt-secret b`), so a
    /// list in the file is several values, not one comma-separated one.
    repeatable: bool,
    /// The argument itself, without its environment variable, to check a value.
    arg: Arg,
}

impl Setting {
    /// Every argument with a long flag and a variable is a setting.
    fn of(arg: &Arg) -> Option<Self> {
        Some(Self {
            id: arg.get_id().to_string(),
            env: arg.get_env()?.to_owned(),
            key: arg.get_long()?.replace('-', "_"),
            repeatable: matches!(arg.get_action(), ArgAction::Append),
            arg: arg.clone().env(None).global(false),
        })
    }

    /// The setting's text from its variable, else from the file, checked
    /// by its parser; `None` when neither has it.
    fn below_the_flag(
        &self,
        environment: Environment,
        file: &mut ConfigFile,
    ) -> Result<Option<Vec<OsString>>, ConfigError> {
        let (origin, values) = if let Some(text) = environment(&self.env) {
            (self.env.to_string_lossy().into_owned(), vec![text])
        } else if let Some(value) = file.keys.remove(&self.key) {
            let origin = format!("config file {}, key {}", file.path.display(), self.key);
            match file_values(&value, &self.key, self.repeatable) {
                Ok(values) => (origin, values),
                Err(message) => return Err(ConfigError::Value { origin, message }),
            }
        } else {
            return Ok(None);
        };
        match self.check(&values) {
            Ok(()) => Ok(Some(values)),
            Err(message) => Err(ConfigError::Value { origin, message }),
        }
    }

    /// `values` through the setting's own parser: the reason it refuses them.
    fn check(&self, values: &[OsString]) -> Result<(), String> {
        Command::new("sse-broker")
            .arg(self.arg.clone().default_values(values.iter().cloned()))
            .try_get_matches_from(["sse-broker"])
            .map(drop)
            .map_err(|e| reason(&e))
    }
}

/// What a parser said, without clap's usage lines around it.
fn reason(error: &clap::Error) -> String {
    if let Some(source) = std::error::Error::source(error) {
        return source.to_string();
    }
    error
        .to_string()
        .lines()
        .map(|line| line.trim().trim_start_matches("error: "))
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The TOML file's keys not yet taken by a setting.
#[derive(Default)]
struct ConfigFile {
    path: PathBuf,
    keys: toml::Table,
}

impl ConfigFile {
    fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        let keys = toml::from_str(&text).map_err(|e: toml::de::Error| ConfigError::ParseFile {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            keys,
        })
    }

    /// A typo in the file must not be silently ignored.
    fn refuse_unknown_keys(&self, settings: &[Setting]) -> Result<(), ConfigError> {
        let known = || settings.iter().filter(|s| s.id != CONFIG).map(|s| &s.key);
        match self.keys.keys().find(|key| !known().any(|k| k == *key)) {
            None => Ok(()),
            Some(key) => Err(ConfigError::UnknownKey {
                path: self.path.clone(),
                key: key.clone(),
                hint: match closest_key(key, known()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => "a key is a flag's long name with `_` for `-` \
                             (`--heartbeat-secs` is `heartbeat_secs`); \
                             `sse-broker --help` lists them"
                        .to_owned(),
                },
            }),
        }
    }
}

/// The known key most like `key`, if one is close enough to be the
/// intended one.
fn closest_key<'k>(key: &str, known: impl Iterator<Item = &'k String>) -> Option<&'k String> {
    known
        .map(|k| (strsim::jaro_winkler(key, k), k))
        .filter(|(similarity, _)| *similarity >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// The settings whose one value is a comma-separated list: in the file, a
/// list is that value too (the repeatable ones take a list as well).
const COMMA_LISTS: [&str; 3] = ["event_types", "cors_origins", "trusted_proxies"];

/// A file value as the text a flag would carry: a list is one value per
/// entry for a repeatable setting, one comma-separated value for a list
/// setting, and refused for any other (`retention = ["2h"]` is a mistake,
/// not `2h`).
fn file_values(value: &toml::Value, key: &str, repeatable: bool) -> Result<Vec<OsString>, String> {
    fn scalar(value: &toml::Value) -> Result<String, String> {
        match value {
            toml::Value::String(text) => Ok(text.clone()),
            toml::Value::Integer(n) => Ok(n.to_string()),
            toml::Value::Float(x) => Ok(x.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            _ => Err("expected a string, a number, a boolean or a list of them".into()),
        }
    }
    match value {
        toml::Value::Array(_) if !repeatable && !COMMA_LISTS.contains(&key) => {
            Err("expected one value (a string, a number or a boolean), not a list".into())
        }
        toml::Value::Array(items) => {
            let items = items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
            Ok(if repeatable {
                items.into_iter().map(OsString::from).collect()
            } else {
                vec![items.join(",").into()]
            })
        }
        value => Ok(vec![scalar(value)?.into()]),
    }
}

/// `argv` parsed by `command` into `T`, each setting from its flag, else its
/// environment variable, else the config file, else its default.
pub fn parse_layered<T: FromArgMatches>(
    command: Command,
    argv: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
    environment: Environment,
) -> Result<T, ConfigError> {
    let matches = layered_matches(command, argv, environment)?;
    Ok(T::from_arg_matches(&matches)?)
}

impl Settings {
    /// The settings alone (no subcommands), from `argv` and `environment`
    /// and the file they name; not yet validated.
    pub fn parse_from(
        argv: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
        environment: Environment,
    ) -> Result<Self, ConfigError> {
        parse_layered(
            Self::augment_args(Command::new("sse-broker")),
            argv,
            environment,
        )
    }

    /// Settings for tests and embedding: the defaults, a store of the
    /// caller's choice, port 0, one worker.
    pub fn for_tests(database: DatabaseUrl) -> Self {
        let mut settings: Self = defaults();
        settings.bind = "127.0.0.1:0".parse().expect("valid address");
        settings.database = database;
        settings.workers = 1;
        settings
    }
}

/// A group's built-in defaults, as declared on its fields: no flag, no
/// environment, no file.
pub(super) fn defaults<T: Args + FromArgMatches>() -> T {
    parse_layered(
        T::augment_args(Command::new("sse-broker")),
        ["sse-broker"],
        &|_| None,
    )
    .expect("the built-in defaults parse")
}
