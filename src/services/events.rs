//! `EventService`: publishing. It checks a publisher's events (type,
//! payload rules, identifiers, the scoped idempotency key) and hands them to
//! the Persister, which stores them and then routes them to the streams.

use actix::Addr;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    actors::persister::{Persist, PersistError, Persister},
    domain::{
        EventData, EventId, EventTypeCatalog, IdempotencyKey, NewEvent, ProjectId, TaskId, UserId,
        event::EventError, now_ms,
    },
};

/// One event as a publisher sends it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
// A misspelt field (`projectId`) must not pass unseen: ignored, it
// would send a tenant's event to every tenant.
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// A built-in type or one from `--event-types`.
    #[schema(example = "progress_update")]
    pub event_type: String,
    /// Any JSON value; typed for `progress_update`/`progress` (needs
    /// `progress` 0–100) and `text` (needs a string `delta`). Absent = `{}`;
    /// an explicit `null` is carried as `null`.
    #[serde(default, deserialize_with = "present_value")]
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
    catalog: EventTypeCatalog,
}

impl EventService {
    pub fn new(persister: Addr<Persister>, catalog: EventTypeCatalog) -> Self {
        Self { persister, catalog }
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
            task_id: input
                .task_id
                .as_deref()
                .map(|raw| {
                    TaskId::parse(raw)
                        .map(|task| task.as_ref_id())
                        .map_err(|_| EventError::InvalidTaskId)
                })
                .transpose()?,
            persist,
            idempotency_key,
            published_at_ms: now_ms(),
            trace_context: None,
            seq: None,
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
        let persisted = self
            .persister
            .send(Persist {
                events,
                tasks: Vec::new(),
            })
            .await
            .map_err(|_| PersistError::ShuttingDown)??;
        Ok(persisted.ids)
    }
}
