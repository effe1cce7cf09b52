//! Resuming with `Last-Event-ID` (header or query): no gap and no duplicate
//! while publishers keep publishing, and `replay_truncated` past retention.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};

use crate::helpers::{LONG, SHORT, TestApp, eventually, labelled_sum, spawn_app, spawn_app_with};

/// Events published by the background publishers before they stop.
const AT_LEAST: usize = 1000;
/// Events each publisher still publishes after the resumed stream is open,
/// so publishing overlaps the whole resume (replay and hand-off).
const AFTER_RESUME: usize = 150;
/// Publishers running at once; their requests interleave in the store.
const PUBLISHERS: usize = 2;

/// Publishes until `AT_LEAST / PUBLISHERS` events are out and `AFTER_RESUME`
/// more followed the resume. Every 5th event is a `file_change`, which the
/// stream under test filters out. Returns `(id, is_commit)` per event.
async fn keep_publishing(
    client: reqwest::Client,
    url: String,
    publisher: usize,
    resumed: Arc<AtomicBool>,
) -> Vec<(i64, bool)> {
    let mut published = Vec::new();
    let mut after_resume = 0;
    while published.len() < AT_LEAST / PUBLISHERS || after_resume < AFTER_RESUME {
        let n = published.len();
        let is_commit = n % 5 != 4;
        let event_type = if is_commit { "commit" } else { "file_change" };
        let response = client
            .post(&url)
            .json(&json!({"event_type": event_type, "data": {"publisher": publisher, "n": n}}))
            .send()
            .await
            .expect("publish sent");
        assert_eq!(response.status().as_u16(), 202);
        let answer: serde_json::Value = response.json().await.expect("JSON");
        let id = answer["ids"][0].as_i64().expect("an id");
        published.push((id, is_commit));
        if resumed.load(Ordering::Relaxed) {
            after_resume += 1;
        }
    }
    published
}

#[derive(Debug, Clone, Copy)]
enum ResumeVia {
    Header,
    Query,
}

/// Where a resume is read from: the frames routed last, kept in memory
/// (the default), or the store (the replay cache turned off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplaySource {
    Memory,
    Store,
}

impl ReplaySource {
    fn label(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Store => "store",
        }
    }
}

async fn a_resume_while_publishing_is_gapless(via: ResumeVia, source: ReplaySource) {
    // Arrange: a stream of commits, open before anything is published.
    let app = spawn_app_with(|s| {
        if source == ReplaySource::Store {
            s.replay_cache_events = 0;
        }
    })
    .await;
    let mut first = app.open_stream("/sse/events?event_types=commit", &[]).await;
    let resumed = Arc::new(AtomicBool::new(false));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|publisher| {
            actix_rt::spawn(keep_publishing(
                app.api_client.clone(),
                app.url("/sse/publish"),
                publisher,
                resumed.clone(),
            ))
        })
        .collect();

    // Act: read some, drop the connection, resume from the last id seen.
    let seen_first = first.take_messages(200, LONG).await;
    let last_seen = seen_first
        .last()
        .and_then(|e| e.id_number())
        .expect("an id");
    assert_eq!(first.last_event_id(), Some(last_seen.to_string().as_str()));
    drop(first);
    // Commits certainly missed, whatever the publishers' pace: the resume
    // has something to replay.
    let mut missed = Vec::new();
    for _ in 0..5 {
        missed.push((
            app.publish_one(&json!({"event_type": "commit"})).await,
            true,
        ));
    }
    let mut second = match via {
        ResumeVia::Header => {
            app.open_stream(
                "/sse/events?event_types=commit",
                &[("Last-Event-ID", &last_seen.to_string())],
            )
            .await
        }
        ResumeVia::Query => {
            app.open_stream(
                &format!("/sse/events?event_types=commit&last_event_id={last_seen}"),
                &[],
            )
            .await
        }
    };
    resumed.store(true, Ordering::Relaxed);
    let mut published = missed;
    for publisher in publishers {
        published.extend(publisher.await.expect("publisher task"));
    }

    // Assert: both connections together saw every commit once, in order.
    published.sort_unstable();
    let commits: Vec<i64> = published
        .iter()
        .filter(|(_, is_commit)| *is_commit)
        .map(|(id, _)| *id)
        .collect();
    let expected_second: Vec<i64> = commits
        .iter()
        .copied()
        .filter(|id| *id > last_seen)
        .collect();
    let seen_second = second.take_messages(expected_second.len(), LONG).await;
    let mut union: Vec<i64> = seen_first
        .iter()
        .map(|e| e.id_number().expect("an id"))
        .collect();
    union.extend(seen_second.iter().map(|e| e.id_number().expect("an id")));
    assert!(
        seen_first
            .iter()
            .chain(&seen_second)
            .all(|e| e.is("commit")),
        "a filtered-out type leaked"
    );
    assert_eq!(union.len(), commits.len());
    assert_eq!(union, commits, "resumed via {via:?} from {last_seen}");
    second.assert_quiet(Duration::from_millis(300)).await;
    // The replay was read where it should have been, and only there.
    let exposition = app.get("/metrics").await.text().await.expect("/metrics");
    let replayed = |source: ReplaySource| {
        labelled_sum(
            &exposition,
            "sse_replay_events_total",
            &[("source", source.label())],
        )
    };
    let other = match source {
        ReplaySource::Memory => ReplaySource::Store,
        ReplaySource::Store => ReplaySource::Memory,
    };
    assert!(replayed(source) > 0.0, "nothing replayed from {source:?}");
    assert_eq!(replayed(other), 0.0, "replayed from {other:?} too");
}

