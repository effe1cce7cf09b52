//! `EventService`: the broker's use cases, between the thin HTTP edge and the
//! actors. Publishing validates and hands events to the Persister; opening a
//! stream admits it in the Registry, then starts its Connection actor, which
//! replays from the store when resuming.

use std::time::Duration;

use actix::{Addr, AsyncContext};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    actors::{
        connection::{
            CloseReason, Connection, OutboundFrame, StreamBody, StreamParts, StreamSocket,
        },
        persister::{Persist, PersistError, Persister},
        registry::{
            self, ConnectionId, Register, RegisterError, Registry, UpdateSubscription,
            UpdateSubscriptionError,
        },
    },
    domain::{
        EventData, EventId, EventTypeCatalog, IdempotencyKey, NewEvent, ProjectId, Subscription,
        SubscriptionView, TaskRef, TypeFilter, UserId, event::EventError, now_ms,
    },
    store::EventStore,
    telemetry::Metrics,
};

/// The kernel send buffer a stream's socket may fill (Linux doubles the
/// value for its bookkeeping). Autotuning would let a client that stops
/// reading pile up to `tcp_wmem`'s maximum (4 MiB by default) before its
/// queue, and so the broker, notices; with this cap a stalled reader fills
/// the socket and its queue in seconds, while 64 KiB in flight still carries
/// thousands of events a second to a reader across an ocean.
const STREAM_SEND_BUFFER_BYTES: usize = 64 * 1024;

/// The `retry:` hint of the first frame: how long browsers wait to reconnect.
pub const RECONNECT_HINT: Duration = Duration::from_millis(3000);

/// One event as a publisher sends it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct PublishEvent {
    /// A built-in type or one from `--event-types`.
    #[schema(example = "progress_update")]
    pub event_type: String,
    /// Any JSON value; typed for `progress_update`/`progress` (needs
    /// `progress` 0–100) and `text` (needs a string `delta`). Absent = `{}`;
    /// an explicit `null` is carried as `null`.
    #[serde(default, deserialize_with = "present_value")]
    #[schema(value_type = Object)]
    pub data: Option<Value>,
    pub project_id: Option<String>,
    /// Private event: delivered only to streams authenticated as this user.
    pub user_id: Option<String>,
    pub task_id: Option<String>,
    /// `false`: delivered live only, not stored, no id. Default `true`.
    pub persist: Option<bool>,
    /// A repeat with the same key within 10 minutes is stored and delivered
    /// once and answers the first id.
    pub idempotency_key: Option<String>,
}

/// How a stream starts and ends, beyond its subscription.
#[derive(Debug, Default)]
pub struct StreamOptions {
    /// Replay stored events after this id first.
    pub resume_after: Option<EventId>,
    /// Unix seconds: close the stream then (token expiry).
    pub token_expires_at: Option<u64>,
    /// A frame sent right after `connected` (a task's current state).
    pub preamble: Option<bytes::Bytes>,
    /// End the stream once the replay is done (a finished task).
    pub finish_after_replay: bool,
    /// The authenticated user: counts against `--max-streams-per-user`.
    pub owner: Option<UserId>,
    /// The plain-TCP socket under the stream, when there is one of its own.
    pub socket: Option<StreamSocket>,
}

/// A field that is present is `Some`, even when it is `null` (plain
/// `Option<Value>` would turn `null` into `None`).
fn present_value<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

#[derive(Clone)]
pub struct EventService {
    persister: Addr<Persister>,
    registry: Addr<Registry>,
    store: EventStore,
    catalog: EventTypeCatalog,
    heartbeat: Duration,
    queue_capacity: usize,
    metrics: Metrics,
}

impl EventService {
    pub fn new(
        persister: Addr<Persister>,
        registry: Addr<Registry>,
        store: EventStore,
        catalog: EventTypeCatalog,
        heartbeat: Duration,
        queue_capacity: usize,
        metrics: Metrics,
    ) -> Self {
        Self {
            persister,
            registry,
            store,
            catalog,
            heartbeat,
            queue_capacity,
            metrics,
        }
    }

    pub fn catalog(&self) -> &EventTypeCatalog {
        &self.catalog
    }

    /// Parses and checks one event from `publisher` (the token's subject;
    /// `None` with authentication off), whose `idempotency_key` is scoped
    /// to that publisher and the event's project.
    pub fn prepare(
        &self,
        input: PublishEvent,
        publisher: Option<&UserId>,
    ) -> Result<NewEvent, EventError> {
        let event_type = self.catalog.resolve(&input.event_type)?;
        let data = EventData::validate(
            &event_type,
            input
                .data
                .unwrap_or_else(|| Value::Object(Default::default())),
        )?;
        let persist = input.persist.unwrap_or(true);
        let project_id = input
            .project_id
            .as_deref()
            .map(ProjectId::parse)
            .transpose()?;
        let idempotency_key = match input.idempotency_key {
            Some(_) if !persist => {
                return Err(EventError::InvalidPayload(
                    "idempotency_key needs a stored event; drop it or remove persist: false".into(),
                ));
            }
            Some(key) => Some(IdempotencyKey::scoped(
                &key,
                publisher,
                project_id.as_ref(),
            )?),
            None => None,
        };
        Ok(NewEvent {
            event_type,
            data,
            project_id,
            user_id: input.user_id.as_deref().map(UserId::parse).transpose()?,
            task_id: input.task_id.as_deref().map(TaskRef::parse).transpose()?,
            persist,
            idempotency_key,
            published_at_ms: now_ms(),
            trace_context: None,
        })
    }

