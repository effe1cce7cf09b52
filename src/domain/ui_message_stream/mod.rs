//! A task's stream as an AI SDK UI message stream: the protocol of the
//! `ai` npm package's `useChat`, `DefaultChatTransport` and
//! `readUIMessageStream` (response header `x-vercel-ai-ui-message-stream:
//! v1`), so a chat UI follows a generation with no code of its own.
//!
//! [`UiMessageTranslator`] turns the events of a task's stream, as the task
//! stream sends them (`connected`, the rolled-up catch-up, live events),
//! into the protocol's parts, each a `data: {json}` event:
//!
//! - `connected` → `start` (the message id is the task's `message_id`, or
//!   else its id, so a reconnect rebuilds the same message instead of
//!   adding one, and a turn that continues a message continues it);
//! - `text` → `text-start` before the first text, then `text-delta`: the
//!   catch-up's one `text` event is one delta with all the text so far;
//! - `reasoning` → `reasoning-start`, `reasoning-delta`, the same way: a
//!   reasoning part before the text part it precedes. A change of kind
//!   ends the open part (`reasoning-end`, `text-end`) and begins one of the
//!   other kind, so the parts follow the runs of the task's text (their
//!   ids `text`, `reasoning`, then `text-2`, `reasoning-2`, …), live as on
//!   a resume, whose catch-up rolls up one event per run;
//! - `text_end`, `reasoning_end` → the open part's end (`text-end`,
//!   `reasoning-end`), when it is of that kind: the text after it is a
//!   part of its own, as the producer's SDK wrote it;
//! - `tool_call` → `tool-input-available` (the call whole: `toolCallId`,
//!   `toolName`, `input`; `tool-input-error` with `errorText` for a call
//!   whose input was refused), with the flags the producer's SDK said
//!   (`providerExecuted`, `dynamic`; `preliminary` on an answer), after
//!   the open text part's end; `tool_approval` → `tool-approval-request`
//!   and a denied `tool_result` → `tool-output-denied`, to a client that
//!   says it reads with `ai` 6 or later (a v5 client gets no approval and
//!   the denial as `tool-output-error`); `tool_result`
//!   → `tool-output-available` or `tool-output-error`, only for a call the
//!   stream has sent (the SDK refuses an output for a call it has not
//!   seen, and a viewer's stream must not break on a producer's mistake),
//!   or, in a stream that continues a message its reader holds, for one of
//!   that message's earlier calls; the answer to a call whose approval the
//!   stream asked for comes after `tool-approval-response` (`approved`
//!   unless the call was denied), so the message keeps the decision;
//! - `source` → `source-url` or `source-document`, `file` → `file`,
//!   `data_part` → `data-<name>` (with its `id` and `transient`), in place,
//!   the open text part left open (`answer_parts`); to a v7 reader also a
//!   reasoning `file` → `reasoning-file`, `custom_part` → `custom`,
//!   `steering_message` → `steering-message` (before the step it steers),
//!   and a `text_end`'s `citations` on its `text-end`;
//! - the message's steps (one model call each, of an agent's loop):
//!   `start-step` before the first text, reasoning or tool call of each,
//!   `finish-step` at its end, as the SDK's own stream has them, so the
//!   message holds its `step-start` parts and `onStepFinish` runs. A
//!   `step_end` ends the open part; its `finish-step` waits for what comes
//!   next, so the tools' answers that follow stay in the step that called
//!   them (as in the SDK's stream) and the last step ends before `finish`;
//! - `progress` → `data-progress` with the id `progress`, which the SDK
//!   reconciles: the message holds one progress part, always the latest
//!   (a transient part would reach `onData` only, and a viewer who
//!   reconnects would not find the progress in the message);
//! - `message_metadata` → `message-metadata`, which the SDK merges into
//!   the message's `metadata` (a resume's catch-up sends it merged);
//! - `complete` → `finish` (with `messageMetadata.finishReason` when the
//!   task's result says why the answer stopped), after the progress part
//!   moves to 100 (a
//!   completed task's progress is 100, but `complete` carries no progress
//!   event, and a live viewer's message must end as a later viewer's
//!   does); a failure → `error`, a cancel → `abort`, each
//!   after the open part's end (the SDK refuses a delta or an
//!   end for a part it has not seen begin, and leaves an unended part
//!   `streaming`), then `data: [DONE]`.
//!
//! Parts carry only the fields every protocol version since v5 knows: v5's
//! schema refuses a part with an unknown field. A client that says it reads
//! with `ai` 6 or later ([`AiSdkMajor`]) gets the `finish` part's own
//! `finishReason` too, which `useChat`'s `onFinish` passes on.
//!
//! Heartbeats become SSE comments, which the SDK's parser skips. Anything
//! else (`shutdown`, `token_expired`, `replay_truncated`) has no part; the
//! two that end a stream early make its body cut the response off
//! (`stream::ui_message`), which the client sees as a disconnect it may
//! resume from.

