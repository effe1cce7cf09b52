//! The demo page runs on React (`/react.js`'s `useTaskStream`, React served
//! by the broker from `/vendor/`): a generation driven step by step by this
//! test, as a producer would, shows on screen as it streams (progress bar,
//! stage, the model's thinking, a tool call and its answer, text with the
//! typing indicator, status,
//! connection state), to its completion; a reload of the finished task
//! shows it whole again.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Browser, start_broker};

/// The ids of the demo's Cancel and Reconnect buttons the page shows.
const CONTROLS_SHOWN: &str =
    "return ['cancel', 'connection-toggle'].filter((id) => document.getElementById(id) !== null)";

/// What the page shows, read in one round trip.
const READ_PAGE: &str = "return { \
    text: document.getElementById('text').textContent, \
    reasoning: document.getElementById('reasoning-text')?.textContent ?? null, \
    thinking: document.querySelector('#reasoning summary')?.textContent ?? null, \
    reasoning_open: document.getElementById('reasoning')?.open ?? null, \
    tools: [...document.querySelectorAll('#tools li')].map((li) => [li.dataset.tool, li.dataset.state, li.textContent]), \
    progress: document.getElementById('progress').value, \
    current: [...document.querySelectorAll('.stages li[data-current=\"true\"]')].map((li) => li.dataset.stage), \
    done: [...document.querySelectorAll('.stages li[data-done=\"true\"]')].map((li) => li.dataset.stage), \
    typing: getComputedStyle(document.getElementById('typing')).display !== 'none', \
    busy: document.getElementById('output').getAttribute('aria-busy'), \
    badge: document.getElementById('connection').dataset.state, \
    meta: document.getElementById('meta').textContent, \
    finished: document.body.dataset.done === 'true' }";

async fn send(http: &reqwest::Client, method: reqwest::Method, url: String, body: Value) {
    let response = http
        .request(method.clone(), &url)
        .json(&body)
        .send()
        .await
        .expect("request sent");
    assert!(
        response.status().is_success(),
        "{method} {url}: {}",
        response.status()
    );
}

