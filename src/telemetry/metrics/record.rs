//! The counters and histograms, recorded per event, per batch or per run.

use opentelemetry::KeyValue;

use super::Metrics;
use crate::{
    actors::janitor::CleanupError,
    domain::{AnswerEnd, FinishReason, StoredEvent, TextKind, ToolEventKind, now_ms},
    stream::{CloseReason, StreamFormat, replay::Replayed},
};

/// The `finish_reason` of a completed task whose result says none.
pub(super) const UNSAID_FINISH_REASON: &str = "unsaid";

/// What a stream body records for each write: lock-free histograms, as
/// they run once per frame or per write of every stream.
#[derive(Clone)]
pub struct StreamBodyMetrics {
    /// Event publish time to the frame handed to the socket
    /// (`sse_delivery_lag_seconds`).
    pub delivery_lag: prometheus::Histogram,
    /// Frames in one write (`sse_stream_frames_per_write`).
    pub frames_per_write: prometheus::Histogram,
}

impl Metrics {
    pub fn record_rate_limited(&self, limit: &'static str) {
        self.inner
            .rate_limited
            .add(1, &[KeyValue::new("limit", limit)]);
    }

    pub fn record_auth_failure(&self, reason: &'static str) {
        self.inner
            .auth_failures
            .add(1, &[KeyValue::new("reason", reason)]);
    }

    pub fn record_jwks_refresh(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.inner
            .jwks_refreshes
            .add(1, &[KeyValue::new("outcome", outcome)]);
    }

    /// The lock-free per-delivery lag histogram.
    pub fn delivery_lag(&self) -> prometheus::Histogram {
        self.inner.delivery_lag.clone()
    }

    /// The lock-free histograms a stream body records into.
    pub fn stream_body(&self) -> StreamBodyMetrics {
        StreamBodyMetrics {
            delivery_lag: self.inner.delivery_lag.clone(),
            frames_per_write: self.inner.frames_per_write.clone(),
        }
    }

    /// A new stream refused by the instance itself: `reason` is `full`
    /// (at `--max-connections`) or `shutting_down`.
    pub fn record_refused_stream(&self, reason: &'static str) {
        self.inner
            .connections_refused
            .add(1, &[KeyValue::new("reason", reason)]);
    }

    pub fn record_opened(&self, format: StreamFormat) {
        self.inner
            .connections_opened
            .add(1, &[KeyValue::new("format", format.as_str())]);
    }

    pub fn record_registry_reset(&self) {
        self.inner.registry_resets.add(1, &[]);
    }

    pub fn record_closed(&self, reason: CloseReason) {
        self.inner
            .connections_closed
            .add(1, &[KeyValue::new("reason", reason.as_str())]);
    }

    /// One event routed: `delivered` frames queued, `dropped` streams closed slow.
    pub fn record_routed(&self, event: &StoredEvent, delivered: u64, dropped: u64) {
        self.inner
            .hot_counts
            .add_routed(&event.event_type, delivered, dropped);
        let latency_ms = (now_ms() - event.created_at_ms).max(0);
        self.inner
            .publish_to_route_latency
            .record(latency_ms as f64 / 1000.0, &[]);
    }

    pub fn record_commit(&self, events: usize, seconds: f64) {
        self.inner.store_batch_size.record(events as f64, &[]);
        self.inner.store_commit_duration.record(seconds, &[]);
    }

    /// One SQLite WAL checkpoint: `mode` is `passive` or `writer`.
    pub fn record_checkpoint(&self, mode: &'static str, seconds: f64) {
        self.inner
            .store_checkpoint_duration
            .record(seconds, &[KeyValue::new("mode", mode)]);
    }

    /// One pass of SQLite's task index.
    pub fn record_task_index_pass(&self, seconds: f64) {
        self.inner.store_task_index_duration.record(seconds, &[]);
    }

    /// One failed store operation: `kind` is `timeout`, `unconfirmed` or
    /// `error`.
    pub fn record_store_error(&self, operation: &'static str, kind: &'static str) {
        self.inner.store_errors.add(
            1,
            &[
                KeyValue::new("operation", operation),
                KeyValue::new("kind", kind),
            ],
        );
    }

    pub fn record_cleanup(
        &self,
        result: &Result<crate::actors::janitor::CleanupReport, CleanupError>,
        seconds: f64,
    ) {
        self.inner.cleanup_runs.add(1, &[]);
        if !matches!(result, Ok(report) if report.complete) {
            self.inner.cleanup_errors.add(1, &[]);
        }
        if let Ok(report) = result {
            self.inner.cleanup_cleaned.add(report.cleaned, &[]);
            self.inner.total_connections_cleaned.inc_by(report.cleaned);
            self.inner.cleanup_failed.add(report.failed, &[]);
        }
        self.inner.cleanup_duration.record(seconds, &[]);
    }

