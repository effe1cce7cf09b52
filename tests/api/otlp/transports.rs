//! The standard OTLP environment, honoured end to end: OTLP/HTTP (protobuf
//! and JSON) beside the default gRPC, per-signal endpoints and protocols,
//! headers sent to the collector and kept out of the log, a bad protocol
//! refused with an error, `https://` trusting the system's roots, and a
//! clean exit on SIGTERM with the HTTP exporters' blocking client.

use std::time::Duration;

use super::{
    TELEMETRY,
    broker::{Broker, BrokerSpec, expect_message},
    commit, new_trace_id,
    received::describe_spans,
    receiver::OtlpReceiver,
    traceparent,
};
use crate::helpers::SHORT;

/// How long a broker may take to exit on SIGTERM (final flushes included).
const EXIT: Duration = Duration::from_secs(15);

/// Long enough for several metric exports (every 500 ms) and span batches
/// (every 100 ms): what has not arrived by then is not being sent.
const QUIET: Duration = Duration::from_millis(2_000);

/// Sends `GET /health` under a new trace and waits for its server span.
async fn assert_request_span_arrives(broker: &Broker, receiver: &OtlpReceiver) {
    let trace_id = new_trace_id();
    broker
        .get("/health", &[("traceparent", &traceparent(&trace_id))])
        .await;
    receiver
        .wait_for(TELEMETRY, "the server span of GET /health", |r| {
            let spans = r.spans();
            match spans
                .iter()
                .any(|s| s.trace_id == trace_id && s.kind == "server")
            {
                true => Ok(()),
                false => Err(describe_spans(&spans)),
            }
        })
        .await;
}

/// Waits until `receiver` has `sse.events.published{event_type=commit}`
/// of at least one: a counter the broker records on publish.
async fn assert_published_metric_arrives(receiver: &OtlpReceiver) {
    let with = [("event_type", "commit")];
    receiver
        .wait_for(
            TELEMETRY,
            "sse.events.published{event_type=commit} >= 1",
            |r| match r.metric_value_with("sse.events.published", &with) {
                Some(n) if n >= 1.0 => Ok(()),
                other => Err(format!("got {other:?}; names {:?}", r.metric_names())),
            },
        )
        .await;
}

/// Every export request's `header` value, one per request received.
fn header_values(receiver: &OtlpReceiver, header: &str) -> Vec<Option<String>> {
    receiver
        .request_headers()
        .into_iter()
        .map(|headers| headers.get(header).cloned())
        .collect()
}

/// `text` without ANSI colour sequences (the text log colours field names).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // `ESC [ params letter`: skip through the final letter.
            chars.by_ref().find(char::is_ascii_alphabetic);
        } else {
            plain.push(c);
        }
    }
    plain
}

/// SIGTERM, a zero exit, and no panic in the log; returns the log.
async fn terminate_cleanly(mut broker: Broker) -> String {
    let status = broker.terminate(EXIT).await;
    let logs = without_colours(&broker.logs());
    assert!(status.success(), "exit {status} on SIGTERM; logs:\n{logs}");
    assert!(!logs.contains("panicked"), "a panic on SIGTERM:\n{logs}");
    logs
}

#[actix_web::test]
async fn metrics_and_spans_arrive_over_otlp_http_protobuf() {
    // Arrange
    let receiver = OtlpReceiver::start_http().await;
    let endpoint = receiver.endpoint();
    let instance = "otlp-http-1";
    let broker = Broker::start(BrokerSpec {
        protocol: Some("http/protobuf"),
        ..BrokerSpec::sqlite(instance, Some(&endpoint))
    })
    .await;
    let mut stream = broker.open_stream(&[]).await;

    // Act
    let id = broker.publish_one(&commit("h1"), &[]).await;
    let event = expect_message(&mut stream, SHORT, "the open stream").await;
    assert_eq!(event.id_number(), Some(id), "delivered {event:?}");

    // Assert
    assert_published_metric_arrives(&receiver).await;
    let resources: Vec<_> = receiver.metrics().into_iter().map(|m| m.resource).collect();
    assert!(
        resources
            .iter()
            .all(|r| r.get("service.instance.id").map(String::as_str) == Some(instance)),
        "metric resources: {resources:?}"
    );
    assert_request_span_arrives(&broker, &receiver).await;
    let content_types = header_values(&receiver, "content-type");
    assert!(
        content_types
            .iter()
            .all(|t| t.as_deref() == Some("application/x-protobuf")),
        "content types: {content_types:?}"
    );
    drop(stream);
    let logs = terminate_cleanly(broker).await;
    for line in [
        format!("protocol=http/protobuf endpoint={endpoint}/v1/traces"),
        format!("protocol=http/protobuf endpoint={endpoint}/v1/metrics"),
    ] {
        assert!(
            logs.contains(&line),
            "no start-up line with {line:?}:\n{logs}"
        );
    }
}

#[actix_web::test]
async fn per_signal_variables_send_traces_over_http_json_and_metrics_over_grpc() {
    // Arrange
    let grpc = OtlpReceiver::start().await;
    let http = OtlpReceiver::start_http().await;
    let grpc_endpoint = grpc.endpoint();
    let broker = Broker::start(BrokerSpec {
        env: vec![
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                http.signal_endpoint("traces"),
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json".to_owned()),
        ],
        ..BrokerSpec::sqlite("otlp-per-signal-1", Some(&grpc_endpoint))
    })
    .await;

    // Act
    broker.publish_one(&commit("p1"), &[]).await;

    // Assert: each signal where its variables send it.
    assert_published_metric_arrives(&grpc).await;
    assert_request_span_arrives(&broker, &http).await;
    let content_types = header_values(&http, "content-type");
    assert!(
        content_types
            .iter()
            .all(|t| t.as_deref() == Some("application/json")),
        "http/json content types: {content_types:?}"
    );
    tokio::time::sleep(QUIET).await;
    let (grpc_traces, _) = grpc.export_counts();
    let (_, http_metrics) = http.export_counts();
    assert_eq!(
        (grpc_traces, http_metrics),
        (0, 0),
        "spans reached the general endpoint or metrics the traces endpoint"
    );
}

