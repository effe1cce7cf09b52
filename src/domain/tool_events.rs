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
        flags: ToolFlags,
        /// Why the input was refused (it did not match the tool's schema):
        /// the call is shown failed and is never run.
        input_error: Option<String>,
        /// What the model's provider said of the call (the AI SDK's
        /// `providerMetadata`: Gemini's thought signature, say), which the
        /// next model call of the chat needs back.
        provider_metadata: Option<Value>,
        /// What the app says of the tool (the AI SDK's `tool({ title,
        /// metadata })`): shown by chat UIs beside the call.
        labels: ToolLabels,
    },
    /// The tool's answer to the call `id`: its output, or why it failed.
    Result {
        id: String,
        outcome: ToolOutcome,
        flags: ToolFlags,
        /// What the provider said of the answer (a provider-run tool's).
        provider_metadata: Option<Value>,
        /// What the app says of the tool (its `toolMetadata`; an answer has
        /// no title of its own).
        labels: ToolLabels,
    },
    /// The call `id` waits for a person to approve it (the AI SDK's
    /// human-in-the-loop tools), under the approval `approval_id`.
    ApprovalRequest { id: String, approval_id: String },
}

/// What an app says of the tool a call or an answer is of (the AI SDK's
/// `title` and `toolMetadata`, from its `tool({ title, metadata })`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolLabels {
    pub title: Option<String>,
    /// An object of the app's own.
    pub metadata: Option<Value>,
}

impl ToolLabels {
    /// The labels `value` says under `names` (title, metadata), checked as
    /// the SDK's schema checks them; `what` names the part in a refusal.
    pub fn read(value: &Value, names: [&str; 2], what: &str) -> Result<Self, String> {
        Self::checked(value.get(names[0]), value.get(names[1]), names, what)
    }

    /// The labels `title` and `metadata` say, named `names` in a refusal.
    pub fn checked(
        title: Option<&Value>,
        metadata: Option<&Value>,
        names: [&str; 2],
        what: &str,
    ) -> Result<Self, String> {
        let title = match title {
            None | Some(Value::Null) => None,
            Some(Value::String(title)) => Some(title.clone()),
            Some(_) => return Err(format!("{what}'s {} must be a string", names[0])),
        };
        let metadata = match metadata {
            None | Some(Value::Null) => None,
            Some(metadata @ Value::Object(_)) => Some(metadata.clone()),
            Some(_) => return Err(format!("{what}'s {} must be an object", names[1])),
        };
        Ok(Self { title, metadata })
    }

    /// The names a tool event's data gives them.
    pub const EVENT_NAMES: [&'static str; 2] = ["title", "tool_metadata"];
    /// The names the AI SDK's parts give them.
    pub const AI_SDK_NAMES: [&'static str; 2] = ["title", "toolMetadata"];

    /// Adds the labels said to `object` under `names`.
    pub fn write(&self, object: &mut Value, names: [&str; 2]) {
        if let Some(title) = &self.title {
            object[names[0]] = Value::String(title.clone());
        }
        if let Some(metadata) = &self.metadata {
            object[names[1]] = metadata.clone();
        }
    }
}

/// What the AI SDK says of a call or an answer besides it, kept so a chat
/// UI reading the task treats it as the SDK's own stream would.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToolFlags {
    /// Run by the model provider itself (a web search): the app's client
    /// must not run it.
    pub provider_executed: bool,
    /// A tool not in the app's static tool set (an MCP tool): shown as a
    /// `dynamic-tool` part.
    pub dynamic: bool,
    /// An answer the tool will replace (a streaming tool's progress).
    pub preliminary: bool,
}

impl ToolFlags {
    /// The flags `data` (a tool event's, or an AI SDK part's under the
    /// SDK's names) says.
    pub fn read(data: &Value, names: [&str; 3]) -> Self {
        let set = |name: &str| data.get(name).and_then(Value::as_bool) == Some(true);
        Self {
            provider_executed: set(names[0]),
            dynamic: set(names[1]),
            preliminary: set(names[2]),
        }
    }

    /// The names a tool event's data gives them.
    pub const EVENT_NAMES: [&'static str; 3] = ["provider_executed", "dynamic", "preliminary"];
    /// The names the AI SDK's parts give them.
    pub const AI_SDK_NAMES: [&'static str; 3] = ["providerExecuted", "dynamic", "preliminary"];

    /// Adds the flags that are set to `object` under `names`.
    pub fn write(self, object: &mut Value, names: [&str; 3]) {
        for (name, set) in
            names
                .into_iter()
                .zip([self.provider_executed, self.dynamic, self.preliminary])
        {
            if set {
                object[name] = Value::Bool(true);
            }
        }
    }
}

/// What a tool run gave.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutcome {
    Output(Value),
    Error(String),
    /// The person asked refused the call: it was never run.
    Denied,
}

impl ToolEvent {
    /// A call, its id and name checked (`what` names the call in the
    /// refusal, as the producer wrote it).
    pub fn call(id: &str, name: &str, input: Value, what: &str) -> Result<Self, String> {
        Ok(Self::Call {
            id: label(id, "id", what)?,
            name: label(name, "name", what)?,
            input,
            flags: ToolFlags::default(),
            input_error: None,
            provider_metadata: None,
            labels: ToolLabels::default(),
        })
    }

