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
    /// The call at `index` (of the answer's calls) begins: its id and name,
    /// and the input its first piece may already carry whole (a gateway
    /// replaying a finished message).
    Begin {
        index: u64,
        id: Option<String>,
        name: Option<String>,
        input: Option<Value>,
    },
    /// More of the input's JSON text of the call at `index`.
    Input { index: u64, fragment: String },
    /// The call at `index` is complete; `None`: every call begun is.
    End { index: Option<u64> },
    /// A whole call its provider gave no id (Gemini's `functionCall`
    /// mostly): it gets one made up.
    WithoutId { name: String, input: Value },
}

/// Why a call cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolCallError {
    /// Its id or name is not one a task keeps.
    Invalid(String),
    /// Its input grew past the longest a line may be: the call's id (or
    /// `""` while its provider has not said it) and the limit.
    TooLong { id: String, limit: usize },
}

/// The calls begun and not yet complete, by index.
#[derive(Debug)]
pub struct ToolCallAssembly {
    open: BTreeMap<u64, OpenCall>,
    /// The longest input kept, in bytes: what a line may hold.
    max_input: usize,
    /// Made-up ids: a prefix of this upload's own (another upload to the
    /// task makes up others), made with the first, then a count.
    made_up_prefix: Option<String>,
    made_up: u64,
}

#[derive(Debug, Default)]
struct OpenCall {
    id: Option<String>,
    name: Option<String>,
    /// The input whole from the first piece, if it came so.
    given: Option<Value>,
    input: String,
}

impl ToolCallAssembly {
    /// Bytes of the inputs the open calls gathered so far.
    pub fn held_bytes(&self) -> usize {
        self.open.values().map(|call| call.input.capacity()).sum()
    }

    pub fn new(max_input: usize) -> Self {
        Self {
            open: BTreeMap::new(),
            max_input,
            made_up_prefix: None,
            made_up: 0,
        }
    }

    /// Takes one piece; answers the calls it completes, in their order.
    pub fn take(&mut self, piece: ToolPiece) -> Result<Vec<ToolEvent>, ToolCallError> {
        match piece {
            ToolPiece::Whole(tool) => Ok(vec![tool]),
            ToolPiece::Begin {
                index,
                id,
                name,
                input,
            } => {
                // A new id at an index in use is a new call (servers that
                // number every call 0): the one there is whole.
                let replaced = match self.open.get(&index) {
                    Some(call) if id.is_some() && call.id.is_some() && call.id != id => {
                        let call = self.open.remove(&index).expect("just found");
                        vec![self.assembled(call)?]
                    }
                    _ => Vec::new(),
                };
                let call = self.open.entry(index).or_default();
                // OpenAI repeats neither, but OpenAI-compatible servers
                // sometimes send the name again with later pieces.
                call.id = call.id.take().or(id);
                call.name = call.name.take().or(name);
                call.given = call.given.take().or(input);
                Ok(replaced)
            }
            // Input of a call never begun (a provider's own tool, run by
            // it, streams its input too) is no call of the app's.
            ToolPiece::Input { index, fragment } => {
                if let Some(call) = self.open.get_mut(&index) {
                    if call.input.len() + fragment.len() > self.max_input {
                        return Err(ToolCallError::TooLong {
                            id: call.id.clone().unwrap_or_default(),
                            limit: self.max_input,
                        });
                    }
                    call.input.push_str(&fragment);
                }
                Ok(Vec::new())
            }
            ToolPiece::End { index: Some(index) } => match self.open.remove(&index) {
                Some(call) => Ok(vec![self.assembled(call)?]),
                None => Ok(Vec::new()),
            },
            ToolPiece::End { index: None } => self.at_end(),
            ToolPiece::WithoutId { name, input } => {
                Ok(vec![self.whole(None, Some(name), input)?])
            }
        }
    }

    /// Every call still open, complete as it is (the answer ended).
    pub fn at_end(&mut self) -> Result<Vec<ToolEvent>, ToolCallError> {
        std::mem::take(&mut self.open)
            .into_values()
            .map(|call| self.assembled(call))
            .collect()
    }

    /// Forgets the calls still open: the body stopped before they were
    /// whole (it broke, or ended or was refused before the provider said
    /// the calls were done), and half a call is no call. How many.
    pub fn abandon(&mut self) -> usize {
        std::mem::take(&mut self.open).len()
    }

    fn assembled(&mut self, call: OpenCall) -> Result<ToolEvent, ToolCallError> {
        let input = match (call.given, call.input.is_empty()) {
            (Some(given), true) => given,
            _ => input_of(call.input),
        };
        self.whole(call.id, call.name, input)
    }

