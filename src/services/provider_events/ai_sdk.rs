//! The AI SDK's UI message stream, as an app's `toUIMessageStreamResponse()`
//! writes it.

use serde_json::Value;

use super::{
    Dialect, EndNote, EventRead, Instruction, Piece, ToolPiece, optional_string_field, string_field,
};
use crate::domain::{
    AnswerPart, Citation, FinishReason, PartEndSaid, SteeringMessage, SteeringPiece, TextKind,
    ToolEvent, ToolFlags, ToolLabels, ToolOutcome, checked_message_metadata,
    checked_provider_metadata,
};

/// A part of the AI SDK's UI message stream. A part of a kind this broker
/// does not know is skipped (the SDK adds kinds), and tells no dialect.
pub(super) fn ai_sdk_part(kind: &str, value: &Value) -> Result<EventRead, String> {
    let read = text_part(kind, value)?;
    // What the provider says of a part of text (its start, a delta or its
    // end) goes, after what the part says, to the part's end.
    let said_of = match kind.split_once('-') {
        Some(("text", "start" | "delta" | "end")) => Some(TextKind::Answer),
        Some(("reasoning", "start" | "delta" | "end")) => Some(TextKind::Reasoning),
        _ => None,
    };
    let Some(part_kind) = said_of else {
        return Ok(read);
    };
    let Some(said) = provider_metadata(value, || format!("a {kind} part"))? else {
        return Ok(read);
    };
    let said = Instruction::PartSaid(part_kind, said);
    Ok(match read.instruction {
        // A start says nothing else; an end is told after it.
        Instruction::Nothing => EventRead::one(said, Some(Dialect::AiSdk)),
        Instruction::TextEnd(..) => EventRead::one(said, Some(Dialect::AiSdk))
            .with_pieces(vec![Piece::Text(read.instruction)]),
        delta => EventRead::one(delta, Some(Dialect::AiSdk)).with_pieces(vec![Piece::Text(said)]),
    })
}

/// A part as the task keeps it, but for what its provider said of text.
fn text_part(kind: &str, value: &Value) -> Result<EventRead, String> {
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    let instruction = match kind {
        "text-delta" => Instruction::answer(string_field(value, "delta", "a text-delta part")?),
        "reasoning-delta" => {
            Instruction::reasoning(string_field(value, "delta", "a reasoning-delta part")?)
        }
        // Its `finishReason` is already in the words a task keeps.
        "finish" => {
            let note = field("finishReason").and_then(|said| {
                FinishReason::parse(&said).map(|reason| EndNote::finish(reason, &said, None))
            });
            let complete = Instruction::Complete { result: None };
            let read = match message_metadata(kind, value)? {
                // What the app says of the message goes in before its end.
                Some(said) => EventRead {
                    then: Some(complete),
                    ..EventRead::one(said, Some(Dialect::AiSdk))
                },
                None => EventRead::one(complete, Some(Dialect::AiSdk)),
            };
            return Ok(read.noting(note));
        }
        // The app's own metadata of the message (`messageMetadata`).
        "start" | "message-metadata" => {
            message_metadata(kind, value)?.unwrap_or(Instruction::Nothing)
        }
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
        // The text that follows (after a source, say) is a part of its own.
        "text-end" => {
            let said = citations(value)?.map(|cited| PartEndSaid {
                provider_metadata: None,
                citations: Some(cited),
            });
            Instruction::TextEnd(TextKind::Answer, said)
        }
        "reasoning-end" => Instruction::TextEnd(TextKind::Reasoning, None),
        // One model call of a multi-step answer ended; the next may follow
        // (`start-step` is where it begins: nothing to keep).
        "finish-step" => Instruction::StepEnd { result: None },
        "tool-input-available"
        | "tool-output-available"
        | "tool-output-error"
        | "tool-input-error"
        | "tool-output-denied"
        | "tool-approval-request" => {
            let tool = tool_part(kind, value)?;
            let read = EventRead::one(Instruction::Nothing, Some(Dialect::AiSdk));
            return Ok(read.with_tools(vec![ToolPiece::Whole(tool)]));
        }
        "source-url" | "source-document" | "file" | "reasoning-file" | "custom" => {
            Instruction::Part(answer_part(kind, value)?)
        }
        "steering-message" => Instruction::Part(AnswerPart::Steering(steering_message(value)?)),
        // An app's own part (`writer.write({type: "data-…"})`). Ours,
        // `data-progress` under the id `progress`, is what the task's
        // progress already says: kept once, as progress.
        data if data.starts_with("data-") => {
            let name = &data["data-".len()..];
            let what = format!("a {data} part");
            // As the SDK's own schema has them: refused otherwise, as the
            // SDK's reader would refuse the part.
            let id = optional_string_field(value, "id", &what)?;
            let id = id.as_deref();
            let transient = match value.get("transient") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(transient)) => *transient,
                Some(_) => return Err(format!("{what}'s transient must be true or false")),
            };
            if name == "progress" && id == Some("progress") {
                Instruction::Nothing
            } else {
                let content = value.get("data").cloned().unwrap_or(Value::Null);
                Instruction::Part(AnswerPart::data(name, id, content, transient, &what)?)
            }
        }
        known if is_ai_sdk_kind(known) => Instruction::Nothing,
        _ => return Ok(EventRead::one(Instruction::Nothing, None)),
    };
    Ok(EventRead::one(instruction, Some(Dialect::AiSdk)))
}

