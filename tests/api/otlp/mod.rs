//! OTLP export, checked at the other end of the wire: the real broker
//! binary pushes to an in-test OTLP receiver (gRPC here; HTTP and the
//! per-signal variables in `transports`), and the tests read what arrived.
//! Held to the observability spec: metrics pushed with the resource
//! `service.instance.id`; one server span per request named by its route
//! template, with the `access_token` never exported; a `publish` span
//! whose trace context travels with the event to a `deliver` span on every
//! instance, and `replay` spans linked to the replayed events' traces.
//!
//! Each test starts its own receiver and its own broker processes (the
//! telemetry pipeline is per process). The cross-instance test needs
//! PostgreSQL and Redis, like the tests in `cluster` (see `services`).

mod broker;
mod http_receiver;
mod received;
mod receiver;
mod transports;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde_json::{Value, json};

use crate::cluster::harness::{
    TestDb, cluster_name as unique_cluster_name, shared_redis_url as redis_url,
};
use crate::helpers::SHORT;
use broker::{Broker, BrokerSpec, Store, expect_message};
use received::{ReceivedMetric, ReceivedSpan, describe_spans};
use receiver::OtlpReceiver;

/// How long telemetry may take to arrive (metrics every 500 ms, spans every
/// 100 ms; the queue-depth and health samples run every 5 s).
const TELEMETRY: Duration = Duration::from_secs(15);

/// The span id of the caller's span in the `traceparent` the tests send.
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// A new random W3C trace id: 32 lowercase hex digits.
fn new_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{CALLER_SPAN_ID}-01")
}

fn commit(sha: &str) -> Value {
    json!({"event_type": "commit", "data": {"sha": sha}})
}