#[actix_web::test]
async fn a_traces_endpoint_alone_exports_traces_and_no_metrics() {
    // Arrange
    let receiver = OtlpReceiver::start_http().await;
    let broker = Broker::start(BrokerSpec {
        env: vec![
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                receiver.signal_endpoint("traces"),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "http/protobuf".to_owned(),
            ),
        ],
        ..BrokerSpec::sqlite("otlp-traces-only-1", None)
    })
    .await;

    // Act + Assert
    assert_request_span_arrives(&broker, &receiver).await;
    tokio::time::sleep(QUIET).await;
    let (_, metric_exports) = receiver.export_counts();
    assert_eq!(metric_exports, 0, "metrics exported without an endpoint");
}

#[actix_web::test]
async fn otlp_headers_reach_the_collector_and_never_the_log() {
    // Arrange
    let secret = "secret123";
    let receiver = OtlpReceiver::start_http().await;
    let endpoint = receiver.endpoint();
    let broker = Broker::start(BrokerSpec {
        protocol: Some("http/protobuf"),
        env: vec![("OTEL_EXPORTER_OTLP_HEADERS", format!("x-api-key={secret}"))],
        ..BrokerSpec::sqlite("otlp-headers-1", Some(&endpoint))
    })
    .await;

    // Act
    assert_request_span_arrives(&broker, &receiver).await;
    receiver
        .wait_for(TELEMETRY, "a metric export", |r| match r.export_counts() {
            (_, 0) => Err("no metric export yet".to_owned()),
            _ => Ok(()),
        })
        .await;

    // Assert
    let keys = header_values(&receiver, "x-api-key");
    assert!(
        keys.iter().all(|k| k.as_deref() == Some(secret)),
        "x-api-key of each export request: {keys:?}"
    );
    let logs = terminate_cleanly(broker).await;
    assert!(
        !logs.contains(secret),
        "the header value reached the log:\n{logs}"
    );
}

#[actix_web::test]
async fn an_unknown_protocol_is_an_error_naming_the_variable_and_nothing_is_sent() {
    // Arrange
    let receiver = OtlpReceiver::start_http().await;
    let endpoint = receiver.endpoint();

    // Act
    let broker = Broker::start(BrokerSpec {
        protocol: Some("http/xml"),
        ..BrokerSpec::sqlite("otlp-bad-protocol-1", Some(&endpoint))
    })
    .await;
    broker.get("/health", &[]).await;
    tokio::time::sleep(QUIET).await;

    // Assert
    assert_eq!(receiver.export_counts(), (0, 0), "exports were sent");
    let logs = without_colours(&broker.logs());
    for signal in ["traces", "metrics"] {
        let error = format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL=\"http/xml\" is not an OTLP protocol \
             (accepted: grpc, http/protobuf, http/json); {signal} are not exported"
        );
        assert!(logs.contains(&error), "no {error:?} in:\n{logs}");
    }
}

#[actix_web::test]
async fn an_https_grpc_endpoint_is_trusted_through_the_system_roots() {
    // Arrange: a collector whose certificate is the one system root.
    let certificate = crate::tls::TestCertificate::generate();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (roots, _) = certificate.write_to(dir.path());
    let receiver = OtlpReceiver::start_grpc_tls(&certificate.cert_pem, &certificate.key_pem).await;
    let endpoint = receiver.endpoint();
    let broker = Broker::start(BrokerSpec {
        // rustls-native-certs reads the system roots from here when set.
        env: vec![("SSL_CERT_FILE", roots.display().to_string())],
        ..BrokerSpec::sqlite("otlp-grpc-tls-1", Some(&endpoint))
    })
    .await;

    // Act
    broker.publish_one(&commit("t1"), &[]).await;

    // Assert
    assert!(endpoint.starts_with("https://"), "{endpoint}");
    assert_published_metric_arrives(&receiver).await;
    assert_request_span_arrives(&broker, &receiver).await;
}

#[actix_web::test]
async fn a_collector_that_never_answers_holds_the_exit_for_the_flush_budget_only() {
    // Arrange: a collector address that takes connections (the kernel
    // completes the handshake) and never reads or answers them.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let endpoint = format!("http://{}", black_hole.local_addr().expect("an address"));
    let mut broker = Broker::start(BrokerSpec::sqlite("otlp-black-hole-1", Some(&endpoint))).await;
    broker.publish_one(&commit("t1"), &[]).await;
    broker.get("/health", &[]).await;

    // Act
    let started = std::time::Instant::now();
    let status = broker.terminate(EXIT).await;
    let took = started.elapsed();

    // Assert: the 3 s budget and the drain, not the exporters' own
    // timeouts one after the other (~11 s before).
    let logs = without_colours(&broker.logs());
    assert!(status.success(), "exit {status}; logs:\n{logs}");
    assert!(
        took < Duration::from_secs(6),
        "exited after {took:?}; logs:\n{logs}"
    );
    assert!(
        logs.contains("the OTLP collector did not take the last spans and metrics in time"),
        "the lost flush is not logged:\n{logs}"
    );
    drop(black_hole);
}
