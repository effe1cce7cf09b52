//! The broker's integration tests, from outside the process, over real HTTP.
//!
//! One binary, not one per file: every `tests/*.rs` file would be linked
//! (with actix, diesel and reqwest) as its own executable, and cargo runs
//! those one after another. A single binary links once and runs every test
//! on the harness's thread pool. The shared helpers live in `helpers/`.

mod agent_producer;
mod agent_steps;
mod assets;
mod auth;
mod bad_input;
mod browser;
mod cluster;
mod coalescing;
mod config;
mod diagnose;
mod early_answers;
mod error_format;
mod generations;
mod generations_edges;
mod health_rules;
mod heavy_pages;
mod helpers;
mod janitor;
mod monitoring_guide;
mod observability;
mod operator_assets;
mod orphans;
mod otlp;
mod pipelining;
mod producers;
mod prometheus;
mod provider_streams;
mod proxies;
mod publish;
mod readme_walkthrough;
mod reasoning;
mod redis_health;
mod replay;
mod restart;
mod shutdown;
mod slow_clients;
mod sockets;
mod store_timeouts;
mod streams;
mod tasks;
mod tls;
mod tool_calls;
mod ui_message_stream;
mod wide_numbers;
mod write_delay;
