//! `AppState`: what the HTTP edge reaches. The services carry every use
//! case; the authenticator and the rate limits are what the extractors
//! check before a handler runs. No actor, store or setting is reachable
//! from a handler except through a service.

use std::sync::Arc;

use crate::{
    auth::Authenticator,
    limits::RateLimits,
    services::{
        events::EventService, operations::OperationsService, streams::StreamService,
        tasks::TaskService,
    },
};

#[derive(Clone)]
pub struct AppState {
    pub events: EventService,
    pub streams: StreamService,
    pub tasks: TaskService,
    pub operations: OperationsService,
    pub auth: Authenticator,
    pub limits: Arc<RateLimits>,
}
