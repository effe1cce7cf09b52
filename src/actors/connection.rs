//! `Connection`: one actor per open stream.
//!
//! [`Connection::start`] admits a stream and starts its actor: it queues
//! the stream's first frame (`connected`), so
//! no live event can precede them, registers the stream with the Registry
//! (which from then on fills its queue with shared, pre-encoded frames) and
//! runs the actor on the worker serving the connection. The actor adds its
//! own heartbeats and, on a resume, runs the replay of the hand-off
//! (`stream::hand_off`). It closes the stream when the client is gone, when
//! it is told to (slow, stale, shutdown, an operator) or when its token
//! expires, and deregisters in `stopping`, whatever the reason.

use std::{sync::Arc, time::Duration};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, WrapFuture,
};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::registry::{Register, RegisterError, Registry, Unregister};
use crate::{
    domain::{EventId, Subscription, SubscriptionView, UserId, now_ms, sse_frame},
    limits::StreamCharge,
    store::EventStore,
    stream::{
        Close, CloseReason, ConnectionId, ConnectionStats, Greeting, OutboundFrame, RecentFrames,
        StreamBody, StreamFormat, StreamParts, StreamSocket,
        catch_up::TaskState,
        replay::{REPLAY_STALL, ReplayBudget, ReplayError, ReplayJob},
    },
    telemetry::Metrics,
};

/// The `retry:` hint of the first frame: how long browsers wait to reconnect.
pub const RECONNECT_HINT: Duration = Duration::from_millis(3000);
/// The `retry:` hint sent with `shutdown`: reconnect soon, to another instance.
pub const SHUTDOWN_RETRY: Duration = Duration::from_millis(1000);
/// The kernel send buffer a stream's socket may fill (Linux doubles the
/// value for its bookkeeping). Autotuning would let a client that stops
/// reading pile up to `tcp_wmem`'s maximum (4 MiB by default) before its
/// queue, and so the broker, notices; with this cap a stalled reader fills
/// the socket and its queue in seconds, while 64 KiB in flight still carries
/// thousands of events a second to a reader across an ocean.
const STREAM_SEND_BUFFER_BYTES: usize = 64 * 1024;

/// What every stream of an instance shares.
#[derive(Clone)]
pub struct StreamEnvironment {
    pub registry: Addr<Registry>,
    pub store: EventStore,
    /// The recently routed frames a resume is served from.
    pub recent: RecentFrames,
    /// The instance's replay slots (`stream::replay::REPLAYS_AT_ONCE`).
    pub replay_slots: Arc<tokio::sync::Semaphore>,
    pub heartbeat: Duration,
    pub queue_capacity: usize,
    /// `--write-delay-ms`: see `stream::body`.
    pub write_delay: Duration,
    /// `token_expiring` goes out this long before a stream's token expires.
    pub token_refresh: Duration,
    /// `--retention`: a task younger than this has all its events.
    pub retention: Duration,
    pub metrics: Metrics,
}

/// How a stream starts and ends, beyond its subscription.
#[derive(Debug, Default)]
pub struct StreamOptions {
    /// Replay stored events after this id first.
    pub resume_after: Option<EventId>,
    /// Unix seconds: close the stream then (token expiry).
    pub token_expires_at: Option<u64>,
    /// A task stream's state when it opened: sent after the text it missed
    /// (see `stream::catch_up`).
    pub task_state: Option<TaskState>,
    /// End the stream once the replay is done (a finished task).
    pub finish_after_replay: bool,
    /// The authenticated user: counts against `--max-streams-per-user`.
    pub owner: Option<UserId>,
    /// The plain-TCP socket under the stream, when there is one of its own.
    pub socket: Option<StreamSocket>,
    /// How the client reads it (the log line's and the open counter's label).
    pub format: StreamFormat,
    /// What the stream costs against the stream rate limits, paid once the
    /// Registry admits it.
    pub charge: Option<StreamCharge>,
}

