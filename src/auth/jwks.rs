//! Signing keys from a JWKS endpoint (`--jwks-url`), chosen by `kid`.
//!
//! The [`JwksFetcher`] actor owns the HTTP client and is the only writer of
//! the key set; verifiers read the current set through [`JwksKeys`] without
//! a message round trip. The set is re-fetched every `jwks_refresh_interval`
//! and, when a token names a `kid` the set lacks, at once — but never more
//! often than `jwks_min_refresh_interval`, so a flood of tokens with random
//! `kid`s costs the identity provider one fetch per interval, not one per
//! request. A refresh replaces the whole set: a key the endpoint dropped is
//! refused from then on.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use actix::{
    Actor, ActorFutureExt, AsyncContext, AtomicResponse, Context, Handler, Message, WrapFuture,
};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk},
};

use crate::telemetry::Metrics;

/// A JWKS document larger than this is refused (a real one is a few KiB).
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Until the first fetch succeeds, retry this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// One verification key of the set.
#[derive(Clone)]
pub struct JwksKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
}

/// The keys of one fetch.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, JwksKey>,
    /// Keys published without a `kid`: tried for tokens without one.
    unnamed: Vec<JwksKey>,
}

impl KeySet {
    pub fn get(&self, kid: &str) -> Option<&JwksKey> {
        self.by_kid.get(kid)
    }

    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every key, for a token that names none.
    pub fn all(&self) -> impl Iterator<Item = &JwksKey> {
        self.by_kid.values().chain(&self.unnamed)
    }
}

/// Read access to the current key set, and the way to ask for a refresh.
#[derive(Clone)]
pub struct JwksKeys {
    current: Arc<RwLock<Option<Arc<KeySet>>>>,
    fetcher: actix::Addr<JwksFetcher>,
}

impl JwksKeys {
    /// Starts the fetcher on the current arbiter; the first fetch starts at once.
    pub fn start(
        url: url::Url,
        refresh_interval: Duration,
        min_refresh_interval: Duration,
        metrics: Metrics,
    ) -> Self {
        let current = Arc::new(RwLock::new(None));
        let fetcher = JwksFetcher {
            masked_url: crate::config::masked_url(&url),
            url,
            client: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .user_agent(concat!("sse-broker/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("a client with a timeout and a user agent builds"),
            current: current.clone(),
            refresh_interval,
            min_refresh_interval,
            last_attempt: None,
            last_ended: None,
            last_success: None,
            metrics,
        }
        .start();
        Self { current, fetcher }
    }

    /// The set of the last successful fetch; `None` before the first.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fetches now unless a fetch happened within the minimum interval;
    /// resolves once the set is as fresh as it is allowed to be.
    pub async fn refresh_for_unknown_kid(&self) {
        let _ = self
            .fetcher
            .send(RefreshNow {
                asked_at: Instant::now(),
            })
            .await;
    }
}

pub struct JwksFetcher {
    url: url::Url,
    /// The URL as logged: credentials in it stay out of the logs.
    masked_url: String,
    client: reqwest::Client,
    current: Arc<RwLock<Option<Arc<KeySet>>>>,
    refresh_interval: Duration,
    min_refresh_interval: Duration,
    last_attempt: Option<Instant>,
    /// When the last fetch ended, well or not.
    last_ended: Option<Instant>,
    last_success: Option<Instant>,
    metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// Without its URL (see `From` below): it may hold credentials.
    #[error("request failed: {0}")]
    Http(reqwest::Error),
    #[error("the document is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("the document is not a JWK set: {0}")]
    NotAJwkSet(serde_json::Error),
    #[error("the document holds no usable signing key")]
    NoUsableKey,
}

impl From<reqwest::Error> for FetchError {
    fn from(error: reqwest::Error) -> Self {
        Self::Http(error.without_url())
    }
}

impl JwksFetcher {
    fn due(&self) -> bool {
        match self.last_success {
            None => true,
            Some(at) => at.elapsed() >= self.refresh_interval,
        }
    }

    /// One fetch, run inside the actor (so fetches never overlap) and
    /// applied when it completes.
    fn fetch(&mut self) -> impl actix::ActorFuture<Self, Output = ()> + use<> {
        self.last_attempt = Some(Instant::now());
        let client = self.client.clone();
        let url = self.url.clone();
        async move { fetch_key_set(&client, url).await }
            .into_actor(self)
            .map(|result, fetcher, _| fetcher.apply(result))
    }

    fn apply(&mut self, result: Result<KeySet, FetchError>) {
        self.last_ended = Some(Instant::now());
        match result {
            Ok(set) => {
                tracing::info!(keys = set.len(), url = %self.masked_url, "jwks refreshed");
                self.metrics.record_jwks_refresh(true);
                self.last_success = Some(Instant::now());
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(set));
            }
            Err(error) => {
                // The previous set stays: an IdP outage must not log everyone out.
                tracing::warn!(%error, url = %self.masked_url, "jwks refresh failed");
                self.metrics.record_jwks_refresh(false);
            }
        }
    }
}

impl Actor for JwksFetcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let first = self.fetch();
        ctx.wait(first);
        let tick = self.refresh_interval.min(RETRY_INTERVAL);
        ctx.run_interval(tick, |fetcher, ctx| {
            if fetcher.due() {
                let fetch = fetcher.fetch();
                ctx.wait(fetch);
            }
        });
    }
}