use bytes::{BufMut, BytesMut};
use serde_json::{Value, json};

mod answer_parts;
mod parts;
mod steps;
mod tools;

use parts::{Phase, TextPart, part, provider_metadata};
use steps::StepState;

use super::ai_sdk_major::AiSdkMajor;
use super::{AnswerEnd, MESSAGE_METADATA_EVENT_TYPE, STEP_END_EVENT_TYPE, TextKind};

/// The response header naming the protocol, and its value.
pub const UI_MESSAGE_STREAM_HEADER: (&str, &str) = ("x-vercel-ai-ui-message-stream", "v1");

/// The id of the message's progress part (see the module doc).
const PROGRESS_PART_ID: &str = "progress";
/// What a denied tool call's answer says to a client that knows no denial.
const DENIED: &str = "the tool call was denied";
/// The error text of a failure that gave no reason.
const UNKNOWN_FAILURE: &str = "the generation failed";

/// Skipped by the SDK's parser; keeps proxies from timing the stream out.
const KEEP_ALIVE: &[u8] = b": heartbeat\n\n";
/// The protocol's end marker, after the terminal part.
const DONE: &[u8] = b"data: [DONE]\n\n";

/// The parts of one viewer's UI message stream, from its task stream's
/// events in order.
#[derive(Debug)]
pub struct UiMessageTranslator {
    message_id: String,
    client: AiSdkMajor,
    /// The data of the last `data-progress` part written.
    progress: Option<Value>,
    started: bool,
    /// The text or reasoning part being written, and its id.
    open: Option<(TextKind, String)>,
    /// The parts of each kind begun so far: text, reasoning.
    begun: [usize; 2],
    /// The tool calls sent, by id: their results may follow.
    tool_calls: Vec<String>,
    /// The approvals asked, as (call id, approval id): the call's answer
    /// says how it was decided.
    approvals: Vec<(String, String)>,
    /// The final answer given to each call, as (call id, its part).
    answers: Vec<(String, String)>,
    /// The stream continues a message its reader holds (see
    /// [`Self::continuing`]).
    continues: bool,
    step: StepState,
    finished: bool,
}

impl UiMessageTranslator {
    /// The stream of the message `message_id` (the task's), for a
    /// viewer reading with `client`.
    pub fn new(message_id: impl Into<String>, client: AiSdkMajor) -> Self {
        Self {
            message_id: message_id.into(),
            client,
            progress: None,
            started: false,
            open: None,
            begun: [0, 0],
            tool_calls: Vec::new(),
            approvals: Vec::new(),
            answers: Vec::new(),
            continues: false,
            step: StepState::NotBegun,
            finished: false,
        }
    }

    /// The stream of a task that continues a message its reader already
    /// holds (the AI SDK's chat, which continues its last assistant
    /// message after a tool approval or a browser-side tool's output): the
    /// answers to that message's earlier calls, which this stream did not
    /// carry, are sent too, as the SDK's own continuation sends them.
    pub fn continuing(mut self) -> Self {
        self.continues = true;
        self
    }

    /// Appends to `out` the parts of an event of an earlier task of the
    /// message (a continued message rebuilt for a resuming reader; see
    /// `services::tasks::continued`): as [`Self::translate`], except that
    /// the earlier task's end only ends its step (the message goes on in
    /// the next task), and its progress is left to the latest task's.
    pub fn translate_earlier(&mut self, event_type: &str, data: &Value, out: &mut BytesMut) {
        match event_type {
            "connected" | "heartbeat" | "progress" => {}
            "complete" | "error" => self.finish_step(out),
            _ => self.translate(event_type, data, out),
        }
    }

    /// Takes an event of an earlier task of the message that the reader
    /// already holds: nothing is written, but the stream knows what the
    /// reader has (the calls it may get answers to, the answers given,
    /// the approvals asked), and begins with `start` all the same.
    pub fn hold_earlier(&mut self, event_type: &str, data: &Value) {
        let mut held = BytesMut::new();
        self.translate_earlier(event_type, data, &mut held);
        self.started = false;
    }

