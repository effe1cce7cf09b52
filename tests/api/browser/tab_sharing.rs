//! One stream for all the tabs of a browser (`client.js`, Web Locks and
//! BroadcastChannel): three tabs of one profile, one stream at the broker,
//! every event in every tab; the leader tab closes, another takes over and
//! resumes, and no tab misses an event or sees one twice. With
//! `shareAcrossTabs: false`, one stream per tab; two users' tabs with
//! tickets never share.

use std::time::Duration;

use serde_json::{Value, json};

use super::Browser;
use crate::{
    auth::{get_as, post_as, root_token, spawn_secured_app, token},
    helpers::{TestApp, spawn_app},
};

/// Loads a page of the broker's origin in the current tab and starts a
/// client there that records the `n` of every `commit` it gets.
async fn start_client(browser: &Browser, app: &TestApp, share: bool) {
    start_client_with(browser, app, &format!("shareAcrossTabs: {share},")).await;
}

/// [`start_client`] with `options` (JavaScript properties, each ending in
/// a comma) added to the client's; `fetchTicket` is in scope for them.
async fn start_client_with(browser: &Browser, app: &TestApp, options: &str) {
    browser.goto(&format!("{}/health", app.address)).await;
    browser
        .script(&format!(
            "window.got = []; window.state = 'idle'; \
             import('/client.js').then(({{ SseClient, fetchTicket }}) => {{ \
               window.client = new SseClient('/sse/events', {{ \
                 eventTypes: ['commit'], {options} \
                 onStateChange: (s) => {{ window.state = s; }}, \
               }}); \
               window.client.on('commit', (data) => window.got.push(data.n)); \
               window.client.connect(); \
             }}); \
             return true;"
        ))
        .await;
    browser
        .wait_for(
            "return window.state === 'connected'",
            Duration::from_secs(10),
            "the tab's client to be connected",
        )
        .await;
}

async fn received(browser: &Browser, tab: &str) -> Vec<u64> {
    browser.switch_to(tab).await;
    let got = browser.script("return window.got").await;
    got.as_array()
        .expect("an array")
        .iter()
        .filter_map(Value::as_u64)
        .collect()
}

/// Waits until `tab` holds exactly `expected` (in order).
async fn wait_for_events(browser: &Browser, tab: &str, expected: &[u64]) {
    browser.switch_to(tab).await;
    let wanted = serde_json::to_string(expected).expect("JSON");
    let result = tokio::time::timeout(
        Duration::from_secs(15),
        browser.wait_for(
            &format!("return JSON.stringify(window.got) === '{wanted}'"),
            Duration::from_secs(15),
            "the tab's events",
        ),
    )
    .await;
    if result.is_err() {
        panic!(
            "tab {tab} holds {:?}, wanted {expected:?}",
            received(browser, tab).await
        );
    }
}

async fn publish(app: &TestApp, numbers: std::ops::RangeInclusive<u64>) {
    for n in numbers {
        app.publish_one(&json!({"event_type": "commit", "data": {"n": n}}))
            .await;
    }
}

/// Appends `delta` to task `task`'s text.
async fn write_text(app: &TestApp, task: &str, delta: &str) {
    let response = app
        .post_json(&format!("/tasks/{task}/text"), &json!({ "delta": delta }))
        .await;
    assert_eq!(response.status().as_u16(), 202, "text for {task}");
}

/// Loads a page of the broker's origin in the current tab that follows
/// task `task`'s stream as the React hook shows it: its text in
/// `window.text` (a `replay_reset` empties it, counted in
/// `window.resets`), `window.ended` once it completes.
async fn follow_task(browser: &Browser, app: &TestApp, task: &str) {
    browser.goto(&format!("{}/health", app.address)).await;
    browser
        .script(&format!(
            "window.text = ''; window.resets = 0; window.ended = false; \
             import('/client.js').then(({{ TaskStream }}) => {{ \
               window.client = new TaskStream('{task}', {{ \
                 onText: (delta) => {{ window.text += delta; }}, \
               }}); \
               window.client.on('replay_reset', () => {{ window.text = ''; window.resets += 1; }}); \
               window.client.on('complete', () => {{ window.ended = true; }}); \
               window.client.connect(); \
             }}); \
             return true;"
        ))
        .await;
}

