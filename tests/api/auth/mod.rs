//! Authentication and authorization (CONTRACT §5): who may call what, which
//! events a token may see, when a stream's token runs out, CORS, and the
//! `token` / `check-config` subcommands.
//!
//! Every broker here verifies HS256 tokens signed with [`SECRET`] unless a
//! test configures a PEM public key instead (`keys.rs`). Tokens are built
//! with `jsonwebtoken`, independently of the broker's own minting.

mod cli;
mod cors;
mod documented_statuses;
mod expiry;
mod jwks;
mod key_pair;
mod keys;
mod limits;
mod logs;
mod rejections;
mod renewal;
mod scopes;
mod tenants;
mod tickets;
mod visibility;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sse_broker::config::Settings;

use crate::helpers::{OpenStream, TestApp, assert_error, spawn_app_with};

/// The HS256 key of every secured test broker.
pub const SECRET: &str = "auth-tests-hs256-secret-0123456789";

/// Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// Claims valid for an hour: `sub`, `exp`, `scope`, `projects`.
pub fn claims(sub: &str, scope: &str, projects: &[&str]) -> Value {
    json!({
        "sub": sub,
        "exp": now() + 3600,
        "scope": scope,
        "projects": projects,
    })
}

/// `claims` signed with HS256 and `secret`.
pub fn sign_hs256_with(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("an HS256 token")
}

/// `claims` signed with the test brokers' [`SECRET`].
pub fn sign(claims: &Value) -> String {
    sign_hs256_with(SECRET.as_bytes(), claims)
}

/// A valid token for `sub` with `scope` and `projects`.
pub fn token(sub: &str, scope: &str, projects: &[&str]) -> String {
    sign(&claims(sub, scope, projects))
}

/// Every scope, every project.
pub fn root_token() -> String {
    token("root", "subscribe publish admin", &["*"])
}

/// Two secured instances (`a`, `b`) of a fresh cluster on the shared Redis
/// and a fresh PostgreSQL database (kept while the returned `TestDb`
/// lives), both with their Redis link up.
pub async fn secured_cluster() -> (
    crate::cluster::harness::Node,
    crate::cluster::harness::Node,
    crate::cluster::harness::TestDb,
) {
    use crate::cluster::harness::{self, Node, TestDb};
    let cluster = harness::cluster_name();
    let redis = harness::shared_redis_url();
    let store = TestDb::create().await;
    let node = |id: &str| {
        let mut settings = harness::settings(store.database_url(), Some(&redis), &cluster, id);
        with_secret(&mut settings);
        settings
    };
    let (a, b) = (Node::start(node("a")).await, Node::start(node("b")).await);
    for node in [&a, &b] {
        harness::wait_for_health(node, harness::LONG, "Redis up", |_, body| {
            body["checks"]["redis"]["status"] == "up"
        })
        .await;
    }
    (a, b, store)
}

/// Turns authentication on with [`SECRET`].
pub fn with_secret(settings: &mut Settings) {
    settings.auth.jwt_secrets = vec![secrecy::SecretString::from(SECRET)];
}

/// A broker verifying HS256 tokens signed with [`SECRET`].
pub async fn spawn_secured_app() -> TestApp {
    spawn_app_with(with_secret).await
}

/// `GET` with an optional bearer token.
pub async fn get_as(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.api_client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

/// `POST` a JSON body (or none) with an optional bearer token.
pub async fn post_as(
    app: &TestApp,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app.api_client.post(app.url(path));
    if let Some(body) = body {
        request = request.json(body);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

/// Asserts a 401 `unauthorized` with `WWW-Authenticate: Bearer`, and that
/// the body echoes none of `secrets` (the token, its parts, key material).
pub async fn assert_unauthorized(response: reqwest::Response, secrets: &[&str]) -> Value {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("an ASCII challenge").to_owned());
    let status = response.status().as_u16();
    let body = assert_error(response, 401, "unauthorized").await;
    // RFC 6750 section 3.1: no error code when no token came; a token sent
    // and refused is `invalid_token` (a malformed one too); a token sent
    // the wrong way, or two of them, `invalid_request`.
    let message = body["error"]["message"].as_str().unwrap_or_default();
    let expected = if message == "a bearer token is required" {
        "Bearer"
    } else if [
        "the Authorization header must be",
        "two tokens",
        "the sse_token cookie",
    ]
    .iter()
    .any(|start| message.starts_with(start))
    {
        "Bearer error=\"invalid_request\""
    } else {
        "Bearer error=\"invalid_token\""
    };
    assert_eq!(
        challenge.as_deref(),
        Some(expected),
        "a {status} without the Bearer challenge: {body}"
    );
    assert_no_secrets(&body, secrets);
    body
}

/// Asserts a 403 `forbidden`: the token was fine, so its only challenge is
/// the scope it lacks (RFC 6750 section 3.1, `insufficient_scope`), and a
/// 403 for anything else (a project) has none.
pub async fn assert_forbidden(response: reqwest::Response, secrets: &[&str]) -> Value {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|c| c.to_str().expect("an ASCII challenge").to_owned());
    let body = assert_error(response, 403, "forbidden").await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    match message.strip_prefix("this endpoint needs the `") {
        Some(rest) => {
            let scope = rest.split('`').next().unwrap_or_default();
            let expected = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
            assert_eq!(challenge.as_deref(), Some(expected.as_str()), "{body}");
        }
        None => assert_eq!(
            challenge, None,
            "a 403 for {message:?} carries no challenge"
        ),
    }
    assert_no_secrets(&body, secrets);
    body
}

/// Neither the whole of any secret nor any of its `.`-separated parts (of
/// a useful length) may appear in `body`.
pub fn assert_no_secrets(body: &Value, secrets: &[&str]) {
    let text = body.to_string();
    for secret in secrets.iter().chain(&[SECRET]) {
        let parts = std::iter::once(*secret).chain(secret.split('.'));
        for part in parts.filter(|p| p.len() >= 8) {
            assert!(
                !text.contains(part),
                "the error body echoes secret material {part:?}: {text}"
            );
        }
    }
}

/// Opens a stream authenticated by `token` (header), past its `connected`.
pub async fn open_stream_as(app: &TestApp, path: &str, token: &str) -> OpenStream {
    let authorization = format!("Bearer {token}");
    app.open_stream(path, &[("Authorization", &authorization)])
        .await
}

/// `check-config` of the real binary with `args`: (exit code, stdout, stderr).
pub fn check_config(args: &[&str]) -> (Option<i32>, String, String) {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let output = crate::helpers::broker_command()
        .arg("check-config")
        .args(args)
        .current_dir(scratch.path())
        .output()
        .expect("the binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
