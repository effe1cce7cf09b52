//! The counters recorded for every routed event and every text write:
//! counted here and read by observable counters at collection time.
//!
//! An OpenTelemetry counter with an attribute hashes its attribute set
//! and finds the series under a lock on every `add`: ~1,900 instructions
//! for a routed event's three counters, ~600 for a text write's (callgrind,
//! `sse-bench tokens`). Here a routed event costs one lookup of its type
//! under an uncontended lock, and a text write an atomic add.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use opentelemetry::{
    KeyValue, StringValue,
    metrics::{AsyncInstrument, Meter},
};

use crate::domain::{EventType, EventTypeCatalog, TextKind};

/// What happened to the events of one type: routed, frames queued to
/// streams, streams closed for a full queue.
#[derive(Debug, Default, Clone, Copy)]
struct Routed {
    published: u64,
    delivered: u64,
    dropped: u64,
}

/// Which of [`Routed`]'s counts a counter reports.
type RoutedField = fn(&Routed) -> u64;

const DELTA_OUTCOMES: [&str; 2] = ["accepted", "retry"];
const TEXT_KINDS: [TextKind; 2] = [TextKind::Answer, TextKind::Reasoning];

#[derive(Debug)]
pub(super) struct HotCounts {
    /// By event type; the built-in types from start-up, so that their
    /// series exist at 0 before the first event.
    routed: Mutex<HashMap<Arc<str>, Routed>>,
    /// By outcome, then kind (the orders of `DELTA_OUTCOMES`, `TEXT_KINDS`).
    deltas: [[AtomicU64; 2]; 2],
}

impl Default for HotCounts {
    fn default() -> Self {
        let routed = EventTypeCatalog::built_in()
            .map(|name| (Arc::from(name), Routed::default()))
            .collect();
        Self {
            routed: Mutex::new(routed),
            deltas: Default::default(),
        }
    }
}

impl HotCounts {
    pub(super) fn add_routed(&self, event_type: &EventType, delivered: u64, dropped: u64) {
        let mut routed = self.routed.lock().unwrap_or_else(PoisonError::into_inner);
        // Looked up by its name: the shared name is taken (an atomic
        // increment) only the first time a type is seen.
        let counts = match routed.get_mut(event_type.as_str()) {
            Some(counts) => counts,
            None => routed.entry(event_type.shared()).or_default(),
        };
        counts.published += 1;
        counts.delivered += delivered;
        counts.dropped += dropped;
    }

    pub(super) fn add_deltas(&self, kind: TextKind, accepted: usize, retried: usize) {
        let kind = usize::from(kind == TextKind::Reasoning);
        for (outcome, count) in [accepted, retried].into_iter().enumerate() {
            if count > 0 {
                self.deltas[outcome][kind].fetch_add(count as u64, Ordering::Relaxed);
            }
        }
    }

    /// The observable counters that report these counts.
    pub(super) fn register(self: &Arc<Self>, meter: &Meter) {
        let routed: [(&str, &str, RoutedField); 3] = [
            (
                "sse.events.published",
                "Events accepted and routed, by type",
                |counts| counts.published,
            ),
            (
                "sse.events.delivered",
                "Frames queued to streams, by event type",
                |counts| counts.delivered,
            ),
            (
                "sse.events.dropped",
                "Frames not delivered because a stream's queue was full",
                |counts| counts.dropped,
            ),
        ];
        for (name, description, field) in routed {
            let source = self.clone();
            meter
                .u64_observable_counter(name)
                .with_description(description)
                .with_callback(move |observer| source.observe_routed(observer, field))
                .build();
        }
        let source = self.clone();
        meter
            .u64_observable_counter("sse.task.deltas")
            .with_description(
                "Text deltas written to tasks, by outcome (accepted, or retry: a seq at or below \
                 the task's last, ignored) and kind (text: the answer; reasoning: the model's \
                 thinking)",
            )
            .with_callback(move |observer| {
                for (outcome, by_kind) in DELTA_OUTCOMES.iter().zip(&source.deltas) {
                    for (kind, count) in TEXT_KINDS.iter().zip(by_kind) {
                        let labels = [
                            KeyValue::new("outcome", *outcome),
                            KeyValue::new("kind", kind.event_type()),
                        ];
                        observer.observe(count.load(Ordering::Relaxed), &labels);
                    }
                }
            })
            .build();
    }

    fn observe_routed(&self, observer: &dyn AsyncInstrument<u64>, field: RoutedField) {
        // Copied out first: the lock is the Registry's on every event.
        let counts: Vec<(Arc<str>, Routed)> = self
            .routed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(event_type, counts)| (event_type.clone(), *counts))
            .collect();
        for (event_type, counts) in counts {
            let label = KeyValue::new("event_type", StringValue::from(event_type));
            observer.observe(field(&counts), &[label]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routed_counts_add_up_per_type_and_start_with_the_built_in_types() {
        let counts = HotCounts::default();
        let text = EventType::parse("text").unwrap();
        let custom = EventType::parse("order_shipped").unwrap();
        counts.add_routed(&text, 3, 0);
        counts.add_routed(&text, 2, 1);
        counts.add_routed(&custom, 0, 0);
        let routed = counts.routed.lock().unwrap();
        let text = routed["text"];
        assert_eq!((text.published, text.delivered, text.dropped), (2, 5, 1));
        assert_eq!(routed["order_shipped"].published, 1);
        assert_eq!(routed["progress"].published, 0);
    }

    #[test]
    fn deltas_count_by_outcome_and_kind() {
        let counts = HotCounts::default();
        counts.add_deltas(TextKind::Answer, 4, 1);
        counts.add_deltas(TextKind::Reasoning, 2, 0);
        let read =
            |outcome: usize, kind: usize| counts.deltas[outcome][kind].load(Ordering::Relaxed);
        assert_eq!(
            [read(0, 0), read(0, 1), read(1, 0), read(1, 1)],
            [4, 2, 1, 0]
        );
    }
}