    /// Whether the terminal part and `[DONE]` were written: nothing follows.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Appends to `out` the parts that the task stream's event `event_type`
    /// with `data` becomes (none for some).
    pub fn translate(&mut self, event_type: &str, data: &Value, out: &mut BytesMut) {
        if self.finished {
            return;
        }
        match event_type {
            "connected" => self.start(out),
            "heartbeat" => out.put_slice(KEEP_ALIVE),
            "progress" => {
                self.start(out);
                let progress = json!({
                    "progress": data["progress"],
                    "stage": data["stage"],
                    "message": data["message"],
                });
                // A change of status alone (the task began running) changes
                // nothing the part shows.
                if self.progress.as_ref() != Some(&progress) {
                    self.progress(out, progress);
                }
            }
            "text" | "reasoning" => {
                let delta = data["delta"].as_str().unwrap_or_default();
                if delta.is_empty() {
                    return;
                }
                let kind = TextKind::of_event_type(event_type).expect("a kind of text");
                self.begin_step(out);
                let id = self.open_part(kind, out);
                part(out, &TextPart::new(kind, id, Phase::Delta(delta)));
            }
            "tool_call" => self.tool_call(data, out),
            "tool_result" => self.tool_result(data, out),
            "tool_approval" => self.tool_approval(data, out),
            "source" | "file" | "data_part" | "custom_part" | "steering_message" => {
                self.answer_part(event_type, data, out)
            }
            // What the app said of the message: the SDK merges it into the
            // message's `metadata`, wherever it comes.
            MESSAGE_METADATA_EVENT_TYPE => {
                if let Some(said) = data.get("metadata").filter(|said| said.is_object()) {
                    self.start(out);
                    part(
                        out,
                        &json!({ "type": "message-metadata", "messageMetadata": said }),
                    );
                }
            }
            "text_end" | "reasoning_end" => {
                let kind = TextKind::of_end_event_type(event_type).expect("a kind of text");
                let said = data.get("provider_metadata").is_some_and(Value::is_object);
                let cites = self.client.has_v7_answer_parts()
                    && data.get("citations").is_some_and(Value::is_array);
                if said || cites {
                    // The part's end with what its provider said of it and
                    // what its text cites: of the part open, or of one that
                    // held no text (a provider's redacted thinking), begun
                    // for it.
                    self.begin_step(out);
                    self.open_part(kind, out);
                    if let Some((kind, id)) = self.open.take() {
                        let mut end = serde_json::to_value(TextPart::new(kind, &id, Phase::End))
                            .expect("a part serializes");
                        if cites {
                            end["citations"] = answer_parts::citations(&data["citations"]);
                        }
                        provider_metadata(data, &mut end);
                        part(out, &end);
                    }
                } else if self.open.as_ref().is_some_and(|(open, _)| *open == kind) {
                    self.end_part(out);
                }
            }
            // A step's end with no step open says nothing.
            STEP_END_EVENT_TYPE if self.step == StepState::Open => {
                self.end_part(out);
                self.step = StepState::Ended;
            }
            "complete" => {
                self.finish_step(out);
                if let Some(mut done) = self.progress.clone()
                    && done["progress"].as_f64() != Some(100.0)
                {
                    done["progress"] = json!(100.0);
                    self.progress(out, done);
                }
                // Why the answer stopped, when its task's result says it:
                // as the message's metadata, which every protocol version
                // takes, and as the part's own `finishReason` for a client
                // that knows it (it came with v6, and v5 refuses a part
                // with a field it does not know).
                let mut finish = json!({ "type": "finish" });
                if let Some(reason) = AnswerEnd::in_result(&data["result"]).reason {
                    finish["messageMetadata"] = json!({ "finishReason": reason.label() });
                    if self.client.has_finish_reason(reason) {
                        finish["finishReason"] = json!(reason.label());
                    }
                }
                self.finish(out, finish)
            }
            "error" if data["cancelled"] == Value::Bool(true) => {
                self.finish(out, json!({ "type": "abort" }))
            }
            "error" => {
                let reason = data["error"].as_str().unwrap_or(UNKNOWN_FAILURE);
                self.finish(out, json!({ "type": "error", "errorText": reason }))
            }
            _ => {}
        }
    }

    /// `start`, once, before any other part.
    fn start(&mut self, out: &mut BytesMut) {
        if !std::mem::replace(&mut self.started, true) {
            part(
                out,
                &json!({ "type": "start", "messageId": self.message_id }),
            );
        }
    }

    /// The message's progress part, replaced by each one (its `id`).
    fn progress(&mut self, out: &mut BytesMut, data: Value) {
        part(
            out,
            &json!({ "type": "data-progress", "id": PROGRESS_PART_ID, "data": data }),
        );
        self.progress = Some(data);
    }

    /// The id of the open part of `kind`: the one open, or a new one begun
    /// after the other kind's part is ended.
    fn open_part(&mut self, kind: TextKind, out: &mut BytesMut) -> &str {
        if self
            .open
            .as_ref()
            .is_none_or(|(open_kind, _)| *open_kind != kind)
        {
            self.end_part(out);
            let begun = &mut self.begun[usize::from(kind == TextKind::Reasoning)];
            *begun += 1;
            let name = TextPart::name(kind);
            let id = match *begun {
                1 => name.to_owned(),
                n => format!("{name}-{n}"),
            };
            part(out, &TextPart::new(kind, &id, Phase::Start));
            self.open = Some((kind, id));
        }
        self.open.as_ref().map_or("", |(_, id)| id)
    }

