//! The tool parts of a UI message stream: calls, their answers, and the
//! approvals they wait for.

use bytes::BytesMut;
use serde_json::{Value, json};

use super::{
    DENIED, UiMessageTranslator, part,
    parts::{carry, encoded_part},
    provider_metadata,
};
use crate::domain::{ToolFlags, ToolLabels};

impl UiMessageTranslator {
    /// A tool call, whole, as its own part after the open text's end.
    pub(super) fn tool_call(&mut self, data: &Value, out: &mut BytesMut) {
        let Some(id) = data["tool_call_id"].as_str() else {
            return;
        };
        self.begin_step(out);
        self.end_part(out);
        let mut call = json!({
            "type": "tool-input-available",
            "toolCallId": id,
            "toolName": data["tool_name"],
            "input": data["input"],
        });
        if let Some(error) = data.get("input_error").and_then(Value::as_str) {
            call["type"] = json!("tool-input-error");
            call["errorText"] = json!(error);
        }
        ToolFlags::read(data, ToolFlags::EVENT_NAMES).write(&mut call, ToolFlags::AI_SDK_NAMES);
        self.tool_labels(data, &mut call);
        provider_metadata(data, &mut call);
        part(out, &call);
        if !self.has_sent_call(id) {
            self.tool_calls.push(id.to_owned());
        }
    }

    /// What the app said of the tool (`title`, `toolMetadata`), to a client
    /// whose schema has them (v6 and later).
    fn tool_labels(&self, data: &Value, written: &mut Value) {
        if self.client.has_tool_labels() {
            let names = ToolLabels::EVENT_NAMES
                .into_iter()
                .zip(ToolLabels::AI_SDK_NAMES);
            for (from, to) in names {
                carry(data, from, written, to);
            }
        }
    }

    /// Whether this stream sent the call `id`: the SDK refuses an answer
    /// or an approval for a call it has not seen.
    fn has_sent_call(&self, id: &str) -> bool {
        self.tool_calls.iter().any(|called| called == id)
    }

    /// A tool's answer to a call this stream sent, or to one of the
    /// message's earlier calls when the stream continues a message; none
    /// to another. An answer the stream already gave the call, the same to
    /// the byte, is not given again: a continuing turn's task may be
    /// created with answers an earlier task of the message already holds.
    pub(super) fn tool_result(&mut self, data: &Value, out: &mut BytesMut) {
        let Some(id) = data["tool_call_id"].as_str() else {
            return;
        };
        if !self.has_sent_call(id) && !self.continues {
            return;
        }
        let denied = data["denied"] == Value::Bool(true);
        let mut answer = match data.get("error").and_then(Value::as_str) {
            Some(error) => {
                json!({ "type": "tool-output-error", "toolCallId": id, "errorText": error })
            }
            None if denied && self.client.has_tool_approvals() => {
                json!({ "type": "tool-output-denied", "toolCallId": id })
            }
            // v5 knows no denial: the call failed, as far as it can tell.
            None if denied => {
                json!({ "type": "tool-output-error", "toolCallId": id, "errorText": DENIED })
            }
            None => {
                json!({ "type": "tool-output-available", "toolCallId": id, "output": data["output"] })
            }
        };
        let flags = ToolFlags::read(data, ToolFlags::EVENT_NAMES);
        flags.write(&mut answer, ToolFlags::AI_SDK_NAMES);
        // A denial has none in the SDK's schema, nor v5's answers.
        if !denied && self.client.has_result_provider_metadata() {
            self.tool_labels(data, &mut answer);
            provider_metadata(data, &mut answer);
        }
        // Encoded once: compared with the answer given before, and written.
        let encoded = answer.to_string();
        if !flags.preliminary && self.repeats_answer(id, &encoded) {
            return;
        }
        self.end_part(out);
        self.approval_decided(id, !denied, out);
        encoded_part(out, &encoded);
    }

    /// Whether `encoded` is the final answer this stream last gave call
    /// `id`; if not, it becomes that answer.
    fn repeats_answer(&mut self, id: &str, encoded: &str) -> bool {
        match self.answers.iter_mut().find(|(call, _)| call == id) {
            Some((_, given)) if given == encoded => true,
            Some((_, given)) => {
                encoded.clone_into(given);
                false
            }
            None => {
                self.answers.push((id.to_owned(), encoded.to_owned()));
                false
            }
        }
    }

    /// A call waiting for a person's approval, to a client that knows
    /// approvals and for a call this stream sent; nothing otherwise (the
    /// call stays `input-available` until its answer).
    pub(super) fn tool_approval(&mut self, data: &Value, out: &mut BytesMut) {
        let (Some(id), Some(approval_id)) =
            (data["tool_call_id"].as_str(), data["approval_id"].as_str())
        else {
            return;
        };
        if !self.client.has_tool_approvals() || !self.has_sent_call(id) {
            return;
        }
        self.end_part(out);
        part(
            out,
            &json!({ "type": "tool-approval-request", "approvalId": approval_id, "toolCallId": id }),
        );
        self.approvals.push((id.to_owned(), approval_id.to_owned()));
    }

    /// Before the answer to a call whose approval this stream asked for:
    /// how the approval was decided, as the SDK's message keeps it
    /// (`approval.approved`). The broker learns no decision itself; the
    /// answer tells it: an output or a failure of the tool means it ran,
    /// so it was approved; a denial, that it was not. Sent once per call.
    fn approval_decided(&mut self, id: &str, approved: bool, out: &mut BytesMut) {
        if !self.client.has_approval_responses() {
            return;
        }
        let Some(at) = self.approvals.iter().position(|(call, _)| call == id) else {
            return;
        };
        let (_, approval_id) = self.approvals.swap_remove(at);
        part(
            out,
            &json!({ "type": "tool-approval-response", "approvalId": approval_id, "approved": approved }),
        );
    }
}