/// Waits until `condition` holds in `tab` (the current tab when `None`).
async fn shows(browser: &Browser, tab: Option<&str>, condition: &str, what: &str) {
    if let Some(tab) = tab {
        browser.switch_to(tab).await;
    }
    browser
        .wait_for(
            &format!("return {condition}"),
            Duration::from_secs(10),
            what,
        )
        .await;
}

/// [`active_streams`] on a broker with auth on.
async fn active_streams_as_admin(app: &TestApp) -> u64 {
    let stats = get_as(app, "/sse/stats", Some(&root_token())).await;
    let stats: Value = stats.json().await.expect("JSON");
    stats["active_connections"].as_u64().expect("a count")
}

async fn active_streams(app: &TestApp) -> u64 {
    app.stats().await["active_connections"]
        .as_u64()
        .expect("a count")
}

#[actix_web::test]
async fn the_tabs_of_a_browser_share_one_stream_and_lose_nothing_when_the_leader_closes() {
    // Arrange: three tabs; the first to connect leads.
    let app = spawn_app().await;
    let browser = Browser::launch().await;
    let leader = browser.tab().await;
    start_client(&browser, &app, true).await;
    let second = browser.new_tab().await;
    start_client(&browser, &app, true).await;
    let third = browser.new_tab().await;
    start_client(&browser, &app, true).await;

    // Act 1
    publish(&app, 1..=3).await;

    // Assert 1: one stream, every event in every tab.
    for tab in [&leader, &second, &third] {
        wait_for_events(&browser, tab, &[1, 2, 3]).await;
    }
    assert_eq!(active_streams(&app).await, 1, "one stream for three tabs");

    // Act 2: the leader goes; events keep coming meanwhile.
    browser.switch_to(&leader).await;
    browser.close_tab().await;
    publish(&app, 4..=6).await;

    // Assert 2: another tab took over, resumed, nothing lost or doubled.
    for tab in [&second, &third] {
        wait_for_events(&browser, tab, &[1, 2, 3, 4, 5, 6]).await;
    }
    publish(&app, 7..=7).await;
    for tab in [&second, &third] {
        wait_for_events(&browser, tab, &[1, 2, 3, 4, 5, 6, 7]).await;
    }
    assert_eq!(active_streams(&app).await, 1, "still one stream");
}

#[actix_web::test]
async fn with_share_across_tabs_off_each_tab_has_its_own_stream() {
    // Arrange
    let app = spawn_app().await;
    let browser = Browser::launch().await;
    let first = browser.tab().await;
    start_client(&browser, &app, false).await;
    let second = browser.new_tab().await;
    start_client(&browser, &app, false).await;

    // Act
    publish(&app, 1..=2).await;

    // Assert
    for tab in [&first, &second] {
        wait_for_events(&browser, tab, &[1, 2]).await;
    }
    assert_eq!(active_streams(&app).await, 2);
}

/// Starts a client whose stream opens with tickets fetched with `token` (a
/// token kept per tab, as an account switcher keeps it), with
/// `share_key` (a property and its comma, or nothing).
async fn start_ticket_client(browser: &Browser, app: &TestApp, token: &str, share_key: &str) {
    let options = format!("{share_key} getTicket: () => fetchTicket('/sse/tickets', '{token}'),");
    start_client_with(browser, app, &options).await;
}

/// Signs the browser in as `token`'s user (the `sse_token` cookie, the
/// browser's for every tab) and starts a client relying on it, saying
/// whose stream it is with `share_key` (a property and its comma).
async fn start_cookie_client(browser: &Browser, app: &TestApp, token: &str, share_key: &str) {
    browser.goto(&format!("{}/health", app.address)).await;
    browser
        .script(&format!(
            "document.cookie = 'sse_token={token}; path=/'; return true;"
        ))
        .await;
    start_client_with(browser, app, share_key).await;
}

/// Publishes `commit {n}` into `project` as an administrator.
async fn publish_into(app: &TestApp, project: &str, n: u64) {
    let event = json!({"event_type": "commit", "project_id": project, "data": {"n": n}});
    let response = post_as(app, "/sse/publish", Some(&event), Some(&root_token())).await;
    assert_eq!(response.status().as_u16(), 202, "publish into {project}");
}

