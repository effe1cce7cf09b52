//! Why the store could not answer.

use std::time::Duration;

/// Why the store could not answer. Messages never reach clients: the HTTP
/// edge maps every variant to a 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Past the store timeout; nothing was committed, nor will be.
    #[error("the event store did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The commit began before the store timeout but was not confirmed
    /// within one more: it may or may not have been stored.
    #[error("the event store did not confirm a commit within {} ms", .0.as_millis())]
    CommitUnconfirmed(Duration),
    #[error("could not open the event store: {0}")]
    Open(String),
    #[error("could not apply migrations: {0}")]
    Migration(String),
    #[error("no database connection available: {0}")]
    Unavailable(String),
    #[error("query failed")]
    Query(#[from] diesel::result::Error),
}
