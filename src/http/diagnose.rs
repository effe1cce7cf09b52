//! `GET /sse/diagnose`: a short, timed burst for a client to tell whether
//! something between it and the broker holds the stream back.
//!
//! The commonest field failure of SSE is not in the broker: a proxy that
//! buffers responses (nginx's default `proxy_buffering on`, a CDN) or
//! compresses them (gzip on `text/event-stream`) delivers a stream's events
//! in lumps, or only when it ends. This endpoint sends [`PROBES`] small
//! events [`PROBE_INTERVAL`] apart, then a summary of what the broker saw
//! of the request. A client that gets the probes spread out as sent is
//! talking to the broker live; one that gets them all at once is not.
//! `client.js`'s `diagnoseConnection` reads it and names the cause.

use std::time::Duration;

use actix_web::{
    HttpRequest, HttpResponse,
    body::BodyStream,
    get,
    http::header,
    web::{self, Bytes},
};
use futures_util::stream;
use serde_json::json;

use super::{
    extract::{Authenticated, OpenStream, TicketQuery},
    streams::event_stream_response,
};
use crate::{
    actors::registry::RegisterError,
    domain::{now_ms, sse_frame},
    error::ApiError,
    state::AppState,
};

/// Probe events per run.
pub const PROBES: u32 = 6;
/// Time between two probes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Request headers that reveal a hop on the way (their presence, not their
/// values, which may be addresses).
const HOP_HEADERS: [&str; 6] = [
    "via",
    "x-forwarded-for",
    "x-forwarded-proto",
    "forwarded",
    "cf-ray",
    "x-real-ip",
];

/// The probes and the summary, as the wire carries them.
#[utoipa::path(
    tag = "streams",
    params(TicketQuery),
    responses(
        (status = 200, description = "`probe` events 250 ms apart (`{seq, sent_at_ms}`), then one `summary` (`{probes, interval_ms, protocol, accept_encoding, hops}`); the stream then ends", content_type = "text/event-stream", body = String),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
        (status = 429, description = "New streams of this address or user came faster than --stream-rate-per-ip / --stream-rate-per-user (a diagnosis counts as one); see Retry-After", body = crate::error::ErrorBody),
        (status = 503, description = "The instance runs as many diagnoses as it takes at once (`too_many_connections`), or it is shutting down; see Retry-After", body = crate::error::ErrorBody),
    )
)]
#[get("/sse/diagnose")]
pub async fn diagnose(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated<OpenStream>,
) -> Result<HttpResponse, ApiError> {
    // A diagnosis is a short stream: capped apart (it is not in the
    // Registry's count), and charged as one against the stream rates once
    // it has its place, as a stream is once admitted.
    let running = state.limits.start_diagnosis().ok_or(RegisterError::Full)?;
    if let Some(charge) = state.limits.stream_charge(&req, &auth.principal) {
        charge.pay()?;
    }
    let protocol = format!("{:?}", req.version());
    let headers = req.headers();
    let accept_encoding = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let hops: Vec<&str> = HOP_HEADERS
        .iter()
        .copied()
        .filter(|name| headers.contains_key(*name))
        .collect();
    let summary = sse_frame::encode_control(
        "summary",
        &json!({
            "probes": PROBES,
            "interval_ms": PROBE_INTERVAL.as_millis() as u64,
            "protocol": protocol,
            "accept_encoding": accept_encoding,
            "hops": hops,
        }),
    );
    tracing::info!(protocol = %protocol, hops = ?hops, "connection diagnosis requested");
    // The slot rides in the stream's state: given back when the burst ends,
    // or when the client leaves and the stream is dropped.
    let frames = stream::unfold((0u32, running), move |(seq, running)| {
        let summary = summary.clone();
        async move {
            if seq > PROBES {
                return None;
            }
            if seq > 0 {
                actix_rt::time::sleep(PROBE_INTERVAL).await;
            }
            let frame = if seq == PROBES {
                summary
            } else {
                sse_frame::encode_control("probe", &json!({ "seq": seq, "sent_at_ms": now_ms() }))
            };
            Some((Ok::<Bytes, ApiError>(frame), (seq + 1, running)))
        }
    });
    // The headers and framing of a real stream (close-delimited for an
    // HTTP/1.0 client): the probe must meet the same proxies. A page on
    // another origin reads the protocol its browser used for the probe
    // (`nextHopProtocol`) only if the response allows it; the probe's
    // timing tells nothing of anyone's data.
    let mut response = event_stream_response(&req, BodyStream::new(frames));
    response.headers_mut().insert(
        header::HeaderName::from_static("timing-allow-origin"),
        header::HeaderValue::from_static("*"),
    );
    Ok(response)
}
