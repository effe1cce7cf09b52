//! `OperationsService`: what operators ask of an instance: its health, its
//! figures, the monitoring document, the streams it holds, a cleanup run,
//! dropping one stream, and the metrics text.
//!
//! Health and the documents read a [`Snapshot`] without waiting on any
//! actor (see `monitoring::snapshot`); only the live counters of `/sse/stats`
//! and `/sse/monitoring` are asked of the Registry, which answers them
//! without a pass over its streams.

use std::sync::Arc;

use actix::Addr;
use serde::Serialize;

use crate::{
    actors::{
        janitor::{CleanupError, CleanupReport, Janitor, RunCleanup},
        redis_bridge::{DropClusterStream, ListClusterConnections, RedisBridge},
        registry::{ConnectionPage, Disconnect, GetCounters, ListConnections, Registry},
    },
    config::{HealthThresholds, Settings},
    domain::ProjectAccess,
    monitoring::{
        Snapshot, Sources,
        documents::{DocumentContext, HealthDocument, MonitoringDocument, StatsDocument},
    },
    stream::ConnectionId,
    telemetry::Metrics,
};

/// The actors an operator reaches.
#[derive(Clone)]
pub struct OperatedActors {
    pub registry: Addr<Registry>,
    pub janitor: Addr<Janitor>,
    /// Set in cluster mode.
    pub bridge: Option<Addr<RedisBridge>>,
}

#[derive(Clone)]
pub struct OperationsService {
    actors: OperatedActors,
    sources: Sources,
    instance_id: Arc<str>,
    max_connections: usize,
    thresholds: HealthThresholds,
    configuration: Arc<Settings>,
    metrics: Metrics,
}

/// The streams an operator sees: every instance's, or this one's when the
/// cluster cannot be asked.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ConnectionListing {
    Cluster(serde_json::Value),
    Local(ConnectionPage),
}

/// Why an operation could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error(transparent)]
    Mailbox(#[from] actix::MailboxError),
    #[error(transparent)]
    Cleanup(#[from] CleanupError),
    #[error("rendering the metrics failed: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    ClusterUnreachable(#[from] crate::actors::redis_bridge::ClusterUnreachable),
}

impl OperationsService {
    pub fn new(
        actors: OperatedActors,
        sources: Sources,
        instance_id: &str,
        max_connections: usize,
        thresholds: HealthThresholds,
        configuration: Settings,
        metrics: Metrics,
    ) -> Self {
        Self {
            actors,
            sources,
            instance_id: instance_id.into(),
            max_connections,
            thresholds,
            configuration: Arc::new(configuration),
            metrics,
        }
    }

    fn context<'a>(&'a self, delivery_lag: &'a prometheus::Histogram) -> DocumentContext<'a> {
        DocumentContext {
            instance_id: &self.instance_id,
            max_connections: self.max_connections,
            thresholds: &self.thresholds,
            store_backend: self.sources.store.backend(),
            delivery_lag,
            configuration: &self.configuration,
        }
    }

    /// `/health`: answers at once, whatever the actors are doing.
    pub fn health(&self) -> HealthDocument {
        let delivery_lag = self.metrics.delivery_lag();
        HealthDocument::build(&self.sources.snapshot(), &self.context(&delivery_lag))
    }

    /// The snapshot, with the Registry's counters as they are now.
    async fn current(&self) -> Result<Snapshot, OperationError> {
        let counters = self.actors.registry.send(GetCounters).await?;
        let mut snapshot = self.sources.snapshot();
        snapshot.registry = counters.with_census_of(&snapshot.registry);
        Ok(snapshot)
    }

    pub async fn stats(&self) -> Result<StatsDocument, OperationError> {
        Ok(StatsDocument::build(
            &self.current().await?,
            &self.instance_id,
        ))
    }

    pub async fn monitoring(&self) -> Result<MonitoringDocument, OperationError> {
        let snapshot = self.current().await?;
        let delivery_lag = self.metrics.delivery_lag();
        Ok(MonitoringDocument::build(
            &snapshot,
            &self.context(&delivery_lag),
        ))
    }

    /// The streams `scope` covers, oldest first; in a cluster every
    /// instance's unless `local_only`.
    pub async fn connections(
        &self,
        scope: ProjectAccess,
        limit: usize,
        offset: usize,
        local_only: bool,
    ) -> Result<ConnectionListing, OperationError> {
        if let Some(bridge) = self.actors.bridge.as_ref().filter(|_| !local_only) {
            let request = ListClusterConnections {
                limit,
                offset,
                scope: scope.clone(),
            };
            match bridge.send(request).await? {
                Ok(listing) => return Ok(ConnectionListing::Cluster(listing)),
                // Redis is down: this instance's streams are all we can see.
                Err(error) => {
                    tracing::warn!(error.message = %error, "cluster listing unavailable, listing local streams")
                }
            }
        }
        let page = self
            .actors
            .registry
            .send(ListConnections {
                limit,
                offset,
                scope,
            })
            .await?;
        Ok(ConnectionListing::Local(ConnectionPage {
            complete: self.actors.bridge.is_none(),
            ..page
        }))
    }

    /// One cleanup run now (see `Janitor`).
    pub async fn cleanup(
        &self,
        batch_size: Option<usize>,
    ) -> Result<CleanupReport, OperationError> {
        Ok(self
            .actors
            .janitor
            .send(RunCleanup {
                batch_size,
                periodic: false,
            })
            .await??)
    }

    /// Drops a stream `scope` covers; `false` when there is none. In
    /// cluster mode a stream not found here is looked for on the other
    /// instances (as `GET /sse/connections` lists them all).
    pub async fn disconnect(
        &self,
        id: ConnectionId,
        scope: ProjectAccess,
    ) -> Result<bool, OperationError> {
        let drop = || Disconnect {
            id,
            scope: scope.clone(),
        };
        let here = self.actors.registry.send(drop()).await?;
        match &self.actors.bridge {
            Some(bridge) if !here => Ok(bridge.send(DropClusterStream(drop())).await??),
            _ => Ok(here),
        }
    }

    /// The Prometheus text exposition.
    pub fn metrics_text(&self) -> Result<String, OperationError> {
        Ok(self.metrics.render_prometheus()?)
    }
}
