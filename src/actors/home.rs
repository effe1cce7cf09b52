//! [`ActorHome`]: the thread the delivery path's actors run on.
//!
//! A token crosses the upload's HTTP worker, LiveTasks, the Persister, the
//! Registry and a stream's actor on that worker again. With one HTTP worker
//! (`--workers 1`, the one-core deployment) the actors used to run on the
//! System's thread beside it: every upload read and every delivered frame
//! woke the other thread, and on one core each wake was a context switch
//! that also preempted the worker (≈13,000 a second at 450 uploads × 50
//! tokens/s). There the actors now run on the worker's own thread, so a
//! hand-off is a mailbox push handled in the same turn of the loop.
//!
//! Addresses exist at once (an actor's mailbox is made here); the actor is
//! started when the worker's app is built, on that worker's thread
//! ([`ActorHome::settle`]). Messages sent meanwhile wait in the mailbox.
//! With several workers the actors stay on the System's thread, where
//! every worker reaches them alike.

use std::{
    sync::{Arc, Mutex, PoisonError},
    thread::ThreadId,
};

use actix::{Actor, Addr, Context, dev::channel};

/// actix's own mailbox capacity (`Actor::start`'s); an actor may change it
/// as it starts.
const MAILBOX_CAPACITY: usize = 16;

type Start = Box<dyn FnOnce() + Send>;

/// Where [`ActorHome::start`] runs an actor. Cloned into every worker.
#[derive(Clone)]
pub struct ActorHome {
    /// `None`: on the current (System) thread. `Some`: starts waiting for
    /// the one HTTP worker's thread.
    waiting: Option<Arc<Mutex<Waiting>>>,
}

#[derive(Default)]
struct Waiting {
    starts: Vec<Start>,
    /// The thread that started them.
    settled_on: Option<ThreadId>,
}

impl std::fmt::Debug for ActorHome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ActorHome").field(&self.thread()).finish()
    }
}

impl ActorHome {
    /// The worker's thread with one HTTP worker, else the System's.
    pub fn for_workers(workers: usize) -> Self {
        Self {
            waiting: (workers == 1).then(Arc::default),
        }
    }

    /// Which thread, as the start-up log line says it.
    pub fn thread(&self) -> &'static str {
        if self.waiting.is_some() {
            "http-worker"
        } else {
            "system"
        }
    }

    /// The actor's address; the actor runs here or, with one worker, once
    /// that worker settles it.
    pub fn start<A>(&self, actor: A) -> Addr<A>
    where
        A: Actor<Context = Context<A>> + Send,
    {
        let Some(waiting) = &self.waiting else {
            return actor.start();
        };
        let (sender, receiver) = channel::channel(MAILBOX_CAPACITY);
        let start: Start = Box::new(move || {
            Context::with_receiver(receiver).run(actor);
        });
        waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .starts
            .push(start);
        Addr::new(sender)
    }

    /// Starts, on the calling thread, every actor waiting for it. Called as
    /// the worker builds its app, and again by actix-server if it rebuilds
    /// a failed service on the same worker (nothing then waits).
    ///
    /// A call from another thread means actix-server replaced a worker that
    /// died, and the actors died with its thread: the broker cannot go on
    /// without them, so the process ends (after a log line) for its
    /// supervisor to restart it; clients resume from what was stored.
    pub fn settle(&self) {
        let Some(waiting) = &self.waiting else {
            return;
        };
        let mut waiting = waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let here = std::thread::current().id();
        match waiting.settled_on {
            None => waiting.settled_on = Some(here),
            Some(first) if first == here => {}
            Some(_) => {
                tracing::error!(
                    "the HTTP worker died and was replaced; the actors it ran died with it: exiting"
                );
                std::process::exit(70);
            }
        }
        for start in std::mem::take(&mut waiting.starts) {
            start();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::mpsc, thread::ThreadId, time::Duration};

    use actix::{Actor, Arbiter, Context, Handler, Message, MessageResult};

    use super::ActorHome;

    /// Answers with the thread it runs on.
    struct Where;

    impl Actor for Where {
        type Context = Context<Self>;
    }

    #[derive(Message)]
    #[rtype(result = "ThreadId")]
    struct Ask;

    impl Handler<Ask> for Where {
        type Result = MessageResult<Ask>;

        fn handle(&mut self, _: Ask, _: &mut Context<Self>) -> Self::Result {
            MessageResult(std::thread::current().id())
        }
    }

    #[actix_rt::test]
    async fn with_one_worker_the_actor_runs_on_the_thread_that_settles_it() {
        let home = ActorHome::for_workers(1);
        let address = home.start(Where);
        // Not started yet: a message waits in the mailbox.
        let answer = address.send(Ask);
        let worker = Arbiter::new();
        let (settled_on, settled) = mpsc::channel();
        let settler = home.clone();
        worker.spawn_fn(move || {
            settler.settle();
            settled_on.send(std::thread::current().id()).unwrap();
        });
        let worker_thread = settled.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_ne!(worker_thread, std::thread::current().id());
        assert_eq!(answer.await.unwrap(), worker_thread);
        // A second settle on the same thread (a rebuilt service) keeps it.
        let again = home.clone();
        worker.spawn_fn(move || again.settle());
        assert_eq!(address.send(Ask).await.unwrap(), worker_thread);
        worker.stop();
    }

    #[actix_rt::test]
    async fn with_several_workers_the_actor_runs_here_at_once() {
        let home = ActorHome::for_workers(2);
        let address = home.start(Where);
        assert_eq!(
            address.send(Ask).await.unwrap(),
            std::thread::current().id()
        );
    }
}
