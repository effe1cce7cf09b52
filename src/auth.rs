//! Authentication: JWT verification, the caller's [`Principal`], and token
//! minting for local use (`sse-broker token`).
//!
//! Authentication is on as soon as a key is configured (`--jwt-secret` for
//! HS256, `--jwt-public-key` for RS256/ES256). The accepted algorithm is
//! fixed by the key type, so a token cannot pick its own (`alg: none`, or an
//! HS256 token signed with an RSA public key, are refused). Scopes are
//! checked by the `Authenticated<S>` extractor in `http::extract`.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::{
    config::AuthSettings,
    domain::{ProjectAccess, ProjectId, UserId, Viewer},
};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

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
    #[error("JWKS endpoints are not supported by this build; use --jwt-public-key or --jwt-secret")]
    JwksUnsupported,
}

/// Verifies tokens against the configured keys.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Arc<Vec<(DecodingKey, Validation)>>,
}

impl JwtVerifier {
    /// `None` when no key is configured (authentication off).
    pub fn from_settings(auth: &AuthSettings) -> Result<Option<Self>, KeyError> {
        if auth.jwks_url.is_some() {
            return Err(KeyError::JwksUnsupported);
        }
        let mut keys = Vec::new();
        if let Some(secret) = &auth.jwt_secret {
            keys.push((
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                validation(Algorithm::HS256, auth),
            ));
        }
        if let Some(path) = &auth.jwt_public_key {
            let pem = std::fs::read(path).map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let key = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                (key, validation(Algorithm::RS256, auth))
            } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                (key, validation(Algorithm::ES256, auth))
            } else {
                return Err(KeyError::Parse(path.display().to_string()));
            };
            keys.push(key);
        }
        Ok((!keys.is_empty()).then(|| Self {
            keys: Arc::new(keys),
        }))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let mut last_error = AuthError::BadSignature;
        for (key, validation) in self.keys.iter() {
            if !validation.algorithms.contains(&header.alg) {
                continue;
            }
            match jsonwebtoken::decode::<Claims>(token, key, validation) {
                Ok(data) => return principal_from(data.claims),
                Err(error) => last_error = map_error(&error),
            }
        }
        Err(last_error)
    }
}

fn validation(algorithm: Algorithm, auth: &AuthSettings) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY_SECS;
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
    let (algorithm, key) = match (request.private_key_pem, &auth.jwt_secret) {
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
            jwt_secret: Some(SecretString::from("test-secret")),
            ..AuthSettings::default()
        }
    }

    fn token(scope: &str, projects: &[&str], ttl: i64) -> String {
        let now = unix_now() as i64;
        let claims = serde_json::json!({"sub": "alice", "exp": now + ttl, "scope": scope, "projects": projects});
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"test-secret"),
        )
        .unwrap()
    }

    #[test]
    fn a_minted_token_verifies_with_its_scopes_and_projects() {
        let verifier = JwtVerifier::from_settings(&settings()).unwrap().unwrap();
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
        let principal = verifier.verify(&minted).unwrap();
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
        let verifier = JwtVerifier::from_settings(&settings()).unwrap().unwrap();
        assert_eq!(
            verifier.verify(&token("admin", &["*"], -3600)).err(),
            Some(AuthError::Expired)
        );
    }

    #[test]
    fn alg_none_and_garbage_are_refused() {
        let verifier = JwtVerifier::from_settings(&settings()).unwrap().unwrap();
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        let none = format!("{header}.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.");
        assert!(verifier.verify(&none).is_err());
        assert!(verifier.verify("not-a-token").is_err());
        assert!(
            verifier
                .verify(&format!("{}x", token("admin", &[], 60)))
                .is_err()
        );
    }

    #[test]
    fn a_configured_audience_must_be_present_and_may_be_one_of_several() {
        let auth = AuthSettings {
            audience: Some("sse-broker".into()),
            ..settings()
        };
        let verifier = JwtVerifier::from_settings(&auth).unwrap().unwrap();
        let sign = |aud: serde_json::Value| {
            let mut claims = serde_json::json!({"sub": "alice", "exp": unix_now() + 60});
            if !aud.is_null() {
                claims["aud"] = aud;
            }
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"test-secret"),
            )
            .unwrap()
        };
        assert!(verifier.verify(&sign("sse-broker".into())).is_ok());
        assert!(
            verifier
                .verify(&sign(serde_json::json!(["billing", "sse-broker"])))
                .is_ok()
        );
        assert_eq!(
            verifier.verify(&sign(serde_json::Value::Null)).err(),
            Some(AuthError::WrongAudienceOrIssuer)
        );
        assert_eq!(
            verifier.verify(&sign("billing".into())).err(),
            Some(AuthError::WrongAudienceOrIssuer)
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = AuthSettings {
            jwt_secret: Some(SecretString::from("other")),
            ..AuthSettings::default()
        };
        let verifier = JwtVerifier::from_settings(&other).unwrap().unwrap();
        assert_eq!(
            verifier.verify(&token("admin", &[], 60)).err(),
            Some(AuthError::BadSignature)
        );
    }
}