    /// Ends the open text or reasoning part, if one is open (its text kept).
    fn end_part(&mut self, out: &mut BytesMut) {
        if let Some((kind, id)) = self.open.take() {
            part(out, &TextPart::new(kind, &id, Phase::End));
        }
    }

    /// The end: the open part ended (its text kept), the owed
    /// `finish-step` of a step that did end, `terminal`, `[DONE]`. A step
    /// still open when the task fails or is cancelled never finished.
    fn finish(&mut self, out: &mut BytesMut, terminal: Value) {
        self.start(out);
        self.end_part(out);
        if self.step == StepState::Ended {
            part(out, &json!({ "type": "finish-step" }));
            self.step = StepState::NotBegun;
        }
        part(out, &terminal);
        out.put_slice(DONE);
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parts `events` become, as JSON (`[DONE]` and comments as strings).
    fn parts(events: &[(&str, Value)]) -> Vec<Value> {
        parts_for(AiSdkMajor::OLDEST, events)
    }

    /// The parts `events` become for a viewer reading with `client`.
    fn parts_for(client: AiSdkMajor, events: &[(&str, Value)]) -> Vec<Value> {
        let mut translator = UiMessageTranslator::new("t1", client);
        let mut out = BytesMut::new();
        for (event_type, data) in events {
            translator.translate(event_type, data, &mut out);
        }
        String::from_utf8(out.to_vec())
            .unwrap()
            .split("\n\n")
            .filter(|event| !event.is_empty())
            .map(|event| match event.strip_prefix("data: ") {
                Some("[DONE]") => json!("[DONE]"),
                Some(data) => serde_json::from_str(data).unwrap(),
                None => json!(event),
            })
            .collect()
    }

    fn progress(value: f64) -> Value {
        json!({ "task_id": "t1", "status": "running", "progress": value, "stage": "writing", "message": null })
    }

    #[test]
    fn the_finish_part_says_its_reason_itself_to_a_client_that_knows_the_field() {
        let cut_off = json!({ "status": "completed", "result": { "finish_reason": "length" } });
        let events = [("connected", json!({})), ("complete", cut_off)];
        let metadata = json!({ "finishReason": "length" });
        for (client, finish) in [
            (
                AiSdkMajor::OLDEST,
                json!({ "type": "finish", "messageMetadata": metadata }),
            ),
            (
                AiSdkMajor::parse("6").unwrap(),
                json!({ "type": "finish", "messageMetadata": metadata, "finishReason": "length" }),
            ),
        ] {
            let parts = parts_for(client, &events);
            assert_eq!(parts[parts.len() - 2], finish, "{client:?}");
        }
        // `interrupted` came with v7: v6's schema refuses it on the part.
        let interrupted =
            json!({ "status": "completed", "result": { "finish_reason": "interrupted" } });
        let metadata = json!({ "finishReason": "interrupted" });
        for (client, finish) in [
            (
                "6",
                json!({ "type": "finish", "messageMetadata": metadata }),
            ),
            (
                "7",
                json!({ "type": "finish", "messageMetadata": metadata, "finishReason": "interrupted" }),
            ),
        ] {
            let parts = parts_for(
                AiSdkMajor::parse(client).unwrap(),
                &[("complete", interrupted.clone())],
            );
            assert_eq!(parts[parts.len() - 2], finish, "ai {client}");
        }
        // Nothing said, nothing added, whoever reads.
        let plain = [("complete", json!({ "status": "completed" }))];
        let parts = parts_for(AiSdkMajor::parse("7").unwrap(), &plain);
        assert_eq!(parts[parts.len() - 2], json!({ "type": "finish" }));
        for refused in ["4", "0", "-6", "six", "", "70000"] {
            assert_eq!(AiSdkMajor::parse(refused), None, "{refused}");
        }
    }

    #[test]
    fn tool_calls_and_results_are_parts_between_the_text_parts() {
        let call =
            json!({ "tool_call_id": "c1", "tool_name": "weather", "input": { "city": "Oslo" } });
        let parts = parts(&[
            ("connected", json!({})),
            ("text", json!({ "delta": "Looking." })),
            ("tool_call", call),
            (
                "tool_result",
                json!({ "tool_call_id": "c1", "output": { "celsius": -3 } }),
            ),
            // A result for a call never sent would break the SDK: none.
            ("tool_result", json!({ "tool_call_id": "c9", "output": 1 })),
            (
                "tool_result",
                json!({ "tool_call_id": "c1", "error": "timed out" }),
            ),
            ("text", json!({ "delta": "Cold." })),
            ("complete", json!({ "status": "completed" })),
        ]);

        assert_eq!(
            parts,
            [
                json!({ "type": "start", "messageId": "t1" }),
                json!({ "type": "start-step" }),
                json!({ "type": "text-start", "id": "text" }),
                json!({ "type": "text-delta", "id": "text", "delta": "Looking." }),
                json!({ "type": "text-end", "id": "text" }),
                json!({ "type": "tool-input-available", "toolCallId": "c1", "toolName": "weather", "input": { "city": "Oslo" } }),
                json!({ "type": "tool-output-available", "toolCallId": "c1", "output": { "celsius": -3 } }),
                json!({ "type": "tool-output-error", "toolCallId": "c1", "errorText": "timed out" }),
                json!({ "type": "text-start", "id": "text-2" }),
                json!({ "type": "text-delta", "id": "text-2", "delta": "Cold." }),
                json!({ "type": "text-end", "id": "text-2" }),
                json!({ "type": "finish-step" }),
                json!({ "type": "finish" }),
                json!("[DONE]"),
            ]
        );
    }

    #[test]
    fn a_tool_parts_flags_and_a_refused_input_reach_the_sdk_under_its_names() {
        let parts = parts(&[
            (
                "tool_call",
                json!({ "tool_call_id": "ws", "tool_name": "web_search", "input": {}, "provider_executed": true }),
            ),
            (
                "tool_result",
                json!({ "tool_call_id": "ws", "output": 1, "provider_executed": true }),
            ),
            (
                "tool_call",
                json!({ "tool_call_id": "m", "tool_name": "mcp_x", "input": {}, "dynamic": true }),
            ),
            (
                "tool_result",
                json!({ "tool_call_id": "m", "output": { "done": 1 }, "preliminary": true }),
            ),
            (
                "tool_call",
                json!({ "tool_call_id": "w", "tool_name": "weather", "input": { "city": 42 }, "input_error": "city: not a string" }),
            ),
        ]);

        assert_eq!(
            parts[2..],
            [
                json!({ "type": "tool-input-available", "toolCallId": "ws", "toolName": "web_search", "input": {}, "providerExecuted": true }),
                json!({ "type": "tool-output-available", "toolCallId": "ws", "output": 1, "providerExecuted": true }),
                json!({ "type": "tool-input-available", "toolCallId": "m", "toolName": "mcp_x", "input": {}, "dynamic": true }),
                json!({ "type": "tool-output-available", "toolCallId": "m", "output": { "done": 1 }, "preliminary": true }),
                json!({ "type": "tool-input-error", "toolCallId": "w", "toolName": "weather", "input": { "city": 42 }, "errorText": "city: not a string" }),
            ]
        );
    }

    #[test]
    fn an_approval_and_a_denial_reach_a_client_that_knows_them_and_no_other() {
        let events = [
            (
                "tool_call",
                json!({ "tool_call_id": "d", "tool_name": "delete_file", "input": {} }),
            ),
            (
                "tool_approval",
                json!({ "tool_call_id": "d", "approval_id": "a1" }),
            ),
            // An approval for a call never sent: none, for any client.
            (
                "tool_approval",
                json!({ "tool_call_id": "x", "approval_id": "a2" }),
            ),
            (
                "tool_result",
                json!({ "tool_call_id": "d", "denied": true }),
            ),
        ];
        let v7 = parts_for(AiSdkMajor::parse("7").unwrap(), &events);
        assert_eq!(
            v7[3..],
            [
                json!({ "type": "tool-approval-request", "approvalId": "a1", "toolCallId": "d" }),
                json!({ "type": "tool-approval-response", "approvalId": "a1", "approved": false }),
                json!({ "type": "tool-output-denied", "toolCallId": "d" }),
            ]
        );
        let v5 = parts_for(AiSdkMajor::OLDEST, &events);
        assert_eq!(
            v5[3..],
            [json!({ "type": "tool-output-error", "toolCallId": "d", "errorText": DENIED })]
        );
    }

    #[test]
    fn an_approved_calls_answer_says_the_approval_first_once() {
        let events = [
            (
                "tool_call",
                json!({ "tool_call_id": "w", "tool_name": "weather", "input": {} }),
            ),
            (
                "tool_approval",
                json!({ "tool_call_id": "w", "approval_id": "a1" }),
            ),
            (
                "tool_result",
                json!({ "tool_call_id": "w", "output": 1, "preliminary": true }),
            ),
            ("tool_result", json!({ "tool_call_id": "w", "output": 2 })),
        ];
        // v6 knows approvals but refuses the decision's part: the answer alone.
        let v6 = parts_for(AiSdkMajor::parse("6").unwrap(), &events);
        assert_eq!(v6[4]["type"], "tool-output-available", "{v6:?}");
        let parts = parts_for(AiSdkMajor::parse("7").unwrap(), &events);
        assert_eq!(
            parts[4..],
            [
                json!({ "type": "tool-approval-response", "approvalId": "a1", "approved": true }),
                json!({ "type": "tool-output-available", "toolCallId": "w", "output": 1, "preliminary": true }),
                json!({ "type": "tool-output-available", "toolCallId": "w", "output": 2 }),
            ]
        );
    }

    #[test]
    fn an_answer_given_again_the_same_is_not_sent_again_and_a_new_one_is() {
        let call = json!({ "tool_call_id": "w", "tool_name": "weather", "input": {} });
        let answer = |output: i64| json!({ "tool_call_id": "w", "output": output });
        let parts = parts(&[
            ("tool_call", call),
            ("tool_result", answer(1)),
            ("tool_result", answer(1)),
            ("tool_result", answer(2)),
        ]);
        let outputs: Vec<&Value> = parts
            .iter()
            .filter(|part| part["type"] == "tool-output-available")
            .map(|part| &part["output"])
            .collect();
        assert_eq!(outputs, [&json!(1), &json!(2)]);
    }

    #[test]
    fn a_continuing_stream_answers_the_earlier_calls_of_its_message_and_no_other_does() {
        let events = [
            ("connected", json!({})),
            (
                "tool_result",
                json!({ "tool_call_id": "earlier", "output": { "celsius": -3 } }),
            ),
            ("text", json!({ "delta": "It is -3." })),
        ];
        let mut translator =
            UiMessageTranslator::new("m1", AiSdkMajor::parse("7").unwrap()).continuing();
        let mut out = BytesMut::new();
        for (event_type, data) in &events {
            translator.translate(event_type, data, &mut out);
        }
        let written = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            written.starts_with(concat!(
                "data: {\"messageId\":\"m1\",\"type\":\"start\"}\n\n",
                "data: {\"output\":{\"celsius\":-3},\"toolCallId\":\"earlier\",\"type\":\"tool-output-available\"}\n\n",
                "data: {\"type\":\"start-step\"}\n\n",
            )),
            "{written}"
        );
        // A stream of a message of its own has no such call: no answer.
        let own = parts_for(AiSdkMajor::parse("7").unwrap(), &events);
        assert!(
            own.iter()
                .all(|part| part["type"] != "tool-output-available"),
            "{own:?}"
        );
    }