    /// The call, whole. A call whose provider never said its id gets one
    /// made up (`call_<this upload's>_1`, `_2`, …), one that never said its
    /// name `unknown`: the call is kept, not the upload refused for it. An
    /// id or a name that is said must be one a task keeps.
    fn whole(
        &mut self,
        id: Option<String>,
        name: Option<String>,
        input: Value,
    ) -> Result<ToolEvent, ToolCallError> {
        let id = id.filter(|id| !id.is_empty()).unwrap_or_else(|| {
            // Only calls without an id pay for a random prefix.
            let prefix = self.made_up_prefix.get_or_insert_with(|| {
                let unique = uuid::Uuid::new_v4().simple().to_string();
                format!("call_{}", &unique[..8])
            });
            self.made_up += 1;
            format!("{prefix}_{}", self.made_up)
        });
        let name = name
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        ToolEvent::call(&id, &name, input, "a tool call").map_err(ToolCallError::Invalid)
    }
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
            input: None,
        }
    }

    fn input(index: u64, fragment: &str) -> ToolPiece {
        ToolPiece::Input {
            index,
            fragment: fragment.into(),
        }
    }

    fn call(id: &str, name: &str, input: Value) -> ToolEvent {
        ToolEvent::call(id, name, input, "a call").unwrap()
    }

    fn assembly() -> ToolCallAssembly {
        ToolCallAssembly::new(1024)
    }

    #[test]
    fn fragments_of_two_calls_become_two_whole_calls_at_the_end() {
        let mut calls = assembly();
        for piece in [
            begin(0, "c0", "weather"),
            input(0, "{\"city\":"),
            begin(1, "c1", "time"),
            input(0, "\"Oslo\"}"),
        ] {
            assert_eq!(calls.take(piece), Ok(vec![]));
        }
        assert_eq!(
            calls.take(ToolPiece::End { index: None }),
            Ok(vec![
                call("c0", "weather", json!({"city": "Oslo"})),
                call("c1", "time", json!({})),
            ])
        );
        assert_eq!(calls.at_end(), Ok(vec![]), "nothing is given twice");
    }

    #[test]
    fn a_call_ends_by_its_index_and_keeps_input_that_is_not_json() {
        let mut calls = assembly();
        calls.take(begin(2, "toolu_1", "search")).unwrap();
        calls.take(input(2, "{\"q\": \"rust")).unwrap();
        let ended = calls.take(ToolPiece::End { index: Some(2) });
        assert_eq!(
            ended,
            Ok(vec![call("toolu_1", "search", json!("{\"q\": \"rust"))])
        );
        assert_eq!(calls.take(ToolPiece::End { index: Some(2) }), Ok(vec![]));
    }

    #[test]
    fn a_new_id_at_an_index_in_use_is_a_new_call() {
        // Servers that number every parallel call 0.
        let mut calls = assembly();
        calls.take(begin(0, "c1", "a")).unwrap();
        calls.take(input(0, "{\"x\":1}")).unwrap();
        let first = calls.take(begin(0, "c2", "b")).unwrap();
        assert_eq!(first, vec![call("c1", "a", json!({"x": 1}))]);
        calls.take(input(0, "{\"y\":2}")).unwrap();
        assert_eq!(calls.at_end(), Ok(vec![call("c2", "b", json!({"y": 2}))]));
    }

    #[test]
    fn input_of_a_call_never_begun_is_no_call() {
        // Anthropic's own tools (`server_tool_use`) stream their input too.
        let mut calls = assembly();
        calls.take(input(1, "{\"query\":\"q\"}")).unwrap();
        assert_eq!(calls.at_end(), Ok(vec![]));
    }

    #[test]
    fn input_given_whole_at_the_start_is_kept_when_no_fragment_follows() {
        let mut calls = assembly();
        let start = ToolPiece::Begin {
            index: 0,
            id: Some("t1".into()),
            name: Some("f".into()),
            input: Some(json!({"a": 1})),
        };
        calls.take(start).unwrap();
        assert_eq!(calls.at_end(), Ok(vec![call("t1", "f", json!({"a": 1}))]));
    }

    #[test]
    fn made_up_ids_are_the_uploads_own_and_a_half_call_can_be_abandoned() {
        let (mut one, mut other) = (assembly(), assembly());
        let unnamed = || ToolPiece::WithoutId {
            name: "now".into(),
            input: json!({}),
        };
        let id = |tools: Vec<ToolEvent>| match &tools[..] {
            [ToolEvent::Call { id, .. }] => id.clone(),
            other => panic!("{other:?}"),
        };
        let (first, second) = (
            id(one.take(unnamed()).unwrap()),
            id(one.take(unnamed()).unwrap()),
        );
        let elsewhere = id(other.take(unnamed()).unwrap());
        assert!(
            first.starts_with("call_") && first.ends_with("_1"),
            "{first}"
        );
        assert!(second.ends_with("_2") && second != first, "{second}");
        assert_ne!(first, elsewhere, "another upload makes up other ids");

        one.take(begin(0, "c", "f")).unwrap();
        assert_eq!(one.abandon(), 1);
        assert_eq!(one.at_end(), Ok(vec![]));
    }

    #[test]
    fn an_input_past_the_limit_or_an_overlong_name_is_refused() {
        let mut calls = ToolCallAssembly::new(8);
        calls.take(begin(0, "c", "f")).unwrap();
        calls.take(input(0, "{\"a\":")).unwrap();
        assert_eq!(
            calls.take(input(0, "12345}")),
            Err(ToolCallError::TooLong {
                id: "c".into(),
                limit: 8
            })
        );
        let mut calls = assembly();
        calls.take(begin(0, "c", &"n".repeat(300))).unwrap();
        assert!(matches!(calls.at_end(), Err(ToolCallError::Invalid(_))));
    }
}
