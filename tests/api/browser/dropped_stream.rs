//! The demo page's recovery from a dropped stream, and token→screen latency.

use std::time::Duration;

use serde_json::json;

use super::{Browser, get_json, live_streams, start_broker};

#[actix_web::test]
async fn the_demo_page_survives_a_dropped_stream_and_ends_with_the_whole_text() {
    let (broker, _dir, shutdown) = start_broker().await;
    let http = reqwest::Client::new();
    let browser = Browser::launch().await;

    browser.goto(&format!("{broker}/")).await;
    // Some text is on screen and the stream is live.
    let task_id = browser.start_demo_generation(40).await;

    // Drop the page's stream server-side, mid-generation.
    let (stream_id, _) = live_streams(&http, &broker)
        .await
        .into_iter()
        .find(|(_, task)| task.as_deref() == Some(task_id.as_str()))
        .expect("the page's task stream is listed");
    let dropped = http
        .delete(format!("{broker}/sse/connections/{stream_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(dropped.status(), 204);

    // The page reconnects by itself and finishes.
    browser
        .wait_for(
            "return document.body.dataset.done === 'true'",
            Duration::from_secs(40),
            "the end of the generation",
        )
        .await;
    let on_screen = browser
        .script("return document.getElementById('text').textContent")
        .await;
    let task = get_json(&http, &format!("{broker}/tasks/{task_id}")).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(
        on_screen, task["result"]["text"],
        "the page must show exactly the produced text: no gap, no repeated token"
    );
    let stats = get_json(&http, &format!("{broker}/sse/stats")).await;
    assert_eq!(
        stats["closed_by_reason"]["disconnected"], 1,
        "the stream was dropped once"
    );
    assert!(
        stats["total_connections"].as_u64().unwrap() >= 2,
        "the page reconnected: {stats}"
    );
    let typing_hidden = browser
        .script("return getComputedStyle(document.getElementById('typing')).display === 'none'")
        .await;
    assert_eq!(
        typing_hidden, true,
        "the typing indicator disappears when the answer is complete"
    );
    let screenshot = browser.screenshot("demo-completed.png").await;
    println!("screenshot: {}", screenshot.display());

    // Token→screen latency: producer POST → DOM mutation, same machine clock.
    let latency = http
        .post(format!("{broker}/tasks"))
        .json(&json!({ "task_id": "latency" }))
        .send()
        .await
        .unwrap();
    assert_eq!(latency.status(), 201);
    browser.goto(&format!("{broker}/?task=latency")).await;
    browser
        .wait_for(
            "return document.getElementById('connection').dataset.state === 'connected'",
            Duration::from_secs(10),
            "the latency page to connect",
        )
        .await;
    browser
        .script(
            "window.__marks = []; new MutationObserver(() => window.__marks.push(Date.now()))\
             .observe(document.getElementById('text'), { childList: true, characterData: true, subtree: true }); return true;",
        )
        .await;
    let mut latencies = Vec::new();
    for token in 0..30 {
        let sent = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let answer = http
            .post(format!("{broker}/tasks/latency/text"))
            .json(&json!({ "delta": format!("t{token} ") }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202);
        let seen = browser
            .wait_for(
                &format!("return window.__marks.length > {token} ? window.__marks[{token}] : null"),
                Duration::from_secs(5),
                "a token on screen",
            )
            .await;
        latencies.push(seen.as_i64().unwrap() - sent);
    }
    let text = browser
        .script("return document.getElementById('text').textContent")
        .await;
    let expected: String = (0..30).map(|t| format!("t{t} ")).collect();
    assert_eq!(text, expected.as_str());
    latencies.sort_unstable();
    println!(
        "token->screen latency over {} tokens: p50 {} ms, p90 {} ms, max {} ms",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 9 / 10],
        latencies[latencies.len() - 1]
    );
    shutdown.trigger();
}
