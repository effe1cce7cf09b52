//! An upload's NDJSON lines for what an answer carries besides its text:
//! `{"source": {"id", "url"?, "title"?, "media_type"?, "filename"?}}`,
//! `{"file": {"url", "media_type"}}` and `{"data_part": {"name", "id"?,
//! "data", "transient"?}}`, as the AI SDK's `source-url` /
//! `source-document`, `file` and `data-*` parts say them.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::domain::AnswerPart;

/// What a model's provider says of a part, as the AI SDK's schema has it
/// (`providerMetadata`): an object of providers, each an object. Anything
/// else is refused, as the SDK's reader would refuse the part.
pub(super) type ProviderMetadata = std::collections::BTreeMap<String, Map<String, Value>>;

/// `metadata` as the JSON a task's event keeps.
pub(super) fn said(metadata: Option<ProviderMetadata>) -> Option<Value> {
    metadata.map(|providers| {
        Value::Object(
            providers
                .into_iter()
                .map(|(provider, said)| (provider, Value::Object(said)))
                .collect(),
        )
    })
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
    provider_metadata: Option<ProviderMetadata>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBody {
    url: String,
    media_type: String,
    /// What the model's provider said of it (the AI SDK's
    /// `providerMetadata`, an object).
    provider_metadata: Option<ProviderMetadata>,
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
        let said = said(self.provider_metadata);
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
            .with_provider_metadata(said(self.provider_metadata)))
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
