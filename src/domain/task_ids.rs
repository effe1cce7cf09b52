//! The ids a task is known by: its own, its chat's, and its message's. All
//! three have one grammar, `[A-Za-z0-9_-]{1,128}` (the AI SDK's generated
//! chat and message ids fit it), and differ in the error a bad one gives.

use std::fmt;

use super::{TaskError, TaskRef};

/// An id of the task grammar: its type, what it is, and the error a value
/// outside the grammar gives.
macro_rules! task_grammar_id {
    ($(#[$doc:meta])* $name:ident, $invalid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, TaskError> {
                if is_task_id(raw) {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err($invalid)
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

task_grammar_id!(
    /// A task id.
    TaskId,
    TaskError::InvalidId
);
task_grammar_id!(
    /// A chat id: the conversation a generation belongs to.
    ChatId,
    TaskError::InvalidChatId
);
task_grammar_id!(
    /// The id of the assistant message a generation writes, as a chat
    /// client (the AI SDK's `useChat`) keys it.
    MessageId,
    TaskError::InvalidMessageId
);

impl TaskId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The same id as carried on events.
    pub fn as_ref_id(&self) -> TaskRef {
        TaskRef::parse(&self.0).expect("a task id is a valid event task_id")
    }
}

/// `[A-Za-z0-9_-]{1,128}`: the grammar of task, chat and message ids.
fn is_task_id(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