    #[test]
    fn a_reader_holding_the_earlier_parts_gets_answers_to_their_calls_only() {
        let mut translator = UiMessageTranslator::new("m1", AiSdkMajor::parse("7").unwrap());
        let call = |id: &str| json!({ "tool_call_id": id, "tool_name": "locate", "input": {} });
        let answer = |id: &str, output: i64| json!({ "tool_call_id": id, "output": output });
        translator.hold_earlier("text", &json!({ "delta": "Let me look." }));
        translator.hold_earlier("tool_call", &call("c1"));
        translator.hold_earlier("tool_call", &call("c2"));
        translator.hold_earlier("tool_result", &answer("c2", 2));
        translator.hold_earlier("complete", &json!({ "status": "completed" }));
        let mut out = BytesMut::new();
        for (event_type, data) in [
            ("connected", json!({})),
            ("tool_result", answer("nobodys", 0)),
            ("tool_result", answer("c1", 1)),
            ("tool_result", answer("c2", 2)),
        ] {
            translator.translate(event_type, &data, &mut out);
        }
        let written = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(
            written,
            concat!(
                "data: {\"messageId\":\"m1\",\"type\":\"start\"}\n\n",
                "data: {\"output\":1,\"toolCallId\":\"c1\",\"type\":\"tool-output-available\"}\n\n",
            ),
            "start, then only the answer the reader lacks to a call it has"
        );
    }

