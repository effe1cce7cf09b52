//! The tool lines of an NDJSON upload (`tool_call`, `tool_result`,
//! `tool_approval`), and the answers a continuing turn's task is created
//! with (`POST /tasks`'s `tool_results`, as `tool_result` lines).

use serde::Deserialize;
use serde_json::Value;

use super::answer_part_lines::said;
use crate::domain::{ToolEvent, ToolFlags, ToolLabels, ToolOutcome};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ToolApprovalBody {
    id: String,
    approval_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ToolCallBody {
    id: String,
    name: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    provider_executed: bool,
    #[serde(default)]
    dynamic: bool,
    /// What the model's provider said of it, as the AI SDK's
    /// `providerMetadata` (an object), given back to the SDK's readers.
    provider_metadata: Option<Value>,
    /// What the app says of the tool, as the AI SDK's `title` and
    /// `toolMetadata` (an object).
    title: Option<Value>,
    tool_metadata: Option<Value>,
}

/// A tool's answer: an upload's `tool_result` line, and one of the
/// answers a continuing turn's task is created with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolResultBody {
    id: String,
    output: Option<Value>,
    error: Option<String>,
    #[serde(default)]
    preliminary: bool,
    /// The person asked refused the call.
    #[serde(default)]
    denied: bool,
    /// What the model's provider said of it, as the AI SDK's
    /// `providerMetadata` (an object), given back to the SDK's readers.
    provider_metadata: Option<Value>,
    /// What the app says of the tool, as the AI SDK's `toolMetadata`.
    tool_metadata: Option<Value>,
}

/// Answers a task may be created with, at most.
pub const MAX_CREATED_ANSWERS: usize = 64;

/// The answers a task that continues a message is created with
/// (`POST /tasks`'s `tool_results`): what the message's calls got outside
/// the broker (the page's own tools), so a chat resuming the turn has
/// them. Only a continuing task (`continues`) has such calls to answer.
pub fn continued_answers(
    continues: bool,
    answers: Vec<ToolResultBody>,
) -> Result<Vec<ToolEvent>, String> {
    if answers.is_empty() {
        return Ok(Vec::new());
    }
    if !continues {
        return Err(
            "tool_results answer the calls of the message a task continues: \
                    give its message_id"
                .into(),
        );
    }
    if answers.len() > MAX_CREATED_ANSWERS {
        return Err(format!(
            "at most {MAX_CREATED_ANSWERS} tool_results; send those of the message's last step \
             (an earlier turn's task holds the others)"
        ));
    }
    answers
        .into_iter()
        .map(ToolResultBody::into_tool_event)
        .collect()
}

impl ToolResultBody {
    pub(super) fn into_tool_event(self) -> Result<ToolEvent, String> {
        let outcome = match (self.output, self.error, self.denied) {
            (None, None, true) => ToolOutcome::Denied,
            (Some(_), Some(_), _) | (_, Some(_), true) | (Some(_), _, true) => {
                return Err("a tool_result has one of output, error and denied".into());
            }
            (_, Some(error), false) => ToolOutcome::Error(error),
            (output, None, false) => ToolOutcome::Output(output.unwrap_or(Value::Null)),
        };
        let flags = ToolFlags {
            preliminary: self.preliminary,
            ..ToolFlags::default()
        };
        let labels = ToolLabels::checked(
            None,
            self.tool_metadata.as_ref(),
            ToolLabels::EVENT_NAMES,
            "a tool_result",
        )?;
        Ok(ToolEvent::result(&self.id, outcome, "a tool_result")?
            .flagged(flags)
            .labelled(labels)
            .with_provider_metadata(said(self.provider_metadata, "a tool_result")?))
    }
}

impl ToolCallBody {
    pub(super) fn into_tool_event(self) -> Result<ToolEvent, String> {
        let flags = ToolFlags {
            provider_executed: self.provider_executed,
            dynamic: self.dynamic,
            ..ToolFlags::default()
        };
        let labels = ToolLabels::checked(
            self.title.as_ref(),
            self.tool_metadata.as_ref(),
            ToolLabels::EVENT_NAMES,
            "a tool_call",
        )?;
        Ok(
            ToolEvent::call(&self.id, &self.name, self.input, "a tool_call")?
                .flagged(flags)
                .labelled(labels)
                .with_provider_metadata(said(self.provider_metadata, "a tool_call")?),
        )
    }
}

impl ToolApprovalBody {
    pub(super) fn into_tool_event(self) -> Result<ToolEvent, String> {
        ToolEvent::approval_request(&self.id, &self.approval_id, "a tool_approval")
    }
}
