//! Two tenants on one broker: nothing one publishes can swallow, overwrite
//! or end the other's data, and nothing answers differently for the other's
//! task ids than for unknown ones.

use serde_json::{Value, json};

use super::{get_as, open_stream_as, post_as, spawn_secured_app, token};
use crate::helpers::{SHORT, TestApp, assert_error};

/// Publishes `event` as `token` and returns the answered id, asserting 202.
async fn publish_as(app: &TestApp, token: &str, event: &Value) -> i64 {
    let response = post_as(app, "/sse/publish", Some(event), Some(token)).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON answer");
    assert_eq!(status, 202, "publish of {event} answered {body}");
    body["ids"][0]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {body}"))
}

#[actix_web::test]
async fn an_idempotency_key_is_scoped_to_its_publisher_and_project() {
    let app = spawn_secured_app().await;
    let alice = token("alice", "subscribe publish", &["p1", "p3"]);
    let bob = token("bob", "subscribe publish", &["p2"]);
    let mut bobs_stream = open_stream_as(&app, "/sse/events?project_id=p2", &bob).await;

    let alices = publish_as(
        &app,
        &alice,
        &json!({"event_type": "commit", "project_id": "p1", "data": {"by": "alice"}, "idempotency_key": "K"}),
    )
    .await;
    let bobs = publish_as(
        &app,
        &bob,
        &json!({"event_type": "commit", "project_id": "p2", "data": {"by": "bob"}, "idempotency_key": "K"}),
    )
    .await;
    assert_ne!(bobs, alices, "bob was answered alice's id for his own key");
    let delivered = bobs_stream
        .next_event(SHORT)
        .await
        .expect("bob's event is delivered to bob");
    assert_eq!(delivered.id.as_deref(), Some(bobs.to_string().as_str()));
    assert_eq!(delivered.json()["by"], "bob");

    // A repeat by the same publisher for the same project is still one event.
    let again = publish_as(
        &app,
        &alice,
        &json!({"event_type": "commit", "project_id": "p1", "data": {"by": "alice"}, "idempotency_key": "K"}),
    )
    .await;
    assert_eq!(again, alices, "alice's own repeat is de-duplicated");
    let bob_again = publish_as(
        &app,
        &bob,
        &json!({"event_type": "commit", "project_id": "p2", "data": {"by": "bob"}, "idempotency_key": "K"}),
    )
    .await;
    assert_eq!(bob_again, bobs, "bob's own repeat is de-duplicated");
    bobs_stream
        .assert_quiet(std::time::Duration::from_millis(300))
        .await;

    // The same publisher's key in another project is another key.
    let other_project = publish_as(
        &app,
        &alice,
        &json!({"event_type": "commit", "project_id": "p3", "idempotency_key": "K"}),
    )
    .await;
    assert!(other_project != alices && other_project != bobs);

    // Private events: same key, two publishers, two recipients, two events.
    let to_carol = publish_as(
        &app,
        &alice,
        &json!({"event_type": "commit", "user_id": "carol", "idempotency_key": "P"}),
    )
    .await;
    let to_dave = publish_as(
        &app,
        &bob,
        &json!({"event_type": "commit", "user_id": "dave", "idempotency_key": "P"}),
    )
    .await;
    assert_ne!(
        to_carol, to_dave,
        "a private event was swallowed by another publisher's key"
    );
    let history = get_as(
        &app,
        "/sse/history",
        Some(&token("dave", "subscribe", &["*"])),
    )
    .await
    .json::<Value>()
    .await
    .expect("history JSON");
    let ids: Vec<i64> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["user_id"] == "dave")
        .filter_map(|e| e["id"].as_i64())
        .collect();
    assert_eq!(ids, [to_dave], "dave's private event is stored: {history}");
}

/// Creates a task in `project` as `token` and returns its id.
async fn create_task_as(app: &TestApp, token: &str, project: &str) -> String {
    let response = post_as(
        app,
        "/tasks",
        Some(&json!({"project_id": project})),
        Some(token),
    )
    .await;
    assert_eq!(response.status().as_u16(), 201);
    let task: Value = response.json().await.expect("task JSON");
    task["task_id"].as_str().expect("task_id").to_owned()
}

