//! `GET /` (the demo page), `GET /client.js` (the browser client), and
//! `POST /demo/generations` (start the demo producer). The assets are
//! compiled in: no build step, no external CDN.
//!
//! Every asset route also answers `HEAD` (tag `assets` in the OpenAPI
//! document): link checkers, proxies and uptime probes ask with `HEAD`, and
//! actix routes a `#[get]` to GET only. actix-http sends a HEAD answer's
//! headers (`Content-Length` included) without its body.

use actix_web::{HttpResponse, http::header, post, route, web};
use serde::{Deserialize, Serialize};

use super::extract::{Authenticated, OptionalJsonBody, Publish};
use crate::{demo, error::ApiError, state::AppState};

const INDEX_HTML: &str = include_str!("assets/index.html");
const CLIENT_JS: &str = include_str!("assets/client.js");

/// The demo page: AI text streaming with progress and connection status.
#[utoipa::path(tag = "assets", responses((status = 200, description = "HTML page", content_type = "text/html", body = String)))]
#[route("/", method = "GET", method = "HEAD")]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}

/// The browser client, an ES module.
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String)))]
#[route("/client.js", method = "GET", method = "HEAD")]
pub async fn client_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(CLIENT_JS)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct GenerationRequest {
    pub prompt: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GenerationStarted {
    pub task_id: String,
    /// The task's stream.
    pub events_url: String,
}

/// Start a simulated AI generation into a new task.
#[utoipa::path(
    tag = "demo",
    request_body(content = Option<GenerationRequest>, description = "Optional prompt"),
    responses((status = 201, description = "The generation's task", body = GenerationStarted))
)]
#[post("/demo/generations")]
pub async fn start_generation(
    state: web::Data<AppState>,
    _auth: Authenticated<Publish>,
    body: OptionalJsonBody<GenerationRequest>,
) -> Result<HttpResponse, ApiError> {
    let prompt = body.0.unwrap_or_default().prompt.unwrap_or_default();
    let task_id = demo::start_generation(state.tasks.clone(), &prompt).await?;
    Ok(HttpResponse::Created().json(GenerationStarted {
        events_url: format!("/tasks/{task_id}/events"),
        task_id: task_id.to_string(),
    }))
}
