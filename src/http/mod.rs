//! The actix-web edge: authenticate, validate, send one message, map the
//! answer. [`configure`] is the single route table (CONTRACT §4 order).

pub mod extract;
mod health;
mod history;
mod monitoring;
pub mod openapi;
mod publish;
pub mod streams;

use actix_web::{HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, ErrorCode};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(streams::open_stream)
        .service(publish::publish)
        .service(publish::test_event)
        .service(history::history)
        .service(publish::subscribe)
        .service(monitoring::stats)
        .service(monitoring::connections)
        .service(monitoring::monitoring)
        .service(monitoring::cleanup)
        .service(health::health)
        .service(health::metrics)
        .service(openapi::openapi_json);
}

/// Any unknown route: a JSON 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    ))
}
