//! Key sets: a JWKS endpoint whose keys come and go while the broker runs
//! (picked up on an unknown `kid` and on the periodic refresh, unknown-kid
//! refreshes rate-limited), and several static keys side by side.
//!
//! The JWKS endpoint is an actix-web server on loopback, run by the test,
//! that serves whatever keys the test puts in its shared state and counts
//! its fetches. Key pairs are generated with the `openssl` CLI.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, web};
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, JwkSet},
};
use secrecy::SecretString;
use serde_json::Value;
use sse_broker::config::Settings;

use super::{
    assert_unauthorized, check_config, claims, get_as, key_pair::KeyPair, sign_hs256_with,
};
use crate::helpers::{SHORT, TestApp, assert_error, eventually, spawn_app_with};

/// An admin-only endpoint: a 200 there means the token verified.
const ADMIN_ONLY: &str = "/sse/stats";

/// The message of a 401 for a token whose `kid` is not (or no longer) known.
const UNKNOWN_KEY: &str = "the token's signing key is not known";

// ---------------------------------------------------------------------------
// Keys

/// An admin token's claims (the scope `ADMIN_ONLY` needs).
fn admin() -> Value {
    claims("alice", "admin", &[])
}

// ---------------------------------------------------------------------------
// The JWKS endpoint

#[derive(Default)]
struct JwksState {
    keys: Vec<Jwk>,
    /// Fetches of `/.well-known/jwks.json` so far.
    hits: usize,
    /// Answer 500 instead of the key set.
    failing: bool,
    /// How long each answer takes (an identity provider under load).
    delay: Duration,
}

/// `GET /.well-known/jwks.json` on loopback, serving the keys in `state`.
struct JwksServer {
    url: url::Url,
    state: Arc<Mutex<JwksState>>,
    handle: ServerHandle,
}

async fn serve_jwks(state: web::Data<Mutex<JwksState>>) -> HttpResponse {
    let delay = {
        let mut state = state.lock().expect("the JWKS state lock");
        state.hits += 1;
        state.delay
    };
    tokio::time::sleep(delay).await;
    let state = state.lock().expect("the JWKS state lock");
    if state.failing {
        return HttpResponse::InternalServerError().body("the key store is down");
    }
    HttpResponse::Ok().json(JwkSet {
        keys: state.keys.clone(),
    })
}

impl JwksServer {
    /// Starts serving `keys`.
    fn start(keys: Vec<Jwk>) -> Self {
        let state = Arc::new(Mutex::new(JwksState {
            keys,
            ..JwksState::default()
        }));
        let data = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/.well-known/jwks.json", web::get().to(serve_jwks))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("the JWKS server listens")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/.well-known/jwks.json")
                .parse()
                .expect("a URL"),
            state,
            handle,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, JwksState> {
        self.state.lock().expect("the JWKS state lock")
    }

    /// From now on the endpoint serves exactly `keys`.
    fn serve(&self, keys: Vec<Jwk>) {
        self.state().keys = keys;
    }

    fn add(&self, key: Jwk) {
        self.state().keys.push(key);
    }

    fn set_failing(&self, failing: bool) {
        self.state().failing = failing;
    }

    fn hits(&self) -> usize {
        self.state().hits
    }

    fn set_delay(&self, delay: Duration) {
        self.state().delay = delay;
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        // Sends the stop command now; nobody needs to wait for it.
        drop(self.handle.stop(false));
    }
}

/// A broker whose keys come from `jwks`, with the refresh settings given.
async fn spawn_with_jwks(
    jwks: &JwksServer,
    refresh_interval: Duration,
    min_refresh_interval: Duration,
) -> TestApp {
    let url = jwks.url.clone();
    spawn_app_with(move |settings| {
        settings.auth.jwks_url = Some(url);
        settings.auth.jwks_refresh_interval = refresh_interval;
        settings.auth.jwks_min_refresh_interval = min_refresh_interval;
    })
    .await
}