fn redis_is_up(status: u16, body: &Value) -> bool {
    status == 200 && body["checks"]["redis"]["status"] == "up"
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// The metrics a single SQLite broker with one open stream that delivered a
/// few events must have pushed within `TELEMETRY`, by their Prometheus names
/// (the spec's names; the OTLP names are those before the exporter's
/// renaming). Counters and histograms appear once recorded, gauges always.
///
/// `sse_delivery_lag_seconds` is not among them by design: it is recorded
/// for every frame written, so it is a lock-free Prometheus histogram served
/// on `/metrics` (the collector scrapes it, see `otel/collector.yaml`), not
/// an OpenTelemetry instrument, whose histogram takes a mutex per record.
/// `operator_assets` checks it on `/metrics`.
const EXPECTED_METRICS: [&str; 15] = [
    "sse_active_connections",
    "sse_connections_opened_total",
    "sse_events_published_total",
    "sse_events_delivered_total",
    "sse_publish_latency_seconds",
    "sse_store_batch_size",
    "sse_store_commit_duration_seconds",
    "sse_stream_queue_depth",
    "sse_stale_connections",
    "sse_long_lived_connections",
    "sse_very_old_connections",
    "sse_cleanup_error_rate",
    "sse_cleanup_running",
    "sse_cleanup_last_run_timestamp_seconds",
    "sse_health_status",
];

/// Cluster-only metrics: absent from a broker without Redis.
const CLUSTER_ONLY_METRICS: [&str; 2] = ["sse_connections_redis", "sse_redis_bridge_up"];

/// The most recent export of every metric, by Prometheus name.
fn latest_by_prometheus_name(receiver: &OtlpReceiver) -> BTreeMap<String, ReceivedMetric> {
    receiver
        .metrics()
        .into_iter()
        .map(|metric| (metric.prometheus_name(), metric))
        .collect()
}

/// One line per metric: OTLP name, Prometheus name, kind, unit, points.
fn describe_metrics(latest: &BTreeMap<String, ReceivedMetric>) -> String {
    if latest.is_empty() {
        return "no metrics received".to_owned();
    }
    let lines: Vec<String> = latest
        .iter()
        .map(|(prometheus, metric)| {
            let points: Vec<String> = metric
                .points
                .iter()
                .map(|p| match (p.value, p.count) {
                    (value, Some(count)) => {
                        format!("{:?} count={count} sum={value:?}", p.attributes)
                    }
                    (value, None) => format!("{:?}={value:?}", p.attributes),
                })
                .collect();
            format!(
                "  {} ({prometheus}, {:?}, unit {:?}, export #{}): {}",
                metric.name,
                metric.kind,
                metric.unit,
                metric.export,
                points.join("; ")
            )
        })
        .collect();
    format!("latest metrics received:\n{}", lines.join("\n"))
}

/// What a metric value must satisfy: description, value seen, test.
type Check<'a> = (&'static str, Option<f64>, &'a dyn Fn(f64) -> bool);

/// `Ok` once every expected metric arrived with the values the scenario of
/// `the_broker_pushes_its_metrics_over_otlp` gives them.
fn pushed_metrics_are_complete(
    receiver: &OtlpReceiver,
    instance_id: &str,
    published: usize,
) -> Result<BTreeMap<String, ReceivedMetric>, String> {
    let latest = latest_by_prometheus_name(receiver);
    let value = |name: &str, with: &[(&str, &str)]| latest.get(name)?.value_with(with);
    let published = published as f64;
    let mut unmet: Vec<String> = EXPECTED_METRICS
        .iter()
        .filter(|name| !latest.contains_key(**name))
        .map(|name| format!("{name} missing"))
        .collect();
    let checks: [Check; 6] = [
        (
            "sse_events_published_total{event_type=commit} >= published",
            value("sse_events_published_total", &[("event_type", "commit")]),
            &|v| v >= published,
        ),
        (
            "sse_events_delivered_total{event_type=commit} >= published",
            value("sse_events_delivered_total", &[("event_type", "commit")]),
            &|v| v >= published,
        ),
        (
            "sse_active_connections{instance} == 1",
            value("sse_active_connections", &[("instance", instance_id)]),
            &|v| v == 1.0,
        ),
        (
            "sse_long_lived_connections == 0 (the stream is seconds old)",
            value("sse_long_lived_connections", &[]),
            &|v| v == 0.0,
        ),
        (
            "sse_cleanup_running == 1",
            value("sse_cleanup_running", &[]),
            &|v| v == 1.0,
        ),
        (
            "sse_health_status == 0 (healthy)",
            value("sse_health_status", &[]),
            &|v| v == 0.0,
        ),
    ];
    for (what, actual, accept) in checks {
        if !actual.is_some_and(accept) {
            unmet.push(format!("{what}: got {actual:?}"));
        }
    }
    if unmet.is_empty() {
        Ok(latest)
    } else {
        Err(format!(
            "unmet: {}\n{}",
            unmet.join(", "),
            describe_metrics(&latest)
        ))
    }
}

#[actix_web::test]
async fn the_broker_pushes_its_metrics_over_otlp() {
    // Arrange
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let instance_id = "otlp-metrics-1";
    let broker = Broker::start(BrokerSpec {
        instance_id,
        otlp_endpoint: Some(&endpoint),
        protocol: None,
        env: Vec::new(),
        store: Store::Sqlite,
        redis_url: None,
        cluster_name: None,
    })
    .await;
    let mut stream = broker.open_stream(&[]).await;

    // Act
    let mut ids = Vec::new();
    for sha in ["c1", "c2", "c3"] {
        ids.push(broker.publish_one(&commit(sha), &[]).await);
    }
    for id in &ids {
        let event = expect_message(&mut stream, SHORT, "the open stream").await;
        assert_eq!(event.id_number(), Some(*id), "delivered {event:?}");
    }

    // Assert
    let latest = receiver
        .wait_for(
            TELEMETRY,
            "the broker's metrics with the published events counted",
            |r| pushed_metrics_are_complete(r, instance_id, ids.len()),
        )
        .await;
    let names = receiver.metric_names();
    for name in ["sse.events.published", "sse.active_connections"] {
        assert!(
            names.contains(name),
            "OTLP names keep their dots: {name} is not among {names:?}"
        );
    }
    let published = receiver.metric_value("sse.events.published");
    assert!(
        published.is_some_and(|total| total >= ids.len() as f64),
        "sse.events.published is {published:?} after {} publishes",
        ids.len()
    );
    let active = receiver.metric_value_with("sse.active_connections", &[("instance", instance_id)]);
    assert_eq!(active, Some(1.0), "sse.active_connections of {instance_id}");
    let present_cluster_only: Vec<&str> = CLUSTER_ONLY_METRICS
        .into_iter()
        .filter(|name| latest.contains_key(*name))
        .collect();
    assert!(
        present_cluster_only.is_empty(),
        "a broker without Redis pushed the cluster-only {present_cluster_only:?}\n{}",
        describe_metrics(&latest)
    );
    let resources: BTreeSet<String> = receiver
        .metrics()
        .iter()
        .map(|m| format!("{:?}", m.resource))
        .collect();
    for metric in receiver.metrics() {
        assert_eq!(
            metric
                .resource
                .get("service.instance.id")
                .map(String::as_str),
            Some(instance_id),
            "{} was pushed with the resource {:?}; resources seen: {resources:?}",
            metric.name,
            metric.resource
        );
        assert_eq!(
            metric.resource.get("service.name").map(String::as_str),
            Some("sse-broker"),
            "{} was pushed with the resource {:?}",
            metric.name,
            metric.resource
        );
    }
}

// ---------------------------------------------------------------------------
// Request spans
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn the_broker_exports_request_spans_without_the_token() {
    // Arrange
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let instance_id = "otlp-spans-1";
    let broker = Broker::start(BrokerSpec {
        instance_id,
        otlp_endpoint: Some(&endpoint),
        protocol: None,
        env: Vec::new(),
        store: Store::Sqlite,
        redis_url: None,
        cluster_name: None,
    })
    .await;
    let secret = "SECRETVALUE";
    let trace_id = new_trace_id();

    // Act
    let response = broker
        .get(
            &format!("/sse/history?after=0&access_token={secret}"),
            &[("traceparent", &traceparent(&trace_id))],
        )
        .await;
    let status = response.status().as_u16();
    // A later request's span is exported after every span of the first one
    // (spans are exported in the order they end), so once it arrives,
    // everything the history request produced has arrived too.
    let marker_trace_id = new_trace_id();
    broker
        .get(
            "/health",
            &[("traceparent", &traceparent(&marker_trace_id))],
        )
        .await;

    // Assert
    let spans = receiver
        .wait_for(TELEMETRY, "the server span of GET /health", |r| {
            let spans = r.spans();
            if spans
                .iter()
                .any(|s| s.trace_id == marker_trace_id && s.kind == "server")
            {
                Ok(spans)
            } else {
                Err(describe_spans(&spans))
            }
        })
        .await;
    let span = spans
        .iter()
        .find(|s| s.name == "GET /sse/history" || (s.trace_id == trace_id && s.kind == "server"))
        .unwrap_or_else(|| {
            panic!(
                "no server span for GET /sse/history (answered {status}); {}",
                describe_spans(&spans)
            )
        });
    assert_eq!(
        span.name, "GET /sse/history",
        "the request span is not named by its route: {span}"
    );
    assert_eq!(span.kind, "server", "{span}");
    assert_eq!(
        (span.trace_id.as_str(), span.parent_span_id.as_str()),
        (trace_id.as_str(), CALLER_SPAN_ID),
        "the caller's traceparent is not the parent of {span}"
    );
    assert_eq!(
        span.instance(),
        Some(instance_id),
        "resource of {span}: {:?}",
        span.resource
    );
    let leaks: Vec<String> = spans
        .iter()
        .filter(|s| s.texts().iter().any(|text| text.contains(secret)))
        .map(|s| format!("{s} events {:?}", s.events))
        .collect();
    assert!(
        leaks.is_empty(),
        "the access_token value reached exported spans:\n{}",
        leaks.join("\n")
    );
}

// ---------------------------------------------------------------------------
// One trace across instances
// ---------------------------------------------------------------------------

/// The spans of trace `trace_id` from instance `instance` named `name`.
fn spans_named<'a>(
    spans: &'a [ReceivedSpan],
    trace_id: &str,
    instance: &str,
    name: &str,
) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.trace_id == trace_id && s.instance() == Some(instance) && s.name == name)
        .collect()
}

