//! The HTTP server: the app behind actix-http's HTTP/1 service, with a
//! [`HeadGuard`] on every connection; with TLS, behind its HTTP/1 and
//! HTTP/2 service, the protocol chosen by ALPN (see [`super::tls`]).
//!
//! `actix_web::HttpServer` hands the raw `TcpStream` to actix-http, leaving
//! no place to check a request head before actix-http answers it (with an
//! empty body). So the server is assembled here from the same parts
//! `HttpServer::listen` uses (actix-server's accept loop, actix-http's
//! `HttpService`, the app as its service) with the guard wrapped around each
//! stream, and the same settings as before.

use std::{net::TcpListener, time::Duration};

use actix_cors::Cors;
use actix_http::{HttpServiceBuilder, KeepAlive, error::DispatchError};
use actix_server::Server;
use actix_service::{ServiceFactoryExt as _, fn_service, map_config};
use actix_web::{App, dev::AppConfig, http::Method, middleware::from_fn, web};
use tracing_actix_web::TracingLogger;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

use super::{
    drain_signal::DrainSignal,
    extract,
    fallback::{self, RouteTable},
    head_guard::{HeadGuard, RefusalMarker},
    openapi::{self, ApiDoc, OpenApiJson},
    tls::{Tls, TlsConnection},
    unread_body, upgrades,
};
use crate::{
    actors::home::ActorHome,
    config::CorsOrigins,
    state::AppState,
    stream::StreamSocket,
    telemetry::{BrokerRootSpan, ClientAddress},
};

/// How long a draining server waits for open connections.
const SHUTDOWN_TIMEOUT_SECS: u64 = 5;
/// How long a closing connection may take to flush its last answer
/// (`HttpServer`'s default).
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How the HTTP server itself is set up.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub workers: usize,
    pub body_limit: extract::BodyLimit,
    pub cors_origins: CorsOrigins,
    /// HTTPS (HTTP/2 and HTTP/1.1) instead of plain HTTP/1.1.
    pub tls: Option<Tls>,
    /// Settled by the worker as it builds its app (see [`ActorHome`]).
    pub actor_home: ActorHome,
}

/// Starts serving `state`'s app on `listener`.
pub fn serve(
    state: AppState,
    settings: ServerSettings,
    listener: TcpListener,
) -> anyhow::Result<Server> {
    let address = listener.local_addr()?;
    let marker = RefusalMarker::generate();
    let builder = Server::build();
    let draining = DrainSignal::default();
    draining.follow(builder.graceful_shutdown_signal());
    let builder = builder
        .workers(settings.workers)
        .disable_signals()
        // Streams end by themselves during the drain; this bounds a stuck one.
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS);
    let server = match settings.tls.clone() {
        None => builder.listen("sse-broker", listener, move || {
            settings.actor_home.settle();
            let http = http_service(draining.clone(), address)
                // Streams keep their socket's descriptor, to release it when
                // the broker closes a stream whose client stopped reading.
                .on_connect_ext(|guard: &HeadGuard<actix_rt::net::TcpStream>, data| {
                    StreamSocket::remember(guard.inner(), data)
                })
                .h1(map_config(
                    app(state.clone(), settings.clone(), marker.clone()),
                    // Only read for a request without a Host header (HTTP/1.0).
                    |_| AppConfig::default(),
                ));
            let marker = marker.clone();
            fn_service(move |stream: actix_rt::net::TcpStream| {
                let marker = marker.clone();
                async move {
                    let peer = stream.peer_addr().ok();
                    without_nagle(&stream);
                    Ok::<_, DispatchError>((HeadGuard::new(stream, marker), peer))
                }
            })
            .and_then(http)
        })?,
        Some(tls) => builder.listen("sse-broker-tls", listener, move || {
            settings.actor_home.settle();
            // A TLS socket is never reset from outside (see StreamSocket):
            // over HTTP/2 it carries other streams too.
            let http = http_service(draining.clone(), address).finish(map_config(
                app(state.clone(), settings.clone(), marker.clone()),
                |_| AppConfig::default(),
            ));
            let marker = marker.clone();
            let tls = tls.clone();
            fn_service(move |stream: actix_rt::net::TcpStream| {
                let (marker, tls) = (marker.clone(), tls.clone());
                async move {
                    let peer = stream.peer_addr().ok();
                    without_nagle(&stream);
                    let (connection, protocol): (TlsConnection, _) =
                        tls.accept(stream, marker).await?;
                    Ok::<_, DispatchError>((connection, protocol, peer))
                }
            })
            .and_then(http)
        })?,
    };
    Ok(server.run())
}

