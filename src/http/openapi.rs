//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' own `#[utoipa::path]` annotations as they are registered.

use actix_web::{HttpResponse, get, web};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sse-broker",
        description = "Server-Sent Events broker: resumable streams, publishing, monitoring.\n\n\
            Every error is an `ErrorBody`. Besides the answers listed per operation, any \
            request may get: 400 `malformed_request` (a request head that is not valid \
            HTTP/1.1) or `invalid_query` (a query string over 16 KiB); 404 `not_found` \
            (unknown path); 405 `method_not_allowed` (with `Allow`); 408 `request_timeout` \
            (first request head not complete in 5 s); 431 `headers_too_large` (headers over \
            32 KiB or more than 96 fields); 403 `cors_origin_not_allowed` or \
            `cors_request_not_allowed` (a refused CORS preflight).",
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
