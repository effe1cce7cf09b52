//! The resolution of the OTLP environment: precedence, `none`, bad values, hints.

use super::*;

fn resolve(vars: &[(&str, &str)]) -> OtlpEnv {
    OtlpEnv::resolve(|name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    })
}

fn export(protocol: Protocol, endpoint: &str) -> Option<SignalExport> {
    Some(SignalExport {
        protocol,
        endpoint: endpoint.to_owned(),
    })
}

#[test]
fn nothing_is_exported_without_an_endpoint() {
    let env = resolve(&[(PROTOCOL, "http/protobuf")]);
    assert_eq!(env.traces, SignalPlan::default());
    assert_eq!(env.metrics, SignalPlan::default());
}

#[test]
fn the_general_endpoint_alone_means_grpc_to_it_for_both_signals() {
    let env = resolve(&[(ENDPOINT, "http://collector:4317")]);
    for plan in [&env.traces, &env.metrics] {
        assert_eq!(plan.export, export(Protocol::Grpc, "http://collector:4317"));
        assert!(plan.findings.is_empty(), "{:?}", plan.findings);
    }
}

#[test]
fn http_appends_the_signal_path_to_the_general_endpoint_only() {
    let env = resolve(&[
        (ENDPOINT, "https://collector:4318/"),
        (PROTOCOL, "http/protobuf"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "https://m.example/ingest",
        ),
    ]);
    let traces = "https://collector:4318/v1/traces";
    assert_eq!(env.traces.export, export(Protocol::HttpProtobuf, traces));
    let metrics = "https://m.example/ingest";
    assert_eq!(env.metrics.export, export(Protocol::HttpProtobuf, metrics));
}

#[test]
fn a_per_signal_endpoint_exports_that_signal_alone() {
    let env = resolve(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317")]);
    assert_eq!(env.traces.export, export(Protocol::Grpc, "http://t:4317"));
    assert_eq!(env.metrics.export, None);
}

#[test]
fn the_per_signal_protocol_wins_over_the_general_one() {
    let env = resolve(&[
        (ENDPOINT, "http://c:4318"),
        (PROTOCOL, "http/json"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "GRPC"),
    ]);
    assert_eq!(
        env.traces.export,
        export(Protocol::HttpJson, "http://c:4318/v1/traces")
    );
    assert_eq!(env.metrics.export, export(Protocol::Grpc, "http://c:4318"));
    assert!(
        env.metrics.findings.is_empty(),
        "an explicit grpc is not hinted"
    );
}

#[test]
fn none_sdk_disabled_and_prometheus_turn_a_signal_off_quietly() {
    let endpoint = (ENDPOINT, "http://c:4317");
    let env = resolve(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]);
    assert_eq!(env.traces, SignalPlan::default());
    assert!(env.metrics.export.is_some());
    let env = resolve(&[endpoint, ("OTEL_METRICS_EXPORTER", "prometheus")]);
    assert_eq!(env.metrics, SignalPlan::default());
    assert!(env.traces.export.is_some());
    let env = resolve(&[endpoint, (SDK_DISABLED, "TRUE")]);
    assert_eq!((env.traces, env.metrics), Default::default());
    let env = resolve(&[
        endpoint,
        ("OTEL_TRACES_EXPORTER", "otlp"),
        (SDK_DISABLED, "false"),
    ]);
    assert!(env.traces.export.is_some());
}

#[test]
fn an_unsupported_exporter_turns_the_signal_off_with_an_error() {
    let env = resolve(&[
        (ENDPOINT, "http://c:4317"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
    ]);
    assert_eq!(env.traces.export, None);
    let message = env.traces.findings[0].to_string();
    assert!(
        message.contains("OTEL_TRACES_EXPORTER=\"zipkin\""),
        "{message}"
    );
}

#[test]
fn an_unknown_protocol_turns_the_signal_off_naming_the_variable_and_the_choices() {
    let env = resolve(&[
        (ENDPOINT, "http://c:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http"),
    ]);
    assert_eq!(env.traces.export, None);
    let message = env.traces.findings[0].to_string();
    for part in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=\"http\"",
        "grpc, http/protobuf, http/json",
        "traces are not exported",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    assert!(
        env.metrics.export.is_some(),
        "the other signal is unaffected"
    );
}

#[test]
fn the_default_protocol_to_port_4318_is_exported_with_a_hint() {
    let env = resolve(&[(ENDPOINT, "http://user:pw@collector:4318?x=1")]);
    let plan = &env.traces;
    assert_eq!(
        plan.export.as_ref().map(|e| e.protocol),
        Some(Protocol::Grpc)
    );
    let findings = vec![Finding::GrpcToHttpPort {
        signal: Signal::Traces,
    }];
    assert_eq!(plan.findings, findings);
    assert!(
        findings[0]
            .to_string()
            .contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")
    );
    let quiet = resolve(&[(ENDPOINT, "http://collector:4317"), ("X", "4318")]);
    assert!(quiet.traces.findings.is_empty());
}

#[test]
fn a_schemeless_grpc_endpoint_is_tls_unless_insecure() {
    let env = resolve(&[(ENDPOINT, "collector:4317")]);
    assert_eq!(
        env.traces.export,
        export(Protocol::Grpc, "https://collector:4317")
    );
    let env = resolve(&[(ENDPOINT, "collector:4317"), (INSECURE, "true")]);
    assert_eq!(
        env.traces.export,
        export(Protocol::Grpc, "http://collector:4317")
    );
}

#[test]
fn ports_are_read_from_the_authority() {
    assert_eq!(port("http://a:4318/v1/traces"), Some(4318));
    assert_eq!(port("https://u:p@[::1]:4318"), Some(4318));
    assert_eq!(port("https://[::1]/x:4318"), None);
    assert_eq!(port("collector:4318"), Some(4318));
    assert_eq!(port("https://collector"), None);
}

#[test]
fn masked_endpoints_hide_userinfo_and_query() {
    assert_eq!(
        masked("https://key:secret@otlp.example:443/v1/traces?api_key=secret"),
        "https://***@otlp.example:443/v1/traces?***"
    );
    assert_eq!(masked("http://127.0.0.1:4317"), "http://127.0.0.1:4317");
}

#[test]
fn the_signals_path_goes_on_the_urls_path_before_its_query() {
    let env = resolve(&[
        (ENDPOINT, "http://c:4318/base?tok=1"),
        (PROTOCOL, "http/protobuf"),
    ]);
    assert_eq!(
        env.traces.export,
        export(Protocol::HttpProtobuf, "http://c:4318/base/v1/traces?tok=1")
    );
    assert_eq!(
        env.metrics.export,
        export(
            Protocol::HttpProtobuf,
            "http://c:4318/base/v1/metrics?tok=1"
        )
    );
}

#[test]
fn asking_for_compression_is_said_and_the_export_goes_on_uncompressed() {
    let env = resolve(&[
        (ENDPOINT, "http://c:4318"),
        (PROTOCOL, "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none"),
    ]);
    assert!(env.traces.export.is_some());
    assert_eq!(
        env.traces.findings,
        [Finding::Uncompressed {
            signal: Signal::Traces,
            variable: "OTEL_EXPORTER_OTLP_COMPRESSION".into(),
            value: "gzip".into(),
        }]
    );
    assert!(
        env.metrics.findings.is_empty(),
        "{:?}",
        env.metrics.findings
    );
}
