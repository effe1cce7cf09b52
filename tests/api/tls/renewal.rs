//! A renewed certificate is served from the next handshake on, without a
//! restart and without closing the streams already open: when its files
//! change, and on SIGHUP.

use std::{
    fs::File,
    path::Path,
    time::{Duration, SystemTime},
};

use serde_json::json;

use super::{TestCertificate, https, presented, spawn_tls_app, tls_client};
use crate::helpers::{BrokerProcess, EventStream, LONG, SHORT, eventually};

/// Writes `text` to `path` through a rename, as certbot and Kubernetes
/// secret updates do, so the broker never reads half a file.
fn replace(path: &Path, text: &str) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, text).expect("the new file written");
    std::fs::rename(&staged, path).expect("the new file in place");
}

/// What a fresh HTTPS connection to `port` is shown.
async fn certificate_at(port: u16) -> Option<Vec<u8>> {
    let response = tls_client(false)
        .get(format!("https://127.0.0.1:{port}/health"))
        .send()
        .await
        .ok()?;
    Some(presented(&response))
}

#[actix_web::test]
async fn a_changed_certificate_file_is_served_to_new_connections_and_open_streams_stay() {
    // Arrange
    let (app, first, dir) = spawn_tls_app().await;
    let client = tls_client(false);
    let response = client
        .get(https(&app, "/sse/events"))
        .send()
        .await
        .expect("a stream");
    let mut open = EventStream::connected(response, "a viewer from before").await;
    let second = TestCertificate::generate();
    assert_eq!(certificate_at(app.port).await, Some(first.der.clone()));

    // Act: the key first, then the certificate (between the two the pair
    // does not match: the broker must keep the old one, then retry).
    replace(&dir.path().join("key.pem"), &second.key_pem);
    replace(&dir.path().join("cert.pem"), &second.cert_pem);

    // Assert
    eventually(LONG, "the renewed certificate", || {
        let expected = second.der.clone();
        let port = app.port;
        async move { (certificate_at(port).await == Some(expected)).then_some(()) }
    })
    .await;
    let published = client
        .post(https(&app, "/sse/publish"))
        .json(&json!({"event_type": "commit"}))
        .send()
        .await
        .expect("a publish");
    assert_eq!(published.status().as_u16(), 202);
    let event = open
        .next_message(SHORT)
        .await
        .expect("the old stream lives");
    assert!(event.is("commit"));
    let metrics = client
        .get(https(&app, "/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sse_tls_reloads_total{outcome=\"ok\"") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

/// Pads a PEM file to `size` bytes with blank lines, which PEM readers
/// skip: two certificates padded alike have files of one size.
fn padded(pem: &str, size: usize) -> String {
    assert!(pem.len() < size, "a PEM file under {size} bytes");
    format!("{pem}{}", "\n".repeat(size - pem.len()))
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("a modification time")
}

fn set_modified(path: &Path, time: SystemTime) {
    File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(time))
        .expect("the modification time set");
}

/// A broker process serving `cert` and `key` from `dir`, once it answers
/// over HTTPS.
async fn https_broker(dir: &Path, cert: &Path, key: &Path) -> BrokerProcess {
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let broker = BrokerProcess::spawn_with(
        &dir.join("events.db"),
        dir.join("broker.log"),
        &["--tls-cert", &cert, "--tls-key", &key],
        &[],
    );
    let port = broker.port();
    eventually(LONG, "the broker over HTTPS", || async move {
        certificate_at(port).await
    })
    .await;
    broker
}

#[actix_web::test]
async fn sighup_reloads_a_certificate_the_file_check_cannot_see() {
    // Arrange: files of one size whose times are put back after the
    // change, so only SIGHUP can reveal it.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (first, second) = (TestCertificate::generate(), TestCertificate::generate());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, padded(&first.cert_pem, 4096)).expect("written");
    std::fs::write(&key, padded(&first.key_pem, 1024)).expect("written");
    let broker = https_broker(dir.path(), &cert, &key).await;
    let port = broker.port();
    assert_eq!(certificate_at(port).await, Some(first.der.clone()));
    let times = (modified(&cert), modified(&key));
    std::fs::write(&cert, padded(&second.cert_pem, 4096)).expect("written");
    std::fs::write(&key, padded(&second.key_pem, 1024)).expect("written");
    set_modified(&cert, times.0);
    set_modified(&key, times.1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        certificate_at(port).await,
        Some(first.der.clone()),
        "without a visible change the file check keeps the old one"
    );

    // Act
    broker.signal("HUP");

    // Assert
    eventually(SHORT, "the certificate SIGHUP reloaded", || {
        let expected = second.der.clone();
        async move { (certificate_at(port).await == Some(expected)).then_some(()) }
    })
    .await;
    let logs = broker.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("TLS certificate reloaded") && l.contains("SIGHUP")),
        "{logs}"
    );
}

#[actix_web::test]
async fn a_broker_without_tls_takes_sighup_in_its_stride() {
    // Arrange: a unit's `ExecReload` may send SIGHUP to any instance.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut broker = BrokerProcess::spawn(&dir.path().join("events.db"), dir.path().join("log"));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    broker.wait_until_ready(&client).await;

    // Act
    broker.signal("HUP");

    // Assert
    eventually(SHORT, "the SIGHUP log line", || {
        let logs = broker.logs();
        async move {
            logs.contains("SIGHUP received: nothing to reload")
                .then_some(())
        }
    })
    .await;
    let health = client
        .get(format!("{}/health", broker.address))
        .send()
        .await
        .expect("still serving");
    assert_eq!(health.status().as_u16(), 200);
}

#[actix_web::test]
async fn a_broken_pair_left_in_place_is_said_once_and_a_fixed_one_loads() {
    // Arrange
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (first, second, third) = (
        TestCertificate::generate(),
        TestCertificate::generate(),
        TestCertificate::generate(),
    );
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &first.cert_pem).expect("written");
    std::fs::write(&key, &first.key_pem).expect("written");
    let broker = https_broker(dir.path(), &cert, &key).await;
    let port = broker.port();

    // Act: a certificate whose key is another's, left so for 4 checks.
    replace(&cert, &second.cert_pem);
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let failures = broker
        .logs()
        .matches("TLS certificate reload failed")
        .count();
    replace(&cert, &third.cert_pem);
    replace(&key, &third.key_pem);

    // Assert
    assert_eq!(
        failures,
        1,
        "one warning, not one a second: {}",
        broker.logs()
    );
    assert_eq!(certificate_at(port).await, Some(first.der.clone()));
    eventually(SHORT, "the fixed pair", || {
        let expected = third.der.clone();
        async move { (certificate_at(port).await == Some(expected)).then_some(()) }
    })
    .await;
}
