//! `Authenticator`: a request's token to its [`Principal`], with every
//! refusal counted by reason.

use super::{AuthError, JwtVerifier, Principal};
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct Authenticator {
    /// `None` while authentication is off.
    verifier: Option<JwtVerifier>,
    metrics: Metrics,
}

impl Authenticator {
    pub fn new(verifier: Option<JwtVerifier>, metrics: Metrics) -> Self {
        metrics.declare_auth_failure_reasons(&super::AuthError::LABELS);
        Self { verifier, metrics }
    }

    /// The caller of a request that carried `token` (or failed to carry
    /// one readably): the anonymous principal with every scope while
    /// authentication is off.
    pub async fn principal(
        &self,
        token: Result<Option<String>, AuthError>,
    ) -> Result<Principal, AuthError> {
        let Some(verifier) = &self.verifier else {
            return Ok(Principal::anonymous());
        };
        let verified = match token {
            Ok(Some(token)) => verifier.verify(&token).await,
            Ok(None) => Err(AuthError::Missing),
            Err(error) => Err(error),
        };
        verified.inspect_err(|error| {
            self.metrics.record_auth_failure(error.as_str());
            tracing::debug!(reason = error.as_str(), "token refused");
        })
    }
}
