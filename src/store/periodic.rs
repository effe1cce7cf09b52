//! `Periodic`: at most one claim per period among the threads that ask, for
//! the store's side jobs done in passing by whichever write comes along
//! (SQLite's task index pass, the look at its file), with no timer and no
//! lock.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Instant,
};

#[derive(Debug)]
pub(super) struct Periodic {
    /// Monotonic, so a wall clock set back cannot hold the claims off.
    started: Instant,
    /// Milliseconds after `started` of the last claim.
    last_ms: AtomicI64,
    period_ms: i64,
}

impl Periodic {
    /// The first claim succeeds.
    pub(super) fn new(period_ms: i64) -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicI64::new(-period_ms),
            period_ms,
        }
    }

    /// Whether the caller should do the job now: a period has passed since
    /// the last claim, and no other caller took this one.
    pub(super) fn claim(&self) -> bool {
        let now = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let last = self.last_ms.load(Ordering::Relaxed);
        now - last >= self.period_ms
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Lets the next claim succeed at once (tests).
    #[cfg(test)]
    pub(super) fn expire(&self) {
        self.last_ms.store(-self.period_ms, Ordering::Relaxed);
    }
}