/// The status of `ADMIN_ONLY` with `token`, and the body for messages.
async fn admin_status(app: &TestApp, token: &str) -> (u16, String) {
    let response = get_as(app, ADMIN_ONLY, Some(token)).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Waits until `token` is accepted. Only a 503 `auth_unavailable` (the key
/// set not fetched yet) may come first; anything else fails the test.
async fn wait_until_accepted(app: &TestApp, token: &str, what: &str) {
    eventually(SHORT, what, || async move {
        match admin_status(app, token).await {
            (200, _) => Some(()),
            (503, body) if body.contains("auth_unavailable") => None,
            (status, body) => panic!("{what}: got {status} {body}"),
        }
    })
    .await;
}

/// Asserts a 401 for a token whose key the broker does not know.
async fn assert_unknown_key(response: reqwest::Response, secrets: &[&str]) {
    let body = assert_unauthorized(response, secrets).await;
    assert_eq!(body["error"]["message"], UNKNOWN_KEY, "{body}");
}

// ---------------------------------------------------------------------------
// JWKS

#[actix_web::test]
async fn a_token_signed_with_a_key_the_jwks_endpoint_serves_is_accepted() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let k1 = KeyPair::generate(dir.path(), "k1", Algorithm::ES256);
    let jwks = JwksServer::start(vec![k1.jwk("k1")]);
    let app = spawn_with_jwks(&jwks, Duration::from_secs(300), Duration::from_secs(10)).await;

    // Act
    let token = k1.sign(Some("k1"), &admin());

    // Assert
    wait_until_accepted(&app, &token, "the k1 token to be accepted").await;
    assert!(jwks.hits() >= 1, "the endpoint was never fetched");
    // The key only verifies: scopes still apply.
    let subscriber = k1.sign(Some("k1"), &claims("bob", "subscribe", &[]));
    let response = get_as(&app, ADMIN_ONLY, Some(&subscriber)).await;
    assert_error(response, 403, "forbidden").await;
}

#[actix_web::test]
async fn before_the_first_successful_fetch_a_token_gets_503_auth_unavailable() {
    // Arrange: the endpoint is down when the broker starts.
    let dir = tempfile::tempdir().unwrap();
    let k1 = KeyPair::generate(dir.path(), "k1", Algorithm::ES256);
    let jwks = JwksServer::start(vec![k1.jwk("k1")]);
    jwks.set_failing(true);
    let app = spawn_with_jwks(&jwks, Duration::from_secs(300), Duration::ZERO).await;
    let token = k1.sign(Some("k1"), &admin());

    // Act
    let response = get_as(&app, ADMIN_ONLY, Some(&token)).await;

    // Assert: not the client's fault, so no 401; retry later.
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("an ASCII header").to_owned());
    assert_error(response, 503, "auth_unavailable").await;
    let retry_after: u64 = retry_after
        .as_deref()
        .unwrap_or_else(|| panic!("a 503 auth_unavailable without Retry-After"))
        .parse()
        .unwrap_or_else(|e| panic!("Retry-After {retry_after:?} is not seconds: {e}"));
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
    // The instance says so: degraded, with the reason.
    let health = app.get_json("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(
        health["checks"]["jwks"]["status"], "unavailable",
        "{health}"
    );
    let warnings: Vec<&str> = health["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["type"].as_str())
        .collect();
    assert_eq!(warnings, ["signing_keys_unavailable"], "{health}");

    // Once the endpoint answers, the same token works without a restart.
    jwks.set_failing(false);
    wait_until_accepted(
        &app,
        &token,
        "the token to be accepted once the endpoint is up",
    )
    .await;
    let health = app.get_json("/health").await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(
        (
            &health["checks"]["jwks"]["status"],
            &health["checks"]["jwks"]["keys"]
        ),
        (&serde_json::json!("ok"), &serde_json::json!(1)),
        "{health}"
    );
}

#[actix_web::test]
async fn a_key_added_to_the_endpoint_is_picked_up_by_the_first_token_that_uses_it() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let k1 = KeyPair::generate(dir.path(), "k1", Algorithm::ES256);
    let k2 = KeyPair::generate(dir.path(), "k2", Algorithm::ES256);
    let jwks = JwksServer::start(vec![k1.jwk("k1")]);
    let app = spawn_with_jwks(&jwks, Duration::from_secs(300), Duration::ZERO).await;
    let old = k1.sign(Some("k1"), &admin());
    let new = k2.sign(Some("k2"), &admin());
    wait_until_accepted(&app, &old, "the k1 token to be accepted").await;
    let response = get_as(&app, ADMIN_ONLY, Some(&new)).await;
    let secrets = k2.secrets();
    let mut secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    secrets.push(&new);
    assert_unknown_key(response, &secrets).await;

    // Act: the issuer publishes k2 next to k1.
    jwks.add(k2.jwk("k2"));

    // Assert: the very next k2 request refreshes the set and is accepted,
    // and k1 tokens keep working.
    let (status, body) = admin_status(&app, &new).await;
    assert_eq!(status, 200, "the k2 token after k2 was published: {body}");
    let (status, body) = admin_status(&app, &old).await;
    assert_eq!(status, 200, "the k1 token after k2 was published: {body}");
}

