//! `Connection`: one actor per open stream.
//!
//! The stream's HTTP body ([`StreamBody`]) drains a bounded queue. The
//! Registry fills that queue with shared, pre-encoded frames; this actor adds
//! its own heartbeats and, on a resume, the replay from the store. It closes
//! its stream when the client is gone, when it is told to (slow, stale,
//! shutdown) and deregisters in `stopping`, whatever the reason.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, WrapFuture,
};
use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

pub mod socket;

pub use socket::StreamSocket;

use super::registry::{ConnectionId, HandOff, Registry, ReplayCaughtUp, Unregister};
use crate::{
    domain::{EventId, StoredEvent, Subscription, now_ms, sse_frame},
    store::{EventPage, EventStore},
    telemetry::Metrics,
};

/// Stored events fetched per replay query.
const REPLAY_PAGE: i64 = 500;
/// Span links from one replay to the publishes it replays; a trace viewer
/// shows a few, and an unbounded list would grow the span without limit.
const MAX_REPLAY_LINKS: usize = 32;
/// The `retry:` hint sent with `shutdown`: reconnect soon, to another instance.
pub const SHUTDOWN_RETRY: Duration = Duration::from_millis(1000);

/// One encoded frame waiting in a stream's queue.
#[derive(Debug, Clone)]
pub struct OutboundFrame {
    pub bytes: Bytes,
    /// Set for stored events: becomes the stream's `last_event_id` once written.
    pub event_id: Option<EventId>,
    /// The last event of a task: a task stream ends after it.
    pub ends_task: bool,
    /// Publish time (ms since the epoch) of a live event, 0 otherwise:
    /// the start of this subscriber's delivery lag.
    pub published_at_ms: i64,
}

impl OutboundFrame {
    /// A broker-generated frame (`connected`, `heartbeat`, ...).
    pub fn control(bytes: Bytes) -> Self {
        Self {
            bytes,
            event_id: None,
            ends_task: false,
            published_at_ms: 0,
        }
    }

    /// The frame of live `event`, already encoded into `bytes`.
    pub fn event(event: &StoredEvent, bytes: Bytes) -> Self {
        Self {
            bytes,
            event_id: event.id,
            ends_task: event.ends_task(),
            published_at_ms: event.created_at_ms,
        }
    }

    /// The frame of a replayed `event`: its age is the client's absence,
    /// not delivery lag, so it is left out of the lag histogram.
    pub fn replayed(event: &StoredEvent, bytes: Bytes) -> Self {
        Self {
            published_at_ms: 0,
            ..Self::event(event, bytes)
        }
    }
}

/// Why a stream was closed: the log line, the metric label and the counters
/// of `/sse/stats` all come from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The client closed the connection.
    ClientGone,
    /// The queue was full: the client reads slower than events arrive.
    Slow,
    /// No successful write for the stale threshold (Janitor).
    Stale,
    /// The broker is shutting down.
    Shutdown,
    /// The stream's token expired.
    TokenExpired,
    /// The stream's task finished and its last event was sent.
    TaskFinished,
    /// Replay could not read the store; the client reconnects and retries.
    StoreUnavailable,
    /// An operator closed it (`DELETE /sse/connections/{id}`).
    Disconnected,
}

