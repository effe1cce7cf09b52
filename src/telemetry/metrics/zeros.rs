//! Counters at 0 from start-up, for every label value known in advance.
//!
//! OpenTelemetry creates a series on its first measurement. A `rate()`
//! panel over a counter that has never moved shows nothing, and an alert on
//! it cannot fire from a clean start, so each counter is added 0 here for
//! its label values. Values owned by another module (rate limits, auth
//! failure reasons, store operations) are declared by that
//! module when it is built, through the `declare_*` methods.

use opentelemetry::KeyValue;

use super::{Metrics, record::UNSAID_FINISH_REASON};
use crate::{
    domain::{AnswerPart, FinishReason, MESSAGE_METADATA_EVENT_TYPE, ToolEventKind},
    stream::{CloseReason, StreamFormat},
};

impl Metrics {
    pub(super) fn start_at_zero(&self) {
        let inner = &self.inner;
        for format in StreamFormat::ALL {
            inner
                .connections_opened
                .add(0, &[KeyValue::new("format", format.as_str())]);
        }
        for reason in CloseReason::ALL {
            inner
                .connections_closed
                .add(0, &[KeyValue::new("reason", reason.as_str())]);
        }
        for kind in ToolEventKind::ALL {
            let labels = [KeyValue::new("kind", kind.label())];
            inner.task_tool_events.add(0, &labels);
        }
        for reason in ["full", "shutting_down"] {
            inner
                .connections_refused
                .add(0, &[KeyValue::new("reason", reason)]);
        }
        for kind in AnswerPart::KIND_LABELS
            .into_iter()
            .chain([MESSAGE_METADATA_EVENT_TYPE])
        {
            inner
                .task_answer_parts
                .add(0, &[KeyValue::new("kind", kind)]);
        }
        for outcome in ["ok", "error"] {
            let outcome = [KeyValue::new("outcome", outcome)];
            inner.jwks_refreshes.add(0, &outcome);
            inner.tickets_issued.add(0, &outcome);
        }
        for counter in [
            &inner.cleanup_runs,
            &inner.cleanup_errors,
            &inner.cleanup_cleaned,
            &inner.cleanup_failed,
            &inner.registry_resets,
            &inner.redis_reconnects,
            &inner.redis_foreign_messages,
            &inner.redis_instance_id_clashes,
            &inner.heap_trims,
        ] {
            counter.add(0, &[]);
        }
        for source in ["store", "memory"] {
            inner
                .replay_events
                .add(0, &[KeyValue::new("source", source)]);
        }
        inner.uploads_open.add(0, &[]);
        inner.upload_memory.add(0, &[]);
        for direction in ["input", "output"] {
            inner
                .task_tokens
                .add(0, &[KeyValue::new("direction", direction)]);
        }
        let reasons = FinishReason::ALL.map(FinishReason::label);
        for reason in reasons.into_iter().chain([UNSAID_FINISH_REASON]) {
            let labels = [KeyValue::new("finish_reason", reason)];
            inner.task_finishes.add(0, &labels);
            inner.task_step_ends.add(0, &labels);
        }
        // `services::uploads`' formats and outcomes.
        for format in ["ndjson", "event_stream"] {
            for outcome in [
                "completed",
                "failed",
                "left_running",
                "malformed",
                "line_too_long",
                "memory_full",
                "idle",
                "aborted",
                "cancelled",
                "superseded",
                "shutting_down",
                "invalid_line",
                "not_found",
                "refused",
                "unavailable",
            ] {
                inner.uploads.add(
                    0,
                    &[
                        KeyValue::new("format", format),
                        KeyValue::new("outcome", outcome),
                    ],
                );
            }
        }
    }

    /// The TLS counters at 0, on a broker that serves HTTPS.
    pub fn declare_tls(&self) {
        for outcome in ["ok", "error"] {
            self.inner
                .tls_reloads
                .add(0, &[KeyValue::new("outcome", outcome)]);
        }
        for reason in ["error", "timeout"] {
            self.inner
                .tls_handshake_failures
                .add(0, &[KeyValue::new("reason", reason)]);
        }
    }

    /// `sse_rate_limited_total` at 0 for each limit.
    pub fn declare_rate_limits(&self, limits: &[&'static str]) {
        for limit in limits {
            self.inner
                .rate_limited
                .add(0, &[KeyValue::new("limit", *limit)]);
        }
    }

    /// `sse_auth_failures_total` at 0 for each reason.
    pub fn declare_auth_failure_reasons(&self, reasons: &[&'static str]) {
        for reason in reasons {
            self.inner
                .auth_failures
                .add(0, &[KeyValue::new("reason", *reason)]);
        }
    }

    /// `sse_store_errors_total` at 0 for each operation and kind.
    pub fn declare_store_errors(&self, operations: &[&'static str], kinds: &[&'static str]) {
        for operation in operations {
            for kind in kinds {
                self.inner.store_errors.add(
                    0,
                    &[
                        KeyValue::new("operation", *operation),
                        KeyValue::new("kind", *kind),
                    ],
                );
            }
        }
    }
}
