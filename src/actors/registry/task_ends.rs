//! Who hears of a task's end: LiveTasks reloads a task another instance
//! finished when its last event is routed here.

use actix::{Context, Handler, Message, Recipient};

use super::Registry;
use crate::domain::TaskId;

/// A task's last event was routed (stored by this or another instance):
/// if this instance holds the task as unfinished, it reloads it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TaskEnded {
    pub task_id: TaskId,
}

/// From now on, tell `recipient` of every task's last event routed here.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchTaskEnds {
    pub recipient: Recipient<TaskEnded>,
}

impl Handler<WatchTaskEnds> for Registry {
    type Result = ();

    fn handle(&mut self, msg: WatchTaskEnds, _: &mut Context<Self>) {
        self.task_ends = Some(msg.recipient);
    }
}
