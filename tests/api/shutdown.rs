//! Graceful shutdown: every open stream receives a final `event: shutdown`
//! with a `retry:` hint and ends, stored events survive, and the real binary
//! exits 0 on SIGTERM.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::helpers::{
    BrokerProcess, EventStream, LONG, SHORT, StreamEnd, raw_http::open_until, spawn_app,
};

#[actix_web::test]
async fn a_graceful_shutdown_ends_every_stream_with_a_shutdown_event() {
    // Arrange
    let mut app = spawn_app().await;
    let mut streams = vec![
        app.open_stream("/sse/events", &[]).await,
        app.open_stream("/sse/events?event_types=commit", &[]).await,
    ];
    let id = app.publish_one(&json!({"event_type": "commit"})).await;

    // Act
    app.stop().await;

    // Assert
    for stream in &mut streams {
        let events = stream.read_to_end(SHORT).await;
        let (last, before) = events.split_last().expect("at least the shutdown frame");
        assert_eq!(last.event.as_deref(), Some("shutdown"), "{events:?}");
        assert_eq!(last.retry.as_deref(), Some("1000"), "{last:?}");
        assert_eq!(last.id, None);
        assert!(last.json().is_object());
        let ids: Vec<i64> = before.iter().filter_map(|e| e.id_number()).collect();
        assert_eq!(ids, [id]);
        assert_eq!(
            stream.end(),
            Some(&StreamEnd::Finished),
            "the stream ends cleanly"
        );
    }
    let refused = app.api_client.get(app.url("/health")).send().await;
    assert!(
        refused.is_err(),
        "the stopped broker still answers: {refused:?}"
    );
}

/// A kept-alive connection with nothing in flight is closed as soon as the
/// drain starts. Both the keep-alive timeout and the shutdown timeout are
/// 5 s, so only the drain signal closes it within the bound below.
#[actix_web::test]
async fn an_idle_kept_alive_connection_is_closed_as_the_drain_starts() {
    let mut app = spawn_app().await;
    let (mut idle, answer) = open_until(
        &app,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        "\"status\"",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut buffer = [0u8; 4096];

    let closed = async {
        loop {
            match idle.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let (_, closed) = tokio::join!(
        app.stop(),
        tokio::time::timeout(Duration::from_secs(3), closed)
    );
    assert!(
        closed.is_ok(),
        "the idle connection stayed open through the drain"
    );
}

async fn publish(client: &reqwest::Client, broker: &BrokerProcess, body: Value) -> i64 {
    let response = client
        .post(format!("{}/sse/publish", broker.address))
        .json(&body)
        .send()
        .await
        .expect("publish sent");
    assert_eq!(response.status().as_u16(), 202);
    let answer: Value = response.json().await.expect("JSON");
    answer["ids"][0].as_i64().expect("an id")
}

async fn open_stream(
    client: &reqwest::Client,
    broker: &BrokerProcess,
    last_event_id: Option<&str>,
) -> EventStream {
    let mut request = client.get(format!("{}/sse/events", broker.address));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.expect("stream opened");
    assert_eq!(response.status().as_u16(), 200);
    let mut stream = EventStream::new(response);
    let connected = stream.next_event(SHORT).await.expect("connected");
    assert!(connected.is("connected"), "{connected:?}");
    stream
}

#[actix_web::test]
async fn sigterm_sends_shutdown_to_streams_keeps_stored_events_and_exits_zero() {
    // Arrange: the real binary with an open stream.
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let database = data_dir.path().join("x.db");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let mut broker = BrokerProcess::spawn(&database, data_dir.path().join("first.log"));
    broker.wait_until_ready(&client).await;
    let mut stream = open_stream(&client, &broker, None).await;
    let first = publish(
        &client,
        &broker,
        json!({"event_type": "commit", "data": {"n": 1}}),
    )
    .await;
    let live = stream.next_message(SHORT).await.expect("the live event");
    assert_eq!(live.id_number(), Some(first));

    // Act: publish, then SIGTERM right away.
    let just_before = publish(
        &client,
        &broker,
        json!({"event_type": "commit", "data": {"n": 2}}),
    )
    .await;
    broker.sigterm();

    // Assert: the stream gets `shutdown` and ends; the process exits 0.
    let events = stream.read_to_end(LONG).await;
    let (last, _) = events.split_last().unwrap_or_else(|| {
        panic!(
            "no frame before the end ({:?}); logs:\n{}",
            stream.end(),
            broker.logs()
        )
    });
    assert!(
        last.is("shutdown"),
        "last frame {last:?}; logs:\n{}",
        broker.logs()
    );
    assert_eq!(last.retry.as_deref(), Some("1000"));
    assert_eq!(stream.end(), Some(&StreamEnd::Finished));
    let status = broker.wait_for_exit(LONG).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; logs:\n{}",
        broker.logs()
    );

    // The event published just before is stored: a new broker on the same
    // file replays both.
    let mut restarted = BrokerProcess::spawn(&database, data_dir.path().join("second.log"));
    restarted.wait_until_ready(&client).await;
    let mut resumed = open_stream(&client, &restarted, Some("0")).await;
    let replayed: Vec<i64> = resumed
        .take_messages(2, SHORT)
        .await
        .iter()
        .map(|e| e.id_number().expect("an id"))
        .collect();
    assert_eq!(replayed, [first, just_before]);
    restarted.sigterm();
    let tail = resumed.read_to_end(LONG).await;
    assert!(
        tail.last().is_some_and(|e| e.is("shutdown")),
        "the resumed stream ended without shutdown: {tail:?}"
    );
    let status = restarted.wait_for_exit(LONG).await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", restarted.logs());
}

#[actix_web::test]
async fn every_publish_answered_with_an_id_is_delivered_before_the_shutdown_frame() {
    // Arrange: a stream, and publishers that keep publishing through the
    // drain until the broker refuses them.
    let mut app = spawn_app().await;
    let mut stream = app.open_stream("/sse/events", &[]).await;
    let publishers: Vec<_> = (0..8)
        .map(|publisher| {
            let client = app.api_client.clone();
            let url = app.url("/sse/publish");
            actix_rt::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    let body =
                        json!({"event_type": "commit", "data": {"publisher": publisher, "n": n}});
                    let Ok(response) = client.post(&url).json(&body).send().await else {
                        break;
                    };
                    if response.status().as_u16() != 202 {
                        break;
                    }
                    let answer: Value = response.json().await.expect("a JSON answer");
                    acknowledged.push(answer["ids"][0].as_i64().expect("an id"));
                }
                acknowledged
            })
        })
        .collect();
    // Let the publishers get going.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Act
    app.stop().await;

    // Assert
    let mut acknowledged = Vec::new();
    for publisher in publishers {
        acknowledged.extend(publisher.await.expect("a publisher finished"));
    }
    assert!(
        acknowledged.len() > 8,
        "the publishers got going: {acknowledged:?}"
    );
    let events = stream.read_to_end(LONG).await;
    let (last, before) = events.split_last().expect("at least the shutdown frame");
    assert!(last.is("shutdown"), "the last frame is {last:?}");
    let delivered: std::collections::BTreeSet<i64> =
        before.iter().filter_map(|e| e.id_number()).collect();
    let missing: Vec<i64> = acknowledged
        .iter()
        .copied()
        .filter(|id| !delivered.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events came after the goodbye: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
}

