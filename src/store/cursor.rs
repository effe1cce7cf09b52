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
    pub limit: i64,
}

impl EventPage {
    pub fn for_subscription(subscription: &Subscription, after: EventId, limit: i64) -> Self {
        Self {
            after,
            event_types: match &subscription.event_types {
                TypeFilter::All => None,
                TypeFilter::Only(types) => Some(types.iter().map(ToString::to_string).collect()),
            },
            project_id: subscription.project_id.as_ref().map(ToString::to_string),
            task_id: subscription.task_id.as_ref().map(ToString::to_string),
            limit,
        }
    }
}

pub struct EventCursor {
    store: EventStore,
    page: EventPage,
    exhausted: bool,
}

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
            page,
            exhausted: false,
        }
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
        Ok(page.events)
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
