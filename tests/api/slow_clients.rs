//! A slow client never slows others: when its queue is full the broker
//! closes that stream, counts it, and every other stream keeps receiving.
//!
//! The slow client is real: a stream whose response body the test never
//! polls, so the kernel socket buffers fill, then the broker's queue.

use serde_json::json;

use crate::helpers::{LONG, SHORT, StreamEnd, TestApp, eventually, spawn_app_with};

/// Enough to fill the loopback socket buffers (a few MiB) many times over;
/// the test stops publishing soon after the slow stream is closed.
const MAX_EVENTS: usize = 1500;
const PAD_BYTES: usize = 64 * 1024;

#[actix_web::test]
async fn a_slow_client_is_closed_and_counted_while_a_healthy_stream_keeps_receiving() {
    // Arrange: a small queue, large events, one healthy reader, one stream
    // nobody reads after its first frame.
    let app = spawn_app_with(|s| {
        s.queue_capacity = 8;
        s.max_body_bytes = 256 * 1024;
    })
    .await;
    let mut healthy = app.open_stream("/sse/events", &[]).await;
    let mut slow = app.open_stream("/sse/events", &[]).await;
    let reader = actix_rt::spawn(async move {
        let mut received = Vec::new();
        loop {
            let event = healthy.next_message(LONG).await.unwrap_or_else(|| {
                panic!("the healthy stream stalled or ended: {:?}", healthy.end())
            });
            if event.is("system_status") {
                return received;
            }
            let seq = event.json()["seq"].as_u64().expect("seq");
            received.push((event.id_number().expect("an id"), seq));
        }
    });
    let pad = "x".repeat(PAD_BYTES);

    // Act: publish until the broker gives up on the slow stream, then some more.
    let mut published = Vec::new();
    let mut closed_at = None;
    while published.len() < MAX_EVENTS {
        let seq = published.len() as u64;
        let id = app
            .publish_one(&json!({"event_type": "commit", "data": {"seq": seq, "pad": pad}}))
            .await;
        published.push((id, seq));
        if closed_at.is_none()
            && seq % 16 == 15
            && app.stats().await["connections_closed_slow"].as_u64() >= Some(1)
        {
            closed_at = Some(published.len());
        }
        if closed_at.is_some_and(|at| published.len() >= at + 20) {
            break;
        }
    }
    let closed_at = closed_at.unwrap_or_else(|| {
        panic!("the slow stream was not closed after {MAX_EVENTS} events of {PAD_BYTES} bytes")
    });
    app.publish_one(&json!({"event_type": "system_status", "data": {"done": true}}))
        .await;

    // Assert: the healthy stream saw everything, in order.
    let received = tokio::time::timeout(LONG, reader)
        .await
        .expect("the healthy reader finished")
        .expect("the healthy reader did not panic");
    assert_eq!(
        received.len(),
        published.len(),
        "closed after {closed_at} events"
    );
    assert_eq!(received, published);

    // The slow stream got a gapless prefix, then was cut off.
    let slow_events = slow.read_to_end(LONG).await;
    let slow_seqs: Vec<u64> = slow_events
        .iter()
        .map(|e| e.json()["seq"].as_u64().expect("seq"))
        .collect();
    let prefix: Vec<u64> = (0..slow_seqs.len() as u64).collect();
    assert_eq!(
        slow_seqs, prefix,
        "the slow stream skipped events before its close"
    );
    assert!(
        slow_seqs.len() < published.len(),
        "the slow stream was not cut off"
    );
    assert!(
        matches!(slow.end(), Some(StreamEnd::Broken(_))),
        "a stream closed as slow ends abruptly: {:?}",
        slow.end()
    );

    // Counted once as slow; the healthy stream, dropped by its reader, is
    // gone too.
    let stats = eventually(SHORT, "the slow stream to be unregistered", || {
        let app = &app;
        async move {
            let stats = app.stats().await;
            (stats["active_connections"] == 0).then_some(stats)
        }
    })
    .await;
    assert_eq!(stats["connections_closed_slow"], 1, "{stats}");
    assert_eq!(stats["closed_by_reason"]["slow"], 1, "{stats}");
    assert!(stats["events_dropped"].as_u64() >= Some(1), "{stats}");
}

/// A client that sends its request for `/sse/events` and then never reads,
/// with a small receive buffer so that the broker's side fills quickly.
/// Returns the connection and its local port, once the stream is open.
async fn stalled_client(app: &TestApp) -> (tokio::net::TcpStream, u16) {
    stalled_client_of(app, "/sse/events", "").await
}

