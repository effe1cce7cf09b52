//! Where an upload's parts of text end. The AI SDK's stream writes its text
//! in parts (`text-start` … `text-end`), and a message keeps each apart: two
//! paragraphs written as two parts, a source cited between them. A task's
//! stream joins text of one kind into one part until something ends it (a
//! tool call, a step's end, text of the other kind: see
//! `domain::ui_message_stream`), so a part's end is kept (a `text_end` or
//! `reasoning_end` event) only where it tells something: before more text
//! of its kind, or before a source, file or data part, which would
//! otherwise land after the text that follows it. An end followed by
//! anything that ends the part anyway is dropped, and most answers store
//! none.
//!
//! An answer may come in several uploads (one dropped and the rest sent
//! again, one per step, each to any instance): an end still waiting when
//! an upload stops is kept then, since what follows comes in another
//! upload, and an end before an upload's first text is taken as parting
//! that text from the task's. An upload cannot know which part the task's
//! stream holds open (another instance may have written its text since
//! this one last saw it), and an end that parts nothing is ignored by
//! viewers; a first upload never begins with an end.
//!
//! What the model's provider says of a part (the AI SDK's
//! `providerMetadata` on its start, a delta or its end: Anthropic's
//! thinking signature, OpenAI's item id) is what the chat's next model call
//! needs back: the part's end keeps it, and such an end is always kept
//! (before whatever would end the part without one, when it has none).

use serde_json::Value;

use crate::domain::{PartEndSaid, TextKind};

use super::generation_input::Instruction;

/// Applies an upload's text parts' ends to what it reads, one read at a
/// time: an end waits for what comes next, in this read or a later one.
#[derive(Debug, Default)]
pub(super) struct TextPartEnds {
    open: Open,
    /// An end read but not yet kept: its line and the kind it ends.
    waiting: Option<(u64, TextKind)>,
    /// What the provider last said of the part of each kind (answer,
    /// reasoning) not yet ended.
    said: [Option<Value>; 2],
}

fn slot(kind: TextKind) -> usize {
    usize::from(kind == TextKind::Reasoning)
}

/// The part a viewer's stream holds open.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    /// Text of this kind came last, and nothing ended it since.
    Kind(TextKind),
    /// Before the upload's first instruction: the task's own text may end
    /// in a part of either kind.
    #[default]
    Unknown,
}

impl Open {
    fn may_be(self, kind: TextKind) -> bool {
        self == Self::Unknown || self == Self::Kind(kind)
    }
}

impl TextPartEnds {
    /// One read's instructions, in place: each `TextEnd` taken out, and
    /// put back before the instruction that needs it. Most reads (a token
    /// each) are left as they are, with nothing moved or allocated.
    pub fn apply(&mut self, read: &mut Vec<(u64, Instruction)>) {
        let mut at = 0;
        while let Some((line, instruction)) = read.get(at) {
            match self.take(*line, instruction) {
                Verdict::Keep => at += 1,
                Verdict::Drop => {
                    read.remove(at);
                }
                Verdict::EndFirst(line, kind, said) => {
                    let said = said.map(PartEndSaid::provider);
                    read.insert(at, (line, Instruction::TextEnd(kind, said)));
                    at += 2;
                }
                Verdict::KeepAs(before, instruction) => {
                    read[at].1 = instruction;
                    if let Some((line, kind)) = before {
                        read.insert(at, (line, Instruction::TextEnd(kind, None)));
                        at += 1;
                    }
                    at += 1;
                }
            }
        }
    }

    /// The upload stops here: an end still waiting is kept, as what
    /// follows it would come in another upload.
    pub fn stop(&mut self, read: &mut Vec<(u64, Instruction)>) {
        if let Some((line, kind)) = self.waiting.take() {
            let said = self.said[slot(kind)].take().map(PartEndSaid::provider);
            read.push((line, Instruction::TextEnd(kind, said)));
            self.open = Open::None;
        }
        // What was said of a part the upload leaves open is not kept: an
        // end here would cut the part in two where the next upload goes on
        // with it, and the part's own end, in that upload, says what is
        // said last (a provider says it again there, or it was said of
        // the part's start: lost).
        self.said = [None, None];
    }

