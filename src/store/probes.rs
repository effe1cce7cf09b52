//! The store's health probes: the round trip `/health` reports, and the
//! read and the write the health sampler makes while those fail.

use std::time::Duration;

use futures_util::FutureExt;

use super::{Backend, Deadline, EventId, EventStore, Operation, StoreError};

/// The longest `/health` waits for the store's round trip, and the
/// HealthSampler for its probes.
const PING_BUDGET: Duration = Duration::from_secs(2);

impl EventStore {
    /// A cheap round trip, for `/health`: bounded by [`PING_BUDGET`] too, so
    /// a probe gets its answer before a load balancer's own timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let deadline = Deadline::after(self.timeout.min(PING_BUDGET));
        bounded!(self, Operation::Ping, deadline, |store, d| store.ping(&d))
    }

    /// Reads the newest id, within [`PING_BUDGET`], as a read of its own:
    /// replays and history are rare, so after reads failed the HealthSampler
    /// calls this to find out whether they work again, instead of leaving
    /// the failure standing until some client resumes.
    pub async fn probe_reads(&self) -> Result<EventId, StoreError> {
        let deadline = Deadline::after(self.timeout.min(PING_BUDGET));
        bounded!(self, Operation::ReadProbe, deadline, |store, d| store
            .latest_id(&d))
    }

    /// One small write (a mark in `broker_state`), within [`PING_BUDGET`]:
    /// after writes failed, the HealthSampler calls this to find out whether
    /// they work again, so an idle instance (or one a load balancer took out
    /// of rotation) does not wait for a publisher to prove it well, and one
    /// whose writes still fail (a full disk, a deleted SQLite file) stays
    /// unhealthy instead of fading to degraded.
    pub async fn probe_writes(&self) -> Result<(), StoreError> {
        let deadline = Deadline::after(self.timeout.min(PING_BUDGET));
        bounded!(self, Operation::WriteProbe, deadline, |store, d| store
            .probe_write(&d))
    }
}
