//! Presence: every instance writes its connection count to Redis (with an
//! expiry, so a dead instance drops out), reads everyone's for the cluster
//! totals, and reads back its own to check the write stuck.

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use redis::AsyncCommands;

use std::time::Duration;

use super::{InstancePresence, RedisBridge, wire::PresenceRecord};

/// How often this instance writes its connection count; it expires after
/// three missed writes, so a dead instance drops out of cluster totals.
pub(super) const PRESENCE_PERIOD: Duration = Duration::from_secs(2);
const PRESENCE_TTL_SECS: u64 = 6;
/// The longest a presence refresh may take before it counts as failed.
const PRESENCE_REFRESH_LIMIT: Duration = PRESENCE_PERIOD.saturating_mul(5);
use crate::{actors::registry::ActiveConnections, domain::now_ms, telemetry::LogThrottle};

/// Who wrote the record under this instance's id.
struct OwnRecord {
    writer: Option<u64>,
    store: Option<i64>,
}

/// What one presence refresh read and wrote.
struct PresenceRead {
    /// Every instance's record, this one's included.
    records: Vec<PresenceRecord>,
    /// This instance's record as read before the write: its count, and who
    /// wrote it.
    own: Option<(usize, OwnRecord)>,
    /// The count written.
    written: usize,
}