    /// A result, its id checked.
    pub fn result(id: &str, outcome: ToolOutcome, what: &str) -> Result<Self, String> {
        Ok(Self::Result {
            id: label(id, "id", what)?,
            outcome,
            flags: ToolFlags::default(),
            provider_metadata: None,
            labels: ToolLabels::default(),
        })
    }

    /// The same event, `flags` said of it.
    pub fn flagged(mut self, said: ToolFlags) -> Self {
        match &mut self {
            Self::Call { flags, .. } | Self::Result { flags, .. } => *flags = said,
            Self::ApprovalRequest { .. } => {}
        }
        self
    }

    /// The same event, with what its provider said of it (a call's or a
    /// result's; an approval request keeps none).
    pub fn with_provider_metadata(mut self, said: Option<Value>) -> Self {
        match &mut self {
            Self::Call {
                provider_metadata, ..
            }
            | Self::Result {
                provider_metadata, ..
            } => *provider_metadata = said,
            Self::ApprovalRequest { .. } => {}
        }
        self
    }

    /// The same event, with what the app says of its tool (an answer keeps
    /// no title: the call has it; an approval request keeps none).
    pub fn labelled(mut self, said: ToolLabels) -> Self {
        match &mut self {
            Self::Call { labels, .. } => *labels = said,
            Self::Result { labels, .. } => {
                *labels = ToolLabels {
                    title: None,
                    ..said
                }
            }
            Self::ApprovalRequest { .. } => {}
        }
        self
    }

    /// A request for approval of the call `id`, both checked.
    pub fn approval_request(id: &str, approval_id: &str, what: &str) -> Result<Self, String> {
        Ok(Self::ApprovalRequest {
            id: label(id, "id", what)?,
            approval_id: label(approval_id, "approval id", what)?,
        })
    }

    /// The event type carrying it.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Call { .. } => "tool_call",
            Self::Result { .. } => "tool_result",
            Self::ApprovalRequest { .. } => "tool_approval",
        }
    }

    /// The event's data, for the task `task_id`.
    pub fn data(&self, task_id: &str) -> Value {
        let (mut data, flags, provider_metadata, labels) = match self {
            Self::Call {
                id,
                name,
                input,
                flags,
                input_error,
                provider_metadata,
                labels,
            } => {
                let mut data = json!({
                    "task_id": task_id,
                    "tool_call_id": id,
                    "tool_name": name,
                    "input": input,
                });
                if let Some(error) = input_error {
                    data["input_error"] = json!(error);
                }
                (data, flags, provider_metadata, labels)
            }
            Self::Result {
                id,
                outcome,
                flags,
                provider_metadata,
                labels,
            } => {
                let mut data = json!({ "task_id": task_id, "tool_call_id": id });
                let (field, value) = match outcome {
                    ToolOutcome::Output(output) => ("output", output.clone()),
                    ToolOutcome::Error(error) => ("error", json!(error)),
                    ToolOutcome::Denied => ("denied", Value::Bool(true)),
                };
                data[field] = value;
                (data, flags, provider_metadata, labels)
            }
            Self::ApprovalRequest { id, approval_id } => {
                return json!({ "task_id": task_id, "tool_call_id": id, "approval_id": approval_id });
            }
        };
        flags.write(&mut data, ToolFlags::EVENT_NAMES);
        labels.write(&mut data, ToolLabels::EVENT_NAMES);
        super::add_provider_metadata(&mut data, provider_metadata.as_ref());
        data
    }
}

/// What a tool event is, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolEventKind {
    Call,
    Output,
    Error,
    Denied,
    Approval,
}

impl ToolEventKind {
    pub const ALL: [Self; 5] = [
        Self::Call,
        Self::Output,
        Self::Error,
        Self::Denied,
        Self::Approval,
    ];

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
            ToolEvent::Result {
                outcome: ToolOutcome::Denied,
                ..
            } => Self::Denied,
            ToolEvent::ApprovalRequest { .. } => Self::Approval,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Output => "output",
            Self::Error => "error",
            Self::Denied => "denied",
            Self::Approval => "approval",
        }
    }
}

/// Whether `event_type` is one of a tool event's.
pub fn is_tool_event_type(event_type: &str) -> bool {
    matches!(event_type, "tool_call" | "tool_result" | "tool_approval")
}

/// An id or a name: not blank, not longer than [`MAX_TOOL_LABEL_CHARS`].
pub(super) fn label(value: &str, field: &str, what: &str) -> Result<String, String> {
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