/// An NDJSON upload of `lines` to the task at `task`, whole; it ends
/// without a terminal line, so the task goes on.
async fn upload(http: &reqwest::Client, task: &str, lines: &[Value]) {
    let body: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let response = http
        .post(format!("{task}/stream"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("upload sent");
    assert_eq!(response.status().as_u16(), 200, "the upload to {task}");
}

#[actix_web::test]
async fn the_react_demo_renders_streamed_text_and_progress_to_completion() {
    // Arrange: a task the test produces itself, and the page following it.
    let (broker, _dir, shutdown) = start_broker().await;
    let http = reqwest::Client::new();
    let task = format!("{broker}/tasks/react-demo");
    send(
        &http,
        reqwest::Method::POST,
        format!("{broker}/tasks"),
        json!({ "task_id": "react-demo" }),
    )
    .await;
    let browser = Browser::launch().await;
    browser.goto(&format!("{broker}/?task=react-demo")).await;
    browser
        .wait_for(
            "return document.getElementById('connection').dataset.state === 'connected'",
            Duration::from_secs(15),
            "the React page to connect",
        )
        .await;

    // Act and assert, step by step: progress first...
    send(
        &http,
        reqwest::Method::PATCH,
        task.clone(),
        json!({ "status": "running", "progress": 25, "stage": "writing" }),
    )
    .await;
    browser
        .wait_for(
            "return document.getElementById('progress').value === 25",
            Duration::from_secs(5),
            "the progress bar at 25",
        )
        .await;
    let page = browser.script(READ_PAGE).await;
    assert_eq!(page["current"], json!(["writing"]), "{page}");
    assert_eq!(page["done"], json!(["thinking"]), "{page}");
    assert_eq!(page["meta"], "Task react-demo", "{page}");
    assert_eq!(page["typing"], true, "the typing indicator shows: {page}");
    assert_eq!(page["busy"], "true", "{page}");
    assert_eq!(
        page["reasoning"],
        Value::Null,
        "no thinking shown before any: {page}"
    );

    // ...then the model's thinking, apart from the answer...
    for thought in ["Explain ", "SSE ", "briefly."] {
        send(
            &http,
            reqwest::Method::POST,
            format!("{task}/text"),
            json!({ "reasoning": thought }),
        )
        .await;
    }
    browser
        .wait_for(
            "return document.getElementById('reasoning-text')?.textContent === 'Explain SSE briefly.'",
            Duration::from_secs(5),
            "the thinking on screen",
        )
        .await;
    let page = browser.script(READ_PAGE).await;
    assert_eq!(page["thinking"], "Thinking…", "{page}");
    assert_eq!(page["reasoning_open"], true, "open while it thinks: {page}");
    assert_eq!(page["text"], "", "the thinking is not the answer: {page}");

    // ...then a tool call, running, then answered...
    let call = json!({ "id": "c1", "name": "search_docs", "input": { "q": "sse" } });
    upload(&http, &task, &[json!({ "tool_call": call })]).await;
    browser
        .wait_for(
            "return document.querySelector('#tools li')?.dataset.state === 'called'",
            Duration::from_secs(5),
            "the tool call on screen",
        )
        .await;
    let result = json!({ "id": "c1", "output": { "results": 3 } });
    upload(&http, &task, &[json!({ "tool_result": result })]).await;
    browser
        .wait_for(
            "return document.querySelector('#tools li')?.dataset.state === 'done'",
            Duration::from_secs(5),
            "the tool's answer on screen",
        )
        .await;
    let answered = json!([[
        "search_docs",
        "done",
        "search_docs({\"q\":\"sse\"}) → {\"results\":3}"
    ]]);
    let page = browser.script(READ_PAGE).await;
    assert_eq!(page["tools"], answered, "{page}");

    // ...then the text, delta by delta...
    let deltas = ["Server-Sent ", "Events ", "stream ", "text."];
    for (sent, delta) in deltas.iter().enumerate() {
        send(
            &http,
            reqwest::Method::POST,
            format!("{task}/text"),
            json!({ "delta": delta }),
        )
        .await;
        let expected: String = deltas[..=sent].concat();
        browser
            .wait_for(
                &format!(
                    "return document.getElementById('text').textContent === {}",
                    json!(expected)
                ),
                Duration::from_secs(5),
                "the text so far on screen",
            )
            .await;
    }
    send(
        &http,
        reqwest::Method::PATCH,
        task.clone(),
        json!({ "progress": 90, "stage": "reviewing" }),
    )
    .await;
    browser
        .wait_for(
            "return document.getElementById('progress').value === 90",
            Duration::from_secs(5),
            "the progress bar at 90",
        )
        .await;
    let page = browser.script(READ_PAGE).await;
    assert_eq!(page["current"], json!(["reviewing"]), "{page}");
    assert_eq!(page["badge"], "connected", "{page}");
    assert_eq!(
        page["finished"], false,
        "not finished before `complete`: {page}"
    );

    // ...then the end.
    send(
        &http,
        reqwest::Method::POST,
        format!("{task}/complete"),
        json!({ "result": { "tokens": 4 } }),
    )
    .await;
    browser
        .wait_for(
            "return document.body.dataset.done === 'true'",
            Duration::from_secs(5),
            "the page to show the completion",
        )
        .await;
    let page = browser.script(READ_PAGE).await;
    assert_eq!(page["text"], "Server-Sent Events stream text.", "{page}");
    assert_eq!(page["reasoning"], "Explain SSE briefly.", "{page}");
    assert_eq!(page["thinking"], "Thought it through", "{page}");
    assert_eq!(
        page["reasoning_open"], false,
        "folded once the answer came: {page}"
    );
    assert_eq!(page["progress"], 100, "{page}");
    assert_eq!(
        page["done"],
        json!(["thinking", "writing", "reviewing", "done"]),
        "{page}"
    );
    assert_eq!(page["current"], json!([]), "{page}");
    assert_eq!(page["typing"], false, "the typing indicator goes: {page}");
    assert_eq!(page["busy"], "false", "{page}");
    assert_eq!(page["badge"], "closed", "the stream ended: {page}");
    assert_eq!(
        page["meta"], "Task react-demo: completed (4 tokens)",
        "{page}"
    );
    let screenshot = browser.screenshot("react-demo-completed.png").await;
    println!("screenshot: {}", screenshot.display());

    // It is React, served by the broker: the page loaded the hooks and the
    // vendored React from the broker's origin, and nothing from elsewhere.
    let loaded = browser
        .script("return performance.getEntriesByType('resource').map((entry) => entry.name)")
        .await;
    let loaded: Vec<&str> = loaded
        .as_array()
        .expect("resource entries")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for module in [
        "/react.js",
        "/client.js",
        "/vendor/react.js",
        "/vendor/react-dom-client.js",
        "/vendor/react-shared.js",
    ] {
        assert!(
            loaded.contains(&format!("{broker}{module}").as_str()),
            "{module} was not loaded: {loaded:?}"
        );
    }
    assert!(
        loaded.iter().all(|url| url.starts_with(&broker)),
        "only the broker's own resources: {loaded:?}"
    );

    // A reload of the finished task shows it whole: the stream replays it.
    browser.goto(&format!("{broker}/?task=react-demo")).await;
    browser
        .wait_for(
            "return document.body.dataset.done === 'true'",
            Duration::from_secs(10),
            "the reloaded page to show the finished task",
        )
        .await;
    let page = browser.script(READ_PAGE).await;
    assert_eq!(page["text"], "Server-Sent Events stream text.", "{page}");
    assert_eq!(page["reasoning"], "Explain SSE briefly.", "{page}");
    assert_eq!(page["tools"], answered, "the tool call again: {page}");
    assert_eq!(page["progress"], 100, "{page}");
    assert_eq!(
        page["meta"], "Task react-demo: completed (4 tokens)",
        "{page}"
    );
    shutdown.trigger();
}

/// The demo page following the task `id` of `broker`, created running
/// with the text "Half an ", once the page shows that text.
async fn page_on_running_task(http: &reqwest::Client, broker: &str, id: &str) -> Browser {
    send(
        http,
        reqwest::Method::POST,
        format!("{broker}/tasks"),
        json!({ "task_id": id }),
    )
    .await;
    send(
        http,
        reqwest::Method::POST,
        format!("{broker}/tasks/{id}/text"),
        json!({ "delta": "Half an " }),
    )
    .await;
    let browser = Browser::launch().await;
    browser.goto(&format!("{broker}/?task={id}")).await;
    browser
        .wait_for(
            "return document.getElementById('text').textContent === 'Half an '",
            Duration::from_secs(15),
            "the text so far on the page",
        )
        .await;
    browser
}

/// The demo's Cancel button cancels the generation for every viewer (the
/// text so far kept, the page saying so); it is not a disconnect.
#[actix_web::test]
async fn the_demos_cancel_button_ends_the_generation_and_keeps_its_text() {
    // Arrange: a running task with some text, the page following it.
    let (broker, _dir, shutdown) = start_broker().await;
    let http = reqwest::Client::new();
    let browser = page_on_running_task(&http, &broker, "to-cancel").await;

    // Act
    browser.click("#cancel").await;

    // Assert
    browser
        .wait_for(
            "return document.getElementById('meta').textContent === 'Task to-cancel: cancelled'",
            Duration::from_secs(10),
            "the page to say the generation was cancelled",
        )
        .await;
    let page = browser.script(READ_PAGE).await;
    assert_eq!(page["text"], "Half an ", "the text so far is kept: {page}");
    assert_eq!(page["typing"], false, "{page}");
    let task = super::get_json(&http, &format!("{broker}/tasks/to-cancel")).await;
    assert_eq!(task["status"], "cancelled", "{task}");
    let gone = browser
        .script("return document.getElementById('cancel') === null")
        .await;
    assert_eq!(gone, true, "no Cancel button for an ended task");
    shutdown.trigger();
}

#[actix_web::test]
async fn the_demo_page_says_an_unknown_task_was_refused_not_that_its_connection_was_lost() {
    // Arrange
    let (broker, _dir, shutdown) = start_broker().await;
    let browser = Browser::launch().await;

    // Act
    browser.goto(&format!("{broker}/?task=no-such-task")).await;

    // Assert: the broker's own reason, no "connection lost".
    let meta = browser
        .wait_for(
            "const meta = document.getElementById('meta').textContent; \
             return meta !== 'Task no-such-task' && meta",
            Duration::from_secs(15),
            "the page to say how its stream ended",
        )
        .await;
    let meta = meta.as_str().unwrap_or_default().to_owned();
    assert!(
        meta.starts_with("Task no-such-task: ") && meta.contains("no task"),
        "{meta}"
    );
    assert!(!meta.contains("connection lost"), "{meta}");
    let controls = browser.script(CONTROLS_SHOWN).await;
    assert_eq!(controls, json!([]), "nothing to cancel or reconnect");
    drop(browser);
    shutdown.trigger();
}

/// A page whose token (the URL's) expired cannot follow its task any
/// more: it says so, and offers no Reconnect that would be refused.
#[actix_web::test]
async fn the_demo_says_its_token_expired_and_offers_nothing_that_needs_it() {
    // Arrange: a running task, the page on a token that expires in 2 s.
    let app = crate::auth::spawn_secured_app().await;
    let created = crate::auth::post_as(
        &app,
        "/tasks",
        Some(&json!({ "task_id": "short-token" })),
        Some(&crate::auth::root_token()),
    )
    .await;
    assert_eq!(created.status().as_u16(), 201);
    let mut short_lived = crate::auth::claims("viewer", "subscribe", &[]);
    short_lived["exp"] = json!(crate::auth::now() + 2);
    let token = crate::auth::sign(&short_lived);
    let browser = Browser::launch().await;

    // Act
    browser
        .goto(&format!(
            "{}/?task=short-token&access_token={token}",
            app.address
        ))
        .await;

    // Assert
    browser
        .wait_for(
            "return document.getElementById('meta').textContent.includes('token expired')",
            Duration::from_secs(15),
            "the page to say its token expired",
        )
        .await;
    let meta = browser
        .script("return document.getElementById('meta').textContent")
        .await;
    assert_eq!(
        meta,
        "Task short-token: this page's token expired; open it with a fresh one to follow the task"
    );
    assert_eq!(browser.script(CONTROLS_SHOWN).await, json!([]));
}

/// A cancel the broker did not take says so as a failed cancel (not as a
/// failed start), and the task's own end replaces it once it comes.
#[actix_web::test]
async fn the_demo_says_a_cancel_failed_until_the_task_ends() {
    // Arrange: a running task, the page following it, its fetch failing.
    let (broker, _dir, shutdown) = start_broker().await;
    let http = reqwest::Client::new();
    let browser = page_on_running_task(&http, &broker, "no-cancel").await;
    browser
        .script(
            "window.fetch = async () => new Response(JSON.stringify({ error: { message: 'busy' } }), { status: 503 }); \
             return true",
        )
        .await;

    // Act
    browser.click("#cancel").await;
    browser
        .wait_for(
            "return document.getElementById('meta').textContent === 'Task no-cancel: could not cancel: busy'",
            Duration::from_secs(10),
            "the page to say the cancel failed",
        )
        .await;
    send(
        &http,
        reqwest::Method::POST,
        format!("{broker}/tasks/no-cancel/complete"),
        json!({}),
    )
    .await;

    // Assert
    browser
        .wait_for(
            "return document.getElementById('meta').textContent === 'Task no-cancel: completed'",
            Duration::from_secs(10),
            "the task's end in place of the failed cancel",
        )
        .await;
    shutdown.trigger();
}
