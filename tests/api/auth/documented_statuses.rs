//! `/openapi.json` against the broker's own answers: every status an
//! operation gives a missing token, a token without its scope, a malformed
//! id, an unknown id and a malformed or misshapen body is one the document lists for
//! that operation (what a client generated from the document must expect).

use std::time::Duration;

use serde_json::Value;

use super::{root_token, spawn_secured_app, token};

/// One way to call an operation wrongly.
struct Probe {
    what: &'static str,
    token: Option<String>,
    id: &'static str,
    body: Option<&'static str>,
}

/// The probes for `operation` at `path`.
fn probes(path: &str, operation: &Value) -> Vec<Probe> {
    let unknown = if path.starts_with("/sse/connections/") {
        "00000000-0000-4000-8000-000000000000"
    } else {
        "nosuch"
    };
    let json_body = operation["requestBody"]["content"]
        .get("application/json")
        .is_some();
    let body = json_body.then_some("{}");
    let mut probes = vec![
        Probe {
            what: "no token",
            token: None,
            id: unknown,
            body,
        },
        Probe {
            what: "only the admin scope",
            token: Some(token("probe", "admin", &["*"])),
            id: unknown,
            body,
        },
        Probe {
            what: "no admin scope",
            token: Some(token("probe", "subscribe publish", &["*"])),
            id: unknown,
            body,
        },
    ];
    if path.contains('{') {
        probes.push(Probe {
            what: "a malformed id",
            token: Some(root_token()),
            id: "bad%21",
            body,
        });
        probes.push(Probe {
            what: "an unknown id",
            token: Some(root_token()),
            id: unknown,
            body,
        });
    }
    if json_body {
        probes.push(Probe {
            what: "a malformed body",
            token: Some(root_token()),
            id: unknown,
            body: Some("{not json"),
        });
        probes.push(Probe {
            what: "a body that is not an object",
            token: Some(root_token()),
            id: unknown,
            body: Some("[null, null]"),
        });
    }
    probes
}

/// `path` with every `{parameter}` replaced by `id`.
fn concrete(path: &str, id: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("a closed parameter") + open;
        out.push_str(&rest[..open]);
        out.push_str(id);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[actix_web::test]
async fn every_status_a_wrong_call_gets_is_documented_for_its_operation() {
    // Arrange
    let app = spawn_secured_app().await;
    let document = app.get_json("/openapi.json").await;
    // With authentication on, every write of the publish scope may meet
    // the publisher's budget.
    for (path, method) in [
        ("/sse/publish", "post"),
        ("/tasks/{id}/stream", "post"),
        ("/chats/{chat_id}/cancel", "post"),
    ] {
        let listed = &document["paths"][path][method]["responses"];
        assert!(listed.get("429").is_some(), "{method} {path}: {listed}");
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client");

    // Act: every probe of every operation.
    let mut undocumented = Vec::new();
    let mut probed = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("an item") {
            let documented = operation["responses"].as_object().expect("responses");
            for probe in probes(path, operation) {
                let target = concrete(path, probe.id);
                let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())
                    .expect("a method");
                let mut request = client.request(method.clone(), app.url(&target));
                if let Some(token) = &probe.token {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = probe.body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body);
                }
                let response = request.send().await.expect("an answer");
                let status = response.status().as_u16();
                probed += 1;
                if !documented.contains_key(&status.to_string()) {
                    // A stream that opened is not read: only errors are.
                    let body = if status >= 400 {
                        response.text().await.unwrap_or_default()
                    } else {
                        String::new()
                    };
                    undocumented.push(format!(
                        "{method} {target} with {}: {status} {body}",
                        probe.what
                    ));
                }
            }
        }
    }

    // Assert
    assert!(probed > 100, "only {probed} probes");
    assert!(
        undocumented.is_empty(),
        "answers /openapi.json does not list for their operation:\n{}",
        undocumented.join("\n")
    );
}
