//! `Persister`: group commit of published events, then routing.
//!
//! Publish requests queue here; whenever no write is in flight, everything
//! queued (up to `MAX_BATCH` events) goes to the store in one transaction.
//! Under load batches grow by themselves and no event waits longer than one
//! commit, with no timer to tune. Only after the commit are the events routed
//! (stored before delivered) and the publishers answered with their ids.
//! Commits are strictly one after another, so ids reach the Registry in
//! increasing order. It also prunes expired events (retention).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseFuture,
    WrapFuture,
};
use tokio::sync::oneshot;
use tracing::Instrument as _;

use super::registry::Route;
use crate::{
    domain::{EventId, NewEvent, StoredEvent, now_ms},
    store::{CommittedBatch, EventStore, InsertOutcome, StoreError},
    telemetry::Metrics,
};

/// Events per transaction; bigger batches stop paying off in latency.
const MAX_BATCH: usize = 512;
/// Span links from one commit span to the publishes in its batch.
const MAX_COMMIT_LINKS: usize = 32;
/// Rows deleted per retention transaction.
const PRUNE_BATCH: i64 = 1000;

/// Why a publish was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PersistError {
    #[error("the event store is unavailable")]
    StoreUnavailable,
    #[error("the broker is shutting down")]
    ShuttingDown,
}

struct PendingPublish {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<Option<EventId>>, PersistError>>,
}

pub struct Persister {
    store: EventStore,
    /// The Registry in a single instance, the RedisBridge in a cluster.
    router: Recipient<Route>,
    retention: Duration,
    pending: VecDeque<PendingPublish>,
    in_flight: bool,
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
            in_flight: false,
            drain_waiters: Vec::new(),
            last_committed: None,
            sealed: false,
            metrics,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight || self.pending.is_empty() {
            if !self.in_flight {
                for waiter in self.drain_waiters.drain(..) {
                    let _ = waiter.send(self.last_committed);
                }
            }
            return;
        }
        let mut batch = Vec::new();
        let mut taken = 0;
        while taken < MAX_BATCH {
            let Some(request) = self.pending.pop_front() else {
                break;
            };
            taken += request.events.len();
            batch.push(request);
        }
        let to_store: Vec<NewEvent> = batch
            .iter()
            .flat_map(|r| r.events.iter().filter(|e| e.persist).cloned())
            .collect();
        self.in_flight = true;
        let store = self.store.clone();
        let started = Instant::now();
        // One span per group commit, linked to the publishes it stores, so a
        // publish's trace shows the commit it waited for.
        let span = if crate::telemetry::traces_exported() && !to_store.is_empty() {
            let span = tracing::info_span!("store_commit", sse.store.batch_size = to_store.len());
            for parent in to_store
                .iter()
                .filter_map(|e| e.trace_context.as_ref())
                .take(MAX_COMMIT_LINKS)
            {
                crate::telemetry::link_to(&span, parent);
            }
            span
        } else {
            tracing::Span::none()
        };
        let write = async move {
            if to_store.is_empty() {
                let nothing = CommittedBatch {
                    outcomes: Vec::new(),
                    previous_id: EventId(0),
                };
                return Ok((nothing, 0));
            }
            let count = to_store.len();
            store
                .insert_batch(&to_store)
                .await
                .map(|batch| (batch, count))
        }
        .instrument(span);
        ctx.spawn(write.into_actor(self).map(move |result, act, ctx| {
            act.in_flight = false;
            act.complete(batch, result, started);
            act.flush(ctx);
        }));
    }

    fn complete(
        &mut self,
        batch: Vec<PendingPublish>,
        result: Result<(CommittedBatch, usize), StoreError>,
        started: Instant,
    ) {
        let (committed, stored) = match result {
            Ok(ok) => ok,
            Err(error) => {
                tracing::error!(error.message = %error, error.cause_chain = ?error, "storing a publish batch failed");
                for request in batch {
                    let _ = request.reply.send(Err(PersistError::StoreUnavailable));
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
        for request in batch {
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
                    None => ids.push(None),
                }
            }
            replies.push((request.reply, ids));
        }
        if !routed.is_empty() {
            self.router.do_send(Route {
                events: routed,
                previous_id: (stored > 0).then_some(committed.previous_id),
            });
        }
        for (reply, ids) in replies {
            let _ = reply.send(Ok(ids));
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

/// Store (unless `persist: false`) and deliver these events, in order.
/// Answers one id per event once they are stored and handed to the Registry.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Option<EventId>>, PersistError>")]
pub struct Persist {
    pub events: Vec<NewEvent>,
}

impl Handler<Persist> for Persister {
    type Result = ResponseFuture<Result<Vec<Option<EventId>>, PersistError>>;

    fn handle(&mut self, msg: Persist, ctx: &mut Context<Self>) -> Self::Result {
        if self.sealed {
            return Box::pin(async { Err(PersistError::ShuttingDown) });
        }
        let (reply, answer) = oneshot::channel();
        self.pending.push_back(PendingPublish {
            events: msg.events,
            reply,
        });
        self.flush(ctx);
        Box::pin(async move { answer.await.unwrap_or(Err(PersistError::ShuttingDown)) })
    }
}

/// Stops taking publishes (later ones answer `ShuttingDown`, to be retried
/// on another instance) and resolves once every queued one is stored and
/// handed to the router. Answers the highest id it ever stored.
#[derive(Debug, Message)]
#[rtype(result = "Option<EventId>")]
pub struct Drain;

impl Handler<Drain> for Persister {
    type Result = ResponseFuture<Option<EventId>>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.sealed = true;
        let (done, wait) = oneshot::channel();
        self.drain_waiters.push(done);
        self.flush(ctx);
        Box::pin(async move { wait.await.ok().flatten() })
    }
}
