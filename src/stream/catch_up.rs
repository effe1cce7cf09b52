//! `TaskCatchUp`: what a task stream's replay sends a viewer who (re)joins
//! a generation: the text it missed as **one** `text` event (the missed
//! deltas concatenated, under the id of the last of them), then the task's
//! current state as `progress`, then the task's end if it ended. A late
//! viewer of a 2,000-token answer gets three frames, not 2,000.
//!
//! A reasoning model's thinking (`reasoning` events) rolls up the same
//! way, one event per run of one kind in the order they came: thinking
//! then answer is two events. Each carries the id of the last event of its
//! run, so a viewer cut off between them resumes from there with no gap
//! and no duplicate, as the ids of a stream always increase.
//!
//! Tool calls and results (`tool_call`, `tool_result`) and the ends of an
//! agent's steps (`step_end`) are sent as they were, each in its place
//! between the runs of text around it.
//!
//! The message's metadata (`message_metadata` events, each what an app
//! said of the message) is merged into one, as the AI SDK's reader merges
//! it (into more only where a value changed kind and one would not merge
//! the same: `merges_as_one`), and sent after the text with no id, like
//! the state: it is no part of the text, so it never breaks a run, and ids
//! stay in order.

use bytes::Bytes;
use serde_json::{Value, json};

use super::OutboundFrame;
use crate::domain::{
    EventType, MESSAGE_METADATA_EVENT_TYPE, StoredEvent, TextKind, keeps_its_place, merge_metadata,
    merges_as_one, sse_frame,
};

/// A task's state as read when its stream opened.
#[derive(Debug, Clone)]
pub struct TaskState {
    /// The task as a `progress` frame (no id).
    pub frame: Bytes,
    /// When the task last changed, as its JSON says it (`updated_at`).
    pub updated_at: String,
    /// When the task was made: retention cannot have removed any of its
    /// events while it is younger than retention.
    pub created_at_ms: i64,
    /// A finished task's end as its row tells it (no id), sent when the
    /// stored end is not among the replayed events (retention removed it);
    /// `None` while the task is unfinished, which retention spares.
    pub end: Option<StoredEvent>,
}

#[derive(Default)]
pub struct TaskCatchUp {
    /// The missed text, a run per stretch of one kind, and the tool events
    /// and step ends between them, in order.
    missed: Vec<Missed>,
    /// The last missed `progress` event: the whole task, as it changed.
    last_progress: Option<StoredEvent>,
    /// The task's `complete` or `error`, if it ended.
    end: Option<StoredEvent>,
    /// The data of the missed `message_metadata` events, their metadata
    /// merged into as few as merge the same.
    metadata: Vec<Value>,
}

enum Missed {
    Text(TextRun),
    /// A tool event or a step's end, sent as it was.
    InPlace(StoredEvent),
}

/// Missed events of one kind of text, back to back.
struct TextRun {
    kind: TextKind,
    text: String,
    /// The run's last event (its id and addressing carry the roll-up).
    last: StoredEvent,
}

impl TaskCatchUp {
    /// Takes one replayed event of the task. Of its `progress` events only
    /// the last counts: each carries the whole task.
    pub fn add(&mut self, event: StoredEvent) {
        if let Some(kind) = TextKind::of_event_type(event.event_type.as_str()) {
            let delta = event.data.get("delta").and_then(|d| d.as_str());
            match self.missed.last_mut() {
                Some(Missed::Text(run)) if run.kind == kind => {
                    run.text.push_str(delta.unwrap_or_default());
                    run.last = event;
                }
                _ => self.missed.push(Missed::Text(TextRun {
                    kind,
                    text: delta.unwrap_or_default().to_owned(),
                    last: event,
                })),
            }
            return;
        }
        match event.event_type.as_str() {
            "progress" => self.last_progress = Some(event),
            MESSAGE_METADATA_EVENT_TYPE => {
                let Some(Value::Object(said)) = event.data.get("metadata") else {
                    return;
                };
                let merged = self.metadata.last_mut();
                if let Some(Value::Object(into)) = merged.and_then(|last| last.get_mut("metadata"))
                    && merges_as_one(into, said)
                {
                    merge_metadata(into, said);
                    return;
                }
                self.metadata.push(event.data);
            }
            kept if keeps_its_place(kept) => self.missed.push(Missed::InPlace(event)),
            _ if event.ends_task() => self.end = Some(event),
            _ => {}
        }
    }