/// Publishes `count` commits (`{"n": 0..count}`) in one request; their ids.
async fn publish_commits(app: &TestApp, count: usize) -> Vec<i64> {
    let batch: Vec<_> = (0..count)
        .map(|n| json!({"event_type": "commit", "data": {"n": n}}))
        .collect();
    let ids: Vec<i64> = app
        .publish_ok(&json!(batch))
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ids.len(), count, "every commit stored");
    ids
}

#[actix_web::test]
async fn a_resume_with_the_last_event_id_header_while_publishing_has_no_gap_and_no_duplicate() {
    a_resume_while_publishing_is_gapless(ResumeVia::Header, ReplaySource::Memory).await;
}

#[actix_web::test]
async fn a_resume_with_the_last_event_id_query_while_publishing_has_no_gap_and_no_duplicate() {
    a_resume_while_publishing_is_gapless(ResumeVia::Query, ReplaySource::Memory).await;
}

#[actix_web::test]
async fn a_resume_read_from_the_store_while_publishing_has_no_gap_and_no_duplicate() {
    a_resume_while_publishing_is_gapless(ResumeVia::Header, ReplaySource::Store).await;
}

#[actix_web::test]
async fn a_resume_older_than_the_replay_cache_reads_the_store_and_one_inside_it_memory() {
    // Arrange: a cache of 50 events, 200 published: the first 150 are in
    // the store only.
    let app = spawn_app_with(|s| s.replay_cache_events = 50).await;
    let ids = publish_commits(&app, 200).await;

    // Act: one stream resumes before the cache, one inside it.
    let mut old = app
        .open_stream("/sse/events", &[("Last-Event-ID", &ids[19].to_string())])
        .await;
    let mut recent = app
        .open_stream("/sse/events", &[("Last-Event-ID", &ids[179].to_string())])
        .await;

    // Assert: each gets exactly what followed its resume point.
    let got_old: Vec<i64> = old
        .take_messages(180, LONG)
        .await
        .iter()
        .filter_map(|e| e.id_number())
        .collect();
    assert_eq!(got_old, ids[20..]);
    let got_recent: Vec<i64> = recent
        .take_messages(20, LONG)
        .await
        .iter()
        .filter_map(|e| e.id_number())
        .collect();
    assert_eq!(got_recent, ids[180..]);
    old.assert_quiet(Duration::from_millis(200)).await;
    recent.assert_quiet(Duration::from_millis(200)).await;
    let exposition = app.get("/metrics").await.text().await.expect("/metrics");
    assert_eq!(
        labelled_sum(
            &exposition,
            "sse_replay_events_total",
            &[("source", "store")]
        ),
        180.0
    );
    assert_eq!(
        labelled_sum(
            &exposition,
            "sse_replay_events_total",
            &[("source", "memory")]
        ),
        20.0
    );
}

