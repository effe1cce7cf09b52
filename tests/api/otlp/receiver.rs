//! `OtlpReceiver`: an OpenTelemetry Collector inside the test process,
//! speaking OTLP/gRPC or OTLP/HTTP.
//!
//! Over gRPC it serves the real `TraceService` and `MetricsService` of
//! opentelemetry-proto with tonic; over HTTP, `POST /v1/traces` and
//! `/v1/metrics` (see `http_receiver`). Either way it listens on
//! `127.0.0.1` and a port of its own and keeps every export request it
//! receives, with the request's headers. The brokers under test push to it
//! exactly as they would push to a collector.
//!
//! The server runs on a thread of its own with its own runtime, so it does
//! not depend on the test's (current-thread, actix) runtime being polled,
//! and keeps answering while a test blocks or awaits anything else.
//! Dropping the receiver stops that runtime and every connection on it.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
    thread::JoinHandle,
    time::Duration,
};

use opentelemetry_proto::tonic::collector::{
    metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    },
    trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
};
use tokio::{sync::oneshot, time::Instant};

use super::{
    http_receiver,
    received::{self, ReceivedMetric, ReceivedSpan},
};

/// Everything the brokers exported so far, in the order it arrived.
#[derive(Default)]
pub(super) struct Received {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    /// The headers (gRPC metadata) of every export request.
    pub headers: Vec<BTreeMap<String, String>>,
}

pub(super) type Store = Arc<Mutex<Received>>;

pub(super) fn lock(store: &Store) -> MutexGuard<'_, Received> {
    // A panicking test thread must not hide what was received.
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Header names and values, names lowercase; values that are not text are
/// left out.
pub(super) fn header_map<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> BTreeMap<String, String> {
    headers
        .filter_map(|(name, value)| {
            Some((name.to_owned(), std::str::from_utf8(value).ok()?.to_owned()))
        })
        .collect()
}

fn metadata_map<T>(request: &tonic::Request<T>) -> BTreeMap<String, String> {
    let headers = request.metadata().clone().into_headers();
    header_map(
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
    )
}

struct Collector(Store);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = metadata_map(&request);
        let mut received = lock(&self.0);
        received.headers.push(headers);
        received.traces.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = metadata_map(&request);
        let mut received = lock(&self.0);
        received.headers.push(headers);
        received.metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Serves OTLP/gRPC on `listener` until `stopped` fires, over TLS with
/// `tls` when given.
fn serve_grpc(
    tls: Option<tonic::transport::Identity>,
    listener: std::net::TcpListener,
    store: Store,
    stopped: oneshot::Receiver<()>,
) {
    let collector = Arc::new(Collector(store));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the OTLP receiver");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .expect("the listener joins the receiver's runtime");
        let mut builder = tonic::transport::Server::builder();
        if let Some(identity) = tls {
            let config = tonic::transport::ServerTlsConfig::new().identity(identity);
            builder = builder.tls_config(config).expect("the receiver's TLS");
        }
        let server = builder
            .add_service(TraceServiceServer::from_arc(collector.clone()))
            .add_service(MetricsServiceServer::from_arc(collector))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::select! {
            result = server => {
                if let Err(error) = result {
                    eprintln!("the OTLP/gRPC receiver failed: {error}");
                }
            }
            _ = stopped => {}
        }
    });
    // Dropping the runtime here cancels every open connection.
}

/// A running in-test OTLP collector.
pub struct OtlpReceiver {
    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` over TLS.
    endpoint: String,
    store: Store,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Binds `127.0.0.1:0` and serves OTLP/gRPC traces and metrics on a
    /// thread of its own. The socket listens when this returns: an exporter
    /// may connect at once.
    pub async fn start() -> Self {
        Self::serve("http://127.0.0.1", |l, s, stop| {
            serve_grpc(None, l, s, stop)
        })
    }

    /// [`Self::start`] over TLS with this certificate (for `localhost`) and
    /// key, both PEM: [`Self::endpoint`] is `https://localhost:PORT`.
    pub async fn start_grpc_tls(cert_pem: &str, key_pem: &str) -> Self {
        let identity = tonic::transport::Identity::from_pem(cert_pem, key_pem);
        Self::serve("https://localhost", |l, s, stop| {
            serve_grpc(Some(identity), l, s, stop)
        })
    }

