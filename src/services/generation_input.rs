//! What a producer uploads for one generation (`POST /tasks/{id}/stream`),
//! read one line or one event at a time, in the formats a producer already
//! has at hand:
//!
//! - `application/x-ndjson`: `{"delta": "...", "seq"?: n}`,
//!   `{"reasoning": "...", "seq"?: n}` (the model's thinking),
//!   `{"progress": 0-100, "stage"?, "message"?, "force"?}`, `{"complete": {"result"?}}`,
//!   `{"fail": {"error": "..."}}`, `{"tool_call": {"id", "name", "input"?,
//!   "provider_executed"?, "dynamic"?}}`, `{"tool_result": {"id", "output"?
//!   | "error"? | "denied"?, "preliminary"?}}`, `{"tool_approval": {"id",
//!   "approval_id"}}`, `{"step_end": {"result"?}}`, `{"text_end": {}}` and
//!   `{"reasoning_end": {}}` (a part of text ends; a text's end may say
//!   the sources it cites), and an answer's sources, files, data parts and
//!   providers' own parts (`super::answer_part_lines`); calls,
//!   results, sources, files and ends may say `provider_metadata`;
//! - `text/event-stream` carrying a model provider's streamed answer
//!   (OpenAI Chat Completions or Responses, Anthropic, Gemini) or an AI SDK
//!   UI message stream, read event by event by [`super::provider_events`].
//!
//! A line that does not read is refused in the words every JSON body gets
//! (`error::plain`), naming the field.

use serde::Deserialize;
use serde_json::{Map, Value};

pub use super::tool_lines::{MAX_CREATED_ANSWERS, ToolResultBody, continued_answers};
use super::{
    answer_part_lines::{
        CustomPartBody, DataPartBody, FileBody, PartEndBody, SourceBody, SteeringMessageBody,
    },
    tasks::Delta,
    tool_lines::{ToolApprovalBody, ToolCallBody},
};
use crate::{
    domain::{
        AnswerPart, PartEndSaid, ProducerSeq, TaskChange, TextKind, ToolEvent,
        checked_message_metadata,
    },
    error::plain::{self, JsonError},
};

/// How the upload's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFormat {
    NdJson,
    /// A provider's or the AI SDK's stream, told apart per event.
    EventStream,
}

impl UploadFormat {
    /// The name metrics and logs give the format.
    pub fn label(self) -> &'static str {
        match self {
            Self::NdJson => "ndjson",
            Self::EventStream => "event_stream",
        }
    }

    /// The format a `Content-Type` names; `None` for any other.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-ndjson" | "application/jsonl" => Some(Self::NdJson),
            "text/event-stream" => Some(Self::EventStream),
            _ => None,
        }
    }
}

/// What the end marker of a provider's stream (`[DONE]`, `message_stop`,
/// the AI SDK's `finish`, …) ends: the task (by default), or one step of
/// an answer that goes on (`?ends=step`: one model call of an agent's
/// loop, whose next call is uploaded after the tools ran).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UploadEnds {
    #[default]
    Task,
    Step,
}

/// One thing the producer asks of the task.
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    /// Text to append: of the answer, or of the model's reasoning.
    Delta(Delta),
    Progress {
        progress: Option<f64>,
        stage: Option<String>,
        message: Option<String>,
        /// A lower progress resets it rather than being refused.
        force: bool,
    },
    Complete {
        result: Option<Value>,
    },
    Fail {
        error: String,
    },
    /// The producer stopped the generation (an AI SDK `abort` part, sent
    /// when its stream is aborted): the task is cancelled, its text kept,
    /// as by `POST /tasks/{id}/cancel`.
    Cancel,
    /// A tool call the model made, or a tool's answer.
    Tool(ToolEvent),
    /// A source the answer cites, a file it made, an app's data part.
    Part(AnswerPart),
    /// A part of the text of this kind ended (an AI SDK `text-end` or
    /// `reasoning-end`): what follows of the same kind is a part of its
    /// own. `upload_text_parts` keeps only the ends that tell something,
    /// and gives a kept end what the provider said of its part.
    TextEnd(TextKind, Option<PartEndSaid>),
    /// What the model's provider said of the part of this kind being
    /// written (an AI SDK `providerMetadata` on its start, a delta or its
    /// end; the last said stands). `upload_text_parts` hands it to the
    /// part's end; it is never applied itself.
    PartSaid(TextKind, Value),
    /// One step of the answer ended (an AI SDK `finish-step`, an NDJSON
    /// `step_end`, a provider's end under `?ends=step`); more follows.
    StepEnd {
        result: Option<Value>,
    },
    /// The app's own metadata of the message (an AI SDK part's
    /// `messageMetadata`, an NDJSON `message_metadata` line), merged into
    /// what the message has; `upload_message_metadata` drops one that
    /// changes nothing.
    MessageMetadata(Map<String, Value>),
    /// A line or part the task keeps nothing of.
    Nothing,
}