impl CloseReason {
    pub const ALL: [Self; 8] = [
        Self::ClientGone,
        Self::Slow,
        Self::Stale,
        Self::Shutdown,
        Self::TokenExpired,
        Self::TaskFinished,
        Self::StoreUnavailable,
        Self::Disconnected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientGone => "client_gone",
            Self::Slow => "slow",
            Self::Stale => "stale",
            Self::Shutdown => "shutdown",
            Self::TokenExpired => "token_expired",
            Self::TaskFinished => "task_finished",
            Self::StoreUnavailable => "store_unavailable",
            Self::Disconnected => "disconnected",
        }
    }
}

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

    pub fn last_event_id(&self) -> Option<EventId> {
        match self.last_event_id.load(Ordering::Relaxed) {
            0 => None,
            id => Some(EventId(id)),
        }
    }

    fn record_write(&self, frame: &OutboundFrame, lag: &prometheus::Histogram) {
        let now = now_ms();
        self.last_write_ms.store(now, Ordering::Relaxed);
        if let Some(id) = frame.event_id {
            self.events_sent.fetch_add(1, Ordering::Relaxed);
            self.last_event_id.store(id.0, Ordering::Relaxed);
        }
        if frame.published_at_ms > 0 {
            let lag_ms = (now - frame.published_at_ms).max(0);
            self.last_lag_ms.store(lag_ms, Ordering::Relaxed);
            lag.observe(lag_ms as f64 / 1000.0);
        }
    }
}

/// The `text/event-stream` response body of one stream.
///
/// A frame counts as written when actix takes it, which it does only while
/// its write buffer has room, so a client that stops reading stops "writes".
/// `abort` tears the connection down at once (slow or stale client), without
/// waiting for a stuck socket to drain the queue.
pub struct StreamBody {
    queue: mpsc::Receiver<OutboundFrame>,
    abort: Option<oneshot::Receiver<CloseReason>>,
    stats: Arc<ConnectionStats>,
    delivery_lag: prometheus::Histogram,
}

#[derive(Debug, thiserror::Error)]
#[error("stream closed by the broker: {}", .0.as_str())]
pub struct StreamAborted(CloseReason);