    /// The frames, in order: the rolled-up text and the tool events, the
    /// task's current state, the end. The state is `state`, unless a stored `progress` is newer:
    /// the state was read before the stream registered, so a change landing
    /// in between reaches the viewer only through the store.
    pub fn frames(self, mut state: Option<TaskState>) -> Vec<OutboundFrame> {
        let end = self
            .end
            .or_else(|| state.as_mut().and_then(|state| state.end.take()));

        let mut frames = Vec::with_capacity(self.missed.len() + 2);
        for missed in self.missed {
            let event = match missed {
                Missed::Text(TextRun { kind, text, last }) => StoredEvent {
                    data: json!({ "task_id": last.task_id, "delta": text }),
                    event_type: EventType::parse(kind.event_type()).expect("a well-formed type"),
                    ..last
                },
                Missed::InPlace(event) => event,
            };
            frames.push(OutboundFrame::replayed(
                &event,
                sse_frame::encode_event(&event),
            ));
        }
        let stored_newer = |progress: &StoredEvent| {
            let stored = progress.data.get("updated_at").and_then(|u| u.as_str());
            // Both are fixed-width RFC 3339 in UTC: they order as strings.
            state
                .as_ref()
                .is_none_or(|state| stored.is_some_and(|stored| stored > state.updated_at.as_str()))
        };
        let state = match self.last_progress {
            Some(progress) if stored_newer(&progress) => {
                Some(sse_frame::encode_control("progress", &progress.data))
            }
            _ => state.map(|state| state.frame),
        };
        for merged in self.metadata {
            frames.push(OutboundFrame::control(sse_frame::encode_control(
                MESSAGE_METADATA_EVENT_TYPE,
                &merged,
            )));
        }
        frames.extend(state.map(OutboundFrame::control));
        if let Some(end) = end {
            frames.push(OutboundFrame::replayed(&end, sse_frame::encode_event(&end)));
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventId, TaskRef};

    fn event(id: i64, event_type: &str, data: serde_json::Value) -> StoredEvent {
        StoredEvent {
            id: Some(EventId(id)),
            event_type: EventType::parse(event_type).unwrap(),
            data,
            project_id: None,
            user_id: None,
            task_id: Some(TaskRef::parse("t1").unwrap()),
            created_at_ms: 0,
            trace_context: None,
        }
    }

    /// The frame's `data` as JSON.
    fn data(frame: &OutboundFrame) -> serde_json::Value {
        let text = String::from_utf8(frame.bytes.to_vec()).unwrap();
        let data = text
            .lines()
            .find_map(|line| line.strip_prefix("data: "))
            .unwrap();
        serde_json::from_str(data).unwrap()
    }

    #[test]
    fn missed_text_becomes_one_event_under_the_last_id_then_the_state_then_the_end() {
        let mut catch_up = TaskCatchUp::default();
        catch_up.add(event(3, "text", json!({"delta": "Hel"})));
        let progress = json!({"progress": 50, "updated_at": "2026-12-03T10:00:00.000Z"});
        catch_up.add(event(4, "progress", progress));
        catch_up.add(event(5, "text", json!({"delta": "lo\nworld"})));
        catch_up.add(event(6, "complete", json!({"status": "completed"})));

        let frames = catch_up.frames(Some(state(60, "2026-12-03T10:00:01.000Z")));

        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].event_id, Some(EventId(5)));
        assert_eq!(
            data(&frames[0]),
            json!({"task_id": "t1", "delta": "Hello\nworld"})
        );
        assert_eq!(frames[1].event_id, None);
        assert_eq!(data(&frames[1])["progress"], 60, "the newer state");
        assert_eq!(frames[2].event_id, Some(EventId(6)));
        assert!(frames[2].ends_task);
    }

    #[test]
    fn missed_reasoning_and_answer_roll_up_a_run_each_in_order() {
        let mut catch_up = TaskCatchUp::default();
        catch_up.add(event(3, "reasoning", json!({"delta": "Let me "})));
        catch_up.add(event(4, "reasoning", json!({"delta": "think."})));
        catch_up.add(event(5, "text", json!({"delta": "Four"})));
        catch_up.add(event(6, "text", json!({"delta": "."})));
        catch_up.add(event(7, "reasoning", json!({"delta": "Check."})));
        catch_up.add(event(8, "text", json!({"delta": " Yes."})));

        let frames = catch_up.frames(None);

        let got: Vec<_> = frames
            .iter()
            .map(|frame| {
                let text = String::from_utf8(frame.bytes.to_vec()).unwrap();
                let kind = text
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .unwrap()
                    .to_owned();
                (frame.event_id, kind, data(frame)["delta"].clone())
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    Some(EventId(4)),
                    "reasoning".to_owned(),
                    json!("Let me think.")
                ),
                (Some(EventId(6)), "text".to_owned(), json!("Four.")),
                (Some(EventId(7)), "reasoning".to_owned(), json!("Check.")),
                (Some(EventId(8)), "text".to_owned(), json!(" Yes.")),
            ]
        );
    }

    #[test]
    fn tool_events_and_step_ends_keep_their_place_between_the_runs_of_text() {
        let mut catch_up = TaskCatchUp::default();
        catch_up.add(event(3, "text", json!({"delta": "Let me "})));
        catch_up.add(event(4, "text", json!({"delta": "look."})));
        let call = json!({"tool_call_id": "c1", "tool_name": "weather", "input": {}});
        catch_up.add(event(5, "tool_call", call.clone()));
        let step_end = json!({"result": {"finish_reason": "tool-calls"}});
        catch_up.add(event(6, "step_end", step_end.clone()));
        let result = json!({"tool_call_id": "c1", "output": {"celsius": -3}});
        catch_up.add(event(7, "tool_result", result.clone()));
        catch_up.add(event(8, "text", json!({"delta": "It is "})));
        catch_up.add(event(9, "text", json!({"delta": "cold."})));

        let frames = catch_up.frames(None);

        let ids: Vec<_> = frames.iter().map(|frame| frame.event_id).collect();
        assert_eq!(ids, [4, 5, 6, 7, 9].map(|id| Some(EventId(id))));
        assert_eq!(data(&frames[0])["delta"], "Let me look.");
        assert_eq!(data(&frames[1]), call);
        assert_eq!(data(&frames[2]), step_end);
        assert_eq!(data(&frames[3]), result);
        assert_eq!(data(&frames[4])["delta"], "It is cold.");
    }

    #[test]
    fn sources_files_and_data_parts_keep_their_place_between_the_runs_of_text() {
        let mut catch_up = TaskCatchUp::default();
        catch_up.add(event(3, "text", json!({"delta": "Oslo "})));
        let source = json!({"source_id": "s1", "url": "https://e.com"});
        catch_up.add(event(4, "source", source.clone()));
        catch_up.add(event(5, "text", json!({"delta": "is "})));
        let file = json!({"url": "data:,", "media_type": "text/plain"});
        catch_up.add(event(6, "file", file.clone()));
        let card = json!({"name": "weather", "data": {"c": 3}});
        catch_up.add(event(7, "data_part", card.clone()));
        catch_up.add(event(8, "text", json!({"delta": "cold."})));

        let frames = catch_up.frames(None);

        let ids: Vec<_> = frames.iter().map(|frame| frame.event_id).collect();
        assert_eq!(ids, [3, 4, 5, 6, 7, 8].map(|id| Some(EventId(id))));
        assert_eq!(data(&frames[1]), source);
        assert_eq!(data(&frames[3]), file);
        assert_eq!(data(&frames[4]), card);
        assert_eq!(data(&frames[5])["delta"], "cold.");
    }

    #[test]
    fn a_text_parts_end_keeps_two_parts_text_apart() {
        let mut catch_up = TaskCatchUp::default();
        catch_up.add(event(3, "text", json!({"delta": "One"})));
        catch_up.add(event(4, "text", json!({"delta": "."})));
        catch_up.add(event(5, "text_end", json!({})));
        catch_up.add(event(6, "text", json!({"delta": "Two."})));
        catch_up.add(event(7, "reasoning", json!({"delta": "Hm."})));
        catch_up.add(event(8, "reasoning_end", json!({})));
        catch_up.add(event(9, "reasoning", json!({"delta": "Yes."})));

        let frames = catch_up.frames(None);

        let ids: Vec<_> = frames.iter().map(|frame| frame.event_id).collect();
        assert_eq!(ids, [4, 5, 6, 7, 8, 9].map(|id| Some(EventId(id))));
        assert_eq!(data(&frames[0])["delta"], "One.");
        assert_eq!(data(&frames[2])["delta"], "Two.");
        assert_eq!(data(&frames[5])["delta"], "Yes.");
    }

    #[test]
    fn a_finished_tasks_end_removed_by_retention_is_sent_as_its_row_says() {
        let ended = |stored_end: Option<StoredEvent>| {
            let mut catch_up = TaskCatchUp::default();
            catch_up.add(event(9, "text", json!({"delta": "kept"})));
            if let Some(stored) = stored_end {
                catch_up.add(stored);
            }
            let row_end = StoredEvent {
                id: None,
                ..event(0, "complete", json!({"status": "completed", "from": "row"}))
            };
            let finished = TaskState {
                end: Some(row_end),
                ..state(100, "2026-12-03T10:00:00.000Z")
            };
            catch_up.frames(Some(finished))
        };

        // Pruned: the row's end, without an id, ends the stream.
        let frames = ended(None);
        assert_eq!(frames.len(), 3);
        let last = frames.last().unwrap();
        assert!(last.ends_task);
        assert_eq!(last.event_id, None);
        assert_eq!(data(last)["from"], "row");

        // Stored: the stored end, once.
        let frames = ended(Some(event(10, "complete", json!({"status": "completed"}))));
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2].event_id, Some(EventId(10)));
    }

    #[test]
    fn nothing_missed_is_only_the_state() {
        let frames = TaskCatchUp::default().frames(Some(state(10, "2026-12-03T10:00:00.000Z")));
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].event_id, None);
        assert_eq!(data(&frames[0])["progress"], 10);
    }

    #[test]
    fn a_change_stored_after_the_state_was_read_wins_over_it() {
        // The stream read the task, then a PATCH landed before it
        // registered: the PATCH's `progress` is only in the store.
        let mut catch_up = TaskCatchUp::default();
        let progress = json!({"progress": 70, "updated_at": "2026-12-03T10:00:02.000Z"});
        catch_up.add(event(7, "progress", progress));

        let frames = catch_up.frames(Some(state(60, "2026-12-03T10:00:01.000Z")));

        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].event_id, None, "the state is sent without an id");
        assert_eq!(data(&frames[0])["progress"], 70);
    }

    /// A task state frame saying `progress`, changed at `updated_at`.
    #[test]
    fn missed_message_metadata_is_merged_into_one_frame_with_no_id_that_breaks_no_run() {
        let mut catch_up = TaskCatchUp::default();
        let said = |metadata| json!({"task_id": "t1", "metadata": metadata});
        catch_up.add(event(
            3,
            "message_metadata",
            said(json!({"model": "m", "usage": {"input": 4}})),
        ));
        catch_up.add(event(4, "text", json!({"delta": "Hel"})));
        catch_up.add(event(
            5,
            "message_metadata",
            said(json!({"usage": {"output": 1}})),
        ));
        catch_up.add(event(6, "text", json!({"delta": "lo"})));

        let frames = catch_up.frames(Some(state(60, "2026-12-03T10:00:01.000Z")));

        assert_eq!(frames.len(), 3, "the text, the metadata, the state");
        assert_eq!(frames[0].event_id, Some(EventId(6)));
        assert_eq!(data(&frames[0])["delta"], "Hello");
        assert_eq!(frames[1].event_id, None);
        let text = String::from_utf8(frames[1].bytes.to_vec()).unwrap();
        assert!(text.starts_with("event: message_metadata\n"), "{text}");
        assert_eq!(
            data(&frames[1]),
            said(json!({"model": "m", "usage": {"input": 4, "output": 1}}))
        );
        assert_eq!(data(&frames[2])["progress"], 60);
    }

    #[test]
    fn missed_metadata_whose_value_changed_kind_comes_in_as_many_frames_as_merge_the_same() {
        let mut catch_up = TaskCatchUp::default();
        let said = |metadata| json!({"task_id": "t1", "metadata": metadata});
        for (id, metadata) in [
            (3, json!({"err": {"code": 1}, "n": 1})),
            (4, json!({"err": null})),
            (5, json!({"err": {"code": 2}})),
            (6, json!({"n": 2})),
        ] {
            catch_up.add(event(id, "message_metadata", said(metadata)));
        }

        let frames = catch_up.frames(None);

        // A reader holding {"err": {"code": 0, "msg": "a"}} merges the two
        // and ends with what merging the four one by one gives it.
        let got: Vec<_> = frames.iter().map(data).collect();
        assert_eq!(
            got,
            [
                said(json!({"err": null, "n": 1})),
                said(json!({"err": {"code": 2}, "n": 2})),
            ]
        );
    }

    /// Merges `said` in order as the AI SDK's reader does: the first taken
    /// whole, each later one merged.
    fn merged_in_order<'a>(
        mut held: Option<serde_json::Map<String, Value>>,
        said: impl IntoIterator<Item = &'a Value>,
    ) -> Option<serde_json::Map<String, Value>> {
        for one in said {
            let Value::Object(one) = one else {
                panic!("an object")
            };
            match &mut held {
                Some(held) => {
                    merge_metadata(held, one);
                }
                None => held = Some(one.clone()),
            }
        }
        held
    }

    /// Metadata of a few keys whose values change kind at random: objects
    /// (nested once), null, numbers, arrays.
    fn random_metadata(seed: &mut u64) -> Value {
        let mut next = |below: u64| {
            *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (*seed >> 33) % below
        };
        let mut metadata = serde_json::Map::new();
        for key in ["a", "b", "c"] {
            let value = match next(6) {
                0 => continue,
                1 => Value::Null,
                2 => json!(next(3)),
                3 => json!([next(3)]),
                4 => json!({ "x": next(3) }),
                _ => json!({ "y": { "z": next(2) }, "x": null }),
            };
            metadata.insert(key.to_owned(), value);
        }
        Value::Object(metadata)
    }

    #[test]
    fn a_reader_merging_the_catch_up_holds_what_merging_every_event_gives() {
        let mut seed = 7;
        for _ in 0..300 {
            let said: Vec<Value> = (0..6).map(|_| random_metadata(&mut seed)).collect();
            let whole = merged_in_order(None, &said);
            for cut in 0..said.len() {
                let held = merged_in_order(None, &said[..cut]);
                let mut catch_up = TaskCatchUp::default();
                for (at, metadata) in said[cut..].iter().enumerate() {
                    let data = json!({"task_id": "t1", "metadata": metadata});
                    catch_up.add(event(at as i64 + 1, "message_metadata", data));
                }
                let frames: Vec<Value> = catch_up
                    .frames(None)
                    .iter()
                    .map(|frame| data(frame)["metadata"].clone())
                    .collect();
                assert!(frames.len() <= said.len() - cut);
                assert_eq!(
                    merged_in_order(held, &frames),
                    whole,
                    "{said:?} resumed after {cut}: {frames:?}"
                );
            }
        }
    }

    fn state(progress: u32, updated_at: &str) -> TaskState {
        let task = json!({"progress": progress, "updated_at": updated_at});
        TaskState {
            frame: sse_frame::encode_control("progress", &task),
            updated_at: updated_at.to_owned(),
            created_at_ms: 0,
            end: None,
        }
    }
}
