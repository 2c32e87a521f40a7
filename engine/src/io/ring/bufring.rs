//! A provided buffer ring (`IORING_REGISTER_PBUF_RING`, 5.19): `count` buffers of `size` bytes
//! the kernel picks from when a receive completes, for operations that name its group.
//!
//! One anonymous mapping holds the ring of `io_uring_buf` entries (page-aligned, as the kernel
//! requires) followed by the buffers. Ownership of each buffer alternates: the kernel owns it
//! while it is in the ring; a completion with `IORING_CQE_F_BUFFER` hands it to the application,
//! which [`claim`](BufRing::claim)s it, reads it with [`buffer`](BufRing::buffer) and gives it
//! back with [`recycle`](BufRing::recycle). A bitset enforces the alternation, so a buffer cannot
//! be recycled twice (which would put it in the ring twice and let the kernel hand it out while
//! the application still reads it) or read while the kernel may be writing it.

use std::io;
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use super::{BufError, Ring, Shared};

/// The largest ring the kernel accepts (2^15 entries).
const MAX_ENTRIES: u32 = 1 << 15;

/// An anonymous memory mapping, unmapped on drop.
pub(super) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping at an address the kernel chooses; no existing
        // memory is affected.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(p.cast())
            .map(|ptr| Mapping { ptr, len })
            .ok_or_else(|| io::Error::other("mmap returned null"))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly what mmap returned, and nothing refers to the
        // mapping any more: its owner (a BufRing, or the ring's retired list once the io_uring
        // is closed) is being dropped.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A provided buffer ring registered with one [`Ring`] under a caller-chosen group id.
///
/// Dropping it unregisters the group; its memory stays mapped until the io_uring is closed, so an
/// operation still in flight can never write into memory that was reused.
pub struct BufRing {
    shared: Rc<Shared>,
    map: Option<Mapping>,
    entries: *mut BufRingEntry,
    tail: *const AtomicU16,
    bufs: *mut u8,
    count: u32,
    size: u32,
    group: u16,
    /// Our copy of the tail: the kernel only reads it.
    local_tail: u16,
    /// Bit set: the application holds the buffer; clear: it is in the ring (kernel's).
    held: Vec<u64>,
    n_held: u32,
}

