//! The `task_type` label: named by producers, so bounded here.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError},
};

/// Task types that get series of their own; later ones share [`OTHER`].
/// A producer naming a type per task (or a tenant doing it on purpose)
/// would otherwise grow `/metrics` without bound, and once the SDK's
/// 2,000 series per instrument were used up, every type after them,
/// other tenants' too, would vanish into its overflow series.
pub const MAX_TASK_TYPES: usize = 50;
/// The label of every task type past [`MAX_TASK_TYPES`].
pub const OTHER: &str = "other";

/// The task types seen so far, up to [`MAX_TASK_TYPES`]. Labels are shared
/// strings: recording one (per text write) copies no text.
#[derive(Debug)]
pub(super) struct TaskTypeLabels {
    seen: Mutex<Seen>,
    other: Arc<str>,
}

#[derive(Debug, Default)]
struct Seen {
    named: HashSet<Arc<str>>,
    /// A type was labelled `other` already (said once in the log).
    overflowed: bool,
}

impl Default for TaskTypeLabels {
    fn default() -> Self {
        Self {
            seen: Mutex::default(),
            other: Arc::from(OTHER),
        }
    }
}

impl TaskTypeLabels {
    /// `task_type` itself while there is room for it, else [`OTHER`].
    pub(super) fn label(&self, task_type: &str) -> Arc<str> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(named) = seen.named.get(task_type) {
            return named.clone();
        }
        if seen.named.len() < MAX_TASK_TYPES {
            let named: Arc<str> = Arc::from(task_type);
            seen.named.insert(named.clone());
            return named;
        }
        if !std::mem::replace(&mut seen.overflowed, true) {
            tracing::warn!(
                task_type,
                limit = MAX_TASK_TYPES,
                "more task types than the metrics label; later ones are counted as task_type=\"other\""
            );
        }
        self.other.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_task_types_keep_their_names_and_later_ones_share_other() {
        let labels = TaskTypeLabels::default();
        for n in 0..MAX_TASK_TYPES {
            assert_eq!(&*labels.label(&format!("type-{n}")), format!("type-{n}"));
        }
        assert_eq!(&*labels.label("one-too-many"), OTHER);
        assert_eq!(
            &*labels.label("type-0"),
            "type-0",
            "a known type keeps its name"
        );
    }
}
