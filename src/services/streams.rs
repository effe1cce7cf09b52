//! `StreamService`: what a caller may watch, and the streams that watch it.
//!
//! [`StreamService::subscription`] is the one place that turns a caller and
//! what they asked for (types, project, a task) into a [`Subscription`]:
//! the event stream, the task stream and `/sse/history` all go through it,
//! so visibility is decided once. Opening a stream hands the subscription
//! to [`Connection::start`]; changing one goes to the Registry.
//!
//! A task's stream ([`StreamService::open_task`]) is one lifecycle in two
//! formats: the broker's events (`/tasks/{id}/events`) and the same stream
//! written as an AI SDK UI message stream ([`StreamService::open_task_messages`]).

use std::sync::LazyLock;

use actix::Addr;

mod ui_messages;

pub use ui_messages::OpenMessageError;

use crate::{
    actors::{
        connection::{Connection, StreamEnvironment, StreamOptions},
        redis_bridge::{RedisBridge, RenewClusterStream, UpdateClusterSubscription},
        registry::{
            RegisterError, Registry, RenewError, RenewToken, UpdateSubscription,
            UpdateSubscriptionError,
        },
    },
    auth::Principal,
    domain::{
        EventId, EventType, EventTypeCatalog, ProjectId, StoredEvent, Subscription,
        SubscriptionView, Task, TypeFilter, UserId, Viewer, event::EventError, rfc3339, sse_frame,
        task_json,
    },
    limits::StreamCharge,
    store::{EventCursor, EventPage, StoreError},
    stream::{ConnectionId, StreamBody, StreamFormat, StreamSocket, catch_up::TaskState},
};

/// About how much event data one `/sse/history` answer carries: a page of
/// 1,000 events of 60 KB would be 60 MB held for as long as its client
/// takes to read it. A heavier page ends early, with `next_after` set.
pub const HISTORY_PAGE_BYTES: usize = 1 << 20;

/// What a caller asks to watch; every field as given on the wire.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamRequest<'a> {
    /// Comma-separated event types; absent or empty = every type.
    pub event_types: Option<&'a str>,
    /// Only events of this project (absent or empty = no project filter).
    pub project_id: Option<&'a str>,
    /// With authentication off only: whose private events to receive
    /// (development use; an authenticated caller is its token's `sub`).
    pub user_id: Option<&'a str>,
}

/// Why a caller may not watch what they asked for.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("the token does not grant this project")]
    ProjectNotGranted,
}

#[derive(Clone)]
pub struct StreamService {
    environment: StreamEnvironment,
    catalog: EventTypeCatalog,
    /// Cluster mode: where a renewal for a stream elsewhere goes.
    cluster: Option<Addr<RedisBridge>>,
}

impl StreamService {
    pub fn new(environment: StreamEnvironment, catalog: EventTypeCatalog) -> Self {
        Self {
            environment,
            catalog,
            cluster: None,
        }
    }

    /// In cluster mode: renewals for streams of other instances go through
    /// `bridge`.
    pub fn with_cluster(mut self, bridge: Option<Addr<RedisBridge>>) -> Self {
        self.cluster = bridge;
        self
    }

    fn registry(&self) -> &Addr<Registry> {
        &self.environment.registry
    }

    /// The subscription of `principal` asking for `request`.
    pub fn subscription(
        &self,
        principal: &Principal,
        request: StreamRequest<'_>,
    ) -> Result<Subscription, SubscriptionError> {
        let (event_types, project_id) =
            self.filter(principal, request.event_types, request.project_id)?;
        let viewer = if principal.authenticated {
            principal.viewer()
        } else {
            Viewer {
                // Empty is unset, as an empty project_id is.
                user_id: request
                    .user_id
                    .filter(|user| !user.is_empty())
                    .map(UserId::parse)
                    .transpose()?,
                ..Viewer::anonymous()
            }
        };
        Ok(Subscription {
            event_types,
            project_id,
            task_id: None,
            viewer,
        })
    }

    /// The subscription of a task's stream: its events of the task's own
    /// types. The caller's access to the task is checked by the caller.
    pub fn task_subscription(&self, principal: &Principal, task: &Task) -> Subscription {
        // One filter shared by every task stream: a stream holds a reference
        // to it, not a set of its own.
        static TASK_STREAM_TYPES: LazyLock<TypeFilter> = LazyLock::new(|| {
            TypeFilter::only(
                Task::STREAM_EVENT_TYPES
                    .iter()
                    .map(|t| EventType::parse(t).expect("task event types are well formed")),
            )
        });
        Subscription {
            event_types: TASK_STREAM_TYPES.clone(),
            // Its task's project: every event of the task carries it, and
            // an operator of that project lists and drops the stream.
            project_id: task.project_id.clone(),
            task_id: Some(task.task_id.as_ref_id()),
            viewer: principal.viewer(),
        }
    }

    /// A stream's type filter and project filter, as `principal` may have
    /// them.
    fn filter(
        &self,
        principal: &Principal,
        event_types: Option<&str>,
        project_id: Option<&str>,
    ) -> Result<(TypeFilter, Option<ProjectId>), SubscriptionError> {
        let event_types = self.catalog.filter(event_types)?;
        let project_id = match project_id.filter(|p| !p.is_empty()) {
            None => None,
            Some(raw) => {
                let project = ProjectId::parse(raw)?;
                if !principal.may_access(&project) {
                    return Err(SubscriptionError::ProjectNotGranted);
                }
                Some(project)
            }
        };
        Ok((event_types, project_id))
    }

