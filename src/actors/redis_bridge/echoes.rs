//! Batches this instance delivered itself after their publish to Redis
//! failed. A publish can fail on the client's side (a timeout while Redis
//! hangs) and still reach Redis later, when the hang ends: its echo then
//! comes back after the batch was delivered here. Stored events are
//! deduped by id anyway; events published with `persist: false` have none,
//! so without this they reached this instance's streams twice.

use std::collections::{HashSet, VecDeque};

/// Failed publishes remembered at most; a Redis hang long enough to fail
/// more than this many is rare, and an echo older than that is let through.
const REMEMBERED: usize = 4096;

#[derive(Debug, Default)]
pub(super) struct LocalDeliveries {
    next_batch: u64,
    delivered: HashSet<u64>,
    /// `delivered` in insertion order, to forget the oldest first.
    order: VecDeque<u64>,
}

impl LocalDeliveries {
    /// The number of this instance's next published batch.
    pub(super) fn next_batch(&mut self) -> u64 {
        self.next_batch += 1;
        self.next_batch
    }

    /// Batch `batch` failed to publish and is delivered here.
    pub(super) fn delivered_here(&mut self, batch: u64) {
        if self.delivered.insert(batch) {
            self.order.push_back(batch);
        }
        while self.order.len() > REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.delivered.remove(&oldest);
            }
        }
    }

    /// Whether a batch that came back from Redis is the echo of one this
    /// instance already delivered itself (forgotten once seen: each echo
    /// comes once).
    pub(super) fn take_echo(&mut self, own: bool, batch: Option<u64>) -> bool {
        match batch {
            Some(batch) if own => self.delivered.remove(&batch),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_own_batch_delivered_here_is_an_echo_and_only_once() {
        let mut local = LocalDeliveries::default();
        let (first, second) = (local.next_batch(), local.next_batch());
        assert_ne!(first, second);
        local.delivered_here(second);

        assert!(
            !local.take_echo(true, Some(first)),
            "published fine: not an echo"
        );
        assert!(
            !local.take_echo(false, Some(second)),
            "another instance's batch"
        );
        assert!(!local.take_echo(true, None), "an older instance's batch");
        assert!(local.take_echo(true, Some(second)));
        assert!(!local.take_echo(true, Some(second)), "each echo comes once");
    }

    #[test]
    fn the_oldest_failed_publishes_are_forgotten_first() {
        let mut local = LocalDeliveries::default();
        let batches: Vec<u64> = (0..REMEMBERED + 10).map(|_| local.next_batch()).collect();
        for &batch in &batches {
            local.delivered_here(batch);
        }
        assert!(!local.take_echo(true, Some(batches[0])));
        assert!(local.take_echo(true, Some(batches[10])));
        assert!(local.take_echo(true, Some(*batches.last().unwrap())));
    }
}