impl BufRing {
    /// Maps `count` buffers (a power of two, at most 32768) of `size` bytes each, puts them all
    /// in the ring and registers it with `ring` as buffer group `group`.
    pub fn new(ring: &Ring, group: u16, count: u32, size: u32) -> Result<BufRing, BufError> {
        if count == 0 || count > MAX_ENTRIES || !count.is_power_of_two() {
            return Err(BufError::InvalidCount(count));
        }
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            p if p > 0 => p as usize,
            _ => 4096,
        };
        let ring_bytes = (count as usize * size_of::<BufRingEntry>()).next_multiple_of(page);
        let total = (count as usize)
            .checked_mul(size as usize)
            .and_then(|b| b.checked_add(ring_bytes))
            .filter(|_| size > 0)
            .ok_or(BufError::InvalidSize(size))?;
        let map = Mapping::new(total)?;
        let entries: *mut BufRingEntry = map.ptr.as_ptr().cast();
        // SAFETY: `ring_bytes < total`, so the buffers start inside the mapping.
        let bufs = unsafe { map.ptr.as_ptr().add(ring_bytes) };
        // SAFETY: `entries` is the page-aligned start of the ring, whose memory is mapped
        // (zeroed) and so initialised; `tail` returns the address of entry 0's `resv` field,
        // which the kernel reads as the ring's tail.
        let tail: *const AtomicU16 = unsafe { BufRingEntry::tail(entries) }.cast();
        let mut br = BufRing {
            shared: Rc::clone(ring.shared()),
            map: Some(map),
            entries,
            tail,
            bufs,
            count,
            size,
            group,
            local_tail: 0,
            held: vec![u64::MAX; (count as usize).div_ceil(64)],
            n_held: count,
        };
        for bid in 0..count as u16 {
            br.put(bid);
        }
        br.publish();
        let submitter = br.shared.uring.submitter();
        // SAFETY: the ring memory is mapped, page-aligned and `count` entries long; it stays
        // mapped until the io_uring is closed (the mapping moves to `Shared::retired` on drop),
        // which outlives the registration.
        unsafe {
            submitter.register_buf_ring_with_flags(entries as u64, count as u16, group, 0)?;
        }
        Ok(br)
    }

    /// The group id operations name to pick from this ring.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// The size of each buffer.
    pub fn buffer_size(&self) -> u32 {
        self.size
    }

    /// How many buffers there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// How many buffers are in the ring, available to the kernel.
    pub fn available(&self) -> u32 {
        self.count - self.n_held
    }

    /// Takes ownership of buffer `bid`, which a completion reported
    /// ([`Completion::buffer_id`](super::Completion::buffer_id)). Call it once per such
    /// completion, before [`buffer`](Self::buffer).
    pub fn claim(&mut self, bid: u16) -> Result<(), BufError> {
        let (word, bit) = self.slot(bid)?;
        if self.held[word] & bit != 0 {
            return Err(BufError::AlreadyHeld(bid));
        }
        self.held[word] |= bit;
        self.n_held += 1;
        Ok(())
    }

    /// The first `len` bytes of claimed buffer `bid` (at most the buffer size): what the kernel
    /// wrote, for a completion whose result was `len`.
    pub fn buffer(&self, bid: u16, len: usize) -> Result<&[u8], BufError> {
        let (word, bit) = self.slot(bid)?;
        if self.held[word] & bit == 0 {
            return Err(BufError::NotHeld(bid));
        }
        let len = len.min(self.size as usize);
        // SAFETY: `bid < count`, so the range lies inside the mapping; the application holds
        // the buffer (it is not in the ring), so the kernel does not write it; `recycle` needs
        // `&mut self`, so it cannot hand the buffer back while this borrow lives.
        Ok(unsafe {
            std::slice::from_raw_parts(self.bufs.add(bid as usize * self.size as usize), len)
        })
    }

    /// Gives claimed buffer `bid` back to the kernel. It becomes visible to the kernel at once
    /// (the tail is published with release ordering). Refused for a buffer the kernel already
    /// owns, so no buffer is ever in the ring twice.
    pub fn recycle(&mut self, bid: u16) -> Result<(), BufError> {
        let (word, bit) = self.slot(bid)?;
        if self.held[word] & bit == 0 {
            return Err(BufError::NotHeld(bid));
        }
        self.put(bid);
        self.publish();
        Ok(())
    }

    fn slot(&self, bid: u16) -> Result<(usize, u64), BufError> {
        if u32::from(bid) >= self.count {
            return Err(BufError::OutOfRange(bid));
        }
        Ok((bid as usize / 64, 1u64 << (bid % 64)))
    }

    /// Writes held buffer `bid` into the ring at the local tail and marks it the kernel's.
    fn put(&mut self, bid: u16) {
        let idx = (self.local_tail as u32 & (self.count - 1)) as usize;
        // SAFETY: `idx < count`, inside the ring. The kernel only reads entries between its head
        // and the published tail; at most `count` buffers are ever in the ring (each buffer once,
        // enforced by `held`), so the slot at the local tail is not among them and no one reads
        // it concurrently. The fields are written one by one so that entry 0's `resv` (the tail)
        // is left alone.
        unsafe {
            let e = &mut *self.entries.add(idx);
            e.set_addr(self.bufs.add(bid as usize * self.size as usize) as u64);
            e.set_len(self.size);
            e.set_bid(bid);
        }
        self.local_tail = self.local_tail.wrapping_add(1);
        self.held[bid as usize / 64] &= !(1u64 << (bid % 64));
        self.n_held -= 1;
    }

    /// Publishes the local tail: the entries written before become visible to the kernel.
    fn publish(&self) {
        // SAFETY: `tail` points at entry 0's `resv`, a 2-aligned u16 in the mapping, which only
        // we write (the kernel reads it with acquire ordering).
        unsafe { (*self.tail).store(self.local_tail, Ordering::Release) };
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // Nothing to do on failure: the group goes away with the io_uring.
        let _ = self
            .shared
            .uring
            .submitter()
            .unregister_buf_ring(self.group);
        if let Some(map) = self.map.take() {
            self.shared.retired.borrow_mut().push(map);
        }
    }
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing")
            .field("group", &self.group)
            .field("count", &self.count)
            .field("size", &self.size)
            .field("available", &self.available())
            .finish()
    }
}