    /// Stores (unless `persist: false`) and delivers the events, in order.
    /// Returns once they are stored and handed to the Registry.
    #[tracing::instrument(name = "publish", skip_all, fields(events = events.len()))]
    pub async fn publish(
        &self,
        mut events: Vec<NewEvent>,
    ) -> Result<Vec<Option<EventId>>, PersistError> {
        // This span's context travels with the events (store row, Redis
        // message), so delivery and replay anywhere join this trace.
        if let Some(parent) = crate::telemetry::current_traceparent() {
            for event in events.iter_mut().filter(|e| e.trace_context.is_none()) {
                event.trace_context = Some(parent.clone());
            }
        }
        self.persister
            .send(Persist { events })
            .await
            .map_err(|_| PersistError::ShuttingDown)?
    }

    /// Parses a comma-separated `event_types` list; empty means all types.
    pub fn parse_type_filter(&self, raw: Option<&str>) -> Result<TypeFilter, EventError> {
        let names: Vec<&str> = raw
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() {
            return Ok(TypeFilter::All);
        }
        let types = names
            .into_iter()
            .map(|name| self.catalog.resolve(name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TypeFilter::only(types))
    }

    pub fn view(&self, subscription: &Subscription) -> SubscriptionView {
        SubscriptionView {
            event_types: subscription.event_types.names(self.catalog.iter()),
            project_id: subscription.project_id.clone(),
        }
    }

    /// Admits a stream and starts its Connection actor. The first frame
    /// (`connected`, then `options.preamble`) is queued before registration
    /// so no live event can precede it; with `resume_after`, stored events
    /// after it are replayed before live ones, with no gap and no duplicate.
    #[tracing::instrument(name = "open_stream", skip_all, fields(connection_id, resume_after = options.resume_after.map(|id| id.0)))]
    pub async fn open_stream(
        &self,
        subscription: Subscription,
        options: StreamOptions,
    ) -> Result<(ConnectionId, StreamBody), RegisterError> {
        let id = ConnectionId::random();
        tracing::Span::current().record("connection_id", tracing::field::display(id));
        if let Some(socket) = options.socket {
            socket.limit_send_buffer(STREAM_SEND_BUFFER_BYTES);
        }
        let parts = StreamParts::new(
            self.queue_capacity + 2,
            options.resume_after,
            self.metrics.delivery_lag(),
        );
        let connected = registry::connected_frame(id, &self.view(&subscription), RECONNECT_HINT);
        for bytes in std::iter::once(connected).chain(options.preamble) {
            parts
                .queue
                .try_send(OutboundFrame::control(bytes))
                .expect("a new queue has room for its first frames");
        }
        let subscription_user = subscription.viewer.user_id.clone();
        let subscription_project = subscription.project_id.clone();
        let context = actix::Context::<Connection>::new();
        let address = context.address();
        self.registry
            .send(Register {
                id,
                queue: parts.queue.clone(),
                connection: address,
                stats: parts.stats.clone(),
                subscription: subscription.clone(),
                owner: options.owner.clone(),
                replaying: options.resume_after.is_some(),
            })
            .await
            .map_err(|_| RegisterError::ShuttingDown)??;
        context.run(Connection {
            id,
            queue: parts.queue,
            abort: Some(parts.abort),
            registry: self.registry.clone(),
            store: self.store.clone(),
            subscription,
            resume_after: options.resume_after,
            finish_after_replay: options.finish_after_replay,
            token_expires_at: options.token_expires_at,
            heartbeat: self.heartbeat,
            close_reason: CloseReason::ClientGone,
            metrics: self.metrics.clone(),
            socket: options.socket,
        });
        tracing::info!(
            connection_id = %id,
            user_id = subscription_user.as_ref().map(|u| u.as_str()),
            project_id = subscription_project.as_ref().map(|p| p.as_str()),
            resume_from = options.resume_after.map(|id| id.0),
            "stream opened"
        );
        Ok((id, parts.body))
    }

    /// Changes a live stream's filter.
    pub async fn update_subscription(
        &self,
        id: ConnectionId,
        event_types: TypeFilter,
        project_id: Option<ProjectId>,
        requester: Option<UserId>,
    ) -> Result<SubscriptionView, UpdateSubscriptionError> {
        self.registry
            .send(UpdateSubscription {
                id,
                event_types,
                project_id,
                requester,
            })
            .await
            .map_err(|_| UpdateSubscriptionError::UnknownConnection)?
    }
}
