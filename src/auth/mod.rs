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
mod claim_types;
mod jwks;
mod mint;
mod tickets;
mod verifier;

use std::{
    collections::BTreeSet,
    time::{SystemTime, UNIX_EPOCH},
};

pub use authenticator::Authenticator;
pub use jwks::JwksKeys;
pub use mint::{MintError, TokenRequest, mint};
pub use tickets::{IssuedTicket, Tickets};
pub use verifier::{JwtVerifier, KeyError, static_keys};

use serde::{Deserialize, Serialize};

use crate::domain::{ProjectAccess, ProjectId, UserId, Viewer, WriteAccess};

/// The claims the broker reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(deserialize_with = "numeric_date::whole")]
    pub exp: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date::optional"
    )]
    pub iat: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date::optional"
    )]
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

/// NumericDate claims (RFC 7519 §2) read as whole seconds, a fraction cut
/// off: a fraction is valid there, and issuers writing `time.time()` send
/// one (jsonwebtoken's own check of `exp` and `nbf` takes it; a `u64`
/// field here refused the whole token as malformed).
mod numeric_date {
    use std::fmt;

    use serde::{
        Deserialize, Deserializer,
        de::{Error, Visitor},
    };

    struct Seconds;

    impl Visitor<'_> for Seconds {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a NumericDate: seconds since 1970")
        }

        fn visit_u64<E: Error>(self, seconds: u64) -> Result<u64, E> {
            Ok(seconds)
        }

        fn visit_i64<E: Error>(self, seconds: i64) -> Result<u64, E> {
            u64::try_from(seconds).map_err(|_| E::custom("a NumericDate before 1970"))
        }

        fn visit_f64<E: Error>(self, seconds: f64) -> Result<u64, E> {
            if seconds.is_finite() && seconds >= 0.0 {
                // Saturates past u64::MAX: never, as an integer that large is.
                Ok(seconds as u64)
            } else {
                Err(E::custom("a NumericDate is seconds since 1970"))
            }
        }
    }

    pub fn whole<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(Seconds)
    }

    pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        struct Whole(#[serde(deserialize_with = "whole")] u64);
        Ok(Option::<Whole>::deserialize(deserializer)?.map(|Whole(seconds)| seconds))
    }
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

    pub(super) fn parse(raw: &str) -> Option<Self> {
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
    /// Writes only within its projects: no event and no task without one
    /// (`--publish-within-projects`, for a token that does not grant `*`).
    pub confined: bool,
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
            confined: false,
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

    /// The tasks this caller may write to.
    pub fn write_access(&self) -> WriteAccess {
        WriteAccess::new(self.projects.clone(), self.confined)
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
    /// Counted as `malformed`: an `Authorization` header of another scheme
    /// (`Basic …`) or with no scheme at all.
    #[error("the Authorization header must be `Bearer <token>`")]
    NotBearer,
    /// Counted as `malformed`: which of two tokens a proxy or client meant
    /// cannot be told, so neither is taken.
    #[error("two tokens were sent (Authorization, access_token or ticket twice); send one")]
    TwoTokens,
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
    /// Never says which: a guessed ticket learns nothing.
    #[error("the ticket is unknown, used or expired")]
    BadTicket,
    // A ticket presented then may be spent once Redis answers again.
    #[error(
        "stream tickets are not available right now (Redis does not answer); ask for a new ticket shortly"
    )]
    TicketsUnavailable,
}

impl AuthError {
    /// Every [`as_str`](Self::as_str) label, for the metrics to start at 0.
    pub const LABELS: [&'static str; 13] = [
        "missing",
        "malformed",
        "expired",
        "not_yet_valid",
        "bad_signature",
        "wrong_audience_or_issuer",
        "bad_claims",
        "cookie_on_write",
        "unknown_key",
        "unsupported_crit",
        "keys_unavailable",
        "bad_ticket",
        "tickets_unavailable",
    ];

    /// Stable label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed | Self::NotBearer | Self::TwoTokens => "malformed",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadSignature => "bad_signature",
            Self::WrongAudienceOrIssuer => "wrong_audience_or_issuer",
            Self::BadClaims(_) => "bad_claims",
            Self::CookieOnWrite => "cookie_on_write",
            Self::UnknownKey => "unknown_key",
            Self::UnsupportedCritical => "unsupported_crit",
            Self::KeysUnavailable => "keys_unavailable",
            Self::BadTicket => "bad_ticket",
            Self::TicketsUnavailable => "tickets_unavailable",
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use secrecy::SecretString;