    #[test]
    fn an_earlier_tasks_end_only_ends_its_step_and_its_progress_gives_way() {
        let mut translator = UiMessageTranslator::new("m1", AiSdkMajor::parse("7").unwrap());
        let mut out = BytesMut::new();
        let earlier = [
            ("text", json!({ "delta": "Let me check." })),
            (
                "tool_call",
                json!({ "tool_call_id": "w", "tool_name": "weather", "input": {} }),
            ),
            (
                "tool_approval",
                json!({ "tool_call_id": "w", "approval_id": "a1" }),
            ),
            (STEP_END_EVENT_TYPE, json!({})),
            ("progress", progress(100.0)),
            ("complete", json!({ "status": "completed" })),
        ];
        for (event_type, data) in &earlier {
            translator.translate_earlier(event_type, data, &mut out);
        }
        let latest = [
            ("connected", json!({})),
            ("progress", progress(0.0)),
            ("tool_result", json!({ "tool_call_id": "w", "output": 5 })),
            ("text", json!({ "delta": "It is 5." })),
            ("complete", json!({ "status": "completed" })),
        ];
        for (event_type, data) in &latest {
            translator.translate(event_type, data, &mut out);
        }
        let parts: Vec<Value> = String::from_utf8(out.to_vec())
            .unwrap()
            .split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .map(|data| serde_json::from_str(data).unwrap_or(json!(data)))
            .collect();
        let progress_part = |value: f64| {
            json!({ "type": "data-progress", "id": "progress", "data": {
                "progress": value, "stage": "writing", "message": null } })
        };
        assert_eq!(
            parts,
            [
                json!({ "type": "start", "messageId": "m1" }),
                json!({ "type": "start-step" }),
                json!({ "type": "text-start", "id": "text" }),
                json!({ "type": "text-delta", "id": "text", "delta": "Let me check." }),
                json!({ "type": "text-end", "id": "text" }),
                json!({ "type": "tool-input-available", "toolCallId": "w", "toolName": "weather", "input": {} }),
                json!({ "type": "tool-approval-request", "approvalId": "a1", "toolCallId": "w" }),
                json!({ "type": "finish-step" }),
                progress_part(0.0),
                json!({ "type": "tool-approval-response", "approvalId": "a1", "approved": true }),
                json!({ "type": "tool-output-available", "toolCallId": "w", "output": 5 }),
                json!({ "type": "start-step" }),
                json!({ "type": "text-start", "id": "text-2" }),
                json!({ "type": "text-delta", "id": "text-2", "delta": "It is 5." }),
                json!({ "type": "text-end", "id": "text-2" }),
                json!({ "type": "finish-step" }),
                progress_part(100.0),
                json!({ "type": "finish" }),
                json!("[DONE]"),
            ]
        );
    }