/// A tool part: a call whose input is whole, a call whose input the app
/// refused (kept with why), a tool's output or failure; with the flags the
/// part says (`providerExecuted`, `dynamic`, `preliminary`).
fn tool_part(kind: &str, value: &Value) -> Result<ToolEvent, String> {
    let what = format!("a {kind} part");
    let id = string_field(value, "toolCallId", &what)?;
    let call = || {
        let name = string_field(value, "toolName", &what)?;
        let input = value.get("input").cloned().unwrap_or(Value::Null);
        ToolEvent::call(&id, &name, input, &what)
    };
    let error = || string_field(value, "errorText", &what);
    let tool = match kind {
        "tool-input-available" => call()?,
        "tool-input-error" => {
            let mut refused = call()?;
            if let ToolEvent::Call { input_error, .. } = &mut refused {
                *input_error = Some(error()?);
            }
            refused
        }
        "tool-output-error" => ToolEvent::result(&id, ToolOutcome::Error(error()?), &what)?,
        "tool-output-denied" => ToolEvent::result(&id, ToolOutcome::Denied, &what)?,
        "tool-approval-request" => {
            let approval_id = string_field(value, "approvalId", &what)?;
            ToolEvent::approval_request(&id, &approval_id, &what)?
        }
        _ => {
            let output = value.get("output").cloned().unwrap_or(Value::Null);
            ToolEvent::result(&id, ToolOutcome::Output(output), &what)?
        }
    };
    let labels = ToolLabels::read(value, ToolLabels::AI_SDK_NAMES, &what)?;
    Ok(tool
        .flagged(ToolFlags::read(value, ToolFlags::AI_SDK_NAMES))
        .labelled(labels)
        .with_provider_metadata(provider_metadata(value, || what)?))
}

/// A part's `providerMetadata`, kept as the part carries it (see
/// `domain::provider_metadata`).
fn provider_metadata(
    value: &Value,
    what: impl FnOnce() -> String,
) -> Result<Option<Value>, String> {
    checked_provider_metadata(value.get("providerMetadata").cloned(), || {
        format!("{}'s providerMetadata", what())
    })
}

/// A part's `messageMetadata`, as the message's metadata to merge.
fn message_metadata(kind: &str, value: &Value) -> Result<Option<Instruction>, String> {
    let said = checked_message_metadata(value.get("messageMetadata").cloned(), || {
        format!("a {kind} part's messageMetadata")
    })?;
    Ok(said.map(Instruction::MessageMetadata))
}

/// A source the answer cites, a file it made (in its reasoning, perhaps),
/// or a provider's own kind of content.
fn answer_part(kind: &str, value: &Value) -> Result<AnswerPart, String> {
    let what = format!("a {kind} part");
    let part = match kind {
        "source-url" | "source-document" => source(kind, "sourceId", value, &what),
        "custom" => AnswerPart::custom(&string_field(value, "kind", &what)?, &what),
        _ => {
            let url = string_field(value, "url", &what)?;
            let media_type = string_field(value, "mediaType", &what)?;
            if kind == "reasoning-file" {
                AnswerPart::reasoning_file(&url, &media_type, &what)
            } else {
                AnswerPart::file(&url, &media_type, &what)
            }
        }
    }?;
    Ok(part.with_provider_metadata(provider_metadata(value, || what)?))
}