pub struct Connection {
    id: ConnectionId,
    queue: mpsc::Sender<OutboundFrame>,
    abort: Option<oneshot::Sender<CloseReason>>,
    environment: StreamEnvironment,
    subscription: Subscription,
    /// `Some` on a resume: replay stored events after this id first.
    resume_after: Option<EventId>,
    /// End the stream after the replay (the stream of a finished task).
    finish_after_replay: bool,
    /// Its counters, and its token's expiry: the stream closes then, so a
    /// revoked user stops reading, unless a renewal moved it later.
    stats: Arc<ConnectionStats>,
    /// The expiry `token_expiring` was sent for (0: none yet).
    warned_for: u64,
    close_reason: CloseReason,
    /// A task stream's current state, sent by its replay after the text.
    task_state: Option<TaskState>,
    /// The plain-TCP socket under the stream, reset when the broker closes
    /// the stream, so a client that stopped reading loses it at once.
    socket: Option<StreamSocket>,
}

impl Connection {
    /// Admits a stream and starts its actor on the current worker; answers
    /// its id and the response body. `view` is what its `connected` frame
    /// tells the client about its subscription.
    #[tracing::instrument(name = "open_stream", skip_all, fields(connection_id, resume_after = options.resume_after.map(|id| id.0), format = options.format.as_str()))]
    pub async fn start(
        environment: &StreamEnvironment,
        subscription: Subscription,
        view: &SubscriptionView,
        options: StreamOptions,
    ) -> Result<(ConnectionId, StreamBody), RegisterError> {
        let id = ConnectionId::random();
        tracing::Span::current().record("connection_id", tracing::field::display(id));
        if let Some(socket) = options.socket {
            socket.limit_send_buffer(STREAM_SEND_BUFFER_BYTES);
        }
        let parts = StreamParts::new(
            environment.queue_capacity + 2,
            options.resume_after,
            environment.metrics.stream_body(),
            environment.write_delay,
        );
        parts.stats.set_token_expires_at(options.token_expires_at);
        let greeting = Greeting::new(
            json!({ "connection_id": id, "event_types": view.event_types, "project_id": view.project_id }),
            RECONNECT_HINT,
            options.resume_after.is_none() && subscription.task_id.is_none(),
        );
        let context = Context::<Self>::new();
        let registering = Registering {
            id,
            registry: Some(&environment.registry),
        };
        environment
            .registry
            .send(Register {
                id,
                queue: parts.queue.clone(),
                connection: context.address().recipient(),
                stats: parts.stats.clone(),
                subscription: subscription.clone(),
                owner: options.owner.clone(),
                resuming: options.resume_after.is_some(),
                format: options.format,
                greeting,
                charge: options.charge,
            })
            .await
            .map_err(|_| RegisterError::ShuttingDown)??;
        registering.done();
        tracing::info!(
            connection_id = %id,
            user_id = subscription.viewer.user_id.as_ref().map(|u| u.as_str()),
            project_id = subscription.project_id.as_ref().map(|p| p.as_str()),
            task_id = subscription.task_id.as_ref().map(|t| t.as_str()),
            resume_from = options.resume_after.map(|id| id.0),
            format = options.format.as_str(),
            "stream opened"
        );
        context.run(Self {
            id,
            queue: parts.queue,
            abort: Some(parts.abort),
            environment: environment.clone(),
            subscription,
            resume_after: options.resume_after,
            finish_after_replay: options.finish_after_replay,
            stats: parts.stats.clone(),
            warned_for: 0,
            close_reason: CloseReason::ClientGone,
            task_state: options.task_state,
            socket: options.socket,
        });
        Ok((id, parts.body))
    }

