//! A task's stream written as an AI SDK UI message stream (see
//! `stream::ui_message`), and the earlier parts of a message it continues.

use super::{StreamService, task_state};
use crate::{
    actors::registry::RegisterError,
    auth::Principal,
    domain::{AiSdkMajor, EventId, Task},
    limits::StreamCharge,
    store::StoreError,
    stream::{MessageReader, StreamFormat, StreamSocket, UiMessageBody, message_parts},
};

impl StreamService {
    /// The stream of `task` as an AI SDK UI message stream. Every open
    /// replays from the start: the client resumes by reading the message
    /// again (one delta with the text so far), not by event id. A task
    /// that continues a message (`message_id`) is that message's stream,
    /// `earlier` the finished tasks that wrote it before (see
    /// [`UiMessageBody::continuing`] for what `reader` changes).
    #[tracing::instrument(name = "open_ui_message_stream", skip_all, fields(task_id = %task.task_id, message_id))]
    pub async fn open_task_messages(
        &self,
        principal: &Principal,
        task: &Task,
        (earlier, reader): (&[Task], MessageReader),
        client: AiSdkMajor,
        socket: Option<StreamSocket>,
        charge: Option<StreamCharge>,
    ) -> Result<UiMessageBody, OpenMessageError> {
        // Read before the stream registers: a store that does not answer
        // costs no connection slot.
        let earlier = match &task.message_id {
            Some(_) => {
                let tasks = earlier
                    .iter()
                    .map(|earlier| {
                        (
                            self.task_subscription(principal, earlier),
                            task_state(earlier),
                        )
                    })
                    .collect();
                message_parts::earlier_frames(&self.environment.store, tasks).await?
            }
            None => Default::default(),
        };
        let (_, body) = self
            .open_task(
                principal,
                task,
                EventId(0),
                StreamFormat::UiMessageStream,
                socket,
                charge,
            )
            .await?;
        Ok(match &task.message_id {
            None => UiMessageBody::new(body, task.task_id.as_str(), client),
            Some(message_id) => {
                tracing::Span::current().record("message_id", message_id.as_str());
                UiMessageBody::continuing(body, message_id.as_str(), client, earlier, reader)
            }
        })
    }
}

/// Why a UI message stream did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenMessageError {
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// The earlier parts of the continued message could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}
