//! RS256 and ES256 public keys from PEM files (generated with the `openssl`
//! CLI), and the algorithm confusions a fixed key type must refuse.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{
    assert_unauthorized, claims, get_as, key_pair::KeyPair, open_stream_as, post_as, sign,
    sign_hs256_with, spawn_secured_app,
};
use crate::helpers::{SHORT, TestApp, spawn_app_with};

async fn spawn_with_public_key(key: &KeyPair) -> TestApp {
    let path = key.public_path.clone();
    spawn_app_with(move |settings| settings.auth.jwt_public_keys = vec![path]).await
}

fn alice() -> Value {
    claims("alice", "subscribe publish", &["p1"])
}

/// A broker verifying `key` accepts its tokens and refuses the confusions.
async fn check_public_key_broker(dir: &TempDir, key: &KeyPair, other: &KeyPair) {
    let app = spawn_with_public_key(key).await;
    let good = key.sign(None, &alice());

    // Accepted on every kind of endpoint.
    let mut stream = open_stream_as(&app, "/sse/events?project_id=p1", &good).await;
    let published = post_as(
        &app,
        "/sse/publish",
        Some(&json!({"event_type": "commit", "project_id": "p1"})),
        Some(&good),
    )
    .await;
    assert_eq!(published.status().as_u16(), 202, "{:?}", key.algorithm);
    let event = stream.next_message(SHORT).await.expect("the event");
    assert!(event.is("commit"), "{event:?}");
    assert_eq!(
        get_as(&app, "/sse/history", Some(&good)).await.status(),
        200
    );

    // Refused: another key pair of either type, an HS256 token signed with
    // the public key's bytes (the classic confusion), a plain HS256 token,
    // a token of the right algorithm that is expired, and tampering.
    let mut expired = alice();
    expired["exp"] = json!(super::now() - 3600);
    let other_same_type = KeyPair::generate(dir.path(), "again", key.algorithm);
    let refused = [
        ("a token of another key type", other.sign(None, &alice())),
        (
            "a token of another key of the same type",
            other_same_type.sign(None, &alice()),
        ),
        (
            "HS256 keyed with the public PEM",
            sign_hs256_with(&key.public_pem, &alice()),
        ),
        ("HS256 with the test secret", sign(&alice())),
        ("expired", key.sign(None, &expired)),
        ("appended garbage", format!("{good}AAAA")),
    ];
    let mut secrets = key.secrets();
    secrets.extend(other.secrets());
    for (what, token) in &refused {
        let response = get_as(&app, "/sse/history", Some(token)).await;
        assert_eq!(
            response.status().as_u16(),
            401,
            "{what} against {:?}",
            key.algorithm
        );
        let mut all: Vec<&str> = secrets.iter().map(String::as_str).collect();
        all.push(token);
        assert_unauthorized(response, &all).await;
    }
}

#[actix_web::test]
async fn rs256_and_es256_public_keys_verify_their_tokens_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = KeyPair::generate(dir.path(), "rsa", Algorithm::RS256);
    let ec = KeyPair::generate(dir.path(), "ec", Algorithm::ES256);

    check_public_key_broker(&dir, &rsa, &ec).await;
    check_public_key_broker(&dir, &ec, &rsa).await;
}

#[actix_web::test]
async fn an_rs256_token_is_refused_by_an_hs256_broker() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = KeyPair::generate(dir.path(), "rsa", Algorithm::RS256);
    let app = spawn_secured_app().await;

    let token = rsa.sign(None, &alice());

    let response = get_as(&app, "/sse/history", Some(&token)).await;
    let mut secrets = rsa.secrets();
    secrets.push(token);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_unauthorized(response, &secrets).await;
    // The broker's own secret works, of course.
    assert_eq!(
        get_as(&app, "/sse/history", Some(&sign(&alice())))
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn the_token_subcommand_signs_with_a_private_key_for_a_public_key_broker() {
    let dir = tempfile::tempdir().unwrap();
    let ec = KeyPair::generate(dir.path(), "ec", Algorithm::ES256);
    let app = spawn_with_public_key(&ec).await;

    let output = crate::helpers::broker_command()
        .args([
            "token",
            "--sub",
            "alice",
            "--scope",
            "admin",
            "--private-key",
        ])
        .arg(&ec.private_path)
        .current_dir(dir.path())
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    let response = get_as(&app, "/sse/stats", Some(token.trim())).await;
    assert_eq!(response.status().as_u16(), 200);
}

/// With the broker's public keys configured, `token` signs only with a
/// private key whose public half is among them: a token from another key
/// would be refused by the broker it is minted for.
#[test]
fn the_token_subcommand_refuses_a_private_key_the_configured_broker_would_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ours = KeyPair::generate(dir.path(), "ours", Algorithm::ES256);
    let other = KeyPair::generate(dir.path(), "other", Algorithm::ES256);
    let mint = |private: &std::path::Path| {
        crate::helpers::broker_command()
            .arg("--jwt-public-key")
            .arg(&ours.public_path)
            .args(["token", "--sub", "alice", "--private-key"])
            .arg(private)
            .output()
            .unwrap()
    };

    let matching = mint(&ours.private_path);
    let unrelated = mint(&other.private_path);

    assert!(
        matching.status.success(),
        "{}",
        String::from_utf8_lossy(&matching.stderr)
    );
    let stderr = String::from_utf8_lossy(&unrelated.stderr);
    assert_eq!(unrelated.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not among the configured --jwt-public-key"),
        "{stderr}"
    );
    assert!(unrelated.stdout.is_empty(), "a token was printed");
}

