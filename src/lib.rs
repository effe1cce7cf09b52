//! sse-broker: an actor-based Server-Sent Events broker.
//!
//! # Layout
//!
//! - [`cli`], [`config`]: the command line and the one typed [`config::Settings`].
//! - [`app`]: [`app::Application`] builds store, actors and HTTP server; [`shutdown`] drains them.
//! - [`state`]: [`state::AppState`], what the HTTP edge reaches: the services.
//! - [`domain`]: events, ids, subscriptions, tasks, the SSE frame encoder and parser,
//!   the AI SDK UI message stream's parts; no I/O.
//! - [`services`]: the use cases between HTTP and actors: publishing, streams
//!   (who may watch what), tasks.
//! - [`actors`]: Registry, Connection (one per stream), Janitor, Persister, RedisBridge,
//!   TaskReaper, HealthSampler.
//! - [`store`]: the event store (SQLite or PostgreSQL); the only SQL.
//! - [`stream`]: one open stream's own types (id, frames, counters, body, socket,
//!   close reasons, wire format) and the resume hand-off; imports no actor.
//! - [`http`]: the thin actix-web edge, the route table, and the server whose head guard
//!   checks every request head; [`error`] maps every error to HTTP (also library ones).
//! - [`monitoring`]: the monitoring document and health rules.
//! - [`telemetry`]: logs, OTLP traces and metrics, Prometheus `/metrics`.
//! - [`auth`]: JWT verification (static keys, JWKS by `kid`), claims, token minting.
//! - [`limits`]: per-address and per-user rate limits (429).
//! - [`demo`]: the simulated AI producer behind the demo page.
//!
//! # Actor tree
//!
//! ```text
//! System arbiter: Registry ◀── Persister (group commit → Route)
//!                    ▲  ▲
//!                    │  └── Janitor (FindStale → Close{Stale})
//!   HTTP workers: Connection × N (one per stream: heartbeat, replay, close)
//! ```

pub mod actors;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod limits;
pub mod monitoring;
pub mod services;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod stream;
pub mod telemetry;

// Events and frames are made on the actors' thread and freed on an HTTP
// worker's (and uploads the other way round): glibc's malloc serves such
// memory through its arena locks and slow paths (a tenth of the broker's
// CPU on the token path). jemalloc's thread caches take it back cheaply, at
// the same memory per idle stream (docs/performance.md, seventh sitting).
// Declared here, not in `main.rs`, so the tests run on the allocator the
// broker runs on.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