/// A source citing a URL (`kind` `source-url`) or a document, its id under
/// `id_field`.
fn source(kind: &str, id_field: &str, value: &Value, what: &str) -> Result<AnswerPart, String> {
    let id = string_field(value, id_field, what)?;
    if kind == "source-url" {
        let url = string_field(value, "url", what)?;
        return AnswerPart::url_source(
            &id,
            &url,
            optional_string_field(value, "title", what)?,
            what,
        );
    }
    let media_type = string_field(value, "mediaType", what)?;
    let title = string_field(value, "title", what)?;
    let filename = optional_string_field(value, "filename", what)?;
    AnswerPart::document_source(&id, &media_type, &title, filename, what)
}

/// A `text-end` part's `citations` (AI SDK 7), checked as the SDK's own
/// schema checks them, so that no reader of the task's stream refuses it.
fn citations(value: &Value) -> Result<Option<Vec<Citation>>, String> {
    let Some(said) = value.get("citations").filter(|said| !said.is_null()) else {
        return Ok(None);
    };
    let Some(said) = said.as_array() else {
        return Err("a text-end part's citations must be an array".into());
    };
    said.iter()
        .map(citation)
        .collect::<Result<_, _>>()
        .map(Some)
}

fn citation(value: &Value) -> Result<Citation, String> {
    const WHAT: &str = "a text-end part's citation";
    let said = value.get("source").filter(|source| source.is_object());
    let cited = said.ok_or_else(|| format!("{WHAT} needs its source as an object"))?;
    if cited.get("type").and_then(Value::as_str) != Some("source") {
        return Err(format!("{WHAT}'s source must be of type source"));
    }
    let kind = match cited.get("sourceType").and_then(Value::as_str) {
        Some("url") => "source-url",
        Some("document") => "source-document",
        _ => return Err(format!("{WHAT}'s sourceType must be url or document")),
    };
    let source = source(kind, "id", cited, WHAT)?
        .with_provider_metadata(provider_metadata(cited, || WHAT.to_owned())?);
    // As the SDK's schema reads it: any JSON number that is a whole one
    // (`1e2` too, which JavaScript reads as 100).
    let index = |name: &str| match value.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(index) => index
            .as_u64()
            .or_else(|| {
                let whole = index.as_f64().filter(|n| n.fract() == 0.0);
                whole
                    .filter(|n| (0.0..=9_007_199_254_740_991.0).contains(n))
                    .map(|n| n as u64)
            })
            .map(Some)
            .ok_or_else(|| format!("{WHAT}'s {name} must be a whole number, 0 or more")),
    };
    let cited_text = optional_string_field(value, "citedText", WHAT)?;
    let (start, end) = (index("startIndex")?, index("endIndex")?);
    Citation::new(source, start, end, cited_text, WHAT)
}

/// A `steering-message` part (AI SDK 7): a person's message delivered
/// into the running answer, its parts checked as the SDK's schema has them.
fn steering_message(value: &Value) -> Result<SteeringMessage, String> {
    const WHAT: &str = "a steering-message part";
    let id = string_field(value, "id", WHAT)?;
    let Some(said) = value.get("parts").and_then(Value::as_array) else {
        return Err(format!("{WHAT} needs its parts as an array"));
    };
    let parts = said
        .iter()
        .enumerate()
        .map(|(at, part)| {
            let what = &format!("{WHAT}'s parts[{at}]");
            let piece = match part.get("type").and_then(Value::as_str) {
                Some("text") => SteeringPiece::Text {
                    text: string_field(part, "text", what)?,
                    provider_metadata: None,
                },
                Some("file") => SteeringPiece::file(
                    &string_field(part, "mediaType", what)?,
                    &string_field(part, "url", what)?,
                    optional_string_field(part, "filename", what)?,
                    part.get("providerReference").cloned(),
                    what,
                )?,
                _ => return Err(format!("{what} must be of type text or file")),
            };
            Ok(piece.with_provider_metadata(provider_metadata(part, || what.clone())?))
        })
        .collect::<Result<_, String>>()?;
    SteeringMessage::new(&id, parts, WHAT)
}

/// The UI message stream's part kinds that carry nothing a task keeps
/// (`reset-step` among them: see `ai-sdk.md`).
fn is_ai_sdk_kind(kind: &str) -> bool {
    const PREFIXES: [&str; 6] = ["text-", "reasoning-", "tool-", "source-", "data-", "file"];
    matches!(kind, "start-step" | "reset-step")
        || PREFIXES.iter().any(|prefix| kind.starts_with(prefix))
}
