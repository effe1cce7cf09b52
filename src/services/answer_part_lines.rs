//! An upload's NDJSON lines for what an answer carries besides its text:
//! `{"source": {"id", "url"?, "title"?, "media_type"?, "filename"?}}`,
//! `{"file": {"url", "media_type", "reasoning"?}}`, `{"data_part":
//! {"name", "id"?, "data", "transient"?}}`, `{"custom_part": {"kind"}}`
//! and `{"steering_message": {"id", "parts"}}`, as the AI SDK's
//! `source-url` / `source-document`, `file` / `reasoning-file`, `data-*`,
//! `custom` and `steering-message` parts say them; and the ends of parts
//! of text (`{"text_end": {"citations"?}}`, `{"reasoning_end": {}}`).

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{
    AnswerPart, Citation, PartEndSaid, SteeringMessage, SteeringPiece, TextKind,
    checked_provider_metadata,
};

/// A line's `provider_metadata`, checked (see `domain::provider_metadata`).
pub(super) fn said(metadata: Option<Value>, what: &str) -> Result<Option<Value>, String> {
    checked_provider_metadata(metadata, || format!("{what}'s provider_metadata"))
}

/// A source the answer cites: a URL, or a document (its media type and
/// title, and perhaps its file name).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SourceBody {
    id: String,
    url: Option<String>,
    title: Option<String>,
    media_type: Option<String>,
    filename: Option<String>,
    /// What the model's provider said of it (the AI SDK's
    /// `providerMetadata`, an object).
    provider_metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBody {
    url: String,
    media_type: String,
    /// What the model's provider said of it (the AI SDK's
    /// `providerMetadata`, an object).
    provider_metadata: Option<Value>,
    /// Made in the model's reasoning (the AI SDK's `reasoning-file`);
    /// `null` is no, as for every optional field.
    reasoning: Option<bool>,
}

/// A provider's own kind of content (the AI SDK's `custom` part).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CustomPartBody {
    kind: String,
    provider_metadata: Option<Value>,
}

/// A person's message delivered into the running answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SteeringMessageBody {
    id: String,
    parts: Vec<SteeringPieceBody>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum SteeringPieceBody {
    Text {
        text: String,
        provider_metadata: Option<Value>,
    },
    File {
        media_type: String,
        url: String,
        filename: Option<String>,
        provider_reference: Option<Value>,
        provider_metadata: Option<Value>,
    },
}

/// `{"text_end": {}}`: the part of text written so far ends; the next text
/// is a part of its own (`upload_text_parts` keeps it where it parts text,
/// and always when it says something of the part).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PartEndBody {
    /// What the model's provider said of it, as the AI SDK's
    /// `providerMetadata` (an object), given back to the SDK's readers.
    provider_metadata: Option<Value>,
    /// The sources the part's text cites (a `text_end`'s only).
    citations: Option<Vec<CitationBody>>,
}

/// A source the text cites, and where.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CitationBody {
    source: SourceBody,
    start_index: Option<u64>,
    end_index: Option<u64>,
    cited_text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DataPartBody {
    name: String,
    id: Option<String>,
    /// Required: a data part without data says nothing (`null` is data).
    data: Value,
    transient: Option<bool>,
}

impl SourceBody {
    pub(super) fn into_part(self) -> Result<AnswerPart, String> {
        const WHAT: &str = "a source";
        let said = said(self.provider_metadata, WHAT)?;
        let part = match (self.url, self.media_type) {
            (Some(url), None) if self.filename.is_none() => {
                AnswerPart::url_source(&self.id, &url, self.title, WHAT)
            }
            (None, Some(media_type)) => {
                let title = self.title.ok_or("a document source needs a title")?;
                AnswerPart::document_source(&self.id, &media_type, &title, self.filename, WHAT)
            }
            _ => Err(
                "a source cites a url, or a document by media_type and title \
                      (and perhaps filename): one of the two"
                    .into(),
            ),
        }?;
        Ok(part.with_provider_metadata(said))
    }
}

impl FileBody {
    pub(super) fn into_part(self) -> Result<AnswerPart, String> {
        let file = if self.reasoning == Some(true) {
            AnswerPart::reasoning_file(&self.url, &self.media_type, "a file")?
        } else {
            AnswerPart::file(&self.url, &self.media_type, "a file")?
        };
        Ok(file.with_provider_metadata(said(self.provider_metadata, "a file")?))
    }
}

impl CustomPartBody {
    pub(super) fn into_part(self) -> Result<AnswerPart, String> {
        const WHAT: &str = "a custom_part";
        Ok(AnswerPart::custom(&self.kind, WHAT)?
            .with_provider_metadata(said(self.provider_metadata, WHAT)?))
    }
}

impl SteeringMessageBody {
    pub(super) fn into_part(self) -> Result<AnswerPart, String> {
        const WHAT: &str = "a steering_message";
        let parts = self
            .parts
            .into_iter()
            .enumerate()
            .map(|(at, piece)| {
                let what = &format!("{WHAT}'s parts[{at}]");
                match piece {
                    SteeringPieceBody::Text {
                        text,
                        provider_metadata,
                    } => Ok(SteeringPiece::Text {
                        text,
                        provider_metadata: said(provider_metadata, what)?,
                    }),
                    SteeringPieceBody::File {
                        media_type,
                        url,
                        filename,
                        provider_reference,
                        provider_metadata,
                    } => Ok(SteeringPiece::file(
                        &media_type,
                        &url,
                        filename,
                        provider_reference,
                        what,
                    )?
                    .with_provider_metadata(said(provider_metadata, what)?)),
                }
            })
            .collect::<Result<_, String>>()?;
        Ok(AnswerPart::Steering(SteeringMessage::new(
            &self.id, parts, WHAT,
        )?))
    }
}

impl PartEndBody {
    /// What the end of a part of `kind` says (`None`: nothing).
    pub(super) fn into_said(self, kind: TextKind) -> Result<Option<PartEndSaid>, String> {
        let what = match kind {
            TextKind::Answer => "a text_end",
            TextKind::Reasoning => "a reasoning_end",
        };
        let citations = match (self.citations, kind) {
            (None, _) => None,
            (Some(_), TextKind::Reasoning) => {
                return Err("citations go with a text_end: reasoning cites nothing".into());
            }
            (Some(citations), TextKind::Answer) => Some(
                citations
                    .into_iter()
                    .map(CitationBody::into_citation)
                    .collect::<Result<_, _>>()?,
            ),
        };
        let said = PartEndSaid {
            provider_metadata: said(self.provider_metadata, what)?,
            citations,
        };
        Ok(PartEndSaid::joined(Some(said), None))
    }
}

impl CitationBody {
    fn into_citation(self) -> Result<Citation, String> {
        let (start, end) = (self.start_index, self.end_index);
        let source = self.source.into_part()?;
        Citation::new(source, start, end, self.cited_text, "a citation")
    }
}

impl DataPartBody {
    pub(super) fn into_part(self) -> Result<AnswerPart, String> {
        let id = self.id.as_deref();
        if self.name == "progress" && id == Some("progress") {
            return Err(
                "the data part progress of id progress is the task's own progress: \
                        send a progress line, or give your part another id"
                    .into(),
            );
        }
        let transient = self.transient == Some(true);
        AnswerPart::data(&self.name, id, self.data, transient, "a data_part")
    }
}
