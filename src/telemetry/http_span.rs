//! The root span of every HTTP request: route templated, credentials
//! (`access_token`, `ticket`, however percent-encoded) redacted from the logged target (EventSource clients put tokens in the
//! query), and the caller's W3C `traceparent` adopted as parent.

use std::{net::IpAddr, sync::Arc, time::Duration};

use actix_web::{
    Error, HttpRequest,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{StatusCode, header::HeaderMap},
};
use opentelemetry::propagation::Extractor;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::LogThrottle;

pub struct BrokerRootSpan;

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Query parameters that carry a credential. Compared after
/// percent-decoding, as the token extractor reads them, so
/// `access%5Ftoken` or `%61ccess_token` is hidden like `access_token`.
const CREDENTIAL_PARAMETERS: [&str; 2] = ["access_token", "ticket"];

/// The request target with the value of every credential parameter hidden,
/// whatever spelling the client chose for its name.
pub fn redacted_target(path: &str, query: &str) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (raw_name, _) = pair.split_once('=').unwrap_or((pair, ""));
            let name: String = url::form_urlencoded::parse(raw_name.as_bytes())
                .next()
                .map(|(name, _)| name.into_owned())
                .unwrap_or_default();
            if CREDENTIAL_PARAMETERS.contains(&name.as_str()) {
                format!("{raw_name}=REDACTED")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// How the broker tells a request's client (the rate limits' rule: the TCP
/// peer, or the forwarded address a trusted proxy gives), handed to the
/// span as app data, so that a log line names the client the limits count
/// and not, behind nginx, nginx.
#[derive(Clone)]
pub struct ClientAddress(pub Arc<ClientAddressRule>);

/// The rule behind [`ClientAddress`].
pub type ClientAddressRule = dyn Fn(&HttpRequest) -> Option<IpAddr> + Send + Sync;

/// An address for a span field, or nothing; written straight into the
/// record, with no string of its own per request.
struct MaybeIp(Option<IpAddr>);

impl std::fmt::Display for MaybeIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => Ok(()),
        }
    }
}

impl RootSpanBuilder for BrokerRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let method = request.method().as_str();
        let peer = request.peer_addr().map(|a| a.ip());
        let client = request
            .app_data::<actix_web::web::Data<ClientAddress>>()
            .and_then(|client_address| (client_address.0)(request.request()))
            .or(peer);
        let span = tracing::info_span!(
            "HTTP request",
            http.method = %method,
            http.route = %route,
            http.target = %redacted_target(request.path(), request.query_string()),
            // The client as the rate limits see it; the TCP peer beside it
            // (X-Forwarded-For counts only from a trusted proxy).
            http.client_ip = %MaybeIp(client),
            network.peer.address = %MaybeIp(peer),
            http.status_code = tracing::field::Empty,
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        let _ = span.set_parent(parent);
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
        log_unsuccessful(outcome);
    }
}

/// One line for a request answered with an error, at the level its status
/// deserves (inside the request's span, so with its method, route and
/// target). A client's mistake (4xx) is routine, counted by the metrics, and
/// logged at DEBUG: a flood of bad requests must not flood the log or an
/// error-log alert. A 500 is the broker's fault (ERROR); any other 5xx is
/// the broker declining for now (a store timeout, shutting down, full:
/// WARN), which comes in floods while it lasts (every retry of every
/// client): one such line a second, with how many were held back, the rest
/// at DEBUG. tracing-actix-web's own line (WARN for every 4xx) is compiled
/// out.
fn log_unsuccessful<B>(outcome: &Result<ServiceResponse<B>, Error>) {
    static DECLINED: LogThrottle = LogThrottle::new(Duration::from_secs(1));
    let (status, error) = match outcome {
        Ok(response) => match response.response().error() {
            Some(error) => (response.status(), error),
            None => return,
        },
        Err(error) => (error.as_response_error().status_code(), error),
    };
    let code = status.as_u16();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(http.status_code = code, error.message = %error, "request failed");
    } else if status.is_server_error() {
        match DECLINED.due() {
            Some(held_back) => {
                tracing::warn!(http.status_code = code, error.message = %error, held_back, "request failed");
            }
            None => {
                tracing::debug!(http.status_code = code, error.message = %error, "request failed")
            }
        }
    } else {
        tracing::debug!(http.status_code = code, error.message = %error, "request refused");
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_target;

    #[test]
    fn the_access_token_never_reaches_the_logged_target() {
        assert_eq!(
            redacted_target(
                "/sse/events",
                "event_types=commit&access_token=eyJ.secret.sig"
            ),
            "/sse/events?event_types=commit&access_token=REDACTED"
        );
        assert_eq!(redacted_target("/health", ""), "/health");
    }

    #[test]
    fn a_credential_is_hidden_whatever_the_spelling_of_its_name() {
        for name in [
            "access%5Ftoken",
            "%61ccess_token",
            "%61%63%63%65%73%73%5f%74%6f%6b%65%6e",
            "ticket",
            "%74icket",
        ] {
            let target = redacted_target("/sse/events", &format!("a=1&{name}=eyJ.secret.sig&b=2"));
            assert!(!target.contains("secret"), "{name}: {target}");
            assert_eq!(target, format!("/sse/events?a=1&{name}=REDACTED&b=2"));
        }
        // A parameter given without a value is still hidden, and a lookalike
        // is not a credential.
        assert_eq!(
            redacted_target("/x", "access_token&access_tokens=1"),
            "/x?access_token=REDACTED&access_tokens=1"
        );
    }
}
