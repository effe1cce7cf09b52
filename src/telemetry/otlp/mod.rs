//! Which signals leave the process over OTLP, and how: the standard
//! OpenTelemetry environment, resolved once into an [`OtlpEnv`].
//!
//! A signal is exported when its own endpoint
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._METRICS_ENDPOINT`) or the
//! general `OTEL_EXPORTER_OTLP_ENDPOINT` is set, unless `OTEL_SDK_DISABLED`
//! or `OTEL_{TRACES,METRICS}_EXPORTER=none` turn it off. The protocol comes
//! from the per-signal `..._PROTOCOL`, then the general one, then `grpc`:
//! the spec's default is `http/protobuf`, but earlier releases spoke gRPC
//! to whatever endpoint was set, and deployments rely on that.
//!
//! The protocol is decided here, and over HTTP the URL: the general
//! endpoint with `/v1/traces` or `/v1/metrics` on its path (before any
//! query, where opentelemetry-otlp would append it to the query), or a
//! per-signal one as it is. Headers and timeouts are read by
//! opentelemetry-otlp itself from the same variables; compression is not
//! built in, and asking for it is said at start-up.

use std::{fmt, sync::OnceLock};

mod endpoint;

use endpoint::{masked, port};
use opentelemetry_otlp::{
    ExporterBuildError, MetricExporter, SpanExporter, WithExportConfig as _, WithTonicConfig as _,
    tonic_types::transport::ClientTlsConfig,
};

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const INSECURE: &str = "OTEL_EXPORTER_OTLP_INSECURE";
const COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// The OTLP/HTTP port: a gRPC exporter pointed there fails every export.
const OTLP_HTTP_PORT: u16 = 4318;

/// One kind of telemetry, with the variables that configure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Metrics => "metrics",
        }
    }

    fn var(self, general: &str) -> String {
        let upper = self.name().to_ascii_uppercase();
        general.replacen("OTLP_", &format!("OTLP_{upper}_"), 1)
    }

    /// The signal's own variable for `general`, else `general`: the one
    /// set, with its value.
    fn setting(
        self,
        general: &str,
        var: &impl Fn(&str) -> Option<String>,
    ) -> Option<(String, String)> {
        [self.var(general), general.to_owned()]
            .into_iter()
            .find_map(|name| var(&name).map(|value| (name, value)))
    }

    fn exporter_var(self) -> &'static str {
        match self {
            Self::Traces => "OTEL_TRACES_EXPORTER",
            Self::Metrics => "OTEL_METRICS_EXPORTER",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The OTLP wire formats, by their `OTEL_EXPORTER_OTLP_PROTOCOL` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Protocol {
    const ACCEPTED: &'static str = "grpc, http/protobuf, http/json";

    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" => Some(Self::HttpProtobuf),
            "http/json" => Some(Self::HttpJson),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
            Self::HttpJson => "http/json",
        })
    }
}

/// Something in the environment worth an operator's attention.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    #[error(
        "{variable}={value:?} is not an OTLP protocol (accepted: {accepted}); {signal} are not exported",
        accepted = Protocol::ACCEPTED
    )]
    UnknownProtocol {
        signal: Signal,
        variable: String,
        value: String,
    },
    #[error(
        "{variable}={value:?}: only `otlp` and `none` are supported; {signal} are not exported"
    )]
    UnsupportedExporter {
        signal: Signal,
        variable: &'static str,
        value: String,
    },
    #[error(
        "{signal} go over gRPC (the default protocol) to port 4318, the OTLP/HTTP port; \
         set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf if that endpoint speaks OTLP/HTTP"
    )]
    GrpcToHttpPort { signal: Signal },
    #[error(
        "{variable}={value:?}: compression is not built into this broker; {signal} are \
         exported uncompressed"
    )]
    Uncompressed {
        signal: Signal,
        variable: String,
        value: String,
    },
}

impl Finding {
    /// Logs the finding: an error when it turned a signal off.
    fn log(&self) {
        match self {
            Self::GrpcToHttpPort { .. } | Self::Uncompressed { .. } => tracing::warn!("{self}"),
            _ => tracing::error!("{self}"),
        }
    }
}

/// How one signal leaves the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalExport {
    pub protocol: Protocol,
    /// The URL the exporter sends to, as opentelemetry-otlp derives it.
    pub endpoint: String,
}

/// One signal's resolution: its export, if any, and what was noticed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignalPlan {
    pub export: Option<SignalExport>,
    pub findings: Vec<Finding>,
}

/// The OTLP environment of this process, resolved once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEnv {
    pub traces: SignalPlan,
    pub metrics: SignalPlan,
}

impl OtlpEnv {
    /// The process environment's plan (it does not change while running).
    pub fn get() -> &'static Self {
        static ENV: OnceLock<OtlpEnv> = OnceLock::new();
        ENV.get_or_init(|| Self::resolve(|name| std::env::var(name).ok()))
    }

    /// Resolves both signals from `var` (the environment, or a test's map).
    pub fn resolve(var: impl Fn(&str) -> Option<String>) -> Self {
        // Blank counts as unset, as the SDKs read it.
        let var = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            traces: resolve_signal(Signal::Traces, &var),
            metrics: resolve_signal(Signal::Metrics, &var),
        }
    }
}

fn resolve_signal(signal: Signal, var: &impl Fn(&str) -> Option<String>) -> SignalPlan {
    let off = |finding: Option<Finding>| SignalPlan {
        export: None,
        findings: finding.into_iter().collect(),
    };
    if var(SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return off(None);
    }
    if let Some(value) = var(signal.exporter_var()) {
        let names: Vec<String> = value.split(',').map(|n| n.trim().to_lowercase()).collect();
        // `prometheus` is the pull exporter, which `/metrics` always serves.
        let pull_only = signal == Signal::Metrics && names.iter().any(|n| n == "prometheus");
        if names.iter().any(|n| n == "none") || pull_only {
            return off(None);
        }
        if !names.iter().any(|n| n == "otlp") {
            return off(Some(Finding::UnsupportedExporter {
                signal,
                variable: signal.exporter_var(),
                value,
            }));
        }
    }
    let own_endpoint = var(&signal.var(ENDPOINT));
    let Some(endpoint) = own_endpoint.clone().or_else(|| var(ENDPOINT)) else {
        return off(None);
    };
    let protocol_var = signal.setting(PROTOCOL, var);
    let protocol = match &protocol_var {
        None => Protocol::Grpc,
        Some((variable, value)) => match Protocol::parse(value) {
            Some(protocol) => protocol,
            None => {
                return off(Some(Finding::UnknownProtocol {
                    signal,
                    variable: variable.clone(),
                    value: value.clone(),
                }));
            }
        },
    };
    let mut findings = Vec::new();
    if protocol_var.is_none() && port(&endpoint) == Some(OTLP_HTTP_PORT) {
        findings.push(Finding::GrpcToHttpPort { signal });
    }
    if let Some((variable, value)) = signal.setting(COMPRESSION, var)
        && !value.eq_ignore_ascii_case("none")
    {
        findings.push(Finding::Uncompressed {
            signal,
            variable,
            value,
        });
    }
    let endpoint = match (protocol, own_endpoint.is_some()) {
        (_, true) | (Protocol::Grpc, false) => endpoint,
        // The signal's path goes on the URL's path, before any query.
        (_, false) => {
            let (base, query) = match endpoint.split_once('?') {
                Some((base, query)) => (base, Some(query)),
                None => (endpoint.as_str(), None),
            };
            let slash = if base.ends_with('/') { "" } else { "/" };
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            format!("{base}{slash}v1/{signal}{query}")
        }
    };
    let endpoint = match (protocol, endpoint.contains("://")) {
        // As tonic resolves a schemeless endpoint: TLS unless insecure.
        (Protocol::Grpc, false) => {
            let insecure = signal
                .setting(INSECURE, var)
                .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"));
            let scheme = if insecure { "http" } else { "https" };
            format!("{scheme}://{endpoint}")
        }
        _ => endpoint,
    };
    SignalPlan {
        export: Some(SignalExport { protocol, endpoint }),
        findings,
    }
}

impl SignalPlan {
    /// Logs the findings, and the export unless building it failed.
    pub fn report(&self, signal: Signal, build_error: Option<&ExporterBuildError>) {
        for finding in &self.findings {
            finding.log();
        }
        let Some(export) = &self.export else { return };
        match build_error {
            None => tracing::info!(
                signal = signal.name(),
                protocol = %export.protocol,
                endpoint = %masked(&export.endpoint),
                "exporting {signal} over OTLP"
            ),
            Some(error) => tracing::error!(
                signal = signal.name(),
                error.message = %error,
                "OTLP {signal} exporter disabled"
            ),
        }
    }
}

/// The TLS of a gRPC export to `https://`: tonic's default has no roots.
fn grpc_tls(export: &SignalExport) -> Option<ClientTlsConfig> {
    let https = export
        .endpoint
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    https.then(|| ClientTlsConfig::new().with_native_roots())
}

