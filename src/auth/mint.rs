//! Token minting for local use (`sse-broker token`).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;

use super::{Audience, Claims, JwtVerifier, Scope, unix_now};
use crate::{
    config::AuthSettings,
    domain::{ProjectId, UserId},
};

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("no signing key: configure --jwt-secret, or pass --private-key for RS256/ES256")]
    NoKey,
    #[error("the private key is neither an RSA nor a P-256 PKCS#8 PEM private key")]
    BadKey,
    #[error(
        "the private key is a SEC1 EC key (`BEGIN EC PRIVATE KEY`); ES256 takes PKCS#8: \
         `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8` converts it"
    )]
    Sec1Key,
    #[error("--sub: {0}")]
    BadSubject(String),
    #[error("--scope: {0:?} is not a scope (subscribe, publish, admin)")]
    UnknownScope(String),
    #[error("--scope: at least one scope (subscribe, publish, admin)")]
    NoScope,
    #[error("--project: {0}")]
    BadProject(String),
    #[error("--ttl: a token lives at least 1 second")]
    ZeroTtl,
    #[error("--ttl: a token lives at most {MAX_TTL_SECS} seconds (10 years)")]
    TtlTooLong,
    #[error(
        "--private-key: its public half is not among the configured --jwt-public-key files; \
         this broker would refuse the token"
    )]
    NotAConfiguredKey,
    #[error("{0}")]
    PublicKeys(String),
    #[error(
        "the private key is an EC key on another curve than P-256; ES256 takes P-256: \
         openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem"
    )]
    NotP256,
    #[error("signing failed: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// Longer lifetimes are refused: they are no longer a lifetime, and past
/// `u64` the expiry would wrap into the past.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

/// What to put in a minted token.
pub struct TokenRequest<'a> {
    pub sub: &'a str,
    pub scope: &'a str,
    pub projects: &'a [String],
    pub ttl_secs: u64,
    pub private_key_pem: Option<&'a [u8]>,
}

/// Signs a token with the configured HS256 secret, or with a PEM private key
/// (RS256 for RSA, ES256 for P-256).
pub fn mint(auth: &AuthSettings, request: &TokenRequest<'_>) -> Result<String, MintError> {
    check(request)?;
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
            // A public key parses as one too, then fails to sign.
            if !String::from_utf8_lossy(pem).contains("PRIVATE KEY-----") {
                return Err(MintError::BadKey);
            }
            if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
                (Algorithm::RS256, key)
            } else if let Ok(key) = EncodingKey::from_ec_pem(pem) {
                (Algorithm::ES256, key)
            } else if String::from_utf8_lossy(pem).contains("BEGIN EC PRIVATE KEY") {
                return Err(MintError::Sec1Key);
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
    let token = jsonwebtoken::encode(&Header::new(algorithm), &claims, &key).map_err(|error| {
        // `from_ec_pem` takes a key on any curve; only signing tells.
        match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey => MintError::NotP256,
            _ => MintError::Sign(error),
        }
    })?;
    // Signed with a private key whose public half is not among the
    // configured ones, the token would be refused: not printed. (Without
    // public keys, a JWKS endpoint may hold it: unchecked.)
    if request.private_key_pem.is_some() && !auth.jwt_public_keys.is_empty() {
        let verifier = JwtVerifier::of_static_keys(auth)
            .map_err(|error| MintError::PublicKeys(error.to_string()))?;
        if verifier.is_some_and(|verifier| verifier.verify_with_current_keys(&token).is_err()) {
            return Err(MintError::NotAConfiguredKey);
        }
    }
    Ok(token)
}

/// What the broker would refuse in the token, refused before it is made.
fn check(request: &TokenRequest<'_>) -> Result<(), MintError> {
    UserId::parse(request.sub).map_err(|e| MintError::BadSubject(e.to_string()))?;
    let mut scopes = request
        .scope
        .split(' ')
        .filter(|scope| !scope.is_empty())
        .peekable();
    if scopes.peek().is_none() {
        return Err(MintError::NoScope);
    }
    if let Some(unknown) = scopes.find(|scope| Scope::parse(scope).is_none()) {
        return Err(MintError::UnknownScope(unknown.to_owned()));
    }
    if request.projects.len() > 1 && request.projects.iter().any(|p| p == "*") {
        return Err(MintError::BadProject(
            "\"*\" grants every project alone; it cannot be listed with other ids".into(),
        ));
    }
    for project in request.projects.iter().filter(|p| p.as_str() != "*") {
        ProjectId::parse(project).map_err(|e| MintError::BadProject(e.to_string()))?;
    }
    if request.ttl_secs == 0 {
        return Err(MintError::ZeroTtl);
    }
    if request.ttl_secs > MAX_TTL_SECS {
        return Err(MintError::TtlTooLong);
    }
    Ok(())
}