#[actix_web::test]
async fn a_key_removed_from_the_endpoint_is_refused_after_the_next_periodic_refresh() {
    // Arrange: a refresh every second; unknown kids would not refresh.
    let dir = tempfile::tempdir().unwrap();
    let k1 = KeyPair::generate(dir.path(), "k1", Algorithm::ES256);
    let k2 = KeyPair::generate(dir.path(), "k2", Algorithm::ES256);
    let jwks = JwksServer::start(vec![k1.jwk("k1")]);
    let app = spawn_with_jwks(&jwks, Duration::from_secs(1), Duration::from_secs(60)).await;
    let old = k1.sign(Some("k1"), &admin());
    let new = k2.sign(Some("k2"), &admin());
    wait_until_accepted(&app, &old, "the k1 token to be accepted").await;

    // Act: the issuer retires k1 and publishes k2 instead.
    jwks.serve(vec![k2.jwk("k2")]);

    // Assert: k1 is refused once the set has been re-fetched...
    let response = eventually(SHORT, "the k1 token to be refused", || {
        let (app, old) = (&app, &old);
        async move {
            let response = get_as(app, ADMIN_ONLY, Some(old)).await;
            match response.status().as_u16() {
                200 => None,
                _ => Some(response),
            }
        }
    })
    .await;
    let secrets = k1.secrets();
    let mut secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    secrets.push(&old);
    assert_unknown_key(response, &secrets).await;
    // ...and k2, now in the set, is accepted.
    let (status, body) = admin_status(&app, &new).await;
    assert_eq!(status, 200, "the k2 token after the rotation: {body}");
    let (status, _) = admin_status(&app, &old).await;
    assert_eq!(status, 401, "k1 stays refused");
}

#[actix_web::test]
async fn unknown_kids_refresh_the_key_set_at_most_once_per_min_refresh_interval() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let k1 = KeyPair::generate(dir.path(), "k1", Algorithm::ES256);
    let jwks = JwksServer::start(vec![k1.jwk("k1")]);
    let app = spawn_with_jwks(&jwks, Duration::from_secs(300), Duration::from_secs(60)).await;
    wait_until_accepted(&app, &k1.sign(Some("k1"), &admin()), "the k1 token").await;
    let fetches_before = jwks.hits();
    let unknown = |i: usize| k1.sign(Some(&format!("unknown-{i}-{}", uuid())), &admin());

    // Act: one after another, then all at once.
    let mut statuses = Vec::new();
    for i in 0..10 {
        statuses.push(admin_status(&app, &unknown(i)).await.0);
    }
    let tokens: Vec<String> = (10..30).map(unknown).collect();
    let concurrent =
        futures_util::future::join_all(tokens.iter().map(|t| admin_status(&app, t))).await;
    statuses.extend(concurrent.into_iter().map(|(status, _)| status));

    // Assert
    assert!(
        statuses.iter().all(|s| *s == 401),
        "every unknown kid is a 401: {statuses:?}"
    );
    let fetches = jwks.hits() - fetches_before;
    assert!(
        fetches <= 1,
        "30 unknown kids within the 60 s minimum interval fetched the endpoint {fetches} times"
    );
}

