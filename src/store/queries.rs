//! The queries both backends run, written once. They are macros because a
//! diesel boxed query generic over the backend needs a wall of trait
//! bounds; expanded in each backend's file, each is checked against that
//! backend's SQL dialect like hand-written code.

/// Which of a chat's tasks a lookup considers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTasks {
    /// Tasks in a project: any (`None`), or one of these.
    InProjects(Option<Vec<String>>),
    /// Tasks in no project.
    Unprojected,
}

/// One page of stored events after `page.after`, oldest first, narrowed
/// by the page's type, project and task filters. Expands to a boxed query
/// of [`StoredEventRow`](super::rows::StoredEventRow)s.
macro_rules! events_after {
    ($page:expr) => {{
        let page: $crate::store::EventPage = $page;
        let mut query = events::table
            .filter(events::id.gt(page.after.0))
            .order(events::id.asc())
            .limit(page.limit)
            .select(StoredEventRow::as_select())
            .into_boxed();
        if let Some(types) = page.event_types {
            query = query.filter(events::event_type.eq_any(types));
        }
        if let Some(project) = page.project_id {
            query = query.filter(events::project_id.eq(project));
        }
        if let Some(task) = page.task_id {
            query = query.filter(events::task_id.eq(task));
        }
        if let Some(visibility) = page.visible_to {
            if let Some(projects) = visibility.projects {
                query = query.filter(
                    events::project_id
                        .is_null()
                        .or(events::project_id.eq_any(projects)),
                );
            }
            query = match visibility.user_id {
                Some(user) => query.filter(events::user_id.is_null().or(events::user_id.eq(user))),
                None => query.filter(events::user_id.is_null()),
            };
        }
        query
    }};
}

/// The statuses of a task that is not finished: a write of its progress or
/// text is stored only while its row has one of them.
pub(super) const UNFINISHED_STATUSES: [&str; 2] = ["pending", "running"];

/// The ids of up to `$batch` of the oldest events created before
/// `$cutoff_ms` (an `i64`), sparing those of unfinished tasks: a generation
/// that runs longer than retention keeps its whole text for the viewers who
/// open it later; once it ends, its old events go with the next prune, but
/// for its end, kept as long as its row: a client that resumes after the
/// rest is gone still gets the end with its id, and a resume past it is
/// still told there is nothing more (204), not sent the end again. An
/// event published with an idempotency key is kept for the key's window
/// ([`IDEMPOTENCY_WINDOW`](super::IDEMPOTENCY_WINDOW)) even when retention
/// is shorter: the key lives on its row, and a retry within the window must
/// still find it.
/// Expands to a query of `i64`.
macro_rules! prunable_event_ids {
    ($cutoff_ms:expr, $batch:expr) => {{
        let cutoff_ms: i64 = $cutoff_ms;
        let keys_cutoff_ms = cutoff_ms.min(super::keys_remembered_since_ms());
        let unfinished = tasks::table
            .filter(tasks::status.eq_any(super::queries::UNFINISHED_STATUSES))
            .select(tasks::task_id.nullable());
        events::table
            .filter(events::created_at_ms.lt(cutoff_ms))
            .filter(
                events::idempotency_key
                    .is_null()
                    .or(events::created_at_ms.lt(keys_cutoff_ms)),
            )
            .filter(
                events::task_id.is_null().or(events::task_id
                    .ne_all(unfinished)
                    .and(events::event_type.ne_all(crate::domain::TASK_END_TYPES))),
            )
            .order(events::id.asc())
            .limit($batch)
            .select(events::id)
    }};
}