impl RedisBridge {
    pub(super) fn refresh_presence(&mut self, ctx: &mut Context<Self>) {
        if self.presence_refreshing {
            return;
        }
        let Some(publisher) = self.publisher.clone() else {
            return;
        };
        self.presence_refreshing = true;
        let registry = self.registry.clone();
        let instance_id = self.instance_id.clone();
        let prefix = self.presence_prefix.clone();
        let epoch = self.link_epoch;
        let store = self.strangers.own_store();
        let writer = self.strangers.own_writer();
        let refresh = async move {
            let active = registry.send(ActiveConnections).await.unwrap_or(0);
            let mut connection = publisher;
            let own = PresenceRecord {
                presence: InstancePresence {
                    instance_id: instance_id.clone(),
                    active_connections: active,
                    updated_at_ms: now_ms(),
                },
                store,
                writer: Some(writer),
            };
            let key = format!("{prefix}{instance_id}");
            // What the cluster has believed about us since the last write:
            // an evicted key, or another instance writing under our id,
            // shows up here as a count that is not ours.
            let seen: Option<String> = connection.get(&key).await?;
            let seen = seen
                .and_then(|raw| serde_json::from_str::<PresenceRecord>(&raw).ok())
                .map(|record| {
                    let own = OwnRecord {
                        writer: record.writer,
                        store: record.store,
                    };
                    (record.presence.active_connections, own)
                });
            let body = serde_json::to_string(&own).unwrap_or_default();
            connection
                .set_ex::<_, _, ()>(&key, body, PRESENCE_TTL_SECS)
                .await?;
            let mut keys: Vec<String> = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{prefix}*"))
                    .arg("COUNT")
                    .arg(100)
                    .query_async(&mut connection)
                    .await?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            let values: Vec<Option<String>> = if keys.is_empty() {
                Vec::new()
            } else {
                redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await?
            };
            let instances: Vec<PresenceRecord> = values
                .into_iter()
                .flatten()
                .filter_map(|v| serde_json::from_str(&v).ok())
                .collect();
            Ok::<_, redis::RedisError>(PresenceRead {
                records: instances,
                own: seen,
                written: active,
            })
        };
        // A refresh stuck on a stalled link must not hold off every later
        // one: past the limit it counts as a failed one.
        let bounded = async move {
            tokio::time::timeout(PRESENCE_REFRESH_LIMIT, refresh)
                .await
                .unwrap_or_else(|_| {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "presence refresh timed out",
                    )))
                })
        };
        ctx.spawn(bounded.into_actor(self).map(move |result, act, _| {
            act.presence_refreshing = false;
            act.record_presence(result, epoch);
        }));
    }

    fn record_presence(&mut self, result: Result<PresenceRead, redis::RedisError>, epoch: u64) {
        match result {
            Ok(PresenceRead {
                records,
                own: seen,
                written,
            }) => {
                let unbroken = self.link_epoch == epoch;
                let previous = self
                    .last_written
                    .filter(|(_, written_in)| unbroken && *written_in == epoch);
                let seen = seen.map(|(count, own)| {
                    // Another deployment's instance under our id is noted
                    // as such, and as another process with our id.
                    let foreign = !self.strangers.admit(own.store, &self.instance_id);
                    // Otherwise only a record this process wrote at its last
                    // refresh, since overwritten, tells of another process:
                    // the one a new process finds first may be its
                    // predecessor's (a restart under the same id, within the
                    // record's expiry).
                    if foreign || previous.is_some() {
                        self.strangers
                            .own_record_read(own.writer, &self.instance_id);
                    }
                    count
                });
                // Another deployment's instances are not this cluster's.
                let mut instances: Vec<InstancePresence> = records
                    .into_iter()
                    .filter(|record| {
                        self.strangers
                            .admit(record.store, &record.presence.instance_id)
                    })
                    .map(|record| record.presence)
                    .collect();
                instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
                self.instances = instances;
                // Compare what Redis held with what we wrote there
                // last, only when both happened on one unbroken
                // link; then a missing key was evicted or expired
                // and counts as zero.
                self.presence_taken();
                match previous {
                    Some((previous, _)) => {
                        let held = seen.unwrap_or(0);
                        self.own_record_read(previous, held);
                        self.own_written_count = Some(previous);
                        self.own_redis_count = Some(held);
                    }
                    None => {
                        self.own_written_count = None;
                        self.own_redis_count = seen;
                    }
                }
                self.last_written = unbroken.then_some((written, epoch));
            }
            // Redis answered, refusing the write: the link is up (events
            // still flow), and reconnecting would change nothing.
            Err(error) if error.code().is_some() => self.presence_refused(error.to_string()),
            Err(error) => self.mark_down(format!("presence update failed: {error}")),
        }
    }

    /// Compares what this instance's record held with what it had written
    /// there (one unbroken link between), and says when they part.
    fn own_record_read(&mut self, written: usize, held: usize) {
        if written == held {
            if self.own_record_misses >= 2 {
                tracing::info!(
                    written,
                    "this instance's presence record in Redis holds again"
                );
            }
            self.own_record_misses = 0;
            return;
        }
        self.own_record_misses += 1;
        let misses = self.own_record_misses;
        // A flush or a lost key is rewritten at once: said once; a record
        // that does not stick is what /health reports, said each minute.
        if misses == 2 {
            tracing::error!(
                written,
                in_redis = held,
                "this instance's presence record in Redis did not hold what it wrote, twice in a \
                 row: evicted (maxmemory), expired, or written by another process under this \
                 --instance-id; the cluster miscounts this instance's streams (/health reports \
                 connection_mismatch once the gap passes --health-mismatch-tolerance)"
            );
        } else if let Some(held_back) = MISSED_RECORD_LOG.due() {
            tracing::warn!(
                written,
                in_redis = held,
                consecutive = misses,
                held_back,
                "this instance's presence record in Redis did not hold what it wrote (a flush, \
                 an eviction, or another process under this --instance-id); written again"
            );
        }
    }

    /// Redis refused the presence write with `reason`: nothing to compare
    /// until it takes one again.
    fn presence_refused(&mut self, reason: String) {
        if let Some(held_back) = REFUSED_LOG.due() {
            tracing::warn!(
                reason = %reason,
                held_back,
                "redis refuses this instance's presence writes (the link is up, events flow): \
                 cluster totals and the connection check are stale until it takes them"
            );
        }
        self.presence_refused = Some(reason);
        self.last_written = None;
        self.own_written_count = None;
        self.own_redis_count = None;
        self.own_record_misses = 0;
        self.publish_status();
    }

    /// A presence write went through.
    fn presence_taken(&mut self) {
        if self.presence_refused.take().is_some() {
            tracing::info!("redis takes this instance's presence writes again");
        }
    }
}

/// The presence lines that may repeat at every refresh (every 2 s).
static MISSED_RECORD_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(60));
static REFUSED_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(60));