/// Two users signed in side by side in one browser (a token per tab), both
/// opening `/sse/events` with tickets: a ticket does not say whose stream
/// it is, so each tab has a stream of its own and sees only its own
/// tenant's events; with a `shareKey` per user, one user's tabs share.
#[actix_web::test]
async fn tabs_of_two_users_with_tickets_never_share_a_stream() {
    // Arrange: alice (project pa) and bob (project pb), one tab each, then
    // a second tab of alice's naming her as the key, and a third of bob's.
    let app = spawn_secured_app().await;
    let alice = token("alice", "subscribe", &["pa"]);
    let bob = token("bob", "subscribe", &["pb"]);
    let browser = Browser::launch().await;
    let alice_tab = browser.tab().await;
    start_ticket_client(&browser, &app, &alice, "").await;
    let bob_tab = browser.new_tab().await;
    start_ticket_client(&browser, &app, &bob, "").await;
    let alice_keyed = browser.new_tab().await;
    start_ticket_client(&browser, &app, &alice, "shareKey: 'alice',").await;
    let alice_keyed_again = browser.new_tab().await;
    start_ticket_client(&browser, &app, &alice, "shareKey: 'alice',").await;

    // Act
    publish_into(&app, "pa", 1).await;
    publish_into(&app, "pb", 2).await;
    publish_into(&app, "pa", 3).await;

    // Assert: each user's own events only; alice's keyed tabs share one
    // stream, so three streams for four tabs.
    for tab in [&alice_tab, &alice_keyed, &alice_keyed_again] {
        wait_for_events(&browser, tab, &[1, 3]).await;
    }
    wait_for_events(&browser, &bob_tab, &[2]).await;
    assert_eq!(active_streams_as_admin(&app).await, 3);
}

/// One user signs out and another signs in while the first's tab stays
/// open: the cookie changes under it, and a tab opened now, given the
/// signed-in user's `shareKey` as the guide says, must not follow the
/// stream the first tab opened with the first user's cookie.
#[actix_web::test]
async fn a_tab_opened_after_another_user_signs_in_does_not_follow_the_first_users_stream() {
    // Arrange
    let app = spawn_secured_app().await;
    let browser = Browser::launch().await;
    let alice_tab = browser.tab().await;
    let alice = token("alice", "subscribe", &["pa"]);
    start_cookie_client(&browser, &app, &alice, "shareKey: 'alice',").await;
    let bob_tab = browser.new_tab().await;
    let bob = token("bob", "subscribe", &["pb"]);
    start_cookie_client(&browser, &app, &bob, "shareKey: 'bob',").await;

    // Act
    publish_into(&app, "pa", 1).await;
    publish_into(&app, "pb", 2).await;

    // Assert: a stream each, each with its own user's events.
    wait_for_events(&browser, &alice_tab, &[1]).await;
    wait_for_events(&browser, &bob_tab, &[2]).await;
    assert_eq!(active_streams_as_admin(&app).await, 2);
}

/// Another tab's client that was closed and connects again while a tab
/// still leads the stream follows it again: what was published while it
/// was away comes from the stored history, then the live events, each
/// once and in order.
#[actix_web::test]
async fn a_tab_that_follows_again_after_a_close_catches_up_on_what_it_missed() {
    // Arrange: two tabs, the first leads.
    let app = spawn_app().await;
    let browser = Browser::launch().await;
    let leader = browser.tab().await;
    start_client(&browser, &app, true).await;
    let follower = browser.new_tab().await;
    start_client(&browser, &app, true).await;
    publish(&app, 1..=2).await;
    for tab in [&leader, &follower] {
        wait_for_events(&browser, tab, &[1, 2]).await;
    }

    // Act: the follower's client closes; events come meanwhile; it
    // connects again (and follows the leader again), and more come.
    browser.switch_to(&follower).await;
    browser.script("window.client.close(); return true;").await;
    publish(&app, 3..=5).await;
    browser.switch_to(&follower).await;
    browser
        .script("window.client.connect(); return true;")
        .await;
    publish(&app, 6..=7).await;

    // Assert
    for tab in [&leader, &follower] {
        wait_for_events(&browser, tab, &[1, 2, 3, 4, 5, 6, 7]).await;
    }
    assert_eq!(active_streams(&app).await, 1, "the follower follows again");
}