/// With no floor between fetches (`--jwks-min-refresh-secs 0`), unknown
/// kids that arrive while a slow fetch runs wait for that fetch, not each
/// for one more of their own in turn.
#[actix_web::test]
async fn unknown_kids_arriving_during_a_fetch_wait_for_it_and_start_no_other() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let k1 = KeyPair::generate(dir.path(), "k1", Algorithm::ES256);
    let jwks = JwksServer::start(vec![k1.jwk("k1")]);
    let app = spawn_with_jwks(&jwks, Duration::from_secs(300), Duration::ZERO).await;
    wait_until_accepted(&app, &k1.sign(Some("k1"), &admin()), "the k1 token").await;
    jwks.set_delay(Duration::from_millis(700));
    let fetches_before = jwks.hits();
    let tokens: Vec<String> = (0..8)
        .map(|i| k1.sign(Some(&format!("unknown-{i}-{}", uuid())), &admin()))
        .collect();

    // Act
    let statuses =
        futures_util::future::join_all(tokens.iter().map(|t| admin_status(&app, t))).await;

    // Assert: one fetch for them all (two, should one request come in
    // just as the first fetch began); each its own made it eight.
    assert!(
        statuses.iter().all(|(status, _)| *status == 401),
        "{statuses:?}"
    );
    let fetches = jwks.hits() - fetches_before;
    assert!(
        fetches <= 2,
        "8 unknown kids at once fetched {fetches} times"
    );
}

#[actix_web::test]
async fn a_known_kid_does_not_make_a_foreign_or_confused_token_valid() {
    // Arrange: k1 is an RSA key.
    let dir = tempfile::tempdir().unwrap();
    let k1 = KeyPair::generate(dir.path(), "k1", Algorithm::RS256);
    let impostor = KeyPair::generate(dir.path(), "impostor", Algorithm::RS256);
    let ec = KeyPair::generate(dir.path(), "ec", Algorithm::ES256);
    let jwks = JwksServer::start(vec![k1.jwk("k1")]);
    let app = spawn_with_jwks(&jwks, Duration::from_secs(300), Duration::ZERO).await;
    wait_until_accepted(&app, &k1.sign(Some("k1"), &admin()), "the k1 token").await;
    let with_kid = |header: Header| Header {
        kid: Some("k1".into()),
        ..header
    };
    let hs256_with = |key: &[u8]| {
        jsonwebtoken::encode(
            &with_kid(Header::new(Algorithm::HS256)),
            &admin(),
            &EncodingKey::from_secret(key),
        )
        .expect("an HS256 token")
    };
    let k1_jwk = serde_json::to_value(k1.jwk("k1")).expect("the JWK as JSON");
    let modulus = k1_jwk["n"].as_str().expect("an RSA JWK has n").to_owned();
    let refused = [
        (
            "kid k1, signed by another RSA key",
            impostor.sign(Some("k1"), &admin()),
        ),
        ("kid k1, ES256 by an EC key", ec.sign(Some("k1"), &admin())),
        (
            "kid k1, HS256 keyed with k1's public PEM",
            hs256_with(&k1.public_pem),
        ),
        (
            "kid k1, HS256 keyed with k1's modulus",
            hs256_with(modulus.as_bytes()),
        ),
        ("no kid, HS256", sign_hs256_with(&k1.public_pem, &admin())),
    ];

    for (what, token) in &refused {
        // Act
        let response = get_as(&app, ADMIN_ONLY, Some(token)).await;

        // Assert
        assert_eq!(response.status().as_u16(), 401, "{what}");
        let mut secrets = k1.secrets();
        secrets.extend(impostor.secrets());
        secrets.push(token.clone());
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        assert_unauthorized(response, &secrets).await;
    }
}