#[actix_web::test]
async fn generic_publish_cannot_write_into_a_task() {
    let app = spawn_secured_app().await;
    let alice = token("alice", "subscribe publish", &["p1"]);
    let bob = token("bob", "subscribe publish", &["p2"]);
    let task = create_task_as(&app, &alice, "p1").await;
    let text = post_as(
        &app,
        &format!("/tasks/{task}/text"),
        Some(&json!({"delta": "Hello"})),
        Some(&alice),
    )
    .await;
    assert_eq!(text.status().as_u16(), 202);
    let mut viewer = open_stream_as(&app, &format!("/tasks/{task}/events"), &alice).await;
    let replayed = viewer.next_event(SHORT).await.expect("the text so far");
    assert!(replayed.is("text"));
    let state = viewer.next_event(SHORT).await.expect("the task's state");
    assert!(state.is("progress"));

    // Another tenant: the task answers as unknown, whatever the type.
    for event_type in [
        "error",
        "complete",
        "progress",
        "text",
        "reasoning",
        "commit",
    ] {
        let mut data = json!({"error": "forged", "progress": 100, "delta": "forged"});
        data["by"] = json!("bob");
        let forged = post_as(
            &app,
            "/sse/publish",
            Some(&json!({"event_type": event_type, "task_id": task, "data": data})),
            Some(&bob),
        )
        .await;
        let status = forged.status().as_u16();
        assert!(
            status == 404 || status == 422,
            "bob's {event_type} into alice's task answered {status}"
        );
        let code = if status == 404 {
            "task_not_found"
        } else {
            "invalid_field"
        };
        assert_error(forged, status, code).await;
    }
    // The owner too: a task's own event types go through the task API.
    for event_type in [
        "error",
        "complete",
        "reasoning",
        "tool_call",
        "tool_result",
        "tool_approval",
        "step_end",
    ] {
        let direct = post_as(
            &app,
            "/sse/publish",
            Some(&json!({"event_type": event_type, "task_id": task, "data": {"error": "x", "delta": "x"}})),
            Some(&alice),
        )
        .await;
        let body = assert_error(direct, 422, "invalid_field").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("/tasks/")),
            "the refusal points to the task API: {body}"
        );
    }
    // Another type may label the owner's own task.
    let labelled = post_as(
        &app,
        "/sse/publish",
        Some(&json!({"event_type": "commit", "task_id": task, "project_id": "p1"})),
        Some(&alice),
    )
    .await;
    assert_eq!(labelled.status().as_u16(), 202);

    viewer
        .assert_quiet(std::time::Duration::from_millis(300))
        .await;
    let state: Value = get_as(&app, &format!("/tasks/{task}"), Some(&alice))
        .await
        .json()
        .await
        .expect("task JSON");
    assert_eq!(state["status"], "running", "the task was changed: {state}");
}

#[actix_web::test]
async fn a_task_of_another_project_answers_exactly_like_an_unknown_one() {
    let app = spawn_secured_app().await;
    let alice = token("alice", "subscribe publish", &["p1"]);
    let bob = token("bob", "subscribe publish", &["p2"]);
    let task = create_task_as(&app, &alice, "p1").await;
    post_as(&app, &format!("/tasks/{task}/cancel"), None, Some(&alice)).await;

    for (method, suffix, body) in [
        ("GET", "", None),
        ("PATCH", "", Some(json!({"progress": 5}))),
        ("POST", "/text", Some(json!({"delta": "x"}))),
        ("POST", "/complete", Some(json!({}))),
        ("POST", "/fail", Some(json!({"error": "x"}))),
        ("POST", "/cancel", None),
        ("GET", "/events", None),
        ("GET", "/ui-message-stream", None),
    ] {
        let mut answers = Vec::new();
        for id in [task.as_str(), "no-such-task"] {
            let url = app.url(&format!("/tasks/{id}{suffix}"));
            let mut request = app
                .api_client
                .request(method.parse().expect("a method"), url)
                .bearer_auth(&bob);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.expect("request sent");
            let status = response.status().as_u16();
            let text = response.text().await.expect("a body");
            answers.push((status, text));
        }
        assert_eq!(
            answers[0], answers[1],
            "{method} /tasks/{{id}}{suffix}: another project's task and an unknown one differ"
        );
        assert_eq!(answers[0].0, 404, "{method} {suffix}: {}", answers[0].1);
    }
    let head = app
        .api_client
        .head(app.url(&format!("/tasks/{task}")))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("HEAD sent");
    assert_eq!(head.status().as_u16(), 404);
}

