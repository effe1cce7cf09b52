//! `StreamFormat`: the wire format a stream's client reads.

/// The wire format a stream's client reads. Every stream is the same
/// Connection underneath; the format is only how its frames are written,
/// and a label on the log line and on `sse_connections_opened_total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StreamFormat {
    /// The broker's own events (`/sse/events`, `/tasks/{id}/events`).
    #[default]
    Sse,
    /// A task's stream as an AI SDK UI message stream
    /// (`/tasks/{id}/ui-message-stream`, `/chats/{chat_id}/stream`).
    UiMessageStream,
}

impl StreamFormat {
    pub const ALL: [Self; 2] = [Self::Sse, Self::UiMessageStream];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sse => "sse",
            Self::UiMessageStream => "ui_message_stream",
        }
    }
}