/// A task's stream shared by two tabs: the second, opened mid-generation,
/// gets the text so far from the first (as its own first connect would
/// have replayed it), then the rest live; one stream at the broker.
#[actix_web::test]
async fn a_tab_joining_a_shared_task_stream_gets_the_text_so_far_from_the_leader() {
    // Arrange: a running task with text, followed by the first tab.
    let app = spawn_app().await;
    let created = app.post_json("/tasks", &json!({"task_id": "shared"})).await;
    assert_eq!(created.status().as_u16(), 201);
    let write = |delta: &'static str| write_text(&app, "shared", delta);
    write("One ").await;
    let browser = Browser::launch().await;
    let first = browser.tab().await;
    follow_task(&browser, &app, "shared").await;
    shows(
        &browser,
        None,
        "window.text === 'One '",
        "the first tab's text",
    )
    .await;
    write("two ").await;
    let live = "window.text === 'One two '";
    shows(&browser, None, live, "the first tab's live text").await;

    // Act: a second tab opens the same task's stream mid-generation.
    let second = browser.new_tab().await;
    follow_task(&browser, &app, "shared").await;
    shows(&browser, None, live, "the second tab's text so far").await;
    write("three").await;
    let completed = app.post_json("/tasks/shared/complete", &json!({})).await;
    assert_eq!(completed.status().as_u16(), 200);

    // Assert: both tabs hold the whole text once; one stream served them.
    for tab in [&first, &second] {
        let whole = "window.ended && window.text === 'One two three'";
        shows(&browser, Some(tab), whole, "the whole text, then the end").await;
    }
    let opened = crate::helpers::sample_sum(
        &app.get("/metrics").await.text().await.expect("metrics"),
        "sse_connections_opened_total",
    );
    assert_eq!(opened, 1.0, "one stream for both tabs");
}

/// A tab on a shared task stream whose client closes, misses text, and
/// follows again: it takes the leader's frames up after its own last id
/// (no `replay_reset`, no text repeated: an app appending each delta shows
/// it once), so the tab ends with the whole text once, no gap and nothing
/// twice; still one stream at the broker.
#[actix_web::test]
async fn a_task_stream_tab_that_follows_again_after_a_close_has_the_whole_text() {
    // Arrange: a running task followed by two tabs.
    let app = spawn_app().await;
    let created = app.post_json("/tasks", &json!({"task_id": "again"})).await;
    assert_eq!(created.status().as_u16(), 201);
    let write = |delta: &'static str| write_text(&app, "again", delta);
    write("One ").await;
    let browser = Browser::launch().await;
    let first = browser.tab().await;
    follow_task(&browser, &app, "again").await;
    let second = browser.new_tab().await;
    follow_task(&browser, &app, "again").await;
    for tab in [&first, &second] {
        shows(
            &browser,
            Some(tab),
            "window.text === 'One '",
            "each tab's text",
        )
        .await;
    }

    // Act: the second tab's client closes; text comes meanwhile; it
    // connects again and follows the first tab again.
    browser.switch_to(&second).await;
    browser.script("window.client.close(); return true;").await;
    write("two ").await;
    let live = "window.text === 'One two '";
    shows(&browser, Some(&first), live, "the leader's live text").await;
    browser.switch_to(&second).await;
    browser
        .script("window.client.connect(); return true;")
        .await;
    let taken_up = "window.resets === 0 && window.text === 'One two '";
    shows(
        &browser,
        None,
        taken_up,
        "the rejoining tab's text, taken up where it left off",
    )
    .await;
    write("three").await;

    // Assert
    for tab in [&first, &second] {
        let whole = "window.text === 'One two three'";
        shows(&browser, Some(tab), whole, "the whole text once").await;
    }
    assert_eq!(
        active_streams(&app).await,
        1,
        "the second tab follows again"
    );
}
