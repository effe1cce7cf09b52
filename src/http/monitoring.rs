//! `/sse/stats`, `/sse/connections`, `/sse/monitoring`, `POST /sse/cleanup`.

use actix_web::{HttpResponse, delete, post, route, web};
use serde::Deserialize;

use super::extract::{Admin, Authenticated, OptionalJsonBody, Query};
use crate::{
    error::{ApiError, ErrorCode},
    monitoring::documents::{MonitoringDocument, StatsDocument},
    state::AppState,
    stream::ConnectionId,
};

const MAX_PAGE: usize = 1000;

/// Counters of this instance.
#[utoipa::path(tag = "monitoring", responses((status = 200, description = "Counters", body = StatsDocument)))]
#[route("/sse/stats", method = "GET", method = "HEAD")]
pub async fn stats(
    state: web::Data<AppState>,
    _auth: Authenticated<Admin>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.operations.stats().await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// At most 1000; default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    /// `cluster` (default when clustered) or `local`.
    pub scope: Option<String>,
}

/// Live streams, oldest first: of every instance of a cluster (gathered
/// through Redis; `scope=local` for this instance's alone), or of this
/// instance when it runs alone.
#[utoipa::path(
    tag = "monitoring",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of live streams", body = crate::actors::registry::ConnectionPage),
        (status = 400, description = "Bad paging (`limit`, `offset`, `scope`)", body = crate::error::ErrorBody),
    )
)]
#[route("/sse/connections", method = "GET", method = "HEAD")]
pub async fn connections(
    state: web::Data<AppState>,
    auth: Authenticated<Admin>,
    query: Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    // An admin acts within its token's projects unless they are `["*"]`.
    let scope = auth.principal.projects;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let offset = query.offset.unwrap_or(0);
    let local_only = match query.scope.as_deref() {
        None | Some("cluster") => false,
        Some("local") => true,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "scope must be cluster or local",
            ));
        }
    };
    let listing = state
        .operations
        .connections(scope, limit, offset, local_only)
        .await?;
    Ok(HttpResponse::Ok().json(listing))
}

/// The detailed monitoring document.
#[utoipa::path(tag = "monitoring", responses((status = 200, description = "Monitoring document", body = MonitoringDocument)))]
#[route("/sse/monitoring", method = "GET", method = "HEAD")]
pub async fn monitoring(
    state: web::Data<AppState>,
    _auth: Authenticated<Admin>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.operations.monitoring().await?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupRequest {
    /// Connections closed per batch; default the configured size (1–1000).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "batch_size")]
    pub batch_size: Option<usize>,
}

/// What a cleanup's `batch_size` must be, said alike for a wrong type and
/// a number out of range (serde's own `usize` said "0 or more", and then
/// 0 was refused).
const BATCH_SIZE: &str = "a whole number from 1 to 1000";

fn batch_size<'de, D: serde::Deserializer<'de>>(input: D) -> Result<Option<usize>, D::Error> {
    struct BatchSize;

    impl serde::de::Visitor<'_> for BatchSize {
        type Value = Option<usize>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str(BATCH_SIZE)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
            match usize::try_from(value) {
                Ok(size @ 1..=1000) => Ok(Some(size)),
                _ => Err(E::invalid_value(
                    serde::de::Unexpected::Unsigned(value),
                    &self,
                )),
            }
        }

        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
            match u64::try_from(value) {
                Ok(value) => self.visit_u64(value),
                Err(_) => Err(E::invalid_value(
                    serde::de::Unexpected::Signed(value),
                    &self,
                )),
            }
        }
    }

    input.deserialize_any(BatchSize)
}

/// Run one stale-connection cleanup now.
#[utoipa::path(
    tag = "monitoring",
    request_body(content = Option<CleanupRequest>, description = "Optional"),
    responses(
        (status = 200, description = "What the run did", body = crate::actors::janitor::CleanupReport),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 422, description = "Bad batch size, or a field it does not know", body = crate::error::ErrorBody),
    )
)]
#[post("/sse/cleanup")]
pub async fn cleanup(
    state: web::Data<AppState>,
    _auth: Authenticated<Admin>,
    body: OptionalJsonBody<CleanupRequest>,
) -> Result<HttpResponse, ApiError> {
    let batch_size = body.0.unwrap_or_default().batch_size;
    let report = state.operations.cleanup(batch_size).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// Drop one live stream now, as a network failure would; the client
/// reconnects and resumes with `Last-Event-ID`. In cluster mode, on
/// whichever instance holds it.
#[utoipa::path(
    tag = "monitoring",
    params(("connection_id" = String, Path, description = "A connection_id from /sse/connections")),
    responses(
        (status = 204, description = "The stream was dropped"),
        (status = 404, description = "No such stream (in cluster mode, on any instance), or one the token's projects do not cover", body = crate::error::ErrorBody),
        (status = 503, description = "In a cluster: not on this instance, and Redis does not answer to ask the others (`cluster_unavailable`, Retry-After)", body = crate::error::ErrorBody),
    )
)]
#[delete("/sse/connections/{connection_id}")]
pub async fn disconnect(
    state: web::Data<AppState>,
    connection_id: web::Path<String>,
    auth: Authenticated<Admin>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || {
        ApiError::new(
            ErrorCode::ConnectionNotFound,
            "no live connection with this connection_id",
        )
    };
    let id = ConnectionId::parse(&connection_id).ok_or_else(not_found)?;
    let scope = auth.principal.projects;
    if state.operations.disconnect(id, scope).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(not_found())
    }
}