/// Every write leaves at once (`TCP_NODELAY`). With Nagle's algorithm on,
/// the kernel holds a small write while an earlier one is unacknowledged,
/// and a client delays its acknowledgement by up to tens of milliseconds:
/// a stream receiving events faster than that saw them in stalls
/// (saturated publishing, 100 streams: p99 34 ms with Nagle, 8 ms without).
/// actix-http sets the option only on the sockets of its own `tcp()`
/// services, which this server does not use (see [`HeadGuard`]).
fn without_nagle(stream: &actix_rt::net::TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY could not be set");
    }
}

/// The HTTP settings, the same over plain TCP and TLS.
fn http_service<T, S>(
    draining: DrainSignal,
    address: std::net::SocketAddr,
) -> HttpServiceBuilder<T, S>
where
    S: actix_service::ServiceFactory<actix_http::Request, Config = ()>,
    S::Error: Into<actix_http::Response<actix_http::body::BoxBody>> + 'static,
    S::InitError: std::fmt::Debug,
    <S::Service as actix_service::Service<actix_http::Request>>::Future: 'static,
{
    HttpServiceBuilder::default()
        .graceful_shutdown_signal(move || draining.draining())
        .keep_alive(KeepAlive::default())
        // The guard times HTTP/1's heads itself, so its 408 is JSON; this
        // timer, twice as long, never fires before it. Over HTTP/2 (no
        // guard) it bounds the handshake: a TLS connection that chose `h2`
        // and sent no preface stayed open for good without one.
        .client_request_timeout(super::head_guard::FIRST_HEAD_TIMEOUT * 2)
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
        // An EventSource client never half-closes: a read EOF means it left,
        // so drop the stream now instead of at the next write (a heartbeat
        // away), which frees its slot under `--max-connections` at once.
        .h1_allow_half_closed(false)
        .local_addr(address)
}

/// One worker's app: the route table, shared data and middleware.
fn app(
    state: AppState,
    settings: ServerSettings,
    marker: RefusalMarker,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(super::configure)
        .split_for_parts();
    openapi::complete(&mut api, state.auth.enabled());
    let routes = RouteTable::from_openapi(&api);
    let document = api.to_json().unwrap_or_else(|_| "{}".into());
    let limits = state.limits.clone();
    let client_address = ClientAddress(std::sync::Arc::new(move |req: &actix_web::HttpRequest| {
        limits.client_address(req)
    }));
    app.app_data(web::Data::new(OpenApiJson(document)))
        .app_data(web::Data::new(client_address))
        .app_data(web::Data::new(routes))
        .app_data(web::Data::new(marker))
        .app_data(web::Data::new(settings.body_limit))
        .app_data(extract::path_config())
        .app_data(web::Data::new(state.clone()))
        .default_service(web::to(fallback::no_route))
        .wrap(from_fn(unread_body::close_after_early_answer))
        .wrap(from_fn(upgrades::close_instead_of_upgrading))
        .wrap(cors(&settings.cors_origins))
        .wrap(from_fn(fallback::catalogue_errors))
        .wrap(TracingLogger::<BrokerRootSpan>::new())
}

/// The answers' headers a page on an allowed origin may read, beyond the
/// few a browser always shows it: the wait a 429 or 503 asks for (which
/// `/client.js` reads), a task's state on `HEAD /tasks/{id}`, a 405's
/// methods, a 401's scheme.
const EXPOSED_HEADERS: [&str; 7] = [
    "retry-after",
    // `diagnoseConnection` reads them to tell a compressing or buffering
    // proxy; cross-origin they are hidden unless exposed.
    "content-encoding",
    "x-accel-buffering",
    "x-task-status",
    "x-task-progress",
    "allow",
    "www-authenticate",
];

fn cors(origins: &CorsOrigins) -> Cors {
    let methods = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];
    match origins {
        CorsOrigins::None => Cors::default(),
        CorsOrigins::Any => Cors::default()
            .allow_any_origin()
            .send_wildcard()
            .allowed_methods(methods)
            .allow_any_header()
            .expose_headers(EXPOSED_HEADERS)
            .max_age(3600),
        CorsOrigins::Exact(list) => list
            .iter()
            .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
            .allowed_methods(methods)
            .allow_any_header()
            .expose_headers(EXPOSED_HEADERS)
            .supports_credentials()
            .max_age(3600),
    }
}