impl Instruction {
    /// A piece of the answer, unnumbered.
    pub fn answer(text: impl Into<String>) -> Self {
        Self::Delta(Delta::answer(text, None))
    }

    /// A piece of the model's reasoning, unnumbered.
    pub fn reasoning(text: impl Into<String>) -> Self {
        Self::Delta(Delta::reasoning(text, None))
    }

    /// Whether this ends the task (completes, fails or cancels it).
    pub fn ends_task(&self) -> bool {
        matches!(
            self,
            Self::Complete { .. } | Self::Fail { .. } | Self::Cancel
        )
    }

    /// Whether this says nothing of where a step or the answer ends:
    /// nothing, or the message's metadata.
    pub fn is_beside_the_steps(&self) -> bool {
        matches!(self, Self::Nothing | Self::MessageMetadata(_))
    }

    /// The change to the task this asks for: any but text (appended) and
    /// nothing (skipped).
    pub fn into_change(self) -> TaskChange {
        match self {
            Self::Progress {
                progress,
                stage,
                message,
                force,
            } => TaskChange::Update {
                status: None,
                progress,
                stage,
                message,
                force,
            },
            Self::Complete { result } => TaskChange::Complete { result },
            Self::Fail { error } => TaskChange::Fail { error },
            Self::Cancel => TaskChange::Cancel,
            Self::Tool(tool) => TaskChange::Tool(tool),
            Self::Part(part) => TaskChange::Part(part),
            Self::StepEnd { result } => TaskChange::StepEnd { result },
            Self::TextEnd(kind, said) => TaskChange::TextEnd(kind, said),
            Self::MessageMetadata(said) => TaskChange::MessageMetadata(said),
            Self::Delta { .. } | Self::Nothing | Self::PartSaid(..) => {
                unreachable!(
                    "text is appended, nothing is skipped, a part's metadata goes to its end"
                )
            }
        }
    }
}

/// A line of NDJSON as the producer wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NdJsonLine {
    delta: Option<String>,
    reasoning: Option<String>,
    seq: Option<ProducerSeq>,
    progress: Option<f64>,
    stage: Option<String>,
    message: Option<String>,
    force: Option<bool>,
    complete: Option<CompleteBody>,
    fail: Option<FailBody>,
    tool_call: Option<ToolCallBody>,
    tool_result: Option<ToolResultBody>,
    tool_approval: Option<ToolApprovalBody>,
    step_end: Option<CompleteBody>,
    text_end: Option<PartEndBody>,
    reasoning_end: Option<PartEndBody>,
    source: Option<SourceBody>,
    file: Option<FileBody>,
    data_part: Option<DataPartBody>,
    custom_part: Option<CustomPartBody>,
    steering_message: Option<SteeringMessageBody>,
    message_metadata: Option<Value>,
}

/// A `complete` or a `step_end`: how the answer or the step ended. A field
/// it does not know is refused, as every other line's: a misspelt
/// `result` would be lost without a word.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    result: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    error: String,
}

/// The kinds of line a producer writes, as refusals list them.
const KINDS: &str = "delta, reasoning, progress (or stage or message), complete, fail, tool_call, tool_result, \
                     tool_approval, step_end, text_end, reasoning_end, source, file, data_part, \
                     custom_part, steering_message or message_metadata";

