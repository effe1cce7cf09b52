//! A task's end as `event: error` (here: cancelled) in a real browser. The
//! name is shared with `EventSource`'s own network error, and in a browser
//! the server's event also fires `onerror`: the client must deliver it to
//! the page, close the task stream for good, and leave a general stream in
//! the same page running.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Browser, get_json, live_streams, start_broker};

/// How long the broker must see no new stream to call the page settled: a
/// client that mistook the event for a network error reconnects within
/// `reconnectDelay` (500 ms on the demo page, a few seconds at most after
/// backoff), and did so 19–24 times in 10–15 s.
const SETTLED_FOR: Duration = Duration::from_secs(3);

#[actix_web::test]
async fn a_task_cancelled_mid_generation_shows_as_cancelled_and_no_stream_reconnects() {
    // Arrange: the demo page, plus a general stream in the same page, as an
    // application would open one next to its task streams.
    let (broker, _dir, shutdown) = start_broker().await;
    let http = reqwest::Client::new();
    let browser = Browser::launch().await;
    browser.goto(&format!("{broker}/")).await;
    browser
        .script(
            "window.__commits = []; \
             import('/client.js').then(({ SseClient }) => { \
               const general = new SseClient('/sse/events'); \
               general.on('commit', (data) => window.__commits.push(data.sha)); \
               general.connect(); \
               window.__general = general; \
             }); return true;",
        )
        .await;
    let general_id = browser
        .wait_for(
            "return window.__general && window.__general.state === 'connected' && window.__general.connectionId",
            Duration::from_secs(10),
            "the general stream to connect",
        )
        .await;
    let task_id = browser.start_demo_generation(20).await;

    // Act: cancel the task while it is still generating.
    let cancelled = http
        .post(format!("{broker}/tasks/{task_id}/cancel"))
        .send()
        .await
        .expect("cancel sent");
    assert_eq!(
        cancelled.status(),
        200,
        "the generation must still be running when it is cancelled"
    );

    // Assert: the page says so and stops its typing indicator...
    browser
        .wait_for(
            &format!(
                "return document.getElementById('meta').textContent === 'Task {task_id}: cancelled'"
            ),
            Duration::from_secs(10),
            "the page to show the cancellation",
        )
        .await;
    let page = browser
        .script(
            "return { typingHidden: getComputedStyle(document.getElementById('typing')).display === 'none', \
                      busy: document.getElementById('output').getAttribute('aria-busy'), \
                      badge: document.getElementById('connection').dataset.state }",
        )
        .await;
    assert_eq!(page["typingHidden"], true, "the typing dots go: {page}");
    assert_eq!(page["busy"], "false", "{page}");
    assert_eq!(page["badge"], "closed", "the task stream is closed: {page}");

    // ...its task stream is gone and stays gone, and the general stream is
    // the very one it was: no new stream for a while.
    let deadline = Instant::now() + Duration::from_secs(10);
    while live_streams(&http, &broker)
        .await
        .iter()
        .any(|(_, task)| task.as_deref() == Some(task_id.as_str()))
    {
        assert!(Instant::now() < deadline, "the task stream never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opened = get_json(&http, &format!("{broker}/sse/stats")).await["total_connections"].clone();
    let watch_until = Instant::now() + SETTLED_FOR;
    while Instant::now() < watch_until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let stats = get_json(&http, &format!("{broker}/sse/stats")).await;
        assert_eq!(
            stats["total_connections"], opened,
            "a stream was opened after the task's end: the client reconnects"
        );
        let streams = live_streams(&http, &broker).await;
        assert_eq!(
            streams,
            vec![(general_id.as_str().unwrap().to_owned(), None)],
            "only the general stream is live, the one opened before"
        );
    }

    // The general stream still delivers what is published after the task's end.
    let published = http
        .post(format!("{broker}/sse/publish"))
        .json(&json!({ "event_type": "commit", "data": { "sha": "after-cancel" } }))
        .send()
        .await
        .expect("publish sent");
    assert_eq!(published.status(), 202);
    browser
        .wait_for(
            "return window.__commits.includes('after-cancel')",
            Duration::from_secs(5),
            "the general stream to receive a later event",
        )
        .await;
    let general = browser
        .script("return { state: window.__general.state, id: window.__general.connectionId, commits: window.__commits }")
        .await;
    assert_eq!(general["state"], "connected", "{general}");
    assert_eq!(
        general["id"], general_id,
        "the general stream never reconnected"
    );
    assert_eq!(general["commits"], json!(["after-cancel"]));
    let screenshot = browser.screenshot("demo-cancelled.png").await;
    println!("screenshot: {}", screenshot.display());
    shutdown.trigger();
}

#[actix_web::test]
async fn a_generation_cut_off_at_the_token_limit_says_so_with_its_tokens() {
    // Arrange: a model provider's answer cut off at the token limit, piped
    // into its task, its usage after the finish.
    let (broker, _dir, shutdown) = start_broker().await;
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{broker}/tasks"))
        .json(&json!({ "task_type": "chat" }))
        .send()
        .await
        .expect("create sent")
        .json()
        .await
        .expect("the task");
    let task_id = created["task_id"].as_str().expect("an id").to_owned();
    let body = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Server-Sent Events are\"},\"finish_reason\":\"length\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":4,\"total_tokens\":12}}\n\n",
        "data: [DONE]\n\n",
    );
    let uploaded = http
        .post(format!("{broker}/tasks/{task_id}/stream"))
        .header("Content-Type", "text/event-stream")
        .body(body)
        .send()
        .await
        .expect("upload sent");
    assert_eq!(uploaded.status(), 200);

    // Act
    let browser = Browser::launch().await;
    browser.goto(&format!("{broker}/?task={task_id}")).await;

    // Assert
    let expected = format!("Task {task_id}: completed (4 tokens), cut off at the token limit");
    browser
        .wait_for(
            &format!("return document.getElementById('meta').textContent === {expected:?}"),
            Duration::from_secs(10),
            "the page to say the answer was cut off",
        )
        .await;
    let text = browser
        .script("return document.getElementById('output').textContent")
        .await;
    assert!(
        text.as_str()
            .is_some_and(|t| t.contains("Server-Sent Events are")),
        "{text}"
    );
    shutdown.trigger();
}