#[actix_web::test]
async fn an_admin_lists_and_drops_only_the_streams_of_its_projects() {
    // Arrange: streams of p1, of p2, of a p1-only user without a filter, and
    // of a user who sees every project.
    let app = spawn_secured_app().await;
    let p1_user = token("alice", "subscribe", &["p1"]);
    let p2_user = token("bob", "subscribe", &["p2"]);
    let everywhere = token("carol", "subscribe", &["*"]);
    let p1_filtered = open_stream_as(&app, "/sse/events?project_id=p1", &p1_user).await;
    let mut p2_filtered = open_stream_as(&app, "/sse/events?project_id=p2", &p2_user).await;
    let p1_unfiltered = open_stream_as(&app, "/sse/events", &p1_user).await;
    let _all_projects = open_stream_as(&app, "/sse/events", &everywhere).await;
    // A task's stream is its task's project's, whoever opened it.
    let maker = token("maker", "publish", &["*"]);
    let p1_task = create_task_as(&app, &maker, "p1").await;
    let p2_task = create_task_as(&app, &maker, "p2").await;
    let p1_task_stream =
        open_stream_as(&app, &format!("/tasks/{p1_task}/events"), &everywhere).await;
    let _p2_task_stream =
        open_stream_as(&app, &format!("/tasks/{p2_task}/events"), &everywhere).await;
    // Its `connected` frame says so (CONTRACT §3: connection_id,
    // event_types, project_id).
    let greeting = p1_task_stream.connected.json();
    assert_eq!(greeting["project_id"], "p1", "{greeting}");
    assert!(greeting["connection_id"].is_string(), "{greeting}");
    let p1_admin = token("ops-p1", "admin", &["p1"]);
    let root = token("ops", "admin", &["*"]);
    let listed = |token: String| {
        let app = &app;
        let p1_task = &p1_task;
        async move {
            let page: Value = get_as(app, "/sse/connections", Some(&token))
                .await
                .json()
                .await
                .expect("a listing");
            for connection in page["connections"].as_array().expect("connections") {
                if let Some(task) = connection["task_id"].as_str() {
                    let project = if task == p1_task { "p1" } else { "p2" };
                    assert_eq!(connection["project_id"], project, "{connection}");
                }
            }
            let mut ids: Vec<String> = page["connections"]
                .as_array()
                .expect("connections")
                .iter()
                .map(|c| c["connection_id"].as_str().expect("an id").to_owned())
                .collect();
            ids.sort();
            (ids, page["total"].as_u64())
        }
    };

    // Act
    let (p1_view, p1_total) = listed(p1_admin.clone()).await;
    let (root_view, root_total) = listed(root.clone()).await;
    let drop_foreign = app
        .api_client
        .delete(app.url(&format!("/sse/connections/{}", p2_filtered.connection_id)))
        .bearer_auth(&p1_admin)
        .send()
        .await
        .expect("DELETE sent");
    let drop_own = app
        .api_client
        .delete(app.url(&format!("/sse/connections/{}", p1_filtered.connection_id)))
        .bearer_auth(&p1_admin)
        .send()
        .await
        .expect("DELETE sent");

    // Assert
    let mut expected = vec![
        p1_filtered.connection_id.clone(),
        p1_unfiltered.connection_id.clone(),
        p1_task_stream.connection_id.clone(),
    ];
    expected.sort();
    assert_eq!(p1_view, expected, "the p1 admin's listing");
    assert_eq!(p1_total, Some(3));
    assert_eq!(root_view.len(), 6, "a `*` admin sees every stream");
    assert_eq!(root_total, Some(6));
    assert_error(drop_foreign, 404, "connection_not_found").await;
    assert_eq!(drop_own.status().as_u16(), 204);
    // The foreign stream is untouched and still receives events.
    app.api_client
        .post(app.url("/sse/publish"))
        .bearer_auth(token("pub", "publish", &["p2"]))
        .json(&json!({"event_type": "commit", "project_id": "p2"}))
        .send()
        .await
        .expect("publish sent");
    let event = p2_filtered
        .next_message(SHORT)
        .await
        .expect("the p2 stream still receives");
    assert!(event.is("commit"), "{event:?}");
}

