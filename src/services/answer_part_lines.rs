//! An upload's NDJSON lines for what an answer carries besides its text:
//! `{"source": {"id", "url"?, "title"?, "media_type"?, "filename"?}}`,
//! `{"file": {"url", "media_type"}}` and `{"data_part": {"name", "id"?,
//! "data", "transient"?}}`, as the AI SDK's `source-url` /
//! `source-document`, `file` and `data-*` parts say them.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{AnswerPart, checked_provider_metadata};

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DataPartBody {
    name: String,
    id: Option<String>,
    /// Required: a data part without data says nothing (`null` is data).
    data: Value,
    #[serde(default)]
    transient: bool,
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
        Ok(AnswerPart::file(&self.url, &self.media_type, "a file")?
            .with_provider_metadata(said(self.provider_metadata, "a file")?))
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
        AnswerPart::data(&self.name, id, self.data, self.transient, "a data_part")
    }
}
