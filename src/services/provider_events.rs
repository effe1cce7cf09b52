//! The `data` of one event of a `text/event-stream` upload, read in the
//! dialect of whoever wrote it. A producer pipes its model provider's
//! streamed answer straight in, so each provider's stream is read as the
//! provider writes it, told apart per event by its shape:
//!
//! - OpenAI Chat Completions (and the many APIs that copy it): `choices`;
//!   `choices[].delta.content` of the first choice is text, `[DONE]`
//!   completes.
//! - OpenAI Responses: `type` `response.*`; `response.output_text.delta`
//!   is text, `response.completed` and `response.incomplete` complete,
//!   `response.failed` and an `error` event fail.
//! - Anthropic Messages: `content_block_delta` with a `text_delta` is text,
//!   `message_stop` completes, an `error` event fails.
//! - Google Gemini (`streamGenerateContent?alt=sse`): `candidates`; the
//!   first candidate's parts' `text` is text (thought parts are not), a
//!   `finishReason` completes after the chunk's text; a blocked prompt
//!   fails.
//! - The AI SDK's UI message stream: `text-delta` parts are text, `finish`
//!   completes, `error` fails, `abort` cancels (the text kept).
//!
//! What carries no answer text (reasoning, tool calls, usage, pings, parts
//! of kinds added later) is skipped; what claims to be text but is not a
//! string is refused, naming the field.

use serde_json::Value;

use super::generation_input::Instruction;
use crate::error::plain::{self, JsonError};

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
    pub instruction: Instruction,
    /// A second instruction carried by the same event: a Gemini chunk
    /// brings its last text and its end together.
    pub then: Option<Instruction>,
    /// `None` for an event any dialect may send (`[DONE]`, an error
    /// object, a part of a kind nobody here knows).
    pub dialect: Option<Dialect>,
}

impl EventRead {
    pub(super) fn one(instruction: Instruction, dialect: Option<Dialect>) -> Self {
        Self {
            instruction,
            then: None,
            dialect,
        }
    }

    /// A chunk's text (if any), then `end` (if any).
    fn text_then(text: String, end: Option<Instruction>, dialect: Dialect) -> Self {
        match delta_or_nothing(text) {
            Instruction::Nothing => Self::one(end.unwrap_or(Instruction::Nothing), Some(dialect)),
            delta => Self {
                instruction: delta,
                then: end,
                dialect: Some(dialect),
            },
        }
    }
}

/// Reads the `data` of one event of a provider's or the AI SDK's stream.
pub fn event_stream_data(data: &str) -> Result<EventRead, String> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(EventRead::one(Instruction::Complete { result: None }, None));
    }
    let value: Value = plain::from_json_slice(data.as_bytes()).map_err(|error| {
        let (JsonError::Syntax(reason) | JsonError::Field(reason)) = error;
        format!("the event's data is not JSON: {reason}")
    })?;
    // A provider's failure mid-stream: `{"error": {"message": ...}}`
    // (OpenAI, Gemini; OpenAI-compatible routers add it to a chunk with
    // `choices`, whose text comes first) or `{"type": "error", "error":
    // {...}}` (Anthropic).
    let failure = provider_error(&value);
    if let Some(choices) = value.get("choices") {
        return openai_chunk(choices, failure);
    }
    if let Some(failure) = failure {
        return Ok(EventRead::one(failure, None));
    }
    if ["candidates", "promptFeedback", "usageMetadata"]
        .iter()
        .any(|key| value.get(key).is_some())
    {
        return gemini_chunk(&value);
    }
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err("the event is not a chunk of a stream read here: no choices, candidates or type (see the integration guide's formats)".into());
    };
    if let Some(event) = kind.strip_prefix("response.") {
        return responses_event(event, &value)
            .map(|i| EventRead::one(i, Some(Dialect::OpenAiResponses)));
    }
    if let Some(instruction) = anthropic_event(kind, &value)? {
        return Ok(EventRead::one(instruction, Some(Dialect::Anthropic)));
    }
    ai_sdk_part(kind, &value)
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
    let own = ["seq", "progress", "stage", "complete", "fail"]
        .iter()
        .any(|field| value.get(field).is_some());
    if own {
        return None;
    }
    let read = event_stream_data(line).ok()?;
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

