//! `Persister`: group commit of published events, then routing.
//!
//! Publish requests queue here; whenever no write is in flight, everything
//! queued (up to `MAX_BATCH` events) goes to the store in one transaction.
//! Under load batches grow by themselves and no event waits longer than one
//! commit, with no timer to tune. Only after the commit are the events routed
//! (stored before delivered) and the publishers answered with their ids.
//! Commits are strictly one after another, so ids reach the Registry in
//! increasing order. It also prunes expired events (retention).
//!
//! Every publish gets the store timeout from the moment it is queued: a
//! publish still queued when it runs out is refused without being tried,
//! and a batch's store deadline is that of its oldest publish, past which
//! the store rolls the batch back. Either way the publisher hears
//! `StoreTimeout` and nothing of it is stored. The one exception is a batch
//! whose COMMIT was already sent: its publishers are answered `Unconfirmed`
//! one more timeout later, and the Persister still waits for the outcome
//! (up to ten timeouts, see `store::COMMIT_WAIT_LIMIT`) and routes the
//! events if they were stored, so stored means delivered, in id order.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Recipient, WrapFuture};
use tokio::sync::oneshot;
use tracing::Instrument as _;

mod messages;
mod pending;

pub use messages::{Drain, KnownSeq, Persist, PersistThen, TaskWrite};
use pending::{InFlight, PendingPublish, report_unconfirmed_outcome};
pub use pending::{PersistError, Persisted, Then};

use super::registry::Route;
use crate::{
    domain::{EventId, StoredEvent, now_ms},
    store::{
        BatchRows, CommittedBatch, Deadline, EventStore, FailureKind, InsertOutcome, Operation,
        StoreError,
    },
    telemetry::{LogThrottle, Metrics},
};

/// Events per transaction; bigger batches stop paying off in latency.
const MAX_BATCH: usize = 512;
/// Span links from one commit span to the publishes in its batch.
const MAX_COMMIT_LINKS: usize = 32;
/// Rows deleted per retention transaction.
const PRUNE_BATCH: i64 = 1000;

pub struct Persister {
    store: EventStore,
    /// The Registry in a single instance, the RedisBridge in a cluster.
    router: Recipient<Route>,
    retention: Duration,
    pending: VecDeque<PendingPublish>,
    in_flight: Option<InFlight>,
    batches: u64,
    /// A timer is set to refuse queued publishes that run out of time.
    expiry_scheduled: bool,
    drain_waiters: Vec<oneshot::Sender<Option<EventId>>>,
    /// The highest id this Persister stored, for the drain.
    last_committed: Option<EventId>,
    /// Set by [`Drain`]: publishes from then on answer `ShuttingDown`, so
    /// every publish that was answered with an id is delivered before the
    /// streams are told goodbye.
    sealed: bool,
    metrics: Metrics,
}