/// Fetch unless one happened within the minimum interval, or ended since
/// the request asked.
#[derive(Message)]
#[rtype(result = "()")]
struct RefreshNow {
    asked_at: Instant,
}

impl Handler<RefreshNow> for JwksFetcher {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, asked: RefreshNow, _: &mut Self::Context) -> Self::Result {
        let recent = self
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.min_refresh_interval);
        // Requests that came while a fetch ran wait for it, then for no
        // other: each its own fetch, in turn, made the n-th wait n fetches
        // (a minute behind a hanging identity provider).
        let fetched_since = self.last_ended.is_some_and(|at| at >= asked.asked_at);
        if recent || fetched_since {
            return AtomicResponse::new(Box::pin(actix::fut::ready(())));
        }
        AtomicResponse::new(Box::pin(self.fetch()))
    }
}

async fn fetch_key_set(client: &reqwest::Client, url: url::Url) -> Result<KeySet, FetchError> {
    let mut response = client.get(url).send().await?.error_for_status()?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let key_set = parse_key_set(&body)?;
    if key_set.is_empty() {
        return Err(FetchError::NoUsableKey);
    }
    Ok(key_set)
}

/// The document's usable keys. Keys of other kinds (encryption keys,
/// symmetric keys, unknown curves) are skipped, not fatal: an IdP adding a
/// key type we do not use must not break the others.
fn parse_key_set(body: &[u8]) -> Result<KeySet, FetchError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(body).map_err(FetchError::NotAJwkSet)?;
    let mut set = KeySet::default();
    for raw in document.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        let Some(key) = verification_key(&jwk) else {
            continue;
        };
        match jwk.common.key_id {
            Some(kid) => {
                set.by_kid.insert(kid, key);
            }
            None => set.unnamed.push(key),
        }
    }
    Ok(set)
}

fn verification_key(jwk: &Jwk) -> Option<JwksKey> {
    use jsonwebtoken::jwk::PublicKeyUse;
    if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
        return None;
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        // A symmetric key in a public document is a misconfiguration, and
        // accepting one would let anyone who can read it sign tokens.
        _ => return None,
    };
    let algorithm = match jwk.common.key_algorithm {
        Some(declared) => Algorithm::try_from(declared).ok()?,
        None => implied,
    };
    if matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(JwksKey { key, algorithm })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_keys_are_skipped_and_usable_ones_kept_by_kid() {
        let document = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "sXch", "e": "AQAB"},
            {"kty": "weird", "kid": "x"},
            {"kty": "EC", "kid": "ec1", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        let set = parse_key_set(document.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.get("ec1").unwrap().algorithm, Algorithm::ES256);
        assert!(set.get("secret").is_none() && set.get("enc").is_none());
    }

    #[test]
    fn a_document_that_is_not_a_key_set_is_an_error() {
        assert!(matches!(
            parse_key_set(b"{\"nope\": 1}"),
            Err(FetchError::NotAJwkSet(_))
        ));
    }
}