/// `choices[].delta.content` of a Chat Completions chunk, joined: the
/// first choice's (`index` 0, or no index). A request with `n` > 1 streams
/// several answers in the same chunks; a task holds one. The first choice's
/// `finish_reason` ends it after the chunk's text: a stream written as JSON
/// lines (an SDK's `toReadableStream()`) has no `[DONE]`; in an event
/// stream the `[DONE]` after it has nothing left to end. `failure`: an
/// error beside the choices, which ends it after their text.
fn openai_chunk(choices: &Value, failure: Option<Instruction>) -> Result<EventRead, String> {
    let choices = choices
        .as_array()
        .ok_or("choices must be an array of chunk choices")?;
    let mut text = String::new();
    let mut end = failure;
    for (index, choice) in choices.iter().enumerate() {
        if choice
            .get("index")
            .is_some_and(|choice_index| choice_index.as_u64() != Some(0))
        {
            continue;
        }
        end = end.or(match choice.get("finish_reason").and_then(Value::as_str) {
            None | Some("") => None,
            // OpenAI-compatible routers end a failed answer so.
            Some("error") => Some(provider_failed(None)),
            Some(_) => Some(Instruction::Complete { result: None }),
        });
        // `null` or absent: a chunk of the role, a tool call or the finish reason.
        match choice.pointer("/delta/content") {
            None | Some(Value::Null) => {}
            Some(Value::String(content)) => text.push_str(content),
            // Some OpenAI-compatible providers send content parts instead.
            Some(Value::Array(parts)) if parts.iter().all(is_text_part) => {
                parts
                    .iter()
                    .filter_map(|part| part.get("text").and_then(Value::as_str))
                    .for_each(|part| text.push_str(part));
            }
            Some(_) => {
                return Err(format!(
                    "choices[{index}].delta.content must be a string, null or text parts"
                ));
            }
        }
    }
    Ok(EventRead::text_then(text, end, Dialect::OpenAiChat))
}

/// A content part (`{"type": "text", "text": "..."}`), or another kind of
/// part (an image, reasoning) that carries no answer text.
fn is_text_part(part: &Value) -> bool {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => part.get("text").is_some_and(Value::is_string),
        Some(_) => true,
        None => false,
    }
}

/// An event of the OpenAI Responses API, `response.` cut off its type.
/// Text deltas of every output item count (an answer may be split around a
/// tool call); a refusal is not answer text.
fn responses_event(event: &str, value: &Value) -> Result<Instruction, String> {
    Ok(match event {
        "output_text.delta" => Instruction::Delta {
            text: string_field(value, "delta", "a response.output_text.delta event")?,
            seq: None,
        },
        // `incomplete`: cut short (the token limit, a content filter); what
        // was written is the answer, as with a Chat Completions `length`.
        "completed" | "incomplete" => Instruction::Complete { result: None },
        "failed" => Instruction::Fail {
            error: value
                .pointer("/response/error/message")
                .and_then(Value::as_str)
                .unwrap_or("the model provider failed")
                .to_owned(),
        },
        _ => Instruction::Nothing,
    })
}

/// An event of Anthropic's Messages stream, or `None` when `kind` is not
/// one (its `error` event is read with the other error objects).
fn anthropic_event(kind: &str, value: &Value) -> Result<Option<Instruction>, String> {
    Ok(Some(match kind {
        "content_block_delta" => match value.pointer("/delta/type").and_then(Value::as_str) {
            Some("text_delta") => Instruction::Delta {
                text: value
                    .pointer("/delta/text")
                    .and_then(Value::as_str)
                    .ok_or("a text_delta needs delta.text as a string")?
                    .to_owned(),
                seq: None,
            },
            // thinking, its signature, a tool's input, citations
            _ => Instruction::Nothing,
        },
        "content_block_start" => {
            let block = value.get("content_block");
            let is_text = block
                .and_then(|block| block.get("type"))
                .and_then(Value::as_str)
                == Some("text");
            match block.and_then(|block| block.get("text")) {
                Some(Value::String(text)) if is_text => delta_or_nothing(text.clone()),
                _ => Instruction::Nothing,
            }
        }
        "message_stop" => Instruction::Complete { result: None },
        "message_start" | "message_delta" | "content_block_stop" | "ping" => Instruction::Nothing,
        _ => return Ok(None),
    }))
}