    /// What becomes of `instruction`, read on `line`.
    fn take(&mut self, line: u64, instruction: &Instruction) -> Verdict {
        match instruction {
            Instruction::PartSaid(kind, said) => {
                self.said[slot(*kind)] = Some(said.clone());
                return Verdict::Drop;
            }
            Instruction::TextEnd(kind, carried) => {
                // Said on the end itself (an NDJSON end's, the sources an
                // AI SDK end cites), or before it.
                let pending = self.said[slot(*kind)].take();
                if let Some(said) = PartEndSaid::joined(carried.clone(), pending) {
                    // Kept where it is, with what it says; an end of the
                    // same kind still waiting parts the text before.
                    let before = self.waiting.take().filter(|(_, waiting)| waiting == kind);
                    self.open = Open::None;
                    return Verdict::KeepAs(before, Instruction::TextEnd(*kind, Some(said)));
                }
                if self.open.may_be(*kind) {
                    self.waiting = Some((line, *kind));
                }
                return Verdict::Drop;
            }
            Instruction::Delta(delta) if delta.text.is_empty() => {}
            Instruction::Delta(delta) => {
                // A part of the other kind that its provider said something
                // of ends here, though its own end never came.
                let other = delta.kind.other();
                let end = if let Some(said) = self.said[slot(other)].take() {
                    self.waiting = None;
                    Verdict::EndFirst(line, other, Some(said))
                } else {
                    match self.waiting.take() {
                        Some((line, kind)) if kind == delta.kind => {
                            Verdict::EndFirst(line, kind, None)
                        }
                        _ => Verdict::Keep,
                    }
                };
                self.open = Open::Kind(delta.kind);
                return end;
            }
            // A part written inside a part of text leaves it open.
            Instruction::Part(_) => {
                if let Some((line, kind)) = self.waiting.take() {
                    self.open = Open::None;
                    return Verdict::EndFirst(line, kind, None);
                }
            }
            // The message's metadata is no part of it: text goes on.
            Instruction::Progress { .. }
            | Instruction::MessageMetadata(_)
            | Instruction::Nothing => {}
            Instruction::Tool(_)
            | Instruction::StepEnd { .. }
            | Instruction::Complete { .. }
            | Instruction::Fail { .. }
            | Instruction::Cancel => {
                let open = match self.open {
                    Open::Kind(kind) => Some(kind),
                    Open::None | Open::Unknown => None,
                };
                self.open = Open::None;
                self.waiting = None;
                // The part this ends, if its provider said something of it
                // (the open one first): ended here, with that.
                let said = open
                    .into_iter()
                    .chain([TextKind::Answer, TextKind::Reasoning])
                    .find(|kind| self.said[slot(*kind)].is_some());
                if let Some(kind) = said {
                    return Verdict::EndFirst(line, kind, self.said[slot(kind)].take());
                }
            }
        }
        Verdict::Keep
    }
}

/// What becomes of one instruction of a read.
enum Verdict {
    Keep,
    Drop,
    /// Kept, after the end of the part of `TextKind` (a waiting one, on
    /// its line), with what its provider said of it.
    EndFirst(u64, TextKind, Option<Value>),
    /// Kept as this, after the waiting end of the part of `TextKind`, if
    /// there is one.
    KeepAs(Option<(u64, TextKind)>, Instruction),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::AnswerPart;

    fn answer(text: &str) -> Instruction {
        Instruction::answer(text)
    }

    fn end(kind: TextKind) -> Instruction {
        Instruction::TextEnd(kind, None)
    }

    fn source() -> Instruction {
        let part = AnswerPart::url_source("s1", "https://example.com", None, "a source")
            .expect("a well-formed source");
        Instruction::Part(part)
    }

