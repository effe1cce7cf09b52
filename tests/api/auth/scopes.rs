//! 403s: the scope each endpoint needs, projects outside the token, and
//! another user's connection.

use serde_json::{Value, json};

use super::{
    assert_forbidden, assert_unauthorized, get_as, open_stream_as, post_as, root_token,
    spawn_secured_app, token,
};
use crate::helpers::{TestApp, assert_error};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Needs {
    Open,
    Scope(&'static str),
}

#[derive(Debug)]
struct Endpoint {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    needs: Needs,
    /// The status when the caller may call it.
    ok: u16,
}

fn endpoints() -> Vec<Endpoint> {
    let get = |path, needs, ok| Endpoint {
        method: "GET",
        path,
        body: None,
        needs,
        ok,
    };
    let post = |path, body, needs, ok| Endpoint {
        method: "POST",
        path,
        body,
        needs,
        ok,
    };
    use Needs::{Open, Scope};
    vec![
        get("/sse/events", Scope("subscribe"), 200),
        get("/sse/history", Scope("subscribe"), 200),
        // Nobody owns this connection: past the scope check it is a 404.
        post(
            "/sse/subscribe",
            Some(json!({
                "connection_id": "00000000-0000-4000-8000-000000000000",
                "event_types": ["commit"],
            })),
            Scope("subscribe"),
            404,
        ),
        post(
            "/sse/publish",
            Some(json!({"event_type": "commit", "data": {"sha": "abc"}})),
            Scope("publish"),
            202,
        ),
        post("/sse/test-event", None, Scope("publish"), 202),
        get("/sse/stats", Scope("admin"), 200),
        get("/sse/connections", Scope("admin"), 200),
        get("/sse/monitoring", Scope("admin"), 200),
        post("/sse/cleanup", None, Scope("admin"), 200),
        get("/health", Open, 200),
        get("/metrics", Open, 200),
        get("/openapi.json", Open, 200),
        get("/", Open, 200),
        get("/client.js", Open, 200),
    ]
}

async fn call(app: &TestApp, endpoint: &Endpoint, token: Option<&str>) -> reqwest::Response {
    match endpoint.method {
        "GET" => get_as(app, endpoint.path, token).await,
        _ => post_as(app, endpoint.path, endpoint.body.as_ref(), token).await,
    }
}

#[actix_web::test]
async fn each_endpoint_needs_exactly_its_scope() {
    let app = spawn_secured_app().await;
    // (token scope claim, the scopes it grants)
    let holders: [(&str, &[&str]); 7] = [
        ("subscribe", &["subscribe"]),
        ("publish", &["publish"]),
        ("admin", &["admin"]),
        (
            "subscribe publish admin",
            &["subscribe", "publish", "admin"],
        ),
        ("  admin   subscribe ", &["subscribe", "admin"]),
        ("Admin SUBSCRIBE superuser *", &[]),
        ("", &[]),
    ];

    let mut failures = Vec::new();
    for endpoint in endpoints() {
        // No token at all.
        let response = call(&app, &endpoint, None).await;
        let status = response.status().as_u16();
        match endpoint.needs {
            Needs::Open if status != endpoint.ok => {
                failures.push(format!("{endpoint:?} without a token: {status}"));
            }
            Needs::Scope(_) if status != 401 => {
                failures.push(format!("{endpoint:?} without a token: {status}"));
            }
            Needs::Scope(_) => {
                assert_unauthorized(response, &[]).await;
            }
            Needs::Open => {}
        }
        for (scope, grants) in holders {
            let token = token("alice", scope, &["*"]);
            let response = call(&app, &endpoint, Some(&token)).await;
            let status = response.status().as_u16();
            let allowed = match endpoint.needs {
                Needs::Open => true,
                Needs::Scope(needed) => grants.contains(&needed),
            };
            if allowed && status != endpoint.ok {
                let text = response.text().await.unwrap_or_default();
                failures.push(format!(
                    "{} {} with scope {scope:?}: expected {}, got {status} {text}",
                    endpoint.method, endpoint.path, endpoint.ok
                ));
            } else if !allowed {
                if status == 403 {
                    let Needs::Scope(needed) = endpoint.needs else {
                        unreachable!()
                    };
                    let body = assert_forbidden(response, &[&token]).await;
                    assert!(
                        body["error"]["message"]
                            .as_str()
                            .is_some_and(|m| m.contains(needed)),
                        "the 403 names the missing scope {needed}: {body}"
                    );
                } else {
                    failures.push(format!(
                        "{} {} with scope {scope:?}: expected 403, got {status}",
                        endpoint.method, endpoint.path
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[actix_web::test]
async fn a_stream_for_a_project_outside_the_token_is_403() {
    let app = spawn_secured_app().await;
    let p1 = token("alice", "subscribe", &["p1"]);
    let none = token("alice", "subscribe", &[]);

    let outside = app
        .stream_response(
            "/sse/events?project_id=p2",
            &[("Authorization", &format!("Bearer {p1}"))],
        )
        .await;
    assert_forbidden(outside, &[&p1]).await;
    let no_grant = app
        .stream_response(
            "/sse/events?project_id=p1",
            &[("Authorization", &format!("Bearer {none}"))],
        )
        .await;
    assert_forbidden(no_grant, &[&none]).await;

    let inside = open_stream_as(&app, "/sse/events?project_id=p1", &p1).await;
    assert_eq!(inside.connected.json()["project_id"], "p1");
    let everything = token("alice", "subscribe", &["*"]);
    let any = open_stream_as(&app, "/sse/events?project_id=p2", &everything).await;
    assert_eq!(any.connected.json()["project_id"], "p2");
}

#[actix_web::test]
async fn history_of_a_project_outside_the_token_is_403() {
    let app = spawn_secured_app().await;
    let p1 = token("alice", "subscribe", &["p1"]);

    let outside = get_as(&app, "/sse/history?project_id=p2", Some(&p1)).await;
    assert_forbidden(outside, &[&p1]).await;

    let inside = get_as(&app, "/sse/history?project_id=p1", Some(&p1)).await;
    assert_eq!(inside.status().as_u16(), 200);
}

#[actix_web::test]
async fn publishing_to_a_project_outside_the_token_is_403_and_stores_nothing() {
    let app = spawn_secured_app().await;
    let p1 = token("svc", "publish", &["p1"]);
    let unscoped = token("svc", "publish", &[]);

    let refused: [(&str, &str, Value); 4] = [
        (
            "publish",
            &p1,
            json!({"event_type": "commit", "project_id": "p2"}),
        ),
        (
            "publish",
            &p1,
            json!([
                {"event_type": "commit", "project_id": "p1", "data": {"n": 1}},
                {"event_type": "commit", "data": {"n": 2}},
                {"event_type": "commit", "project_id": "p2", "data": {"n": 3}},
            ]),
        ),
        ("test-event", &p1, json!({"project_id": "p2"})),
        (
            "publish",
            &unscoped,
            json!({"event_type": "commit", "project_id": "p1"}),
        ),
    ];
    for (endpoint, token, body) in &refused {
        let response = post_as(&app, &format!("/sse/{endpoint}"), Some(body), Some(token)).await;
        let error = assert_forbidden(response, &[token]).await;
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("p2") || m.contains("p1")),
            "the 403 names the project: {error}"
        );
    }
    let everything = get_as(&app, "/sse/history", Some(&root_token())).await;
    let everything: Value = everything.json().await.unwrap();
    assert_eq!(
        everything["events"],
        json!([]),
        "a refused publish stores nothing, not even its allowed events"
    );

    for (endpoint, token, body) in [
        (
            "publish",
            &p1,
            json!({"event_type": "commit", "project_id": "p1"}),
        ),
        ("publish", &p1, json!({"event_type": "commit"})),
        ("publish", &unscoped, json!({"event_type": "commit"})),
        ("test-event", &p1, json!({"project_id": "p1"})),
    ] {
        let response = post_as(&app, &format!("/sse/{endpoint}"), Some(&body), Some(token)).await;
        assert_eq!(response.status().as_u16(), 202, "{endpoint} {body}");
    }
}

/// A subscription change to a project the stream's own token does not
/// grant: 403, saying so.
async fn assert_project_not_granted(response: reqwest::Response, token: &str) {
    let refused = assert_forbidden(response, &[token]).await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not grant this project")),
        "{refused}"
    );
}

#[actix_web::test]
async fn only_the_owner_may_change_a_streams_subscription() {
    let app = spawn_secured_app().await;
    let alice = token("alice", "subscribe", &["p1", "p3"]);
    let bob = token("bob", "subscribe", &["*"]);
    let mut stream = open_stream_as(&app, "/sse/events", &alice).await;
    let change = |project: &str| {
        json!({
            "connection_id": stream.connection_id,
            "event_types": ["commit"],
            "project_id": project,
        })
    };

    // Another user's stream is answered as an unknown one: a leaked
    // connection id is not confirmed live.
    let by_bob = post_as(&app, "/sse/subscribe", Some(&change("p1")), Some(&bob)).await;
    let unknown =
        json!({"connection_id": "00000000-0000-4000-8000-000000000000", "event_types": ["commit"]});
    let no_such = post_as(&app, "/sse/subscribe", Some(&unknown), Some(&bob)).await;
    let by_bob = assert_error(by_bob, 404, "connection_not_found").await;
    assert_eq!(
        by_bob,
        assert_error(no_such, 404, "connection_not_found").await
    );
    let outside = post_as(&app, "/sse/subscribe", Some(&change("p2")), Some(&alice)).await;
    assert_forbidden(outside, &[&alice]).await;
    // Alice again, with a token of hers that grants p9: the stream's own
    // token (what its events are checked against) does not.
    let alice_p9 = token("alice", "subscribe", &["p9"]);
    let other_grant = post_as(&app, "/sse/subscribe", Some(&change("p9")), Some(&alice_p9)).await;
    assert_project_not_granted(other_grant, &alice_p9).await;
    let by_alice = post_as(&app, "/sse/subscribe", Some(&change("p3")), Some(&alice)).await;
    assert_eq!(by_alice.status().as_u16(), 200);
    let answer: Value = by_alice.json().await.unwrap();
    assert_eq!(answer["project_id"], "p3");

    // Only alice's change reached the stream.
    let updated = stream
        .next_message(crate::helpers::SHORT)
        .await
        .expect("a subscription_updated frame");
    assert!(updated.is("subscription_updated"), "{updated:?}");
    assert_eq!(updated.json()["project_id"], "p3", "{updated:?}");
    stream
        .assert_quiet(std::time::Duration::from_millis(200))
        .await;
}

/// One call on a task route, made against a fresh running task `id`.
struct TaskCall {
    method: reqwest::Method,
    /// `{id}` stands for the task's id, in the path and the body.
    path: &'static str,
    content_type: Option<&'static str>,
    body: &'static str,
    needs: &'static str,
    /// The status when the caller holds `needs`.
    ok: u16,
}

fn task_calls() -> Vec<TaskCall> {
    use reqwest::Method;
    let call = |method, path, content_type, body, needs, ok| TaskCall {
        method,
        path,
        content_type,
        body,
        needs,
        ok,
    };
    let json = Some("application/json");
    vec![
        call(
            Method::POST,
            "/tasks",
            json,
            r#"{"task_id":"{id}-new"}"#,
            "publish",
            201,
        ),
        call(
            Method::PATCH,
            "/tasks/{id}",
            json,
            r#"{"progress":40}"#,
            "publish",
            200,
        ),
        call(
            Method::POST,
            "/tasks/{id}/text",
            json,
            r#"{"delta":"forged"}"#,
            "publish",
            202,
        ),
        call(
            Method::POST,
            "/tasks/{id}/stream",
            Some("application/x-ndjson"),
            "{\"delta\":\"forged\"}\n",
            "publish",
            200,
        ),
        call(
            Method::POST,
            "/tasks/{id}/complete",
            json,
            "{}",
            "publish",
            200,
        ),
        call(
            Method::POST,
            "/tasks/{id}/fail",
            json,
            r#"{"error":"x"}"#,
            "publish",
            200,
        ),
        call(Method::POST, "/tasks/{id}/cancel", None, "", "publish", 200),
        call(Method::GET, "/tasks/{id}", None, "", "subscribe", 200),
        call(Method::HEAD, "/tasks/{id}", None, "", "subscribe", 200),
        call(
            Method::GET,
            "/tasks/{id}/events",
            None,
            "",
            "subscribe",
            200,
        ),
        call(
            Method::GET,
            "/tasks/{id}/ui-message-stream",
            None,
            "",
            "subscribe",
            200,
        ),
        call(Method::GET, "/chats/c-1/stream", None, "", "subscribe", 200),
    ]
}

/// The task as the broker keeps it, read with every scope.
async fn task_state(app: &TestApp, id: &str) -> Value {
    let response = get_as(app, &format!("/tasks/{id}"), Some(&root_token())).await;
    assert_eq!(response.status().as_u16(), 200, "GET /tasks/{id}");
    let mut task: Value = response.json().await.expect("a task");
    task.as_object_mut()
        .expect("an object")
        .remove("updated_at");
    task
}

/// Task writes need `publish` and task reads `subscribe`, each exactly: a
/// browser's subscribe-only token can neither forge nor cancel a
/// generation, and a producer's publish-only token cannot read one. A
/// refused call changes nothing.
#[actix_web::test]
async fn each_task_route_needs_exactly_its_scope() {
    let app = spawn_secured_app().await;
    let mut failures = Vec::new();
    for (n, call) in task_calls().into_iter().enumerate() {
        for scope in ["subscribe", "publish", "admin"] {
            let id = format!("scoped-{n}-{scope}");
            let created = post_as(
                &app,
                "/tasks",
                Some(&json!({"task_id": id, "chat_id": "c-1"})),
                Some(&root_token()),
            )
            .await;
            assert_eq!(created.status().as_u16(), 201, "creating {id}");
            let before = task_state(&app, &id).await;

            let holder = token("alice", scope, &["*"]);
            let mut request = app
                .api_client
                .request(
                    call.method.clone(),
                    app.url(&call.path.replace("{id}", &id)),
                )
                .bearer_auth(&holder)
                .body(call.body.replace("{id}", &id));
            if let Some(content_type) = call.content_type {
                request = request.header("content-type", content_type);
            }
            let response = request.send().await.expect("request sent");
            let status = response.status().as_u16();
            let what = format!("{} {} with scope {scope}", call.method, call.path);
            if scope == call.needs {
                if status != call.ok {
                    let text = response.text().await.unwrap_or_default();
                    failures.push(format!("{what}: expected {}, got {status} {text}", call.ok));
                }
                continue;
            }
            if status != 403 {
                failures.push(format!("{what}: expected 403, got {status}"));
                continue;
            }
            if call.method == reqwest::Method::HEAD {
                // No body to read: the status is the whole answer.
            } else {
                let body = assert_forbidden(response, &[&holder]).await;
                if !body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(call.needs))
                {
                    failures.push(format!(
                        "{what}: the 403 does not name {}: {body}",
                        call.needs
                    ));
                }
            }
            let after = task_state(&app, &id).await;
            if after != before {
                failures.push(format!(
                    "{what}: refused, yet the task changed: {before} → {after}"
                ));
            }
            let new = get_as(&app, &format!("/tasks/{id}-new"), Some(&root_token())).await;
            if new.status().as_u16() != 404 {
                failures.push(format!("{what}: refused, yet task {id}-new exists"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// In a cluster a subscription change may land on any instance (no sticky
/// sessions): the instance holding the stream applies it, for its owner
/// only, and an unknown stream is 404 everywhere.
#[actix_web::test]
async fn in_a_cluster_a_subscription_change_reaching_another_instance_changes_the_stream() {
    let (a, b, _store) = super::secured_cluster().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let alice = token("alice", "subscribe", &["p1", "p3"]);
    let bob = token("bob", "subscribe", &["*"]);
    let publisher = token("svc", "publish", &["*"]);
    let (mut stream, id) = stream_with_id(
        &client,
        &format!("{}/sse/events?event_types=commit", a.address),
        &alice,
    )
    .await;
    let change = |token: &str, id: &str, project: &str| {
        client
            .post(format!("{}/sse/subscribe", b.address))
            .bearer_auth(token)
            .json(
                &json!({"connection_id": id, "event_types": ["risk_alert"], "project_id": project}),
            )
            .send()
    };

    // Another user's change through b: 404, as for no stream, and the
    // stream is untouched; alice's with a token that grants a project the
    // stream's does not is 403.
    let by_bob = change(&bob, &id, "p1").await.expect("sent");
    assert_error(by_bob, 404, "connection_not_found").await;
    let alice_p9 = token("alice", "subscribe", &["p9"]);
    let other_grant = change(&alice_p9, &id, "p9").await.expect("sent");
    assert_project_not_granted(other_grant, &alice_p9).await;
    // Alice's own, through b: applied on a.
    let by_alice = change(&alice, &id, "p3").await.expect("sent");
    assert_eq!(by_alice.status().as_u16(), 200);
    let answer: Value = by_alice.json().await.expect("JSON");
    assert_eq!(answer["event_types"], json!(["risk_alert"]), "{answer}");
    assert_eq!(answer["project_id"], "p3", "{answer}");
    let updated = stream
        .next_message(crate::helpers::SHORT)
        .await
        .expect("a subscription_updated frame");
    assert!(updated.is("subscription_updated"), "{updated:?}");
    assert_eq!(updated.json()["project_id"], "p3", "{updated:?}");
    for (event_type, project) in [("commit", "p3"), ("risk_alert", "p1"), ("risk_alert", "p3")] {
        let published = client
            .post(format!("{}/sse/publish", b.address))
            .bearer_auth(&publisher)
            .json(
                &json!({"event_type": event_type, "project_id": project, "data": {"to": project}}),
            )
            .send()
            .await
            .expect("published");
        assert_eq!(published.status().as_u16(), 202);
    }
    let delivered = stream
        .next_message(crate::helpers::SHORT)
        .await
        .expect("the event the new filter lets through");
    assert!(delivered.is("risk_alert"), "{delivered:?}");
    assert_eq!(delivered.json()["to"], "p3", "{delivered:?}");
    stream
        .assert_quiet(std::time::Duration::from_millis(300))
        .await;

    // No such stream anywhere: 404, once the cluster was given its whole
    // 1.5 s to answer. (Redis' default response timeout, 500 ms, once
    // ended the wait early as an error: a holder answering later was lost.)
    let asked = std::time::Instant::now();
    let unknown = change(&alice, "00000000-0000-4000-8000-000000000000", "p1")
        .await
        .expect("sent");
    let waited = asked.elapsed();
    crate::helpers::assert_error(unknown, 404, "connection_not_found").await;
    assert!(
        waited >= std::time::Duration::from_millis(1400),
        "the holders were given {waited:?} to answer"
    );
}

/// In a cluster an operator's `DELETE /sse/connections/{id}` may land on
/// any instance, as `GET /sse/connections` lists every instance's streams:
/// the instance holding the stream drops it if the operator's projects
/// cover it; otherwise, and for an unknown stream, 404 everywhere.
#[actix_web::test]
async fn in_a_cluster_an_operators_drop_reaching_another_instance_drops_the_stream() {
    let (a, b, _store) = super::secured_cluster().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let alice = token("alice", "subscribe", &["p1"]);
    let (mut stream, id) = stream_with_id(
        &client,
        &format!("{}/sse/events?project_id=p1", a.address),
        &alice,
    )
    .await;
    let drop = |token: String, id: String| {
        client
            .delete(format!("{}/sse/connections/{id}", b.address))
            .bearer_auth(token)
            .send()
    };

    // An operator of another project, through b: as if there were no such stream.
    let other = drop(token("ops-p2", "admin", &["p2"]), id.clone())
        .await
        .expect("sent");
    assert_eq!(other.status().as_u16(), 404);
    let unknown = drop(root_token(), uuid_like()).await.expect("sent");
    assert_eq!(unknown.status().as_u16(), 404);
    stream
        .assert_quiet(std::time::Duration::from_millis(300))
        .await;

    // An operator covering it, through b: dropped on a.
    let dropped = drop(token("ops-p1", "admin", &["p1"]), id.clone())
        .await
        .expect("sent");
    assert_eq!(dropped.status().as_u16(), 204);
    let rest = stream.read_to_end(crate::helpers::SHORT).await;
    assert!(
        rest.iter().all(|e| !e.is("connected")),
        "nothing but what was queued: {rest:?}"
    );
    assert!(stream.end().is_some(), "the stream on a ended");
    let again = drop(root_token(), id).await.expect("sent");
    assert_eq!(again.status().as_u16(), 404, "gone from the cluster");
}

/// A stream opened at `url` as `token`, and its connection id.
async fn stream_with_id(
    client: &reqwest::Client,
    url: &str,
    token: &str,
) -> (crate::helpers::EventStream, String) {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("a stream");
    let mut stream = crate::helpers::EventStream::new(response);
    let connected = stream
        .next_event(crate::helpers::SHORT)
        .await
        .expect("connected");
    let id = connected.json()["connection_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    (stream, id)
}

/// A connection id of the right form that no stream has.
fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".to_owned()
}
