//! Stream tickets: a short-lived, single-use stand-in for a token in a
//! stream's URL.
//!
//! `EventSource` cannot send headers, so a token ends up in `?access_token=`
//! and from there in proxy logs and browser history, valid until it expires.
//! A ticket is worth one stream open within `--ticket-ttl-secs` (30 s): the
//! page fetches one with its token in a header (`POST /sse/tickets`) and
//! opens the stream with `?ticket=`. A ticket carries what its token did
//! (subject, scopes, projects, expiry); the stream it opens lives until the
//! token's expiry, as if opened with the token.
//!
//! Single use across a cluster: with Redis the ticket is a key with the
//! ticket's lifetime, redeemed with `GETDEL`, so exactly one instance
//! anywhere gets it. Without Redis the instance keeps its tickets in memory.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use redis::{AsyncCommands, aio::ConnectionManager};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::{AuthError, Principal, Scope, unix_now};
use crate::domain::{ProjectAccess, UserId};

/// Outstanding tickets one instance holds in memory before it prunes the
/// expired ones; past twice that it refuses new ones (a subscriber minting
/// tickets in a loop must not exhaust memory).
const PRUNE_AT: usize = 50_000;

/// A ticket as handed to the client.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedTicket {
    /// Opaque; valid once, on `?ticket=` of `/sse/events` or
    /// `/tasks/{id}/events`.
    pub ticket: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// What a ticket stands for: its token's principal, as stored.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Option<String>,
    scopes: Vec<String>,
    /// `None`: every project.
    projects: Option<Vec<String>>,
    exp: Option<u64>,
    authenticated: bool,
    /// The ticket's own end, unix seconds.
    ticket_exp: u64,
}

impl Claims {
    fn of(principal: &Principal, ticket_exp: u64) -> Self {
        Self {
            sub: principal.user_id.as_ref().map(|u| u.as_str().to_owned()),
            scopes: principal
                .scopes
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            projects: principal.projects.to_list(),
            exp: principal.expires_at,
            authenticated: principal.authenticated,
            ticket_exp,
        }
    }

    /// The principal back, or `None` when the stored value does not read
    /// (written by another version, or tampered with in Redis).
    fn principal(&self) -> Option<Principal> {
        let scopes: Option<BTreeSet<Scope>> = self.scopes.iter().map(|s| Scope::parse(s)).collect();
        // An id that does not parse (tampered with in Redis) grants nothing.
        let projects = ProjectAccess::from_list(self.projects.as_deref());
        Some(Principal {
            user_id: self.sub.as_deref().map(UserId::parse).transpose().ok()?,
            scopes: scopes?,
            projects,
            expires_at: self.exp,
            authenticated: self.authenticated,
            // A ticket opens a stream, which writes nothing.
            confined: false,
        })
    }
}

/// Where this broker keeps its tickets.
enum Book {
    Local(Mutex<HashMap<String, Claims>>),
    Redis {
        client: redis::Client,
        connection: OnceCell<ConnectionManager>,
        prefix: String,
    },
}

/// Issues and redeems stream tickets.
#[derive(Clone)]
pub struct Tickets {
    ttl: Duration,
    book: Arc<Book>,
}

impl Tickets {
    /// In-memory tickets, good on this instance only.
    pub fn local(ttl: Duration) -> Self {
        Self {
            ttl,
            book: Arc::new(Book::Local(Mutex::default())),
        }
    }

    /// Tickets in Redis under `{cluster_name}:ticket:`, good on every
    /// instance of the cluster. Connects at the first use (and again after
    /// a failure), so a Redis outage at start-up is no start-up failure.
    pub fn in_redis(ttl: Duration, url: &SecretString, cluster_name: &str) -> anyhow::Result<Self> {
        Ok(Self {
            ttl,
            book: Arc::new(Book::Redis {
                client: redis::Client::open(url.expose_secret())?,
                connection: OnceCell::new(),
                prefix: format!("{cluster_name}:ticket:"),
            }),
        })
    }

