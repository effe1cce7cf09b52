//! The `data` of one event of a `text/event-stream` upload, read in the
//! dialect of whoever wrote it. A producer pipes its model provider's
//! streamed answer straight in, so each provider's stream is read as the
//! provider writes it, told apart per event by its shape:
//!
//! - OpenAI Chat Completions (and the many APIs that copy it): `choices`;
//!   `choices[].delta.content` (or `refusal`) of the first choice is text,
//!   its `reasoning_content` (DeepSeek, vLLM, Qwen) or `reasoning`
//!   (OpenRouter, Ollama, Groq) is reasoning, `[DONE]` completes (or, after
//!   a `finish_reason`, the body's end).
//! - OpenAI Responses: `type` `response.*`; `response.output_text.delta`
//!   (and `response.refusal.delta`) is text,
//!   `response.reasoning_summary_text.delta` and
//!   `response.reasoning_text.delta` are reasoning, `response.completed`
//!   and `response.incomplete` complete, `response.failed` and an `error`
//!   event fail.
//! - Anthropic Messages: `content_block_delta` with a `text_delta` is text,
//!   with a `thinking_delta` reasoning, `message_stop` (or, after
//!   `message_delta`'s `stop_reason`, the body's end) completes, an `error`
//!   event fails.
//! - Google Gemini (`streamGenerateContent?alt=sse`): `candidates`; the
//!   first candidate's parts' `text` is text, a thought part's reasoning, a
//!   `finishReason` completes after the chunk's text (an unspecified one
//!   at the body's end); a blocked prompt fails.
//! - The AI SDK's UI message stream: `text-delta` parts are text,
//!   `reasoning-delta` parts reasoning, `finish` completes, `error` fails,
//!   `abort` cancels (the text kept).
//!
//! A refusal is text: it is what the viewer should read. Reasoning is kept
//! apart from the answer (`reasoning` events), so a viewer can show the
//! model thinking without mixing it into the answer. The tool calls the
//! model makes are kept whole, in order with the text (`tool_call`
//! events; see `tool_calls`): Chat Completions' `delta.tool_calls`,
//! Anthropic's `tool_use` blocks, the Responses API's finished
//! `function_call` items, Gemini's `functionCall` parts, the AI SDK's
//! `tool-input-available`; and the AI SDK's `tool-output-available` and
//! `tool-output-error` are the tools' answers (`tool_result`). Why the answer
//! stopped and the tokens it took are gathered into the task's result (see
//! `ending`). What carries nothing a task keeps (signatures, pings, a
//! tool's input streaming in, parts of kinds added later) is skipped; what
//! claims to be text but is not a string is refused, naming the field.

mod ai_sdk;
mod anthropic;
mod ending;
mod gemini;
mod openai;
mod tool_calls;

use serde_json::Value;

use ai_sdk::ai_sdk_part;
use anthropic::anthropic_event;
use gemini::gemini_chunk;
use openai::{openai_chunk, responses_event};

use ending::EndNote;
pub use ending::Ending;
pub use tool_calls::{ToolCallAssembly, ToolCallError, ToolPiece};

use super::generation_input::Instruction;
use crate::error::plain;

/// Whose stream an event belongs to, once its shape tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAiChat,
    OpenAiResponses,
    Anthropic,
    Gemini,
    AiSdk,
}

impl Dialect {
    /// The name answers, logs and docs give the dialect.
    pub fn label(self) -> &'static str {
        match self {
            Self::OpenAiChat => "openai_chat",
            Self::OpenAiResponses => "openai_responses",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::AiSdk => "ai_sdk",
        }
    }
}