    #[test]
    fn reasoning_is_a_part_of_its_own_before_the_text_it_precedes() {
        let parts = parts(&[
            ("connected", json!({ "connection_id": "c" })),
            ("reasoning", json!({ "delta": "Let me " })),
            ("reasoning", json!({ "delta": "think." })),
            ("text", json!({ "delta": "Four" })),
            ("reasoning", json!({ "delta": "Sure?" })),
            ("text", json!({ "delta": "." })),
            ("error", json!({ "status": "cancelled", "cancelled": true })),
        ]);

        assert_eq!(
            parts,
            [
                json!({ "type": "start", "messageId": "t1" }),
                json!({ "type": "start-step" }),
                json!({ "type": "reasoning-start", "id": "reasoning" }),
                json!({ "type": "reasoning-delta", "id": "reasoning", "delta": "Let me " }),
                json!({ "type": "reasoning-delta", "id": "reasoning", "delta": "think." }),
                json!({ "type": "reasoning-end", "id": "reasoning" }),
                json!({ "type": "text-start", "id": "text" }),
                json!({ "type": "text-delta", "id": "text", "delta": "Four" }),
                json!({ "type": "text-end", "id": "text" }),
                json!({ "type": "reasoning-start", "id": "reasoning-2" }),
                json!({ "type": "reasoning-delta", "id": "reasoning-2", "delta": "Sure?" }),
                json!({ "type": "reasoning-end", "id": "reasoning-2" }),
                json!({ "type": "text-start", "id": "text-2" }),
                json!({ "type": "text-delta", "id": "text-2", "delta": "." }),
                json!({ "type": "text-end", "id": "text-2" }),
                json!({ "type": "abort" }),
                json!("[DONE]"),
            ]
        );
    }

    #[test]
    fn a_live_generation_is_start_text_progress_and_finish_then_done() {
        let parts = parts(&[
            ("connected", json!({ "connection_id": "c" })),
            ("progress", progress(0.0)),
            ("text", json!({ "delta": "Hel" })),
            ("heartbeat", json!({ "ts": 1 })),
            ("text", json!({ "delta": "lo\n" })),
            ("progress", progress(50.0)),
            ("complete", json!({ "status": "completed" })),
        ]);

        assert_eq!(
            parts,
            [
                json!({ "type": "start", "messageId": "t1" }),
                json!({ "type": "data-progress", "id": "progress", "data": { "progress": 0.0, "stage": "writing", "message": null } }),
                json!({ "type": "start-step" }),
                json!({ "type": "text-start", "id": "text" }),
                json!({ "type": "text-delta", "id": "text", "delta": "Hel" }),
                json!(": heartbeat"),
                json!({ "type": "text-delta", "id": "text", "delta": "lo\n" }),
                json!({ "type": "data-progress", "id": "progress", "data": { "progress": 50.0, "stage": "writing", "message": null } }),
                json!({ "type": "text-end", "id": "text" }),
                json!({ "type": "finish-step" }),
                json!({ "type": "data-progress", "id": "progress", "data": { "progress": 100.0, "stage": "writing", "message": null } }),
                json!({ "type": "finish" }),
                json!("[DONE]"),
            ]
        );
    }

    #[test]
    fn a_finish_says_why_the_answer_stopped_when_the_result_does() {
        let ending = |result: Value| {
            let parts = parts(&[
                ("connected", json!({})),
                (
                    "complete",
                    json!({ "status": "completed", "result": result }),
                ),
            ]);
            parts[parts.len() - 2].clone()
        };

        assert_eq!(
            ending(json!({ "finish_reason": "length", "usage": { "output_tokens": 9 } })),
            json!({ "type": "finish", "messageMetadata": { "finishReason": "length" } })
        );
        for unsaid in [
            json!(null),
            json!({ "finish_reason": "max_tokens" }),
            json!({ "answer": 42 }),
        ] {
            assert_eq!(
                ending(unsaid.clone()),
                json!({ "type": "finish" }),
                "{unsaid}"
            );
        }
    }

