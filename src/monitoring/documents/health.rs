//! `GET /health` as a typed document.

use serde::Serialize;
use utoipa::ToSchema;

use super::{DocumentContext, StoreCheck};
use crate::{
    actors::redis_bridge::LinkState,
    monitoring::{JwksState, OverallHealth, Snapshot, rules::Finding},
};

/// `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthDocument {
    pub status: OverallHealth,
    pub instance_id: String,
    pub checks: HealthChecks,
    pub alerts: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthChecks {
    pub store: StoreCheck,
    pub registry: RegistryCheck,
    pub cleanup: CleanupCheck,
    pub redis: RedisCheck,
    pub jwks: JwksCheck,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JwksCheck {
    /// `disabled` (no JWKS endpoint configured), `ok` (a set fetched) or
    /// `unavailable` (no fetch has succeeded yet).
    pub status: &'static str,
    /// Keys in the set last fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<usize>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegistryCheck {
    pub status: &'static str,
    pub active_connections: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CleanupCheck {
    /// `ok` or `stopped`.
    pub status: &'static str,
    /// Failed runs / runs, 0–1.
    pub error_rate: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RedisCheck {
    /// `disabled` (no Redis configured), `connecting`, `up` or `down`.
    pub status: &'static str,
    /// Why the link is not up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<u64>,
}

impl HealthDocument {
    pub fn build(snapshot: &Snapshot, context: &DocumentContext<'_>) -> Self {
        let indicators = snapshot.health(context.thresholds);
        let redis = match &snapshot.bridge {
            None => RedisCheck {
                status: "disabled",
                reason: None,
                reconnects: None,
            },
            Some(bridge) => RedisCheck {
                status: match bridge.state {
                    LinkState::Connecting => "connecting",
                    LinkState::Up => "up",
                    LinkState::Down => "down",
                },
                reason: bridge.last_error.clone(),
                reconnects: Some(bridge.reconnects),
            },
        };
        Self {
            status: indicators.overall_health,
            instance_id: context.instance_id.to_owned(),
            checks: HealthChecks {
                store: StoreCheck::of(snapshot, context.store_backend),
                registry: RegistryCheck {
                    status: "ok",
                    active_connections: snapshot.registry.active_connections,
                },
                cleanup: CleanupCheck {
                    status: if snapshot.cleanup.cleanup_task_running {
                        "ok"
                    } else {
                        "stopped"
                    },
                    error_rate: snapshot.cleanup_error_rate(),
                },
                redis,
                jwks: match snapshot.jwks {
                    None => JwksCheck {
                        status: "disabled",
                        keys: None,
                    },
                    Some(JwksState { keys: None }) => JwksCheck {
                        status: "unavailable",
                        keys: None,
                    },
                    Some(JwksState { keys }) => JwksCheck { status: "ok", keys },
                },
            },
            alerts: indicators.alerts,
            warnings: indicators.warnings,
        }
    }
}
