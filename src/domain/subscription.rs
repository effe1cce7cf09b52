//! What a stream wants to receive, and what it is allowed to see.
//!
//! `Subscription::matches` is the single definition of "this event goes to
//! this stream"; the Registry's routing index only narrows the candidates, and
//! replay from the store applies the same function.

use std::{collections::BTreeSet, sync::Arc};

use serde::Serialize;

use super::{EventType, ProjectId, StoredEvent, TaskRef, UserId};

/// Which event types a stream receives.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeFilter {
    All,
    Only(Arc<BTreeSet<EventType>>),
}

impl TypeFilter {
    pub fn only(types: impl IntoIterator<Item = EventType>) -> Self {
        Self::Only(Arc::new(types.into_iter().collect()))
    }

    pub fn allows(&self, event_type: &EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(event_type),
        }
    }

    /// The names to report, given the catalog for `All`.
    pub fn names<'a>(&'a self, all: impl Iterator<Item = &'a EventType>) -> Vec<String> {
        match self {
            Self::All => all.map(ToString::to_string).collect(),
            Self::Only(types) => types.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The tasks a writer may write to: those of the projects it is granted,
/// and those of no project unless it is confined to its projects
/// (`--publish-within-projects`).
#[derive(Debug, Clone)]
pub struct WriteAccess {
    projects: ProjectAccess,
    unprojected: bool,
}

impl WriteAccess {
    /// The broker's own writes: any task.
    pub fn all() -> Self {
        Self {
            projects: ProjectAccess::All,
            unprojected: true,
        }
    }

    pub fn new(projects: ProjectAccess, confined: bool) -> Self {
        Self {
            projects,
            unprojected: !confined,
        }
    }

    /// Whether a task of `project` (or of none) may be written.
    pub fn allows(&self, project: Option<&ProjectId>) -> bool {
        project.map_or(self.unprojected, |project| self.projects.allows(project))
    }
}

/// The projects a viewer's token grants (`projects` claim).
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectAccess {
    All,
    Only(Arc<BTreeSet<ProjectId>>),
}

impl ProjectAccess {
    pub fn allows(&self, project: &ProjectId) -> bool {
        match self {
            Self::All => true,
            Self::Only(projects) => projects.contains(project),
        }
    }

    /// Whether an operator with this access may see and drop `stream`:
    /// everything with `All` (`["*"]`); otherwise a stream filtered to one
    /// of these projects, or an unfiltered stream whose viewer is granted
    /// only (some of) these projects. A stream that can see other tenants'
    /// events, or that belongs to no project, is left to a `*` operator.
    pub fn covers(&self, stream: &Subscription) -> bool {
        let Self::Only(mine) = self else {
            return true;
        };
        match (&stream.project_id, &stream.viewer.projects) {
            (Some(project), _) => mine.contains(project),
            (None, Self::All) => false,
            (None, Self::Only(theirs)) => !theirs.is_empty() && theirs.is_subset(mine),
        }
    }

    /// Whether these grants include every project `other` grants (a
    /// renewed token must not see less than the stream was opened for).
    pub fn includes(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::All, _) => true,
            (Self::Only(_), Self::All) => false,
            (Self::Only(mine), Self::Only(theirs)) => theirs.is_subset(mine),
        }
    }

    /// The project ids, `None` for all (the wire form between instances).
    pub fn to_list(&self) -> Option<Vec<String>> {
        match self {
            Self::All => None,
            Self::Only(projects) => Some(projects.iter().map(ToString::to_string).collect()),
        }
    }

    /// The inverse of [`Self::to_list`]; ids that no longer parse are dropped
    /// (they could grant nothing).
    pub fn from_list(list: Option<&[String]>) -> Self {
        match list {
            None => Self::All,
            Some(ids) => Self::Only(Arc::new(
                ids.iter()
                    .filter_map(|id| ProjectId::parse(id).ok())
                    .collect(),
            )),
        }
    }
}

/// Who is watching: decides visibility of private and project events.
#[derive(Debug, Clone, PartialEq)]
pub struct Viewer {
    pub user_id: Option<UserId>,
    pub projects: ProjectAccess,
}

impl Viewer {
    /// The viewer when authentication is off: every project, no identity.
    pub fn anonymous() -> Self {
        Self {
            user_id: None,
            projects: ProjectAccess::All,
        }
    }

    /// Private events (`user_id` set) reach only that user; project events
    /// only viewers granted the project.
    pub fn can_see(&self, event: &StoredEvent) -> bool {
        let user_ok = match &event.user_id {
            None => true,
            Some(owner) => self.user_id.as_ref() == Some(owner),
        };
        let project_ok = match &event.project_id {
            None => true,
            Some(project) => self.projects.allows(project),
        };
        user_ok && project_ok
    }
}

/// A stream's filter plus its viewer.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub event_types: TypeFilter,
    /// When set, only events of this project reach the stream.
    pub project_id: Option<ProjectId>,
    /// When set, only events of this task reach the stream (task streams).
    pub task_id: Option<TaskRef>,
    pub viewer: Viewer,
}

