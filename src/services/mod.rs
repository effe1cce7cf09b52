//! The broker's use cases, between the thin HTTP edge and the actors and
//! store: each handler authenticates, parses, makes one call here and maps
//! the answer.
//!
//! - [`events`]: publishing (validate, scope idempotency keys, store, route).
//! - [`streams`]: who may watch what ([`streams::StreamService::subscription`]),
//!   opening and changing streams.
//! - [`tasks`]: the task API (progress, AI text, completion, orphans).
//! - [`uploads`]: one upload per generation, applied line by line as it
//!   arrives; `upload_reader` splits its body into instructions,
//!   [`upload_memory`] bounds what all uploads hold in unfinished lines,
//!   [`generation_input`] reads NDJSON lines and [`provider_events`] the
//!   events of a provider's or the AI SDK's stream.
//! - [`operations`]: health, figures, the monitoring document, listing and
//!   dropping streams, cleanup runs, metrics.

mod answer_part_lines;
pub mod events;
pub mod generation_input;
pub mod operations;
pub mod provider_events;
pub mod streams;
mod surrogate_pairs;
pub mod tasks;
mod tool_lines;
mod upload_body;
mod upload_counts;
mod upload_error;
mod upload_halves;
mod upload_held;
pub mod upload_memory;
mod upload_message_metadata;
mod upload_pulse;
mod upload_reader;
mod upload_rules;
mod upload_shape;
mod upload_steps;
mod upload_stop;
mod upload_text_parts;
pub mod uploads;
