//! `RoutingIndex`: from an event's type, project and task to the streams
//! that may want it, so routing never scans every connection.
//!
//! Each connection sits in exactly one bucket set (its project key, then
//! "all types" or one entry per type; task streams only under their task),
//! so the candidates of one event never contain a connection twice. A
//! stream found by its project and type bucket already matches the event's
//! type and project, so only its viewer's rights are left to check; a task
//! stream (found by its task) still gets the full `Subscription::matches`.
//!
//! Streams are keyed by their slot in the connection table (a `usize`), so
//! a candidate leads straight to its entry without hashing its id.

use std::collections::{HashMap, HashSet};

use crate::domain::{EventType, ProjectId, StoredEvent, Subscription, TaskRef, TypeFilter};

/// A stream's slot in the connection table.
pub type StreamKey = usize;

#[derive(Debug, Default)]
struct TypeBuckets {
    all_types: HashSet<StreamKey>,
    by_type: HashMap<EventType, HashSet<StreamKey>>,
}

impl TypeBuckets {
    fn is_empty(&self) -> bool {
        self.all_types.is_empty() && self.by_type.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct RoutingIndex {
    by_project: HashMap<Option<ProjectId>, TypeBuckets>,
    by_task: HashMap<TaskRef, HashSet<StreamKey>>,
}

impl RoutingIndex {
    pub fn insert(&mut self, id: StreamKey, subscription: &Subscription) {
        if let Some(task) = &subscription.task_id {
            self.by_task.entry(task.clone()).or_default().insert(id);
            return;
        }
        let buckets = self
            .by_project
            .entry(subscription.project_id.clone())
            .or_default();
        match &subscription.event_types {
            TypeFilter::All => {
                buckets.all_types.insert(id);
            }
            TypeFilter::Only(types) => {
                for event_type in types.iter() {
                    buckets
                        .by_type
                        .entry(event_type.clone())
                        .or_default()
                        .insert(id);
                }
            }
        }
    }

    pub fn remove(&mut self, id: StreamKey, subscription: &Subscription) {
        if let Some(task) = &subscription.task_id {
            if let Some(set) = self.by_task.get_mut(task) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_task.remove(task);
                }
            }
            return;
        }
        let Some(buckets) = self.by_project.get_mut(&subscription.project_id) else {
            return;
        };
        match &subscription.event_types {
            TypeFilter::All => {
                buckets.all_types.remove(&id);
            }
            TypeFilter::Only(types) => {
                for event_type in types.iter() {
                    if let Some(set) = buckets.by_type.get_mut(event_type) {
                        set.remove(&id);
                        if set.is_empty() {
                            buckets.by_type.remove(event_type);
                        }
                    }
                }
            }
        }
        if buckets.is_empty() {
            self.by_project.remove(&subscription.project_id);
        }
    }

    /// Appends to `out` every connection that may want `event`, and
    /// answers how many of them, at the front, are task streams that still
    /// need `Subscription::matches`. Every later one matches the event's
    /// type and project already: only its viewer's rights remain to check
    /// (`Viewer::can_see`). Skipping the rest of the filter per candidate
    /// is most of routing's own cost on a wide fan-out.
    pub fn candidates(&self, event: &StoredEvent, out: &mut Vec<StreamKey>) -> usize {
        let start = out.len();
        if let Some(task) = &event.task_id
            && let Some(set) = self.by_task.get(task)
        {
            out.extend(set.iter().copied());
        }
        let task_streams = out.len() - start;
        let mut collect = |key: &Option<ProjectId>| {
            if let Some(buckets) = self.by_project.get(key) {
                out.extend(buckets.all_types.iter().copied());
                if let Some(set) = buckets.by_type.get(&event.event_type) {
                    out.extend(set.iter().copied());
                }
            }
        };
        collect(&None);
        if event.project_id.is_some() {
            collect(&event.project_id);
        }
        task_streams
    }

    pub fn is_empty(&self) -> bool {
        self.by_project.is_empty() && self.by_task.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Viewer;
    use serde_json::json;

    fn sub(types: &[&str], project: Option<&str>, task: Option<&str>) -> Subscription {
        Subscription {
            event_types: if types.is_empty() {
                TypeFilter::All
            } else {
                TypeFilter::only(types.iter().map(|t| EventType::parse(t).unwrap()))
            },
            project_id: project.map(|p| ProjectId::parse(p).unwrap()),
            task_id: task.map(|t| TaskRef::parse(t).unwrap()),
            viewer: Viewer::anonymous(),
        }
    }

    fn event(t: &str, project: Option<&str>, task: Option<&str>) -> StoredEvent {
        StoredEvent {
            id: None,
            event_type: EventType::parse(t).unwrap(),
            data: json!({}),
            project_id: project.map(|p| ProjectId::parse(p).unwrap()),
            user_id: None,
            task_id: task.map(|t| TaskRef::parse(t).unwrap()),
            created_at_ms: 0,
            trace_context: None,
        }
    }

    fn id(n: usize) -> StreamKey {
        n
    }

    #[test]
    fn candidates_agree_with_subscription_matches_and_never_repeat() {
        let subs = [
            sub(&[], None, None),
            sub(&["commit"], None, None),
            sub(&["commit", "risk_alert"], Some("p1"), None),
            sub(&[], Some("p2"), None),
            sub(&["text"], None, Some("t1")),
        ];
        let mut index = RoutingIndex::default();
        for (n, s) in subs.iter().enumerate() {
            index.insert(id(n), s);
        }
        let events = [
            event("commit", None, None),
            event("commit", Some("p1"), None),
            event("risk_alert", Some("p2"), None),
            event("text", None, Some("t1")),
            event("file_change", Some("p3"), None),
        ];
        for e in &events {
            let mut out = Vec::new();
            let task_streams = index.candidates(e, &mut out);
            let unique: HashSet<_> = out.iter().copied().collect();
            assert_eq!(unique.len(), out.len(), "duplicate candidate for {e:?}");
            for (n, s) in subs.iter().enumerate() {
                if s.matches(e) {
                    assert!(unique.contains(&id(n)), "missed {n} for {e:?}");
                }
            }
            // What routing relies on to check only the viewer past the
            // task streams: those candidates match the event but for it.
            for (position, &key) in out.iter().enumerate() {
                let s = &subs[key];
                assert_eq!(position < task_streams, s.task_id.is_some(), "{e:?}");
                if position >= task_streams {
                    assert!(s.matches(e), "candidate {key} does not match {e:?}");
                }
            }
        }
    }

    #[test]
    fn removing_every_connection_leaves_the_index_empty() {
        let subs = [
            sub(&["commit"], Some("p1"), None),
            sub(&[], None, Some("t")),
        ];
        let mut index = RoutingIndex::default();
        for (n, s) in subs.iter().enumerate() {
            index.insert(id(n), s);
        }
        for (n, s) in subs.iter().enumerate() {
            index.remove(id(n), s);
        }
        assert!(index.is_empty());
    }
}