    fn send_heartbeat(&mut self, ctx: &mut Context<Self>) {
        // A client stuck in the middle of a large frame (a task's rolled-up
        // text) takes nothing more, and the frame is all in memory: it is
        // slow, as a replay's client that takes none of it.
        if let Some(since) = self.stats.stuck_mid_frame_since_ms()
            && now_ms() - since >= REPLAY_STALL.as_millis() as i64
        {
            tracing::info!(connection_id = %self.id, stall_secs = REPLAY_STALL.as_secs(), "the client read nothing of a large frame in time: closed as slow");
            return self.close(CloseReason::Slow, ctx);
        }
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
            reason if reason.aborts() => {
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
            _ => {}
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

    /// Closes the stream when its token expires, and says so
    /// `--token-refresh-secs` before (`token_expiring`), so the client can
    /// send a fresh token. The expiry is read again at each wake: a renewal
    /// only moves it in the stream's stats, and this follows.
    fn watch_token(&mut self, ctx: &mut Context<Self>) {
        let Some(expires_at) = self.stats.token_expires_at() else {
            return;
        };
        let now = crate::auth::unix_now();
        if now >= expires_at {
            self.close(CloseReason::TokenExpired, ctx);
            return;
        }
        let warn_at = expires_at.saturating_sub(self.environment.token_refresh.as_secs());
        if now >= warn_at && self.warned_for != expires_at {
            self.warned_for = expires_at;
            let frame =
                sse_frame::encode_control("token_expiring", &json!({ "expires_at": expires_at }));
            // Best effort: a full queue means a burst, and the close at the
            // expiry still comes.
            let _ = self.queue.try_send(OutboundFrame::control(frame));
        }
        let next = if self.warned_for == expires_at {
            // A renewal moves the expiry without a word to this actor: look
            // again within a quarter of the warning window, so the new
            // token's warning comes at most that late, not at the old
            // expiry (which may be nearly the new one's).
            let look_again = (self.environment.token_refresh.as_secs() / 4).max(1);
            expires_at.min(now + look_again)
        } else {
            warn_at
        };
        ctx.run_later(
            Duration::from_secs(next.saturating_sub(now).max(1)),
            Self::watch_token,
        );
    }

    fn start_replay(&mut self, after: EventId, ctx: &mut Context<Self>) {
        let job = ReplayJob {
            connection_id: self.id,
            after,
            subscription: self.subscription.clone(),
            store: self.environment.store.clone(),
            recent: self.environment.recent.clone(),
            slots: self.environment.replay_slots.clone(),
            queue: self.queue.clone(),
            registry: self.environment.registry.clone().recipient(),
            task_state: self.task_state.take(),
            retention: self.environment.retention,
            budget: ReplayBudget::default(),
        };
        ctx.spawn(job.run().into_actor(self).map(|result, act, ctx| match result {
            Ok(replayed) => {
                act.environment.metrics.record_replayed(&replayed);
                let task_stream = act.subscription.task_id.is_some();
                if act.finish_after_replay || (replayed.task_ended && task_stream) {
                    act.close(CloseReason::TaskFinished, ctx);
                }
            }
            Err(ReplayError::ClientGone) => act.close(CloseReason::ClientGone, ctx),
            Err(ReplayError::Stalled) => {
                tracing::info!(connection_id = %act.id, stall_secs = REPLAY_STALL.as_secs(), "the client read none of its replay in time: closed as slow");
                act.close(CloseReason::Slow, ctx);
            }
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
        ctx.run_interval(self.environment.heartbeat, Self::send_heartbeat);
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
        self.watch_token(ctx);
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> actix::Running {
        self.environment.registry.do_send(Unregister {
            id: self.id,
            reason: self.close_reason,
        });
        actix::Running::Stop
    }
}

/// A registration in flight. A client that closes its connection while
/// the Registry is admitting its stream makes actix drop the request's
/// handler, and with it the actor that was about to run: the Registry
/// would then keep a stream no actor will ever close or deregister (it
/// holds a place under `--max-connections` and the user's cap for good).
/// Dropped before [`Registering::done`], it deregisters the stream.
struct Registering<'a> {
    id: ConnectionId,
    registry: Option<&'a Addr<Registry>>,
}

impl Registering<'_> {
    fn done(mut self) {
        self.registry = None;
    }
}

impl Drop for Registering<'_> {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.take() {
            // After the `Register` in the Registry's mailbox, or in place of
            // one never delivered: an unknown id is a no-op.
            registry.do_send(Unregister {
                id: self.id,
                reason: CloseReason::ClientGone,
            });
        }
    }
}

impl Handler<Close> for Connection {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        self.close(msg.reason, ctx);
    }
}
