//! What ends an upload from outside, while it waits for its producer: the
//! task ended by someone else, a newer upload, the instance's drain.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{
    tasks::{TaskWriteError, UploadWatch},
    upload_error::UploadError,
};
use crate::{
    domain::{TaskError, TaskStatus},
    shutdown::ShutdownHandle,
};

/// Resolves once the task ends other than by this upload's own terminal
/// line (cancelled, or completed or failed elsewhere), a newer upload takes
/// over, or the instance begins its drain, with why.
pub(super) async fn stopped(
    upload: &mut Option<UploadWatch>,
    ended_here: &AtomicBool,
    draining: &ShutdownHandle,
) -> UploadError {
    let Some(UploadWatch {
        status,
        current,
        claim,
    }) = upload
    else {
        draining.wait().await;
        return UploadError::ShuttingDown;
    };
    let claim = *claim;
    // Once this upload wrote its own end, a cancel that beat it is
    // answered by that write's refusal.
    let ended_elsewhere =
        |status: &TaskStatus| status.is_terminal() && !ended_here.load(Ordering::Relaxed);
    tokio::select! {
        Ok(status) = status.wait_for(ended_elsewhere) => match *status {
            TaskStatus::Cancelled => TaskWriteError::Task(TaskError::Cancelled).into(),
            ended => TaskWriteError::Task(TaskError::Finished(ended)).into(),
        },
        Ok(_) = current.wait_for(|upload| *upload != claim) => UploadError::Superseded,
        () = draining.wait() => UploadError::ShuttingDown,
        else => std::future::pending().await,
    }
}
