//! The ends of an upload's steps (one model call each, of an agent's
//! answer): what a stream's end marker ends under `?ends=step`, and the
//! reason a step's end keeps.

use serde_json::Value;

use super::generation_input::{Instruction, UploadEnds};

/// Applies an upload's `ends` to what it reads, one read at a time.
#[derive(Debug)]
pub(super) struct StepEnds {
    ends: UploadEnds,
    /// The last instruction applied ended a step.
    just_ended: bool,
    /// The stream ended the task (failed, cancelled or completed it).
    ended_task: bool,
    /// The body is a provider's or the AI SDK's stream, not a producer's
    /// own NDJSON lines. Then an end said again ends nothing more (a
    /// provider says its end more than once: an error, then `[DONE]`; an
    /// NDJSON producer writes each line on purpose, and its second end is
    /// refused, 409, as any write to an ended task is), and a step end
    /// that says no result, last of its read, is held back (`held`).
    from_a_stream: bool,
    /// Held until the next read, whose first instruction may be the end
    /// marker that says its result (the AI SDK's `finish` right after its
    /// `finish-step`, which a live stream often sends in a packet of its
    /// own).
    held: Option<(u64, Instruction)>,
}

impl StepEnds {
    /// `from_a_stream`: the body is a provider's or the AI SDK's stream
    /// (`text/event-stream`), not a producer's own NDJSON lines.
    pub fn new(ends: UploadEnds, from_a_stream: bool) -> Self {
        Self {
            ends,
            just_ended: false,
            ended_task: false,
            from_a_stream,
            held: None,
        }
    }

    /// One read's instructions, in place, as the upload applies them (an
    /// instruction that ends nothing more becomes `Nothing`):
    ///
    /// - a stream that already ended the task asks nothing more of it: its
    ///   end marker after an error (`[DONE]`), the AI SDK's `finish-step`,
    ///   `finish` and `[DONE]` after its `error` (and what it goes on to
    ///   write after a model's error part), its `[DONE]` after `finish`,
    ///   an `abort` or a second error after that;
    /// - under `?ends=step` the stream's end marker ends a step, not the
    ///   task, and nothing more when the stream's own step end (the AI SDK's
    ///   `finish-step`) just ended it;
    /// - a step's end that says no result takes the end marker's right
    ///   after it in the same read (the AI SDK says why a call stopped on
    ///   `finish`, never on `finish-step`): all of it when the marker ends
    ///   nothing more (`?ends=step`), and without its `usage` when the
    ///   marker completes the task, so that the tokens a step took are
    ///   said once, by the step's end or by the completion, and a sum of
    ///   them all is the answer's.
    ///
    /// The body turned out to be a provider's or the AI SDK's stream sent
    /// as NDJSON (one chunk per line): read as one from now on.
    pub fn read_a_stream(&mut self) {
        self.from_a_stream = true;
    }

    /// `stopping`: the upload reads nothing after this, so nothing is held.
    pub fn apply(&mut self, read: &mut Vec<(u64, Instruction)>, stopping: bool) {
        if let Some(held) = self.held.take() {
            read.insert(0, held);
        }
        self.apply_in_place(read);
        if !self.from_a_stream || stopping {
            return;
        }
        let last = read
            .iter()
            .rposition(|(_, instruction)| !instruction.is_beside_the_steps());
        if let Some(at) = last
            && matches!(read[at].1, Instruction::StepEnd { result: None })
        {
            self.held = Some(read.remove(at));
        }
    }

