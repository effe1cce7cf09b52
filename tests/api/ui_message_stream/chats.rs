//! `GET /chats/{chat_id}/stream`: the chat's newest task while it runs,
//! found in the store (so across restarts and instances), or 204; and who may read
//! a UI message stream.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    UiStream, create, delta, end, finish_step, progress, start, start_step, text_end, text_start,
    write,
};
use crate::{
    auth::{get_as, post_as, spawn_secured_app, token},
    cluster::harness::{Node, SHORT as CLUSTER_WAIT},
    helpers::{SHORT, TestApp, assert_error, spawn_app},
};

/// The status of `GET /chats/{chat}/stream`, for a chat expected to have no
/// stream to resume; a 204 must not be cached (what runs changes).
async fn chat_status(app: &TestApp, chat: &str) -> u16 {
    let answer = app.get(&format!("/chats/{chat}/stream")).await;
    let status = answer.status().as_u16();
    if status == 204 {
        assert_eq!(
            answer
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{:?}",
            answer.headers()
        );
    }
    status
}

#[actix_web::test]
async fn a_chat_streams_its_newest_task_while_it_runs_and_answers_204_after() {
    // Arrange
    let app = spawn_app().await;
    assert_eq!(chat_status(&app, "c1").await, 204, "an unknown chat");
    create(&app, "older", Some("c1")).await;
    write(&app, "older", "old").await;
    // Distinct creation times: the order is the clock's, not the ids'.
    tokio::time::sleep(Duration::from_millis(5)).await;
    create(&app, "newer", Some("c1")).await;
    write(&app, "newer", "new").await;
    create(&app, "elsewhere", Some("c2")).await;
    // A task not yet written to is the chat's too: a reconnect right after
    // a send finds the answer about to come.
    assert_eq!(chat_status(&app, "c2").await, 200, "a pending task");

    // Act / Assert: the newest task of the chat.
    let mut newest = UiStream::open(&app, "/chats/c1/stream").await;
    assert_eq!(
        newest.take(4).await,
        [start("newer"), start_step(), text_start(), delta("new")]
    );
    end(&app, "newer", "complete", json!({})).await;
    let rest = newest.read_to_end(SHORT).await;
    assert_eq!(
        &rest[rest.len() - 5..],
        [
            text_end(),
            finish_step(),
            progress(100.0, None),
            json!({"type": "finish"}),
            json!("[DONE]")
        ]
    );

    // The newest one finished: an older task still running is an earlier
    // turn's answer, never the one a resuming chat shows last.
    assert_eq!(chat_status(&app, "c1").await, 204, "the newest task ended");
    let mut older = UiStream::open(&app, "/tasks/older/ui-message-stream").await;
    assert_eq!(
        older.take(4).await,
        [start("older"), start_step(), text_start(), delta("old")],
        "the older task itself is still readable"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    create(&app, "newest", Some("c1")).await;
    let mut newest = UiStream::open(&app, "/chats/c1/stream").await;
    assert_eq!(newest.take(1).await, [start("newest")]);
    end(&app, "newest", "cancel", Value::Null).await;
    assert_eq!(chat_status(&app, "c1").await, 204, "the newest task ended");
}

#[actix_web::test]
async fn a_chat_finds_its_running_task_after_a_restart() {
    // Arrange
    let mut app = spawn_app().await;
    create(&app, "survivor", Some("chat-9")).await;
    write(&app, "survivor", "before the restart").await;

    // Act
    app.restart().await;

    // Assert
    let mut resumed = UiStream::open(&app, "/chats/chat-9/stream").await;
    let prefix = resumed.take(5).await;
    assert_eq!(
        prefix[..4],
        [
            start("survivor"),
            start_step(),
            text_start(),
            delta("before the restart")
        ]
    );
    write(&app, "survivor", ", and after").await;
    assert_eq!(resumed.take(1).await, [delta(", and after")]);
}

#[actix_web::test]
async fn a_malformed_chat_id_is_400_in_the_path_and_in_a_new_task() {
    let app = spawn_app().await;
    let long = "c".repeat(129);

    for chat in ["bad.id", "bad%20id", long.as_str()] {
        let response = app.get(&format!("/chats/{chat}/stream")).await;
        assert_error(response, 400, "invalid_chat_id").await;
    }
    let created = app
        .post_json("/tasks", &json!({ "chat_id": "no spaces" }))
        .await;
    assert_error(created, 400, "invalid_chat_id").await;
    let bad_task = app.get("/tasks/bad.id/ui-message-stream").await;
    assert_error(bad_task, 400, "invalid_task_id").await;
    let unknown = app.get("/tasks/nobody/ui-message-stream").await;
    assert_error(unknown, 404, "task_not_found").await;
}

#[actix_web::test]
async fn another_projects_task_is_unknown_and_its_chat_has_nothing_to_resume() {
    // Arrange: alice's task in p1, in chat shared-chat.
    let app = spawn_secured_app().await;
    let alice = token("alice", "subscribe publish", &["p1"]);
    let bob = token("bob", "subscribe publish", &["p2"]);
    let created = post_as(
        &app,
        "/tasks",
        Some(&json!({ "task_id": "alices", "project_id": "p1", "chat_id": "shared-chat" })),
        Some(&alice),
    )
    .await;
    assert_eq!(created.status().as_u16(), 201);

    // Act / Assert: bob sees an unknown task and an idle chat.
    let mut answers = Vec::new();
    for id in ["alices", "no-such-task"] {
        let response = get_as(&app, &format!("/tasks/{id}/ui-message-stream"), Some(&bob)).await;
        answers.push((response.status().as_u16(), response.text().await.unwrap()));
    }
    assert_eq!(
        answers[0], answers[1],
        "another project's task and an unknown one differ"
    );
    assert_eq!(answers[0].0, 404);
    let chat = get_as(&app, "/chats/shared-chat/stream", Some(&bob)).await;
    assert_eq!(chat.status().as_u16(), 204);

    // No token, or no subscribe scope.
    for path in [
        "/tasks/alices/ui-message-stream",
        "/chats/shared-chat/stream",
    ] {
        let anonymous = get_as(&app, path, None).await;
        assert_error(anonymous, 401, "unauthorized").await;
        let publisher = token("alice", "publish", &["p1"]);
        let forbidden = get_as(&app, path, Some(&publisher)).await;
        assert_error(forbidden, 403, "forbidden").await;
    }

    // A chat task in no project is anyone's, a token of no project included.
    let root = token("root", "subscribe publish", &["*"]);
    let open = post_as(
        &app,
        "/tasks",
        Some(&json!({ "task_id": "open", "chat_id": "open-chat" })),
        Some(&root),
    )
    .await;
    assert_eq!(open.status().as_u16(), 201);
    let nobody = token("carol", "subscribe", &[]);
    let authorization = format!("Bearer {nobody}");
    let mut stream = UiStream::open_with(
        &app,
        "/chats/open-chat/stream",
        &[("Authorization", authorization.as_str())],
    )
    .await;
    assert_eq!(stream.take(1).await, [start("open")]);
    let shared = get_as(&app, "/chats/shared-chat/stream", Some(&nobody)).await;
    assert_eq!(shared.status().as_u16(), 204);

    // Alice reads both.
    for path in [
        "/tasks/alices/ui-message-stream",
        "/chats/shared-chat/stream",
    ] {
        let authorization = format!("Bearer {alice}");
        let mut stream =
            UiStream::open_with(&app, path, &[("Authorization", authorization.as_str())]).await;
        assert_eq!(stream.take(1).await, [start("alices")], "{path}");
    }
}

#[actix_web::test]
async fn a_task_in_no_project_never_stands_in_for_a_projects_chat() {
    // Arrange: bob's generation in p2, in his chat; then alice, a tenant of
    // p1 who learnt the chat's id, makes a newer task in no project (which
    // any token sees) in the same chat, with text of her own.
    let app = spawn_secured_app().await;
    let alice = token("alice", "subscribe publish", &["p1"]);
    let bob = token("bob", "subscribe publish", &["p2"]);
    let make = |id: &'static str, project: Option<&'static str>, who: &String| {
        let mut body = json!({ "task_id": id, "chat_id": "bobs-chat" });
        if let Some(project) = project {
            body["project_id"] = json!(project);
        }
        let (app, who) = (&app, who.clone());
        async move {
            let created = post_as(app, "/tasks", Some(&body), Some(&who)).await;
            assert_eq!(created.status().as_u16(), 201, "{id}");
            let text = json!({ "delta": format!("text of {id}") });
            let written = post_as(app, &format!("/tasks/{id}/text"), Some(&text), Some(&who)).await;
            assert_eq!(written.status().as_u16(), 202, "{id}");
        }
    };
    make("bobs-answer", Some("p2"), &bob).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    make("forged", None, &alice).await;
    let authorization = format!("Bearer {bob}");

    // Act / Assert: bob's chat resumes his task, not the newer forged one.
    let mut stream = UiStream::open_with(
        &app,
        "/chats/bobs-chat/stream",
        &[("Authorization", authorization.as_str())],
    )
    .await;
    assert_eq!(stream.take(1).await, [start("bobs-answer")]);
    drop(stream);
    // Once his generation is over, his chat has nothing to resume: still
    // not alice's task.
    let done = post_as(
        &app,
        "/tasks/bobs-answer/complete",
        Some(&json!({})),
        Some(&bob),
    )
    .await;
    assert_eq!(done.status().as_u16(), 200);
    let idle = get_as(&app, "/chats/bobs-chat/stream", Some(&bob)).await;
    assert_eq!(idle.status().as_u16(), 204);
}

#[actix_web::test]
async fn in_a_cluster_any_instance_resumes_a_chat_written_through_another() {
    // Arrange: two instances on one PostgreSQL database and one Redis.
    let (_db, a, b) = super::two_instances().await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post =
        |node: &Node, path: &str, body: Value| client.post(node.url(path)).json(&body).send();
    let created = post(&a, "/tasks", json!({ "task_id": "shared", "chat_id": "c" }))
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let written = post(&a, "/tasks/shared/text", json!({ "delta": "from a" }))
        .await
        .unwrap();
    assert_eq!(written.status().as_u16(), 202);

    // Act: the chat resumed on b, the generation going on through a.
    let response = client.get(b.url("/chats/c/stream")).send().await.unwrap();
    let mut on_b = UiStream::new(response, "/chats/c/stream on b");
    assert_eq!(
        on_b.take(4).await,
        [start("shared"), start_step(), text_start(), delta("from a")]
    );
    on_b.take(1).await;
    let more = post(&a, "/tasks/shared/text", json!({ "delta": "+" }))
        .await
        .unwrap();
    assert_eq!(more.status().as_u16(), 202);
    assert_eq!(on_b.next_part(CLUSTER_WAIT).await, Some(delta("+")));
    let cancelled = post(&b, "/tasks/shared/cancel", Value::Null).await.unwrap();
    assert_eq!(cancelled.status().as_u16(), 200);

    // Assert
    assert_eq!(
        on_b.read_to_end(CLUSTER_WAIT).await,
        [text_end(), json!({ "type": "abort" }), json!("[DONE]")]
    );
    let idle = client.get(a.url("/chats/c/stream")).send().await.unwrap();
    assert_eq!(idle.status().as_u16(), 204);
}

#[actix_web::test]
async fn a_chat_cancels_its_running_generation_by_its_chat_id() {
    // Arrange: a chat whose newest task runs, behind a finished one.
    let app = spawn_secured_app().await;
    let alice = token("alice", "subscribe publish", &["p1"]);
    for (id, running) in [("old", false), ("new", true)] {
        let task = json!({ "task_id": id, "project_id": "p1", "chat_id": "c" });
        assert_eq!(
            post_as(&app, "/tasks", Some(&task), Some(&alice))
                .await
                .status(),
            201
        );
        let text = json!({ "delta": "words" });
        let written = post_as(
            &app,
            &format!("/tasks/{id}/text"),
            Some(&text),
            Some(&alice),
        )
        .await;
        assert_eq!(written.status(), 202);
        if !running {
            let done = post_as(&app, &format!("/tasks/{id}/complete"), None, Some(&alice)).await;
            assert_eq!(done.status(), 200);
        }
    }
    // Another tenant's token, or one that may not write, cancels nothing.
    let bob = token("bob", "subscribe publish", &["p2"]);
    let foreign = post_as(&app, "/chats/c/cancel", None, Some(&bob)).await;
    assert_error(foreign, 404, "task_not_found").await;
    let reader = token("alice", "subscribe", &["p1"]);
    let forbidden = post_as(&app, "/chats/c/cancel", None, Some(&reader)).await;
    assert_error(forbidden, 403, "forbidden").await;

    // Act
    let cancelled = post_as(&app, "/chats/c/cancel", None, Some(&alice)).await;

    // Assert: the newest task, cancelled with its text; then nothing runs.
    assert_eq!(cancelled.status(), 200);
    let task: Value = cancelled.json().await.expect("the task");
    assert_eq!(task["task_id"], "new");
    assert_eq!(task["status"], "cancelled");
    let old = get_as(&app, "/tasks/old", Some(&alice)).await;
    assert_eq!(
        old.json::<Value>().await.expect("a task")["status"],
        "completed"
    );
    let again = post_as(&app, "/chats/c/cancel", None, Some(&alice)).await;
    assert_error(again, 404, "task_not_found").await;
    let bad = post_as(&app, "/chats/bad!id/cancel", None, Some(&alice)).await;
    assert_error(bad, 400, "invalid_chat_id").await;
}
