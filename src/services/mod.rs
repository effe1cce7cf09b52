//! The broker's use cases, between the thin HTTP edge and the actors and
//! store: each handler authenticates, parses, makes one call here and maps
//! the answer.
//!
//! - [`events`]: publishing (validate, scope idempotency keys, store, route).
//! - [`streams`]: who may watch what ([`streams::StreamService::subscription`]),
//!   opening and changing streams.
//! - [`tasks`]: the task API (progress, AI text, completion, orphans).
//! - [`uploads`]: one upload per generation, applied line by line as it
//!   arrives; `upload_reader` splits its body into instructions and
//!   [`generation_input`] reads its three formats.
//! - [`operations`]: health, figures, the monitoring document, listing and
//!   dropping streams, cleanup runs, metrics.

pub mod events;
pub mod generation_input;
pub mod operations;
pub mod streams;
pub mod tasks;
mod upload_reader;
pub mod uploads;
