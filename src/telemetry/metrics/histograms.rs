//! The histograms, declared once: the OpenTelemetry instruments are built
//! from these, and `/metrics` shows the ones nothing was recorded into yet
//! as empty histograms. The OpenTelemetry SDK exports a histogram only after
//! its first measurement, so without this a dashboard's `histogram_quantile`
//! or an alert on a task histogram finds no series on a fresh instance.

use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};

/// Seconds, from 0.5 ms to 30 s: publish→deliver and commit durations.
pub(super) const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    30.0,
];
const BATCH_SIZE_BUCKETS: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 350.0, 512.0];
/// Frames in one write of a stream body (a write is at most 16 KiB).
pub(super) const FRAMES_PER_WRITE_BUCKETS: [f64; 10] =
    [1.0, 2.0, 3.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Frames waiting in one stream's queue (the default capacity is 1024).
const QUEUE_DEPTH_BUCKETS: [f64; 10] = [
    0.0, 1.0, 4.0, 16.0, 64.0, 128.0, 256.0, 512.0, 768.0, 1024.0,
];

pub(super) struct HistogramSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// UCUM: `s` becomes the `_seconds` suffix in Prometheus; annotations
    /// in braces add nothing.
    pub unit: &'static str,
    pub buckets: &'static [f64],
}

impl HistogramSpec {
    /// The family name the Prometheus exporter gives it.
    fn prometheus_name(&self) -> String {
        let base = self.name.replace('.', "_");
        match self.unit {
            "s" => format!("{base}_seconds"),
            _ => base,
        }
    }
}

pub(super) const PUBLISH_LATENCY: HistogramSpec = HistogramSpec {
    name: "sse.publish.latency",
    description: "Publish request to hand-off to the streams' queues",
    unit: "s",
    buckets: &LATENCY_BUCKETS,
};
pub(super) const STORE_BATCH_SIZE: HistogramSpec = HistogramSpec {
    name: "sse.store.batch.size",
    description: "Events per group commit",
    unit: "{event}",
    buckets: &BATCH_SIZE_BUCKETS,
};
pub(super) const STORE_COMMIT_DURATION: HistogramSpec = HistogramSpec {
    name: "sse.store.commit.duration",
    description: "Duration of one group commit",
    unit: "s",
    buckets: &LATENCY_BUCKETS,
};
pub(super) const STORE_CHECKPOINT_DURATION: HistogramSpec = HistogramSpec {
    name: "sse.store.checkpoint.duration",
    description: "Duration of one SQLite WAL checkpoint, by mode (passive: beside the writers; \
                  writer: after a commit, the few frames left, so the WAL starts over)",
    unit: "s",
    buckets: &LATENCY_BUCKETS,
};
pub(super) const STORE_TASK_INDEX_DURATION: HistogramSpec = HistogramSpec {
    name: "sse.store.task_index.duration",
    description: "Duration of one SQLite task index pass: the task events committed since the \
                  last pass, indexed as one sorted batch inside a commit",
    unit: "s",
    buckets: &LATENCY_BUCKETS,
};
pub(super) const CLEANUP_DURATION: HistogramSpec = HistogramSpec {
    name: "sse.cleanup.duration",
    description: "Duration of one cleanup run",
    unit: "s",
    buckets: &LATENCY_BUCKETS,
};
pub(super) const TIME_TO_FIRST_TOKEN: HistogramSpec = HistogramSpec {
    name: "sse.task.time_to_first_token",
    description: "Task creation to its first text or reasoning, by task type",
    unit: "s",
    buckets: &LATENCY_BUCKETS,
};
pub(super) const TOKEN_GAP: HistogramSpec = HistogramSpec {
    name: "sse.task.token_gap",
    description: "Time between consecutive text (or reasoning) writes of a task, by task type",
    unit: "s",
    buckets: &LATENCY_BUCKETS,
};
pub(super) const TEXT_EVENT_DELTAS: HistogramSpec = HistogramSpec {
    name: "sse.task.text.deltas_per_event",
    description: "Deltas coalesced into one stored text (or reasoning) event",
    unit: "{delta}",
    buckets: &BATCH_SIZE_BUCKETS,
};
pub(super) const QUEUE_DEPTH: HistogramSpec = HistogramSpec {
    name: "sse.stream.queue_depth",
    description: "Frames waiting in each stream's queue, sampled every few seconds",
    unit: "{frame}",
    buckets: &QUEUE_DEPTH_BUCKETS,
};

const ALL: [&HistogramSpec; 10] = [
    &PUBLISH_LATENCY,
    &STORE_BATCH_SIZE,
    &STORE_COMMIT_DURATION,
    &STORE_CHECKPOINT_DURATION,
    &STORE_TASK_INDEX_DURATION,
    &CLEANUP_DURATION,
    &TIME_TO_FIRST_TOKEN,
    &TOKEN_GAP,
    &TEXT_EVENT_DELTAS,
    &QUEUE_DEPTH,
];

/// Adds an empty family (every bucket, the sum and the count at 0, no
/// labels) for each declared histogram `families` lacks.
pub(super) fn add_empty_histograms(families: &mut Vec<MetricFamily>) {
    let gathered = families.len();
    for spec in ALL {
        let name = spec.prometheus_name();
        if families.iter().any(|family| family.name() == name) {
            continue;
        }
        let mut histogram = Histogram::default();
        histogram.set_bucket(
            spec.buckets
                .iter()
                .map(|&bound| {
                    let mut bucket = Bucket::default();
                    bucket.set_upper_bound(bound);
                    bucket
                })
                .collect(),
        );
        let mut metric = Metric::default();
        metric.set_histogram(histogram);
        let mut family = MetricFamily::default();
        family.set_name(name);
        family.set_help(spec.description.to_owned());
        family.set_field_type(MetricType::HISTOGRAM);
        family.set_metric(vec![metric]);
        families.push(family);
    }
    // The encoder writes families in the order given: keep the registry's
    // name order once a histogram was added (after the first records, never).
    if families.len() > gathered {
        families.sort_by(|a, b| a.name().cmp(b.name()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prometheus_names_are_the_exporters() {
        assert_eq!(
            TIME_TO_FIRST_TOKEN.prometheus_name(),
            "sse_task_time_to_first_token_seconds"
        );
        assert_eq!(STORE_BATCH_SIZE.prometheus_name(), "sse_store_batch_size");
    }

    #[test]
    fn a_missing_histogram_is_shown_empty_and_a_present_one_is_left_alone() {
        let mut present = MetricFamily::default();
        present.set_name("sse_store_batch_size".into());
        let mut families = vec![present];

        add_empty_histograms(&mut families);

        assert_eq!(families.len(), ALL.len());
        let batch = families
            .iter()
            .find(|f| f.name() == "sse_store_batch_size")
            .unwrap();
        assert!(batch.get_metric().is_empty(), "left as it was");
        let gap = families
            .iter()
            .find(|f| f.name() == "sse_task_token_gap_seconds")
            .unwrap();
        let histogram = gap.get_metric()[0].get_histogram();
        assert_eq!(histogram.get_sample_count(), 0);
        assert_eq!(histogram.get_bucket().len(), LATENCY_BUCKETS.len());
    }
}
