//! Monitoring: what an instance says about itself.
//!
//! - [`snapshot`]: the instance's state at one moment ([`Snapshot`]), read
//!   from its [`Sources`] without waiting on any actor.
//! - [`rules`]: the health rules, `healthy` / `degraded` / `unhealthy` and
//!   the alerts and warnings behind it.
//! - [`documents`]: `/health`, `/sse/stats` and `/sse/monitoring` as typed
//!   documents.
//! - [`sampler`]: the [`HealthSampler`], which takes the census of every
//!   stream once a second and writes the health gauges.

pub mod documents;
mod rules;
mod sampler;
mod snapshot;

pub use rules::{Finding, HealthIndicators, OverallHealth, STORE_FAILURE_HOLD, StoreFailing};
pub use sampler::HealthSampler;
pub use snapshot::{Census, JwksState, Snapshot, Sources};
