//! What a producer uploads for one generation (`POST /tasks/{id}/stream`),
//! read one line or one event at a time, in the three formats a producer
//! already has at hand:
//!
//! - `application/x-ndjson`: `{"delta": "...", "seq"?: n}`,
//!   `{"progress": 0-100, "stage"?, "message"?}`, `{"complete": {"result"?}}`,
//!   `{"fail": {"error": "..."}}`;
//! - `text/event-stream` carrying an OpenAI Chat Completions stream:
//!   `choices[].delta.content` are deltas, `data: [DONE]` completes;
//! - `text/event-stream` carrying an AI SDK UI message stream: `text-delta`
//!   parts are deltas, `finish` completes, `error` fails; its other parts
//!   (start, steps, reasoning, data, …) say nothing the task keeps.
//!
//! A line that does not read is refused in the words every JSON body gets
//! (`error::plain`), naming the field.

use serde::Deserialize;
use serde_json::Value;

use crate::{
    domain::ProducerSeq,
    error::plain::{self, JsonError},
};

/// How the upload's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFormat {
    NdJson,
    /// OpenAI or AI SDK, told apart per event (`choices` or `type`).
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

/// One thing the producer asks of the task.
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    Delta {
        text: String,
        seq: Option<u64>,
    },
    Progress {
        progress: Option<f64>,
        stage: Option<String>,
        message: Option<String>,
    },
    Complete {
        result: Option<Value>,
    },
    Fail {
        error: String,
    },
    /// A line or part the task keeps nothing of.
    Nothing,
}

/// A line of NDJSON as the producer wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NdJsonLine {
    delta: Option<String>,
    seq: Option<ProducerSeq>,
    progress: Option<f64>,
    stage: Option<String>,
    message: Option<String>,
    complete: Option<CompleteBody>,
    fail: Option<FailBody>,
}

#[derive(Debug, Default, Deserialize)]
struct CompleteBody {
    result: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct FailBody {
    error: String,
}

/// Reads one NDJSON line (without its line end). An empty line is nothing.
pub fn ndjson_line(line: &str) -> Result<Instruction, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Instruction::Nothing);
    }
    let parsed: NdJsonLine = plain::from_json_object(line.as_bytes()).map_err(|error| {
        let (JsonError::Syntax(reason) | JsonError::Field(reason)) = error;
        format!("not a JSON object of delta, progress, complete or fail: {reason}")
    })?;
    let kinds = [
        parsed.delta.is_some(),
        parsed.progress.is_some() || parsed.stage.is_some() || parsed.message.is_some(),
        parsed.complete.is_some(),
        parsed.fail.is_some(),
    ];
    match kinds.iter().filter(|k| **k).count() {
        0 => return Err("the line has none of delta, progress, complete or fail".into()),
        1 => {}
        _ => return Err("the line mixes delta, progress, complete and fail; send one".into()),
    }
    if parsed.seq.is_some() && parsed.delta.is_none() {
        return Err("seq goes with a delta".into());
    }
    Ok(if let Some(text) = parsed.delta {
        Instruction::Delta {
            text,
            seq: parsed.seq.map(ProducerSeq::get),
        }
    } else if let Some(complete) = parsed.complete {
        Instruction::Complete {
            result: complete.result,
        }
    } else if let Some(fail) = parsed.fail {
        Instruction::Fail { error: fail.error }
    } else {
        Instruction::Progress {
            progress: parsed.progress,
            stage: parsed.stage,
            message: parsed.message,
        }
    })
}

/// Reads the `data` of one event of an OpenAI or AI SDK stream.
pub fn event_stream_data(data: &str) -> Result<Instruction, String> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Instruction::Complete { result: None });
    }
    let value: Value = plain::from_json_slice(data.as_bytes()).map_err(|error| {
        let (JsonError::Syntax(reason) | JsonError::Field(reason)) = error;
        format!("the event's data is not JSON: {reason}")
    })?;
    if let Some(choices) = value.get("choices") {
        return openai_chunk(choices);
    }
    // A provider's failure mid-stream: `data: {"error": {"message": ...}}`.
    if let Some(error) = value.get("error").filter(|error| error.is_object()) {
        let message = error.get("message").and_then(Value::as_str);
        return Ok(Instruction::Fail {
            error: message.unwrap_or("the model provider failed").to_owned(),
        });
    }
    match value.get("type").and_then(Value::as_str) {
        Some(part) => ai_sdk_part(part, &value),
        None => {
            Err("the event is neither an OpenAI chunk (choices) nor an AI SDK part (type)".into())
        }
    }
}

