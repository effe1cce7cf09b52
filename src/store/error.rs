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
    /// The database's own words, in the message: logs of a failing
    /// prune or replay must say why (`database disk image is malformed`).
    /// Not a `source`, so a log line's cause chain does not repeat it.
    #[error("query failed: {0}")]
    Query(diesel::result::Error),
}

impl StoreError {
    /// SQLite says its file is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`):
    /// pages of it cannot be read, and no later success elsewhere in the
    /// file says otherwise.
    pub fn says_file_damaged(&self) -> bool {
        match self {
            Self::Query(diesel::result::Error::DatabaseError(_, info)) => {
                let message = info.message();
                message.contains("database disk image is malformed")
                    || message.contains("file is not a database")
            }
            _ => false,
        }
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Query(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sqlites_words_for_a_damaged_file_say_it_is_damaged() {
        use diesel::result::{DatabaseErrorKind, Error};
        let said = |message: &str| {
            StoreError::Query(Error::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(message.to_owned()),
            ))
        };
        assert!(said("database disk image is malformed").says_file_damaged());
        assert!(said("file is not a database").says_file_damaged());
        assert!(!said("database or disk is full").says_file_damaged());
        assert!(!StoreError::Timeout(std::time::Duration::from_secs(5)).says_file_damaged());
    }

    #[test]
    fn a_failed_query_says_the_databases_words_once() {
        let error = StoreError::from(diesel::result::Error::NotFound);
        assert_eq!(error.to_string(), "query failed: Record not found");
        assert!(std::error::Error::source(&error).is_none());
    }
}
