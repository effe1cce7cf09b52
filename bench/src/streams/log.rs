//! What one stream saw over its whole life, across reconnects: which of the
//! run's events arrived, how often, in which order, and how it ended.

use std::{fmt, sync::atomic::Ordering, time::Duration};

use serde::Deserialize;
use sse_broker::domain::SseEvent;
use tokio::time::Instant;

use super::context::StreamContext;
use crate::{
    latency::{LatencyRecorder, unix_micros},
    seq_set::SeqSet,
};

/// When the frames of one read arrived: one clock reading serves them all
/// (they came in together), instead of two per frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct Arrival {
    unix_us: u64,
    instant: Instant,
}

impl Arrival {
    pub(super) fn now() -> Self {
        Self {
            unix_us: unix_micros(),
            instant: Instant::now(),
        }
    }
}

/// The data of an event this bench published.
#[derive(Debug, Deserialize)]
struct Probe {
    run: u64,
    seq: u64,
    sent_us: u64,
}

/// Why a stream's reader stopped.
#[derive(Debug)]
pub enum StreamEnd {
    /// The bench told it to: the normal end.
    Stopped,
    /// The broker ended the response.
    ClosedByBroker,
    /// It never opened, or a read or the framing failed.
    Failed(String),
}

impl fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamEnd::Stopped => f.write_str("stopped by the bench"),
            StreamEnd::ClosedByBroker => f.write_str("closed by the broker"),
            StreamEnd::Failed(error) => f.write_str(error),
        }
    }
}

/// Everything one stream saw, kept to be checked against the acknowledged
/// publishes once the run is over. It outlives the stream's connections:
/// a stream that resumes keeps adding to the same log.
pub struct StreamLog {
    pub seen: SeqSet,
    /// Distinct seqs in `seen`, kept as a count to spare a scan per frame.
    unique: u64,
    /// Frames carrying this run's events, duplicates included.
    pub received: u64,
    pub duplicates: u64,
    /// Deliveries whose seq is below one this stream already received.
    pub seq_out_of_order: u64,
    /// Deliveries whose `id:` is not above the previous one, also across
    /// reconnects: a resume must start after the last id seen.
    pub id_order_violations: u64,
    /// Frames of the subscribed type that are not this run's events.
    pub foreign_frames: u64,
    /// This run's events without an `id:` line: right for `--live-only`
    /// events, a fault for stored ones (nothing to resume from).
    pub without_id: u64,
    pub heartbeats: u64,
    /// `replay_truncated`: the broker no longer had every missed event.
    pub replay_truncated: u64,
    /// Frames of any other type (not the subscribed one, not a heartbeat).
    pub other_frames: u64,
    highest_seq: Option<u64>,
    last_id: Option<u64>,
    pub last_receive: Option<Instant>,
    /// Connections that reached their `connected` frame.
    pub connections: u64,
    /// Reconnects the bench asked for (churn).
    pub reconnects: u64,
    /// Connections the broker ended or that failed, and reopen attempts it
    /// refused, while the stream was meant to stay open (resuming streams).
    pub losses: u64,
    pub first_loss: Option<String>,
    /// The first connect attempt since the log was (re)spawned.
    pub first_attempt: Option<Instant>,
    /// When the stream first held every seq of the catch-up target.
    pub caught_up_at: Option<Instant>,
    pub end: StreamEnd,
    pub(super) latency: LatencyRecorder,
}

impl StreamLog {
    pub fn new(context: &StreamContext) -> Self {
        Self {
            seen: SeqSet::new(context.events),
            unique: 0,
            received: 0,
            duplicates: 0,
            seq_out_of_order: 0,
            id_order_violations: 0,
            foreign_frames: 0,
            without_id: 0,
            heartbeats: 0,
            replay_truncated: 0,
            other_frames: 0,
            highest_seq: None,
            last_id: None,
            last_receive: None,
            connections: 0,
            reconnects: 0,
            losses: 0,
            first_loss: None,
            first_attempt: None,
            caught_up_at: None,
            end: StreamEnd::Stopped,
            latency: LatencyRecorder::new(std::sync::Arc::clone(&context.latency)),
        }
    }

    /// The id of the last of this run's events the stream received: where
    /// it resumes (`Last-Event-ID`).
    pub fn last_id(&self) -> Option<u64> {
        self.last_id
    }

    /// Where a stream that has received none of this run's events resumes:
    /// the position its `connected` frame named, if it named one.
    pub fn start_after(&mut self, id: Option<u64>) {
        if self.last_id.is_none() {
            self.last_id = id;
        }
    }

    /// From the first connect attempt of the latest spawn to holding every
    /// seq of the catch-up target.
    pub fn catch_up_time(&self) -> Option<Duration> {
        Some(self.caught_up_at?.duration_since(self.first_attempt?))
    }

    pub(super) fn note_loss(&mut self, what: String) {
        self.losses += 1;
        self.first_loss.get_or_insert(what);
    }

    #[cfg(test)]
    pub(super) fn observe(&mut self, frame: &SseEvent, context: &StreamContext) {
        self.observe_at(frame, context, Arrival::now());
    }

