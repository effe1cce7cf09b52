//! The ids a task is known by: its own, its chat's, and its message's.

use std::fmt;

use super::{TaskError, TaskRef};

/// A chat id: `[A-Za-z0-9_-]{1,128}`, the conversation a generation
/// belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChatId(String);

impl ChatId {
    pub fn parse(raw: &str) -> Result<Self, TaskError> {
        if is_task_id(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(TaskError::InvalidChatId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of the assistant message a generation writes, as a chat client
/// (the AI SDK's `useChat`) keys it: `[A-Za-z0-9_-]{1,128}`, as the SDK's
/// generated ids are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    pub fn parse(raw: &str) -> Result<Self, TaskError> {
        if is_task_id(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(TaskError::InvalidMessageId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[A-Za-z0-9_-]{1,128}`: the grammar of task and chat ids.
fn is_task_id(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A task id: `[A-Za-z0-9_-]{1,128}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(String);

impl TaskId {
    pub fn parse(raw: &str) -> Result<Self, TaskError> {
        if is_task_id(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(TaskError::InvalidId)
        }
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same id as carried on events.
    pub fn as_ref_id(&self) -> TaskRef {
        TaskRef::parse(&self.0).expect("a task id is a valid event task_id")
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
