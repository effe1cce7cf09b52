//! `GET /health` (and `HEAD`) and `GET /metrics`.

use actix_web::{HttpResponse, route, web};

use crate::{
    error::{ApiError, ErrorCode},
    monitoring::{OverallHealth, documents::HealthDocument},
    state::AppState,
};

/// Liveness and readiness: 200 unless unhealthy (503); `HEAD` too, for
/// load balancers that probe with it (actix-http sends a HEAD answer's
/// headers without its body). Answers at once: it reads the instance's
/// latest snapshot, never waits on an actor. The
/// store check reads the outcomes of the store's real operations (failed or
/// timed-out writes and reads, an operation stuck past the store timeout),
/// not only a round trip.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Healthy or degraded", body = HealthDocument),
        (status = 503, description = "Unhealthy", body = HealthDocument),
    )
)]
#[route("/health", method = "GET", method = "HEAD")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let document = state.operations.health();
    let mut response = match document.status {
        OverallHealth::Unhealthy => HttpResponse::ServiceUnavailable(),
        _ => HttpResponse::Ok(),
    };
    response.json(document)
}

/// Prometheus text exposition; every metric name begins with `sse_`.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
#[route("/metrics", method = "GET", method = "HEAD")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state.operations.metrics_text().map_err(|e| {
        tracing::error!(error.message = %e, "rendering metrics failed");
        ApiError::new(ErrorCode::Internal, "metrics are unavailable")
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
