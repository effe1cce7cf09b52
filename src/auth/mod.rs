//! Authentication: JWT verification, the caller's [`Principal`], and token
//! minting for local use (`sse-broker token`).
//!
//! Authentication is on as soon as a key is configured (`--jwt-secret` for
//! HS256, `--jwt-public-key` for RS256/ES256, `--jwks-url` for keys chosen by
//! `kid`; several of each during a rotation). The accepted algorithm is
//! fixed by the key, so a token cannot pick its own (`alg: none`, or an
//! HS256 token signed with an RSA public key, are refused). Scopes are
//! checked by the `Authenticated<S>` extractor in `http::extract`.

mod authenticator;
mod jwks;

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

pub use authenticator::Authenticator;
pub use jwks::JwksKeys;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::{
    config::AuthSettings,
    domain::{ProjectAccess, ProjectId, UserId, Viewer},
    telemetry::Metrics,
};

/// Every algorithm a key of ours can stand for.
const ALGORITHMS: [Algorithm; 10] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The claims the broker reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Space-separated: `subscribe`, `publish`, `admin`.
    #[serde(default)]
    pub scope: String,
    /// Project ids, or `["*"]`.
    #[serde(default)]
    pub projects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// The `aud` claim: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A permission named in a token's `scope` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Subscribe,
    Publish,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Publish => "publish",
            Self::Admin => "admin",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "subscribe" => Some(Self::Subscribe),
            "publish" => Some(Self::Publish),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// Who is calling, and what they may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's `sub`; `None` when authentication is off.
    pub user_id: Option<UserId>,
    scopes: BTreeSet<Scope>,
    pub projects: ProjectAccess,
    /// Unix seconds; streams are closed when the token expires.
    pub expires_at: Option<u64>,
    pub authenticated: bool,
}

impl Principal {
    /// The caller when authentication is off: every scope, every project.
    pub fn anonymous() -> Self {
        Self {
            user_id: None,
            scopes: [Scope::Subscribe, Scope::Publish, Scope::Admin].into(),
            projects: ProjectAccess::All,
            expires_at: None,
            authenticated: false,
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The authenticated user, whose streams count against the per-user cap.
    pub fn owner(&self) -> Option<UserId> {
        self.user_id.clone().filter(|_| self.authenticated)
    }

    pub fn may_access(&self, project: &ProjectId) -> bool {
        self.projects.allows(project)
    }

    pub fn viewer(&self) -> Viewer {
        Viewer {
            user_id: self.user_id.clone(),
            projects: self.projects.clone(),
        }
    }
}

/// Why a token was refused. The message never echoes the token or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token signature or algorithm is not accepted")]
    BadSignature,
    #[error("the token audience or issuer is not accepted")]
    WrongAudienceOrIssuer,
    #[error("the token's claims are invalid: {0}")]
    BadClaims(&'static str),
    #[error(
        "the sse_token cookie authenticates only GET and HEAD requests; send writes with Authorization: Bearer"
    )]
    CookieOnWrite,
    #[error("the token's signing key is not known")]
    UnknownKey,
    /// RFC 7515 §4.1.11: a `crit` header names extensions the recipient must
    /// understand; the broker understands none.
    #[error("the token's header lists critical extensions (crit) this broker does not support")]
    UnsupportedCritical,
    /// No key set fetched yet: the caller may be fine, the broker cannot tell.
    #[error("the signing keys are not available yet; retry shortly")]
    KeysUnavailable,
}

impl AuthError {
    /// Stable label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadSignature => "bad_signature",
            Self::WrongAudienceOrIssuer => "wrong_audience_or_issuer",
            Self::BadClaims(_) => "bad_claims",
            Self::CookieOnWrite => "cookie_on_write",
            Self::UnknownKey => "unknown_key",
            Self::UnsupportedCritical => "unsupported_crit",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the JWT public key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the JWT public key {0} is neither an RSA nor an EC (P-256) PEM public key")]
    Parse(String),
    #[error(
        "an HS256 secret is {0} bytes; at least {min} are needed (RFC 7518 section 3.2)",
        min = crate::config::MIN_HS256_SECRET_BYTES
    )]
    WeakSecret(usize),
}

