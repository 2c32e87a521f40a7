//! A single-threaded notifier for the state a request shares with its connection.
//!
//! It has the semantics the exchange needs of `tokio::sync::Notify` — [`notify_one`] wakes one
//! waiter or leaves a permit for the next one, [`notify_waiters`] wakes every waiter without
//! leaving a permit — at a fraction of its cost: no atomic and no lock, since everything around a
//! request lives on one worker thread (`Rc`). The native loop notifies on every response and every
//! send with nobody waiting (it finds the work itself), so the common case, no waiter, is a
//! `RefCell` flag check and a `Cell` store. tokio's `Notify` took a mutex in `notify_waiters`:
//! about 4 % of a worker's samples with 8 multiplexed requests per connection.
//!
//! [`notify_one`]: LocalNotify::notify_one
//! [`notify_waiters`]: LocalNotify::notify_waiters

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// How a waiter was woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woken {
    No,
    /// By `notify_one`: if its future is dropped unobserved, the notification passes on.
    One,
    /// By `notify_waiters`.
    All,
}

#[derive(Debug)]
struct Waiter {
    key: u64,
    waker: Waker,
    woken: Woken,
}

/// Wakes tasks of the same thread (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct LocalNotify {
    permit: Cell<bool>,
    next_key: Cell<u64>,
    waiters: RefCell<Vec<Waiter>>,
}

impl LocalNotify {
    /// A notifier with no waiter and no permit.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Wakes the longest-waiting waiter not woken yet, or, if there is none, stores a permit
    /// that the next [`notified`](LocalNotify::notified) future consumes at once.
    pub(crate) fn notify_one(&self) {
        let mut waiters = self.waiters.borrow_mut();
        match waiters.iter_mut().find(|w| w.woken == Woken::No) {
            Some(w) => {
                w.woken = Woken::One;
                w.waker.wake_by_ref();
            }
            None => self.permit.set(true),
        }
    }

    /// Wakes every current waiter; stores no permit.
    pub(crate) fn notify_waiters(&self) {
        let mut waiters = self.waiters.borrow_mut();
        for w in waiters.iter_mut().filter(|w| w.woken == Woken::No) {
            w.woken = Woken::All;
            w.waker.wake_by_ref();
        }
    }

    /// A future that completes at the next notification (or at once, taking a stored permit).
    /// It registers as a waiter when first polled.
    pub(crate) fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            key: None,
        }
    }

    /// Removes waiter `key`; returns how it had been woken.
    fn remove(&self, key: u64) -> Woken {
        let mut waiters = self.waiters.borrow_mut();
        match waiters.iter().position(|w| w.key == key) {
            Some(i) => waiters.swap_remove(i).woken,
            None => Woken::No,
        }
    }
}

/// The future of [`LocalNotify::notified`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub(crate) struct Notified<'a> {
    notify: &'a LocalNotify,
    /// Set once registered as a waiter.
    key: Option<u64>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let n = self.notify;
        match self.key {
            None => {
                if n.permit.replace(false) {
                    return Poll::Ready(());
                }
                let key = n.next_key.get();
                n.next_key.set(key.wrapping_add(1));
                n.waiters.borrow_mut().push(Waiter {
                    key,
                    waker: cx.waker().clone(),
                    woken: Woken::No,
                });
                self.key = Some(key);
                Poll::Pending
            }
            Some(key) => {
                let mut waiters = n.waiters.borrow_mut();
                let Some(i) = waiters.iter().position(|w| w.key == key) else {
                    return Poll::Ready(());
                };
                if waiters[i].woken != Woken::No {
                    waiters.swap_remove(i);
                    drop(waiters);
                    self.key = None;
                    return Poll::Ready(());
                }
                if !waiters[i].waker.will_wake(cx.waker()) {
                    waiters[i].waker = cx.waker().clone();
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // A `notify_one` this waiter never saw goes to the next waiter (or becomes a permit).
            if self.notify.remove(key) == Woken::One {
                self.notify.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn poll(f: &mut Pin<Box<Notified<'_>>>, w: &Waker) -> Poll<()> {
        f.as_mut().poll(&mut Context::from_waker(w))
    }

    #[test]
    fn a_permit_is_kept_for_the_next_waiter_and_used_once() {
        let n = LocalNotify::new();
        let (_, w) = waker();
        n.notify_one();
        n.notify_one(); // still one permit
        assert_eq!(poll(&mut Box::pin(n.notified()), &w), Poll::Ready(()));
        assert_eq!(poll(&mut Box::pin(n.notified()), &w), Poll::Pending);
    }

    #[test]
    fn notify_one_wakes_one_waiter_in_order() {
        let n = LocalNotify::new();
        let (c1, w1) = waker();
        let (c2, w2) = waker();
        let mut a = Box::pin(n.notified());
        let mut b = Box::pin(n.notified());
        assert!(poll(&mut a, &w1).is_pending());
        assert!(poll(&mut b, &w2).is_pending());
        n.notify_one();
        assert_eq!(c1.0.load(Ordering::SeqCst), 1);
        assert_eq!(c2.0.load(Ordering::SeqCst), 0);
        assert!(poll(&mut a, &w1).is_ready());
        assert!(poll(&mut b, &w2).is_pending());
        assert!(!n.permit.get());
    }

    #[test]
    fn notify_waiters_wakes_all_and_leaves_no_permit() {
        let n = LocalNotify::new();
        let (c, w) = waker();
        let mut a = Box::pin(n.notified());
        let mut b = Box::pin(n.notified());
        assert!(poll(&mut a, &w).is_pending());
        assert!(poll(&mut b, &w).is_pending());
        n.notify_waiters();
        assert_eq!(c.0.load(Ordering::SeqCst), 2);
        assert!(poll(&mut a, &w).is_ready());
        assert!(poll(&mut b, &w).is_ready());
        assert!(poll(&mut Box::pin(n.notified()), &w).is_pending());
        // Nobody waiting: notify_waiters is a no-op, not a permit.
        let n = LocalNotify::new();
        n.notify_waiters();
        assert!(poll(&mut Box::pin(n.notified()), &w).is_pending());
    }

    #[test]
    fn a_dropped_waiter_passes_its_notify_one_on() {
        let n = LocalNotify::new();
        let (_, w) = waker();
        let (c2, w2) = waker();
        let mut a = Box::pin(n.notified());
        let mut b = Box::pin(n.notified());
        assert!(poll(&mut a, &w).is_pending());
        assert!(poll(&mut b, &w2).is_pending());
        n.notify_one();
        drop(a); // woken but never saw it
        assert_eq!(c2.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut b, &w2).is_ready());
        // With no other waiter it becomes a permit.
        let mut a = Box::pin(n.notified());
        assert!(poll(&mut a, &w).is_pending());
        n.notify_one();
        drop(a);
        assert!(poll(&mut Box::pin(n.notified()), &w).is_ready());
        assert!(n.waiters.borrow().is_empty());
    }

    #[test]
    fn a_waiter_repolled_with_another_waker_is_woken_through_it() {
        let n = LocalNotify::new();
        let (c1, w1) = waker();
        let (c2, w2) = waker();
        let mut a = Box::pin(n.notified());
        assert!(poll(&mut a, &w1).is_pending());
        assert!(poll(&mut a, &w2).is_pending());
        n.notify_one();
        assert_eq!(c1.0.load(Ordering::SeqCst), 0);
        assert_eq!(c2.0.load(Ordering::SeqCst), 1);
    }
}