/// What one event asks of the task.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRead {
    /// The model's reasoning the event carries beside its answer text (an
    /// OpenAI-compatible chunk's `reasoning_content`, a Gemini chunk's
    /// thought parts): it goes before `instruction`.
    pub reasoning: Option<String>,
    pub instruction: Instruction,
    /// What the event carries after `instruction`'s text and before
    /// `then`'s end, in order: pieces of tool calls (and results), and text
    /// that comes after a call (a Gemini chunk's parts).
    pub pieces: Vec<Piece>,
    /// A second instruction carried by the same event: a Gemini chunk
    /// brings its last text and its end together.
    pub then: Option<Instruction>,
    /// `None` for an event any dialect may send (`[DONE]`, an error
    /// object, a part of a kind nobody here knows).
    pub dialect: Option<Dialect>,
    /// What the event says of the answer's end (its reason, the tokens).
    pub note: Option<EndNote>,
}

impl EventRead {
    pub(super) fn one(instruction: Instruction, dialect: Option<Dialect>) -> Self {
        Self {
            reasoning: None,
            instruction,
            pieces: Vec::new(),
            then: None,
            dialect,
            note: None,
        }
    }

    fn noting(self, note: Option<EndNote>) -> Self {
        Self { note, ..self }
    }

    fn with_tools(self, tools: Vec<ToolPiece>) -> Self {
        self.with_pieces(tools.into_iter().map(Piece::Tool).collect())
    }

    fn with_pieces(self, pieces: Vec<Piece>) -> Self {
        Self { pieces, ..self }
    }

    /// Gives `emit` what the event asks of the task, in order: its
    /// reasoning, its text, the tool calls it completes, its end. `ending`
    /// gives an end what is known of it; `tool_calls` holds the calls
    /// streaming in, of which an end completes those still open.
    pub fn emit_in_order(
        self,
        ending: &mut Ending,
        tool_calls: &mut ToolCallAssembly,
        mut emit: impl FnMut(Instruction),
    ) -> Result<(), ToolCallError> {
        if let Some(reasoning) = self.reasoning {
            emit(Instruction::reasoning(reasoning));
        }
        // The calls come after the text and before the end (a Gemini
        // chunk may carry a call and its finish alone).
        let (text, ends) = match self.instruction {
            end if end.ends_task() => (None, [Some(end), self.then]),
            text => (Some(text), [self.then, None]),
        };
        if let Some(text) = text {
            emit(text);
        }
        for piece in self.pieces {
            match piece {
                Piece::Tool(piece) => {
                    for tool in tool_calls.take(piece)? {
                        emit(Instruction::Tool(tool));
                    }
                }
                Piece::Text(text) => emit(text),
            }
        }
        for end in ends.into_iter().flatten() {
            // A call still open when the answer completes is whole as it
            // is; one open when it fails or is cancelled is half a call.
            if matches!(end, Instruction::Complete { .. }) {
                for tool in tool_calls.at_end()? {
                    emit(Instruction::Tool(tool));
                }
            } else {
                tool_calls.abandon();
            }
            emit(ending.applied(end));
        }
        Ok(())
    }

    /// A chunk's reasoning and text (each if any), then `end` (if any).
    fn text_then(
        reasoning: String,
        text: String,
        end: Option<Instruction>,
        dialect: Dialect,
    ) -> Self {
        let reasoning = (!reasoning.is_empty()).then_some(reasoning);
        match delta_or_nothing(text) {
            Instruction::Nothing => Self {
                reasoning,
                ..Self::one(end.unwrap_or(Instruction::Nothing), Some(dialect))
            },
            delta => Self {
                reasoning,
                instruction: delta,
                pieces: Vec::new(),
                then: end,
                dialect: Some(dialect),
                note: None,
            },
        }
    }
}

/// What an event carries after its first text, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Tool(ToolPiece),
    Text(Instruction),
}

/// Reads the `data` of one event of a provider's or the AI SDK's stream.
pub fn event_stream_data(data: &str) -> Result<EventRead, String> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(EventRead::one(Instruction::Complete { result: None }, None));
    }
    let value: Value = serde_json::from_str(data)
        .map_err(|error| plain::syntax_error_in("the event's data", &error))?;
    chunk(&value)
}