    #[test]
    fn a_cancel_ends_the_text_then_aborts_and_a_failure_says_why() {
        let cancelled = parts(&[
            ("connected", json!({})),
            ("text", json!({ "delta": "partial" })),
            (
                "error",
                json!({ "status": "cancelled", "error": "cancelled", "cancelled": true }),
            ),
        ]);
        let failed = parts(&[
            ("connected", json!({})),
            (
                "error",
                json!({ "status": "failed", "error": "model overloaded" }),
            ),
        ]);

        assert_eq!(
            &cancelled[4..],
            [
                json!({ "type": "text-end", "id": "text" }),
                json!({ "type": "abort" }),
                json!("[DONE]"),
            ]
        );
        assert_eq!(
            &failed[1..],
            [
                json!({ "type": "error", "errorText": "model overloaded" }),
                json!("[DONE]"),
            ],
            "no text-end without a text-start"
        );
    }

    #[test]
    fn nothing_follows_the_end_and_empty_text_opens_no_part() {
        let parts = parts(&[
            ("connected", json!({})),
            ("text", json!({ "delta": "" })),
            ("complete", json!({})),
            ("text", json!({ "delta": "late" })),
            ("heartbeat", json!({})),
        ]);

        assert_eq!(
            parts,
            [
                json!({ "type": "start", "messageId": "t1" }),
                json!({ "type": "finish" }),
                json!("[DONE]"),
            ]
        );
    }

    #[test]
    fn each_step_is_between_its_start_and_finish_and_tool_answers_stay_in_the_step_that_called() {
        let call = json!({ "tool_call_id": "c1", "tool_name": "weather", "input": {} });
        let answer = json!({ "tool_call_id": "c1", "output": 1 });
        let step_end = json!({ "task_id": "t1", "result": { "finish_reason": "tool-calls" } });
        let stepped = parts(&[
            ("connected", json!({})),
            ("text", json!({ "delta": "Looking." })),
            ("tool_call", call),
            (STEP_END_EVENT_TYPE, step_end.clone()),
            // The tool ran after the model's call ended: still its step.
            ("tool_result", answer),
            ("progress", progress(50.0)),
            ("text", json!({ "delta": "Cold." })),
            (STEP_END_EVENT_TYPE, step_end.clone()),
            // A step's end with no step open says nothing.
            (STEP_END_EVENT_TYPE, step_end),
            ("complete", json!({ "status": "completed" })),
        ]);

        let kinds: Vec<_> = stepped
            .iter()
            .map(|part| part["type"].as_str().unwrap_or("[DONE]").to_owned())
            .collect();
        assert_eq!(
            kinds,
            [
                "start",
                "start-step",
                "text-start",
                "text-delta",
                "text-end",
                "tool-input-available",
                "tool-output-available",
                "data-progress",
                "finish-step",
                "start-step",
                "text-start",
                "text-delta",
                "text-end",
                "finish-step",
                "data-progress",
                "finish",
                "[DONE]",
            ]
        );
        // A failure after a step's end still owes that step its end.
        let after_step = parts(&[
            ("text", json!({ "delta": "Hal" })),
            (STEP_END_EVENT_TYPE, json!({ "result": null })),
            (
                "error",
                json!({ "status": "failed", "error": "overloaded" }),
            ),
        ]);
        let kinds: Vec<_> = after_step.iter().map(|p| p["type"].clone()).collect();
        assert_eq!(
            kinds[4..],
            [
                json!("text-end"),
                json!("finish-step"),
                json!("error"),
                json!(null)
            ]
        );
        // A failure mid-step ends the open text, with no finish-step (the
        // step never finished).
        let failed = parts(&[
            ("text", json!({ "delta": "Hal" })),
            (
                "error",
                json!({ "status": "failed", "error": "overloaded" }),
            ),
        ]);
        let kinds: Vec<_> = failed.iter().map(|p| p["type"].clone()).collect();
        assert_eq!(
            kinds,
            [
                json!("start"),
                json!("start-step"),
                json!("text-start"),
                json!("text-delta"),
                json!("text-end"),
                json!("error"),
                json!(null),
            ]
        );
    }

    #[test]
    fn a_stream_cut_by_the_broker_has_no_terminal_part() {
        let parts = parts(&[
            ("connected", json!({})),
            ("text", json!({ "delta": "Hi" })),
            ("shutdown", json!({ "reason": "server_shutdown" })),
        ]);

        assert_eq!(parts.len(), 4, "{parts:?}");
        assert!(!parts.contains(&json!("[DONE]")));
    }
}
