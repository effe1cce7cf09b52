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

use std::{
    hash::{DefaultHasher, Hasher},
    sync::OnceLock,
};

use actix_web::{
    HttpMessage, HttpRequest, HttpResponse,
    http::header::{self, ETag, EntityTag, IfNoneMatch},
    post, route, web,
};
use serde::{Deserialize, Serialize};

use super::extract::{Authenticated, OptionalJsonBody, Publish};
use crate::{
    demo,
    error::{ApiError, ErrorCode},
    state::AppState,
};

static INDEX_HTML: Asset = Asset::new(include_str!("assets/index.html"));
static CLIENT_JS: Asset = Asset::new(include_str!("assets/client.js"));
static CLIENT_D_TS: Asset = Asset::new(include_str!("assets/client.d.ts"));
static TABS_JS: Asset = Asset::new(include_str!("assets/tabs.js"));
static STREAM_REQUESTS_JS: Asset = Asset::new(include_str!("assets/stream_requests.js"));
static DIAGNOSE_JS: Asset = Asset::new(include_str!("assets/diagnose.js"));
static REACT_JS: Asset = Asset::new(include_str!("assets/react.js"));
static REACT_D_TS: Asset = Asset::new(include_str!("assets/react.d.ts"));
static VENDOR_REACT_JS: Asset = Asset::new(include_str!("assets/vendor/react.js"));
static VENDOR_REACT_DOM_CLIENT_JS: Asset =
    Asset::new(include_str!("assets/vendor/react-dom-client.js"));
static VENDOR_REACT_SHARED_JS: Asset = Asset::new(include_str!("assets/vendor/react-shared.js"));

/// How long browsers and proxies may reuse a module or declaration file:
/// short, since the URLs carry no version and an upgraded broker must not
/// meet a page that still runs the old modules for long.
const ASSET_CACHE_CONTROL: &str = "public, max-age=300";

/// A compiled-in file and its entity tag, made on first use: a browser
/// revalidating after `max-age` gets `304` instead of the whole file
/// (React's bundle is ~200 KB).
struct Asset {
    source: &'static str,
    etag: OnceLock<EntityTag>,
}

impl Asset {
    const fn new(source: &'static str) -> Self {
        Self {
            source,
            etag: OnceLock::new(),
        }
    }

    /// A strong tag: the content's hash, so it changes with the file and
    /// with nothing else (the same build on every instance tags alike).
    fn etag(&self) -> &EntityTag {
        self.etag.get_or_init(|| {
            let mut hasher = DefaultHasher::new();
            hasher.write(self.source.as_bytes());
            EntityTag::new_strong(format!("{:016x}", hasher.finish()))
        })
    }

    /// `200` with the file, or `304` when the request's `If-None-Match`
    /// names it (RFC 9110 §13.1.2: a weak comparison).
    fn answer(
        &self,
        req: &HttpRequest,
        content_type: &str,
        cache_control: Option<&str>,
    ) -> HttpResponse {
        let etag = self.etag();
        let unchanged = match req.get_header::<IfNoneMatch>() {
            Some(IfNoneMatch::Any) => true,
            Some(IfNoneMatch::Items(tags)) => tags.iter().any(|tag| tag.weak_eq(etag)),
            None => false,
        };
        let mut response = if unchanged {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        response.insert_header(ETag(etag.clone()));
        if let Some(cache_control) = cache_control {
            response.insert_header((header::CACHE_CONTROL, cache_control));
        }
        if unchanged {
            response.finish()
        } else {
            response.content_type(content_type).body(self.source)
        }
    }
}

/// The demo page: AI text streaming with progress and connection status.
#[utoipa::path(tag = "assets", responses(
    (status = 200, description = "HTML page", content_type = "text/html", body = String),
    (status = 304, description = "`If-None-Match` names the page's `ETag`"),
))]
#[route("/", method = "GET", method = "HEAD")]
pub async fn index(req: HttpRequest) -> HttpResponse {
    INDEX_HTML.answer(&req, "text/html; charset=utf-8", None)
}

/// An ES module, as browsers require for `<script type="module">` and `import`.
fn javascript(req: &HttpRequest, asset: &'static Asset) -> HttpResponse {
    asset.answer(
        req,
        "text/javascript; charset=utf-8",
        Some(ASSET_CACHE_CONTROL),
    )
}

