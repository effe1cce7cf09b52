//! The binary's auth-related subcommands: `token` mints what the broker
//! accepts; `check-config` refuses a public bind with authentication off.

use std::{
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::helpers::broker_command;

use super::{SECRET, assert_forbidden, get_as, now, open_stream_as, post_as, spawn_secured_app};

/// The real binary, with nothing from the test run's environment that could
/// reconfigure it, run in a scratch directory.
fn broker(args: &[&str], env: &[(&str, &str)]) -> Output {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let mut command = broker_command();
    command.args(args).current_dir(scratch.path());
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The claims of an HS256 token signed with [`SECRET`], verified.
fn verified_claims(token: &str) -> Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .expect("an HS256 JWT signed with the configured secret")
    .claims
}

#[actix_web::test]
async fn a_minted_token_is_accepted_with_exactly_its_scopes_and_projects() {
    // Arrange
    let output = broker(
        &[
            "token",
            "--sub",
            "alice",
            "--scope",
            "subscribe publish",
            "--project",
            "p1",
            "--ttl",
            "3600",
        ],
        &[("SSE_BROKER_JWT_SECRET", SECRET)],
    );
    assert!(
        output.status.success(),
        "token failed: {}",
        text(&output.stderr)
    );
    let stdout = text(&output.stdout);
    let token = stdout.trim();
    assert_eq!(token.lines().count(), 1, "one token line: {stdout:?}");
    assert!(!stdout.contains(SECRET));
    let claims = verified_claims(token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["scope"], "subscribe publish");
    assert_eq!(claims["projects"], json!(["p1"]));
    let exp = claims["exp"].as_i64().expect("a numeric exp");
    assert!((exp - (now() + 3600)).abs() <= 5, "exp {exp}");
    let app = spawn_secured_app().await;

    // Act + Assert: subscribe and publish on p1, nothing more.
    let mut stream = open_stream_as(&app, "/sse/events?project_id=p1", token).await;
    let published = post_as(
        &app,
        "/sse/publish",
        Some(&json!({"event_type": "commit", "project_id": "p1", "user_id": "alice"})),
        Some(token),
    )
    .await;
    assert_eq!(published.status().as_u16(), 202);
    let event = stream
        .next_message(crate::helpers::SHORT)
        .await
        .expect("its own event");
    assert!(event.is("commit"), "{event:?}");
    let history = get_as(&app, "/sse/history", Some(token)).await;
    assert_eq!(history.status().as_u16(), 200);

    let other_project = post_as(
        &app,
        "/sse/publish",
        Some(&json!({"event_type": "commit", "project_id": "p2"})),
        Some(token),
    )
    .await;
    assert_forbidden(other_project, &[token]).await;
    let admin = get_as(&app, "/sse/stats", Some(token)).await;
    assert_forbidden(admin, &[token]).await;
}

#[test]
fn minting_without_a_key_fails() {
    let output = broker(&["token", "--sub", "alice"], &[]);

    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    assert!(
        text(&output.stderr).contains("--jwt-secret"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn check_config_refuses_a_public_bind_without_authentication() {
    let refused = broker(&["check-config", "--bind", "0.0.0.0:0"], &[]);

    assert_eq!(
        refused.status.code(),
        Some(1),
        "stdout: {} stderr: {}",
        text(&refused.stdout),
        text(&refused.stderr)
    );
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("--insecure-no-auth"), "{stderr}");
    assert!(stderr.contains("0.0.0.0"), "{stderr}");

    let insecure = broker(
        &["check-config", "--bind", "0.0.0.0:0", "--insecure-no-auth"],
        &[],
    );
    assert_eq!(
        insecure.status.code(),
        Some(0),
        "{}",
        text(&insecure.stderr)
    );

    // Loopback in every form: IPv4, IPv6, and IPv4 mapped into IPv6.
    for address in ["127.0.0.1:0", "[::1]:0", "[::ffff:127.0.0.1]:0"] {
        let loopback = broker(&["check-config", "--bind", address], &[]);
        assert_eq!(
            loopback.status.code(),
            Some(0),
            "{address}: {}",
            text(&loopback.stderr)
        );
    }
    let mapped_public = broker(&["check-config", "--bind", "[::ffff:10.0.0.1]:0"], &[]);
    assert_eq!(mapped_public.status.code(), Some(1));
}

#[test]
fn check_config_accepts_a_public_bind_with_a_key_and_masks_it() {
    let output = broker(
        &["check-config", "--bind", "0.0.0.0:0"],
        &[("SSE_BROKER_JWT_SECRET", SECRET)],
    );

    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let shown: Value = serde_json::from_str(&stdout).expect("the configuration as JSON");
    assert_eq!(shown["auth_enabled"], true, "{shown}");
    assert!(!stdout.contains(SECRET), "the secret is printed: {stdout}");
    assert!(!text(&output.stderr).contains(SECRET));
}

#[test]
fn serve_refuses_a_public_bind_without_authentication() {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let mut child = broker_command()
        .args(["serve", "--bind", "0.0.0.0:0"])
        .current_dir(scratch.path())
        .env_remove("SSE_BROKER_JWT_SECRET")
        .env_remove("SSE_BROKER_JWT_PUBLIC_KEY")
        .env_remove("SSE_BROKER_INSECURE_NO_AUTH")
        .env_remove("SSE_BROKER_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");

    // It must exit by itself; if it serves instead, stop it and fail.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("a child status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve started on 0.0.0.0 with authentication off");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--insecure-no-auth"), "{stderr}");
}

#[test]
fn an_hs256_secret_under_32_bytes_stops_start_up_with_a_clear_error() {
    for (secret, accepted) in [
        ("x", false),
        (&"k".repeat(31), false),
        (&"k".repeat(32), true),
    ] {
        // Act
        let output = broker(&["check-config"], &[("SSE_BROKER_JWT_SECRET", secret)]);

        // Assert
        let stderr = text(&output.stderr);
        assert_eq!(
            output.status.success(),
            accepted,
            "a {}-byte secret: {stderr}",
            secret.len()
        );
        if !accepted {
            assert!(
                stderr.contains(&format!("{} bytes", secret.len()))
                    && stderr.contains("at least 32"),
                "the error says what is wrong and what is needed: {stderr}"
            );
            assert!(
                secret.len() < 8 || !stderr.contains(secret),
                "the error echoes the secret: {stderr}"
            );
        }
    }
}

/// A token the broker would refuse is not minted: an unknown scope, no
/// scope, a subject or project that is not one, a lifetime of 0 seconds or
/// of more than 10 years,
/// a public key given to sign with, a SEC1 EC key (how to convert it), an
/// EC key on another curve than P-256.
/// Each says which and exits 1.
#[test]
fn the_token_subcommand_refuses_what_the_broker_would() {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let public_key = scratch.path().join("public.pem");
    let pair =
        super::key_pair::KeyPair::generate(scratch.path(), "es", jsonwebtoken::Algorithm::ES256);
    std::fs::write(&public_key, &pair.public_pem).expect("written");
    let public_key = public_key.display().to_string();
    // `openssl ecparam -genkey`'s form of an EC key.
    let sec1_key = scratch.path().join("sec1.pem");
    let converted = std::process::Command::new("openssl")
        .args(["ec", "-in"])
        .arg(&pair.private_path)
        .arg("-out")
        .arg(&sec1_key)
        .output()
        .expect("the openssl CLI");
    assert!(converted.status.success(), "{converted:?}");
    assert!(text(&std::fs::read(&sec1_key).expect("read")).contains("BEGIN EC PRIVATE KEY"));
    let sec1_key = sec1_key.display().to_string();
    let p384 =
        super::key_pair::KeyPair::generate(scratch.path(), "p384", jsonwebtoken::Algorithm::ES384);
    let p384_key = p384.private_path.display().to_string();
    let cases: [(&[&str], &str); 10] = [
        (&["--scope", "subscribe fly"], "\"fly\" is not a scope"),
        (&["--scope", " "], "at least one scope"),
        (&["--sub", ""], "--sub:"),
        (&["--project", ""], "--project:"),
        (&["--ttl", "0"], "at least 1 second"),
        (&["--ttl", "315360001"], "at most 315360000 seconds"),
        (
            &["--ttl", "18446744073709551615"],
            "at most 315360000 seconds",
        ),
        (&["--private-key", &public_key], "PEM private key"),
        (
            &["--private-key", &sec1_key],
            "openssl pkcs8 -topk8 -nocrypt",
        ),
        (&["--private-key", &p384_key], "ES256 takes P-256"),
    ];

    for (extra, reason) in cases {
        let mut args = vec!["--jwt-secret", SECRET, "token"];
        if !extra.contains(&"--sub") {
            args.extend(["--sub", "alice"]);
        }
        args.extend_from_slice(extra);
        let output = broker(&args, &[]);

        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(stderr.contains(reason), "{extra:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{extra:?}: a token was printed");
    }
}
