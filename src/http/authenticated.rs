//! The authentication extractor: `Authenticated<S>` is the caller, verified
//! from its token (or, for a stream's open, a single-use ticket), holding
//! the scope `S` asks for; 401 and 403 come from here, before any other
//! extractor reads the request.

use std::marker::PhantomData;

use actix_web::{
    FromRequest, HttpRequest,
    dev::Payload,
    http::{Method, header},
    web,
};
use futures_util::future::LocalBoxFuture;

use crate::{
    auth::{AuthError, Principal, Scope},
    error::ApiError,
    state::AppState,
};

/// A scope an endpoint requires, as a type: `Authenticated<Publish>`.
pub trait RequiredScope {
    const SCOPE: Scope;
    /// Whether a `?ticket=` may stand in for the token (stream opens only).
    const TICKET: bool = false;
}

/// Reading: history, tasks, `/sse/subscribe`.
pub struct Subscribe;
/// Opening a stream: the token, or a stream ticket in `?ticket=`.
pub struct OpenStream;
/// Publishing.
pub struct Publish;
/// Stats, listings, monitoring, cleanup.
pub struct Admin;

impl RequiredScope for Subscribe {
    const SCOPE: Scope = Scope::Subscribe;
}
/// The query parameter [`OpenStream`] takes a ticket from, for the
/// document: `params(TicketQuery)` on each operation whose handler asks
/// for `Authenticated<OpenStream>` (a `HEAD` never does: it would spend it).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketQuery {
    /// A stream ticket (`POST /sse/tickets`) instead of a token: single use.
    pub ticket: Option<String>,
}

impl RequiredScope for OpenStream {
    const SCOPE: Scope = Scope::Subscribe;
    const TICKET: bool = true;
}
impl RequiredScope for Publish {
    const SCOPE: Scope = Scope::Publish;
}
impl RequiredScope for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// The verified caller, holding scope `S`. With authentication off every
/// caller is the anonymous principal with every scope.
pub struct Authenticated<S> {
    pub principal: Principal,
    scope: PhantomData<S>,
}

/// The token, from `Authorization: Bearer`, else the `sse_token` cookie,
/// else the `access_token` query parameter (EventSource cannot set headers).
fn find_token(req: &HttpRequest) -> Result<Option<String>, AuthError> {
    let mut authorizations = req.headers().get_all(header::AUTHORIZATION);
    if let Some(value) = authorizations.next() {
        if authorizations.next().is_some() {
            return Err(AuthError::TwoTokens);
        }
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        // The scheme's name is case-insensitive (RFC 7235 section 2.1).
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or(AuthError::NotBearer)?;
        return Ok(Some(token.trim().to_owned()));
    }
    for cookies in req.headers().get_all(header::COOKIE) {
        // By bytes: another cookie of the site may hold non-ASCII bytes
        // (`city=Zürich`), which must not hide ours; a token is ASCII.
        for pair in cookies.as_bytes().split(|&b| b == b';') {
            if let Some(token) = pair
                .trim_ascii()
                .strip_prefix(b"sse_token=")
                // RFC 6265 §4.1.1: a cookie's value may come in double quotes.
                .map(|token| {
                    token
                        .strip_prefix(b"\"")
                        .and_then(|quoted| quoted.strip_suffix(b"\""))
                        .unwrap_or(token)
                })
                // Blanked rather than deleted (a logout): no cookie.
                .filter(|token| !token.is_empty())
                .and_then(|token| std::str::from_utf8(token).ok())
            {
                // A browser attaches cookies to cross-site form posts too:
                // the cookie is for EventSource (GET), never for writes, so
                // no other site can publish with a visitor's cookie (CSRF).
                if !matches!(*req.method(), Method::GET | Method::HEAD) {
                    return Err(AuthError::CookieOnWrite);
                }
                return Ok(Some(token.to_owned()));
            }
        }
    }
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| AuthError::Malformed)?;
    let mut tokens = query
        .into_inner()
        .into_iter()
        .filter(|(name, _)| name == "access_token");
    match (tokens.next(), tokens.next()) {
        (Some(_), Some(_)) => Err(AuthError::TwoTokens),
        (token, _) => Ok(token.map(|(_, token)| token)),
    }
}

/// The `ticket` query parameter, where `S` takes one. Two are refused, as
/// two tokens are: taking either would let their order decide whose
/// stream opens.
fn find_ticket<S: RequiredScope>(req: &HttpRequest) -> Result<Option<String>, AuthError> {
    let query = req.query_string();
    // Most stream opens carry no ticket: spare them a second parse of the
    // query (`find_token` may parse it too). A `%` may spell the name.
    if !S::TICKET || !(query.contains("ticket") || query.contains('%')) {
        return Ok(None);
    }
    let Ok(query) = web::Query::<Vec<(String, String)>>::from_query(query) else {
        return Ok(None);
    };
    let mut tickets = query
        .into_inner()
        .into_iter()
        .filter(|(name, _)| name == "ticket");
    match (tickets.next(), tickets.next()) {
        (Some(_), Some(_)) => Err(AuthError::TwoTokens),
        (ticket, _) => Ok(ticket.map(|(_, ticket)| ticket)),
    }
}

impl<S: RequiredScope> FromRequest for Authenticated<S> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            authenticate::<S>(&req).await.map(|principal| Self {
                principal,
                scope: PhantomData,
            })
        })
    }
}

async fn authenticate<S: RequiredScope>(req: &HttpRequest) -> Result<Principal, ApiError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Ok(Principal::anonymous());
    };
    let principal = match find_ticket::<S>(req)? {
        Some(ticket) => state.auth.redeem_ticket(&ticket).await?,
        None => state.auth.principal(find_token(req)).await?,
    };
    if !principal.has(S::SCOPE) {
        return Err(ApiError::insufficient_scope(S::SCOPE.as_str()));
    }
    // Every `publish`-scoped endpoint is a write: one budget covers them all.
    if S::SCOPE == Scope::Publish {
        state.limits.admit_publish(&principal)?;
    }
    Ok(principal)
}