    /// `reads` applied one after the other, the lines left out.
    fn applied(reads: Vec<Vec<Instruction>>) -> Vec<Instruction> {
        let mut ends = TextPartEnds::default();
        let mut out = Vec::new();
        for read in reads {
            let mut read: Vec<(u64, Instruction)> = read.into_iter().map(|i| (1, i)).collect();
            ends.apply(&mut read);
            out.extend(read.into_iter().map(|(_, instruction)| instruction));
        }
        out
    }

    #[test]
    fn an_end_is_kept_before_more_text_of_its_kind_and_before_an_answer_part() {
        let paragraphs = applied(vec![vec![
            answer("One."),
            end(TextKind::Answer),
            answer("Two."),
            end(TextKind::Answer),
        ]]);
        assert_eq!(
            paragraphs,
            [answer("One."), end(TextKind::Answer), answer("Two.")]
        );
        let cited = applied(vec![
            vec![answer("One."), end(TextKind::Answer)],
            vec![source()],
            vec![answer("Two.")],
        ]);
        assert_eq!(
            cited,
            [
                answer("One."),
                end(TextKind::Answer),
                source(),
                answer("Two.")
            ]
        );
        // A source inside a part leaves it open: its end still tells.
        let inside = applied(vec![vec![
            answer("One."),
            source(),
            answer("Two."),
            end(TextKind::Answer),
            answer("Three."),
        ]]);
        assert_eq!(
            inside,
            [
                answer("One."),
                source(),
                answer("Two."),
                end(TextKind::Answer),
                answer("Three.")
            ]
        );
    }

