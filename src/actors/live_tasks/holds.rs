//! When the text a streamed upload holds back for its coalescing window is
//! due: one timer for the actor, at the earliest window's end, instead of a
//! future per task (actix polls every future an actor holds each time it
//! wakes).

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    time::{Duration, Instant},
};

use crate::domain::TaskId;

#[derive(Default)]
pub(super) struct Holds {
    due: BinaryHeap<Reverse<(Instant, TaskId)>>,
    /// When the timer set last goes off (`None`: none set).
    wake_at: Option<Instant>,
    /// The instance drains: nothing is held any more.
    pub flushing: bool,
}

impl Holds {
    /// Notes `task_id` due at `until`; the delay of a timer to set when it
    /// is due before the one set.
    pub fn add(&mut self, task_id: TaskId, until: Instant, now: Instant) -> Option<Duration> {
        self.due.push(Reverse((until, task_id)));
        self.arm(until, now)
    }

    /// The tasks due at `now` (the timer went off).
    pub fn take_due(&mut self, now: Instant) -> Vec<TaskId> {
        self.wake_at = None;
        let mut due = Vec::new();
        while let Some(Reverse((until, _))) = self.due.peek()
            && *until <= now
        {
            let Reverse((_, task_id)) = self.due.pop().expect("peeked");
            due.push(task_id);
        }
        due
    }

    /// The delay of the timer for the next task due, if any.
    pub fn rearm(&mut self, now: Instant) -> Option<Duration> {
        let next = self.due.peek().map(|Reverse((until, _))| *until)?;
        self.arm(next, now)
    }

    /// Every task noted, to be written now.
    pub fn take_all(&mut self) -> Vec<TaskId> {
        self.wake_at = None;
        self.due
            .drain()
            .map(|Reverse((_, task_id))| task_id)
            .collect()
    }

    fn arm(&mut self, at: Instant, now: Instant) -> Option<Duration> {
        if self.wake_at.is_some_and(|set| set <= at) {
            return None;
        }
        self.wake_at = Some(at);
        Some(at.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> TaskId {
        TaskId::parse(name).expect("an id")
    }

    #[test]
    fn one_timer_at_the_earliest_end_and_the_due_ones_in_order() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut holds = Holds::default();

        assert_eq!(holds.add(id("b"), now + ms(20), now), Some(ms(20)));
        assert_eq!(
            holds.add(id("c"), now + ms(30), now),
            None,
            "a later end sets no timer"
        );
        assert_eq!(
            holds.add(id("a"), now + ms(10), now),
            Some(ms(10)),
            "an earlier one does"
        );

        assert_eq!(holds.take_due(now + ms(20)), vec![id("a"), id("b")]);
        assert_eq!(holds.rearm(now + ms(20)), Some(ms(10)), "then the next end");
        assert_eq!(holds.take_all(), vec![id("c")]);
        assert_eq!(holds.rearm(now), None);
    }
}