/// The HTTP exporters' reqwest is built without a crypto provider (its own
/// would be aws-lc); every other TLS client here already uses ring.
fn install_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn http_protocol(protocol: Protocol) -> opentelemetry_otlp::Protocol {
    match protocol {
        Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
        _ => opentelemetry_otlp::Protocol::HttpBinary,
    }
}

/// The span exporter `export` describes (built, not yet connected).
pub fn span_exporter(export: &SignalExport) -> Result<SpanExporter, ExporterBuildError> {
    let builder = SpanExporter::builder();
    if export.protocol == Protocol::Grpc {
        let builder = builder.with_tonic();
        return match grpc_tls(export) {
            Some(tls) => builder.with_tls_config(tls).build(),
            None => builder.build(),
        };
    }
    install_ring();
    builder
        .with_http()
        .with_protocol(http_protocol(export.protocol))
        .with_endpoint(&export.endpoint)
        .build()
}

/// The metric exporter `export` describes (built, not yet connected).
pub fn metric_exporter(export: &SignalExport) -> Result<MetricExporter, ExporterBuildError> {
    let builder = MetricExporter::builder();
    if export.protocol == Protocol::Grpc {
        let builder = builder.with_tonic();
        return match grpc_tls(export) {
            Some(tls) => builder.with_tls_config(tls).build(),
            None => builder.build(),
        };
    }
    install_ring();
    builder
        .with_http()
        .with_protocol(http_protocol(export.protocol))
        .with_endpoint(&export.endpoint)
        .build()
}

#[cfg(test)]
mod tests;
