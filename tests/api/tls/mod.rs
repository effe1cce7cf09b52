//! HTTPS in the broker (`--tls-cert`, `--tls-key`): HTTP/2 and HTTP/1.1 by
//! ALPN over real TLS, streams alike over both, and a renewed certificate
//! served without a restart (on a file change, and on SIGHUP). The browser
//! side (twelve streams in one page) is in `browser/many_streams.rs`.

mod renewal;

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::helpers::{EventStream, LONG, SHORT, TestApp, spawn_app_with};

/// A self-signed certificate for `localhost` and `127.0.0.1`.
pub struct TestCertificate {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate itself, to tell which one a server presented.
    pub der: Vec<u8>,
}

impl TestCertificate {
    pub fn generate() -> Self {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .expect("a self-signed certificate");
        Self {
            cert_pem: cert.pem(),
            key_pem: signing_key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// Writes `cert.pem` and `key.pem` into `dir`; answers their paths.
    pub fn write_to(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).expect("the certificate written");
        std::fs::write(&key, &self.key_pem).expect("the key written");
        (cert, key)
    }
}

/// A broker serving HTTPS with a fresh self-signed certificate.
pub async fn spawn_tls_app() -> (TestApp, TestCertificate, tempfile::TempDir) {
    let certificate = TestCertificate::generate();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (cert, key) = certificate.write_to(dir.path());
    let app = spawn_app_with(|s| {
        s.tls.cert = Some(cert);
        s.tls.key = Some(key);
    })
    .await;
    (app, certificate, dir)
}

/// A client that trusts any certificate (ours are self-signed), reports
/// the one it saw, and speaks HTTP/2 when ALPN agrees, or only HTTP/1.1.
pub fn tls_client(http1_only: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .pool_max_idle_per_host(0);
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().expect("a TLS client")
}

/// The certificate the server presented for `response`.
pub fn presented(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the server presented a certificate")
        .to_vec()
}

pub fn https(app: &TestApp, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", app.port)
}

/// Open streams, as `/sse/stats` over HTTPS says.
pub async fn active_connections(app: &TestApp) -> u64 {
    let stats: serde_json::Value = tls_client(false)
        .get(https(app, "/sse/stats"))
        .send()
        .await
        .expect("stats over HTTPS")
        .json()
        .await
        .expect("JSON");
    stats["active_connections"].as_u64().expect("a count")
}

#[actix_web::test]
async fn https_speaks_http2_and_http11_by_alpn_and_streams_work_over_both() {
    // Arrange
    let (app, certificate, _dir) = spawn_tls_app().await;

    for (http1_only, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let client = tls_client(http1_only);

        // Act
        let health = client
            .get(https(&app, "/health"))
            .send()
            .await
            .expect("an HTTPS answer");
        let stream = client
            .get(https(&app, "/sse/events"))
            .send()
            .await
            .expect("a stream over HTTPS");
        let stream_version = stream.version();
        let mut stream = EventStream::connected(stream, "an HTTPS viewer").await;
        let published = client
            .post(https(&app, "/sse/publish"))
            .json(&json!({"event_type": "commit", "data": {"over": format!("{version:?}")}}))
            .send()
            .await
            .expect("a publish over HTTPS");

        // Assert
        assert_eq!(health.version(), version);
        assert_eq!(health.status().as_u16(), 200);
        assert_eq!(presented(&health), certificate.der, "our certificate");
        assert_eq!(stream_version, version);
        assert_eq!(published.status().as_u16(), 202);
        let event = stream.next_message(SHORT).await.expect("the event arrives");
        assert!(event.is("commit"), "{event:?}");
        assert_eq!(event.json()["over"], format!("{version:?}"));
    }
}

#[actix_web::test]
async fn many_streams_share_one_http2_connection() {
    // Arrange
    let (app, _certificate, _dir) = spawn_tls_app().await;
    let client = tls_client(false);

    // Act: twelve streams through one client; HTTP/2 multiplexes them.
    let mut streams = Vec::new();
    for _ in 0..12 {
        let response = client
            .get(https(&app, "/sse/events"))
            .send()
            .await
            .expect("a stream");
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        streams.push(EventStream::connected(response, "a viewer").await);
    }
    let published = client
        .post(https(&app, "/sse/publish"))
        .json(&json!({"event_type": "commit"}))
        .send()
        .await
        .expect("a publish");
    assert_eq!(published.status().as_u16(), 202);

    // Assert
    for stream in &mut streams {
        let event = stream.next_message(SHORT).await.expect("every stream");
        assert!(event.is("commit"));
    }
    assert_eq!(active_connections(&app).await, 12);
    drop(streams);
    crate::helpers::eventually(LONG, "the streams to close", || {
        let app = &app;
        async move { (active_connections(app).await == 0).then_some(()) }
    })
    .await;
}

#[actix_web::test]
async fn plain_http_to_the_tls_port_gets_no_answer_and_the_broker_stays_up() {
    // Arrange
    let (app, _certificate, _dir) = spawn_tls_app().await;

    // Act
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(SHORT)
        .build()
        .expect("a client")
        .get(format!("http://127.0.0.1:{}/health", app.port))
        .send()
        .await;

    // Assert
    assert!(plain.is_err(), "plain HTTP is not served: {plain:?}");
    let health = tls_client(false)
        .get(https(&app, "/health"))
        .send()
        .await
        .expect("HTTPS still answers");
    assert_eq!(health.status().as_u16(), 200);
}

#[actix_web::test]
async fn a_tls_connection_sends_each_write_at_once() {
    // Arrange
    let (app, _certificate, _dir) = spawn_tls_app().await;
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], app.port));

    // Act: a connection the broker accepted (its TLS handshake not begun)
    let client = tokio::net::TcpStream::connect(server)
        .await
        .expect("connected");
    let client = client.local_addr().expect("client address");

    // Assert: `TCP_NODELAY` is set before the handshake, as on plain HTTP.
    crate::helpers::eventually(SHORT, "TCP_NODELAY on the broker's socket", || async {
        crate::sockets::server_side_nodelay(server, client).filter(|on| *on)
    })
    .await;
}

