//! 401s: every way a token can be missing or unacceptable, on every token
//! source (header, cookie, query), and which source wins.

use serde_json::{Value, json};

use super::{
    SECRET, assert_unauthorized, claims, get_as, now, root_token, sign, sign_hs256_with,
    spawn_secured_app, token,
};
use crate::helpers::{SHORT, assert_error, spawn_app_with};

/// base64url without padding, as JWT segments are encoded.
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An unsigned token: `{"alg":"none"}`, the claims, an empty signature.
fn alg_none(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

/// A token with every scope whose claims are `edit`ed first.
fn root_claims_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut claims = claims("alice", "subscribe publish admin", &["*"]);
    edit(&mut claims);
    claims
}

/// The cases every broker with an HS256 key refuses: (what, token).
fn refused_tokens() -> Vec<(&'static str, String)> {
    let root = root_claims_with(|_| {});
    let good = sign(&root);
    // The hand-made tokens below are well formed: this encoder agrees with
    // jsonwebtoken's.
    assert_eq!(
        good.split('.').nth(1),
        Some(b64(root.to_string().as_bytes()).as_str())
    );
    let (signed, signature) = good.rsplit_once('.').expect("three segments");
    let mut forged_payload = good.split('.').map(str::to_owned).collect::<Vec<_>>();
    forged_payload[1] = b64(root_claims_with(|c| c["sub"] = json!("mallory"))
        .to_string()
        .as_bytes());
    vec![
        ("garbage", "not-a-token".to_owned()),
        ("two segments", signed.to_owned()),
        ("empty signature", format!("{signed}.")),
        (
            "non-JSON header",
            format!("bm90LWpzb24.{}", &good[good.find('.').unwrap() + 1..]),
        ),
        (
            "another secret",
            sign_hs256_with(b"some-other-secret-entirely", &root_claims_with(|_| {})),
        ),
        ("a forged payload", forged_payload.join(".")),
        (
            "a truncated signature",
            format!("{signed}.{}", &signature[..signature.len() - 2]),
        ),
        ("appended garbage", format!("{good}x")),
        ("appended base64 padding", format!("{good}=")),
        ("appended double padding", format!("{good}==")),
        ("a fourth segment", format!("{good}.e30")),
        (
            "expired an hour ago",
            sign(&root_claims_with(|c| c["exp"] = json!(now() - 3600))),
        ),
        (
            "expired beyond the leeway",
            sign(&root_claims_with(|c| c["exp"] = json!(now() - 120))),
        ),
        (
            "not valid for an hour",
            sign(&root_claims_with(|c| c["nbf"] = json!(now() + 3600))),
        ),
        ("alg none", alg_none(&root_claims_with(|_| {}))),
        (
            "alg none with a copied signature",
            format!("{}{signature}", alg_none(&root_claims_with(|_| {}))),
        ),
        (
            "no exp",
            sign(&root_claims_with(|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
        ),
        (
            "no sub",
            sign(&root_claims_with(|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
        ),
        (
            "a string exp",
            sign(&root_claims_with(|c| c["exp"] = json!("tomorrow"))),
        ),
        ("a critical header extension", {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.crit = Some(vec!["exp-mandatory-ext".into()]);
            jsonwebtoken::encode(
                &header,
                &root_claims_with(|_| {}),
                &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap()
        }),
        (
            "an HS384 token",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384),
                &root_claims_with(|_| {}),
                &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap(),
        ),
    ]
}

#[actix_web::test]
async fn a_fractional_numeric_date_is_read_as_its_whole_seconds() {
    // RFC 7519 §2 allows a fraction; issuers writing `time.time()` send one.
    let app = spawn_secured_app().await;
    let with = |claim: &str, value: f64| sign(&root_claims_with(|c| c[claim] = json!(value)));
    let now = now() as f64;
    for (what, token) in [
        ("a fractional exp ahead", with("exp", now + 600.5)),
        ("a fractional nbf behind", with("nbf", now - 0.5)),
        ("a fractional iat", with("iat", now - 0.25)),
    ] {
        let answer = get_as(&app, "/sse/history", Some(&token)).await;
        assert_eq!(answer.status().as_u16(), 200, "{what}");
    }
    for (what, token, says) in [
        (
            "a fractional exp an hour ago",
            with("exp", now - 3600.5),
            "expired",
        ),
        (
            "a fractional nbf an hour ahead",
            with("nbf", now + 3600.5),
            "not valid yet",
        ),
    ] {
        let answer = get_as(&app, "/sse/history", Some(&token)).await;
        let body = assert_error(answer, 401, "unauthorized").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{what}: {body}"
        );
    }
}

#[actix_web::test]
async fn a_request_without_a_token_is_401_with_a_bearer_challenge() {
    let app = spawn_secured_app().await;

    // A malformed query waits behind the missing token: whoever may not
    // call is told so first (a 400 would answer a stranger's question).
    for path in [
        "/sse/events",
        "/sse/history",
        "/sse/stats",
        "/sse/history?limit=abc",
        "/sse/connections?offset=x",
        "/sse/events?event_types=nope",
        "/tasks/t1/ui-message-stream?ai_sdk=x",
        "/chats/c1/stream?ai_sdk=x",
    ] {
        let response = get_as(&app, path, None).await;
        let body = assert_unauthorized(response, &[]).await;
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("token")),
            "{body}"
        );
    }
    let publish = super::post_as(
        &app,
        "/sse/publish",
        Some(&json!({"event_type": "commit"})),
        None,
    )
    .await;
    assert_unauthorized(publish, &[]).await;
}

#[actix_web::test]
async fn every_unacceptable_token_is_401_on_every_token_source() {
    let app = spawn_secured_app().await;

    for (what, bad) in refused_tokens() {
        let secrets = [bad.as_str()];
        // Header.
        let response = get_as(&app, "/sse/history", Some(&bad)).await;
        assert_eq!(response.status().as_u16(), 401, "{what} in the header");
        assert_unauthorized(response, &secrets).await;
        // Cookie.
        let response = app
            .api_client
            .get(app.url("/sse/history"))
            .header("Cookie", format!("theme=dark; sse_token={bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{what} in the cookie");
        assert_unauthorized(response, &secrets).await;
        // Query, on a stream (EventSource's only option).
        let response = app
            .api_client
            .get(app.url("/sse/events"))
            .query(&[("access_token", &bad)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{what} in the query");
        assert_unauthorized(response, &secrets).await;
    }
}

#[actix_web::test]
async fn an_authorization_header_that_is_not_a_bearer_token_is_401() {
    let app = spawn_secured_app().await;
    let good = root_token();

    for value in [
        format!("Basic {good}"),
        format!("Token {good}"),
        good.clone(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer  {}", "x".repeat(4096)),
    ] {
        let response = app
            .api_client
            .get(app.url("/sse/history"))
            .header("Authorization", &value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "Authorization: {value}");
        let body = assert_unauthorized(response, &[&good]).await;
        if !value.starts_with("Bearer") {
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("Bearer <token>"), "{value}: {message}");
        }
    }
}

#[actix_web::test]
async fn a_wrong_audience_or_issuer_is_401_when_configured() {
    let app = spawn_app_with(|settings| {
        super::with_secret(settings);
        settings.auth.audience = Some("sse-broker".into());
        settings.auth.issuer = Some("https://id.example".into());
    })
    .await;
    let with = |aud: Option<&str>, iss: Option<&str>| {
        sign(&root_claims_with(|c| {
            if let Some(aud) = aud {
                c["aud"] = json!(aud);
            }
            if let Some(iss) = iss {
                c["iss"] = json!(iss);
            }
        }))
    };

    let accepted = with(Some("sse-broker"), Some("https://id.example"));
    let response = get_as(&app, "/sse/history", Some(&accepted)).await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "{:?}",
        response.text().await
    );
    // RFC 7519 §4.1.3: `aud` may be an array; one match is enough.
    let several = sign(&root_claims_with(|c| {
        c["aud"] = json!(["billing", "sse-broker"]);
        c["iss"] = json!("https://id.example");
    }));
    let response = get_as(&app, "/sse/history", Some(&several)).await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "an audience array: {:?}",
        response.text().await
    );

    for (what, refused) in [
        (
            "another audience",
            with(Some("billing"), Some("https://id.example")),
        ),
        ("no audience", with(None, Some("https://id.example"))),
        (
            "another issuer",
            with(Some("sse-broker"), Some("https://evil.example")),
        ),
        ("no issuer", with(Some("sse-broker"), None)),
        (
            "an audience array without ours",
            sign(&root_claims_with(|c| {
                c["aud"] = json!(["billing", "crm"]);
                c["iss"] = json!("https://id.example");
            })),
        ),
    ] {
        let response = get_as(&app, "/sse/history", Some(&refused)).await;
        assert_eq!(response.status().as_u16(), 401, "{what}");
        assert_unauthorized(response, &[&refused]).await;
    }
}

#[actix_web::test]
async fn audience_and_issuer_are_not_checked_when_not_configured() {
    let app = spawn_secured_app().await;
    let any = sign(&root_claims_with(|c| {
        c["aud"] = json!("whatever");
        c["iss"] = json!("whoever");
    }));

    let response = get_as(&app, "/sse/history", Some(&any)).await;

    assert_eq!(response.status().as_u16(), 200);
}

#[actix_web::test]
async fn a_token_within_the_clock_skew_leeway_is_accepted() {
    let app = spawn_secured_app().await;
    let just_expired = sign(&root_claims_with(|c| c["exp"] = json!(now() - 5)));
    let almost_valid = sign(&root_claims_with(|c| c["nbf"] = json!(now() + 5)));

    for token in [just_expired, almost_valid] {
        let response = get_as(&app, "/sse/history", Some(&token)).await;
        assert_eq!(
            response.status().as_u16(),
            200,
            "{:?}",
            response.text().await
        );
    }
}

#[actix_web::test]
async fn a_valid_token_is_accepted_from_the_header_the_cookie_or_the_query() {
    let app = spawn_secured_app().await;
    let good = token("alice", "subscribe", &["p1"]);

    let header = get_as(&app, "/sse/history", Some(&good)).await;
    let cookie = app
        .api_client
        .get(app.url("/sse/history"))
        .header("Cookie", format!("a=b; sse_token={good}; c=d"))
        .send()
        .await
        .unwrap();
    // RFC 6265 §4.1.1: a value in double quotes.
    let quoted = app
        .api_client
        .get(app.url("/sse/history"))
        .header("Cookie", format!("sse_token=\"{good}\""))
        .send()
        .await
        .unwrap();
    let query = app
        .api_client
        .get(app.url("/sse/history"))
        .query(&[("access_token", &good)])
        .send()
        .await
        .unwrap();
    // A cookie blanked by a logout, not deleted, is no cookie: the query's
    // token is read.
    let query_beside_a_blank_cookie = app
        .api_client
        .get(app.url("/sse/history"))
        .header("Cookie", "sse_token=; other=1")
        .query(&[("access_token", &good)])
        .send()
        .await
        .unwrap();

    // Another cookie of the site with non-ASCII bytes (UTF-8, Latin-1).
    let mut beside_non_ascii = Vec::new();
    for other in [&b"city=Z\xc3\xbcrich"[..], b"name=Jos\xe9"] {
        let mut cookies = other.to_vec();
        cookies.extend_from_slice(format!("; sse_token={good}").as_bytes());
        let value = reqwest::header::HeaderValue::from_bytes(&cookies).expect("a header value");
        beside_non_ascii.push(
            app.api_client
                .get(app.url("/sse/history"))
                .header("Cookie", value)
                .send()
                .await
                .unwrap(),
        );
    }
    let [utf8, latin1] = <[_; 2]>::try_from(beside_non_ascii).expect("two");

    for (source, response) in [
        ("header", header),
        ("cookie", cookie),
        ("quoted cookie", quoted),
        ("query", query),
        ("query beside a blank cookie", query_beside_a_blank_cookie),
        ("cookie beside a UTF-8 one", utf8),
        ("cookie beside a Latin-1 one", latin1),
    ] {
        assert_eq!(response.status().as_u16(), 200, "token in the {source}");
    }
    // The scheme's name in any case (RFC 7235 section 2.1).
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let response = app
            .api_client
            .get(app.url("/sse/history"))
            .header("Authorization", format!("{scheme} {good}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "scheme {scheme}");
    }
    // A stream authenticated by the query string, as EventSource does it.
    let stream = app
        .open_stream(&format!("/sse/events?access_token={good}"), &[])
        .await;
    assert!(stream.connected.is("connected"));
}

#[actix_web::test]
async fn the_header_wins_over_the_cookie_and_the_cookie_over_the_query() {
    let app = spawn_secured_app().await;
    let good = token("alice", "subscribe", &["p1"]);
    let bad = sign_hs256_with(b"not-the-secret", &claims("alice", "subscribe", &["p1"]));
    let request = |header: Option<&str>, cookie: Option<&str>, query: Option<&str>| {
        let mut request = app.api_client.get(app.url("/sse/history"));
        if let Some(header) = header {
            request = request.bearer_auth(header);
        }
        if let Some(cookie) = cookie {
            request = request.header("Cookie", format!("sse_token={cookie}"));
        }
        if let Some(query) = query {
            request = request.query(&[("access_token", query)]);
        }
        request.send()
    };

    let cases = [
        (Some(&good), Some(&bad), Some(&bad), 200),
        (Some(&bad), Some(&good), Some(&good), 401),
        (None, Some(&good), Some(&bad), 200),
        (None, Some(&bad), Some(&good), 401),
        (None, None, Some(&good), 200),
    ];
    for (i, (header, cookie, query, expected)) in cases.into_iter().enumerate() {
        let response = request(
            header.map(String::as_str),
            cookie.map(String::as_str),
            query.map(String::as_str),
        )
        .await
        .unwrap();
        assert_eq!(response.status().as_u16(), expected, "case {i}");
    }
}

/// Two tokens in one request (a proxy adding its own, a client library
/// appending a second `access_token`) are refused: which one was meant
/// cannot be told, and taking either let the order of query parameters
/// decide which tenant's stream opened.
#[actix_web::test]
async fn two_tokens_in_one_place_are_refused_whichever_is_good() {
    let app = spawn_secured_app().await;
    let narrow = token("alice", "subscribe", &["p1"]);
    let wide = root_token();
    for (first, second) in [(&narrow, &wide), (&wide, &narrow)] {
        let query = app
            .api_client
            .get(app.url("/sse/history"))
            .query(&[("access_token", first), ("access_token", second)])
            .send()
            .await
            .unwrap();
        let headers = app
            .api_client
            .get(app.url("/sse/history"))
            .header("Authorization", format!("Bearer {first}"))
            .header("Authorization", format!("Bearer {second}"))
            .send()
            .await
            .unwrap();
        for (source, response) in [("query", query), ("headers", headers)] {
            let body: Value = {
                assert_eq!(response.status().as_u16(), 401, "{source}");
                response.json().await.unwrap()
            };
            assert_eq!(body["error"]["code"], "unauthorized", "{source}: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("two tokens were sent"),
                "{source}: {body}"
            );
        }
    }
}

#[actix_web::test]
async fn a_refused_stream_sends_no_event_stream() {
    let app = spawn_secured_app().await;

    let response = app.stream_response("/sse/events", &[]).await;

    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = tokio::time::timeout(SHORT, assert_unauthorized(response, &[]))
        .await
        .expect("a 401 body, not an open stream");
    assert!(body.is_object());
}

#[actix_web::test]
async fn authentication_comes_before_the_body_is_judged() {
    let app = spawn_secured_app().await;
    let huge = format!(
        "{{\"event_type\":\"commit\",\"data\":\"{}\"}}",
        "x".repeat(100_000)
    );

    for body in [huge, "{not json".to_owned(), String::new()] {
        let response = app
            .api_client
            .post(app.url("/sse/publish"))
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            401,
            "an anonymous body of {} bytes",
            body.len()
        );
        assert_unauthorized(response, &[]).await;
    }
}

#[actix_web::test]
async fn the_cookie_never_authenticates_a_write_so_other_sites_cannot_forge_one() {
    let app = spawn_secured_app().await;
    let publisher = token("alice", "subscribe publish", &["*"]);

    // A cross-site form post: text/plain body, foreign Origin, the cookie.
    let forged = app
        .api_client
        .post(app.url("/sse/publish"))
        .header("Origin", "https://evil.example")
        .header("Content-Type", "text/plain")
        .header("Cookie", format!("sse_token={publisher}"))
        .body(r#"{"event_type":"commit","data":{"forged":true}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let body = assert_unauthorized(forged, &[publisher.as_str()]).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{body}"
    );

    // Nothing was stored, and the same token works as a bearer header, and
    // as a cookie on a read.
    let history = get_as(&app, "/sse/history", Some(&publisher)).await;
    let history: Value = history.json().await.unwrap();
    assert_eq!(
        history["events"],
        json!([]),
        "the forged event must not exist"
    );
    let bearer = app
        .api_client
        .post(app.url("/sse/publish"))
        .bearer_auth(&publisher)
        .json(&json!({"event_type": "commit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 202);
    let read = app
        .api_client
        .get(app.url("/sse/history"))
        .header("Cookie", format!("sse_token={publisher}"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);
}
