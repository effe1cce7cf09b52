//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' own `#[utoipa::path]` annotations as they are registered.

use actix_web::{HttpResponse, get, web};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sse-broker",
        description = "Server-Sent Events broker: resumable streams, publishing, monitoring.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(crate::error::ErrorBody))
)]
pub struct ApiDoc;

/// The generated document, rendered once at start-up.
pub struct OpenApiJson(pub String);

/// This document.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
#[get("/openapi.json")]
pub async fn openapi_json(document: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}
