//! The queries both backends run, written once. They are macros because a
//! diesel boxed query generic over the backend needs a wall of trait
//! bounds; expanded in each backend's file, each is checked against that
//! backend's SQL dialect like hand-written code.

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
        query
    }};
}

/// The statuses of a task that is not finished: a write of its progress or
/// text is stored only while its row has one of them.
pub(super) const UNFINISHED_STATUSES: [&str; 2] = ["pending", "running"];

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

/// The newest unfinished task of chat `$chat_id` (a `String`) that is in
/// no project or in one of `$projects` (an `Option<Vec<String>>`; `None`:
/// any project). Expands to a boxed query of at most one
/// [`TaskRow`](super::rows::TaskRow), served by the `tasks_chat` index.
macro_rules! chat_running_task {
    ($chat_id:expr, $projects:expr) => {{
        let mut query = tasks::table
            .filter(tasks::chat_id.eq($chat_id))
            .filter(tasks::status.eq_any(super::queries::UNFINISHED_STATUSES))
            .order((tasks::created_at_ms.desc(), tasks::task_id.desc()))
            .limit(1)
            .select(TaskRow::as_select())
            .into_boxed();
        if let Some(projects) = $projects {
            query = query.filter(
                tasks::project_id
                    .is_null()
                    .or(tasks::project_id.eq_any(projects)),
            );
        }
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

pub(super) use {chat_running_task, events_after, latest_text_seq, silent_tasks};
