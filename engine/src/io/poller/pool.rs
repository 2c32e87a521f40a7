//! The poller's receive buffers: `count` buffers of `size` bytes in one allocation, which the
//! [`Poller`](super::Poller) fills on readiness and hands to the application through a
//! completion, the way the kernel hands out a provided buffer ring's buffers.
//!
//! Each buffer is in one of three states, tracked by two bit sets:
//!
//! - *free*: on the free list; only the poller may write it (it takes one per `recv`);
//! - *posted*: filled, and named by a completion that has not been [claimed](BufPool::claim) yet;
//! - *held*: claimed by the application, which may [read](BufPool::buffer) it until it
//!   [recycles](BufPool::recycle) it.
//!
//! A buffer can only be read while held and only be written while free, so the application's
//! shared slices and the poller's writes never meet; a buffer claimed or recycled twice is
//! refused.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::rc::Rc;

use super::Poller;
use crate::io::loop_io::{BufError, RecvBufs};

/// The largest pool (as for a provided buffer ring).
const MAX_COUNT: u32 = 1 << 15;

/// Which buffers are where.
struct PoolState {
    /// Free buffers, taken from the end (the most recently used first: its memory is warm).
    free: Vec<u16>,
    /// Bit set: filled and reported, not claimed yet.
    posted: Vec<u64>,
    /// Bit set: claimed by the application.
    held: Vec<u64>,
}

/// What a [`BufPool`] and its [`Poller`] share.
pub(super) struct PoolShared {
    /// `count * size` zeroed bytes, from a boxed slice leaked in [`BufPool::new`] and rebuilt in
    /// `drop`. Accessed only through raw pointers to one buffer at a time.
    base: NonNull<u8>,
    total: usize,
    size: u32,
    count: u32,
    group: u16,
    state: RefCell<PoolState>,
}

fn bit(bid: u16) -> (usize, u64) {
    (bid as usize / 64, 1u64 << (bid % 64))
}

impl PoolShared {
    /// The buffer group operations name.
    pub(super) fn group(&self) -> u16 {
        self.group
    }

    /// The size of each buffer.
    pub(super) fn size(&self) -> usize {
        self.size as usize
    }

    /// Whether a buffer is free for the poller to fill.
    pub(super) fn has_free(&self) -> bool {
        !self.state.borrow().free.is_empty()
    }

    /// Takes a free buffer to fill and marks it posted; returns its id and its memory.
    pub(super) fn take(&self) -> Option<(u16, *mut u8)> {
        let mut st = self.state.borrow_mut();
        let bid = st.free.pop()?;
        let (w, b) = bit(bid);
        st.posted[w] |= b;
        // SAFETY: `bid < count` (only ids below count are ever on the free list), so the
        // buffer lies inside the allocation of `count * size` bytes.
        Some((bid, unsafe {
            self.base.as_ptr().add(bid as usize * self.size as usize)
        }))
    }

    /// Puts back a buffer taken by [`take`](Self::take) that received nothing.
    pub(super) fn untake(&self, bid: u16) {
        let mut st = self.state.borrow_mut();
        let (w, b) = bit(bid);
        st.posted[w] &= !b;
        st.free.push(bid);
    }

    fn check(&self, bid: u16) -> Result<(usize, u64), BufError> {
        if u32::from(bid) >= self.count {
            return Err(BufError::OutOfRange(bid));
        }
        Ok(bit(bid))
    }
}

impl Drop for PoolShared {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.base.as_ptr(), self.total);
        // SAFETY: `base` and `total` are those of the boxed slice leaked in `BufPool::new`;
        // the poller and the pool, which alone used it, are both gone (this is the last `Rc`).
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// The receive buffers of one [`Poller`], registered with it under a group id.
pub struct BufPool {
    shared: Rc<PoolShared>,
}

