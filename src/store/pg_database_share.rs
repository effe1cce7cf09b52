//! Who else serves this PostgreSQL database. An instance routes its own
//! commits to its streams, and, in cluster mode, the others' through Redis;
//! without Redis it never learns of another's events, while the ids are
//! shared. Two unclustered brokers on one database would each miss the
//! other's events live, and a client's `Last-Event-ID` would then skip
//! them for good (as two on one SQLite file would, which `InstanceLock`
//! refuses).
//!
//! So `serve` holds a session-level advisory lock on a connection of its
//! own: exclusive without Redis, shared in cluster mode (a cluster's
//! instances share the database by design). One that cannot take it says
//! so, WARN, and keeps trying; it does not refuse to start, as the SQLite
//! lock does, because a rolling update starts the new process while the
//! old one still drains. The lock goes with its session: the watch takes
//! it again after the database dropped the connection.

use std::time::Duration;

use diesel::{QueryableByName, sql_query, sql_types::Bool};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};

/// The lock's key: "SSEBROKR" in ASCII.
const LOCK_KEY: i64 = 0x5353_4542_524F_4B52;
/// How soon a refused lock is asked for again, or a session opened again.
const RETRY: Duration = Duration::from_secs(5);
/// How often a held lock's session is checked to be alive: well within
/// `RETRY`, so a holder whose session the database dropped takes its lock
/// again (at once) before a waiting broker's next try, which would
/// otherwise take it and say it had the database to itself.
const CHECK: Duration = Duration::from_secs(1);

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Bool)]
    taken: bool,
}

/// Watches the database's share for as long as the returned task runs.
pub fn watch(url: SecretString, clustered: bool) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut refused = false;
        loop {
            let Ok(mut session) = AsyncPgConnection::establish(url.expose_secret()).await else {
                // The store's own health reports an unreachable database.
                actix_rt::time::sleep(RETRY).await;
                continue;
            };
            loop {
                match take(&mut session, clustered).await {
                    Ok(true) => {
                        if std::mem::take(&mut refused) {
                            tracing::info!("no other broker without Redis holds this database now");
                        }
                        // Until the session is lost; then a new one at once,
                        // its holder ahead of any waiting broker's next try.
                        let _lost = hold(&mut session).await;
                        break;
                    }
                    Ok(false) => {
                        if !refused {
                            refused = true;
                            tracing::warn!(clustered, "{}", refusal(clustered));
                        }
                        actix_rt::time::sleep(RETRY).await;
                    }
                    Err(_) => {
                        actix_rt::time::sleep(RETRY).await;
                        break;
                    }
                }
            }
        }
    })
}

fn refusal(clustered: bool) -> &'static str {
    if clustered {
        "a broker without Redis serves this database: it and this cluster each route only their \
         own events, and clients' resumes skip the others' (give it --redis-url and this \
         cluster's --cluster-name, or stop it)"
    } else {
        "another broker serves this database (without Redis, or as a cluster): each routes only \
         its own events, and clients' resumes skip the other's. Several instances need \
         --redis-url and one --cluster-name; during a rolling update this passes once the old \
         process has stopped"
    }
}

async fn take(
    session: &mut AsyncPgConnection,
    clustered: bool,
) -> Result<bool, diesel::result::Error> {
    let call = if clustered {
        "SELECT pg_try_advisory_lock_shared($1) AS taken"
    } else {
        "SELECT pg_try_advisory_lock($1) AS taken"
    };
    let taken: Taken = sql_query(call)
        .bind::<diesel::sql_types::BigInt, _>(LOCK_KEY)
        .get_result(session)
        .await?;
    Ok(taken.taken)
}

/// Keeps the session (and so the lock) until the database drops it.
async fn hold(session: &mut AsyncPgConnection) -> Result<(), diesel::result::Error> {
    loop {
        actix_rt::time::sleep(CHECK).await;
        sql_query("SELECT true AS taken")
            .get_result::<Taken>(session)
            .await?;
    }
}