    pub fn record_time_to_first_token(&self, task_type: &str, seconds: f64) {
        let label = self.inner.task_types.label(task_type);
        self.inner
            .time_to_first_token
            .record(seconds.max(0.0), &[KeyValue::new("task_type", label)]);
    }

    pub fn record_token_gap(&self, task_type: &str, seconds: f64) {
        let label = self.inner.task_types.label(task_type);
        self.inner
            .token_gap
            .record(seconds.max(0.0), &[KeyValue::new("task_type", label)]);
    }

    /// One coalesced text write: `accepted` deltas went into one event,
    /// `retried` were retries.
    pub fn record_deltas(&self, kind: TextKind, accepted: usize, retried: usize) {
        self.inner.hot_counts.add_deltas(kind, accepted, retried);
    }

    /// A tool call or a tool's answer kept on a task.
    pub fn record_tool_event(&self, kind: ToolEventKind) {
        self.inner
            .task_tool_events
            .add(1, &[KeyValue::new("kind", kind.label())]);
    }

    /// A source, a file or a data part (`kind`) kept on a task, or a change
    /// of its message's metadata (`message_metadata`).
    pub fn record_answer_part(&self, kind: &'static str) {
        self.inner
            .task_answer_parts
            .add(1, &[KeyValue::new("kind", kind)]);
    }

    /// A `text` or `reasoning` event stored with `deltas` deltas in it.
    pub fn record_text_event(&self, deltas: usize) {
        self.inner.text_event_deltas.record(deltas as f64, &[]);
    }

    /// One step of a multi-step answer ended; `end`: why it stopped, as
    /// the step's result says it. Its tokens count with the completions' (`sse.task.tokens`): a
    /// step's are said once, by its end or by the task's completion.
    pub fn record_step_end(&self, end: &AnswerEnd) {
        let label = end.reason.map_or(UNSAID_FINISH_REASON, FinishReason::label);
        self.inner
            .task_step_ends
            .add(1, &[KeyValue::new("finish_reason", label)]);
        self.record_tokens(end);
    }

    /// A task completed; `end`: why its answer stopped and the tokens it
    /// took, as its result says them.
    pub fn record_task_finish(&self, end: &AnswerEnd) {
        let label = end.reason.map_or(UNSAID_FINISH_REASON, FinishReason::label);
        self.inner
            .task_finishes
            .add(1, &[KeyValue::new("finish_reason", label)]);
        self.record_tokens(end);
    }

    /// The tokens an answer's end says it took, by direction.
    fn record_tokens(&self, end: &AnswerEnd) {
        let usage = end.usage.unwrap_or_default();
        for (direction, tokens) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
        ] {
            if let Some(tokens) = tokens {
                self.inner
                    .task_tokens
                    .add(tokens, &[KeyValue::new("direction", direction)]);
            }
        }
    }

    /// An upload began (`true`) or ended (`false`, with its outcome).
    pub fn record_upload(&self, format: &'static str, outcome: Option<&'static str>) {
        match outcome {
            None => self.inner.uploads_open.add(1, &[]),
            Some(outcome) => {
                self.inner.uploads_open.add(-1, &[]);
                self.inner.uploads.add(
                    1,
                    &[
                        KeyValue::new("format", format),
                        KeyValue::new("outcome", outcome),
                    ],
                );
            }
        }
    }

    /// Uploads took (positive) or gave back (negative) `bytes` of their
    /// memory budget.
    pub fn record_upload_memory(&self, bytes: i64) {
        self.inner.upload_memory.add(bytes, &[]);
    }

    pub fn record_ticket_issued(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.inner
            .tickets_issued
            .add(1, &[KeyValue::new("outcome", outcome)]);
    }

    pub fn record_tls_reload(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.inner
            .tls_reloads
            .add(1, &[KeyValue::new("outcome", outcome)]);
    }

    /// `reason`: `error` (refused, or not TLS at all) or `timeout`.
    pub fn record_tls_handshake_failure(&self, reason: &'static str) {
        self.inner
            .tls_handshake_failures
            .add(1, &[KeyValue::new("reason", reason)]);
    }

    /// A finished replay: its events by where they were read, the store
    /// or the recently routed frames in memory.
    pub fn record_replayed(&self, replayed: &Replayed) {
        for (source, events) in [
            ("store", replayed.from_store),
            ("memory", replayed.from_memory),
        ] {
            if events > 0 {
                self.inner
                    .replay_events
                    .add(events, &[KeyValue::new("source", source)]);
            }
        }
    }

    /// Free heap memory was handed back to the system.
    pub fn record_heap_trim(&self) {
        self.inner.heap_trims.add(1, &[]);
    }
}