/// Verifies tokens against the configured keys.
#[derive(Clone)]
pub struct JwtVerifier {
    static_keys: Arc<Vec<(DecodingKey, Algorithm)>>,
    jwks: Option<JwksKeys>,
    validations: Arc<HashMap<Algorithm, Validation>>,
}

impl JwtVerifier {
    /// `None` when no key is configured (authentication off). With a JWKS
    /// URL this starts the fetcher, so call it inside the actix system.
    pub fn from_settings(auth: &AuthSettings, metrics: &Metrics) -> Result<Option<Self>, KeyError> {
        let mut static_keys = Vec::new();
        for secret in &auth.jwt_secrets {
            let length = secret.expose_secret().len();
            if length < crate::config::MIN_HS256_SECRET_BYTES {
                return Err(KeyError::WeakSecret(length));
            }
            static_keys.push((
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                Algorithm::HS256,
            ));
        }
        for path in &auth.jwt_public_keys {
            let pem = std::fs::read(path).map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let key = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                (key, Algorithm::RS256)
            } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                (key, Algorithm::ES256)
            } else {
                return Err(KeyError::Parse(path.display().to_string()));
            };
            static_keys.push(key);
        }
        let jwks = auth.jwks_url.clone().map(|url| {
            JwksKeys::start(
                url,
                auth.jwks_refresh_interval,
                auth.jwks_min_refresh_interval,
                metrics.clone(),
            )
        });
        if static_keys.is_empty() && jwks.is_none() {
            return Ok(None);
        }
        let validations = ALGORITHMS
            .iter()
            .map(|&algorithm| (algorithm, validation(algorithm, auth)))
            .collect();
        Ok(Some(Self {
            static_keys: Arc::new(static_keys),
            jwks,
            validations: Arc::new(validations),
        }))
    }

    /// Verifies `token`; a `kid` missing from the JWKS set first refreshes
    /// the set (rate-limited) and tries again.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        match (self.verify_with_current_keys(token), &self.jwks) {
            (Err(AuthError::UnknownKey | AuthError::KeysUnavailable), Some(jwks)) => {
                jwks.refresh_for_unknown_kid().await;
                self.verify_with_current_keys(token)
            }
            (result, _) => result,
        }
    }

    /// Verifies against the keys at hand, without fetching.
    pub fn verify_with_current_keys(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.crit.is_some() {
            return Err(AuthError::UnsupportedCritical);
        }
        let mut last_error = None;
        let mut kid_unknown = false;
        if let Some(jwks) = &self.jwks {
            match jwks.current() {
                None if self.static_keys.is_empty() => return Err(AuthError::KeysUnavailable),
                None => {}
                Some(set) => match &header.kid {
                    Some(kid) => match set.get(kid) {
                        Some(key) => {
                            return self.decode(token, header.alg, &key.key, key.algorithm);
                        }
                        None => kid_unknown = true,
                    },
                    None => {
                        for key in set.all().filter(|k| k.algorithm == header.alg) {
                            match self.decode(token, header.alg, &key.key, key.algorithm) {
                                Ok(principal) => return Ok(principal),
                                Err(error) => last_error = Some(error),
                            }
                        }
                    }
                },
            }
        }
        for (key, algorithm) in self.static_keys.iter().filter(|(_, a)| *a == header.alg) {
            match self.decode(token, header.alg, key, *algorithm) {
                Ok(principal) => return Ok(principal),
                Err(error) => last_error = Some(error),
            }
        }
        // A signature failure against static keys says less than "this kid
        // is unknown", which is what triggers a refresh.
        if kid_unknown
            && !matches!(
                last_error,
                Some(AuthError::Expired | AuthError::NotYetValid)
            )
        {
            return Err(AuthError::UnknownKey);
        }
        Err(last_error.unwrap_or(AuthError::BadSignature))
    }

    fn decode(
        &self,
        token: &str,
        token_algorithm: Algorithm,
        key: &DecodingKey,
        key_algorithm: Algorithm,
    ) -> Result<Principal, AuthError> {
        if token_algorithm != key_algorithm {
            return Err(AuthError::BadSignature);
        }
        let validation = self
            .validations
            .get(&key_algorithm)
            .ok_or(AuthError::BadSignature)?;
        match jsonwebtoken::decode::<Claims>(token, key, validation) {
            Ok(data) => principal_from(data.claims),
            Err(error) => Err(map_error(&error)),
        }
    }
}

