//! Order across instances: each batch carries the id committed before it,
//! so a batch that arrives ahead of one this instance has not seen is held
//! back while the missing events are read from the store (the repair), and
//! a batch already routed (through a repair) is not routed twice.

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};

use super::{LinkState, REPAIR_MAX_PAGES, REPAIR_PAGE, REPAIR_RETRY, RedisBridge};
use crate::{
    actors::registry::Route,
    domain::StoredEvent,
    store::{EventCursor, StoreError},
};

/// Whether a delivered batch follows on from everything routed before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chain {
    /// Every stored event up to `last_routed` has been routed.
    Known,
    /// After a repair: the store may hold events nobody routed.
    Unknown,
}

impl RedisBridge {
    /// Routes a batch unless it is already routed; repairs a gap first.
    pub(super) fn accept(&mut self, route: Route, ctx: &mut Context<Self>) {
        if route
            .previous_id
            .is_some_and(|previous| previous > self.last_routed)
            || self.repairing
        {
            self.repair(Some(route), ctx);
        } else {
            self.deliver(route.events, Chain::Known);
        }
    }

    /// Routes what of `events` is new. With [`Chain::Known`] every stored
    /// event up to `last_routed` was routed before, which the Registry's
    /// recently routed frames rely on to serve resumes from memory.
    pub(super) fn deliver(&mut self, events: Vec<StoredEvent>, chain: Chain) {
        let previous = self.last_routed;
        let fresh: Vec<StoredEvent> = events
            .into_iter()
            .filter(|e| e.id.is_none_or(|id| id > self.last_routed))
            .collect();
        if let Some(highest) = fresh.iter().filter_map(|e| e.id).max() {
            self.last_routed = highest;
        }
        if !fresh.is_empty() {
            self.registry.do_send(Route {
                events: fresh,
                previous_id: (chain == Chain::Known).then_some(previous),
            });
        }
    }

    /// Reads every stored event after `last_routed` and routes it, then
    /// `then`. Holds the actor (`ctx.wait`) so nothing overtakes the repair.
    pub(super) fn repair(&mut self, then: Option<Route>, ctx: &mut Context<Self>) {
        self.repairing = true;
        self.repairs += 1;
        let store = self.store.clone();
        let after = self.last_routed;
        let read = async move {
            let mut events = Vec::new();
            let mut cursor = EventCursor::all(store, after, REPAIR_PAGE);
            for _ in 0..REPAIR_MAX_PAGES {
                events.extend(cursor.next_page().await?);
                if cursor.is_exhausted() {
                    break;
                }
            }
            Ok::<_, StoreError>(events)
        };
        ctx.wait(read.into_actor(self).map(move |result, act, ctx| {
            act.repairing = false;
            match result {
                Ok(events) => {
                    let to_id = events.last().and_then(|e| e.id).map(|id| id.0);
                    // With the link down, reading the store is how other
                    // instances' events arrive (every TAIL_PERIOD): news
                    // only where the link is up and a batch found a gap.
                    let read = events.len();
                    if read > 0 && act.state == LinkState::Up {
                        tracing::info!(
                            events = read,
                            from_id = after.0 + 1,
                            to_id,
                            "gap repaired from store"
                        );
                    } else if read > 0 {
                        tracing::debug!(
                            events = read,
                            from_id = after.0 + 1,
                            to_id,
                            "events read from the store while the redis link is down"
                        );
                    }
                    // A repair reads a bounded number of pages: what it
                    // routes may not reach the batch that follows.
                    act.deliver(events, Chain::Unknown);
                }
                Err(error) => {
                    // Delivering `then` now would move past the events we
                    // could not read: hold it back and repair again shortly.
                    tracing::error!(error.message = %error, "cannot read missed events from the store; retrying");
                    act.repairing = true;
                    ctx.run_later(REPAIR_RETRY, move |act, ctx| act.repair(then, ctx));
                    return;
                }
            }
            if let Some(route) = then {
                act.deliver(route.events, Chain::Unknown);
            }
        }));
    }
}
