//! What every stream task of a run shares: where to connect, what to
//! expect, and the counters the run waits on.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Result;
use hdrhistogram::Histogram;
use tokio::time::{Instant, sleep};

use crate::{http1::Target, latency::new_histogram};

/// How often a wait for deliveries checks the count.
const DELIVERY_POLL: Duration = Duration::from_millis(20);
/// What every stream task of a run shares.
pub struct StreamContext {
    pub(super) target: Arc<Target>,
    /// Path and query of the stream request.
    pub(super) path: String,
    pub(super) event_type: String,
    pub(super) run_id: u64,
    /// Events the run publishes: seqs are `0..events`.
    pub(super) events: u64,
    /// Delivery latencies of every stream, in µs.
    pub latency: Arc<Mutex<Histogram<u64>>>,
    /// Deliveries of a seq a stream had not seen before, over all streams;
    /// the drain phase is over when it reaches streams × events acknowledged.
    pub unique_deliveries: AtomicU64,
    /// Streams past their `connected` frame right now.
    pub connected_now: AtomicU64,
    /// A stream holding this many distinct seqs has caught up.
    pub(super) catch_up_target: AtomicU64,
    /// Resume a lost connection (as an `EventSource` does) instead of
    /// ending the stream there.
    pub(super) resume_lost: bool,
}

impl StreamContext {
    /// A run's streams on `GET /sse/events?event_types=<event_type>`,
    /// expecting the seqs `0..events` of run `run_id`.
    pub fn new(
        target: &Arc<Target>,
        event_type: &str,
        run_id: u64,
        events: u64,
    ) -> Result<Arc<Self>> {
        Self::build(target, event_type, run_id, events, false)
    }

    /// [`Self::new`] for streams that resume after the last id they saw
    /// when the broker ends or refuses them, counting each such loss.
    pub fn resuming(
        target: &Arc<Target>,
        event_type: &str,
        run_id: u64,
        events: u64,
    ) -> Result<Arc<Self>> {
        Self::build(target, event_type, run_id, events, true)
    }

    fn build(
        target: &Arc<Target>,
        event_type: &str,
        run_id: u64,
        events: u64,
        resume_lost: bool,
    ) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            path: target.path(&format!("/sse/events?event_types={event_type}")),
            target: Arc::clone(target),
            event_type: event_type.to_owned(),
            run_id,
            events,
            latency: Arc::new(Mutex::new(new_histogram()?)),
            unique_deliveries: AtomicU64::new(0),
            connected_now: AtomicU64::new(0),
            catch_up_target: AtomicU64::new(u64::MAX),
            resume_lost,
        }))
    }

    /// From now on a stream holding `seqs` distinct seqs has caught up.
    pub fn set_catch_up_target(&self, seqs: u64) {
        self.catch_up_target.store(seqs, Ordering::Relaxed);
    }

    pub(super) fn catch_up_target(&self) -> u64 {
        self.catch_up_target.load(Ordering::Relaxed)
    }

    /// Waits until the streams together hold `expected` distinct
    /// deliveries; false when `until` came first.
    pub async fn wait_for_deliveries(&self, expected: u64, until: Instant) -> bool {
        loop {
            if self.unique_deliveries.load(Ordering::Relaxed) >= expected {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            sleep(DELIVERY_POLL).await;
        }
    }
}