/// `POST` of a raw body (an upload) as `token`.
async fn upload_as(app: &TestApp, task_id: &str, token: &str, body: &str) -> reqwest::Response {
    app.api_client
        .post(app.url(&format!("/tasks/{task_id}/stream")))
        .bearer_auth(token)
        .header("Content-Type", "application/x-ndjson")
        .body(body.to_owned())
        .send()
        .await
        .expect("request sent")
}

/// With `--publish-within-projects` a token that does not grant `*` writes
/// nothing outside its projects: no event and no task without a project,
/// and a shared task (one without a project) answers as an unknown one.
/// Without the setting (the default) the same writes are taken, as the
/// contract says; a `*` token is never confined; reading is unchanged.
#[actix_web::test]
async fn publish_within_projects_keeps_a_tenants_writes_inside_its_projects() {
    let confined = crate::helpers::spawn_app_with(|s| {
        super::with_secret(s);
        s.auth.publish_within_projects = true;
    })
    .await;
    let open = spawn_secured_app().await;
    let alice = token("alice", "subscribe publish", &["p1"]);
    let root = super::root_token();
    let without_project = json!({"event_type": "risk_alert", "data": {"to": "every tenant"}});
    let private = json!({"event_type": "system_status", "user_id": "bob", "data": {}});
    let within = json!({"event_type": "risk_alert", "project_id": "p1", "data": {}});

    // Default: a project-scoped token may publish without a project.
    publish_as(&open, &alice, &without_project).await;

    // Confined: refused without a project (alone or in a batch), taken with one.
    for (path, body) in [
        ("/sse/publish", without_project.clone()),
        ("/sse/publish", private.clone()),
        (
            "/sse/publish",
            json!([within.clone(), without_project.clone()]),
        ),
        (
            "/sse/test-event",
            json!({"event_type": "commit", "data": {}}),
        ),
        ("/tasks", json!({})),
        ("/demo/generations", json!({"prompt": "hello"})),
    ] {
        let response = post_as(&confined, path, Some(&body), Some(&alice)).await;
        let error = assert_error(response, 403, "forbidden").await;
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("--publish-within-projects")),
            "{path} {body}: {error}"
        );
    }
    publish_as(&confined, &alice, &within).await;
    let created = post_as(
        &confined,
        "/tasks",
        Some(&json!({"project_id": "p1"})),
        Some(&alice),
    )
    .await;
    assert_eq!(created.status().as_u16(), 201);
    // A `*` token is not confined.
    publish_as(&confined, &root, &without_project).await;

    // A shared task (made by a `*` token, no project): alice may still read
    // it, but writes to it answer as to an unknown task.
    let shared: Value = post_as(&confined, "/tasks", Some(&json!({})), Some(&root))
        .await
        .json()
        .await
        .expect("a task");
    let shared = shared["task_id"].as_str().expect("an id").to_owned();
    let read = get_as(&confined, &format!("/tasks/{shared}"), Some(&alice)).await;
    assert_eq!(
        read.status().as_u16(),
        200,
        "reading a shared task is unchanged"
    );
    for (path, body) in [
        (
            format!("/tasks/{shared}/text"),
            Some(json!({"delta": "tenant text"})),
        ),
        (format!("/tasks/{shared}/cancel"), None),
        (format!("/tasks/{shared}/complete"), Some(json!({}))),
    ] {
        let response = post_as(&confined, &path, body.as_ref(), Some(&alice)).await;
        assert_error(response, 404, "task_not_found").await;
    }
    let patched = confined
        .api_client
        .patch(confined.url(&format!("/tasks/{shared}")))
        .bearer_auth(&alice)
        .json(&json!({"progress": 50}))
        .send()
        .await
        .expect("request sent");
    assert_error(patched, 404, "task_not_found").await;
    let uploaded = upload_as(&confined, &shared, &alice, "{\"delta\": \"x\"}\n").await;
    assert_error(uploaded, 404, "task_not_found").await;
    // A shared chat's running task: its cancel by chat answers as a chat
    // with nothing running, in the same words.
    let chat_task: Value = post_as(
        &confined,
        "/tasks",
        Some(&json!({"chat_id": "shared-chat"})),
        Some(&root),
    )
    .await
    .json()
    .await
    .expect("a task");
    let chat_task = chat_task["task_id"].as_str().expect("an id");
    let started = post_as(
        &confined,
        &format!("/tasks/{chat_task}/text"),
        Some(&json!({"delta": "running"})),
        Some(&root),
    )
    .await;
    assert_eq!(started.status().as_u16(), 202);
    let mut refusals = Vec::new();
    for chat in ["shared-chat", "no-such-chat"] {
        let path = format!("/chats/{chat}/cancel");
        let response = post_as(&confined, &path, None, Some(&alice)).await;
        refusals.push(assert_error(response, 404, "task_not_found").await);
    }
    assert_eq!(refusals[0], refusals[1], "{refusals:?}");
    let tagged = json!({"event_type": "commit", "project_id": "p1", "task_id": shared, "data": {}});
    let response = post_as(&confined, "/sse/publish", Some(&tagged), Some(&alice)).await;
    assert_error(response, 404, "task_not_found").await;
    let task = get_as(&confined, &format!("/tasks/{shared}"), Some(&root)).await;
    let task: Value = task.json().await.expect("the task");
    assert_eq!(
        task["status"], "pending",
        "nothing of alice's reached it: {task}"
    );

    // The same writes without the setting are taken.
    let shared_open: Value = post_as(&open, "/tasks", Some(&json!({})), Some(&root))
        .await
        .json()
        .await
        .expect("a task");
    let shared_open = shared_open["task_id"].as_str().expect("an id");
    let text = post_as(
        &open,
        &format!("/tasks/{shared_open}/text"),
        Some(&json!({"delta": "tenant text"})),
        Some(&alice),
    )
    .await;
    assert_eq!(text.status().as_u16(), 202);
}

