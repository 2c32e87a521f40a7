//! The shape of a per-core loop's I/O, shared by its two implementations: the io_uring
//! [`Ring`](super::ring::Ring) (with its provided [`BufRing`](super::ring::BufRing)) and the
//! epoll [`Poller`](super::poller::Poller) (with its [`BufPool`](super::poller::BufPool)).
//!
//! The native loop (`server/native/`) is written once against [`LoopIo`] and [`RecvBufs`] and
//! monomorphised for each: it pushes operations tagged with a caller-chosen `user_data`, calls
//! [`LoopIo::submit_and_wait`] once per turn, then drains [`Completion`]s. A completion means
//! the same on both: a count, a descriptor or `-errno` in `result`, [`Completion::more`] while a
//! multishot operation stays armed, and [`Completion::buffer_id`] for a receive that filled one
//! of the loop's receive buffers, which the caller [claims](RecvBufs::claim), reads and
//! [recycles](RecvBufs::recycle).

use std::io;
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::time::Duration;

/// `IORING_CQE_F_BUFFER`: the completion carries a receive buffer id in its upper 16 bits.
pub(crate) const CQE_F_BUFFER: u32 = 1 << 0;
/// `IORING_CQE_F_MORE`: the operation that produced this completion is still armed.
pub(crate) const CQE_F_MORE: u32 = 1 << 1;
/// `IORING_CQE_F_SOCK_NONEMPTY`: the socket had more data after this receive.
const CQE_F_SOCK_NONEMPTY: u32 = 1 << 2;
/// `IORING_CQE_F_NOTIF`: a zero-copy send's notification (the buffer may be reused).
const CQE_F_NOTIF: u32 = 1 << 3;
/// `IORING_CQE_BUFFER_SHIFT`.
pub(crate) const CQE_BUFFER_SHIFT: u32 = 16;

/// One completion: what an operation pushed on a [`LoopIo`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The `user_data` of the operation that completed.
    pub user_data: u64,
    /// The result: a count or descriptor when non-negative, `-errno` otherwise.
    pub result: i32,
    /// The `IORING_CQE_F_*` flags (the epoll poller sets the same bits).
    pub flags: u32,
}

impl Completion {
    /// Whether the operation is still armed and will complete again (`IORING_CQE_F_MORE`).
    /// A multishot operation's last completion has this clear.
    pub fn more(&self) -> bool {
        self.flags & CQE_F_MORE != 0
    }

    /// The receive buffer filled, if any (`IORING_CQE_F_BUFFER`). The caller must
    /// [`claim`](RecvBufs::claim) it and later [`recycle`](RecvBufs::recycle) it.
    pub fn buffer_id(&self) -> Option<u16> {
        if self.flags & CQE_F_BUFFER != 0 {
            Some((self.flags >> CQE_BUFFER_SHIFT) as u16)
        } else {
            None
        }
    }

    /// Whether the socket still had data after this receive (`IORING_CQE_F_SOCK_NONEMPTY`).
    pub fn sock_nonempty(&self) -> bool {
        self.flags & CQE_F_SOCK_NONEMPTY != 0
    }

    /// Whether this is a zero-copy send's notification (`IORING_CQE_F_NOTIF`).
    pub fn is_notif(&self) -> bool {
        self.flags & CQE_F_NOTIF != 0
    }

    /// The result as `io::Result`: the non-negative value, or the error `-result`.
    pub fn io_result(&self) -> io::Result<u32> {
        if self.result >= 0 {
            Ok(self.result as u32)
        } else {
            Err(io::Error::from_raw_os_error(-self.result))
        }
    }
}

/// How one [`LoopIo::submit_and_wait`] call ended. None of these is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Submitted; at least the wanted number of completions are ready (or none were wanted).
    Ready,
    /// The timeout passed first (`ETIME`). Submissions went through all the same.
    TimedOut,
    /// A signal interrupted the wait (`EINTR`).
    Interrupted,
    /// The kernel could not take more work until completions are reaped (`EBUSY`): drain
    /// [`LoopIo::drain_completions`] and call again.
    Busy,
}

/// How [`LoopIo::send_shutdown_close`] links its three operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// `IOSQE_IO_LINK`: an operation that fails (including a short send) cancels the rest of the
    /// chain, which completes with `-ECANCELED`. The descriptor is then **not** closed: the
    /// caller must close it.
    Soft,
    /// `IOSQE_IO_HARDLINK`: every operation runs whatever the previous one returned, so the
    /// descriptor is always closed. The right choice for a connection that is finished anyway.
    Hard,
}