    use super::*;
    use crate::{config::AuthSettings, telemetry::Metrics};

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
        signed(
            serde_json::json!({"sub": "alice", "exp": now + ttl, "scope": scope, "projects": projects}),
        )
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
    fn scopes_are_separated_by_spaces_alone() {
        let verifier = verifier(&settings());
        let scopes_of = |scope: &str| {
            let principal = verifier
                .verify_with_current_keys(&token(scope, &[], 60))
                .unwrap();
            [Scope::Subscribe, Scope::Publish, Scope::Admin].map(|s| principal.has(s))
        };
        assert_eq!(scopes_of("subscribe  admin"), [true, false, true]);
        assert_eq!(scopes_of(" publish "), [false, true, false]);
        // Another whitespace is part of a word: one unknown scope, granting
        // nothing (an issuer may have meant it as one opaque scope).
        for joined in [
            "subscribe\u{a0}admin",
            "x\u{2003}admin",
            "subscribe\tpublish",
            "subscribe\nadmin",
        ] {
            assert_eq!(scopes_of(joined), [false, false, false], "{joined:?}");
        }
        let refused = mint(
            &settings(),
            &TokenRequest {
                sub: "alice",
                scope: "subscribe\tpublish",
                projects: &[],
                ttl_secs: 60,
                private_key_pem: None,
            },
        );
        assert!(
            matches!(refused, Err(MintError::UnknownScope(_))),
            "{refused:?}"
        );
    }

    #[test]
    fn every_project_is_star_alone_and_a_star_among_ids_is_refused() {
        let verifier = verifier(&settings());
        let all = verifier
            .verify_with_current_keys(&token("admin", &["*"], 60))
            .unwrap();
        assert!(all.may_access(&ProjectId::parse("any").unwrap()));
        assert!(matches!(
            verifier.verify_with_current_keys(&token("admin", &["pA", "*"], 60)),
            Err(AuthError::BadClaims(_))
        ));
        let mixed = ["pA".to_owned(), "*".to_owned()];
        let refused = mint(
            &settings(),
            &TokenRequest {
                sub: "alice",
                scope: "admin",
                projects: &mixed,
                ttl_secs: 60,
                private_key_pem: None,
            },
        );
        assert!(refused.is_err(), "not minted either");
    }

    /// A token signed with the unit key, of these claims.
    fn signed(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"unit-test-secret-0123456789abcdefghij"),
        )
        .unwrap()
    }

    #[test]
    fn a_signed_claim_that_does_not_read_is_named_as_invalid_not_as_a_malformed_token() {
        let verifier = verifier(&settings());
        let exp = unix_now() + 60;
        let refused = |claims: serde_json::Value| {
            let error = verifier
                .verify_with_current_keys(&signed(claims.clone()))
                .expect_err("refused");
            assert!(
                matches!(error, AuthError::BadClaims(_)),
                "{claims}: {error:?}"
            );
            error.to_string()
        };
        for (wrong_type, named) in [
            (
                serde_json::json!({ "sub": 123, "exp": exp }),
                "sub must be a string",
            ),
            (
                serde_json::json!({ "sub": "a", "exp": exp, "projects": "p1" }),
                "projects must be an array",
            ),
            (
                serde_json::json!({ "sub": "a", "exp": exp, "scope": ["subscribe"] }),
                "scope must be a string",
            ),
            (
                serde_json::json!({ "sub": "a", "exp": exp, "aud": 5 }),
                "aud must be a string or an array",
            ),
        ] {
            let message = refused(wrong_type.clone());
            assert!(message.contains(named), "{wrong_type}: {message}");
        }
        assert!(refused(serde_json::json!({ "sub": "a" })).ends_with("exp is required"));
        // Each named: of the wrong type, or out of range.
        for (bad_date, named) in [
            (
                serde_json::json!({ "sub": "a", "exp": "soon" }),
                "exp must be",
            ),
            (
                serde_json::json!({ "sub": "a", "exp": 1e20 }),
                "exp must be",
            ),
            (serde_json::json!({ "sub": "a", "exp": -1 }), "exp must be"),
            (
                serde_json::json!({ "sub": "a", "exp": exp, "nbf": -1 }),
                "nbf must be",
            ),
            (
                serde_json::json!({ "sub": "a", "exp": exp, "nbf": 1e30 }),
                "nbf must be",
            ),
        ] {
            let message = refused(bad_date.clone());
            assert!(
                message.contains(named) && message.contains("NumericDate"),
                "{bad_date}: {message}"
            );
        }
        let message = refused(serde_json::json!({ "exp": exp }));
        assert!(message.ends_with("sub is required, a string"), "{message}");
        // A claim given twice (a JSON object serde_json::Value cannot hold).
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"alice","exp":{exp},"sub":"bob"}}"#)),
        );
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_secret(b"unit-test-secret-0123456789abcdefghij"),
            Algorithm::HS256,
        )
        .unwrap();
        let error = verifier
            .verify_with_current_keys(&format!("{signing_input}.{signature}"))
            .expect_err("refused");
        assert!(
            error.to_string().ends_with("a claim is given twice"),
            "{error}"
        );
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
