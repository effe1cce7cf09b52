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

use crate::domain::TextKind;

use super::generation_input::Instruction;

/// Applies an upload's text parts' ends to what it reads, one read at a
/// time: an end waits for what comes next, in this read or a later one.
#[derive(Debug, Default)]
pub(super) struct TextPartEnds {
    /// The kind of the part a viewer's stream holds open: text of it came
    /// last, and nothing ended it since.
    open: Option<TextKind>,
    /// The open part's end, read but not yet kept, with its line.
    waiting: Option<u64>,
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
                Verdict::EndFirst(line, kind) => {
                    read.insert(at, (line, Instruction::TextEnd(kind)));
                    at += 2;
                }
            }
        }
    }

    /// What becomes of `instruction`, read on `line`.
    fn take(&mut self, line: u64, instruction: &Instruction) -> Verdict {
        match instruction {
            Instruction::TextEnd(kind) => {
                if self.open == Some(*kind) {
                    self.waiting = Some(line);
                }
                return Verdict::Drop;
            }
            Instruction::Delta(delta) if delta.text.is_empty() => {}
            Instruction::Delta(delta) => {
                let end = if self.open == Some(delta.kind) {
                    self.waiting_end()
                } else {
                    Verdict::Keep
                };
                self.waiting = None;
                self.open = Some(delta.kind);
                return end;
            }
            // A part written inside a part of text leaves it open.
            Instruction::Part(_) => return self.waiting_end(),
            Instruction::Progress { .. } | Instruction::Nothing => {}
            Instruction::Tool(_)
            | Instruction::StepEnd { .. }
            | Instruction::Complete { .. }
            | Instruction::Fail { .. }
            | Instruction::Cancel => {
                self.open = None;
                self.waiting = None;
            }
        }
        Verdict::Keep
    }

    /// The waiting end, where it tells something: before what comes next.
    fn waiting_end(&mut self) -> Verdict {
        match (self.waiting.take(), self.open.take()) {
            (Some(line), Some(kind)) => Verdict::EndFirst(line, kind),
            (_, open) => {
                self.open = open;
                Verdict::Keep
            }
        }
    }
}

/// What becomes of one instruction of a read.
enum Verdict {
    Keep,
    Drop,
    /// Kept, after the waiting end of the part of `TextKind`, on its line.
    EndFirst(u64, TextKind),
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
        Instruction::TextEnd(kind)
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
}
