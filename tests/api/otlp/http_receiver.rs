//! The OTLP/HTTP side of [`OtlpReceiver`](super::receiver::OtlpReceiver):
//! `POST /v1/traces` and `POST /v1/metrics` with the export request as
//! `application/x-protobuf` (`http/protobuf`) or `application/json`
//! (`http/json`), decoded into the same opentelemetry-proto types the gRPC
//! side receives and kept in the same store. The answer is the empty export
//! response in the request's encoding, as a collector sends it.
//!
//! An actix-web server in an actix System of its own, on the receiver's
//! thread: the test's runtime need not be polled for it to answer.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::{
    metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse},
    trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
};
use prost::Message;
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::oneshot;

use super::receiver::{Received, Store, header_map, lock};

/// Larger than any export a test broker sends (the OTLP/HTTP spec's
/// recommended limit); actix's default, 256 KiB, is not.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The two bodies OTLP/HTTP defines.
#[derive(Clone, Copy)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn of(request: &HttpRequest) -> Option<Self> {
        let content_type = request.headers().get("content-type")?.to_str().ok()?;
        match content_type.split(';').next()?.trim() {
            "application/x-protobuf" => Some(Self::Protobuf),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    fn decode<T: Message + Default + DeserializeOwned>(self, body: &[u8]) -> Result<T, String> {
        match self {
            Self::Protobuf => T::decode(body).map_err(|e| e.to_string()),
            Self::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
        }
    }

    fn answer<T: Message + Default + Serialize>(self) -> HttpResponse {
        let response = T::default();
        match self {
            Self::Protobuf => HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .body(response.encode_to_vec()),
            Self::Json => HttpResponse::Ok().json(response),
        }
    }
}

/// Decodes one export request, stores it with its headers through
/// `keep`, and answers `Resp`'s empty message; 400 or 415 otherwise.
fn export<Req, Resp>(
    request: &HttpRequest,
    body: &[u8],
    store: &Store,
    keep: impl FnOnce(&mut Received, Req),
) -> HttpResponse
where
    Req: Message + Default + DeserializeOwned,
    Resp: Message + Default + Serialize,
{
    let Some(encoding) = Encoding::of(request) else {
        return HttpResponse::UnsupportedMediaType().finish();
    };
    match encoding.decode::<Req>(body) {
        Ok(decoded) => {
            let headers = request
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes()));
            let mut received = lock(store);
            received.headers.push(header_map(headers));
            keep(&mut received, decoded);
            encoding.answer::<Resp>()
        }
        Err(error) => HttpResponse::BadRequest().body(error),
    }
}

async fn traces(request: HttpRequest, body: web::Bytes, store: web::Data<Store>) -> HttpResponse {
    export::<ExportTraceServiceRequest, ExportTraceServiceResponse>(
        &request,
        &body,
        &store,
        |received, decoded| received.traces.push(decoded),
    )
}

async fn metrics(request: HttpRequest, body: web::Bytes, store: web::Data<Store>) -> HttpResponse {
    export::<ExportMetricsServiceRequest, ExportMetricsServiceResponse>(
        &request,
        &body,
        &store,
        |received, decoded| received.metrics.push(decoded),
    )
}

/// Serves OTLP/HTTP on `listener` until `stopped` fires.
pub(super) fn serve(listener: std::net::TcpListener, store: Store, stopped: oneshot::Receiver<()>) {
    actix_web::rt::System::new().block_on(async move {
        let store = web::Data::new(store);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(store.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .route("/v1/traces", web::post().to(traces))
                .route("/v1/metrics", web::post().to(metrics))
        })
        .workers(1)
        // The test process's own Ctrl-C is not this server's to handle.
        .disable_signals()
        .listen(listener)
        .expect("the OTLP/HTTP receiver listens")
        .run();
        let handle = server.handle();
        tokio::select! {
            result = server => {
                if let Err(error) = result {
                    eprintln!("the OTLP/HTTP receiver failed: {error}");
                }
            }
            _ = stopped => handle.stop(false).await,
        }
    });
}