    /// Each upload's reads applied, the upload stopping after its last.
    fn uploads(uploads: Vec<Vec<Instruction>>) -> Vec<Vec<Instruction>> {
        uploads
            .into_iter()
            .map(|upload| {
                let mut ends = TextPartEnds::default();
                let mut read: Vec<(u64, Instruction)> =
                    upload.into_iter().map(|i| (1, i)).collect();
                ends.apply(&mut read);
                ends.stop(&mut read);
                read.into_iter()
                    .map(|(_, instruction)| instruction)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn an_answer_cut_into_two_uploads_at_a_parts_end_keeps_it() {
        let complete = Instruction::Complete { result: None };
        // The first upload stops after the end: it is kept then.
        let after_the_end = uploads(vec![
            vec![answer("One."), end(TextKind::Answer)],
            vec![answer("Two."), complete.clone()],
        ]);
        assert_eq!(
            after_the_end,
            [
                vec![answer("One."), end(TextKind::Answer)],
                vec![answer("Two."), complete.clone()]
            ]
        );
        // The first upload stops before the end: the next one's end parts
        // its text from the task's, of either kind.
        for kind in [TextKind::Answer, TextKind::Reasoning] {
            let more = Instruction::Delta(crate::services::tasks::Delta {
                text: "Two.".into(),
                seq: None,
                kind,
            });
            let before_the_end = uploads(vec![
                vec![answer("One.")],
                vec![end(kind), more.clone(), complete.clone()],
            ]);
            assert_eq!(
                before_the_end[1],
                [end(kind), more, complete.clone()],
                "{kind:?}"
            );
        }
        // An upload that ends its task, or only text, stores no end.
        let whole = uploads(vec![vec![
            answer("One."),
            end(TextKind::Answer),
            complete.clone(),
        ]]);
        assert_eq!(whole, [vec![answer("One."), complete]]);
        assert_eq!(uploads(vec![vec![answer("One.")]]), [vec![answer("One.")]]);
    }

    #[test]
    fn an_end_that_tells_nothing_is_dropped() {
        let complete = Instruction::Complete { result: None };
        let step_end = Instruction::StepEnd { result: None };
        let progress = Instruction::Progress {
            progress: Some(50.0),
            stage: None,
            message: None,
            force: false,
        };
        let thinking = Instruction::reasoning("Hm.");
        let ended_anyway = applied(vec![
            vec![answer("One."), end(TextKind::Answer)],
            vec![progress.clone(), step_end.clone(), answer("Two.")],
            vec![end(TextKind::Answer), complete.clone()],
        ]);
        assert_eq!(
            ended_anyway,
            [answer("One."), progress, step_end, answer("Two."), complete]
        );
        // A change of kind ends the part itself; an end of a part never
        // begun, or of the other kind, ends nothing.
        let kinds = applied(vec![vec![
            end(TextKind::Answer),
            thinking.clone(),
            end(TextKind::Answer),
            end(TextKind::Reasoning),
            answer("One."),
            answer(""),
            end(TextKind::Reasoning),
            source(),
        ]]);
        assert_eq!(kinds, [thinking, answer("One."), answer(""), source()]);
        let tool = crate::domain::ToolEvent::call("c1", "search", json!({}), "a call")
            .expect("a well-formed call");
        let before_a_tool = applied(vec![vec![
            answer("One."),
            end(TextKind::Answer),
            Instruction::Tool(tool.clone()),
            answer("Two."),
        ]]);
        assert_eq!(
            before_a_tool,
            [answer("One."), Instruction::Tool(tool), answer("Two.")]
        );
    }

    fn said(kind: TextKind, what: &str) -> Instruction {
        Instruction::PartSaid(kind, json!({ "p": what }))
    }

    fn end_saying(kind: TextKind, what: &str) -> Instruction {
        Instruction::TextEnd(kind, Some(PartEndSaid::provider(json!({ "p": what }))))
    }

    #[test]
    fn what_a_provider_says_of_a_part_goes_to_its_end_which_is_kept() {
        use TextKind::{Answer, Reasoning};
        // Said on the start and on the end: the last said, on the end, kept
        // though nothing of its kind follows.
        let paragraph = applied(vec![vec![
            said(Answer, "start"),
            answer("One."),
            said(Answer, "end"),
            end(Answer),
            Instruction::Complete { result: None },
        ]]);
        assert_eq!(
            paragraph,
            [
                answer("One."),
                end_saying(Answer, "end"),
                Instruction::Complete { result: None }
            ]
        );
        // A thought with no text (redacted), after an end still waiting
        // before it: both ends, in order.
        let redacted = applied(vec![vec![
            Instruction::reasoning("Hm."),
            end(Reasoning),
            said(Reasoning, "redacted"),
            end(Reasoning),
            answer("Hi."),
        ]]);
        assert_eq!(
            redacted,
            [
                Instruction::reasoning("Hm."),
                end(Reasoning),
                end_saying(Reasoning, "redacted"),
                answer("Hi.")
            ]
        );
    }

    #[test]
    fn a_part_said_of_and_never_ended_ends_where_it_would_end_anyway() {
        use TextKind::{Answer, Reasoning};
        let tool = crate::domain::ToolEvent::call("c1", "search", json!({}), "a call")
            .expect("a well-formed call");
        // By the other kind's text, by a tool call, by the upload's stop.
        let ended = applied(vec![vec![
            Instruction::reasoning("Hm."),
            said(Reasoning, "sig"),
            answer("One."),
            said(Answer, "item"),
            Instruction::Tool(tool.clone()),
        ]]);
        assert_eq!(
            ended,
            [
                Instruction::reasoning("Hm."),
                end_saying(Reasoning, "sig"),
                answer("One."),
                end_saying(Answer, "item"),
                Instruction::Tool(tool)
            ]
        );
        // An end that says it itself (an NDJSON producer's) is kept too.
        let own = applied(vec![vec![
            answer("One."),
            end_saying(Answer, "own"),
            Instruction::Complete { result: None },
        ]]);
        assert_eq!(
            own,
            [
                answer("One."),
                end_saying(Answer, "own"),
                Instruction::Complete { result: None }
            ]
        );
        // An upload stopping inside the part does not end it: the next
        // one goes on with it, and its end says what is said last.
        let split = uploads(vec![
            vec![said(Answer, "start"), answer("One ")],
            vec![answer("two."), said(Answer, "end"), end(Answer)],
        ]);
        assert_eq!(
            split,
            [
                vec![answer("One ")],
                vec![answer("two."), end_saying(Answer, "end")]
            ]
        );
    }
}