#[actix_web::test]
async fn a_resume_from_zero_replays_everything_then_goes_live() {
    // Arrange
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            app.publish_one(&json!({"event_type": "commit", "data": {"n": n}}))
                .await,
        );
    }

    // Act
    let mut stream = app
        .open_stream("/sse/events", &[("Last-Event-ID", "0")])
        .await;
    let live = app.publish_one(&json!({"event_type": "commit"})).await;

    // Assert
    ids.push(live);
    let received: Vec<i64> = stream
        .take_messages(6, SHORT)
        .await
        .iter()
        .map(|e| e.id_number().expect("an id"))
        .collect();
    assert_eq!(received, ids);
    stream.assert_quiet(Duration::from_millis(200)).await;
}

#[actix_web::test]
async fn the_header_wins_over_the_query() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(app.publish_one(&json!({"event_type": "commit"})).await);
    }

    let mut stream = app
        .open_stream(
            &format!("/sse/events?last_event_id={}", ids[0]),
            &[("Last-Event-ID", &ids[2].to_string())],
        )
        .await;

    let event = stream.next_message(SHORT).await.expect("a replayed event");
    assert_eq!(event.id_number(), Some(ids[3]));
    stream.assert_quiet(Duration::from_millis(200)).await;

    // An empty header gives way to the query.
    let mut blanked = app
        .open_stream(
            &format!("/sse/events?last_event_id={}", ids[1]),
            &[("Last-Event-ID", "")],
        )
        .await;
    let replayed: Vec<Option<i64>> = blanked
        .take_messages(2, SHORT)
        .await
        .iter()
        .map(|e| e.id_number())
        .collect();
    assert_eq!(replayed, [Some(ids[2]), Some(ids[3])]);
}

#[actix_web::test]
async fn a_replay_respects_the_stream_filter() {
    let app = spawn_app().await;
    let mut expected = Vec::new();
    for (event_type, project) in [
        ("commit", "p1"),
        ("commit", "p2"),
        ("risk_alert", "p1"),
        ("commit", "p1"),
        ("file_change", "p1"),
    ] {
        let id = app
            .publish_one(&json!({"event_type": event_type, "project_id": project}))
            .await;
        if event_type == "commit" && project == "p1" {
            expected.push(id);
        }
    }
    app.publish_one(&json!({"event_type": "commit", "user_id": "mallory"}))
        .await;

    let mut stream = app
        .open_stream(
            "/sse/events?event_types=commit&project_id=p1",
            &[("Last-Event-ID", "0")],
        )
        .await;

    let received: Vec<i64> = stream
        .take_messages(2, SHORT)
        .await
        .iter()
        .map(|e| e.id_number().expect("an id"))
        .collect();
    assert_eq!(received, expected);
    stream.assert_quiet(Duration::from_millis(200)).await;
}

#[actix_web::test]
async fn a_resume_older_than_retention_first_receives_replay_truncated() {
    // Arrange: events kept for one second.
    let app = spawn_app_with(|s| s.retention = Duration::from_secs(1)).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.publish_one(&json!({"event_type": "commit"})).await);
    }
    let newest = ids[2];

    // Act: once retention has pruned them all, resume from before them.
    let (mut stream, truncated) = eventually(LONG, "retention to prune the events", || {
        let app = &app;
        async move {
            let mut stream = app
                .open_stream("/sse/events", &[("Last-Event-ID", "0")])
                .await;
            let first = stream.next_message(Duration::from_millis(300)).await?;
            let pruned_all = first.is("replay_truncated")
                && first.json()["oldest_available_id"].as_i64() == Some(newest + 1);
            pruned_all.then_some((stream, first))
        }
    })
    .await;

    // Assert
    assert_eq!(truncated.id, None);
    assert_eq!(truncated.json()["last_event_id"], 0);
    stream.assert_quiet(Duration::from_millis(200)).await;
    let live = app.publish_one(&json!({"event_type": "commit"})).await;
    assert!(
        live > newest,
        "ids are never reused after pruning: {live} <= {newest}"
    );
    let event = stream.next_message(SHORT).await.expect("the live event");
    assert_eq!(event.id_number(), Some(live));
    // A resume point at the pruned edge is not truncated.
    let mut at_edge = app
        .open_stream("/sse/events", &[("Last-Event-ID", &newest.to_string())])
        .await;
    let first = at_edge
        .next_message(SHORT)
        .await
        .expect("the live event replayed");
    assert_eq!(first.id_number(), Some(live), "{first:?}");
}

