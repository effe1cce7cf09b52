//! The supervision tree and who sends what to whom.
//!
//! ```text
//! Persister ──Route──▶ Registry ──try_send(frame)──▶ Connection queue ──▶ HTTP body
//!    ▲                   ▲  │ ▲                          ▲
//!  Persist          Register │ └─ Unregister (stopping)   │ Close{Stale|Slow|Shutdown}
//!  (EventService)   (streams)│                            │
//!                            └──FindStale◀── Janitor ─────┘
//! ```
//!
//! - [`registry::Registry`] owns the set of live connections and their
//!   filters, encodes each event once and hands the same bytes to every
//!   matching queue without ever awaiting a consumer.
//! - [`connection::Connection`] is one actor per open stream: heartbeat,
//!   replay on resume, counters, and the close of its own stream.
//! - [`janitor::Janitor`] closes stale streams in batches.
//! - [`persister::Persister`] group-commits published events to the store,
//!   then routes them: stored before delivered.
//! - [`task_reaper::TaskReaper`] fails tasks whose producer went silent.
//! - [`redis_bridge::RedisBridge`] (cluster mode) publishes committed
//!   batches to Redis and routes what every instance published, in id order.
//! - `heap_trimmer::HeapTrimmer` (Linux) hands the memory the allocator
//!   holds free back to the system and reports how much it holds.
//! - [`live_tasks::LiveTasks`] owns the state of the tasks being written to:
//!   every task write goes through it, text coalesced into one event per
//!   flush, group-committed with the task's row.
//!
//! The health sampler lives with the rest of monitoring (`crate::monitoring`).
//! [`home::ActorHome`] decides which thread the delivery path's actors run
//! on.

pub mod connection;
#[cfg(target_os = "linux")]
pub mod heap_trimmer;
pub mod home;
pub mod janitor;
pub mod live_tasks;
pub mod persister;
pub mod redis_bridge;
pub mod registry;
pub mod task_reaper;