/// Ctrl-C (SIGINT) drains as SIGTERM does, and a task's stream gets the
/// same goodbye as an event stream: its viewer reconnects and resumes.
#[actix_web::test]
async fn ctrl_c_sends_shutdown_to_event_and_task_streams_and_exits_zero() {
    // Arrange: the real binary, an event stream and a task's stream.
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let mut broker = BrokerProcess::spawn(
        &data_dir.path().join("x.db"),
        data_dir.path().join("broker.log"),
    );
    broker.wait_until_ready(&client).await;
    let created = client
        .post(format!("{}/tasks", broker.address))
        .json(&json!({"task_id": "interrupted"}))
        .send()
        .await
        .expect("task created");
    assert_eq!(created.status().as_u16(), 201);
    let mut events = open_stream(&client, &broker, None).await;
    let response = client
        .get(format!("{}/tasks/interrupted/events", broker.address))
        .send()
        .await
        .expect("task stream opened");
    assert_eq!(response.status().as_u16(), 200);
    let mut task = EventStream::new(response);
    assert!(
        task.next_event(SHORT)
            .await
            .expect("connected")
            .is("connected")
    );

    // Act
    broker.signal("INT");

    // Assert
    for (what, stream) in [("event stream", &mut events), ("task stream", &mut task)] {
        let frames = stream.read_to_end(LONG).await;
        let last = frames
            .last()
            .unwrap_or_else(|| panic!("{what}: no frame before the end; logs:\n{}", broker.logs()));
        assert!(last.is("shutdown"), "{what}: last frame {last:?}");
        assert_eq!(last.retry.as_deref(), Some("1000"), "{what}");
        assert_eq!(stream.end(), Some(&StreamEnd::Finished), "{what}");
    }
    let status = broker.wait_for_exit(LONG).await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", broker.logs());
}

/// A drain waits up to its timeout for requests in flight; an operator
/// who presses Ctrl-C again does not wait: the process ends at once with
/// the shell's code for the signal, saying why.
#[actix_web::test]
async fn a_second_signal_during_the_drain_exits_at_once() {
    // Arrange: the real binary with a request whose body never finishes,
    // which keeps the drain waiting.
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let mut broker = BrokerProcess::spawn(
        &data_dir.path().join("x.db"),
        data_dir.path().join("broker.log"),
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    broker.wait_until_ready(&client).await;
    let mut in_flight = tokio::net::TcpStream::connect(("127.0.0.1", broker.port()))
        .await
        .expect("connected");
    tokio::io::AsyncWriteExt::write_all(
        &mut in_flight,
        b"POST /sse/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"event_type\":",
    )
    .await
    .expect("half a request sent");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Act: SIGTERM starts the drain, which the request holds up.
    broker.signal("TERM");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        broker.exited().is_none(),
        "the drain did not wait for the request in flight; logs:\n{}",
        broker.logs()
    );
    broker.signal("INT");

    // Assert: gone well within the drain's 5 s timeout.
    let status = broker.wait_for_exit(Duration::from_secs(2)).await;
    assert_eq!(status.code(), Some(130), "logs:\n{}", broker.logs());
    let logs = broker.logs();
    assert!(
        logs.contains("second signal during the drain") && logs.contains("SIGINT"),
        "{logs}"
    );
}
