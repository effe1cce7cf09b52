//! Tool calls a provider streams in pieces, put back together. OpenAI's
//! Chat Completions and Anthropic's Messages stream a call's input as
//! fragments of its JSON text (`function.arguments`, `input_json_delta`)
//! after a first piece naming the call; a task keeps the whole call, once
//! its input is complete: at Anthropic's `content_block_stop`, at a Chat
//! chunk's `finish_reason`, or at the body's end.
//!
//! Streams that send a call whole (the Responses API's finished output
//! item, Gemini's `functionCall`, the AI SDK's `tool-input-available`)
//! give it as [`ToolPiece::Whole`].

use std::collections::BTreeMap;

use serde_json::Value;

use crate::domain::ToolEvent;

/// A piece of a tool call, as one event of a stream carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolPiece {
    /// A call or a result, whole.
    Whole(ToolEvent),
    /// The call at `index` (of the answer's calls) begins: its id and name.
    Begin {
        index: u64,
        id: Option<String>,
        name: Option<String>,
    },
    /// More of the input's JSON text of the call at `index`.
    Input { index: u64, fragment: String },
    /// The call at `index` is complete; `None`: every call begun is.
    End { index: Option<u64> },
    /// A whole call its provider gave no id (Gemini's `functionCall`
    /// mostly): it gets one made up.
    WithoutId { name: String, input: Value },
}

/// The calls begun and not yet complete, by index.
#[derive(Debug, Default)]
pub struct ToolCallAssembly {
    open: BTreeMap<u64, OpenCall>,
    /// The ids made up so far.
    made_up: u64,
}

#[derive(Debug, Default)]
struct OpenCall {
    id: Option<String>,
    name: Option<String>,
    input: String,
}

impl ToolCallAssembly {
    /// Takes one piece; answers the calls it completes, in their order.
    pub fn take(&mut self, piece: ToolPiece) -> Vec<ToolEvent> {
        match piece {
            ToolPiece::Whole(tool) => vec![tool],
            ToolPiece::Begin { index, id, name } => {
                let call = self.open.entry(index).or_default();
                // OpenAI repeats neither, but OpenAI-compatible servers
                // sometimes send the name again with later pieces.
                call.id = call.id.take().or(id);
                call.name = call.name.take().or(name);
                Vec::new()
            }
            ToolPiece::Input { index, fragment } => {
                self.open
                    .entry(index)
                    .or_default()
                    .input
                    .push_str(&fragment);
                Vec::new()
            }
            ToolPiece::End { index: Some(index) } => self
                .open
                .remove(&index)
                .map(|call| self.assembled(call))
                .into_iter()
                .collect(),
            ToolPiece::End { index: None } => self.at_end(),
            ToolPiece::WithoutId { name, input } => vec![self.whole(None, Some(name), input)],
        }
    }

    /// Every call still open, complete as it is (the answer ended).
    pub fn at_end(&mut self) -> Vec<ToolEvent> {
        std::mem::take(&mut self.open)
            .into_values()
            .map(|call| self.assembled(call))
            .collect()
    }

    fn assembled(&mut self, call: OpenCall) -> ToolEvent {
        self.whole(call.id, call.name, input_of(call.input))
    }

    /// The call, whole. A call whose provider never said its id or name
    /// gets them made up (`call_1`, `call_2`, … in the upload; `unknown`):
    /// the call is kept, not the upload refused for it.
    fn whole(&mut self, id: Option<String>, name: Option<String>, input: Value) -> ToolEvent {
        let id = id.filter(|id| valid(id)).unwrap_or_else(|| {
            self.made_up += 1;
            format!("call_{}", self.made_up)
        });
        let name = name
            .filter(|name| valid(name))
            .unwrap_or_else(|| "unknown".to_owned());
        ToolEvent::Call { id, name, input }
    }
}

/// An id or a name a task keeps as it is given.
fn valid(label: &str) -> bool {
    ToolEvent::call(label, label, Value::Null, "").is_ok()
}

/// A call's input from its JSON text: nothing is no input (`{}`, as the
/// providers mean it); text that is not JSON (a model's malformed call) is
/// kept as the text, for the viewer to see what the model wrote.
pub fn input_of(text: String) -> Value {
    if text.trim().is_empty() {
        return Value::Object(serde_json::Map::new());
    }
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn begin(index: u64, id: &str, name: &str) -> ToolPiece {
        ToolPiece::Begin {
            index,
            id: Some(id.into()),
            name: Some(name.into()),
        }
    }

    fn input(index: u64, fragment: &str) -> ToolPiece {
        ToolPiece::Input {
            index,
            fragment: fragment.into(),
        }
    }

    fn call(id: &str, name: &str, input: Value) -> ToolEvent {
        ToolEvent::Call {
            id: id.into(),
            name: name.into(),
            input,
        }
    }

    #[test]
    fn fragments_of_two_calls_become_two_whole_calls_at_the_end() {
        let mut calls = ToolCallAssembly::default();
        for piece in [
            begin(0, "c0", "weather"),
            input(0, "{\"city\":"),
            begin(1, "c1", "time"),
            input(0, "\"Oslo\"}"),
        ] {
            assert_eq!(calls.take(piece), vec![]);
        }
        assert_eq!(
            calls.take(ToolPiece::End { index: None }),
            vec![
                call("c0", "weather", json!({"city": "Oslo"})),
                call("c1", "time", json!({})),
            ]
        );
        assert_eq!(calls.at_end(), vec![], "nothing is given twice");
    }

    #[test]
    fn a_call_ends_by_its_index_and_keeps_input_that_is_not_json() {
        let mut calls = ToolCallAssembly::default();
        calls.take(begin(2, "toolu_1", "search"));
        calls.take(input(2, "{\"q\": \"rust"));
        let ended = calls.take(ToolPiece::End { index: Some(2) });
        assert_eq!(
            ended,
            vec![call("toolu_1", "search", json!("{\"q\": \"rust"))]
        );
        assert_eq!(calls.take(ToolPiece::End { index: Some(2) }), vec![]);
    }

    #[test]
    fn a_call_that_never_named_itself_is_kept_under_a_made_up_id_and_name() {
        let mut calls = ToolCallAssembly::default();
        calls.take(input(0, "{}"));
        calls.take(begin(3, "", "lookup"));
        let unnamed = ToolPiece::WithoutId {
            name: "now".into(),
            input: json!({"tz": "UTC"}),
        };
        assert_eq!(
            calls.take(unnamed),
            vec![call("call_1", "now", json!({"tz": "UTC"}))]
        );
        assert_eq!(
            calls.at_end(),
            vec![
                call("call_2", "unknown", json!({})),
                call("call_3", "lookup", json!({})),
            ]
        );
    }
}
