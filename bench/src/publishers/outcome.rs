//! What publisher connections did: each one's log, and their merged
//! outcome, against which deliveries are checked.

use std::ops::Range;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::{latency::new_histogram, seq_set::SeqSet};

/// What one publisher connection did.
pub(super) struct PublisherLog {
    pub(super) acked: Vec<Range<u64>>,
    pub(super) requests: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
    pub(super) timed_out: bool,
    pub(super) request_latency: Histogram<u64>,
    pub(super) first_send: Option<Instant>,
    pub(super) last_ack: Option<Instant>,
}

impl PublisherLog {
    pub(super) fn note_error(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }
}

/// Every publisher connection's work, merged.
pub struct PublishOutcome {
    /// Seqs taken and sent (all of the job's, unless it was stopped early).
    pub events_requested: u64,
    pub acked: SeqSet,
    pub events_acked: u64,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub timed_out: bool,
    pub request_latency: Histogram<u64>,
    pub first_send: Option<Instant>,
    pub last_ack: Option<Instant>,
}

impl PublishOutcome {
    /// Nothing yet, for seqs below `capacity`.
    pub(super) fn empty(capacity: u64) -> Result<Self> {
        Ok(Self {
            events_requested: 0,
            acked: SeqSet::new(capacity),
            events_acked: 0,
            requests: 0,
            errors: 0,
            first_error: None,
            timed_out: false,
            request_latency: new_histogram()?,
            first_send: None,
            last_ack: None,
        })
    }

    /// Adds one publisher connection's work.
    pub(super) fn add(&mut self, log: PublisherLog) -> Result<()> {
        for seqs in log.acked {
            self.events_acked += seqs.end - seqs.start;
            seqs.for_each(|seq| {
                self.acked.insert(seq);
            });
        }
        self.requests += log.requests;
        self.errors += log.errors;
        if self.first_error.is_none() {
            self.first_error = log.first_error;
        }
        self.timed_out |= log.timed_out;
        self.request_latency
            .add(&log.request_latency)
            .context("merging request latencies")?;
        self.first_send = earliest(self.first_send, log.first_send);
        self.last_ack = self.last_ack.max(log.last_ack);
        Ok(())
    }

    /// Adds a later phase's work (its seqs beyond this one's), so that
    /// deliveries are checked against every phase at once.
    pub fn absorb(&mut self, later: PublishOutcome) -> Result<()> {
        let mut acked = later.acked;
        acked.union_with(&self.acked);
        self.acked = acked;
        self.events_requested += later.events_requested;
        self.events_acked += later.events_acked;
        self.requests += later.requests;
        self.errors += later.errors;
        if self.first_error.is_none() {
            self.first_error = later.first_error;
        }
        self.timed_out |= later.timed_out;
        self.request_latency
            .add(&later.request_latency)
            .context("merging request latencies")?;
        self.first_send = earliest(self.first_send, later.first_send);
        self.last_ack = self.last_ack.max(later.last_ack);
        Ok(())
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn outcome(capacity: u64, acked: &[u64], first_send: Instant) -> PublishOutcome {
        let mut set = SeqSet::new(capacity);
        acked.iter().for_each(|&seq| {
            set.insert(seq);
        });
        PublishOutcome {
            events_requested: acked.len() as u64 + 1,
            acked: set,
            events_acked: acked.len() as u64,
            requests: acked.len() as u64 + 1,
            errors: 1,
            first_error: Some(format!("lost at {capacity}")),
            timed_out: false,
            request_latency: new_histogram().unwrap(),
            first_send: Some(first_send),
            last_ack: Some(first_send),
        }
    }

    #[test]
    fn a_later_phase_is_absorbed_into_the_earlier_one() {
        let early = Instant::now();
        let late = early + Duration::from_secs(1);
        let mut seed = outcome(1, &[0], early);
        seed.absorb(outcome(5, &[1, 2, 4], late)).unwrap();
        assert_eq!(seed.acked.len(), 4);
        assert!(!seed.acked.insert(0) && !seed.acked.insert(4) && seed.acked.insert(3));
        assert_eq!((seed.events_acked, seed.events_requested), (4, 6));
        assert_eq!((seed.requests, seed.errors), (6, 2));
        assert_eq!(seed.first_error.as_deref(), Some("lost at 1"));
        assert_eq!((seed.first_send, seed.last_ack), (Some(early), Some(late)));
    }
}