/// The `user_data` of each operation of [`LoopIo::send_shutdown_close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkedIds {
    /// The send's completion.
    pub send: u64,
    /// The shutdown's completion.
    pub shutdown: u64,
    /// The close's completion.
    pub close: u64,
}

/// Why a set of receive buffers could not be built or a buffer operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum BufError {
    /// The buffer count is not a power of two in 1..=32768.
    #[error("buffer count {0} is not a power of two in 1..=32768")]
    InvalidCount(u32),
    /// The buffer size is 0, or the whole mapping does not fit in memory.
    #[error("buffer size {0} is invalid (0, or count × size too large)")]
    InvalidSize(u32),
    /// Mapping the memory or registering the ring failed.
    #[error("buffer ring setup: {0}")]
    Io(#[from] io::Error),
    /// The buffer id is not in this ring.
    #[error("buffer id {0} is out of range")]
    OutOfRange(u16),
    /// The buffer is owned by the kernel or the poller (already recycled, or never claimed).
    #[error("buffer {0} is not held by the application (recycled twice, or not claimed)")]
    NotHeld(u16),
    /// The buffer was claimed already (a completion seen twice?).
    #[error("buffer {0} is already claimed")]
    AlreadyHeld(u16),
}

impl From<BufError> for io::Error {
    fn from(e: BufError) -> io::Error {
        match e {
            BufError::Io(e) => e,
            e @ (BufError::InvalidCount(_) | BufError::InvalidSize(_)) => {
                io::Error::new(io::ErrorKind::InvalidInput, e)
            }
            e => io::Error::other(e),
        }
    }
}

/// The receive buffers a [`LoopIo`] fills for its multishot receives. A completion with a
/// [`buffer_id`](Completion::buffer_id) hands one buffer to the caller, who claims it once,
/// reads it and recycles it once.
pub trait RecvBufs {
    /// Takes ownership of buffer `bid`, which a completion reported.
    fn claim(&mut self, bid: u16) -> Result<(), BufError>;
    /// The first `len` bytes of claimed buffer `bid` (at most the buffer size).
    fn buffer(&self, bid: u16, len: usize) -> Result<&[u8], BufError>;
    /// Gives claimed buffer `bid` back to be filled again.
    fn recycle(&mut self, bid: u16) -> Result<(), BufError>;
}

/// The operations a per-core loop pushes, with the semantics of the io_uring operations of the
/// same names (see [`Ring`](super::ring::Ring) for each). Nothing completes inside a push:
/// completions are reported by [`drain_completions`](Self::drain_completions) after
/// [`submit_and_wait`](Self::submit_and_wait). Neither implementation allocates per operation
/// once warmed up.
pub trait LoopIo: Sized {
    /// The receive buffers this implementation fills.
    type Bufs: RecvBufs;

    /// The name `ringfast_build_info{io_backend}` and the logs use.
    const NAME: &'static str;

    /// Sets up one loop's I/O (`entries`: a size hint for its queues) and its `count` receive
    /// buffers of `size` bytes, as buffer group `group`.
    fn open(entries: u32, group: u16, count: u32, size: u32) -> io::Result<(Self, Self::Bufs)>;

    /// Multishot accept on listening socket `fd`: one completion per connection (the accepted
    /// descriptor, `SOCK_CLOEXEC`), with `more` while it stays armed.
    fn accept_multishot(&mut self, fd: RawFd, user_data: u64) -> io::Result<()>;

    /// Multishot poll on `fd` for `events` (`POLLIN`...): a completion (the ready mask) each
    /// time the descriptor is found ready; drain it before the next.
    fn poll_multishot(&mut self, fd: RawFd, events: u32, user_data: u64) -> io::Result<()>;

    /// Multishot receive on `fd` into receive buffer group `buf_group`: one completion per
    /// buffer filled; the last (no `more`) is the end of stream (0), an error, `-ECANCELED` or
    /// `-ENOBUFS`. Data left in the socket is not lost; re-arm to receive again.
    fn recv_multishot(&mut self, fd: RawFd, buf_group: u16, user_data: u64) -> io::Result<()>;