// ---------------------------------------------------------------------------
// Several static keys

#[actix_web::test]
async fn several_public_keys_verify_side_by_side_during_a_rotation() {
    // Arrange: two RSA keys of the same kind, old and new.
    let dir = tempfile::tempdir().unwrap();
    let old = KeyPair::generate(dir.path(), "old", Algorithm::RS256);
    let new = KeyPair::generate(dir.path(), "new", Algorithm::RS256);
    let retired = KeyPair::generate(dir.path(), "retired", Algorithm::RS256);
    let paths = vec![old.public_path.clone(), new.public_path.clone()];
    let app = spawn_app_with(move |settings| settings.auth.jwt_public_keys = paths).await;

    // Act / Assert: both configured keys verify, with or without a kid
    // (static keys have none, so a kid does not stop them being tried).
    for (what, token) in [
        ("the old key", old.sign(None, &admin())),
        ("the new key", new.sign(None, &admin())),
        (
            "the new key with a kid",
            new.sign(Some("2025-06"), &admin()),
        ),
    ] {
        let (status, body) = admin_status(&app, &token).await;
        assert_eq!(status, 200, "{what}: {body}");
    }
    let token = retired.sign(None, &admin());
    let response = get_as(&app, ADMIN_ONLY, Some(&token)).await;
    let secrets = retired.secrets();
    let mut secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    secrets.push(&token);
    assert_unauthorized(response, &secrets).await;
}

#[actix_web::test]
async fn several_secrets_verify_side_by_side_during_a_rotation() {
    // Arrange
    const OLD: &str = "rotation-test-old-secret-0123456789";
    const NEW: &str = "rotation-test-new-secret-9876543210";
    const RETIRED: &str = "rotation-test-retired-secret-000000";
    let app = spawn_app_with(|settings: &mut Settings| {
        settings.auth.jwt_secrets = vec![SecretString::from(NEW), SecretString::from(OLD)];
    })
    .await;

    // Act / Assert
    let with_kid = jsonwebtoken::encode(
        &Header {
            kid: Some("v2".into()),
            ..Header::new(Algorithm::HS256)
        },
        &admin(),
        &EncodingKey::from_secret(NEW.as_bytes()),
    )
    .expect("an HS256 token");
    for (what, token) in [
        ("the old secret", sign_hs256_with(OLD.as_bytes(), &admin())),
        ("the new secret", sign_hs256_with(NEW.as_bytes(), &admin())),
        ("the new secret with a kid", with_kid),
    ] {
        let (status, body) = admin_status(&app, &token).await;
        assert_eq!(status, 200, "{what}: {body}");
    }
    let token = sign_hs256_with(RETIRED.as_bytes(), &admin());
    let response = get_as(&app, ADMIN_ONLY, Some(&token)).await;
    assert_unauthorized(response, &[&token, OLD, NEW, RETIRED]).await;
}

/// A random suffix, so kids never repeat across runs.
fn uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

// ---------------------------------------------------------------------------
// Flags

