//! A stream the broker refuses, in a real browser: `EventSource` cannot
//! read an HTTP error's status, so `client.js` asks with `fetch` and ends
//! with the broker's code instead of spending its reconnect attempts on a
//! refusal that will not pass. A broker that cannot be reached at all is
//! still a lost connection, retried.

use std::time::Duration;

use serde_json::Value;

use super::{Browser, start_broker};
use crate::helpers::free_port;

/// Opens a `TaskStream` (or an `SseClient` on a URL) in the page, shared
/// across tabs or not, and records how it ends.
async fn open_task_stream(browser: &Browser, url_or_task: &str, task: bool, share: bool) {
    let constructor = if task {
        format!("new TaskStream({url_or_task:?}, options)")
    } else {
        format!("new SseClient({url_or_task:?}, options)")
    };
    browser
        .script(&format!(
            "window.ended = null; window.states = []; \
             import('/client.js').then(({{ SseClient, TaskStream }}) => {{ \
               const options = {{ reconnectDelay: 200, maxReconnectDelay: 200, maxReconnectAttempts: 2, \
                 shareAcrossTabs: {share}, \
                 onStateChange: (s) => window.states.push(s), \
                 onError: (e) => {{ window.ended = {{ name: e.name, status: e.status ?? null, \
                   code: e.code ?? null, message: e.message }}; }} }}; \
               window.client = {constructor}; \
               window.client.connect(); \
             }}); return true;"
        ))
        .await;
}

#[actix_web::test]
async fn a_refused_stream_ends_with_the_brokers_code_and_a_dead_broker_is_retried() {
    // Arrange
    let (broker, _dir, _shutdown) = start_broker().await;
    let browser = Browser::launch().await;
    browser.goto(&format!("{broker}/health")).await;

    // Act / Assert: an unknown task (404) and a bad task id (400) end the
    // client with the broker's own code, without reconnect attempts.
    // The last in a client shared across tabs: the tab holding the
    // stream is the one refused.
    for (task, status, code, share) in [
        ("no-such-task", 404, "task_not_found", false),
        ("bad!id", 400, "invalid_task_id", false),
        ("another-unknown-task", 404, "task_not_found", true),
    ] {
        open_task_stream(&browser, task, true, share).await;
        let ended = browser
            .wait_for(
                "return window.ended",
                Duration::from_secs(10),
                "the refused stream to end",
            )
            .await;
        assert_eq!(ended["name"], "StreamRefusedError", "{task}: {ended}");
        assert_eq!(ended["status"], status, "{task}: {ended}");
        assert_eq!(ended["code"], code, "{task}: {ended}");
        let states = browser.script("return window.states").await;
        assert!(
            !states
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s == "reconnecting")),
            "{task}: a refusal is not a lost connection: {states}"
        );
        assert_eq!(
            browser.script("return window.client.state").await,
            Value::from("closed")
        );
    }

    // A port nobody listens on: a lost connection, retried until the
    // attempts run out (not a refusal).
    let dead = format!("http://127.0.0.1:{}/sse/events", free_port());
    open_task_stream(&browser, &dead, false, false).await;
    let ended = browser
        .wait_for(
            "return window.ended",
            Duration::from_secs(15),
            "the attempts to run out",
        )
        .await;
    assert_eq!(ended["name"], "Error", "{ended}");
    assert!(
        ended["message"]
            .as_str()
            .is_some_and(|m| m.contains("reconnect attempts")),
        "{ended}"
    );
    let states = browser.script("return window.states").await;
    assert!(
        states
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "reconnecting")),
        "{states}"
    );
}