    /// Sends `len` bytes at `ptr` on socket `fd` with `flags | MSG_NOSIGNAL`; the result is the
    /// count sent (possibly short) or `-errno`.
    ///
    /// # Safety
    ///
    /// The `len` bytes at `ptr` must stay valid, unmoved and unmodified until this operation's
    /// completion has been reaped.
    unsafe fn send(
        &mut self,
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        flags: i32,
        user_data: u64,
    ) -> io::Result<()>;

    /// Sends `len` bytes (all of them, or the send fails), then shuts `fd` down both ways, then
    /// closes it, linked by `mode` (see [`Ring::send_shutdown_close`][link] for every outcome).
    ///
    /// # Safety
    ///
    /// As for [`send`](Self::send).
    ///
    /// [link]: super::ring::Ring::send_shutdown_close
    unsafe fn send_shutdown_close(
        &mut self,
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        ids: LinkedIds,
        mode: LinkMode,
        skip_success: bool,
    ) -> io::Result<()>;

    /// Shuts down one or both directions of socket `fd`.
    fn shutdown(&mut self, fd: RawFd, how: Shutdown, user_data: u64) -> io::Result<()>;

    /// Cancels the pending operation whose `user_data` is `target`: this completion's result
    /// is 0 when found, `-ENOENT` when not; the target then completes with `-ECANCELED`.
    fn cancel(&mut self, target: u64, user_data: u64) -> io::Result<()>;

    /// Starts what was pushed and waits until `want` completions are ready or `timeout`
    /// passes.
    fn submit_and_wait(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<Wait>;

    /// Moves every ready completion to the end of `out`; returns how many.
    fn drain_completions(&mut self, out: &mut Vec<Completion>) -> usize;
}

impl RecvBufs for super::ring::BufRing {
    fn claim(&mut self, bid: u16) -> Result<(), BufError> {
        super::ring::BufRing::claim(self, bid)
    }

    fn buffer(&self, bid: u16, len: usize) -> Result<&[u8], BufError> {
        super::ring::BufRing::buffer(self, bid, len)
    }

    fn recycle(&mut self, bid: u16) -> Result<(), BufError> {
        super::ring::BufRing::recycle(self, bid)
    }
}

impl LoopIo for super::ring::Ring {
    type Bufs = super::ring::BufRing;

    const NAME: &'static str = "ring";

    fn open(entries: u32, group: u16, count: u32, size: u32) -> io::Result<(Self, Self::Bufs)> {
        let ring = super::ring::Ring::new(entries)?;
        let bufs = super::ring::BufRing::new(&ring, group, count, size)?;
        Ok((ring, bufs))
    }

    fn accept_multishot(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        super::ring::Ring::accept_multishot(self, fd, user_data)
    }

    fn poll_multishot(&mut self, fd: RawFd, events: u32, user_data: u64) -> io::Result<()> {
        super::ring::Ring::poll_multishot(self, fd, events, user_data)
    }

    fn recv_multishot(&mut self, fd: RawFd, buf_group: u16, user_data: u64) -> io::Result<()> {
        super::ring::Ring::recv_multishot(self, fd, buf_group, user_data)
    }

    unsafe fn send(
        &mut self,
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        flags: i32,
        user_data: u64,
    ) -> io::Result<()> {
        // SAFETY: the caller's contract is the ring's.
        unsafe { super::ring::Ring::send(self, fd, ptr, len, flags, user_data) }
    }

    unsafe fn send_shutdown_close(
        &mut self,
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        ids: LinkedIds,
        mode: LinkMode,
        skip_success: bool,
    ) -> io::Result<()> {
        // SAFETY: the caller's contract is the ring's.
        unsafe {
            super::ring::Ring::send_shutdown_close(self, fd, ptr, len, ids, mode, skip_success)
        }
    }

    fn shutdown(&mut self, fd: RawFd, how: Shutdown, user_data: u64) -> io::Result<()> {
        super::ring::Ring::shutdown(self, fd, how, user_data)
    }

    fn cancel(&mut self, target: u64, user_data: u64) -> io::Result<()> {
        super::ring::Ring::cancel(self, target, user_data)
    }

    fn submit_and_wait(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<Wait> {
        super::ring::Ring::submit_and_wait(self, want, timeout)
    }

    fn drain_completions(&mut self, out: &mut Vec<Completion>) -> usize {
        super::ring::Ring::drain_completions(self, out)
    }
}
