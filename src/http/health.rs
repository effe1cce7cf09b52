//! `GET /health` and `GET /metrics`.

use actix_web::{HttpResponse, get, web};

use crate::{
    app::AppState,
    error::{ApiError, ErrorCode},
    monitoring::{OverallHealth, Snapshot},
};

/// Liveness and readiness: 200 unless unhealthy (503). The store check
/// reads the outcomes of the store's real operations (failed or timed-out
/// writes and reads, an operation stuck past the store timeout), not only a
/// round trip.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Healthy or degraded", body = Object),
        (status = 503, description = "Unhealthy", body = Object),
    )
)]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let snapshot = Snapshot::collect(&state).await?;
    let indicators = snapshot.health(&state.settings.health);
    let body = serde_json::json!({
        "status": indicators.overall_health,
        "instance_id": state.settings.instance_id,
        "checks": {
            "store": snapshot.store_check(state.store.backend()),
            "registry": { "status": "ok", "active_connections": snapshot.registry.active_connections },
            "cleanup": { "status": if snapshot.cleanup.cleanup_task_running { "ok" } else { "stopped" }, "error_rate": snapshot.cleanup_error_rate() },
            "redis": match &snapshot.bridge {
                None => serde_json::json!({ "status": "disabled" }),
                Some(bridge) => serde_json::json!({ "status": bridge.state, "reason": bridge.last_error, "reconnects": bridge.reconnects }),
            },
        },
        "alerts": indicators.alerts,
        "warnings": indicators.warnings,
    });
    let mut response = match indicators.overall_health {
        OverallHealth::Unhealthy => HttpResponse::ServiceUnavailable(),
        _ => HttpResponse::Ok(),
    };
    Ok(response.json(body))
}

/// Prometheus text exposition; every metric name begins with `sse_`.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state.metrics.render_prometheus().map_err(|e| {
        tracing::error!(error.message = %e, "rendering metrics failed");
        ApiError::new(ErrorCode::Internal, "metrics are unavailable")
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