impl BufPool {
    /// Allocates `count` buffers (a power of two, at most 32768) of `size` bytes each, all
    /// free, and registers them with `poller` as buffer group `group` (a poller has one pool;
    /// a second replaces the first for later receives).
    pub fn new(
        poller: &mut Poller,
        group: u16,
        count: u32,
        size: u32,
    ) -> Result<BufPool, BufError> {
        if count == 0 || count > MAX_COUNT || !count.is_power_of_two() {
            return Err(BufError::InvalidCount(count));
        }
        let total = (count as usize)
            .checked_mul(size as usize)
            .filter(|&t| size > 0 && t <= isize::MAX as usize)
            .ok_or(BufError::InvalidSize(size))?;
        // Zeroed (calloc: large sizes are mapped lazily, so untouched buffers cost no memory).
        let memory = vec![0u8; total].into_boxed_slice();
        let base =
            NonNull::new(Box::into_raw(memory).cast::<u8>()).ok_or(BufError::InvalidSize(size))?;
        let words = (count as usize).div_ceil(64);
        let shared = Rc::new(PoolShared {
            base,
            total,
            size,
            count,
            group,
            state: RefCell::new(PoolState {
                // Reversed, so that buffer 0 is taken first.
                free: (0..count as u16).rev().collect(),
                posted: vec![0; words],
                held: vec![0; words],
            }),
        });
        poller.set_pool(Rc::clone(&shared));
        Ok(BufPool { shared })
    }

    /// The group id receives name to fill these buffers.
    pub fn group(&self) -> u16 {
        self.shared.group
    }

    /// The size of each buffer.
    pub fn buffer_size(&self) -> u32 {
        self.shared.size
    }

    /// How many buffers there are.
    pub fn count(&self) -> u32 {
        self.shared.count
    }

    /// How many buffers are free for the poller to fill.
    pub fn available(&self) -> u32 {
        self.shared.state.borrow().free.len() as u32
    }

    /// Takes ownership of buffer `bid`, which a completion reported. Call it once per such
    /// completion, before [`buffer`](Self::buffer).
    pub fn claim(&mut self, bid: u16) -> Result<(), BufError> {
        let (w, b) = self.shared.check(bid)?;
        let mut st = self.shared.state.borrow_mut();
        if st.held[w] & b != 0 {
            return Err(BufError::AlreadyHeld(bid));
        }
        if st.posted[w] & b == 0 {
            return Err(BufError::NotHeld(bid));
        }
        st.posted[w] &= !b;
        st.held[w] |= b;
        Ok(())
    }

    /// The first `len` bytes of claimed buffer `bid` (at most the buffer size).
    pub fn buffer(&self, bid: u16, len: usize) -> Result<&[u8], BufError> {
        let (w, b) = self.shared.check(bid)?;
        if self.shared.state.borrow().held[w] & b == 0 {
            return Err(BufError::NotHeld(bid));
        }
        let size = self.shared.size as usize;
        // SAFETY: `bid < count`, so the range lies inside the allocation, which is initialised
        // (zeroed, then written by recv). The buffer is held: it is not on the free list, so
        // the poller does not write it, and `recycle` needs `&mut self`, so it cannot go back
        // on the free list while this borrow lives.
        Ok(unsafe {
            std::slice::from_raw_parts(
                self.shared.base.as_ptr().add(bid as usize * size),
                len.min(size),
            )
        })
    }

    /// Gives claimed buffer `bid` back to be filled again. Refused for a buffer not held, so
    /// no buffer is ever on the free list twice.
    pub fn recycle(&mut self, bid: u16) -> Result<(), BufError> {
        let (w, b) = self.shared.check(bid)?;
        let mut st = self.shared.state.borrow_mut();
        if st.held[w] & b == 0 {
            return Err(BufError::NotHeld(bid));
        }
        st.held[w] &= !b;
        st.free.push(bid);
        Ok(())
    }
}

impl RecvBufs for BufPool {
    fn claim(&mut self, bid: u16) -> Result<(), BufError> {
        BufPool::claim(self, bid)
    }

    fn buffer(&self, bid: u16, len: usize) -> Result<&[u8], BufError> {
        BufPool::buffer(self, bid, len)
    }

    fn recycle(&mut self, bid: u16) -> Result<(), BufError> {
        BufPool::recycle(self, bid)
    }
}

impl std::fmt::Debug for BufPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufPool")
            .field("group", &self.shared.group)
            .field("count", &self.shared.count)
            .field("size", &self.shared.size)
            .field("available", &self.available())
            .finish()
    }
}