/// What the store hands one tenant when its resume (the replay cache off,
/// so read from the store) and its history page through another tenant's
/// events: exactly the events its token may see, in order, each once
/// (CONTRACT §5, §6). The store narrows each page in SQL by the viewer's
/// projects and user, so a page is never spent on events it must drop.
#[actix_web::test]
async fn a_resume_and_history_from_the_store_carry_exactly_what_the_token_may_see() {
    // Arrange: interleaved events of two projects, none, and private ones.
    let app = crate::helpers::spawn_app_with(|s| {
        super::with_secret(s);
        s.replay_cache_events = 0;
    })
    .await;
    let publisher = token("svc", "publish", &["*"]);
    let first = publish_as(&app, &publisher, &json!({"event_type": "commit"})).await;
    let mut visible_to_bob = Vec::new();
    for n in 0..40 {
        let (project, user) = match n % 5 {
            0 => (Some("pA"), None),
            1 => (Some("pB"), None),
            2 => (None, None),
            3 => (Some("pB"), Some("alice")),
            _ => (Some("pB"), Some("bob")),
        };
        let mut event = json!({"event_type": "commit", "data": {"n": n}});
        if let Some(project) = project {
            event["project_id"] = json!(project);
        }
        if let Some(user) = user {
            event["user_id"] = json!(user);
        }
        let id = publish_as(&app, &publisher, &event).await;
        if project != Some("pA") && user != Some("alice") {
            visible_to_bob.push(id);
        }
    }
    let bob = token("bob", "subscribe", &["pB"]);

    // Act: a resume from the first event, and history a page of one at a time.
    let authorization = format!("Bearer {bob}");
    let first_id = first.to_string();
    let mut resumed = app
        .open_stream(
            "/sse/events",
            &[
                ("Authorization", &authorization),
                ("Last-Event-ID", &first_id),
            ],
        )
        .await;
    let replayed: Vec<i64> = resumed
        .take_messages(visible_to_bob.len(), SHORT)
        .await
        .iter()
        .filter_map(|event| event.id_number())
        .collect();
    let mut paged = Vec::new();
    let mut after = first;
    loop {
        let page = get_as(
            &app,
            &format!("/sse/history?after={after}&limit=1"),
            Some(&bob),
        )
        .await;
        let page: Value = page.json().await.expect("a page");
        paged.extend(
            page["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["id"].as_i64().expect("an id")),
        );
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }

    // Assert
    assert_eq!(replayed, visible_to_bob, "the resume");
    resumed
        .assert_quiet(std::time::Duration::from_millis(300))
        .await;
    assert_eq!(
        paged, visible_to_bob,
        "the history, a page of one at a time"
    );
}