impl Subscription {
    pub fn matches(&self, event: &StoredEvent) -> bool {
        self.event_types.allows(&event.event_type)
            && self
                .project_id
                .as_ref()
                .is_none_or(|p| event.project_id.as_ref() == Some(p))
            && self
                .task_id
                .as_ref()
                .is_none_or(|t| event.task_id.as_ref() == Some(t))
            && self.viewer.can_see(event)
    }
}

/// The public description of a subscription, as sent in `connected` and
/// `subscription_updated` frames and listed by `/sse/connections`.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionView {
    pub event_types: Vec<String>,
    pub project_id: Option<ProjectId>,
}

impl SubscriptionView {
    /// What a client is told about `subscription` (every type named, for
    /// "all", from `catalog`).
    pub fn of(subscription: &Subscription, catalog: &super::EventTypeCatalog) -> Self {
        Self {
            event_types: subscription.event_types.names(catalog.iter()),
            project_id: subscription.project_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(event_type: &str, project: Option<&str>, user: Option<&str>) -> StoredEvent {
        StoredEvent {
            id: None,
            event_type: EventType::parse(event_type).unwrap(),
            data: json!({}),
            project_id: project.map(|p| ProjectId::parse(p).unwrap()),
            user_id: user.map(|u| UserId::parse(u).unwrap()),
            task_id: None,
            created_at_ms: 0,
            trace_context: None,
        }
    }

    fn subscription(types: &[&str], project: Option<&str>, viewer: Viewer) -> Subscription {
        Subscription {
            event_types: if types.is_empty() {
                TypeFilter::All
            } else {
                TypeFilter::only(types.iter().map(|t| EventType::parse(t).unwrap()))
            },
            project_id: project.map(|p| ProjectId::parse(p).unwrap()),
            task_id: None,
            viewer,
        }
    }

    #[test]
    fn a_type_filter_lets_only_its_types_through() {
        let sub = subscription(&["commit"], None, Viewer::anonymous());
        assert!(sub.matches(&event("commit", None, None)));
        assert!(!sub.matches(&event("risk_alert", None, None)));
    }

    #[test]
    fn a_project_filter_excludes_other_projects_and_unscoped_events() {
        let sub = subscription(&[], Some("p1"), Viewer::anonymous());
        assert!(sub.matches(&event("commit", Some("p1"), None)));
        assert!(!sub.matches(&event("commit", Some("p2"), None)));
        assert!(!sub.matches(&event("commit", None, None)));
    }

    #[test]
    fn a_private_event_reaches_only_its_user() {
        let alice = Viewer {
            user_id: Some(UserId::parse("alice").unwrap()),
            projects: ProjectAccess::All,
        };
        let private = event("commit", None, Some("alice"));
        assert!(subscription(&[], None, alice).matches(&private));
        assert!(!subscription(&[], None, Viewer::anonymous()).matches(&private));
    }

    #[test]
    fn a_viewer_never_sees_a_project_outside_its_grant() {
        let viewer = Viewer {
            user_id: None,
            projects: ProjectAccess::Only(Arc::new([ProjectId::parse("p1").unwrap()].into())),
        };
        let sub = subscription(&[], None, viewer);
        assert!(sub.matches(&event("commit", Some("p1"), None)));
        assert!(sub.matches(&event("commit", None, None)));
        assert!(!sub.matches(&event("commit", Some("p2"), None)));
    }

    fn access(projects: &[&str]) -> ProjectAccess {
        ProjectAccess::Only(Arc::new(
            projects
                .iter()
                .map(|p| ProjectId::parse(p).unwrap())
                .collect(),
        ))
    }

    fn stream(filter: Option<&str>, viewer: ProjectAccess) -> Subscription {
        Subscription {
            event_types: TypeFilter::All,
            project_id: filter.map(|p| ProjectId::parse(p).unwrap()),
            task_id: None,
            viewer: Viewer {
                user_id: None,
                projects: viewer,
            },
        }
    }

    #[test]
    fn an_operator_covers_only_streams_that_stay_inside_its_projects() {
        let p1 = access(&["p1"]);
        assert!(p1.covers(&stream(Some("p1"), ProjectAccess::All)));
        assert!(!p1.covers(&stream(Some("p2"), access(&["p2"]))));
        assert!(p1.covers(&stream(None, access(&["p1"]))));
        assert!(!p1.covers(&stream(None, access(&["p1", "p2"]))));
        assert!(!p1.covers(&stream(None, ProjectAccess::All)));
        assert!(!p1.covers(&stream(None, access(&[]))));
        assert!(ProjectAccess::All.covers(&stream(None, ProjectAccess::All)));
    }

    #[test]
    fn project_access_survives_the_trip_between_instances() {
        for original in [ProjectAccess::All, access(&[]), access(&["p1", "p2"])] {
            let list = original.to_list();
            assert_eq!(ProjectAccess::from_list(list.as_deref()), original);
        }
    }
}
