//! `JwtVerifier`: tokens checked against the configured keys (HS256
//! secrets, RS256/ES256 PEM files, a JWKS endpoint by `kid`), with the
//! algorithm fixed by the key, never by the token.

use std::{collections::HashMap, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;

use super::{AuthError, Claims, JwksKeys, Principal, Scope};
use crate::{
    config::AuthSettings,
    domain::{ProjectAccess, ProjectId, UserId},
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

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the JWT public key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the JWT public key {0} is neither an RSA nor an EC (P-256) PEM public key")]
    Parse(String),
    /// Read as a key, a private key verifies nothing the broker's clients
    /// send (every token would be refused), and it does not belong on a
    /// verifier's disk.
    #[error(
        "the JWT public key {0} holds a private key; give its public half \
         (openssl pkey -in KEY -pubout)"
    )]
    PrivateKey(String),
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

/// The configured secrets and public keys, read and checked: what
/// `check-config` loads too, so it refuses what `serve` would.
pub fn static_keys(auth: &AuthSettings) -> Result<Vec<(DecodingKey, Algorithm)>, KeyError> {
    let mut keys = Vec::new();
    for secret in &auth.jwt_secrets {
        let length = secret.expose_secret().len();
        if length < crate::config::MIN_HS256_SECRET_BYTES {
            return Err(KeyError::WeakSecret(length));
        }
        keys.push((
            DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            Algorithm::HS256,
        ));
    }
    for path in &auth.jwt_public_keys {
        let named = || path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| KeyError::Read {
            path: named(),
            source,
        })?;
        if String::from_utf8_lossy(&pem).contains("PRIVATE KEY-----") {
            return Err(KeyError::PrivateKey(named()));
        }
        let key = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
            (key, Algorithm::RS256)
        } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
            if !is_on_p256(&pem) {
                return Err(KeyError::Parse(named()));
            }
            (key, Algorithm::ES256)
        } else {
            return Err(KeyError::Parse(named()));
        };
        keys.push(key);
    }
    Ok(keys)
}

/// Whether an EC public key's PEM (the key, or a certificate of it) is on
/// P-256, the one curve of ES256: jsonwebtoken reads a key on any curve,
/// which then verifies no token at all.
fn is_on_p256(pem: &[u8]) -> bool {
    use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, pem::PemObject};
    /// The DER of the object identifier of P-256 (prime256v1).
    const P256: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem)
        .map(|key| key.to_vec())
        .or_else(|_| CertificateDer::from_pem_slice(pem).map(|cert| cert.to_vec()));
    der.is_ok_and(|der| der.windows(P256.len()).any(|window| window == P256))
}

impl JwtVerifier {
    /// `None` when no key is configured (authentication off). With a JWKS
    /// URL this starts the fetcher, so call it inside the actix system.
    pub fn from_settings(auth: &AuthSettings, metrics: &Metrics) -> Result<Option<Self>, KeyError> {
        let static_keys = static_keys(auth)?;
        let jwks = auth.jwks_url.clone().map(|url| {
            JwksKeys::start(
                url,
                auth.jwks_refresh_interval,
                auth.jwks_min_refresh_interval,
                metrics.clone(),
            )
        });
        Ok(Self::with_keys(auth, static_keys, jwks))
    }

    /// A verifier of the configured secrets and public keys alone, no
    /// JWKS fetcher (no actix system needed): how `sse-broker token`
    /// checks what it minted as the broker would.
    pub fn of_static_keys(auth: &AuthSettings) -> Result<Option<Self>, KeyError> {
        Ok(Self::with_keys(auth, static_keys(auth)?, None))
    }

    fn with_keys(
        auth: &AuthSettings,
        static_keys: Vec<(DecodingKey, Algorithm)>,
        jwks: Option<JwksKeys>,
    ) -> Option<Self> {
        if static_keys.is_empty() && jwks.is_none() {
            return None;
        }
        let validations = ALGORITHMS
            .iter()
            .map(|&algorithm| (algorithm, validation(algorithm, auth)))
            .collect();
        Some(Self {
            static_keys: Arc::new(static_keys),
            jwks,
            validations: Arc::new(validations),
        })
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

    /// The keys from the JWKS endpoint, when one is configured.
    pub fn jwks(&self) -> Option<&JwksKeys> {
        self.jwks.as_ref()
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
            Err(error) => Err(match error.kind() {
                // Named from the payload, read again only on this path.
                jsonwebtoken::errors::ErrorKind::Json(_) => {
                    super::claim_types::misread_claim(token)
                        .map_or_else(|| map_error(&error), AuthError::BadClaims)
                }
                _ => map_error(&error),
            }),
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

/// What a token whose `exp` or `nbf` does not read is told.
const NUMERIC_DATES: &str =
    "exp and nbf must be NumericDates: whole seconds since 1970, below 2^64";
const EXP_DATE: &str = "exp must be a NumericDate: whole seconds since 1970, below 2^64";
const NBF_DATE: &str = "nbf must be a NumericDate: whole seconds since 1970, below 2^64";
const SUB_REQUIRED: &str = "sub is required, a string";

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
        // jsonwebtoken says "missing" of a claim it cannot read as well.
        ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => AuthError::BadClaims(EXP_DATE),
        ErrorKind::MissingRequiredClaim(_) => AuthError::BadClaims(SUB_REQUIRED),
        ErrorKind::InvalidClaimFormat(claim) if claim == "exp" => AuthError::BadClaims(EXP_DATE),
        ErrorKind::InvalidClaimFormat(claim) if claim == "nbf" => AuthError::BadClaims(NBF_DATE),
        ErrorKind::InvalidClaimFormat(_) => AuthError::BadClaims(NUMERIC_DATES),
        // The header was read before, and the signature checked: what does
        // not read is a signed claim missing or of the wrong type, not a
        // malformed token (RFC 6750 §3.1: `invalid_token`). serde's words
        // tell which (they are its own, never the claim's value).
        ErrorKind::Json(error) => {
            let said = error.to_string();
            AuthError::BadClaims(if said.starts_with("missing field `exp`") {
                "exp is required"
            } else if said.starts_with("duplicate field") {
                "a claim is given twice"
            } else if said.starts_with("missing field `sub`") {
                SUB_REQUIRED
            } else if said.contains("NumericDate") {
                NUMERIC_DATES
            } else {
                "a claim has the wrong type: sub is a string, exp and nbf are NumericDates, \
                 scope is a string of space-separated scopes, projects an array of ids, aud \
                 a string or an array of them, iss a string"
            })
        }
        _ => AuthError::Malformed,
    }
}

fn principal_from(claims: Claims) -> Result<Principal, AuthError> {
    let user_id = UserId::parse(&claims.sub)
        .map_err(|_| AuthError::BadClaims("sub is not a valid user id"))?;
    let scopes = claims
        .scope
        // RFC 6749 §3.3: scopes are separated by spaces (%x20) alone. A
        // no-break space or a tab is part of a word, so "subscribe\u{a0}admin"
        // is one unknown scope, not `admin`.
        .split(' ')
        .filter_map(Scope::parse)
        .collect();
    let projects = if claims.projects.iter().any(|p| p == "*") {
        // `["pA", "*"]` is a mistake in the issuer, not a grant of all: "*"
        // stands alone.
        if claims.projects.len() > 1 {
            return Err(AuthError::BadClaims(
                "projects holds \"*\" beside other ids; [\"*\"] alone grants every project",
            ));
        }
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
        // Set by the Authenticator, which knows the broker's setting.
        confined: false,
    })
}