    /// Takes one frame that arrived `at`.
    pub(super) fn observe_at(&mut self, frame: &SseEvent, context: &StreamContext, at: Arrival) {
        if frame.event_type() != context.event_type {
            match frame.event_type() {
                "heartbeat" => self.heartbeats += 1,
                "replay_truncated" => self.replay_truncated += 1,
                _ => self.other_frames += 1,
            }
            return;
        }
        let probe = match serde_json::from_str::<Probe>(&frame.data) {
            Ok(probe) if probe.run == context.run_id && probe.seq < context.events => probe,
            _ => {
                self.foreign_frames += 1;
                return;
            }
        };
        self.latency
            .record(at.unix_us.saturating_sub(probe.sent_us));
        self.received += 1;
        let now = at.instant;
        self.last_receive = Some(now);

        match frame.id.as_deref() {
            // Ids are decimal integers; anything else cannot be in order.
            Some(id) => match id.parse::<u64>() {
                Ok(id) => {
                    if self.last_id.is_some_and(|last| id <= last) {
                        self.id_order_violations += 1;
                    }
                    self.last_id = Some(id);
                }
                Err(_) => self.id_order_violations += 1,
            },
            None => self.without_id += 1,
        }

        if !self.seen.insert(probe.seq) {
            self.duplicates += 1;
            return;
        }
        self.unique += 1;
        context.unique_deliveries.fetch_add(1, Ordering::Relaxed);
        if self.caught_up_at.is_none() && self.unique >= context.catch_up_target() {
            self.caught_up_at = Some(now);
        }
        if self.highest_seq.is_some_and(|highest| probe.seq < highest) {
            self.seq_out_of_order += 1;
        }
        self.highest_seq = self.highest_seq.max(Some(probe.seq));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use url::Url;

    use super::*;
    use crate::http1::Target;

    const RUN: u64 = 7;

    async fn context(events: u64) -> Arc<StreamContext> {
        let url = Url::parse("http://127.0.0.1:9").unwrap();
        let target = Arc::new(Target::resolve(&url, None).await.unwrap());
        StreamContext::resuming(&target, "file_change", RUN, events).unwrap()
    }

    fn frame(event: &str, id: Option<u64>, seq: u64) -> SseEvent {
        SseEvent {
            id: id.map(|id| id.to_string()),
            event: Some(event.to_owned()),
            data: format!(r#"{{"run":{RUN},"seq":{seq},"sent_us":0,"pad":""}}"#),
            retry: None,
        }
    }

    #[tokio::test]
    async fn a_resume_that_replays_a_seen_event_is_a_duplicate_out_of_order() {
        let context = context(3).await;
        let mut log = StreamLog::new(&context);
        log.observe(&frame("file_change", Some(10), 0), &context);
        log.observe(&frame("file_change", Some(11), 1), &context);
        assert_eq!(log.last_id(), Some(11));
        // The reconnect after id 11 must start above it.
        log.observe(&frame("file_change", Some(11), 1), &context);
        log.observe(&frame("file_change", Some(12), 2), &context);
        assert_eq!(log.received, 4);
        assert_eq!(log.duplicates, 1);
        assert_eq!(log.id_order_violations, 1);
        assert_eq!(log.seen.len(), 3);
        assert_eq!(context.unique_deliveries.load(Ordering::Relaxed), 3);
        assert_eq!(log.without_id, 0);
        log.observe(&frame("file_change", None, 2), &context);
        assert_eq!((log.without_id, log.last_id()), (1, Some(12)));
    }

    #[tokio::test]
    async fn catch_up_is_timed_when_the_last_missing_seq_arrives() {
        let context = context(3).await;
        let mut log = StreamLog::new(&context);
        log.observe(&frame("file_change", Some(1), 0), &context);
        context.set_catch_up_target(3);
        log.first_attempt = Some(Instant::now());
        log.observe(&frame("file_change", Some(2), 1), &context);
        assert_eq!(log.catch_up_time(), None);
        log.observe(&frame("file_change", Some(3), 2), &context);
        let caught_up = log.caught_up_at.unwrap();
        // A duplicate afterwards does not move it.
        log.observe(&frame("file_change", Some(3), 2), &context);
        assert_eq!(log.caught_up_at, Some(caught_up));
        assert!(log.catch_up_time().is_some());
    }

    #[tokio::test]
    async fn frames_that_are_not_the_runs_events_are_counted_by_kind() {
        let context = context(2).await;
        let mut log = StreamLog::new(&context);
        log.observe(&frame("heartbeat", None, 0), &context);
        log.observe(&frame("replay_truncated", None, 0), &context);
        log.observe(&frame("shutdown", None, 0), &context);
        // The run's type, but another run's event or a seq past the run's.
        let mut stranger = frame("file_change", Some(5), 0);
        stranger.data = r#"{"run":8,"seq":0,"sent_us":0}"#.to_owned();
        log.observe(&stranger, &context);
        log.observe(&frame("file_change", Some(6), 2), &context);
        assert_eq!(
            (log.heartbeats, log.replay_truncated, log.other_frames),
            (1, 1, 1)
        );
        assert_eq!(log.foreign_frames, 2);
        assert_eq!((log.received, log.last_id()), (0, None));
    }
}
