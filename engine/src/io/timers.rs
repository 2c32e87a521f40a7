//! Sleeping on a native worker: handler timers kept by the loop of the current thread.
//!
//! Connection timeouts do not come through here (the native loop sweeps its connections'
//! deadlines a few times a second, at no cost per request); this is for handlers that wait on
//! purpose (`io::sleep`), which are rare, so a plain list is enough.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static PENDING: RefCell<Vec<(Instant, Waker)>> = const { RefCell::new(Vec::new()) };
}

/// Marks the calling thread as running a native loop (its sleeps go to [`fire`]).
pub(crate) fn activate() {
    ACTIVE.with(|a| a.set(true));
}

/// True when the calling thread runs a native loop.
pub(crate) fn is_active() -> bool {
    ACTIVE.with(|a| a.get())
}

/// Wakes every sleeper whose time has come; returns the earliest deadline still pending.
pub(crate) fn fire(now: Instant) -> Option<Instant> {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let mut next: Option<Instant> = None;
        let mut i = 0;
        while i < p.len() {
            if p[i].0 <= now {
                let (_, w) = p.swap_remove(i);
                w.wake();
            } else {
                next = Some(next.map_or(p[i].0, |n| n.min(p[i].0)));
                i += 1;
            }
        }
        next
    })
}

/// A sleep on the native loop.
pub(crate) struct Sleep {
    until: Instant,
}

impl Sleep {
    pub(crate) fn new(d: Duration) -> Self {
        Sleep {
            until: Instant::now() + d,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.until {
            return Poll::Ready(());
        }
        let until = self.until;
        PENDING.with(|p| p.borrow_mut().push((until, cx.waker().clone())));
        Poll::Pending
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
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_sleep_is_woken_when_its_time_comes() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut s = std::pin::pin!(Sleep::new(Duration::from_millis(30)));
        assert!(s.as_mut().poll(&mut cx).is_pending());
        let next = fire(Instant::now()).expect("pending");
        assert_eq!(count.0.load(Ordering::Relaxed), 0);
        fire(next);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        std::thread::sleep(Duration::from_millis(30));
        assert!(s.as_mut().poll(&mut cx).is_ready());
    }
}