/// A TLS connection that chose HTTP/2 and then sent nothing (no preface)
/// stayed open for good: the head guard times HTTP/1 heads only. It is
/// closed, 10 s after its handshake.
#[actix_web::test]
async fn a_tls_connection_that_chose_http2_and_sends_nothing_is_closed() {
    use tokio::io::AsyncReadExt as _;
    // Arrange
    let (app, _certificate, _dir) = spawn_tls_app().await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connected");

    // Act: the handshake, choosing `h2`, and then silence.
    let mut tls = any_certificate::connector(b"h2")
        .connect("localhost".try_into().expect("a name"), tcp)
        .await
        .expect("a TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(LONG, async {
        let mut buffer = [0u8; 1024];
        while matches!(tls.read(&mut buffer).await, Ok(read) if read > 0) {}
    })
    .await;

    // Assert
    assert!(closed.is_ok(), "still open after {LONG:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(9),
        "closed after {:?}, before its 10 s",
        started.elapsed()
    );
}

/// A TLS client for self-signed test certificates: any certificate passes,
/// its signatures are still checked.
mod any_certificate {
    use std::sync::Arc;

    use rustls::{
        DigitallySignedStruct, SignatureScheme,
        client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        crypto::{CryptoProvider, ring},
        pki_types::{CertificateDer, ServerName, UnixTime},
    };

    #[derive(Debug)]
    struct AnyCertificate(CryptoProvider);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// A connector offering `alpn` alone.
    pub fn connector(alpn: &[u8]) -> tokio_rustls::TlsConnector {
        let provider = ring::default_provider();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider.clone()))
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}
