//! `ConnectionStats`: the counters of one stream.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::OutboundFrame;
use crate::domain::{EventId, now_ms};

/// Counters of one stream, written by its body as bytes go out and read by
/// listings and the Janitor. Relaxed atomics: no lock on the write path.
#[derive(Debug)]
pub struct ConnectionStats {
    pub connected_at_ms: i64,
    last_write_ms: AtomicI64,
    events_sent: AtomicU64,
    last_event_id: AtomicI64,
    /// -1 until a live event is written.
    last_lag_ms: AtomicI64,
    /// Unix seconds when the stream's token expires; 0: never. A renewed
    /// token moves it later (`POST /sse/connections/{id}/token`).
    token_expires_at: AtomicU64,
    /// When actix last took a piece of a large frame it has not taken
    /// whole yet (ms since the epoch); 0 between frames.
    mid_frame_since_ms: AtomicI64,
}

impl ConnectionStats {
    pub fn new(resume_after: Option<EventId>) -> Self {
        let now = now_ms();
        Self {
            connected_at_ms: now,
            last_write_ms: AtomicI64::new(now),
            events_sent: AtomicU64::new(0),
            last_event_id: AtomicI64::new(resume_after.map_or(0, |id| id.0)),
            last_lag_ms: AtomicI64::new(-1),
            token_expires_at: AtomicU64::new(0),
            mid_frame_since_ms: AtomicI64::new(0),
        }
    }

    /// Actix took a piece of a large frame at `now`, and more is left.
    pub(super) fn mid_frame(&self, now: i64) {
        self.mid_frame_since_ms.store(now, Ordering::Relaxed);
    }

    /// Actix took the last piece of a large frame.
    pub(super) fn frame_done(&self) {
        self.mid_frame_since_ms.store(0, Ordering::Relaxed);
    }

    /// Since when the client has taken nothing of a large frame begun
    /// (ms since the epoch): a client that stopped reading in its middle.
    pub fn stuck_mid_frame_since_ms(&self) -> Option<i64> {
        Some(self.mid_frame_since_ms.load(Ordering::Relaxed)).filter(|at| *at > 0)
    }

    /// When the stream's token expires (unix seconds); `None`: never.
    pub fn token_expires_at(&self) -> Option<u64> {
        Some(self.token_expires_at.load(Ordering::Relaxed)).filter(|at| *at > 0)
    }

    /// The stream's token expiry, at open; `None`: never.
    pub fn set_token_expires_at(&self, expires_at: Option<u64>) {
        self.token_expires_at
            .store(expires_at.unwrap_or(0), Ordering::Relaxed);
    }

    /// A fresh token's expiry; never earlier than the current one (a renewal
    /// that lands after a later one does not shorten the stream). `None`:
    /// a token without expiry.
    pub fn extend_token(&self, expires_at: Option<u64>) {
        match expires_at {
            None => self.token_expires_at.store(0, Ordering::Relaxed),
            Some(at) => {
                let _ = self.token_expires_at.fetch_update(
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                    |current| (current != 0 && at > current).then_some(at),
                );
            }
        }
    }

    /// Publish→write lag of the last live event written, in ms.
    pub fn last_lag_ms(&self) -> Option<i64> {
        Some(self.last_lag_ms.load(Ordering::Relaxed)).filter(|lag| *lag >= 0)
    }

    pub fn last_write_ms(&self) -> i64 {
        self.last_write_ms.load(Ordering::Relaxed)
    }

    pub fn events_sent(&self) -> u64 {
        self.events_sent.load(Ordering::Relaxed)
    }

    /// The stream's `connected` frame told the client `id` as where it
    /// resumes from: listed as its last event id until an event follows.
    pub fn greeted_with(&self, id: EventId) {
        let _ = self
            .last_event_id
            .compare_exchange(0, id.0, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn last_event_id(&self) -> Option<EventId> {
        match self.last_event_id.load(Ordering::Relaxed) {
            0 => None,
            id => Some(EventId(id)),
        }
    }

    /// `frame` was taken by the HTTP layer: it counts as written.
    /// `frame` was taken by actix at `now` (ms since the epoch).
    pub(super) fn record_write(
        &self,
        frame: &OutboundFrame,
        lag: &prometheus::Histogram,
        now: i64,
    ) {
        self.last_write_ms.store(now, Ordering::Relaxed);
        // Every published event counts, stored or not (`persist: false`
        // has no id but a publish time); the broker's own frames do not.
        if frame.event_id.is_some() || frame.published_at_ms > 0 {
            self.events_sent.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(id) = frame.event_id {
            self.last_event_id.store(id.0, Ordering::Relaxed);
        }
        if frame.published_at_ms > 0 {
            let lag_ms = (now - frame.published_at_ms).max(0);
            self.last_lag_ms.store(lag_ms, Ordering::Relaxed);
            lag.observe(lag_ms as f64 / 1000.0);
        }
    }
}
