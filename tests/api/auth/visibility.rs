//! Which events a token sees: under a concurrent mixed publish load, each
//! stream (and `/sse/history`, and a replay) carries exactly the events of
//! its token's projects (or none) and its token's user (or none).

use std::collections::BTreeSet;

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use super::{get_as, open_stream_as, post_as, spawn_secured_app, token};
use crate::helpers::{LONG, OpenStream, SHORT, TestApp};

const EVENTS: usize = 300;
const PROJECTS: [Option<&str>; 3] = [Some("p1"), Some("p2"), None];
const USERS: [Option<&str>; 3] = [Some("alice"), Some("bob"), None];

/// Event `n` of the load: every (project, user) combination in turn.
fn load_event(n: usize) -> Value {
    let mut event = json!({"event_type": "commit", "data": {"n": n}});
    if let Some(project) = PROJECTS[n % 3] {
        event["project_id"] = json!(project);
    }
    if let Some(user) = USERS[(n / 3) % 3] {
        event["user_id"] = json!(user);
    }
    event
}

/// A viewer of the load: its token, its stream filter, and what it may see.
struct Viewer {
    name: &'static str,
    sub: &'static str,
    projects: &'static [&'static str],
    /// Query string of the stream and the history request.
    query: &'static str,
    /// The stream's own `project_id` filter, if any.
    filter: Option<&'static str>,
}

impl Viewer {
    /// The sentinel this viewer sees last: its filter's project, or none.
    fn sentinel(&self) -> &'static str {
        self.filter.unwrap_or("all")
    }

    fn token(&self) -> String {
        token(self.sub, "subscribe", self.projects)
    }

    /// The numbers of the load events this viewer must receive.
    fn expected(&self) -> BTreeSet<usize> {
        (0..EVENTS)
            .filter(|n| {
                let project = PROJECTS[n % 3];
                let user = USERS[(n / 3) % 3];
                let granted = project
                    .is_none_or(|p| self.projects.contains(&"*") || self.projects.contains(&p));
                let filtered = self.filter.is_none_or(|f| project == Some(f));
                let mine = user.is_none_or(|u| u == self.sub);
                granted && filtered && mine
            })
            .collect()
    }
}

fn viewers() -> Vec<Viewer> {
    vec![
        Viewer {
            name: "alice, p1, no filter",
            sub: "alice",
            projects: &["p1"],
            query: "",
            filter: None,
        },
        Viewer {
            name: "alice, p1, filtered to p1",
            sub: "alice",
            projects: &["p1"],
            query: "project_id=p1",
            filter: Some("p1"),
        },
        Viewer {
            name: "bob, every project",
            sub: "bob",
            projects: &["*"],
            query: "",
            filter: None,
        },
        Viewer {
            // `user_id` in the query is a development aid for brokers
            // without authentication; with a token it must change nothing.
            name: "carol, p2, claiming to be alice",
            sub: "carol",
            projects: &["p2"],
            query: "user_id=alice",
            filter: None,
        },
        Viewer {
            name: "dave, no projects",
            sub: "dave",
            projects: &[],
            query: "",
            filter: None,
        },
    ]
}

