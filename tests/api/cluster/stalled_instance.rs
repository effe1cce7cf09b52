//! One instance stalls, or loses the database without a FIN, inside a write
//! transaction: it holds the commit-order lock every instance's commits
//! take. The database must end that session within the store timeout, so
//! the other instances publish again while it is still stalled.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::json;
use sse_broker::config::DatabaseUrl;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::harness::TestDb;
use crate::helpers::{TestApp, eventually, spawn_app_with};

const STORE_TIMEOUT: Duration = Duration::from_millis(1000);

/// A TCP relay to PostgreSQL that can be frozen: while frozen it moves no
/// byte either way and closes nothing, as a network that lost its route.
struct FreezableRelay {
    port: u16,
    frozen: Arc<AtomicBool>,
}

impl FreezableRelay {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let frozen = Arc::new(AtomicBool::new(false));
        let relay_frozen = frozen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, relay_frozen.clone()));
                tokio::spawn(pump(server_read, client_write, relay_frozen.clone()));
            }
        });
        Self { port, frozen }
    }

    fn set_frozen(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding what it read while the relay is frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let read =
            match tokio::time::timeout(Duration::from_millis(20), from.read(&mut buffer)).await {
                Err(_) => continue,
                Ok(Ok(0) | Err(_)) => return,
                Ok(Ok(read)) => read,
            };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// Sessions on `db` that hold an advisory lock while idle in a transaction.
async fn idle_lock_holders(admin: &tokio_postgres::Client, db: &TestDb) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted \
             AND a.state = 'idle in transaction' AND a.datname = $1",
            &[&db.name],
        )
        .await
        .expect("pg_locks")
        .get(0)
}

fn postgres_host_port(url: &str) -> String {
    let after_at = url.rsplit('@').next().unwrap_or(url);
    let host = after_at.split('/').next().unwrap_or(after_at);
    let host = host.trim_start_matches("postgres://");
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

async fn publishes(app: &TestApp) -> bool {
    let event = json!({"event_type": "system_status", "data": {"from": "healthy"}});
    app.publish(&event).await.status().is_success()
}

#[actix_web::test]
async fn an_instance_stalled_inside_a_commit_does_not_stop_the_others_publishing() {
    // Arrange: instance "stalled" reaches the database through a relay
    // that can be frozen; instance "healthy" directly. Both on one database.
    let db = TestDb::create().await;
    let relay = FreezableRelay::start(postgres_host_port(&db.url())).await;
    let url = db.url();
    let (scheme_user, _) = url.rsplit_once('@').expect("a user in the URL");
    let through_relay = format!("{scheme_user}@127.0.0.1:{}/{}", relay.port, db.name);
    let stalled = spawn_app_with(|s| {
        s.database = DatabaseUrl::Postgres {
            url: through_relay.into(),
        };
        s.store_timeout = STORE_TIMEOUT;
    })
    .await;
    let healthy = spawn_app_with(|s| {
        s.database = db.database_url();
        s.store_timeout = STORE_TIMEOUT;
    })
    .await;
    let (admin, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("an admin session");
    tokio::spawn(connection);
    let stalled = std::rc::Rc::new(stalled);
    let load = {
        let stalled = stalled.clone();
        actix_rt::spawn(async move {
            let event = json!({"event_type": "system_status", "data": {"from": "stalled"}});
            loop {
                let requests = (0..4).map(|_| stalled.publish(&event));
                futures_util::future::join_all(requests).await;
            }
        })
    };

    // Act: freeze the relay until it catches the stalled instance inside a
    // commit, holding the commit-order lock.
    let mut caught = false;
    for _ in 0..100 {
        relay.set_frozen(true);
        tokio::time::sleep(Duration::from_millis(150)).await;
        if idle_lock_holders(&admin, &db).await > 0 {
            caught = true;
            break;
        }
        relay.set_frozen(false);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(caught, "the relay never froze a commit under way");

    // Assert: while the stalled instance stays cut off, the database ends
    // its session, and the healthy instance publishes again.
    eventually(
        STORE_TIMEOUT * 4 + Duration::from_secs(2),
        "the healthy instance to publish past the stalled one's lock",
        || async { publishes(&healthy).await.then_some(()) },
    )
    .await;
    assert_eq!(idle_lock_holders(&admin, &db).await, 0);

    // And once the network is back, the stalled one publishes again too.
    relay.set_frozen(false);
    load.abort();
    eventually(
        Duration::from_secs(10),
        "the stalled instance to recover",
        || async { publishes(&stalled).await.then_some(()) },
    )
    .await;
}
