//! The operators' questions to the Registry: listings, figures, stale
//! streams for the Janitor, and dropping one stream.

use actix::{Context, Handler, Message, MessageResult, Recipient};

use super::{
    Registry,
    stats::{ConnectionPage, HOUR_MS, RegistryStats},
    table::Entry,
};
use crate::{
    domain::{ProjectAccess, UserId, now_ms},
    stream::{Close, CloseReason, ConnectionId},
};

/// A page of live streams, oldest first.
#[derive(Debug, Message)]
#[rtype(result = "ConnectionPage")]
pub struct ListConnections {
    pub limit: usize,
    pub offset: usize,
    /// The operator's projects: only the streams they cover are listed.
    pub scope: ProjectAccess,
}

impl Handler<ListConnections> for Registry {
    type Result = MessageResult<ListConnections>;

    fn handle(&mut self, msg: ListConnections, _: &mut Context<Self>) -> Self::Result {
        MessageResult(ConnectionPage::list(
            &self.table,
            &msg.scope,
            &self.catalog,
            &self.instance_id,
            msg.offset,
            msg.limit,
        ))
    }
}

/// The Registry's counters, without a census: cheap, for the endpoints.
#[derive(Debug, Message)]
#[rtype(result = "RegistryStats")]
pub struct GetCounters;

impl Handler<GetCounters> for Registry {
    type Result = MessageResult<GetCounters>;

    fn handle(&mut self, _: GetCounters, _: &mut Context<Self>) -> Self::Result {
        MessageResult(RegistryStats::counters(&self.counters, self.table.len()))
    }
}

/// The counters and a census of every stream (ages, replays, queued
/// frames): one pass over all of them, so only the periodic sampler asks.
/// It also writes the age gauges and one queue-depth sample per stream.
#[derive(Debug, Message)]
#[rtype(result = "RegistryStats")]
pub struct TakeCensus {
    pub stale_threshold_ms: i64,
}

impl Handler<TakeCensus> for Registry {
    type Result = MessageResult<TakeCensus>;

    fn handle(&mut self, msg: TakeCensus, _: &mut Context<Self>) -> Self::Result {
        let stats = RegistryStats::census(
            &self.counters,
            &self.table,
            msg.stale_threshold_ms,
            now_ms(),
        );
        self.metrics
            .record_stream_sample(&stats.age_buckets, self.table.iter().map(Entry::queued));
        MessageResult(stats)
    }
}

/// Drop one stream at once, as a network failure would: the client
/// reconnects and resumes. Answers whether it was open here.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Disconnect {
    pub id: ConnectionId,
    /// The operator's projects: a stream they do not cover is "not here".
    pub scope: ProjectAccess,
}

impl Handler<Disconnect> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) -> bool {
        let Some(entry) = self
            .table
            .get(msg.id)
            .filter(|entry| msg.scope.covers(&entry.subscription))
        else {
            return false;
        };
        tracing::info!(connection_id = %msg.id, "operator disconnected a stream");
        if entry.closer.connected() {
            entry.closer.do_send(Close {
                reason: CloseReason::Disconnected,
            });
        } else {
            // No actor to close it, and so none to deregister it.
            self.forget(msg.id, CloseReason::Disconnected);
        }
        true
    }
}

/// A fresh token for an open stream: the stream then lives until its
/// expiry. Only the stream's own subject may renew it, with a token that
/// grants at least the projects the stream was opened with.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RenewError>")]
pub struct RenewToken {
    pub id: ConnectionId,
    pub user_id: Option<UserId>,
    pub projects: ProjectAccess,
    /// Unix seconds; `None`: a token without expiry.
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RenewError {
    #[error("no open stream with this connection_id")]
    NotFound,
    #[error("the token is for another subject than the stream's")]
    OtherSubject,
    /// Not on this instance, and the others cannot be asked.
    #[error("{}", super::table::CLUSTER_UNREACHABLE)]
    ClusterUnreachable,
    #[error("the token grants fewer projects than the stream was opened with; reconnect")]
    FewerProjects,
}

impl Handler<RenewToken> for Registry {
    type Result = Result<(), RenewError>;

    fn handle(&mut self, msg: RenewToken, _: &mut Context<Self>) -> Self::Result {
        let entry = self.table.get(msg.id).ok_or(RenewError::NotFound)?;
        let viewer = &entry.subscription.viewer;
        if viewer.user_id != msg.user_id {
            tracing::warn!(
                connection_id = %msg.id,
                "stream token renewal refused: the token is for another subject"
            );
            return Err(RenewError::OtherSubject);
        }
        if !msg.projects.includes(&viewer.projects) {
            return Err(RenewError::FewerProjects);
        }
        entry.stats.extend_token(msg.expires_at);
        // The stream's expiry now: a renewal never shortens it, so it may
        // be later than the token just sent.
        tracing::info!(
            connection_id = %msg.id,
            expires_at = entry.stats.token_expires_at(),
            token_expires_at = msg.expires_at,
            "stream token renewed"
        );
        Ok(())
    }
}

/// How many streams are open, cheaply.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct ActiveConnections;

impl Handler<ActiveConnections> for Registry {
    type Result = usize;

    fn handle(&mut self, _: ActiveConnections, _: &mut Context<Self>) -> usize {
        self.table.len()
    }
}

/// A stream with no successful write for the threshold.
#[derive(Debug, Clone)]
pub struct StaleConnection {
    pub id: ConnectionId,
    pub connection: Recipient<Close>,
    pub idle_ms: i64,
}

/// Streams whose last successful write is older than the threshold, most
/// idle first, with the figures the cleanup's log line reports.
#[derive(Debug, Message)]
#[rtype(result = "StaleScan")]
pub struct FindStale {
    pub threshold_ms: i64,
}

/// What one pass over the streams found.
#[derive(Debug, Default)]
pub struct StaleScan {
    pub stale: Vec<StaleConnection>,
    /// Streams open when the scan ran.
    pub total: usize,
    /// Streams open for more than an hour.
    pub long_lived: usize,
}

impl Handler<FindStale> for Registry {
    type Result = MessageResult<FindStale>;

    fn handle(&mut self, msg: FindStale, _: &mut Context<Self>) -> Self::Result {
        let now = now_ms();
        let mut scan = StaleScan {
            total: self.table.len(),
            ..StaleScan::default()
        };
        for entry in self.table.iter() {
            scan.long_lived += usize::from(now - entry.stats.connected_at_ms > HOUR_MS);
            let idle_ms = now - entry.stats.last_write_ms();
            if idle_ms >= msg.threshold_ms {
                scan.stale.push(StaleConnection {
                    id: entry.id,
                    connection: entry.closer.clone(),
                    idle_ms,
                });
            }
        }
        scan.stale.sort_by_key(|s| std::cmp::Reverse(s.idle_ms));
        MessageResult(scan)
    }
}