    /// Whether a resume of `subscription` after `after` has anything to
    /// send: a stored event after it, or a reset (`after` past every id the
    /// store gave: the stream replays from the store's start, see
    /// `stream::replay`). A finished task's resume with neither is answered
    /// 204.
    pub async fn has_missed(
        &self,
        subscription: &Subscription,
        after: EventId,
    ) -> Result<bool, StoreError> {
        let store = &self.environment.store;
        let page = EventPage::for_subscription(subscription, after, 1);
        if !store.events_after(page).await?.events.is_empty() {
            return Ok(true);
        }
        Ok(after > store.highest_given_id().await?)
    }

    /// Stored events after `after` that `subscription` may see, oldest
    /// first: at most `limit`, and no more pages than make about
    /// [`HISTORY_PAGE_BYTES`] of event data. Answers the id to go on from,
    /// unless the store has no more.
    pub async fn history(
        &self,
        subscription: &Subscription,
        after: EventId,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<EventId>), StoreError> {
        let mut cursor = EventCursor::for_subscription(
            self.environment.store.clone(),
            subscription,
            after,
            limit as i64,
        )
        // Store reads of a quarter of the answer each, each narrowed to
        // what is left by what the rows so far weighed: events of mixed
        // sizes may still take it somewhat past the bound.
        .weighing(HISTORY_PAGE_BYTES / 4);
        // Visibility is applied after the query, so read pages until the
        // answer is full, heavy enough, or the store is exhausted.
        let mut events = Vec::with_capacity(limit.min(64));
        let mut position = after;
        let mut heavy = false;
        while events.len() < limit && !cursor.is_exhausted() {
            let Some(left) = HISTORY_PAGE_BYTES.checked_sub(cursor.bytes_read()) else {
                heavy = true;
                break;
            };
            if left == 0 {
                heavy = true;
                break;
            }
            cursor.narrow_next_page(left);
            for event in cursor.next_page().await? {
                let Some(id) = event.id else { continue };
                if events.len() == limit {
                    break;
                }
                position = id;
                if subscription.matches(&event) {
                    events.push(event);
                }
            }
        }
        if heavy {
            // Rows read that did not decode still move the next page on.
            position = position.max(cursor.position());
        }
        // A full or heavy page may have a successor; a short one is the end.
        let next_after = (events.len() == limit || heavy).then_some(position);
        Ok((events, next_after))
    }

    /// Opens a stream of `subscription`; answers its id and response body.
    pub async fn open(
        &self,
        subscription: Subscription,
        options: StreamOptions,
    ) -> Result<(ConnectionId, StreamBody), RegisterError> {
        let view = SubscriptionView::of(&subscription, &self.catalog);
        Connection::start(&self.environment, subscription, &view, options).await
    }

    /// Opens the stream of `task` (which `principal` may see): its events
    /// after `after` rolled up (all of them from 0), its current state, then
    /// live events; it ends with the task.
    pub async fn open_task(
        &self,
        principal: &Principal,
        task: &Task,
        after: EventId,
        format: StreamFormat,
        socket: Option<StreamSocket>,
        charge: Option<StreamCharge>,
    ) -> Result<(ConnectionId, StreamBody), RegisterError> {
        let options = StreamOptions {
            resume_after: Some(after),
            token_expires_at: principal.expires_at,
            task_state: Some(task_state(task)),
            finish_after_replay: task.status.is_terminal(),
            owner: principal.owner(),
            socket,
            format,
            charge,
        };
        self.open(self.task_subscription(principal, task), options)
            .await
    }

    /// Changes a live stream's filter, for its owner.
    pub async fn update(
        &self,
        principal: &Principal,
        id: ConnectionId,
        event_types: Option<&str>,
        project_id: Option<&str>,
    ) -> Result<SubscriptionView, UpdateError> {
        let (event_types, project_id) = self.filter(principal, event_types, project_id)?;
        let update = || UpdateSubscription {
            id,
            event_types: event_types.clone(),
            project_id: project_id.clone(),
            requester: principal.user_id.clone(),
        };
        let here = self
            .registry()
            .send(update())
            .await
            .map_err(|_| UpdateSubscriptionError::UnknownConnection)?;
        // A stream on another instance of the cluster: asked there (no
        // sticky sessions needed).
        let view = match (here, &self.cluster) {
            (Err(UpdateSubscriptionError::UnknownConnection), Some(bridge)) => bridge
                .send(UpdateClusterSubscription(update()))
                .await
                .map_err(|_| UpdateSubscriptionError::UnknownConnection)??,
            (here, _) => here?,
        };
        Ok(view)
    }
}

impl StreamService {
    /// A fresh token for a live stream of this instance, from its subject:
    /// the stream then lives until the new token's expiry.
    /// In cluster mode a stream not found here is looked for on the other
    /// instances.
    pub async fn renew_token(
        &self,
        principal: &Principal,
        id: ConnectionId,
    ) -> Result<(), RenewError> {
        let renewal = || RenewToken {
            id,
            user_id: principal.user_id.clone(),
            projects: principal.projects.clone(),
            expires_at: principal.expires_at,
        };
        let here = self
            .registry()
            .send(renewal())
            .await
            .map_err(|_| RenewError::NotFound)?;
        match (here, &self.cluster) {
            (Err(RenewError::NotFound), Some(bridge)) => bridge
                .send(RenewClusterStream(renewal()))
                .await
                .map_err(|_| RenewError::NotFound)?,
            (here, _) => here,
        }
    }
}

/// Why a subscription change was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    #[error(transparent)]
    Registry(#[from] UpdateSubscriptionError),
}

/// A task's state as its stream opens with it.
fn task_state(task: &Task) -> TaskState {
    TaskState {
        frame: sse_frame::encode_control("progress", &task_json(task)),
        updated_at: rfc3339(task.updated_at_ms),
        created_at_ms: task.created_at_ms,
        end: crate::domain::end_of(task),
    }
}