#[test]
fn the_jwks_flags_reach_the_configuration_and_a_zero_refresh_interval_is_refused() {
    // Act
    let (code, stdout, stderr) = check_config(&[
        "--jwks-url",
        "https://idp.example/.well-known/jwks.json",
        "--jwks-refresh-secs",
        "60",
        "--jwks-min-refresh-secs",
        "0",
        "--jwt-leeway-secs",
        "5",
    ]);
    let (zero_code, _, zero_stderr) = check_config(&[
        "--jwks-url",
        "https://idp.example/.well-known/jwks.json",
        "--jwks-refresh-secs",
        "0",
    ]);
    let (http_code, _, http_stderr) =
        check_config(&["--jwks-url", "http://idp.example/.well-known/jwks.json"]);

    // Assert
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let effective: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("check-config prints JSON ({e}): {stdout}"));
    assert_eq!(effective["auth_enabled"], true, "{effective}");
    assert_eq!(effective["jwks_refresh_secs"], 60, "{effective}");
    assert_eq!(
        effective["jwks_min_refresh_secs"], 0,
        "0 = no floor: {effective}"
    );
    assert_eq!(effective["jwt_leeway_secs"], 5, "{effective}");
    // A zero period would re-fetch the key set in a busy loop.
    assert_eq!(zero_code, Some(1), "--jwks-refresh-secs 0: {zero_stderr}");
    assert!(zero_stderr.contains("jwks_refresh"), "{zero_stderr}");
    assert_eq!(http_code, Some(0), "{http_stderr}");
    assert!(
        http_stderr.contains("plain http"),
        "no warning about a plain http JWKS URL: {http_stderr}"
    );
}

// ---------------------------------------------------------------------------
// Credentials in the JWKS URL

/// A user name, password and API key in the JWKS URL, none of which may be
/// printed anywhere.
const URL_SECRETS: [&str; 3] = ["idp-user-42", "hunter2pass", "APIKEY0123456789"];

fn url_with_credentials(jwks: &JwksServer) -> url::Url {
    let mut url = jwks.url.clone();
    url.set_username(URL_SECRETS[0]).expect("a user name");
    url.set_password(Some(URL_SECRETS[1])).expect("a password");
    url.set_query(Some(&format!("key={}&tenant=acme", URL_SECRETS[2])));
    url
}

fn assert_no_url_secrets(text: &str, what: &str) {
    for secret in URL_SECRETS {
        assert!(!text.contains(secret), "{what} prints {secret:?}:\n{text}");
    }
}

#[actix_web::test]
async fn credentials_in_the_jwks_url_are_never_printed() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let k1 = KeyPair::generate(dir.path(), "k1", Algorithm::ES256);
    let jwks = JwksServer::start(vec![k1.jwk("k1")]);
    let url = url_with_credentials(&jwks);

    // Act / Assert: check-config.
    let (code, stdout, stderr) = check_config(&["--jwks-url", url.as_str()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_no_url_secrets(&stdout, "check-config");
    assert_no_url_secrets(&stderr, "check-config's warnings");
    let shown: Value = serde_json::from_str(&stdout).expect("check-config prints JSON");
    let shown_url = shown["jwks_url"].as_str().expect("jwks_url is shown");
    assert!(
        shown_url.contains("127.0.0.1") && shown_url.contains("key=***"),
        "the masked URL still tells which endpoint: {shown_url}"
    );

    // The log line of every fetch, from the real binary.
    let mut broker = crate::helpers::BrokerProcess::spawn_with(
        &dir.path().join("events.db"),
        dir.path().join("broker.log"),
        &["--jwks-url", url.as_str()],
        &[],
    );
    broker.wait_until_ready(&reqwest::Client::new()).await;
    let logs = eventually(SHORT, "the `jwks refreshed` log line", || {
        let logs = broker.logs();
        async move { logs.contains("jwks refreshed").then_some(logs) }
    })
    .await;
    assert_no_url_secrets(&logs, "the broker's log");
    assert!(
        jwks.hits() >= 1,
        "the endpoint was fetched with the credentials"
    );

    // `/sse/monitoring`'s configuration section.
    let app = spawn_app_with(move |settings| settings.auth.jwks_url = Some(url)).await;
    let token = k1.sign(Some("k1"), &admin());
    wait_until_accepted(&app, &token, "the k1 token to be accepted").await;
    let response = get_as(&app, "/sse/monitoring", Some(&token)).await;
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().await.expect("a monitoring body");
    assert_no_url_secrets(&body, "/sse/monitoring");
}