/// Unfinished tasks (of `$task_type`, an `Option<String>`) with no write
/// since `$updated_before_ms`, at most `$limit`. Expands to a boxed query of
/// [`TaskRow`](super::rows::TaskRow)s.
macro_rules! silent_tasks {
    ($updated_before_ms:expr, $task_type:expr, $limit:expr) => {{
        let mut query = tasks::table
            .filter(tasks::status.eq_any(super::queries::UNFINISHED_STATUSES))
            .filter(tasks::updated_at_ms.lt($updated_before_ms))
            .limit($limit)
            .select(TaskRow::as_select())
            .into_boxed();
        if let Some(task_type) = $task_type {
            query = query.filter(tasks::task_type.eq(task_type));
        }
        query
    }};
}

/// The newest task of chat `$chat_id` (a `String`) among `$which` (a
/// [`ChatTasks`]), whatever its status.
/// Expands to a boxed query of at most one
/// [`TaskRow`](super::rows::TaskRow), served by the `tasks_chat` index.
macro_rules! chat_task {
    ($chat_id:expr, $which:expr) => {{
        let mut query = tasks::table
            .filter(tasks::chat_id.eq($chat_id))
            .order((tasks::created_at_ms.desc(), tasks::task_id.desc()))
            .limit(1)
            .select(TaskRow::as_select())
            .into_boxed();
        match $which {
            super::queries::ChatTasks::InProjects(None) => {
                query = query.filter(tasks::project_id.is_not_null())
            }
            super::queries::ChatTasks::InProjects(Some(projects)) => {
                query = query.filter(tasks::project_id.eq_any(projects))
            }
            super::queries::ChatTasks::Unprojected => {
                query = query.filter(tasks::project_id.is_null())
            }
        }
        query
    }};
}

/// The finished tasks that wrote the earlier parts of assistant message
/// `$earlier.message_id` of chat `$earlier.chat_id`, oldest first: each task of
/// the chat in the same project created with that `message_id`, and the
/// task whose own id it is (a message's first task names none), created
/// no later than `$earlier.before_ms`, but not `$earlier.except`. An
/// unfinished one is left out before the limit counts. Expands to a
/// boxed query of [`TaskRow`](super::rows::TaskRow)s, served by the
/// `tasks_chat` index.
macro_rules! message_tasks {
    ($earlier:expr) => {{
        let earlier: $crate::store::EarlierTasks = $earlier;
        let mut query = tasks::table
            .filter(tasks::chat_id.eq(earlier.chat_id))
            .filter(tasks::created_at_ms.le(earlier.before_ms))
            .filter(tasks::task_id.ne(earlier.except))
            .filter(tasks::status.ne_all(super::queries::UNFINISHED_STATUSES))
            .filter(
                tasks::message_id
                    .eq(earlier.message_id.clone())
                    .or(tasks::task_id
                        .eq(earlier.message_id)
                        .and(tasks::message_id.is_null())),
            )
            .order((tasks::created_at_ms.asc(), tasks::task_id.asc()))
            .limit(earlier.limit)
            .select(TaskRow::as_select())
            .into_boxed();
        query = match earlier.project_id {
            Some(project) => query.filter(tasks::project_id.eq(project)),
            None => query.filter(tasks::project_id.is_null()),
        };
        query
    }};
}

/// The `seq` stored with task `$task_id`'s newest `text` event that has
/// one. Expands to a query of `Option<i64>`s, newest first.
macro_rules! latest_text_seq {
    ($task_id:expr) => {{
        events::table
            .filter(events::task_id.eq($task_id))
            .filter(events::seq.is_not_null())
            .order(events::id.desc())
            .select(events::seq)
    }};
}

pub(super) use {
    chat_task, events_after, latest_text_seq, message_tasks, prunable_event_ids, silent_tasks,
};

/// Which tasks wrote the earlier parts of a message (see `message_tasks!`).
#[derive(Debug, Clone)]
pub struct EarlierTasks {
    pub chat_id: String,
    pub message_id: String,
    /// The project of the task that continues the message: only tasks of
    /// the same project (or, for one of none, of none) count.
    pub project_id: Option<String>,
    pub before_ms: i64,
    /// The continuing task itself.
    pub except: String,
    pub limit: i64,
}
