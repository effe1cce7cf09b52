//! What an [`OtlpReceiver`](super::receiver::OtlpReceiver) received,
//! flattened out of the OTLP requests into spans and metrics a test can
//! read, whichever transport brought them.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::{
    collector::{metrics::v1::ExportMetricsServiceRequest, trace::v1::ExportTraceServiceRequest},
    common::v1::{AnyValue, KeyValue, any_value},
    metrics::v1::{metric, number_data_point},
    resource::v1::Resource,
    trace::v1::span::SpanKind,
};

/// The spans of `requests`, flattened, in order.
pub fn spans_of(requests: &[ExportTraceServiceRequest]) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for request in requests {
        for resource_spans in &request.resource_spans {
            let resource = resource_attributes(resource_spans.resource.as_ref());
            for scope_spans in &resource_spans.scope_spans {
                for span in &scope_spans.spans {
                    spans.push(ReceivedSpan {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name.clone(),
                        kind: span_kind(span.kind),
                        attributes: attributes(&span.attributes),
                        resource: resource.clone(),
                        links: span
                            .links
                            .iter()
                            .map(|link| ReceivedLink {
                                trace_id: hex(&link.trace_id),
                                span_id: hex(&link.span_id),
                                attributes: attributes(&link.attributes),
                            })
                            .collect(),
                        events: span
                            .events
                            .iter()
                            .map(|event| ReceivedSpanEvent {
                                name: event.name.clone(),
                                attributes: attributes(&event.attributes),
                            })
                            .collect(),
                        status_message: span
                            .status
                            .as_ref()
                            .map(|status| status.message.clone())
                            .unwrap_or_default(),
                    });
                }
            }
        }
    }
    spans
}

/// The metrics of `requests`, one entry per metric per request, in order.
pub fn metrics_of(requests: &[ExportMetricsServiceRequest]) -> Vec<ReceivedMetric> {
    let mut metrics = Vec::new();
    for (export, request) in requests.iter().enumerate() {
        for resource_metrics in &request.resource_metrics {
            let resource = resource_attributes(resource_metrics.resource.as_ref());
            for scope_metrics in &resource_metrics.scope_metrics {
                for metric in &scope_metrics.metrics {
                    let (kind, points) = match &metric.data {
                        Some(metric::Data::Gauge(gauge)) => {
                            (MetricKind::Gauge, number_points(&gauge.data_points))
                        }
                        Some(metric::Data::Sum(sum)) => (
                            MetricKind::Sum {
                                monotonic: sum.is_monotonic,
                            },
                            number_points(&sum.data_points),
                        ),
                        Some(metric::Data::Histogram(histogram)) => (
                            MetricKind::Histogram,
                            histogram
                                .data_points
                                .iter()
                                .map(|point| ReceivedPoint {
                                    attributes: attributes(&point.attributes),
                                    value: point.sum,
                                    count: Some(point.count),
                                })
                                .collect(),
                        ),
                        Some(metric::Data::ExponentialHistogram(histogram)) => (
                            MetricKind::Histogram,
                            histogram
                                .data_points
                                .iter()
                                .map(|point| ReceivedPoint {
                                    attributes: attributes(&point.attributes),
                                    value: point.sum,
                                    count: Some(point.count),
                                })
                                .collect(),
                        ),
                        Some(metric::Data::Summary(summary)) => (
                            MetricKind::Summary,
                            summary
                                .data_points
                                .iter()
                                .map(|point| ReceivedPoint {
                                    attributes: attributes(&point.attributes),
                                    value: Some(point.sum),
                                    count: Some(point.count),
                                })
                                .collect(),
                        ),
                        None => (MetricKind::Empty, Vec::new()),
                    };
                    metrics.push(ReceivedMetric {
                        export,
                        name: metric.name.clone(),
                        unit: metric.unit.clone(),
                        kind,
                        resource: resource.clone(),
                        points,
                    });
                }
            }
        }
    }
    metrics
}

/// One span as received, flattened out of its resource and scope.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// 16 lowercase hex digits, or empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// `server`, `client`, `internal`, `producer`, `consumer` or `unspecified`.
    pub kind: &'static str,
    /// Attribute values as strings (numbers and booleans formatted).
    pub attributes: BTreeMap<String, String>,
    /// The exporting process's resource: `service.name`, `service.instance.id`...
    pub resource: BTreeMap<String, String>,
    pub links: Vec<ReceivedLink>,
    pub events: Vec<ReceivedSpanEvent>,
    pub status_message: String,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// The resource's `service.instance.id`.
    pub fn instance(&self) -> Option<&str> {
        self.resource.get("service.instance.id").map(String::as_str)
    }

    /// Every piece of text this span carries: name, attribute values, event
    /// names and attributes, link attributes, status message, resource.
    pub fn texts(&self) -> Vec<&str> {
        let mut texts = vec![self.name.as_str(), self.status_message.as_str()];
        texts.extend(self.attributes.iter().flat_map(|(k, v)| [k.as_str(), v]));
        texts.extend(self.resource.iter().flat_map(|(k, v)| [k.as_str(), v]));
        for event in &self.events {
            texts.push(&event.name);
            texts.extend(event.attributes.iter().flat_map(|(k, v)| [k.as_str(), v]));
        }
        for link in &self.links {
            texts.extend(link.attributes.iter().flat_map(|(k, v)| [k.as_str(), v]));
        }
        texts
    }
}