/// Why a broker given `public_key` as its JWT public key refuses to build
/// (it must refuse), its store in `dir`.
async fn refusal_with_public_key(dir: &std::path::Path, public_key: &std::path::Path) -> String {
    let mut settings =
        sse_broker::config::Settings::for_tests(sse_broker::config::DatabaseUrl::Sqlite {
            path: dir.join("events.db"),
        });
    settings.auth.jwt_public_keys = vec![public_key.to_owned()];
    let built = sse_broker::app::Application::build(settings).await;
    format!("{:#}", built.err().expect("the broker refuses to build"))
}

#[actix_web::test]
async fn a_public_key_that_is_not_a_pem_key_stops_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-key.pem");
    std::fs::write(
        &path,
        "-----BEGIN PUBLIC KEY-----\nbm9wZQ==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();

    let error = refusal_with_public_key(dir.path(), &path).await;

    assert!(error.contains("not-a-key.pem"), "{error}");
    assert!(
        !error.contains("bm9wZQ"),
        "the key material is echoed: {error}"
    );
}

/// A private key given as the public one (a common slip: both files sit
/// side by side) would start a broker that refuses every token, even those
/// it signs: the build stops, naming the file and the fix.
#[actix_web::test]
async fn a_private_key_given_as_the_public_key_stops_the_build() {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in [Algorithm::RS256, Algorithm::ES256] {
        let key = KeyPair::generate(dir.path(), &format!("{algorithm:?}"), algorithm);

        let error = refusal_with_public_key(dir.path(), &key.private_path).await;

        assert!(
            error.contains(&key.private_path.display().to_string())
                && error.contains("holds a private key"),
            "{algorithm:?}: {error}"
        );
    }
}

/// An EC public key on another curve than P-256 reads as a key, then
/// verifies no token (ES256 is P-256 only): the build stops, naming it.
#[actix_web::test]
async fn an_ec_public_key_on_another_curve_stops_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "p384", Algorithm::ES384);

    let error = refusal_with_public_key(dir.path(), &key.public_path).await;

    assert!(
        error.contains("p384.pub.pem") && error.contains("P-256"),
        "{error}"
    );
}

/// `check-config` reads the keys and the certificate a start would, and
/// refuses what would stop it: a private key as the public one, a key
/// that does not fit its certificate.
#[test]
fn check_config_refuses_the_key_files_a_start_would() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "rs", Algorithm::RS256);
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a cert");
    let unrelated = rcgen::KeyPair::generate().expect("a key");
    let (cert, other_key) = (dir.path().join("cert.pem"), dir.path().join("other.pem"));
    std::fs::write(&cert, issued.cert.pem()).expect("written");
    std::fs::write(&other_key, unrelated.serialize_pem()).expect("written");
    let check = |args: &[&std::ffi::OsStr]| {
        crate::helpers::broker_command()
            .args(args)
            .arg("check-config")
            .output()
            .expect("the binary runs")
    };

    let private_as_public = check(&["--jwt-public-key".as_ref(), key.private_path.as_os_str()]);
    let mismatched = check(&[
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        other_key.as_os_str(),
    ]);

    for (output, reason) in [
        (private_as_public, "holds a private key"),
        (mismatched, "loading the TLS certificate"),
    ] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{reason}: {stderr}");
        assert!(stderr.contains(reason), "{stderr}");
        assert!(
            output.stdout.is_empty(),
            "{reason}: the configuration was printed"
        );
    }
}
