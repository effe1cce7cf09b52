//! CORS: an exact origin list allows credentials for those origins only;
//! `*` allows any origin without credentials; none configured allows none.

use reqwest::{Method, Response};
use sse_broker::config::CorsOrigins;

use super::{root_token, with_secret};
use crate::helpers::{TestApp, assert_error, spawn_app_with};

const ALLOWED: &str = "https://app.example";
const EVIL: &str = "https://evil.example";

async fn spawn_with_cors(origins: CorsOrigins) -> TestApp {
    spawn_app_with(|settings| {
        with_secret(settings);
        settings.cors_origins = origins;
    })
    .await
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> Response {
    app.api_client
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type, last-event-id",
        )
        .send()
        .await
        .expect("preflight sent")
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("an ASCII header").to_owned())
}

#[actix_web::test]
async fn an_allowed_origin_passes_the_preflight_with_credentials() {
    let app = spawn_with_cors(CorsOrigins::Exact(vec![ALLOWED.into()])).await;

    for (path, method) in [("/sse/publish", "POST"), ("/sse/events", "GET")] {
        let response = preflight(&app, path, ALLOWED, method).await;

        assert_eq!(response.status().as_u16(), 200, "{method} {path}");
        assert_eq!(
            header(&response, "access-control-allow-origin").as_deref(),
            Some(ALLOWED)
        );
        assert_eq!(
            header(&response, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        let methods = header(&response, "access-control-allow-methods").unwrap_or_default();
        assert!(methods.contains(method), "allowed methods: {methods}");
        let headers = header(&response, "access-control-allow-headers")
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            headers.contains("authorization") && headers.contains("last-event-id"),
            "allowed headers: {headers}"
        );
    }
}

#[actix_web::test]
async fn a_disallowed_origin_fails_the_preflight() {
    let app = spawn_with_cors(CorsOrigins::Exact(vec![ALLOWED.into()])).await;

    for origin in [
        EVIL,
        "https://app.example.evil.example",
        "http://app.example",
        "null",
    ] {
        let response = preflight(&app, "/sse/publish", origin, "POST").await;

        let status = response.status().as_u16();
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            None,
            "{origin} answered {status} with {:?}",
            response.headers()
        );
        assert_eq!(header(&response, "access-control-allow-credentials"), None);
        assert_eq!(status, 403, "{origin}");
        // Another origin's answer differs: no cache may reuse this one.
        assert!(
            header(&response, "vary").is_some_and(|v| v.to_lowercase().contains("origin")),
            "{origin}: {:?}",
            response.headers()
        );
        let body = assert_error(response, 403, "cors_origin_not_allowed").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("--cors-origins")),
            "{body}"
        );
    }
}

#[actix_web::test]
async fn a_method_outside_the_allowed_list_fails_the_preflight_with_json() {
    let app = spawn_with_cors(CorsOrigins::Exact(vec![ALLOWED.into()])).await;

    let response = preflight(&app, "/sse/publish", ALLOWED, "PUT").await;

    assert_eq!(header(&response, "access-control-allow-methods"), None);
    assert!(
        header(&response, "vary")
            .is_some_and(|v| v.to_lowercase().contains("access-control-request-method")),
        "{:?}",
        response.headers()
    );
    assert_error(response, 403, "cors_request_not_allowed").await;
}

#[actix_web::test]
async fn actual_requests_carry_cors_headers_only_for_an_allowed_origin() {
    let app = spawn_with_cors(CorsOrigins::Exact(vec![ALLOWED.into()])).await;
    let token = root_token();
    let request = |origin: &'static str, token: Option<String>| {
        let mut request = app
            .api_client
            .post(app.url("/sse/publish"))
            .header("Origin", origin)
            .json(&serde_json::json!({"event_type": "commit"}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let allowed = request(ALLOWED, Some(token.clone())).await.unwrap();
    assert_eq!(allowed.status().as_u16(), 202);
    assert_eq!(
        header(&allowed, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    assert_eq!(
        header(&allowed, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(
        header(&allowed, "vary").is_some_and(|v| v.to_lowercase().contains("origin")),
        "{:?}",
        allowed.headers()
    );

    // A refusal is readable by the allowed page too, with the headers that
    // say what to do next (a browser hides any other than a few otherwise).
    let refused = request(ALLOWED, None).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(
        header(&refused, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    let exposed = header(&refused, "access-control-expose-headers")
        .unwrap_or_default()
        .to_lowercase();
    for name in [
        "retry-after",
        "x-task-status",
        "x-task-progress",
        "allow",
        "www-authenticate",
        // diagnoseConnection's evidence of a compressing proxy.
        "content-encoding",
        "x-accel-buffering",
    ] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed:?}");
    }

    // The browser of another origin gets nothing it may read (without an
    // allow-origin header, a lone allow-credentials grants nothing).
    let evil = request(EVIL, Some(token.clone())).await.unwrap();
    assert_eq!(header(&evil, "access-control-allow-origin"), None);

    // A stream opened from the allowed origin.
    let stream = app
        .api_client
        .get(app.url(&format!("/sse/events?access_token={token}")))
        .header("Origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    assert_eq!(
        header(&stream, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
}

#[actix_web::test]
async fn any_origin_is_a_wildcard_without_credentials() {
    let app = spawn_with_cors(CorsOrigins::Any).await;

    let response = preflight(&app, "/sse/publish", EVIL, "POST").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(header(&response, "access-control-allow-credentials"), None);

    let actual = app
        .api_client
        .get(app.url("/health"))
        .header("Origin", EVIL)
        .send()
        .await
        .unwrap();
    assert_eq!(actual.status().as_u16(), 200);
    assert_eq!(
        header(&actual, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(header(&actual, "access-control-allow-credentials"), None);
}

#[actix_web::test]
async fn no_configured_origin_allows_no_cross_origin_reader() {
    let app = spawn_with_cors(CorsOrigins::None).await;

    let response = preflight(&app, "/sse/publish", ALLOWED, "POST").await;
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    assert_error(response, 403, "cors_origin_not_allowed").await;

    let actual = app
        .api_client
        .get(app.url("/health"))
        .header("Origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(
        actual.status().as_u16(),
        200,
        "a same-origin page still works"
    );
    assert_eq!(header(&actual, "access-control-allow-origin"), None);
}