/// [`stalled_client`] of `path` whose request carries `headers` (each line
/// ending in CRLF).
async fn stalled_client_of(
    app: &TestApp,
    path: &str,
    headers: &str,
) -> (tokio::net::TcpStream, u16) {
    let open_before = app.stats().await["active_connections"]
        .as_u64()
        .unwrap_or_default();
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(8 * 1024).expect("SO_RCVBUF");
    let mut client = socket
        .connect(([127, 0, 0, 1], app.port).into())
        .await
        .expect("connected");
    let port = client.local_addr().expect("a local address").port();
    let request = format!("GET {path} HTTP/1.1\r\nHost: broker\r\n{headers}\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut client, request.as_bytes())
        .await
        .expect("request sent");
    eventually(SHORT, "the stream to open", || async move {
        (app.stats().await["active_connections"].as_u64() > Some(open_before)).then_some(())
    })
    .await;
    (client, port)
}

/// The broker's socket whose local port is `server_port` and whose peer is
/// `client_port`, read from the kernel's socket table (`/proc/net/tcp`):
/// `Some(bytes it holds unsent)` while it exists.
fn server_socket(server_port: u16, client_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 4
            && port(fields[1]) == Some(server_port)
            && port(fields[2]) == Some(client_port)
        {
            let (unsent, _) = fields[4].split_once(':')?;
            u64::from_str_radix(unsent, 16).ok()
        } else {
            None
        }
    })
}

#[actix_web::test]
async fn a_stream_closed_as_slow_releases_its_socket_at_once() {
    // Arrange
    let app = spawn_app_with(|s| {
        s.queue_capacity = 8;
        s.max_body_bytes = 256 * 1024;
    })
    .await;
    let (client, client_port) = stalled_client(&app).await;
    let pad = "x".repeat(PAD_BYTES);

    // Act: publish until the broker closes the stream as slow.
    let mut published = 0;
    loop {
        app.publish_one(&json!({"event_type": "commit", "data": {"pad": pad}}))
            .await;
        published += 1;
        if published % 8 == 0 && app.stats().await["connections_closed_slow"] == 1 {
            break;
        }
        assert!(
            published < MAX_EVENTS,
            "the stream was not closed as slow after {published} events"
        );
    }

    // Assert: the broker's end of the connection is gone at once, although
    // the client is still connected and has not read a byte.
    eventually(
        SHORT,
        "the broker to release the slow stream's socket",
        || async move { server_socket(app.port, client_port).is_none().then_some(()) },
    )
    .await;
    drop(client);
}

#[actix_web::test]
async fn a_reader_that_stops_is_closed_before_megabytes_pile_up_for_it() {
    // Arrange: small events, as an application would send.
    let app = spawn_app_with(|s| {
        s.queue_capacity = 64;
        s.max_body_bytes = 256 * 1024;
    })
    .await;
    let (client, client_port) = stalled_client(&app).await;
    let batch: Vec<_> = (0..100)
        .map(|n| json!({"event_type": "commit", "data": {"n": n, "pad": "y".repeat(900)}}))
        .collect();
    let batch = json!(batch);

    // Act: publish 100 KB at a time until the broker closes the stream.
    let mut published_bytes = 0usize;
    let mut largest_send_queue = 0;
    while app.stats().await["connections_closed_slow"] != 1 {
        assert!(
            published_bytes < 64 << 20,
            "not closed after {published_bytes} bytes"
        );
        app.publish_ok(&batch).await;
        published_bytes += 100 * 1000;
        if let Some(queued) = server_socket(app.port, client_port) {
            largest_send_queue = largest_send_queue.max(queued);
        }
    }

    // Assert: the kernel held little for it, and it was found early.
    assert!(
        largest_send_queue <= 256 * 1024,
        "the kernel queued {largest_send_queue} bytes for a client that reads nothing"
    );
    assert!(
        published_bytes <= 1 << 20,
        "{published_bytes} bytes went out before the stalled reader was noticed"
    );
    drop(client);
}

