//! The message's steps (one model call each, of an agent's loop) in a UI
//! message stream: `start-step` before the first part of each, and its
//! `finish-step` owed until what comes next, so the tools' answers that
//! follow a step's end stay in the step that called them.

use bytes::BytesMut;
use serde_json::json;

use super::{UiMessageTranslator, part};

/// Where the message's current step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StepState {
    /// No step has begun (nothing but progress so far).
    NotBegun,
    Open,
    /// A `step_end` came: `finish-step` is owed before the next step's
    /// first part, or before `finish`.
    Ended,
}

impl UiMessageTranslator {
    /// `start-step` before a step's first part: after the owed
    /// `finish-step` of the step that ended, if one did.
    pub(super) fn begin_step(&mut self, out: &mut BytesMut) {
        self.start(out);
        match self.step {
            StepState::Open => return,
            StepState::Ended => part(out, &json!({ "type": "finish-step" })),
            StepState::NotBegun => {}
        }
        part(out, &json!({ "type": "start-step" }));
        self.step = StepState::Open;
    }

    /// The `finish-step` owed by a step that ended, now: what comes next
    /// (a steering message) begins the next step's run, not this one's.
    pub(super) fn end_ended_step(&mut self, out: &mut BytesMut) {
        if self.step == StepState::Ended {
            part(out, &json!({ "type": "finish-step" }));
            self.step = StepState::NotBegun;
        }
    }

    /// `finish-step` for a step open or ended, its open part ended first.
    pub(super) fn finish_step(&mut self, out: &mut BytesMut) {
        if self.step != StepState::NotBegun {
            self.end_part(out);
            part(out, &json!({ "type": "finish-step" }));
            self.step = StepState::NotBegun;
        }
    }
}
