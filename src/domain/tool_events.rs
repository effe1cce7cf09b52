//! A generation's tool calls: the model asking for a tool to be run (its
//! name and input), and the tool's answer. A chat UI shows both between
//! the parts of the answer (an agent's "looked up the weather" card), so a
//! task keeps them as events of its stream, in order with its text, and a
//! viewer who joins late or resumes gets them with the text around them.

use serde_json::{Value, json};

/// The longest tool call id or tool name kept.
pub const MAX_TOOL_LABEL_CHARS: usize = 256;

/// One tool event of a generation.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolEvent {
    /// The model asks for the tool `name` to be run with `input`.
    Call {
        id: String,
        name: String,
        input: Value,
    },
    /// The tool's answer to the call `id`: its output, or why it failed.
    Result { id: String, outcome: ToolOutcome },
}

/// What a tool run gave.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutcome {
    Output(Value),
    Error(String),
}

impl ToolEvent {
    /// A call, its id and name checked (`what` names the call in the
    /// refusal, as the producer wrote it).
    pub fn call(id: &str, name: &str, input: Value, what: &str) -> Result<Self, String> {
        Ok(Self::Call {
            id: label(id, "id", what)?,
            name: label(name, "name", what)?,
            input,
        })
    }

    /// A result, its id checked.
    pub fn result(id: &str, outcome: ToolOutcome, what: &str) -> Result<Self, String> {
        Ok(Self::Result {
            id: label(id, "id", what)?,
            outcome,
        })
    }

    /// The event type carrying it.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Call { .. } => "tool_call",
            Self::Result { .. } => "tool_result",
        }
    }

    /// The event's data, for the task `task_id`.
    pub fn data(&self, task_id: &str) -> Value {
        match self {
            Self::Call { id, name, input } => json!({
                "task_id": task_id,
                "tool_call_id": id,
                "tool_name": name,
                "input": input,
            }),
            Self::Result {
                id,
                outcome: ToolOutcome::Output(output),
            } => json!({ "task_id": task_id, "tool_call_id": id, "output": output }),
            Self::Result {
                id,
                outcome: ToolOutcome::Error(error),
            } => json!({ "task_id": task_id, "tool_call_id": id, "error": error }),
        }
    }
}

/// What a tool event is, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolEventKind {
    Call,
    Output,
    Error,
}

impl ToolEventKind {
    pub const ALL: [Self; 3] = [Self::Call, Self::Output, Self::Error];

    pub fn of(tool: &ToolEvent) -> Self {
        match tool {
            ToolEvent::Call { .. } => Self::Call,
            ToolEvent::Result {
                outcome: ToolOutcome::Output(_),
                ..
            } => Self::Output,
            ToolEvent::Result {
                outcome: ToolOutcome::Error(_),
                ..
            } => Self::Error,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Output => "output",
            Self::Error => "error",
        }
    }
}

/// Whether `event_type` is one of a tool event's.
pub fn is_tool_event_type(event_type: &str) -> bool {
    matches!(event_type, "tool_call" | "tool_result")
}

/// An id or a name: not blank, not longer than [`MAX_TOOL_LABEL_CHARS`].
fn label(value: &str, field: &str, what: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(format!("{what}'s {field} is blank"));
    }
    if value.chars().count() > MAX_TOOL_LABEL_CHARS {
        return Err(format!(
            "{what}'s {field} is longer than {MAX_TOOL_LABEL_CHARS} characters"
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_and_its_result_become_the_events_viewers_read() {
        let call = ToolEvent::call("call_1", "weather", json!({"city": "Oslo"}), "a tool call");
        let call = call.unwrap();
        assert_eq!(call.event_type(), "tool_call");
        assert_eq!(
            call.data("t1"),
            json!({"task_id": "t1", "tool_call_id": "call_1", "tool_name": "weather", "input": {"city": "Oslo"}})
        );
        let output = ToolOutcome::Output(json!({"celsius": -3}));
        let done = ToolEvent::result("call_1", output, "a tool result").unwrap();
        assert_eq!(done.event_type(), "tool_result");
        assert_eq!(
            done.data("t1"),
            json!({"task_id": "t1", "tool_call_id": "call_1", "output": {"celsius": -3}})
        );
        let failed = ToolOutcome::Error("no such city".into());
        let failed = ToolEvent::result("call_1", failed, "a tool result").unwrap();
        assert_eq!(failed.data("t1")["error"], "no such city");
        assert!(failed.data("t1").get("output").is_none());
    }

    #[test]
    fn blank_or_overlong_ids_and_names_are_refused_naming_them() {
        let blank = ToolEvent::call(" ", "weather", Value::Null, "tool_call");
        assert_eq!(blank, Err("tool_call's id is blank".into()));
        let long = "n".repeat(MAX_TOOL_LABEL_CHARS + 1);
        let error = ToolEvent::call("c", &long, Value::Null, "tool_call").unwrap_err();
        assert!(error.contains("name is longer than 256"), "{error}");
        assert!(ToolEvent::call("c", &"n".repeat(MAX_TOOL_LABEL_CHARS), Value::Null, "x").is_ok());
    }
}
