//! Wakers for the native loop: a woken handler's key goes on its worker's ready queue.
//!
//! Each handler slot of a native worker owns one [`SlotWaker`] for its whole life; a new request
//! in the slot bumps the slot's generation, so a wake meant for an earlier request is recognised
//! and ignored. Waking from the worker's own thread costs a lock that is never contended; waking
//! from another thread (a Python thread answering, for instance) also writes the worker's
//! eventfd, which the ring watches, so a sleeping loop wakes up.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::thread::ThreadId;

/// The keys of woken slots, shared by one worker and every waker it handed out.
#[derive(Debug)]
pub struct ReadyQueue {
    keys: Mutex<Vec<u64>>,
    owner: ThreadId,
    eventfd: OwnedFd,
}

impl ReadyQueue {
    /// A queue owned by the calling thread, with its own eventfd.
    pub fn new() -> std::io::Result<Arc<Self>> {
        // SAFETY: eventfd has no memory arguments; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Arc::new(ReadyQueue {
            keys: Mutex::new(Vec::with_capacity(64)),
            owner: std::thread::current().id(),
            // SAFETY: fd is a new descriptor that nothing else owns.
            eventfd: unsafe { OwnedFd::from_raw_fd(fd) },
        }))
    }

    /// The eventfd written when a wake comes from another thread.
    pub fn eventfd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// Queues `key`; from a foreign thread, also signals the eventfd.
    pub fn push(&self, key: u64) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key);
        if std::thread::current().id() != self.owner {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our own eventfd; a full counter
            // (EAGAIN) already means the loop will wake.
            unsafe {
                libc::write(
                    self.eventfd.as_raw_fd(),
                    (&one as *const u64).cast(),
                    std::mem::size_of::<u64>(),
                );
            }
        }
    }

    /// Moves every queued key into `into` (which keeps its capacity between turns).
    pub fn drain_into(&self, into: &mut Vec<u64>) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        into.append(&mut keys);
    }

    /// Clears the eventfd's counter after the ring reported it readable.
    pub fn clear_eventfd(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own non-blocking eventfd.
        unsafe {
            libc::read(
                self.eventfd.as_raw_fd(),
                (&mut v as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// The waker of one handler slot: waking queues the slot's current key.
#[derive(Debug)]
pub struct SlotWaker {
    key: AtomicU64,
    queue: Arc<ReadyQueue>,
}

impl SlotWaker {
    /// A waker for `key`, reporting to `queue`.
    pub fn new(queue: Arc<ReadyQueue>, key: u64) -> Arc<Self> {
        Arc::new(SlotWaker {
            key: AtomicU64::new(key),
            queue,
        })
    }

    /// Points the waker at a new request (a new generation of its slot).
    pub fn set_key(&self, key: u64) {
        self.key.store(key, Ordering::Relaxed);
    }

    /// A [`Waker`] for this slot (an `Arc` clone, no allocation).
    pub fn waker(self: &Arc<Self>) -> Waker {
        Waker::from(self.clone())
    }
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.queue.push(self.key.load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_wakes_queue_keys_without_touching_the_eventfd() {
        let q = ReadyQueue::new().unwrap();
        let w = SlotWaker::new(q.clone(), 7);
        w.waker().wake_by_ref();
        w.set_key(8);
        w.waker().wake();
        let mut keys = Vec::new();
        q.drain_into(&mut keys);
        assert_eq!(keys, vec![7, 8]);
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from the queue's non-blocking eventfd.
        let n = unsafe { libc::read(q.eventfd(), (&mut v as *mut u64).cast(), 8) };
        assert_eq!(n, -1, "no foreign wake, so the eventfd stays empty");
    }

    #[test]
    fn a_foreign_wake_signals_the_eventfd() {
        let q = ReadyQueue::new().unwrap();
        let w = SlotWaker::new(q.clone(), 3);
        let waker = w.waker();
        std::thread::spawn(move || waker.wake()).join().unwrap();
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from the queue's non-blocking eventfd.
        let n = unsafe { libc::read(q.eventfd(), (&mut v as *mut u64).cast(), 8) };
        assert_eq!((n, v), (8, 1));
        assert!(!q.is_empty());
    }
}