impl MessageBody for StreamBody {
    type Error = StreamAborted;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        if let Some(abort) = self.abort.as_mut() {
            match Pin::new(abort).poll(cx) {
                Poll::Ready(Ok(reason)) => return Poll::Ready(Some(Err(StreamAborted(reason)))),
                // The actor stopped without aborting: drain what is queued.
                Poll::Ready(Err(_)) => self.abort = None,
                Poll::Pending => {}
            }
        }
        match self.queue.poll_recv(cx) {
            Poll::Ready(Some(frame)) => {
                self.stats.record_write(&frame, &self.delivery_lag);
                Poll::Ready(Some(Ok(frame.bytes)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future as _;

/// The halves of a new stream: the body goes into the HTTP response, the
/// handle to the Registry and the actor.
pub struct StreamParts {
    pub body: StreamBody,
    pub queue: mpsc::Sender<OutboundFrame>,
    pub abort: oneshot::Sender<CloseReason>,
    pub stats: Arc<ConnectionStats>,
}

impl StreamParts {
    pub fn new(
        capacity: usize,
        resume_after: Option<EventId>,
        delivery_lag: prometheus::Histogram,
    ) -> Self {
        let (queue, receiver) = mpsc::channel(capacity);
        let (abort, abort_receiver) = oneshot::channel();
        let stats = Arc::new(ConnectionStats::new(resume_after));
        Self {
            body: StreamBody {
                queue: receiver,
                abort: Some(abort_receiver),
                stats: stats.clone(),
                delivery_lag,
            },
            queue,
            abort,
            stats,
        }
    }
}

pub struct Connection {
    pub id: ConnectionId,
    pub queue: mpsc::Sender<OutboundFrame>,
    pub abort: Option<oneshot::Sender<CloseReason>>,
    pub registry: Addr<Registry>,
    pub store: EventStore,
    pub subscription: Subscription,
    /// `Some` on a resume: replay stored events after this id first.
    pub resume_after: Option<EventId>,
    /// End the stream after the replay (the stream of a finished task).
    pub finish_after_replay: bool,
    /// Unix seconds: the stream closes then, so a revoked user stops reading.
    pub token_expires_at: Option<u64>,
    pub heartbeat: Duration,
    pub close_reason: CloseReason,
    pub metrics: Metrics,
    /// The plain-TCP socket under the stream, reset when the broker closes
    /// the stream, so a client that stopped reading loses it at once.
    pub socket: Option<StreamSocket>,
}

impl Connection {
    fn send_heartbeat(&mut self, ctx: &mut Context<Self>) {
        let frame = OutboundFrame::control(sse_frame::encode_control(
            "heartbeat",
            &json!({ "ts": now_ms() }),
        ));
        // Best effort: a full queue already proves the connection is alive
        // (a replay in progress, or a burst the Registry will judge).
        if let Err(mpsc::error::TrySendError::Closed(_)) = self.queue.try_send(frame) {
            self.close(CloseReason::ClientGone, ctx);
        }
    }

    fn close(&mut self, reason: CloseReason, ctx: &mut Context<Self>) {
        self.close_reason = reason;
        match reason {
            CloseReason::Slow
            | CloseReason::Stale
            | CloseReason::StoreUnavailable
            | CloseReason::Disconnected => {
                if let Some(abort) = self.abort.take() {
                    let _ = abort.send(reason);
                }
                self.release_socket();
            }
            CloseReason::Shutdown | CloseReason::TokenExpired => {
                let frame = if reason == CloseReason::Shutdown {
                    sse_frame::encode_control_with_retry(
                        "shutdown",
                        &json!({ "reason": "server_shutdown", "reconnect_after_ms": SHUTDOWN_RETRY.as_millis() as u64 }),
                        SHUTDOWN_RETRY,
                    )
                } else {
                    sse_frame::encode_control(
                        "token_expired",
                        &json!({ "reason": "token_expired" }),
                    )
                };
                if self.queue.try_send(OutboundFrame::control(frame)).is_err()
                    && let Some(abort) = self.abort.take()
                {
                    let _ = abort.send(reason);
                }
            }
            // The queued frames drain, then the body ends cleanly.
            CloseReason::ClientGone | CloseReason::TaskFinished => {}
        }
        ctx.stop();
    }

    /// Resets the socket if it is still this stream's. The body fails on its
    /// next poll, but a client that stopped reading is never polled again.
    fn release_socket(&mut self) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        // The body (the queue's receiver) lives as long as actix keeps the
        // connection, and both are dropped on this actor's thread, the
        // worker serving the connection: an open queue proves the
        // descriptor is still this connection's.
        if !self.queue.is_closed() {
            // SAFETY: see above.
            unsafe { socket.reset() };
        }
    }

    fn start_replay(&mut self, after: EventId, ctx: &mut Context<Self>) {
        let job = ReplayJob {
            connection_id: self.id,
            after,
            subscription: self.subscription.clone(),
            store: self.store.clone(),
            queue: self.queue.clone(),
            registry: self.registry.clone(),
        };
        let metrics = self.metrics.clone();
        ctx.spawn(job.run().into_actor(self).map(move |result, act, ctx| match result {
            Ok((replayed, task_ended)) => {
                metrics.replay_events().add(replayed, &[]);
                if act.finish_after_replay || (task_ended && act.subscription.task_id.is_some()) {
                    act.close(CloseReason::TaskFinished, ctx);
                }
            }
            Err(ReplayError::ClientGone) => act.close(CloseReason::ClientGone, ctx),
            Err(error) => {
                tracing::warn!(connection_id = %act.id, error.message = %error, "replay failed, closing stream");
                act.close(CloseReason::StoreUnavailable, ctx);
            }
        }));
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.heartbeat, Self::send_heartbeat);
        let queue = self.queue.clone();
        ctx.spawn(
            async move { queue.closed().await }
                .into_actor(self)
                .map(|(), act, ctx| {
                    if act.close_reason == CloseReason::ClientGone {
                        act.close(CloseReason::ClientGone, ctx);
                    }
                }),
        );
        if let Some(after) = self.resume_after {
            self.start_replay(after, ctx);
        }
        if let Some(expires_at) = self.token_expires_at {
            let remaining = Duration::from_secs(expires_at.saturating_sub(crate::auth::unix_now()));
            ctx.run_later(remaining, |act, ctx| {
                act.close(CloseReason::TokenExpired, ctx)
            });
        }
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> actix::Running {
        self.registry.do_send(Unregister {
            id: self.id,
            reason: self.close_reason,
        });
        actix::Running::Stop
    }
}

/// Close this stream for `reason`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Close {
    pub reason: CloseReason,
}

impl Handler<Close> for Connection {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        self.close(msg.reason, ctx);
    }
}

#[derive(Debug, thiserror::Error)]
enum ReplayError {
    #[error("client went away during replay")]
    ClientGone,
    #[error("event store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("registry unavailable")]
    Registry,
}

/// Register first, replay second, de-duplicate by id: the stream is already
/// registered (live events buffer in the Registry), so this reads the store
/// after `after` until caught up, then asks the Registry to hand over the
/// buffered live events whose ids it has not replayed.
struct ReplayJob {
    connection_id: ConnectionId,
    after: EventId,
    subscription: Subscription,
    store: EventStore,
    queue: mpsc::Sender<OutboundFrame>,
    registry: Addr<Registry>,
}

impl ReplayJob {
    #[tracing::instrument(name = "replay", skip_all, fields(connection_id = %self.connection_id, sse.replay.from_id = self.after.0, sse.replay.events))]
    /// Returns how many events were replayed and whether one of them ended
    /// the stream's task.
    async fn run(mut self) -> Result<(u64, bool), ReplayError> {
        let mut replayed = 0u64;
        let mut links = 0usize;
        let mut task_ended = false;
        let pruned_through = self.store.pruned_through().await?;
        if self.after < pruned_through {
            let frame = sse_frame::encode_control(
                "replay_truncated",
                &json!({ "last_event_id": self.after, "oldest_available_id": EventId(pruned_through.0 + 1) }),
            );
            self.push(OutboundFrame::control(frame)).await?;
        }
        loop {
            loop {
                let page = self
                    .store
                    .events_after(EventPage::for_subscription(
                        &self.subscription,
                        self.after,
                        REPLAY_PAGE,
                    ))
                    .await?;
                let fetched = page.len() as i64;
                for event in page {
                    let Some(id) = event.id else { continue };
                    self.after = id;
                    if self.subscription.matches(&event) {
                        task_ended |= event.ends_task();
                        if let Some(origin) = &event.trace_context
                            && links < MAX_REPLAY_LINKS
                            && crate::telemetry::traces_exported()
                        {
                            crate::telemetry::link_to(&tracing::Span::current(), origin);
                            links += 1;
                        }
                        self.push(OutboundFrame::replayed(
                            &event,
                            sse_frame::encode_event(&event),
                        ))
                        .await?;
                        replayed += 1;
                    }
                }
                if fetched < REPLAY_PAGE {
                    break;
                }
            }
            let hand_off = self
                .registry
                .send(ReplayCaughtUp {
                    id: self.connection_id,
                    last_replayed: self.after,
                })
                .await
                .map_err(|_| ReplayError::Registry)?;
            match hand_off {
                HandOff::Live => break,
                // Live events outran the hand-off buffer, or did not fit the
                // queue: they are stored, so read them from the store (after
                // the last frame actually queued) and hand off again.
                HandOff::Overflowed { queued_through } => {
                    self.after = self.after.max(queued_through);
                    continue;
                }
                HandOff::Gone => return Err(ReplayError::ClientGone),
            }
        }
        tracing::Span::current().record("sse.replay.events", replayed);
        Ok((replayed, task_ended))
    }

    async fn push(&self, frame: OutboundFrame) -> Result<(), ReplayError> {
        // Awaiting is fine here: only this stream waits for its own client.
        self.queue
            .send(frame)
            .await
            .map_err(|_| ReplayError::ClientGone)
    }
}
