//! `EventCursor`: stored events after a position, read page by page. The
//! one way the broker walks the store: a stream's replay, `/sse/history`
//! and the cluster's gap repair.

use super::{EventStore, StoreError};
use crate::domain::{EventId, StoredEvent, Subscription, TypeFilter};

/// A page of stored events: id greater than `after`, oldest first, narrowed
/// by what SQL can filter cheaply. Visibility is still applied by the caller
/// through `Subscription::matches`.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub after: EventId,
    pub event_types: Option<Vec<String>>,
    pub project_id: Option<String>,
    pub task_id: Option<String>,
    /// Only the events this viewer may see; `None`: every event.
    pub visible_to: Option<Visibility>,
    pub limit: i64,
}

/// A viewer's visibility as SQL can apply it: events of no project or of
/// `projects` (`None`: any), private events only of `user_id`. Without it
/// a tenant's history read other tenants' events only to drop them, a
/// page at a time: on a store holding 300,000 events of another project,
/// `limit=1` took 5.6 s on SQLite and 118 s on PostgreSQL.
#[derive(Debug, Clone)]
pub struct Visibility {
    pub projects: Option<Vec<String>>,
    pub user_id: Option<String>,
}

impl EventPage {
    pub fn for_subscription(subscription: &Subscription, after: EventId, limit: i64) -> Self {
        Self {
            after,
            event_types: match &subscription.event_types {
                TypeFilter::All => None,
                TypeFilter::Only(types) => Some(types.iter().map(ToString::to_string).collect()),
            },
            // A task's events all carry its project: the task filter alone
            // picks them (and keeps the query on the task's index).
            project_id: subscription
                .project_id
                .as_ref()
                .filter(|_| subscription.task_id.is_none())
                .map(ToString::to_string),
            task_id: subscription.task_id.as_ref().map(ToString::to_string),
            // A task's stream was checked against its viewer when it
            // opened, and its events are read through the task's own index.
            visible_to: subscription.task_id.is_none().then(|| Visibility {
                projects: subscription.viewer.projects.to_list(),
                user_id: subscription
                    .viewer
                    .user_id
                    .as_ref()
                    .map(ToString::to_string),
            }),
            limit,
        }
    }
}

pub struct EventCursor {
    store: EventStore,
    page: EventPage,
    exhausted: bool,
    /// Set by [`EventCursor::weighing`]: the page's size in rows follows
    /// the events' size, so that a page weighs about this many bytes.
    page_bytes: Option<usize>,
    /// The most rows a page may have (the size asked for).
    max_rows: i64,
    bytes_read: usize,
    /// What a row of the last page weighed on average, in bytes.
    per_row: Option<usize>,
}

/// Rows of a weighed cursor's first page, before the events' size is known:
/// at the largest event a body may carry (64 KiB by default) 1 MiB.
const FIRST_WEIGHED_PAGE: i64 = 16;

impl EventCursor {
    /// Every stored event after `after`, `page_size` rows per query.
    pub fn all(store: EventStore, after: EventId, page_size: i64) -> Self {
        Self::over(
            store,
            EventPage {
                after,
                event_types: None,
                project_id: None,
                task_id: None,
                visible_to: None,
                limit: page_size,
            },
        )
    }

    /// The stored events after `after` that SQL can tell may match
    /// `subscription`; visibility is still the caller's
    /// (`Subscription::matches`).
    pub fn for_subscription(
        store: EventStore,
        subscription: &Subscription,
        after: EventId,
        page_size: i64,
    ) -> Self {
        Self::over(
            store,
            EventPage::for_subscription(subscription, after, page_size),
        )
    }

    fn over(store: EventStore, page: EventPage) -> Self {
        Self {
            store,
            max_rows: page.limit,
            page,
            exhausted: false,
            page_bytes: None,
            bytes_read: 0,
            per_row: None,
        }
    }

    /// Pages of about `page_bytes` of event data (never more rows than
    /// asked): a page of 500 events of 60 KB would be 30 MB, held by one
    /// request or one resuming stream while its client reads.
    pub fn weighing(mut self, page_bytes: usize) -> Self {
        self.page_bytes = Some(page_bytes.max(1));
        self.page.limit = self.max_rows.min(FIRST_WEIGHED_PAGE);
        self
    }