impl std::fmt::Display for ReceivedSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} ({}) on {:?}: trace {} span {} parent {:?} attributes {:?}",
            self.name,
            self.kind,
            self.instance().unwrap_or("?"),
            self.trace_id,
            self.span_id,
            self.parent_span_id,
            self.attributes
        )?;
        if !self.links.is_empty() {
            let links: Vec<String> = self
                .links
                .iter()
                .map(|l| format!("{}/{}", l.trace_id, l.span_id))
                .collect();
            write!(f, " links {links:?}")?;
        }
        Ok(())
    }
}

/// Every span of `spans`, one per line, for failure messages.
pub fn describe_spans(spans: &[ReceivedSpan]) -> String {
    if spans.is_empty() {
        return "no spans received".to_owned();
    }
    let lines: Vec<String> = spans.iter().map(|span| format!("  {span}")).collect();
    format!("{} spans received:\n{}", spans.len(), lines.join("\n"))
}

/// A span link: the context of another span.
#[derive(Debug, Clone)]
pub struct ReceivedLink {
    pub trace_id: String,
    pub span_id: String,
    pub attributes: BTreeMap<String, String>,
}

/// An event recorded on a span (a `tracing` event inside it, for instance).
#[derive(Debug, Clone)]
pub struct ReceivedSpanEvent {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Sum { monotonic: bool },
    Histogram,
    Summary,
    Empty,
}

/// One metric of one export.
#[derive(Debug, Clone)]
pub struct ReceivedMetric {
    /// Which export request (0, 1, ...) it came in.
    pub export: usize,
    pub name: String,
    pub unit: String,
    pub kind: MetricKind,
    pub resource: BTreeMap<String, String>,
    pub points: Vec<ReceivedPoint>,
}

/// One data point: the value of a sum or gauge; the sum and count of a
/// histogram or summary.
#[derive(Debug, Clone)]
pub struct ReceivedPoint {
    pub attributes: BTreeMap<String, String>,
    pub value: Option<f64>,
    pub count: Option<u64>,
}

impl ReceivedMetric {
    /// The value of a sum or gauge added up over every data point.
    pub fn value(&self) -> Option<f64> {
        self.value_with(&[])
    }

    /// The value of a sum or gauge added up over the data points whose
    /// attributes include every `(key, value)` of `with`; `None` when no
    /// data point matches or the metric is not a sum or gauge.
    pub fn value_with(&self, with: &[(&str, &str)]) -> Option<f64> {
        if !matches!(self.kind, MetricKind::Gauge | MetricKind::Sum { .. }) {
            return None;
        }
        let matching: Vec<f64> = self
            .points
            .iter()
            .filter(|point| {
                with.iter()
                    .all(|(k, v)| point.attributes.get(*k).map(String::as_str) == Some(*v))
            })
            .filter_map(|point| point.value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    /// The name this metric gets in Prometheus through
    /// opentelemetry-prometheus: invalid characters (the dots) become `_`,
    /// a known unit adds its suffix (`s` → `_seconds`), and a monotonic sum
    /// (a counter) adds `_total`. Unknown units and `{annotations}` add
    /// nothing, as in the exporter.
    pub fn prometheus_name(&self) -> String {
        let mut name: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if let Some(suffix) = prometheus_unit_suffix(&self.unit) {
            name.push('_');
            name.push_str(suffix);
        }
        if self.kind == (MetricKind::Sum { monotonic: true }) {
            name.push_str("_total");
        }
        name
    }
}

/// opentelemetry-prometheus's unit suffixes for the units a broker uses.
fn prometheus_unit_suffix(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" | "B" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "1" => "ratio",
        "%" => "percent",
        _ => return None,
    })
}

fn number_points(
    points: &[opentelemetry_proto::tonic::metrics::v1::NumberDataPoint],
) -> Vec<ReceivedPoint> {
    points
        .iter()
        .map(|point| ReceivedPoint {
            attributes: attributes(&point.attributes),
            value: point.value.map(|value| match value {
                number_data_point::Value::AsDouble(v) => v,
                number_data_point::Value::AsInt(v) => v as f64,
            }),
            count: None,
        })
        .collect()
}

fn resource_attributes(resource: Option<&Resource>) -> BTreeMap<String, String> {
    resource
        .map(|resource| attributes(&resource.attributes))
        .unwrap_or_default()
}

fn attributes(key_values: &[KeyValue]) -> BTreeMap<String, String> {
    key_values
        .iter()
        .map(|kv| (kv.key.clone(), any_value_text(kv.value.as_ref())))
        .collect()
}

fn any_value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(bytes)) => hex(bytes),
        Some(any_value::Value::ArrayValue(array)) => {
            let items: Vec<String> = array
                .values
                .iter()
                .map(|v| any_value_text(Some(v)))
                .collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let items: Vec<String> = list
                .values
                .iter()
                .map(|kv| format!("{}={}", kv.key, any_value_text(kv.value.as_ref())))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Some(any_value::Value::StringValueStrindex(index)) => format!("strindex:{index}"),
    }
}

fn span_kind(kind: i32) -> &'static str {
    match kind {
        k if k == SpanKind::Internal as i32 => "internal",
        k if k == SpanKind::Server as i32 => "server",
        k if k == SpanKind::Client as i32 => "client",
        k if k == SpanKind::Producer as i32 => "producer",
        k if k == SpanKind::Consumer as i32 => "consumer",
        _ => "unspecified",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