/// A resuming stream whose client reads nothing once held its replay (a
/// store page of up to 500 events, a replay slot of 64, its queued frames)
/// until the stale check, minutes later: 100 such streams of one user held
/// gigabytes. It is now closed as slow once it has taken none of its
/// replay for `REPLAY_STALL` (15 s), and its socket released.
#[actix_web::test]
async fn a_resuming_stream_whose_client_reads_none_of_its_replay_is_closed_as_slow() {
    // Arrange: 18 MB stored, far more than the sockets' buffers take; the
    // replay reads the store (no recently routed frames).
    let app = spawn_app_with(|s| {
        s.max_body_bytes = 256 * 1024;
        s.replay_cache_events = 0;
    })
    .await;
    let pad = "r".repeat(60_000);
    for batch in 0..75 {
        let events: Vec<_> = (0..4)
            .map(|n| json!({"event_type": "commit", "data": {"n": batch * 4 + n, "pad": pad}}))
            .collect();
        app.publish_ok(&json!(events)).await;
    }

    // Act: resume from the start and read nothing.
    let started = std::time::Instant::now();
    let (client, client_port) =
        stalled_client_of(&app, "/sse/events", "Last-Event-ID: 0\r\n").await;

    // Assert: closed as slow after the stall allowance, not left open.
    let stats = eventually(
        std::time::Duration::from_secs(40),
        "the stalled replay to be closed",
        || {
            let app = &app;
            async move {
                let stats = app.stats().await;
                (stats["active_connections"] == 0).then_some(stats)
            }
        },
    )
    .await;
    let waited = started.elapsed();
    assert_eq!(stats["closed_by_reason"]["slow"], 1, "{stats}");
    assert!(
        waited >= std::time::Duration::from_secs(14),
        "closed after {waited:?}: a replay the client reads at all is not slow"
    );
    eventually(SHORT, "the broker to release the socket", || async move {
        server_socket(app.port, client_port).is_none().then_some(())
    })
    .await;
    drop(client);
}

/// A task's stream rolls the text a viewer missed into one frame: 3 MB
/// here (one part of the UI message stream). A viewer that reads none of
/// it once left the whole frame in actix's write buffer until the stale
/// check (5 minutes). The frame now
/// goes out in pieces, and a client that takes none for 15 s is closed as
/// slow at its next heartbeat; a client that reads gets the text whole.
#[actix_web::test]
async fn a_task_viewer_that_reads_none_of_its_rolled_up_text_is_closed_as_slow() {
    let app = spawn_app_with(|s| {
        s.max_body_bytes = 256 * 1024;
        s.heartbeat = std::time::Duration::from_secs(1);
    })
    .await;
    let created = app.post_json("/tasks", &json!({"task_id": "big"})).await;
    assert_eq!(created.status().as_u16(), 201);
    let piece: String = (0..60_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    for _ in 0..50 {
        let written = app
            .post_json("/tasks/big/text", &json!({ "delta": piece }))
            .await;
        assert_eq!(written.status().as_u16(), 202);
    }

    let started = std::time::Instant::now();
    let (client, client_port) = stalled_client_of(&app, "/tasks/big/events", "").await;
    let (ui_client, ui_port) = stalled_client_of(&app, "/tasks/big/ui-message-stream", "").await;
    let mut reader = app.open_stream("/tasks/big/events", &[]).await;
    let text = reader.next_message(LONG).await.expect("the rolled-up text");
    assert!(text.is("text"), "{text:?}");
    assert_eq!(
        text.json()["delta"].as_str().map(str::len),
        Some(50 * piece.len()),
        "the reader's text is whole"
    );
    let ui = app
        .stream_response("/tasks/big/ui-message-stream", &[])
        .await;
    assert_eq!(ui.status().as_u16(), 200);
    let mut ui_reader = crate::helpers::EventStream::new(ui);
    loop {
        let part = ui_reader.next_event(LONG).await.expect("a part").json();
        if part["type"] == "text-delta" {
            assert_eq!(
                part["delta"].as_str().map(str::len),
                Some(50 * piece.len()),
                "the UI message stream's reader gets the text whole, in pieces"
            );
            break;
        }
    }

    let stats = eventually(
        std::time::Duration::from_secs(40),
        "the stalled viewer to be closed",
        || {
            let app = &app;
            async move {
                let stats = app.stats().await;
                (stats["closed_by_reason"]["slow"] == 2).then_some(stats)
            }
        },
    )
    .await;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(14),
        "closed after {:?}: {stats}",
        started.elapsed()
    );
    assert_eq!(stats["active_connections"], 2, "the readers stay: {stats}");
    eventually(SHORT, "the broker to release the sockets", || async move {
        (server_socket(app.port, client_port).is_none()
            && server_socket(app.port, ui_port).is_none())
        .then_some(())
    })
    .await;
    drop((client, ui_client));
}