/// Reads one NDJSON line (without its line end). An empty line is nothing.
pub fn ndjson_line(line: &str) -> Result<Instruction, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Instruction::Nothing);
    }
    // A field's refusal names the field (and, for one it does not know,
    // the fields it takes); JSON that does not read says what a line is.
    let parsed: NdJsonLine = plain::from_json_line(line).map_err(|error| match error {
        JsonError::Syntax(reason) => format!("not a JSON object of {KINDS}: {reason}"),
        JsonError::Field(reason) => reason,
    })?;
    let kinds = [
        parsed.delta.is_some(),
        parsed.reasoning.is_some(),
        parsed.progress.is_some() || parsed.stage.is_some() || parsed.message.is_some(),
        parsed.complete.is_some(),
        parsed.fail.is_some(),
        parsed.tool_call.is_some(),
        parsed.tool_result.is_some(),
        parsed.tool_approval.is_some(),
        parsed.step_end.is_some(),
        parsed.text_end.is_some(),
        parsed.reasoning_end.is_some(),
        parsed.source.is_some(),
        parsed.file.is_some(),
        parsed.data_part.is_some(),
        parsed.custom_part.is_some(),
        parsed.steering_message.is_some(),
        parsed.message_metadata.is_some(),
    ];
    match kinds.iter().filter(|k| **k).count() {
        0 => return Err(format!("the line has none of {KINDS}")),
        1 => {}
        _ => return Err(format!("the line mixes two or more of {KINDS}; send one")),
    }
    let seq = parsed.seq.map(ProducerSeq::get);
    if seq.is_some() && parsed.delta.is_none() && parsed.reasoning.is_none() {
        return Err("seq goes with a delta or a reasoning".into());
    }
    if parsed.force.is_some() && parsed.progress.is_none() {
        return Err("force goes with a progress".into());
    }
    Ok(if let Some(text) = parsed.delta {
        Instruction::Delta(Delta::answer(text, seq))
    } else if let Some(text) = parsed.reasoning {
        Instruction::Delta(Delta::reasoning(text, seq))
    } else if let Some(complete) = parsed.complete {
        Instruction::Complete {
            result: complete.result,
        }
    } else if let Some(step) = parsed.step_end {
        Instruction::StepEnd {
            result: step.result,
        }
    } else if let Some(end) = parsed.text_end {
        Instruction::TextEnd(TextKind::Answer, end.into_said(TextKind::Answer)?)
    } else if let Some(end) = parsed.reasoning_end {
        Instruction::TextEnd(TextKind::Reasoning, end.into_said(TextKind::Reasoning)?)
    } else if let Some(fail) = parsed.fail {
        Instruction::Fail { error: fail.error }
    } else if let Some(call) = parsed.tool_call {
        Instruction::Tool(call.into_tool_event()?)
    } else if let Some(result) = parsed.tool_result {
        Instruction::Tool(result.into_tool_event()?)
    } else if let Some(source) = parsed.source {
        Instruction::Part(source.into_part()?)
    } else if let Some(file) = parsed.file {
        Instruction::Part(file.into_part()?)
    } else if let Some(data) = parsed.data_part {
        Instruction::Part(data.into_part()?)
    } else if let Some(custom) = parsed.custom_part {
        Instruction::Part(custom.into_part()?)
    } else if let Some(message) = parsed.steering_message {
        Instruction::Part(message.into_part()?)
    } else if let Some(approval) = parsed.tool_approval {
        Instruction::Tool(approval.into_tool_event()?)
    } else if let Some(said) = parsed.message_metadata {
        let said = checked_message_metadata(Some(said), || "a message_metadata".to_owned())?;
        Instruction::MessageMetadata(said.unwrap_or_default())
    } else {
        Instruction::Progress {
            progress: parsed.progress,
            stage: parsed.stage,
            message: parsed.message,
            force: parsed.force.unwrap_or(false),
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::ToolOutcome;

    #[test]
    fn a_step_end_line_is_read_with_its_result_or_none() {
        assert_eq!(
            ndjson_line(r#"{"step_end": {}}"#),
            Ok(Instruction::StepEnd { result: None })
        );
        let reason = json!({ "finish_reason": "tool-calls" });
        assert_eq!(
            ndjson_line(r#"{"step_end": {"result": {"finish_reason": "tool-calls"}}}"#),
            Ok(Instruction::StepEnd {
                result: Some(reason)
            })
        );
    }

    #[test]
    fn an_end_line_with_a_field_it_does_not_know_is_refused_naming_it() {
        for (line, field) in [
            (r#"{"complete": {"reslt": {"tokens": 4}}}"#, "reslt"),
            (r#"{"fail": {"error": "e", "code": 1}}"#, "code"),
            (r#"{"step_end": {"result": {}, "x": 1}}"#, "x"),
        ] {
            let refused = ndjson_line(line).unwrap_err();
            assert!(refused.contains(field), "{line}: {refused}");
        }
        assert!(ndjson_line(r#"{"complete": {}}"#).is_ok());
    }

    #[test]
    fn a_part_end_line_is_read_as_the_end_of_its_kind_and_takes_nothing_else() {
        assert_eq!(
            ndjson_line(r#"{"text_end": {}}"#),
            Ok(Instruction::TextEnd(TextKind::Answer, None))
        );
        assert_eq!(
            ndjson_line(r#"{"reasoning_end": {}}"#),
            Ok(Instruction::TextEnd(TextKind::Reasoning, None))
        );
        for refused in [
            r#"{"text_end": true}"#,
            r#"{"text_end": {"id": "t1"}}"#,
            r#"{"text_end": {}, "delta": "x"}"#,
            r#"{"text_end": {"provider_metadata": "x"}}"#,
        ] {
            assert!(ndjson_line(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn what_the_provider_said_rides_on_ends_calls_results_sources_and_files() {
        let said = json!({ "anthropic": { "signature": "SIG" } });
        assert_eq!(
            ndjson_line(
                r#"{"reasoning_end": {"provider_metadata": {"anthropic": {"signature": "SIG"}}}}"#
            ),
            Ok(Instruction::TextEnd(
                TextKind::Reasoning,
                Some(PartEndSaid::provider(said.clone()))
            ))
        );
        let lines = [
            r#"{"tool_call": {"id": "c1", "name": "w", "provider_metadata": {"anthropic": {"signature": "SIG"}}}}"#,
            r#"{"tool_result": {"id": "c1", "output": 1, "provider_metadata": {"anthropic": {"signature": "SIG"}}}}"#,
            r#"{"source": {"id": "s1", "url": "https://e.com", "provider_metadata": {"anthropic": {"signature": "SIG"}}}}"#,
            r#"{"file": {"url": "https://e.com/f", "media_type": "text/plain", "provider_metadata": {"anthropic": {"signature": "SIG"}}}}"#,
        ];
        for line in lines {
            let data = match ndjson_line(line) {
                Ok(Instruction::Tool(tool)) => tool.data("t"),
                Ok(Instruction::Part(part)) => part.data_of("t"),
                other => panic!("{line}: {other:?}"),
            };
            assert_eq!(data["provider_metadata"], said, "{line}");
        }
        // An object of objects, one per provider, as the SDK's schema.
        for not_objects in [
            r#"{"tool_call": {"id": "c1", "name": "w", "provider_metadata": [1]}}"#,
            r#"{"text_end": {"provider_metadata": {"openai": 5}}}"#,
            r#"{"file": {"url": "u", "media_type": "t", "provider_metadata": {"openai": null}}}"#,
        ] {
            assert!(ndjson_line(not_objects).is_err(), "{not_objects}");
        }
    }

    #[test]
    fn a_malformed_line_is_described_as_a_line_with_its_column() {
        let broken = ndjson_line(r#"{"delta": x}"#).unwrap_err();
        assert!(
            broken.ends_with(
                "not valid JSON: a value is not JSON (strings need double quotes) (column 11)"
            ),
            "{broken}"
        );
        assert!(
            !broken.contains("body") && !broken.contains("line 1"),
            "{broken}"
        );
        let array = ndjson_line(r#"["delta"]"#).unwrap_err();
        assert!(array.ends_with("the line must be a JSON object"), "{array}");
    }

    #[test]
    fn ndjson_lines_read_as_the_contract_names_them() {
        assert_eq!(
            ndjson_line(r#"{"delta": "Hel", "seq": 3}"#),
            Ok(Instruction::Delta(Delta::answer("Hel", Some(3))))
        );
        assert_eq!(
            ndjson_line(r#"{"reasoning": "Let me think", "seq": 2}"#),
            Ok(Instruction::Delta(Delta::reasoning(
                "Let me think",
                Some(2)
            )))
        );
        assert_eq!(
            ndjson_line(r#"{"progress": 40, "stage": "writing"}"#),
            Ok(Instruction::Progress {
                progress: Some(40.0),
                stage: Some("writing".into()),
                message: None,
                force: false,
            })
        );
        assert_eq!(
            ndjson_line(r#"{"progress": 10, "force": true}"#),
            Ok(Instruction::Progress {
                progress: Some(10.0),
                stage: None,
                message: None,
                force: true,
            })
        );
        assert_eq!(
            ndjson_line(r#"{"stage": "again", "force": true}"#),
            Err("force goes with a progress".into())
        );
        assert_eq!(
            ndjson_line(r#"{"complete": {"result": {"n": 1}}}"#),
            Ok(Instruction::Complete {
                result: Some(json!({"n": 1}))
            })
        );
        assert_eq!(
            ndjson_line(r#"{"complete": {}}"#),
            Ok(Instruction::Complete { result: None })
        );
        assert_eq!(
            ndjson_line(r#"{"fail": {"error": "model down"}}"#),
            Ok(Instruction::Fail {
                error: "model down".into()
            })
        );
        assert_eq!(ndjson_line("  "), Ok(Instruction::Nothing));
    }

    #[test]
    fn tool_calls_and_results_read_as_tool_events() {
        let call = ToolEvent::call("c1", "weather", json!({"city": "Oslo"}), "x").unwrap();
        assert_eq!(
            ndjson_line(
                r#"{"tool_call": {"id": "c1", "name": "weather", "input": {"city": "Oslo"}}}"#
            ),
            Ok(Instruction::Tool(call))
        );
        let bare = ndjson_line(r#"{"tool_call": {"id": "c2", "name": "now"}}"#);
        assert!(
            matches!(
                &bare,
                Ok(Instruction::Tool(ToolEvent::Call {
                    input: Value::Null,
                    ..
                }))
            ),
            "{bare:?}"
        );
        let output = ToolOutcome::Output(json!({"celsius": -3}));
        assert_eq!(
            ndjson_line(r#"{"tool_result": {"id": "c1", "output": {"celsius": -3}}}"#),
            Ok(Instruction::Tool(
                ToolEvent::result("c1", output, "x").unwrap()
            ))
        );
        assert_eq!(
            ndjson_line(r#"{"tool_result": {"id": "c1", "error": "no such city"}}"#),
            Ok(Instruction::Tool(
                ToolEvent::result("c1", ToolOutcome::Error("no such city".into()), "x").unwrap()
            ))
        );
        let both = ndjson_line(r#"{"tool_result": {"id": "c1", "output": 1, "error": "e"}}"#);
        assert_eq!(
            both,
            Err("a tool_result has one of output, error and denied".into())
        );
        assert_eq!(
            ndjson_line(r#"{"tool_result": {"id": "c1", "denied": true}}"#),
            Ok(Instruction::Tool(
                ToolEvent::result("c1", ToolOutcome::Denied, "x").unwrap()
            ))
        );
        assert_eq!(
            ndjson_line(r#"{"tool_approval": {"id": "c1", "approval_id": "a1"}}"#),
            Ok(Instruction::Tool(
                ToolEvent::approval_request("c1", "a1", "x").unwrap()
            ))
        );
        let blank = ndjson_line(r#"{"tool_call": {"id": "", "name": "weather"}}"#);
        assert_eq!(blank, Err("a tool_call's id is blank".into()));
        let mixed = ndjson_line(r#"{"delta": "a", "tool_call": {"id": "c", "name": "n"}}"#);
        assert!(mixed.unwrap_err().starts_with("the line mixes"));
    }

    #[test]
    fn sources_files_and_data_parts_read_as_answer_parts() {
        let part = |line: &str| match ndjson_line(line) {
            Ok(Instruction::Part(part)) => Ok(part),
            other => Err(format!("{other:?}")),
        };
        let page = AnswerPart::url_source("s1", "https://e.com", Some("E".into()), "x").unwrap();
        assert_eq!(
            part(r#"{"source": {"id": "s1", "url": "https://e.com", "title": "E"}}"#),
            Ok(page)
        );
        let doc =
            AnswerPart::document_source("s2", "application/pdf", "Q3", Some("q3.pdf".into()), "x");
        assert_eq!(
            part(
                r#"{"source": {"id": "s2", "media_type": "application/pdf", "title": "Q3", "filename": "q3.pdf"}}"#
            ),
            Ok(doc.unwrap())
        );
        let file = AnswerPart::file("data:image/png;base64,AA==", "image/png", "x").unwrap();
        assert_eq!(
            part(r#"{"file": {"url": "data:image/png;base64,AA==", "media_type": "image/png"}}"#),
            Ok(file)
        );
        let data = AnswerPart::data("weather", Some("w1"), json!({"c": 3}), true, "x").unwrap();
        assert_eq!(
            part(
                r#"{"data_part": {"name": "weather", "id": "w1", "data": {"c": 3}, "transient": true}}"#
            ),
            Ok(data)
        );
        for (bad, says) in [
            (r#"{"source": {"id": "s"}}"#, "one of the two"),
            (
                r#"{"source": {"id": "s", "url": "u", "media_type": "text/plain"}}"#,
                "one of the two",
            ),
            (
                r#"{"source": {"id": "s", "url": "u", "filename": "f"}}"#,
                "one of the two",
            ),
            (
                r#"{"source": {"id": "s", "media_type": "text/plain"}}"#,
                "needs a title",
            ),
            (
                r#"{"source": {"id": "", "url": "u"}}"#,
                "a source's id is blank",
            ),
            (r#"{"file": {"url": "u"}}"#, "media_type"),
            (r#"{"data_part": {"name": "weather"}}"#, "data"),
            (
                r#"{"data_part": {"name": " ", "data": 1}}"#,
                "a data_part's name is blank",
            ),
            (
                r#"{"data_part": {"name": "progress", "id": "progress", "data": 1}}"#,
                "the task's own progress",
            ),
            (
                r#"{"data_part": {"name": "w", "data": 1}, "delta": "a"}"#,
                "the line mixes",
            ),
        ] {
            let error = part(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn a_malformed_ndjson_line_is_refused_in_plain_words() {
        for bad in [
            "{\"delta\": ",
            "[1]",
            "{\"delta\": 5}",
            "{}",
            "{\"delta\": \"a\", \"complete\": {}}",
            "{\"delta\": \"a\", \"reasoning\": \"b\"}",
            "{\"reasoning\": 3}",
            "{\"tool_call\": {\"id\": \"c\"}}",
            "{\"tool_call\": {\"id\": 1, \"name\": \"n\"}}",
            "{\"tool_result\": {\"id\": \"c\", \"outcome\": 1}}",
            "{\"source\": {\"id\": 1, \"url\": \"u\"}}",
            "{\"data_part\": {\"name\": \"w\", \"data\": 1, \"transient\": \"yes\"}}",
            "{\"seq\": 1}",
            "{\"delta\": \"a\", \"sequence\": 1}",
            // serde reads a struct from an array of its fields, in order.
            "[\"a\", null, null, null, null, null, null, null, null, null, null]",
        ] {
            let error = ndjson_line(bad).expect_err(bad);
            assert!(
                !error.contains("expected") && !error.contains("invalid type"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn the_content_type_picks_the_format() {
        assert_eq!(
            UploadFormat::from_content_type("application/x-ndjson; charset=utf-8"),
            Some(UploadFormat::NdJson)
        );
        assert_eq!(
            UploadFormat::from_content_type("text/event-stream"),
            Some(UploadFormat::EventStream)
        );
        assert_eq!(UploadFormat::from_content_type("application/json"), None);
    }
}