    fn apply_in_place(&mut self, read: &mut [(u64, Instruction)]) {
        for next in 0..read.len() {
            let (earlier, rest) = read.split_at_mut(next);
            let instruction = &mut rest[0].1;
            match instruction {
                Instruction::Nothing => continue,
                // The first end stands, and nothing after it is the task's:
                // the AI SDK writes `finish-step` and `finish` after its
                // `error`, and goes on after a model's error part (more
                // text, a tool's output), which its own chat stops reading
                // at; an OpenAI-compatible router writes an error object,
                // then `finish_reason: "error"`.
                _ if self.ended_task && self.from_a_stream => {
                    *instruction = Instruction::Nothing;
                    continue;
                }
                // What the app says of the message comes between a step's
                // end and the answer's (the AI SDK's `finish` carries it),
                // and ends nothing.
                Instruction::MessageMetadata(_) => continue,
                Instruction::Complete { result } if self.just_ended => {
                    let step = earlier
                        .iter_mut()
                        .rev()
                        .find(|(_, earlier)| !earlier.is_beside_the_steps());
                    if let Some((
                        _,
                        Instruction::StepEnd {
                            result: step @ None,
                        },
                    )) = step
                    {
                        step.clone_from(result);
                        if self.ends == UploadEnds::Task
                            && let Some(Value::Object(said)) = step
                        {
                            said.remove("usage");
                        }
                    }
                    if self.ends == UploadEnds::Step {
                        *instruction = Instruction::Nothing;
                        continue;
                    }
                }
                Instruction::Complete { result } if self.ends == UploadEnds::Step => {
                    *instruction = Instruction::StepEnd {
                        result: result.take(),
                    };
                }
                _ => {}
            }
            self.just_ended = matches!(instruction, Instruction::StepEnd { .. });
            self.ended_task |= instruction.ends_task();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn complete() -> Instruction {
        Instruction::Complete {
            result: Some(json!({ "finish_reason": "tool-calls" })),
        }
    }

    fn step_end(result: Option<serde_json::Value>) -> Instruction {
        Instruction::StepEnd { result }
    }

    fn numbered(instructions: Vec<Instruction>) -> Vec<(u64, Instruction)> {
        (1..).zip(instructions).collect()
    }

    fn applied(ends: UploadEnds, reads: Vec<Vec<Instruction>>) -> Vec<Instruction> {
        let mut steps = StepEnds::new(ends, true);
        let count = reads.len();
        reads
            .into_iter()
            .enumerate()
            .flat_map(|(at, read)| {
                let mut read = numbered(read);
                steps.apply(&mut read, at + 1 == count);
                read
            })
            .map(|(_, instruction)| instruction)
            // What asks nothing the upload skips.
            .filter(|instruction| *instruction != Instruction::Nothing)
            .collect()
    }

    #[test]
    fn by_default_a_streams_end_completes_the_task() {
        let text = Instruction::answer("Hi");
        assert_eq!(
            applied(UploadEnds::Task, vec![vec![text.clone(), complete()]]),
            [text, complete()]
        );
    }

    #[test]
    fn under_ends_step_a_streams_end_ends_a_step_and_a_failure_still_fails() {
        let fail = Instruction::Fail { error: "x".into() };
        assert_eq!(
            applied(
                UploadEnds::Step,
                vec![vec![complete()], vec![Instruction::Nothing, fail.clone()]]
            ),
            [
                step_end(Some(json!({ "finish_reason": "tool-calls" }))),
                fail.clone()
            ]
        );
        // A stream that failed the task, then says `[DONE]`: nothing more
        // to end, in either mode; nor does an `abort` after it, nor what the
        // AI SDK writes after its `error` (`text-end`, `finish-step`,
        // `finish`), nor a router's second error.
        for ends in [UploadEnds::Step, UploadEnds::Task] {
            assert_eq!(
                applied(
                    ends,
                    vec![vec![fail.clone()], vec![complete(), Instruction::Cancel]]
                ),
                std::slice::from_ref(&fail)
            );
            let after_the_sdks_error = vec![
                Instruction::TextEnd(crate::domain::TextKind::Answer, None),
                Instruction::answer("more, after a model's error part"),
                step_end(None),
                complete(),
                fail.clone(),
                complete(),
            ];
            assert_eq!(
                applied(ends, vec![vec![fail.clone()], after_the_sdks_error]),
                std::slice::from_ref(&fail)
            );
        }
        // A producer's own NDJSON says each line on purpose: its write
        // after the end is kept, to be refused.
        let mut own = StepEnds::new(UploadEnds::Task, false);
        let mut read = numbered(vec![fail.clone(), step_end(None)]);
        own.apply(&mut read, true);
        assert_eq!(read[1].1, step_end(None));
        // A provider's chunks sent as NDJSON lines are a stream's.
        own.read_a_stream();
        let mut read = numbered(vec![fail.clone(), step_end(None)]);
        own.apply(&mut read, true);
        assert_eq!(read[1].1, Instruction::Nothing);
    }

    #[test]
    fn the_end_marker_after_a_finish_step_gives_that_step_its_reason_and_ends_nothing_more() {
        let reason = Some(json!({ "finish_reason": "tool-calls" }));
        // The AI SDK's `finish-step`, `finish` (with its reason), `[DONE]`.
        let sdk = vec![step_end(None), Instruction::Nothing, complete()];
        assert_eq!(
            applied(UploadEnds::Step, vec![sdk.clone()]),
            [step_end(reason.clone())]
        );
        assert_eq!(
            applied(UploadEnds::Task, vec![sdk]),
            [step_end(reason), complete()]
        );
        // Completing the task, the marker keeps the tokens: each is said
        // once.
        let with_usage = Instruction::Complete {
            result: Some(json!({ "finish_reason": "stop", "usage": { "output_tokens": 7 } })),
        };
        assert_eq!(
            applied(
                UploadEnds::Task,
                vec![vec![step_end(None), with_usage.clone()]]
            ),
            [
                step_end(Some(json!({ "finish_reason": "stop" }))),
                with_usage.clone()
            ]
        );
        assert_eq!(
            applied(UploadEnds::Step, vec![vec![step_end(None), with_usage]]),
            [step_end(Some(
                json!({ "finish_reason": "stop", "usage": { "output_tokens": 7 } })
            ))]
        );
        // A step end that says its own result keeps it.
        let own = Some(json!({ "finish_reason": "stop" }));
        assert_eq!(
            applied(
                UploadEnds::Task,
                vec![vec![step_end(own.clone()), complete()]]
            ),
            [step_end(own), complete()]
        );
        // Read apart (a live stream's `finish` in a packet of its own), the
        // step's end waits for it: the same.
        for ends in [UploadEnds::Step, UploadEnds::Task] {
            let apart = applied(
                ends,
                vec![
                    vec![Instruction::answer("Hi"), step_end(None)],
                    vec![Instruction::Nothing],
                    vec![complete()],
                ],
            );
            let whole = applied(
                ends,
                vec![vec![Instruction::answer("Hi"), step_end(None), complete()]],
            );
            assert_eq!(apart, whole, "{ends:?}");
        }
        // The upload stops after the step's end: it is applied then.
        assert_eq!(
            applied(UploadEnds::Step, vec![vec![step_end(None)]]),
            [step_end(None)]
        );
        // Something between them: the end marker ends a step of its own.
        let text = Instruction::answer("more");
        assert_eq!(
            applied(
                UploadEnds::Step,
                vec![vec![step_end(None), text.clone(), complete()]]
            ),
            [
                step_end(None),
                text,
                step_end(Some(json!({ "finish_reason": "tool-calls" })))
            ]
        );
    }
}