/// `choices[].delta.content` of a Chat Completions chunk, joined: the
/// first choice's (`index` 0, or no index). A request with `n` > 1 streams
/// several answers in the same chunks; a task holds one.
fn openai_chunk(choices: &Value) -> Result<Instruction, String> {
    let choices = choices
        .as_array()
        .ok_or("choices must be an array of chunk choices")?;
    let mut text = String::new();
    for (index, choice) in choices.iter().enumerate() {
        if choice
            .get("index")
            .is_some_and(|choice_index| choice_index.as_u64() != Some(0))
        {
            continue;
        }
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
    Ok(if text.is_empty() {
        Instruction::Nothing
    } else {
        Instruction::Delta { text, seq: None }
    })
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

fn ai_sdk_part(part: &str, value: &Value) -> Result<Instruction, String> {
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(match part {
        "text-delta" => Instruction::Delta {
            text: field("delta").ok_or("a text-delta part needs delta as a string")?,
            seq: None,
        },
        "finish" => Instruction::Complete { result: None },
        "error" => Instruction::Fail {
            error: field("errorText").unwrap_or_else(|| "the generation failed".into()),
        },
        "abort" => Instruction::Fail {
            error: "the producer aborted the generation".into(),
        },
        _ => Instruction::Nothing,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ndjson_lines_read_as_the_contract_names_them() {
        assert_eq!(
            ndjson_line(r#"{"delta": "Hel", "seq": 3}"#),
            Ok(Instruction::Delta {
                text: "Hel".into(),
                seq: Some(3)
            })
        );
        assert_eq!(
            ndjson_line(r#"{"progress": 40, "stage": "writing"}"#),
            Ok(Instruction::Progress {
                progress: Some(40.0),
                stage: Some("writing".into()),
                message: None
            })
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
    fn a_malformed_ndjson_line_is_refused_in_plain_words() {
        for bad in [
            "{\"delta\": ",
            "[1]",
            "{\"delta\": 5}",
            "{}",
            "{\"delta\": \"a\", \"complete\": {}}",
            "{\"seq\": 1}",
            "{\"delta\": \"a\", \"sequence\": 1}",
            // serde reads a struct from an array of its fields, in order.
            "[\"a\", null, null, null, null, null, null]",
        ] {
            let error = ndjson_line(bad).expect_err(bad);
            assert!(
                !error.contains("expected") && !error.contains("invalid type"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn an_openai_stream_gives_its_content_deltas_and_completes_at_done() {
        let chunk = r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
        assert_eq!(
            event_stream_data(chunk),
            Ok(Instruction::Delta {
                text: "Hi".into(),
                seq: None
            })
        );
        let role_only = r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#;
        assert_eq!(event_stream_data(role_only), Ok(Instruction::Nothing));
        let null_content =
            r#"{"choices":[{"index":0,"delta":{"content":null},"finish_reason":"stop"}]}"#;
        assert_eq!(event_stream_data(null_content), Ok(Instruction::Nothing));
        let parts = r#"{"choices":[{"delta":{"content":[{"type":"text","text":"Hel"},{"type":"image_url","image_url":{}},{"type":"text","text":"lo"}]}}]}"#;
        assert_eq!(
            event_stream_data(parts),
            Ok(Instruction::Delta {
                text: "Hello".into(),
                seq: None
            })
        );
        assert_eq!(
            event_stream_data("[DONE]"),
            Ok(Instruction::Complete { result: None })
        );
    }

    #[test]
    fn with_several_choices_only_the_first_answer_is_the_tasks_text() {
        let both = r#"{"choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":{"content":"a"}}]}"#;
        assert_eq!(
            event_stream_data(both),
            Ok(Instruction::Delta {
                text: "a".into(),
                seq: None
            })
        );
        let second_only = r#"{"choices":[{"index":1,"delta":{"content":"b"}}]}"#;
        assert_eq!(event_stream_data(second_only), Ok(Instruction::Nothing));
    }

    #[test]
    fn an_openai_chunk_whose_content_is_not_text_is_refused_not_skipped() {
        for bad in [
            r#"{"choices":[{"delta":{"content":5}}]}"#,
            r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":{"text":"b"}}}]}"#,
            r#"{"choices":[{"delta":{"content":[{"type":"text","text":7}]}}]}"#,
            r#"{"choices":[{"delta":{"content":["loose text"]}}]}"#,
        ] {
            let error = event_stream_data(bad).expect_err(bad);
            assert!(error.contains("delta.content must be"), "{bad}: {error}");
        }
    }

    #[test]
    fn an_ai_sdk_stream_gives_its_text_deltas_and_ends_with_finish_or_error() {
        assert_eq!(
            event_stream_data(r#"{"type":"text-delta","id":"t1","delta":"lo"}"#),
            Ok(Instruction::Delta {
                text: "lo".into(),
                seq: None
            })
        );
        for quiet in [
            r#"{"type":"start","messageId":"m1"}"#,
            r#"{"type":"text-start","id":"t1"}"#,
            r#"{"type":"finish-step"}"#,
            r#"{"type":"data-weather","data":{}}"#,
        ] {
            assert_eq!(
                event_stream_data(quiet),
                Ok(Instruction::Nothing),
                "{quiet}"
            );
        }
        assert_eq!(
            event_stream_data(r#"{"type":"finish"}"#),
            Ok(Instruction::Complete { result: None })
        );
        assert_eq!(
            event_stream_data(r#"{"type":"error","errorText":"rate limited"}"#),
            Ok(Instruction::Fail {
                error: "rate limited".into()
            })
        );
        assert!(event_stream_data(r#"{"type":"text-delta"}"#).is_err());
        assert_eq!(
            event_stream_data(r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#),
            Ok(Instruction::Fail {
                error: "Rate limit reached".into()
            })
        );
        assert!(event_stream_data("not json").is_err());
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
