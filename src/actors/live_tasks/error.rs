//! Why a task write (or a task's creation or lookup) was refused.

use crate::{actors::persister::PersistError, domain::TaskError, store::StoreError};

/// Why a write to a task did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TaskWriteError {
    #[error("no task with this id")]
    NotFound,
    #[error("a task with this id already exists")]
    AlreadyExists,
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("the task has too many writes waiting; retry")]
    Contended,
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