    /// A new ticket for `principal`: it ends after the ticket lifetime, or
    /// with the token if that comes first.
    pub async fn issue(&self, principal: &Principal) -> Result<IssuedTicket, AuthError> {
        let now = unix_now();
        let ttl = self.ttl.as_secs().max(1);
        let expires_at = principal
            .expires_at
            .map_or(now + ttl, |exp| exp.min(now + ttl));
        if expires_at <= now {
            return Err(AuthError::Expired);
        }
        let ticket = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let claims = Claims::of(principal, expires_at);
        match &*self.book {
            Book::Local(tickets) => {
                let mut tickets = tickets.lock().unwrap_or_else(PoisonError::into_inner);
                if tickets.len() >= PRUNE_AT {
                    tickets.retain(|_, claims| claims.ticket_exp > now);
                    if tickets.len() >= 2 * PRUNE_AT {
                        return Err(AuthError::TicketsUnavailable);
                    }
                }
                tickets.insert(ticket.clone(), claims);
            }
            Book::Redis { prefix, .. } => {
                let value =
                    serde_json::to_string(&claims).map_err(|_| AuthError::TicketsUnavailable)?;
                let key = format!("{prefix}{ticket}");
                let seconds = expires_at - now;
                self.with_redis(|mut connection| {
                    let (key, value) = (key.clone(), value.clone());
                    async move { connection.set_ex::<_, _, ()>(key, value, seconds).await }
                })
                .await?;
            }
        }
        Ok(IssuedTicket { ticket, expires_at })
    }

    /// The principal of `ticket`, once: a second redemption, an expired or
    /// an unknown ticket is refused.
    pub async fn redeem(&self, ticket: &str) -> Result<Principal, AuthError> {
        let claims = match &*self.book {
            Book::Local(tickets) => tickets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(ticket),
            Book::Redis { prefix, .. } => {
                // Only what a ticket can look like reaches Redis.
                if ticket.len() != 64 || !ticket.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(AuthError::BadTicket);
                }
                let key = format!("{prefix}{ticket}");
                let value: Option<String> = self
                    .with_redis(|mut connection| {
                        let key = key.clone();
                        async move { connection.get_del(key).await }
                    })
                    .await?;
                value.and_then(|value| serde_json::from_str(&value).ok())
            }
        };
        claims
            .filter(|claims| claims.ticket_exp > unix_now())
            .and_then(|claims| claims.principal())
            .ok_or(AuthError::BadTicket)
    }

    /// Runs `command`, once more if the connection turned out to be gone:
    /// the manager learns of a Redis restart from the first command after
    /// it, which fails (a broken pipe) while the next one reconnects.
    async fn with_redis<T, F, Fut>(&self, command: F) -> Result<T, AuthError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.redis().await?;
        match command(connection.clone()).await {
            Err(error) if error.is_connection_dropped() || error.is_io_error() => {
                tracing::info!(error.message = %error, "stream tickets: the Redis connection was gone; trying again");
                command(connection)
                    .await
                    .map_err(|error| unavailable(&error))
            }
            result => result.map_err(|error| unavailable(&error)),
        }
    }

    async fn redis(&self) -> Result<ConnectionManager, AuthError> {
        let Book::Redis {
            client, connection, ..
        } = &*self.book
        else {
            return Err(AuthError::TicketsUnavailable);
        };
        connection
            .get_or_try_init(|| async {
                // A page waits for its ticket: with Redis gone, the answer
                // is a prompt 503 (the page tries again), not the
                // manager's default six reconnects, 7.5 s per request.
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(1)))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                client.get_connection_manager_with_config(config).await
            })
            .await
            .cloned()
            .map_err(|error| unavailable(&error))
    }
}

fn unavailable(error: &redis::RedisError) -> AuthError {
    tracing::warn!(error.message = %error, "stream tickets: Redis did not answer");
    AuthError::TicketsUnavailable
}
