//! Token minting for local use (`sse-broker token`).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;

use super::{Audience, Claims, unix_now};
use crate::config::AuthSettings;

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
