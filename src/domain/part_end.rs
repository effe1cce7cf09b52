//! What the end of a part of text keeps besides where it is: what the
//! model's provider said of the part (its `providerMetadata`), and, for a
//! part of the answer, the sources its text cites and where (AI SDK 7's
//! `citations` on `text-end`: Anthropic's and Perplexity's cited passages).
//! A chat UI shows a citation on the words it backs, so it belongs to the
//! part, not beside it as a `source` event is.

use serde_json::{Map, Value, json};

use super::{AnswerPart, add_provider_metadata};

/// What a part's end says. Never empty where it is held (`Option` says
/// "nothing"): [`PartEndSaid::joined`] gives `None` for nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartEndSaid {
    pub provider_metadata: Option<Value>,
    /// Said even when empty: the SDK's message keeps `citations: []`.
    pub citations: Option<Vec<Citation>>,
}

impl PartEndSaid {
    /// An end that says what the provider said of its part.
    pub fn provider(said: Value) -> Self {
        Self {
            provider_metadata: Some(said),
            citations: None,
        }
    }

    /// What an end says (`carried`), with what its provider said of the
    /// part before (`earlier`) where the end itself says nothing of it:
    /// `None` when the two say nothing.
    pub fn joined(carried: Option<Self>, earlier: Option<Value>) -> Option<Self> {
        let mut said = carried.unwrap_or_default();
        if said.provider_metadata.is_none() {
            said.provider_metadata = earlier;
        }
        (said.provider_metadata.is_some() || said.citations.is_some()).then_some(said)
    }

    /// Adds its fields to an end event's `data`.
    pub fn add_to(said: Option<&Self>, data: &mut Value) {
        let Some(said) = said else {
            return;
        };
        add_provider_metadata(data, said.provider_metadata.as_ref());
        if let Some(citations) = &said.citations {
            data["citations"] = citations.iter().map(Citation::data).collect();
        }
    }
}

/// A source the text cites, and where: the cited characters of the text
/// part (`start_index`..`end_index`) and the passage of the source it
/// quotes (`cited_text`), as far as the provider says them.
#[derive(Debug, Clone, PartialEq)]
pub struct Citation {
    /// Always an [`AnswerPart::Source`].
    source: AnswerPart,
    start_index: Option<u64>,
    end_index: Option<u64>,
    cited_text: Option<String>,
}

impl Citation {
    /// A citation of `source` (`what` names it in a refusal).
    pub fn new(
        source: AnswerPart,
        start_index: Option<u64>,
        end_index: Option<u64>,
        cited_text: Option<String>,
        what: &str,
    ) -> Result<Self, String> {
        if !matches!(source, AnswerPart::Source { .. }) {
            return Err(format!("{what}'s source must be a source"));
        }
        if let (Some(start), Some(end)) = (start_index, end_index)
            && start > end
        {
            return Err(format!("{what}'s start index is past its end index"));
        }
        Ok(Self {
            source,
            start_index,
            end_index,
            cited_text,
        })
    }

    /// As an end event carries it: `{"source": {"source_id", "url" | the
    /// document's fields, "title"?, "provider_metadata"?}, "start_index"?,
    /// "end_index"?, "cited_text"?}`.
    pub fn data(&self) -> Value {
        let mut data = Map::new();
        data.insert("source".into(), self.source.fields());
        if let Some(start) = self.start_index {
            data.insert("start_index".into(), json!(start));
        }
        if let Some(end) = self.end_index {
            data.insert("end_index".into(), json!(end));
        }
        if let Some(text) = &self.cited_text {
            data.insert("cited_text".into(), json!(text));
        }
        Value::Object(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> AnswerPart {
        AnswerPart::url_source("s1", "https://e.com", Some("E".into()), "x").unwrap()
    }

    #[test]
    fn an_end_says_its_own_metadata_before_the_parts_and_nothing_when_none_is_said() {
        let own = PartEndSaid::provider(json!({ "a": { "own": 1 } }));
        let earlier = json!({ "a": { "earlier": 1 } });
        assert_eq!(
            PartEndSaid::joined(Some(own.clone()), Some(earlier.clone())),
            Some(own)
        );
        let cited = PartEndSaid {
            provider_metadata: None,
            citations: Some(vec![Citation::new(page(), None, None, None, "x").unwrap()]),
        };
        let joined = PartEndSaid::joined(Some(cited), Some(earlier.clone())).unwrap();
        assert_eq!(
            (joined.provider_metadata, joined.citations.map(|c| c.len())),
            (Some(earlier), Some(1))
        );
        assert_eq!(PartEndSaid::joined(None, None), None);
        let none_cited = PartEndSaid {
            provider_metadata: None,
            citations: Some(Vec::new()),
        };
        let mut data = json!({});
        let kept = PartEndSaid::joined(Some(none_cited), None);
        PartEndSaid::add_to(kept.as_ref(), &mut data);
        assert_eq!(data, json!({ "citations": [] }), "said, if empty");
        assert_eq!(
            PartEndSaid::joined(Some(PartEndSaid::default()), None),
            None
        );
    }

    #[test]
    fn a_citation_is_kept_as_its_source_and_where_it_cites_it() {
        let citation = Citation::new(page(), Some(0), Some(9), Some("cold".into()), "x").unwrap();
        let mut data = json!({ "task_id": "t1" });
        let said = PartEndSaid {
            provider_metadata: None,
            citations: Some(vec![citation]),
        };
        PartEndSaid::add_to(Some(&said), &mut data);
        assert_eq!(
            data,
            json!({ "task_id": "t1", "citations": [{
                "source": { "source_id": "s1", "url": "https://e.com", "title": "E" },
                "start_index": 0, "end_index": 9, "cited_text": "cold"
            }]})
        );
        let file = AnswerPart::file("https://e.com/f", "text/plain", "x").unwrap();
        assert!(Citation::new(file, None, None, None, "x").is_err());
        assert!(Citation::new(page(), Some(5), Some(4), None, "x").is_err());
    }
}