/// A TypeScript declaration file: for editors and `tsc`, never run by a
/// browser, which shows it as text.
fn typescript(req: &HttpRequest, asset: &'static Asset) -> HttpResponse {
    asset.answer(
        req,
        "application/typescript; charset=utf-8",
        Some(ASSET_CACHE_CONTROL),
    )
}

/// The browser client, an ES module.
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String), (status = 304, description = "`If-None-Match` names its `ETag`")))]
#[route("/client.js", method = "GET", method = "HEAD")]
pub async fn client_js(req: HttpRequest) -> HttpResponse {
    javascript(&req, &CLIENT_JS)
}

/// The tab sharing `/client.js` imports (one stream per URL for all tabs).
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String), (status = 304, description = "`If-None-Match` names its `ETag`")))]
#[route("/tabs.js", method = "GET", method = "HEAD")]
pub async fn tabs_js(req: HttpRequest) -> HttpResponse {
    javascript(&req, &TABS_JS)
}

/// The requests `/client.js` makes beside its stream (tickets, history,
/// a refusal's reason, token renewal).
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String), (status = 304, description = "`If-None-Match` names its `ETag`")))]
#[route("/stream_requests.js", method = "GET", method = "HEAD")]
pub async fn stream_requests_js(req: HttpRequest) -> HttpResponse {
    javascript(&req, &STREAM_REQUESTS_JS)
}

/// The path check `/client.js` re-exports (`diagnoseConnection`).
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String), (status = 304, description = "`If-None-Match` names its `ETag`")))]
#[route("/diagnose.js", method = "GET", method = "HEAD")]
pub async fn diagnose_js(req: HttpRequest) -> HttpResponse {
    javascript(&req, &DIAGNOSE_JS)
}

/// The TypeScript declarations of `/client.js`.
#[utoipa::path(tag = "assets", responses((status = 200, description = "TypeScript declarations", content_type = "application/typescript", body = String), (status = 304, description = "`If-None-Match` names its `ETag`")))]
#[route("/client.d.ts", method = "GET", method = "HEAD")]
pub async fn client_d_ts(req: HttpRequest) -> HttpResponse {
    typescript(&req, &CLIENT_D_TS)
}

/// The React hooks `useTaskStream` and `useEventStream`, an ES module that
/// imports `react` (the application's own) and `./client.js`.
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String), (status = 304, description = "`If-None-Match` names its `ETag`")))]
#[route("/react.js", method = "GET", method = "HEAD")]
pub async fn react_js(req: HttpRequest) -> HttpResponse {
    javascript(&req, &REACT_JS)
}

/// The TypeScript declarations of `/react.js`.
#[utoipa::path(tag = "assets", responses((status = 200, description = "TypeScript declarations", content_type = "application/typescript", body = String), (status = 304, description = "`If-None-Match` names its `ETag`")))]
#[route("/react.d.ts", method = "GET", method = "HEAD")]
pub async fn react_d_ts(req: HttpRequest) -> HttpResponse {
    typescript(&req, &REACT_D_TS)
}

/// React as an ES module, for the demo page's import map (`react`).
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String), (status = 304, description = "`If-None-Match` names its `ETag`")))]
#[route("/vendor/react.js", method = "GET", method = "HEAD")]
pub async fn vendor_react(req: HttpRequest) -> HttpResponse {
    javascript(&req, &VENDOR_REACT_JS)
}

/// `react-dom/client` as an ES module, for the demo page's import map.
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String), (status = 304, description = "`If-None-Match` names its `ETag`")))]
#[route("/vendor/react-dom-client.js", method = "GET", method = "HEAD")]
pub async fn vendor_react_dom_client(req: HttpRequest) -> HttpResponse {
    javascript(&req, &VENDOR_REACT_DOM_CLIENT_JS)
}

/// The chunk both vendored modules import: the page's one copy of React.
#[utoipa::path(tag = "assets", responses((status = 200, description = "JavaScript module", content_type = "text/javascript", body = String), (status = 304, description = "`If-None-Match` names its `ETag`")))]
#[route("/vendor/react-shared.js", method = "GET", method = "HEAD")]
pub async fn vendor_react_shared(req: HttpRequest) -> HttpResponse {
    javascript(&req, &VENDOR_REACT_SHARED_JS)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
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
        (status = 422, description = "A body that is not an object, a `prompt` that is not text, or a field it does not know", body = crate::error::ErrorBody),
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