/// A finished task older than retention has lost its events, its end
/// with them: its streams still end as a finished task's do, with the end
/// its row keeps (`complete` and its result; `finish` then `[DONE]`),
/// rather than with the state alone (which left an `EventSource`, and
/// `/client.js`, reconnecting for good).
#[actix_web::test]
async fn a_finished_task_whose_events_retention_removed_still_ends() {
    // Arrange: a task completed, then all its events pruned.
    let app = spawn_app_with(|s| s.retention = Duration::from_secs(1)).await;
    let created = app.post_json("/tasks", &json!({"task_id": "old"})).await;
    assert_eq!(created.status().as_u16(), 201);
    let text = app
        .post_json("/tasks/old/text", &json!({"delta": "gone"}))
        .await;
    let text: Value = text.json().await.expect("a JSON answer");
    let text_id = text["ids"][0].as_i64().expect("the text event's id");
    app.post_json("/tasks/old/text", &json!({"delta": " too"}))
        .await;
    let done = app
        .post_json("/tasks/old/complete", &json!({"result": {"n": 1}}))
        .await;
    assert_eq!(done.status().as_u16(), 200);
    eventually(LONG, "retention to prune the task's events", || async {
        let mut probe = app.open_stream("/tasks/old/events", &[]).await;
        let first = probe.next_message(Duration::from_millis(300)).await?;
        first.is("replay_truncated").then_some(())
    })
    .await;

    // Act
    let mut stream = app.open_stream("/tasks/old/events", &[]).await;
    let events = stream.read_to_end(SHORT).await;
    let ui = app.get("/tasks/old/ui-message-stream").await;
    let ui = ui.text().await.expect("the UI message stream");

    // Assert
    let kinds: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(
        kinds,
        ["replay_truncated", "progress", "complete"],
        "{events:?}"
    );
    let end = events.last().unwrap();
    assert_eq!(end.json()["status"], "completed");
    assert_eq!(end.json()["result"], json!({"n": 1}));
    assert!(ui.contains(r#""type":"finish""#), "{ui}");
    assert!(ui.trim_end().ends_with("data: [DONE]"), "{ui}");

    // The end is kept with its id, so an EventSource reconnecting after it
    // is told there is nothing more (204) instead of being sent it again,
    // and one that resumes from before it (the text it missed pruned)
    // still gets it.
    let end_id = end.id_number().expect("the end keeps its id");
    assert!(end_id > text_id, "{events:?}");
    let past_end = app
        .stream_response(
            "/tasks/old/events",
            &[("Last-Event-ID", &end_id.to_string())],
        )
        .await;
    assert_eq!(past_end.status().as_u16(), 204);
    let mut missed_end = app
        .open_stream(
            "/tasks/old/events",
            &[("Last-Event-ID", &text_id.to_string())],
        )
        .await;
    let resumed = missed_end.read_to_end(SHORT).await;
    let kinds: Vec<&str> = resumed.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(
        kinds,
        ["replay_truncated", "progress", "complete"],
        "{resumed:?}"
    );
    assert_eq!(resumed.last().and_then(|e| e.id_number()), Some(end_id));
}

/// A task younger than retention has all its events, however much else
/// retention removed: its stream from the start says nothing of a gap.
#[actix_web::test]
async fn a_task_younger_than_retention_is_never_reported_truncated() {
    // Arrange: events kept for two seconds, all pruned, then a new task.
    let app = spawn_app_with(|s| s.retention = Duration::from_secs(2)).await;
    let old = app.publish_one(&json!({"event_type": "commit"})).await;
    eventually(LONG, "retention to prune the event", || async {
        let mut probe = app
            .open_stream("/sse/events", &[("Last-Event-ID", "0")])
            .await;
        let first = probe.next_message(Duration::from_millis(300)).await?;
        first.is("replay_truncated").then_some(())
    })
    .await;
    let created = app.post_json("/tasks", &json!({"task_id": "young"})).await;
    assert_eq!(created.status().as_u16(), 201);
    let text = app
        .post_json("/tasks/young/text", &json!({"delta": "all here"}))
        .await;
    assert_eq!(text.status().as_u16(), 202);

    // Act: its first viewer, and one resuming from before every id.
    for resume in [None, Some(old.to_string())] {
        let headers: Vec<(&str, &str)> = resume
            .as_deref()
            .map(|id| vec![("Last-Event-ID", id)])
            .unwrap_or_default();
        let mut stream = app.open_stream("/tasks/young/events", &headers).await;

        // Assert: the text, then the state; no word of truncation.
        let first = stream.next_message(SHORT).await.expect("the text");
        assert!(first.is("text"), "resume {resume:?}: {first:?}");
        assert_eq!(first.json()["delta"], "all here");
        let state = stream.next_message(SHORT).await.expect("the state");
        assert!(state.is("progress"), "resume {resume:?}: {state:?}");
        stream.assert_quiet(Duration::from_millis(200)).await;
    }
}

/// Retention spares an unfinished task's events: a generation that runs
/// longer than it keeps its whole text for a viewer who opens it later.
#[actix_web::test]
async fn a_generation_running_longer_than_retention_keeps_its_whole_text() {
    // Arrange: events kept for one second; a generation's first text, then
    // an event of no task, both pruned-old before the generation goes on.
    let app = spawn_app_with(|s| s.retention = Duration::from_secs(1)).await;
    let created = app.post_json("/tasks", &json!({"task_id": "long"})).await;
    assert_eq!(created.status().as_u16(), 201);
    let early = app
        .post_json("/tasks/long/text", &json!({"delta": "early "}))
        .await;
    assert_eq!(early.status().as_u16(), 202);
    let other = app.publish_one(&json!({"event_type": "commit"})).await;
    eventually(LONG, "retention to prune the other event", || async {
        let mut probe = app
            .open_stream("/sse/events", &[("Last-Event-ID", "0")])
            .await;
        let first = probe.next_message(Duration::from_millis(300)).await?;
        (first.is("replay_truncated") && first.json()["oldest_available_id"] == other + 1)
            .then_some(())
    })
    .await;
    let late = app
        .post_json("/tasks/long/text", &json!({"delta": "late"}))
        .await;
    assert_eq!(late.status().as_u16(), 202);

    // Act: a new viewer, and one resuming from before every id.
    for resume in [None, Some("0")] {
        let headers: Vec<(&str, &str)> = resume
            .map(|id| vec![("Last-Event-ID", id)])
            .unwrap_or_default();
        let mut stream = app.open_stream("/tasks/long/events", &headers).await;

        // Assert: the whole text, then the state; no word of truncation.
        let first = stream.next_message(SHORT).await.expect("the text");
        assert!(first.is("text"), "resume {resume:?}: {first:?}");
        assert_eq!(first.json()["delta"], "early late", "resume {resume:?}");
        let state = stream.next_message(SHORT).await.expect("the state");
        assert!(state.is("progress"), "resume {resume:?}: {state:?}");
        stream.assert_quiet(Duration::from_millis(200)).await;
    }
}

/// A resume point past every id the store gave (a store wiped or restored
/// from a backup since the client saw it) would filter out every live
/// event as already seen: the stream is told (`replay_reset`, whose `id:`
/// moves the client's resume point to 0) and replays what the store holds
/// from its start, then goes live.
#[actix_web::test]
async fn a_resume_point_past_the_stores_newest_id_is_reset_and_the_store_replayed() {
    // Arrange: a few events, and a task with text.
    let app = spawn_app().await;
    let mut commits = Vec::new();
    for _ in 0..3 {
        commits.push(app.publish_one(&json!({"event_type": "commit"})).await);
    }
    let created = app
        .post_json(
            "/tasks",
            &json!({"task_id": "restored", "stage": "writing"}),
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    // Running before its text: the text is then the store's newest event.
    let running = app
        .api_client
        .patch(app.url("/tasks/restored"))
        .json(&json!({"status": "running"}))
        .send()
        .await
        .expect("the PATCH is answered");
    assert_eq!(running.status().as_u16(), 200);
    let text = app
        .post_json("/tasks/restored/text", &json!({"delta": "before "}))
        .await;
    let text: serde_json::Value = text.json().await.expect("ids");
    let newest = text["ids"][0].as_i64().expect("an id");
    let ahead = (newest + 1000).to_string();

    // Act / Assert: an event stream replays the store from its start.
    let mut events = app
        .open_stream(
            "/sse/events?event_types=commit",
            &[("Last-Event-ID", &ahead)],
        )
        .await;
    let reset = events.next_message(SHORT).await.expect("the reset");
    assert!(reset.is("replay_reset"), "{reset:?}");
    assert_eq!(
        reset.id_number(),
        Some(0),
        "the new resume point: {reset:?}"
    );
    assert_eq!(reset.json()["last_event_id"], newest + 1000);
    assert_eq!(reset.json()["latest_id"], newest);
    let replayed: Vec<Option<i64>> = events
        .take_messages(3, SHORT)
        .await
        .iter()
        .map(|e| e.id_number())
        .collect();
    assert_eq!(
        replayed,
        commits.iter().map(|id| Some(*id)).collect::<Vec<_>>()
    );
    let live = app.publish_one(&json!({"event_type": "commit"})).await;
    let event = events.next_message(SHORT).await.expect("the live event");
    assert_eq!(event.id_number(), Some(live), "{event:?}");

    // A task stream resumes from the task's start: its whole text rolled up.
    let mut task = app
        .open_stream("/tasks/restored/events", &[("Last-Event-ID", &ahead)])
        .await;
    let reset = task.next_message(SHORT).await.expect("the reset");
    assert!(reset.is("replay_reset"), "{reset:?}");
    assert_eq!(reset.id_number(), Some(0), "{reset:?}");
    let text = task.next_message(SHORT).await.expect("the text");
    assert!(text.is("text"), "{text:?}");
    assert_eq!(text.json()["delta"], "before ");
    let state = task.next_message(SHORT).await.expect("the state");
    assert!(state.is("progress"), "{state:?}");
    let more = app
        .post_json("/tasks/restored/text", &json!({"delta": "and after"}))
        .await;
    assert_eq!(more.status().as_u16(), 202);
    let live = task.next_message(SHORT).await.expect("the live text");
    assert_eq!(live.json()["delta"], "and after", "{live:?}");

    // A resume point the store knows is never reset.
    let mut known = app
        .open_stream(
            "/sse/events?event_types=commit",
            &[("Last-Event-ID", &commits[1].to_string())],
        )
        .await;
    let first = known.next_message(SHORT).await.expect("the event after it");
    assert_eq!(first.id_number(), Some(commits[2]), "{first:?}");

    // A finished task too: reset and its whole text, not a 204 ("nothing
    // new"), which would leave the client with the text of another store.
    let done = app.post_json("/tasks/restored/complete", &json!({})).await;
    assert_eq!(done.status().as_u16(), 200);
    let completed = task.read_to_end(SHORT).await;
    let complete_id = completed
        .iter()
        .find(|e| e.is("complete"))
        .and_then(|e| e.id_number())
        .expect("the complete event, with its id");
    let ahead = (complete_id + 1000).to_string();
    let mut finished = app
        .open_stream("/tasks/restored/events", &[("Last-Event-ID", &ahead)])
        .await;
    let reset = finished.next_message(SHORT).await.expect("the reset");
    assert!(reset.is("replay_reset"), "{reset:?}");
    let rest = finished.read_to_end(SHORT).await;
    let text = rest.iter().find(|e| e.is("text")).expect("the text");
    assert_eq!(text.json()["delta"], "before and after", "{rest:?}");
    assert!(rest.iter().any(|e| e.is("complete")), "{rest:?}");
    // At the task's last id, nothing is new: 204.
    let response = app
        .stream_response(
            "/tasks/restored/events",
            &[("Last-Event-ID", &complete_id.to_string())],
        )
        .await;
    assert_eq!(response.status().as_u16(), 204);
}

/// A stored row that no longer decodes (edited by hand) is skipped: the
/// replay goes on past it, also when it sits in a full page.
#[actix_web::test]
async fn a_row_that_no_longer_decodes_is_skipped_and_the_replay_goes_on() {
    use diesel::RunQueryDsl;
    use sse_broker::config::DatabaseUrl;

    // Arrange: 600 events (more than one replay page), the 100th broken; the
    // replay cache off, or the resume would be served its intact copy.
    let app = spawn_app_with(|s| s.replay_cache_events = 0).await;
    let ids = publish_commits(&app, 600).await;
    let broken = ids[99];
    let DatabaseUrl::Sqlite { path } = &app.settings.database else {
        panic!("an SQLite broker");
    };
    let mut connection = crate::helpers::outside_sqlite(&path.to_string_lossy());
    diesel::sql_query(format!(
        "UPDATE events SET data = 'not json' WHERE id = {broken}"
    ))
    .execute(&mut connection)
    .expect("the row is edited");

    // Act
    let mut stream = app
        .open_stream("/sse/events", &[("Last-Event-ID", "0")])
        .await;
    let replayed = stream.take_messages(599, LONG).await;

    // Assert
    let expected: Vec<i64> = ids.into_iter().filter(|id| *id != broken).collect();
    let got: Vec<i64> = replayed.iter().filter_map(|e| e.id_number()).collect();
    assert_eq!(got, expected);
}

#[actix_web::test]
async fn more_resumes_at_once_than_replay_slots_all_get_everything_exactly() {
    // Arrange: 50 stored events, and more resuming streams than the
    // instance replays at once, so some wait for a slot.
    let app = spawn_app().await;
    let ids = publish_commits(&app, 50).await;
    let streams = sse_broker::stream::replay::REPLAYS_AT_ONCE + 44;

    // Act: every stream resumes from before the first event at once.
    let opened = futures_util::future::join_all(
        (0..streams).map(|_| app.open_stream("/sse/events", &[("Last-Event-ID", "0")])),
    )
    .await;
    let received =
        futures_util::future::join_all(opened.into_iter().map(|mut stream| async move {
            let got: Vec<i64> = stream
                .take_messages(50, LONG)
                .await
                .iter()
                .filter_map(|e| e.id_number())
                .collect();
            stream.assert_quiet(Duration::from_millis(100)).await;
            got
        }))
        .await;

    // Assert: every one of them got all 50, once, in order.
    assert_eq!(received.len(), streams);
    for got in received {
        assert_eq!(got, ids);
    }
}

#[actix_web::test]
async fn live_events_while_a_replayed_backlog_is_being_read_never_close_the_stream() {
    // Arrange: a backlog of 400 events of 8 KiB (more than the socket
    // buffers hold, less than the stream's queue), and a publisher that
    // keeps publishing while the resumed stream reads its backlog.
    let app = spawn_app_with(|s| s.max_body_bytes = 1 << 20).await;
    let pad = "x".repeat(8 * 1024);
    let mut ids = Vec::new();
    for _ in 0..8 {
        let batch: Vec<_> = (0..50)
            .map(|_| json!({"event_type": "commit", "data": {"pad": pad}}))
            .collect();
        ids.extend(app.publish_ok(&json!(batch)).await.into_iter().flatten());
    }
    let mut stream = app
        .open_stream("/sse/events", &[("Last-Event-ID", "0")])
        .await;
    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = {
        let (client, url, publishing) = (
            app.api_client.clone(),
            app.url("/sse/publish"),
            publishing.clone(),
        );
        actix_rt::spawn(async move {
            let mut live = Vec::new();
            while publishing.load(Ordering::Relaxed) {
                let answer: serde_json::Value = client
                    .post(&url)
                    .json(&json!({"event_type": "commit", "data": {"live": true}}))
                    .send()
                    .await
                    .expect("publish")
                    .json()
                    .await
                    .expect("publish answer");
                live.push(answer["ids"][0].as_i64().expect("an id"));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            live
        })
    };

    // Act: read the backlog and what was published meanwhile.
    let backlog = stream.take_messages(ids.len(), LONG).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    publishing.store(false, Ordering::Relaxed);
    let live = publisher.await.expect("publisher");
    let rest = stream.take_messages(live.len(), LONG).await;

    // Assert: one unbroken stream with every event once, in order; none
    // of it closed as slow.
    let got: Vec<i64> = backlog
        .iter()
        .chain(&rest)
        .filter_map(|e| e.id_number())
        .collect();
    ids.extend(&live);
    assert_eq!(got, ids);
    stream.assert_quiet(Duration::from_millis(200)).await;
    let exposition = app.get("/metrics").await.text().await.expect("/metrics");
    assert_eq!(
        labelled_sum(
            &exposition,
            "sse_connections_closed_total",
            &[("reason", "slow")]
        ),
        0.0
    );
}
