//! `TaskCatchUp`: what a task stream's replay sends a viewer who (re)joins
//! a generation: the text it missed as **one** `text` event (the missed
//! deltas concatenated, under the id of the last of them), then the task's
//! current state as `progress`, then the task's end if it ended. A late
//! viewer of a 2,000-token answer gets three frames, not 2,000.

use bytes::Bytes;
use serde_json::json;

use super::OutboundFrame;
use crate::domain::{EventType, StoredEvent, sse_frame};

#[derive(Default)]
pub struct TaskCatchUp {
    text: String,
    /// The last missed `text` event (its id and addressing carry the roll-up).
    last_text: Option<StoredEvent>,
    /// The task's `complete` or `error`, if it ended.
    end: Option<StoredEvent>,
}

impl TaskCatchUp {
    /// Takes one replayed event of the task. Stored `progress` events are
    /// superseded by the current state and dropped.
    pub fn add(&mut self, event: StoredEvent) {
        match event.event_type.as_str() {
            "text" => {
                if let Some(delta) = event.data.get("delta").and_then(|d| d.as_str()) {
                    self.text.push_str(delta);
                }
                self.last_text = Some(event);
            }
            _ if event.ends_task() => self.end = Some(event),
            _ => {}
        }
    }

    /// Whether the task's end was among the replayed events.
    pub fn ended(&self) -> bool {
        self.end.is_some()
    }

    /// The frames, in order: the rolled-up text, `state` (the task's
    /// current `progress` frame), the end.
    pub fn frames(self, state: Option<Bytes>) -> Vec<OutboundFrame> {
        let mut frames = Vec::with_capacity(3);
        if let Some(last) = self.last_text {
            let rolled = StoredEvent {
                data: json!({ "task_id": last.task_id, "delta": self.text }),
                event_type: EventType::parse("text").expect("a well-formed type"),
                ..last
            };
            frames.push(OutboundFrame::replayed(
                &rolled,
                sse_frame::encode_event(&rolled),
            ));
        }
        frames.extend(state.map(OutboundFrame::control));
        if let Some(end) = self.end {
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
        catch_up.add(event(4, "progress", json!({"progress": 50})));
        catch_up.add(event(5, "text", json!({"delta": "lo\nworld"})));
        catch_up.add(event(6, "complete", json!({"status": "completed"})));
        assert!(catch_up.ended());

        let frames = catch_up.frames(Some(Bytes::from_static(b"event: progress\ndata: {}\n\n")));

        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].event_id, Some(EventId(5)));
        assert_eq!(
            data(&frames[0]),
            json!({"task_id": "t1", "delta": "Hello\nworld"})
        );
        assert_eq!(frames[1].event_id, None);
        assert_eq!(frames[2].event_id, Some(EventId(6)));
        assert!(frames[2].ends_task);
    }

    #[test]
    fn nothing_missed_is_only_the_state() {
        let frames = TaskCatchUp::default().frames(Some(Bytes::from_static(b"x")));
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].event_id, None);
    }
}