/// A chunk of Gemini's `streamGenerateContent`: the first candidate's
/// text, then its end when the chunk carries a `finishReason` (Gemini sends
/// no end marker of its own).
fn gemini_chunk(value: &Value) -> Result<EventRead, String> {
    let candidates = match value.get("candidates") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(candidates)) => candidates.as_slice(),
        Some(_) => return Err("candidates must be an array".into()),
    };
    let first = candidates.iter().find(|candidate| {
        candidate
            .get("index")
            .is_none_or(|index| index.as_u64() == Some(0))
    });
    let Some(candidate) = first else {
        let blocked = value
            .pointer("/promptFeedback/blockReason")
            .and_then(Value::as_str);
        let instruction = match blocked {
            Some(reason) => Instruction::Fail {
                error: format!("the model provider blocked the prompt: {reason}"),
            },
            None => Instruction::Nothing,
        };
        return Ok(EventRead::one(instruction, Some(Dialect::Gemini)));
    };
    let mut text = String::new();
    let parts = match candidate.pointer("/content/parts") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(parts)) => parts.as_slice(),
        Some(_) => return Err("candidates[0].content.parts must be an array".into()),
    };
    for (index, part) in parts.iter().enumerate() {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        match part.get("text") {
            None | Some(Value::Null) => {}
            Some(Value::String(part_text)) => text.push_str(part_text),
            Some(_) => {
                return Err(format!(
                    "candidates[0].content.parts[{index}].text must be a string"
                ));
            }
        }
    }
    let finished = candidate
        .get("finishReason")
        .and_then(Value::as_str)
        .is_some_and(|reason| reason != "FINISH_REASON_UNSPECIFIED");
    let end = finished.then_some(Instruction::Complete { result: None });
    Ok(EventRead::text_then(text, end, Dialect::Gemini))
}

/// A part of the AI SDK's UI message stream. A part of a kind this broker
/// does not know is skipped (the SDK adds kinds), and tells no dialect.
fn ai_sdk_part(kind: &str, value: &Value) -> Result<EventRead, String> {
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    let instruction = match kind {
        "text-delta" => Instruction::Delta {
            text: string_field(value, "delta", "a text-delta part")?,
            seq: None,
        },
        "finish" => Instruction::Complete { result: None },
        // The AI SDK's error part says `errorText`; the OpenAI Responses
        // API's error event (`{"type": "error", "code", "message"}`) too is
        // read here, as its type has no `response.` prefix.
        "error" => {
            let (error, dialect) = match (field("errorText"), field("message")) {
                (Some(text), _) => (text, Some(Dialect::AiSdk)),
                (None, Some(message)) => (message, Some(Dialect::OpenAiResponses)),
                (None, None) => ("the generation failed".to_owned(), None),
            };
            return Ok(EventRead::one(Instruction::Fail { error }, dialect));
        }
        "abort" => Instruction::Cancel,
        known if is_ai_sdk_kind(known) => Instruction::Nothing,
        _ => return Ok(EventRead::one(Instruction::Nothing, None)),
    };
    Ok(EventRead::one(instruction, Some(Dialect::AiSdk)))
}

/// The UI message stream's part kinds that carry nothing a task keeps.
fn is_ai_sdk_kind(kind: &str) -> bool {
    const PREFIXES: [&str; 6] = ["text-", "reasoning-", "tool-", "source-", "data-", "file"];
    matches!(
        kind,
        "start" | "start-step" | "finish-step" | "message-metadata"
    ) || PREFIXES.iter().any(|prefix| kind.starts_with(prefix))
}

fn string_field(value: &Value, name: &str, what: &str) -> Result<String, String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{what} needs {name} as a string"))
}

fn delta_or_nothing(text: String) -> Instruction {
    if text.is_empty() {
        Instruction::Nothing
    } else {
        Instruction::Delta { text, seq: None }
    }
}

#[cfg(test)]
#[path = "provider_events_tests.rs"]
mod tests;