/// One chunk or event of a provider's or the AI SDK's stream, parsed.
fn chunk(value: &Value) -> Result<EventRead, String> {
    // A provider's failure mid-stream: `{"error": {"message": ...}}`
    // (OpenAI, Gemini; OpenAI-compatible routers add it to a chunk with
    // `choices`, whose text comes first) or `{"type": "error", "error":
    // {...}}` (Anthropic).
    let failure = provider_error(value);
    if let Some(choices) = value.get("choices") {
        return openai_chunk(value, choices, failure);
    }
    if let Some(failure) = failure {
        return Ok(EventRead::one(failure, None));
    }
    if ["candidates", "promptFeedback", "usageMetadata"]
        .iter()
        .any(|key| value.get(key).is_some())
    {
        return gemini_chunk(value);
    }
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err("the event is not a chunk of a stream read here: no choices, candidates or type (see the integration guide's formats)".into());
    };
    if let Some(event) = kind.strip_prefix("response.") {
        return responses_event(event, value);
    }
    if let Some(read) = anthropic_event(kind, value)? {
        return Ok(read);
    }
    ai_sdk_part(kind, value)
}

/// A JSON line of a provider's stream sent as NDJSON (what the `openai` and
/// `@anthropic-ai/sdk` packages' `toReadableStream()` write: one chunk or
/// event per line), for a line that is not one of the broker's own. `None`
/// when it reads as no provider's either, so the line is refused in the
/// broker's own terms.
pub fn provider_line(line: &str) -> Option<EventRead> {
    // A line with the broker's own fields is the producer's, mistyped: it
    // is refused in those terms, never read as something else.
    let value: Value = serde_json::from_str(line).ok()?;
    // (`delta` is a provider's field too: the Responses API's text event.)
    let own = [
        "seq",
        "reasoning",
        "progress",
        "stage",
        "complete",
        "fail",
        "tool_call",
        "tool_result",
        "tool_approval",
    ]
    .iter()
    .any(|field| value.get(field).is_some());
    if own {
        return None;
    }
    let read = chunk(&value).ok()?;
    let told = read.dialect.is_some() || matches!(read.instruction, Instruction::Fail { .. });
    told.then_some(read)
}

/// The failure a provider's error says (`error` an object or a string, or
/// the first of an array of them), in its words when it gave some; `None`
/// when `value` is no error.
pub fn provider_error(value: &Value) -> Option<Instruction> {
    let first = match value {
        Value::Array(items) => items.first()?,
        value => value,
    };
    first
        .get("error")
        .is_some_and(|error| error.is_object() || error.is_string())
        .then(|| provider_failed(error_message(value)))
}

/// The message of a provider's error object: `{"error": {"message"}}`
/// (OpenAI, Anthropic, Gemini), `{"error": "..."}`, or the first of an
/// array of them (Gemini answers errors as `[{"error": ...}]`).
fn error_message(value: &Value) -> Option<String> {
    let value = match value {
        Value::Array(items) => items.first()?,
        value => value,
    };
    let message = match value.get("error")? {
        Value::String(message) => message.as_str(),
        error => error.get("message")?.as_str()?,
    };
    (!message.trim().is_empty()).then(|| message.to_owned())
}

/// A provider's failure, in its words when it gave some.
fn provider_failed(message: Option<String>) -> Instruction {
    Instruction::Fail {
        error: message.unwrap_or_else(|| "the model provider failed".to_owned()),
    }
}

fn string_field(value: &Value, name: &str, what: &str) -> Result<String, String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{what} needs {name} as a string"))
}

/// `value[name]` as a string, if there; another type is refused, as the
/// AI SDK's own schema refuses it (a reader of the task's stream must never
/// meet what its SDK would refuse).
fn optional_string_field(value: &Value, name: &str, what: &str) -> Result<Option<String>, String> {
    match value.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(said)) => Ok(Some(said.clone())),
        Some(_) => Err(format!("{what}'s {name} must be a string")),
    }
}

fn delta_or_nothing(text: String) -> Instruction {
    if text.is_empty() {
        Instruction::Nothing
    } else {
        Instruction::answer(text)
    }
}

#[cfg(test)]
mod tests;