    /// [`Self::start`] for OTLP/HTTP (protobuf or JSON bodies): the
    /// exporter's `OTEL_EXPORTER_OTLP_ENDPOINT` is [`Self::endpoint`], a
    /// per-signal one [`Self::signal_endpoint`].
    pub async fn start_http() -> Self {
        Self::serve("http://127.0.0.1", http_receiver::serve)
    }

    fn serve(
        origin: &str,
        serve: impl FnOnce(std::net::TcpListener, Store, oneshot::Receiver<()>) + Send + 'static,
    ) -> Self {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("the OTLP receiver binds a port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener.local_addr().expect("a local address").port();
        let store = Store::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread_store = store.clone();
        let thread = std::thread::Builder::new()
            .name(format!("otlp-receiver-{port}"))
            .spawn(move || serve(listener, thread_store, stopped))
            .expect("the OTLP receiver thread starts");
        Self {
            endpoint: format!("{origin}:{port}"),
            store,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` (`https://localhost:PORT` over TLS), for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// `ENDPOINT/v1/traces` or `ENDPOINT/v1/metrics`: what an OTLP/HTTP
    /// exporter posts to, and takes as it is from a per-signal variable.
    pub fn signal_endpoint(&self, signal: &str) -> String {
        format!("{}/v1/{signal}", self.endpoint())
    }

    /// The headers of every export request received so far.
    pub fn request_headers(&self) -> Vec<BTreeMap<String, String>> {
        lock(&self.store).headers.clone()
    }

    /// Every span received so far, flattened, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        received::spans_of(&lock(&self.store).traces)
    }

    /// Every metric received so far, one entry per metric per export, in
    /// arrival order.
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        received::metrics_of(&lock(&self.store).metrics)
    }

    /// The names of every metric received so far (OTLP names, with dots).
    pub fn metric_names(&self) -> BTreeSet<String> {
        self.metrics().into_iter().map(|m| m.name).collect()
    }

    /// The most recent export of metric `name`.
    pub fn latest_metric(&self, name: &str) -> Option<ReceivedMetric> {
        self.metrics().into_iter().rev().find(|m| m.name == name)
    }

    /// The value of sum or gauge `name` in its most recent export, added up
    /// over its data points (every attribute set). With the SDK's default
    /// cumulative temporality that is the current total of a counter.
    pub fn metric_value(&self, name: &str) -> Option<f64> {
        self.latest_metric(name)?.value()
    }

    /// The value of sum or gauge `name` in its most recent export, for the
    /// data points whose attributes include every `(key, value)` of `with`.
    pub fn metric_value_with(&self, name: &str, with: &[(&str, &str)]) -> Option<f64> {
        self.latest_metric(name)?.value_with(with)
    }

    /// How many export requests of each signal arrived: (traces, metrics).
    pub fn export_counts(&self) -> (usize, usize) {
        let received = lock(&self.store);
        (received.traces.len(), received.metrics.len())
    }

    /// Polls `probe` every 50 ms until it returns `Ok`; after `timeout`
    /// panics naming `what` with the last `Err` the probe gave (which should
    /// say what was received).
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut probe: impl FnMut(&Self) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            match probe(self) {
                Ok(value) => return value,
                Err(last) if Instant::now() >= deadline => {
                    let (traces, metrics) = self.export_counts();
                    panic!(
                        "timed out after {timeout:?} waiting for {what} \
                         ({traces} trace and {metrics} metric exports received); {last}"
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