fn validation(algorithm: Algorithm, auth: &AuthSettings) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = auth.leeway.as_secs();
    validation.validate_nbf = true;
    // A configured audience or issuer must be present, not merely match
    // when present: jsonwebtoken skips the check for an absent claim.
    let mut required = vec!["exp", "sub"];
    if auth.audience.is_some() {
        required.push("aud");
    }
    if auth.issuer.is_some() {
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    match &auth.audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    if let Some(issuer) = &auth.issuer {
        validation.set_issuer(&[issuer]);
    }
    validation
}

fn map_error(error: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => AuthError::WrongAudienceOrIssuer,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthError::BadSignature,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" || claim == "iss" => {
            AuthError::WrongAudienceOrIssuer
        }
        ErrorKind::MissingRequiredClaim(_) => AuthError::BadClaims("exp and sub are required"),
        _ => AuthError::Malformed,
    }
}

fn principal_from(claims: Claims) -> Result<Principal, AuthError> {
    let user_id = UserId::parse(&claims.sub)
        .map_err(|_| AuthError::BadClaims("sub is not a valid user id"))?;
    let scopes = claims
        .scope
        .split_whitespace()
        .filter_map(Scope::parse)
        .collect();
    let projects = if claims.projects.iter().any(|p| p == "*") {
        ProjectAccess::All
    } else {
        ProjectAccess::Only(Arc::new(
            claims
                .projects
                .iter()
                .map(|p| ProjectId::parse(p))
                .collect::<Result<_, _>>()
                .map_err(|_| AuthError::BadClaims("projects holds an invalid project id"))?,
        ))
    };
    Ok(Principal {
        user_id: Some(user_id),
        scopes,
        projects,
        expires_at: Some(claims.exp),
        authenticated: true,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("no signing key: configure --jwt-secret, or pass --private-key for RS256/ES256")]
    NoKey,
    #[error("the private key is neither an RSA nor a P-256 PKCS#8 PEM key")]
    BadKey,
    #[error("signing failed: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// What to put in a minted token.
pub struct TokenRequest<'a> {
    pub sub: &'a str,
    pub scope: &'a str,
    pub projects: &'a [String],
    pub ttl_secs: u64,
    pub private_key_pem: Option<&'a [u8]>,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Signs a token with the configured HS256 secret, or with a PEM private key
/// (RS256 for RSA, ES256 for P-256).
pub fn mint(auth: &AuthSettings, request: &TokenRequest<'_>) -> Result<String, MintError> {
    let now = unix_now();
    let claims = Claims {
        sub: request.sub.to_owned(),
        exp: now + request.ttl_secs,
        iat: Some(now),
        nbf: None,
        scope: request.scope.to_owned(),
        projects: request.projects.to_vec(),
        aud: auth.audience.clone().map(Audience::One),
        iss: auth.issuer.clone(),
    };
    let (algorithm, key) = match (request.private_key_pem, auth.jwt_secrets.first()) {
        (Some(pem), _) => {
            if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
                (Algorithm::RS256, key)
            } else if let Ok(key) = EncodingKey::from_ec_pem(pem) {
                (Algorithm::ES256, key)
            } else {
                return Err(MintError::BadKey);
            }
        }
        (None, Some(secret)) => (
            Algorithm::HS256,
            EncodingKey::from_secret(secret.expose_secret().as_bytes()),
        ),
        (None, None) => return Err(MintError::NoKey),
    };
    jsonwebtoken::encode(&Header::new(algorithm), &claims, &key).map_err(MintError::Sign)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings() -> AuthSettings {
        AuthSettings {
            jwt_secrets: vec![SecretString::from("unit-test-secret-0123456789abcdefghij")],
            ..AuthSettings::default()
        }
    }

    fn verifier(auth: &AuthSettings) -> JwtVerifier {
        JwtVerifier::from_settings(auth, &Metrics::new("unit", None))
            .unwrap()
            .unwrap()
    }

    fn token(scope: &str, projects: &[&str], ttl: i64) -> String {
        let now = unix_now() as i64;
        let claims = serde_json::json!({"sub": "alice", "exp": now + ttl, "scope": scope, "projects": projects});
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"unit-test-secret-0123456789abcdefghij"),
        )
        .unwrap()
    }

    #[test]
    fn a_minted_token_verifies_with_its_scopes_and_projects() {
        let verifier = verifier(&settings());
        let minted = mint(
            &settings(),
            &TokenRequest {
                sub: "alice",
                scope: "subscribe publish",
                projects: &["p1".into()],
                ttl_secs: 60,
                private_key_pem: None,
            },
        )
        .unwrap();
        let principal = verifier.verify_with_current_keys(&minted).unwrap();
        assert!(
            principal.has(Scope::Subscribe)
                && principal.has(Scope::Publish)
                && !principal.has(Scope::Admin)
        );
        assert!(principal.may_access(&ProjectId::parse("p1").unwrap()));
        assert!(!principal.may_access(&ProjectId::parse("p2").unwrap()));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let verifier = verifier(&settings());
        assert_eq!(
            verifier
                .verify_with_current_keys(&token("admin", &["*"], -3600))
                .err(),
            Some(AuthError::Expired)
        );
    }

    #[test]
    fn alg_none_and_garbage_are_refused() {
        let verifier = verifier(&settings());
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        let none = format!("{header}.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.");
        assert!(verifier.verify_with_current_keys(&none).is_err());
        assert!(verifier.verify_with_current_keys("not-a-token").is_err());
        assert!(
            verifier
                .verify_with_current_keys(&format!("{}x", token("admin", &[], 60)))
                .is_err()
        );
    }

    #[test]
    fn a_configured_audience_must_be_present_and_may_be_one_of_several() {
        let auth = AuthSettings {
            audience: Some("sse-broker".into()),
            ..settings()
        };
        let verifier = verifier(&auth);
        let sign = |aud: serde_json::Value| {
            let mut claims = serde_json::json!({"sub": "alice", "exp": unix_now() + 60});
            if !aud.is_null() {
                claims["aud"] = aud;
            }
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"unit-test-secret-0123456789abcdefghij"),
            )
            .unwrap()
        };
        assert!(
            verifier
                .verify_with_current_keys(&sign("sse-broker".into()))
                .is_ok()
        );
        assert!(
            verifier
                .verify_with_current_keys(&sign(serde_json::json!(["billing", "sse-broker"])))
                .is_ok()
        );
        assert_eq!(
            verifier
                .verify_with_current_keys(&sign(serde_json::Value::Null))
                .err(),
            Some(AuthError::WrongAudienceOrIssuer)
        );
        assert_eq!(
            verifier
                .verify_with_current_keys(&sign("billing".into()))
                .err(),
            Some(AuthError::WrongAudienceOrIssuer)
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = AuthSettings {
            jwt_secrets: vec![SecretString::from("another-unit-test-secret-0123456789")],
            ..AuthSettings::default()
        };
        let verifier = verifier(&other);
        assert_eq!(
            verifier
                .verify_with_current_keys(&token("admin", &[], 60))
                .err(),
            Some(AuthError::BadSignature)
        );
    }
}