    /// The next page, oldest first; empty once the store has nothing more.
    /// The position moves past every row read.
    pub async fn next_page(&mut self) -> Result<Vec<StoredEvent>, StoreError> {
        if self.exhausted {
            return Ok(Vec::new());
        }
        let page = self.store.events_after(self.page.clone()).await?;
        // Judged by the rows, not the events: a row that no longer decodes
        // is skipped, not taken for the end of the store.
        self.exhausted = (page.rows as i64) < self.page.limit;
        if let Some(last) = page.last_id {
            self.page.after = last;
        }
        self.bytes_read += page.data_bytes;
        if let Some(budget) = self.page_bytes
            && page.rows > 0
        {
            let per_row = (page.data_bytes / page.rows).max(1);
            self.per_row = Some(per_row);
            self.page.limit = ((budget / per_row) as i64).clamp(1, self.max_rows);
        }
        Ok(page.events)
    }

    /// The next page of a weighed cursor weighs about `bytes` at most (at
    /// least one row), by what the rows of the last one weighed.
    pub fn narrow_next_page(&mut self, bytes: usize) {
        if let Some(per_row) = self.per_row {
            self.page.limit = self.page.limit.min(((bytes / per_row) as i64).max(1));
        }
    }

    /// The event data read so far, in bytes (as stored).
    pub fn bytes_read(&self) -> usize {
        self.bytes_read
    }

    /// Whether the last page read was the store's last.
    pub fn is_exhausted(&self) -> bool {
        self.exhausted
    }

    /// The id of the last row read (or the starting point).
    pub fn position(&self) -> EventId {
        self.page.after
    }

    /// Reads on from `after` (later than the position: events up to it
    /// came another way), even if the store seemed exhausted.
    pub fn resume_from(&mut self, after: EventId) {
        self.page.after = self.page.after.max(after);
        self.exhausted = false;
    }
}

#[cfg(test)]
mod tests {
    use diesel::{prelude::*, sql_types::Nullable, sql_types::Text};

    use super::*;
    use crate::{
        domain::{ProjectAccess, ProjectId, UserId, Viewer},
        store::{
            queries,
            rows::StoredEventRow,
            schema::events,
            sqlite::tests::{migrated, newest_id},
        },
    };

    fn insert(c: &mut SqliteConnection, project: Option<&str>, user: Option<&str>) -> i64 {
        diesel::sql_query(
            "INSERT INTO events (event_type, data, project_id, user_id, created_at_ms) \
             VALUES ('commit', '{}', ?, ?, 1)",
        )
        .bind::<Nullable<Text>, _>(project)
        .bind::<Nullable<Text>, _>(user)
        .execute(c)
        .expect("stored");
        newest_id(c)
    }

    fn page_for(c: &mut SqliteConnection, viewer: Viewer, limit: i64) -> Vec<i64> {
        let subscription = Subscription {
            event_types: TypeFilter::All,
            project_id: None,
            task_id: None,
            viewer,
        };
        queries::events_after!(EventPage::for_subscription(
            &subscription,
            EventId(0),
            limit
        ))
        .load::<StoredEventRow>(c)
        .expect("a page")
        .into_iter()
        .map(|row| row.id)
        .collect()
    }

    #[test]
    fn a_page_holds_only_what_its_viewer_may_see_however_much_else_comes_first() {
        let mut c = migrated();
        for _ in 0..50 {
            insert(&mut c, Some("pA"), None);
        }
        let alices = insert(&mut c, Some("pB"), Some("alice"));
        let project_b = insert(&mut c, Some("pB"), None);
        let everyones = insert(&mut c, None, None);
        let bob = |projects: ProjectAccess| Viewer {
            user_id: Some(UserId::parse("bob").unwrap()),
            projects,
        };
        let only_b = || {
            ProjectAccess::Only(std::sync::Arc::new(
                [ProjectId::parse("pB").unwrap()].into(),
            ))
        };

        // One row asked for is the first one bob may see, not the first of
        // another project's 50 before it.
        assert_eq!(page_for(&mut c, bob(only_b()), 1), [project_b]);
        assert_eq!(page_for(&mut c, bob(only_b()), 10), [project_b, everyones]);
        let alice = Viewer {
            user_id: Some(UserId::parse("alice").unwrap()),
            projects: only_b(),
        };
        assert_eq!(page_for(&mut c, alice, 10), [alices, project_b, everyones]);
        let no_projects = bob(ProjectAccess::Only(std::sync::Arc::new(Default::default())));
        assert_eq!(page_for(&mut c, no_projects, 10), [everyones]);
        assert_eq!(
            page_for(&mut c, Viewer::anonymous(), 100).len(),
            52,
            "every project, no private event"
        );
    }
}
