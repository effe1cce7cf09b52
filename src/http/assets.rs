//! `GET /` (the demo page), the browser modules (`/client.js`, `/react.js`),
//! their TypeScript declarations (`/client.d.ts`, `/react.d.ts`), the React
//! the demo page runs on (`/vendor/…`), and `POST /demo/generations` (start
//! the demo producer). The assets are compiled in: no build step at run
//! time, and no external CDN (the broker and its browsers may have no
//! internet). The React bundles are built from the npm packages by
//! `tests/js/tools/vendor_react.mjs` and committed; `tests/js/vendor.test.mjs`
//! fails when they are not that build.
//!
//! Every asset route also answers `HEAD` (tag `assets` in the OpenAPI
//! document): link checkers, proxies and uptime probes ask with `HEAD`, and
//! actix routes a `#[get]` to GET only. actix-http sends a HEAD answer's
//! headers (`Content-Length` included) without its body.

use actix_web::{HttpResponse, http::header, post, route, web};
use serde::{Deserialize, Serialize};

use super::extract::{Authenticated, OptionalJsonBody, Publish};
use crate::{
    demo,
    error::{ApiError, ErrorCode},
    state::AppState,
};

const INDEX_HTML: &str = include_str!("assets/index.html");
const CLIENT_JS: &str = include_str!("assets/client.js");
const CLIENT_D_TS: &str = include_str!("assets/client.d.ts");
const TABS_JS: &str = include_str!("assets/tabs.js");
const STREAM_REQUESTS_JS: &str = include_str!("assets/stream_requests.js");
const DIAGNOSE_JS: &str = include_str!("assets/diagnose.js");
const REACT_JS: &str = include_str!("assets/react.js");
const REACT_D_TS: &str = include_str!("assets/react.d.ts");
const VENDOR_REACT_JS: &str = include_str!("assets/vendor/react.js");
const VENDOR_REACT_DOM_CLIENT_JS: &str = include_str!("assets/vendor/react-dom-client.js");
const VENDOR_REACT_SHARED_JS: &str = include_str!("assets/vendor/react-shared.js");

/// How long browsers and proxies may reuse a module or declaration file:
/// short, since the URLs carry no version and an upgraded broker must not
/// meet a page that still runs the old modules for long.
const ASSET_CACHE_CONTROL: &str = "public, max-age=300";

/// The demo page: AI text streaming with progress and connection status.
#[utoipa::path(tag = "assets", responses((status = 200, description = "HTML page", content_type = "text/html", body = String)))]
#[route("/", method = "GET", method = "HEAD")]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}

/// An ES module, as browsers require for `<script type="module">` and `import`.
fn javascript(source: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, ASSET_CACHE_CONTROL))
        .body(source)
}

/// A TypeScript declaration file: for editors and `tsc`, never run by a
/// browser, which shows it as text.
fn typescript(source: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/typescript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, ASSET_CACHE_CONTROL))
        .body(source)
}

/// The browser client, an ES module.
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String)))]
#[route("/client.js", method = "GET", method = "HEAD")]
pub async fn client_js() -> HttpResponse {
    javascript(CLIENT_JS)
}

/// The tab sharing `/client.js` imports (one stream per URL for all tabs).
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String)))]
#[route("/tabs.js", method = "GET", method = "HEAD")]
pub async fn tabs_js() -> HttpResponse {
    javascript(TABS_JS)
}

/// The requests `/client.js` makes beside its stream (tickets, history,
/// a refusal's reason, token renewal).
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String)))]
#[route("/stream_requests.js", method = "GET", method = "HEAD")]
pub async fn stream_requests_js() -> HttpResponse {
    javascript(STREAM_REQUESTS_JS)
}

/// The path check `/client.js` re-exports (`diagnoseConnection`).
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String)))]
#[route("/diagnose.js", method = "GET", method = "HEAD")]
pub async fn diagnose_js() -> HttpResponse {
    javascript(DIAGNOSE_JS)
}

/// The TypeScript declarations of `/client.js`.
#[utoipa::path(tag = "assets", responses((status = 200, description = "TypeScript declarations", content_type = "application/typescript", body = String)))]
#[route("/client.d.ts", method = "GET", method = "HEAD")]
pub async fn client_d_ts() -> HttpResponse {
    typescript(CLIENT_D_TS)
}

/// The React hooks `useTaskStream` and `useEventStream`, an ES module that
/// imports `react` (the application's own) and `./client.js`.
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String)))]
#[route("/react.js", method = "GET", method = "HEAD")]
pub async fn react_js() -> HttpResponse {
    javascript(REACT_JS)
}

/// The TypeScript declarations of `/react.js`.
#[utoipa::path(tag = "assets", responses((status = 200, description = "TypeScript declarations", content_type = "application/typescript", body = String)))]
#[route("/react.d.ts", method = "GET", method = "HEAD")]
pub async fn react_d_ts() -> HttpResponse {
    typescript(REACT_D_TS)
}

/// React as an ES module, for the demo page's import map (`react`).
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String)))]
#[route("/vendor/react.js", method = "GET", method = "HEAD")]
pub async fn vendor_react() -> HttpResponse {
    javascript(VENDOR_REACT_JS)
}

/// `react-dom/client` as an ES module, for the demo page's import map.
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String)))]
#[route("/vendor/react-dom-client.js", method = "GET", method = "HEAD")]
pub async fn vendor_react_dom_client() -> HttpResponse {
    javascript(VENDOR_REACT_DOM_CLIENT_JS)
}

/// The chunk both vendored modules import: the page's one copy of React.
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String)))]
#[route("/vendor/react-shared.js", method = "GET", method = "HEAD")]
pub async fn vendor_react_shared() -> HttpResponse {
    javascript(VENDOR_REACT_SHARED_JS)
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
    responses(
        (status = 201, description = "The generation's task", body = GenerationStarted),
        (status = 400, description = "Malformed JSON, or a body that is not UTF-8", body = crate::error::ErrorBody),
        (status = 403, description = "No publish scope, or a token kept within its projects (the demo's tasks have none)", body = crate::error::ErrorBody),
        (status = 422, description = "A body that is not an object, or a `prompt` that is not text", body = crate::error::ErrorBody),
        (status = 503, description = "The store did not answer in time", body = crate::error::ErrorBody),
    )
)]
#[post("/demo/generations")]
pub async fn start_generation(
    state: web::Data<AppState>,
    auth: Authenticated<Publish>,
    body: OptionalJsonBody<GenerationRequest>,
) -> Result<HttpResponse, ApiError> {
    // The demo's tasks have no project.
    if auth.principal.confined {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            super::publish::CONFINED,
        ));
    }
    let prompt = body.0.unwrap_or_default().prompt.unwrap_or_default();
    let task_id = demo::start_generation(state.tasks.clone(), &prompt).await?;
    Ok(HttpResponse::Created().json(GenerationStarted {
        events_url: format!("/tasks/{task_id}/events"),
        task_id: task_id.to_string(),
    }))
}
