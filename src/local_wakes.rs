//! Wakes from other threads, delivered on an HTTP worker as one.
//!
//! An HTTP worker runs its connections as tasks of one tokio `LocalSet`.
//! A task woken on the worker's own thread (its socket became readable)
//! joins the local queue; one woken from another thread (the Registry
//! handing a stream its next frame, LiveTasks answering an upload's write)
//! joins the remote queue, which the `LocalSet` serves first only once
//! every 31 tasks while local ones wait. Under load those wakes queued up
//! behind the socket work: at 400 paced uploads on one core a routed frame
//! waited 4–8 ms on average before its stream took it, 0.8 ms at 100.
//!
//! So each worker thread has a **courier**: a task of its own that a wake
//! from another thread reaches instead of the task it is meant for. The
//! first such wake schedules the courier (one remote wake); the ones after
//! it, until the courier runs, only join its list. When it runs it wakes
//! every task on the list from the worker's own thread: they join the local
//! queue together, in the order they were woken. A wake from the worker's
//! own thread goes straight to its task, as before.
//!
//! Only code that polls with [`LocalWaker::context`] (or inside
//! [`LocalWakes`]) is woken this way; a thread without a courier (tests,
//! the actors' thread) polls as usual.

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use futures_util::task::AtomicWaker;

thread_local! {
    static COURIER: RefCell<Option<Arc<Inbox>>> = const { RefCell::new(None) };
}

/// What wakes from other threads leave for a thread's courier.
#[derive(Default)]
struct Inbox {
    woken: Mutex<Vec<Waker>>,
    /// The courier is scheduled (or running) and will see what is added.
    scheduled: AtomicBool,
    courier: AtomicWaker,
}

/// Starts this thread's courier, once: call it on an HTTP worker's thread,
/// inside its `LocalSet` (the courier is a local task).
pub fn start_courier() {
    COURIER.with(|courier| {
        let mut courier = courier.borrow_mut();
        if courier.is_some() {
            return;
        }
        let inbox = Arc::new(Inbox::default());
        *courier = Some(Arc::clone(&inbox));
        tokio::task::spawn_local(deliver(inbox));
    });
}

async fn deliver(inbox: Arc<Inbox>) {
    let mut batch = Vec::new();
    std::future::poll_fn(|cx| {
        inbox.courier.register(cx.waker());
        // Cleared before taking the list: a wake added after the take
        // schedules the courier again.
        inbox.scheduled.store(false, Ordering::SeqCst);
        std::mem::swap(&mut batch, &mut *lock(&inbox.woken));
        for waker in batch.drain(..) {
            waker.wake();
        }
        Poll::<()>::Pending
    })
    .await;
}

fn lock(woken: &Mutex<Vec<Waker>>) -> std::sync::MutexGuard<'_, Vec<Waker>> {
    // A list of wakers is whole after any panic.
    woken
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// This thread's courier, if it has one.
fn this_threads() -> Option<Arc<Inbox>> {
    COURIER.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// A task's waker that, woken from another thread, goes through the courier
/// of the thread it was made on.
struct ThroughCourier {
    task: Waker,
    inbox: Arc<Inbox>,
}

impl ThroughCourier {
    fn on_own_thread(&self) -> bool {
        COURIER
            .try_with(|c| {
                c.borrow()
                    .as_ref()
                    .is_some_and(|own| Arc::ptr_eq(own, &self.inbox))
            })
            .unwrap_or(false)
    }
}

impl Wake for ThroughCourier {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.on_own_thread() {
            return self.task.wake_by_ref();
        }
        lock(&self.inbox.woken).push(self.task.clone());
        if !self.inbox.scheduled.swap(true, Ordering::SeqCst) {
            self.inbox.courier.wake();
        }
    }
}

/// The waker a poll hands down, made once per task (not per poll).
#[derive(Default)]
pub struct LocalWaker {
    made: Option<(Waker, Waker)>,
}

impl LocalWaker {
    /// The waker to poll with in place of `cx`'s: `cx`'s own on a thread
    /// without a courier.
    pub fn waker(&mut self, cx: &Context<'_>) -> Waker {
        let Some(inbox) = this_threads() else {
            return cx.waker().clone();
        };
        match &self.made {
            Some((task, made)) if task.will_wake(cx.waker()) => made.clone(),
            _ => {
                let made = Waker::from(Arc::new(ThroughCourier {
                    task: cx.waker().clone(),
                    inbox,
                }));
                self.made = Some((cx.waker().clone(), made.clone()));
                made
            }
        }
    }
}

/// `future`, woken through the courier of the thread that polls it.
pub struct LocalWakes<F> {
    future: Pin<Box<F>>,
    waker: LocalWaker,
}

impl<F: Future> LocalWakes<F> {
    pub fn new(future: F) -> Self {
        Self {
            future: Box::pin(future),
            waker: LocalWaker::default(),
        }
    }
}

impl<F: Future> Future for LocalWakes<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let waker = this.waker.waker(cx);
        this.future.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A wake from another thread waits in the courier's list (one wake of
    /// the courier), then reaches the task when the courier runs.
    #[actix_rt::test]
    async fn a_wake_from_another_thread_reaches_the_task_through_the_courier() {
        start_courier();
        let inbox = this_threads().expect("a courier on this thread");
        let (sender, receiver) = tokio::sync::oneshot::channel::<u32>();
        let waiting = actix_rt::spawn(LocalWakes::new(receiver));
        tokio::task::yield_now().await;

        std::thread::spawn(move || sender.send(7))
            .join()
            .expect("joined")
            .expect("sent");

        assert_eq!(lock(&inbox.woken).len(), 1);
        assert!(inbox.scheduled.load(Ordering::SeqCst));
        let received = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("the task")
            .expect("a value");
        assert_eq!(received, 7);
        assert!(lock(&inbox.woken).is_empty());
    }

    /// A wake from the task's own thread goes straight to it.
    #[actix_rt::test]
    async fn a_wake_from_the_own_thread_goes_straight_to_the_task() {
        start_courier();
        let inbox = this_threads().expect("a courier on this thread");
        let (sender, receiver) = tokio::sync::oneshot::channel::<u32>();
        let waiting = actix_rt::spawn(LocalWakes::new(receiver));
        tokio::task::yield_now().await;

        sender.send(8).expect("sent");

        assert!(lock(&inbox.woken).is_empty());
        assert!(!inbox.scheduled.load(Ordering::SeqCst));
        assert_eq!(waiting.await.expect("the task").expect("a value"), 8);
    }

    #[test]
    fn without_a_courier_the_task_is_woken_as_usual() {
        struct Task;
        impl Wake for Task {
            fn wake(self: Arc<Self>) {}
        }
        let mut local = LocalWaker::default();
        let waker = Waker::from(Arc::new(Task));
        let cx = Context::from_waker(&waker);
        assert!(local.waker(&cx).will_wake(&waker));
    }
}
