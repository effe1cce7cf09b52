//! The text a streamed upload has queued within its coalescing window:
//! handed to the task's queue as it arrives (so nothing written to the task
//! afterwards, a cancel or a fail from another request, the drain, can
//! overtake it), held there until the window ends, then written as one
//! event (see `LiveTasks::pump`).

use super::{
    tasks::{TaskService, WriteAnswer},
    upload_counts::Counted,
    upload_error::{UploadError, at_line},
};
use crate::domain::TaskId;

/// Queued writes of one upload, each with the line of its first delta.
#[derive(Default)]
pub(super) struct HeldText {
    queued: Vec<(u64, WriteAnswer)>,
}

impl HeldText {
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    pub fn push(&mut self, line: u64, answer: WriteAnswer) {
        self.queued.push((line, answer));
    }

    /// Writes what is queued now and answers what it counted, or the first
    /// refusal, named by its line.
    pub async fn release(
        &mut self,
        service: &TaskService,
        task_id: &TaskId,
    ) -> Result<Counted, UploadError> {
        if self.queued.is_empty() {
            return Ok(Counted::default());
        }
        // An empty write behind them ends their hold: they go as one event.
        let released = service.release_text(task_id).await;
        let settled = self.settle().await;
        released.map_err(|error| at_line(self.first_line(), error))?;
        settled
    }

    /// Awaits the queued writes, which something behind them (a change, the
    /// drain, a newer upload's write) has made go: what they counted, or
    /// the first refusal, named by its line.
    pub async fn settle(&mut self) -> Result<Counted, UploadError> {
        let mut counted = Counted::default();
        let mut refused = None;
        for (line, answer) in self.queued.drain(..) {
            match answer.await {
                Ok(written) => counted += Counted::of_text(&written),
                Err(error) if refused.is_none() => refused = Some(at_line(line, error)),
                Err(_) => {}
            }
        }
        refused.map_or(Ok(counted), Err)
    }

    /// `written` (a write of this upload, queued behind what it held),
    /// after what was held, which goes now if that write did not take it
    /// along: a refusal of the held text, which came first, is the one
    /// answered.
    pub async fn before(
        &mut self,
        service: &TaskService,
        task_id: &TaskId,
        written: Result<Counted, UploadError>,
    ) -> Result<Counted, UploadError> {
        let mut counted = self.release(service, task_id).await?;
        counted += written?;
        Ok(counted)
    }

    fn first_line(&self) -> u64 {
        self.queued.first().map_or(0, |(line, _)| *line)
    }
}

/// Sleeps until `at` (the window's end); never wakes without one.
pub(super) async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
