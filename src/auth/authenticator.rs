//! `Authenticator`: a request's token to its [`Principal`], with every
//! refusal counted by reason.

use super::{AuthError, IssuedTicket, JwtVerifier, Principal, Tickets};
use crate::{domain::ProjectAccess, telemetry::Metrics};

#[derive(Clone)]
pub struct Authenticator {
    /// `None` while authentication is off.
    verifier: Option<JwtVerifier>,
    tickets: Tickets,
    metrics: Metrics,
    /// `--publish-within-projects`: a token that does not grant every
    /// project writes only within its projects.
    confine_publishers: bool,
}

impl Authenticator {
    pub fn new(
        verifier: Option<JwtVerifier>,
        tickets: Tickets,
        metrics: Metrics,
        confine_publishers: bool,
    ) -> Self {
        metrics.declare_auth_failure_reasons(&super::AuthError::LABELS);
        Self {
            verifier,
            tickets,
            metrics,
            confine_publishers,
        }
    }

    /// Whether requests need a token (a key is configured).
    pub fn enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// A stream ticket standing for `principal` (already authenticated).
    pub async fn issue_ticket(&self, principal: &Principal) -> Result<IssuedTicket, AuthError> {
        let issued = self.tickets.issue(principal).await;
        self.metrics.record_ticket_issued(issued.is_ok());
        issued
    }

    /// The caller a `?ticket=` names, once. With authentication off too:
    /// an app that fetches tickets works the same in development.
    pub async fn redeem_ticket(&self, ticket: &str) -> Result<Principal, AuthError> {
        self.tickets.redeem(ticket).await.inspect_err(|error| {
            self.metrics.record_auth_failure(error.as_str());
            tracing::debug!(reason = error.as_str(), "ticket refused");
        })
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
        let verified = verified.map(|mut principal| {
            principal.confined =
                self.confine_publishers && matches!(principal.projects, ProjectAccess::Only(_));
            principal
        });
        verified.inspect_err(|error| {
            self.metrics.record_auth_failure(error.as_str());
            tracing::debug!(reason = error.as_str(), "token refused");
        })
    }
}