fn with_query(path: &str, query: &str, extra: &str) -> String {
    let parts: Vec<&str> = [query, extra]
        .into_iter()
        .filter(|q| !q.is_empty())
        .collect();
    if parts.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

/// Reads `stream` up to `viewer`'s sentinel; returns the load numbers it
/// carried, panicking on a duplicate or on anything that is not a load event.
async fn read_until_sentinel(stream: &mut OpenStream, viewer: &Viewer) -> BTreeSet<usize> {
    let name = viewer.name;
    let mut seen = BTreeSet::new();
    loop {
        let event = stream
            .next_message(LONG)
            .await
            .unwrap_or_else(|| panic!("{name}: no sentinel (end: {:?})", stream.end()));
        let data = event.json();
        if data["sentinel"] == viewer.sentinel() {
            return seen;
        }
        if !data["sentinel"].is_null() {
            continue;
        }
        assert!(event.is("commit"), "{name}: unexpected {event:?}");
        let n = data["n"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {event:?}")) as usize;
        assert!(seen.insert(n), "{name}: event {n} delivered twice");
    }
}

fn numbers(events: &Value) -> Vec<usize> {
    events
        .as_array()
        .expect("an events array")
        .iter()
        .filter(|e| e["data"]["sentinel"].is_null())
        .map(|e| e["data"]["n"].as_u64().expect("a load event") as usize)
        .collect()
}

fn describe(n: usize) -> String {
    format!(
        "{n} (project {:?}, user {:?})",
        PROJECTS[n % 3],
        USERS[(n / 3) % 3]
    )
}

fn assert_same(name: &str, what: &str, got: &BTreeSet<usize>, expected: &BTreeSet<usize>) {
    let leaked: Vec<String> = got.difference(expected).map(|n| describe(*n)).collect();
    let missing: Vec<String> = expected.difference(got).map(|n| describe(*n)).collect();
    assert!(
        leaked.is_empty() && missing.is_empty(),
        "{name} ({what}): leaked {leaked:?}, missing {missing:?}"
    );
}

/// Publishes the load concurrently: batches of 1 to 5 events, 16 at a time.
async fn publish_load(app: &TestApp, publisher: &str) {
    let mut batches = Vec::new();
    let mut n = 0;
    while n < EVENTS {
        let size = (n % 5 + 1).min(EVENTS - n);
        let batch: Vec<Value> = (n..n + size).map(load_event).collect();
        batches.push(if size == 1 {
            batch.into_iter().next().unwrap()
        } else {
            Value::Array(batch)
        });
        n += size;
    }
    let statuses: Vec<u16> = stream::iter(batches)
        .map(|body| async move {
            post_as(app, "/sse/publish", Some(&body), Some(publisher))
                .await
                .status()
                .as_u16()
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
}

#[actix_web::test]
async fn under_a_mixed_load_each_token_sees_exactly_its_projects_and_its_user() {
    // Arrange
    let app = spawn_secured_app().await;
    let publisher = token("publisher", "publish", &["*"]);
    let viewers = viewers();
    let mut streams = Vec::new();
    for viewer in &viewers {
        let path = with_query("/sse/events", viewer.query, "");
        streams.push(open_stream_as(&app, &path, &viewer.token()).await);
    }

    // Act
    publish_load(&app, &publisher).await;
    // Sentinels, after every load event: one for the streams filtered to
    // p1, then one every stream can see.
    let sentinels = json!([
        {"event_type": "system_status", "project_id": "p1", "data": {"sentinel": "p1"}},
        {"event_type": "system_status", "data": {"sentinel": "all"}},
    ]);
    let response = post_as(&app, "/sse/publish", Some(&sentinels), Some(&publisher)).await;
    assert_eq!(response.status().as_u16(), 202);

    // Assert: live streams.
    for (viewer, stream) in viewers.iter().zip(&mut streams) {
        let seen = read_until_sentinel(stream, viewer).await;
        assert_same(viewer.name, "live stream", &seen, &viewer.expected());
    }
    let alice = viewers[0].expected();
    assert!(
        alice.len() > 100,
        "the load gives alice something to see: {}",
        alice.len()
    );

    // Assert: history, in one page and in small pages.
    for viewer in &viewers {
        let path = with_query("/sse/history", viewer.query, "limit=1000");
        let response = get_as(&app, &path, Some(&viewer.token())).await;
        assert_eq!(response.status().as_u16(), 200, "{}", viewer.name);
        let page: Value = response.json().await.unwrap();
        let listed = numbers(&page["events"]);
        let unique: BTreeSet<usize> = listed.iter().copied().collect();
        assert_eq!(unique.len(), listed.len(), "{}: duplicates", viewer.name);
        assert_same(viewer.name, "history", &unique, &viewer.expected());
    }
    let viewer = &viewers[0];
    let mut paged = BTreeSet::new();
    let mut after = 0;
    loop {
        let path = with_query(
            "/sse/history",
            viewer.query,
            &format!("limit=7&after={after}"),
        );
        let page: Value = get_as(&app, &path, Some(&viewer.token()))
            .await
            .json()
            .await
            .unwrap();
        for n in numbers(&page["events"]) {
            assert!(paged.insert(n), "event {n} listed on two pages");
        }
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_same(viewer.name, "paged history", &paged, &viewer.expected());

    // Assert: a replay from the start follows the same rules.
    for viewer in &viewers {
        let path = with_query("/sse/events", viewer.query, "");
        let authorization = format!("Bearer {}", viewer.token());
        let mut replay = app
            .open_stream(
                &path,
                &[("Authorization", &authorization), ("Last-Event-ID", "0")],
            )
            .await;
        let seen = read_until_sentinel(&mut replay, viewer).await;
        assert_same(viewer.name, "replay", &seen, &viewer.expected());
    }
}

#[actix_web::test]
async fn a_private_event_reaches_only_its_user_on_the_same_project() {
    let app = spawn_secured_app().await;
    let publisher = token("svc", "publish", &["*"]);
    let mut alice = open_stream_as(
        &app,
        "/sse/events?project_id=p1",
        &token("alice", "subscribe", &["p1"]),
    )
    .await;
    let mut bob = open_stream_as(
        &app,
        "/sse/events?project_id=p1",
        &token("bob", "subscribe", &["p1"]),
    )
    .await;

    for user in ["alice", "bob"] {
        let body = json!({"event_type": "risk_alert", "project_id": "p1", "user_id": user, "data": {"for": user}});
        let response = post_as(&app, "/sse/publish", Some(&body), Some(&publisher)).await;
        assert_eq!(response.status().as_u16(), 202);
    }

    for (name, stream) in [("alice", &mut alice), ("bob", &mut bob)] {
        let event = stream.next_message(SHORT).await.expect("its private event");
        assert_eq!(event.json()["for"], name, "{event:?}");
        stream
            .assert_quiet(std::time::Duration::from_millis(300))
            .await;
    }
}