/// `span` descends from the span `ancestor_id` through spans received.
fn descends_from(spans: &[ReceivedSpan], span: &ReceivedSpan, ancestor_id: &str) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..spans.len() {
        if parent == ancestor_id {
            return true;
        }
        match spans
            .iter()
            .find(|s| s.trace_id == span.trace_id && s.span_id == parent)
        {
            Some(next) => parent = next.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

/// A `deliver` span on `instance` for event `id` is a child of the
/// `publish` span and carries the spec's attributes.
fn assert_deliver_span(
    spans: &[ReceivedSpan],
    trace_id: &str,
    instance: &str,
    publish: &ReceivedSpan,
    id: i64,
) {
    let delivers = spans_named(spans, trace_id, instance, "deliver");
    assert_eq!(
        delivers.len(),
        1,
        "one deliver span for event {id} on {instance} expected; {}",
        describe_spans(spans)
    );
    let deliver = delivers[0];
    assert_eq!(
        deliver.parent_span_id, publish.span_id,
        "the parent of {deliver} is not the publish span {publish}"
    );
    assert_eq!(
        deliver.attribute("sse.event.id"),
        Some(id.to_string().as_str()),
        "{deliver}"
    );
    assert_eq!(
        deliver.attribute("sse.event.type"),
        Some("commit"),
        "{deliver}"
    );
    assert_eq!(
        deliver.attribute("sse.instance.id"),
        Some(instance),
        "{deliver}"
    );
    assert!(
        deliver
            .attribute("sse.deliveries")
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|n| n >= 1),
        "sse.deliveries of {deliver} should count the one open stream"
    );
}

#[actix_web::test]
async fn one_trace_spans_publish_on_one_instance_and_delivery_on_another() {
    // Arrange
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let db = TestDb::create().await;
    let redis_url = redis_url();
    let cluster = unique_cluster_name();
    let spec = |instance_id| BrokerSpec {
        instance_id,
        otlp_endpoint: Some(&endpoint),
        protocol: None,
        env: Vec::new(),
        store: Store::Postgres(db.url()),
        redis_url: Some(&redis_url),
        cluster_name: Some(&cluster),
    };
    let (mut a, mut b) =
        futures_util::future::join(Broker::start(spec("a")), Broker::start(spec("b"))).await;
    a.wait_for_health("healthy with Redis up", redis_is_up)
        .await;
    b.wait_for_health("healthy with Redis up", redis_is_up)
        .await;
    let mut stream_on_a = a.open_stream(&[]).await;
    let mut stream_on_b = b.open_stream(&[]).await;
    let trace_id = new_trace_id();

    // Act
    let id = a
        .publish_one(
            &commit("traced"),
            &[("traceparent", &traceparent(&trace_id))],
        )
        .await;
    for (stream, what) in [
        (&mut stream_on_b, "the stream on b"),
        (&mut stream_on_a, "the stream on a"),
    ] {
        let event = expect_message(stream, SHORT, what).await;
        assert_eq!(event.id_number(), Some(id), "{what} got {event:?}");
    }

    // Assert: request and publish on a, deliver on a and on b, one trace.
    let spans = receiver
        .wait_for(
            TELEMETRY,
            &format!("publish on a and deliver on a and b in trace {trace_id}"),
            |r| {
                let spans = r.spans();
                let found = !spans_named(&spans, &trace_id, "a", "POST /sse/publish").is_empty()
                    && !spans_named(&spans, &trace_id, "a", "publish").is_empty()
                    && !spans_named(&spans, &trace_id, "a", "deliver").is_empty()
                    && !spans_named(&spans, &trace_id, "b", "deliver").is_empty();
                if found {
                    Ok(spans)
                } else {
                    Err(describe_spans(&spans))
                }
            },
        )
        .await;
    let request = spans_named(&spans, &trace_id, "a", "POST /sse/publish")[0];
    assert_eq!(
        (request.kind, request.parent_span_id.as_str()),
        ("server", CALLER_SPAN_ID),
        "the publish request span does not continue the caller's traceparent: {request}"
    );
    let publishes = spans_named(&spans, &trace_id, "a", "publish");
    assert_eq!(publishes.len(), 1, "{}", describe_spans(&spans));
    let publish = publishes[0];
    assert!(
        descends_from(&spans, publish, &request.span_id),
        "the publish span is not under the request span {request}: {}",
        describe_spans(&spans)
    );
    assert_deliver_span(&spans, &trace_id, "a", publish, id);
    assert_deliver_span(&spans, &trace_id, "b", publish, id);

    // Act: a client resumes on b from just before the event.
    let before = (id - 1).to_string();
    let mut resumed = b.open_stream(&[("Last-Event-ID", &before)]).await;
    let replayed = expect_message(&mut resumed, SHORT, "the resumed stream on b").await;
    assert_eq!(replayed.id_number(), Some(id), "replayed {replayed:?}");

    // Assert: a replay span on b links to the publish trace.
    let replay = receiver
        .wait_for(
            TELEMETRY,
            &format!("a replay span on b linked to trace {trace_id}"),
            |r| {
                let spans = r.spans();
                spans
                    .iter()
                    .find(|s| {
                        s.name == "replay"
                            && s.instance() == Some("b")
                            && s.links.iter().any(|l| l.trace_id == trace_id)
                    })
                    .cloned()
                    .ok_or_else(|| describe_spans(&spans))
            },
        )
        .await;
    assert!(
        replay
            .links
            .iter()
            .any(|l| l.trace_id == trace_id && l.span_id == publish.span_id),
        "the replay span {replay} does not link to the publish span {publish}"
    );
    assert_eq!(
        replay.attribute("sse.replay.from_id"),
        Some(before.as_str()),
        "{replay}"
    );
    assert_eq!(replay.attribute("sse.replay.events"), Some("1"), "{replay}");
}
