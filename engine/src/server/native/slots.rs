//! Handler futures on the native loop: polled inline first, kept in a reusable slot only if they
//! return `Pending`.
//!
//! Every slot owns a pinned box for one future of the worker's handler type and a waker that
//! queues the slot's key (index and generation) on the worker's ready queue. Slots are reused:
//! starting a request moves its future into a free slot's box (no allocation once the worker has
//! seen as many concurrent handlers), and a stale wake (an earlier request of the slot) is
//! recognised by its generation and ignored.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;

use crate::io::wake::{ReadyQueue, SlotWaker};

struct Slot<F> {
    fut: Pin<Box<Option<F>>>,
    waker: Arc<SlotWaker>,
    gen: u32,
    /// The connection (slab index and generation) whose request this is.
    conn: (usize, u32),
}

/// The handler slots of one worker.
pub(super) struct HandlerSlots<F> {
    slots: Vec<Slot<F>>,
    free: Vec<usize>,
    ready: Arc<ReadyQueue>,
}

fn key(index: usize, gen: u32) -> u64 {
    ((index as u64) << 32) | gen as u64
}

impl<F: Future<Output = ()>> HandlerSlots<F> {
    pub(super) fn new(ready: Arc<ReadyQueue>) -> Self {
        HandlerSlots {
            slots: Vec::new(),
            free: Vec::new(),
            ready,
        }
    }

    /// Starts a handler: polls it once on this thread. Returns the slot it waits in, or
    /// `None` when it already completed.
    pub(super) fn start(&mut self, fut: F, conn: (usize, u32)) -> Option<usize> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.slots.len();
                self.slots.push(Slot {
                    fut: Box::pin(None),
                    waker: SlotWaker::new(self.ready.clone(), key(i, 0)),
                    gen: 0,
                    conn,
                });
                i
            }
        };
        let slot = &mut self.slots[index];
        slot.gen = slot.gen.wrapping_add(1);
        slot.conn = conn;
        slot.waker.set_key(key(index, slot.gen));
        slot.fut.as_mut().set(Some(fut));
        if self.poll(index) {
            None
        } else {
            Some(index)
        }
    }

    /// Polls slot `index`; true (and the slot is free again) once its future completed.
    fn poll(&mut self, index: usize) -> bool {
        let slot = &mut self.slots[index];
        let waker = slot.waker.waker();
        let mut cx = Context::from_waker(&waker);
        let done = match slot.fut.as_mut().as_pin_mut() {
            Some(f) => f.poll(&mut cx).is_ready(),
            None => true,
        };
        if done {
            slot.fut.as_mut().set(None);
            self.free.push(index);
        }
        done
    }

    /// Polls the slot a wake was for, unless the wake is stale. Returns the connection of the
    /// request that ran (its output may need sending, its request may have ended).
    pub(super) fn poll_woken(&mut self, key: u64) -> Option<(usize, u32)> {
        let index = (key >> 32) as usize;
        let gen = key as u32;
        let slot = self.slots.get(index)?;
        if slot.gen != gen || slot.fut.is_none() {
            return None;
        }
        let conn = slot.conn;
        self.poll(index);
        Some(conn)
    }

    /// Drops the future in `index` if it is still the handler of `conn` (cancellation: a
    /// dropped handler's response ends as aborted).
    pub(super) fn cancel(&mut self, index: usize, conn: (usize, u32)) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        if slot.conn != conn || slot.fut.is_none() {
            return;
        }
        slot.gen = slot.gen.wrapping_add(1);
        slot.fut.as_mut().set(None);
        self.free.push(index);
    }

    /// True while slot `index` still runs a handler of `conn`.
    #[cfg(test)]
    pub(super) fn is_running(&self, index: usize, conn: (usize, u32)) -> bool {
        self.slots
            .get(index)
            .is_some_and(|s| s.conn == conn && s.fut.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::Poll;

    /// A future that is pending until its flag is set, then counts its completion.
    fn gated(flag: Rc<Cell<bool>>, done: Rc<Cell<u32>>) -> impl Future<Output = ()> {
        std::future::poll_fn(move |cx| {
            if flag.get() {
                done.set(done.get() + 1);
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    }

    #[test]
    fn ready_handlers_never_take_a_slot_and_pending_ones_are_polled_when_woken() {
        let q = ReadyQueue::new().unwrap();
        let mut slots = HandlerSlots::new(q.clone());
        let done = Rc::new(Cell::new(0));
        let open = Rc::new(Cell::new(true));
        assert_eq!(slots.start(gated(open.clone(), done.clone()), (0, 1)), None);
        assert_eq!(done.get(), 1);

        let shut = Rc::new(Cell::new(false));
        let s = slots
            .start(gated(shut.clone(), done.clone()), (3, 7))
            .unwrap();
        let mut keys = Vec::new();
        q.drain_into(&mut keys);
        assert_eq!(keys.len(), 1, "the inline poll woke itself once");
        shut.set(true);
        assert_eq!(slots.poll_woken(keys[0]), Some((3, 7)));
        assert_eq!(done.get(), 2);
        // A second wake for the finished request is stale.
        assert_eq!(slots.poll_woken(keys[0]), None);
        assert!(!slots.is_running(s, (3, 7)));
    }

    #[test]
    fn cancel_drops_the_future_and_ignores_its_later_wakes() {
        let q = ReadyQueue::new().unwrap();
        let mut slots = HandlerSlots::new(q.clone());
        let flag = Rc::new(Cell::new(false));
        let done = Rc::new(Cell::new(0));
        let s = slots
            .start(gated(flag.clone(), done.clone()), (1, 1))
            .unwrap();
        assert_eq!(Rc::strong_count(&flag), 2);
        slots.cancel(s, (1, 1));
        assert_eq!(Rc::strong_count(&flag), 1, "the future was dropped");
        let mut keys = Vec::new();
        q.drain_into(&mut keys);
        assert_eq!(slots.poll_woken(keys[0]), None);
        // The slot is reused without a new allocation.
        let again = slots.start(gated(flag, done), (2, 1)).unwrap();
        assert_eq!(again, s);
    }
}