impl Persister {
    pub fn new(
        store: EventStore,
        router: Recipient<Route>,
        retention: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            router,
            retention,
            pending: VecDeque::new(),
            in_flight: None,
            batches: 0,
            expiry_scheduled: false,
            drain_waiters: Vec::new(),
            last_committed: None,
            sealed: false,
            metrics,
        }
    }

    fn timeout(&self) -> Duration {
        self.store.timeout()
    }

    /// Refuses the queued publishes whose store timeout has run out: they
    /// were never tried, so nothing of them is stored.
    fn expire_queued(&mut self) {
        let timeout = self.timeout();
        let now = Instant::now();
        let (mut publishes, mut events) = (0usize, 0usize);
        // Queued in order, so the oldest are at the front.
        while self
            .pending
            .front()
            .is_some_and(|p| now >= p.queued_at + timeout)
        {
            if let Some(mut expired) = self.pending.pop_front() {
                publishes += 1;
                events += expired.events.len();
                expired.answer(Err(PersistError::StoreTimeout(timeout)));
            }
        }
        // One line per pass, not per publish: a stall refuses them by the
        // hundred.
        if publishes > 0 {
            tracing::warn!(
                publishes,
                events,
                timeout_ms = timeout.as_millis() as u64,
                "publishes refused: the store timeout ran out while they were queued"
            );
        }
    }

    /// While a write is in flight, wakes up when the oldest queued publish
    /// runs out of time (a write past its deadline is still waited for when
    /// its commit had begun; the queue behind it must not wait with it).
    fn schedule_expiry(&mut self, ctx: &mut Context<Self>) {
        if self.expiry_scheduled || self.in_flight.is_none() {
            return;
        }
        let Some(oldest) = self.pending.front() else {
            return;
        };
        let due = (oldest.queued_at + self.timeout()).saturating_duration_since(Instant::now());
        self.expiry_scheduled = true;
        ctx.run_later(due, |act, ctx| {
            act.expiry_scheduled = false;
            act.expire_queued();
            act.schedule_expiry(ctx);
        });
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.expire_queued();
        if self.in_flight.is_some() || self.pending.is_empty() {
            if self.in_flight.is_none() {
                for waiter in self.drain_waiters.drain(..) {
                    let _ = waiter.send(self.last_committed);
                }
            }
            self.schedule_expiry(ctx);
            return;
        }
        let mut batch = Vec::new();
        let mut taken = 0;
        while taken < MAX_BATCH {
            let Some(request) = self.pending.pop_front() else {
                break;
            };
            taken += request.events.len() + request.tasks.len();
            batch.push(request);
        }
        let stored_events = || {
            batch
                .iter()
                .flat_map(|r| r.events.iter().filter(|e| e.persist))
        };
        let rows = BatchRows::new(
            stored_events(),
            batch
                .iter()
                .flat_map(|r| r.tasks.iter().filter_map(TaskWrite::row)),
            batch
                .iter()
                .flat_map(|r| r.tasks.iter().filter_map(TaskWrite::check)),
            batch.iter().flat_map(|r| {
                r.tasks
                    .iter()
                    .filter_map(TaskWrite::seq_check)
                    .map(|(task_id, KnownSeq(known))| (task_id, known))
            }),
        );
        // One span per group commit, linked to the publishes it stores, so a
        // publish's trace shows the commit it waited for.
        let span = if crate::telemetry::traces_exported() && rows.events() > 0 {
            let span = tracing::info_span!("store_commit", sse.store.batch_size = rows.events());
            for parent in stored_events()
                .filter_map(|e| e.trace_context.as_ref())
                .take(MAX_COMMIT_LINKS)
            {
                crate::telemetry::link_to(&span, parent);
            }
            span
        } else {
            tracing::Span::none()
        };
        // The oldest publish's budget is the batch's: no publisher waits
        // longer than the store timeout for its answer.
        let deadline = Deadline::from_start(batch[0].queued_at, self.timeout());
        self.batches += 1;
        let seq = self.batches;
        self.in_flight = Some(InFlight {
            seq,
            requests: batch,
            give_up: None,
            answered_unconfirmed: false,
        });
        let store = self.store.clone();
        let started = Instant::now();
        // Past the deadline the store returns, unless the commit was sent:
        // then answer the publishers one timeout later without waiting on.
        let give_up = deadline.remaining() + self.timeout();
        let write = async move {
            if rows.is_empty() {
                let nothing = CommittedBatch {
                    outcomes: Vec::new(),
                    previous_id: EventId(0),
                    stale_tasks: Vec::new(),
                };
                return Ok((nothing, 0));
            }
            let count = rows.events();
            store
                .insert_batch(rows, deadline)
                .await
                .map(|batch| (batch, count))
        }
        .instrument(span);
        ctx.spawn(write.into_actor(self).map(move |result, act, ctx| {
            let (batch, answered_unconfirmed) = match act.in_flight.take() {
                Some(in_flight) => {
                    if let Some(timer) = in_flight.give_up {
                        ctx.cancel_future(timer);
                    }
                    (in_flight.requests, in_flight.answered_unconfirmed)
                }
                None => (Vec::new(), false),
            };
            if answered_unconfirmed {
                report_unconfirmed_outcome(&result, started);
            }
            act.complete(batch, result, started);
            act.flush(ctx);
        }));
        let timer = ctx.run_later(give_up, move |act, _| act.unconfirmed(seq));
        if let Some(in_flight) = self.in_flight.as_mut().filter(|f| f.seq == seq) {
            in_flight.give_up = Some(timer);
        }
        self.schedule_expiry(ctx);
    }

    /// The batch `seq` is still in flight one timeout past its deadline: its
    /// commit was sent and never confirmed. Its publishers stop waiting.
    fn unconfirmed(&mut self, seq: u64) {
        let timeout = self.timeout();
        let Some(in_flight) = self.in_flight.as_mut().filter(|f| f.seq == seq) else {
            return;
        };
        tracing::error!(
            timeout_ms = timeout.as_millis() as u64,
            "a publish batch's commit is not confirmed; answering its publishers, still waiting for the outcome"
        );
        in_flight.answered_unconfirmed = true;
        self.metrics.record_store_error(
            Operation::InsertBatch.as_str(),
            FailureKind::Unconfirmed.as_str(),
        );
        for request in &mut in_flight.requests {
            request.answer(Err(PersistError::Unconfirmed(timeout)));
        }
    }

    fn complete(
        &mut self,
        mut batch: Vec<PendingPublish>,
        result: Result<(CommittedBatch, usize), StoreError>,
        started: Instant,
    ) {
        let (committed, stored) = match result {
            Ok(ok) => ok,
            Err(error) => {
                // Every batch fails while the store is down: a line every
                // ten seconds, with how many more failed (each counted by
                // sse_store_errors_total).
                static FAILED: LogThrottle = LogThrottle::new(Duration::from_secs(10));
                match FAILED.due() {
                    Some(held_back) => {
                        tracing::error!(error.message = %error, error.cause_chain = ?error, held_back, "storing a publish batch failed")
                    }
                    None => {
                        tracing::debug!(error.message = %error, "storing a publish batch failed")
                    }
                }
                let answer = PersistError::from(error);
                for request in &mut batch {
                    request.answer(Err(answer.clone()));
                }
                return;
            }
        };
        if stored > 0 {
            self.metrics
                .record_commit(stored, started.elapsed().as_secs_f64());
        }
        let mut outcomes = committed.outcomes.into_iter();
        let mut routed = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        let stale_tasks = committed.stale_tasks;
        for request in batch {
            let stale = request
                .tasks
                .iter()
                .any(|t| stale_tasks.iter().any(|s| s == t.task().task_id.as_str()));
            let mut ids = Vec::with_capacity(request.events.len());
            for event in request.events {
                if !event.persist {
                    ids.push(None);
                    routed.push(StoredEvent::from_new(event, None));
                    continue;
                }
                match outcomes.next() {
                    Some(InsertOutcome::Inserted(id)) => {
                        self.last_committed = self.last_committed.max(Some(id));
                        ids.push(Some(id));
                        routed.push(StoredEvent::from_new(event, Some(id)));
                    }
                    Some(InsertOutcome::Duplicate(id)) => ids.push(Some(id)),
                    Some(InsertOutcome::Skipped) | None => ids.push(None),
                }
            }
            replies.push((request.reply, Persisted { ids, stale }));
        }
        // Routed even when the publishers were already told "unconfirmed":
        // what is stored is delivered.
        if !routed.is_empty() {
            self.router.do_send(Route {
                events: routed,
                previous_id: (stored > 0).then_some(committed.previous_id),
            });
        }
        for (reply, persisted) in replies {
            if let Some(reply) = reply {
                reply.send(Ok(persisted));
            }
        }
    }

    fn prune(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let cutoff = now_ms() - self.retention.as_millis() as i64;
        ctx.spawn(
            async move { store.prune(cutoff, PRUNE_BATCH).await }
                .into_actor(self)
                .map(|result, _, _| match result {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "pruned events past retention"),
                    Err(error) => {
                        tracing::warn!(error.message = %error, "retention pruning failed")
                    }
                }),
        );
    }
}

impl Actor for Persister {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let period = (self.retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        self.prune(ctx);
        ctx.run_interval(period, Self::prune);
    }
}
