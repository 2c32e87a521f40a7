//! The operations a [`Ring`] pushes. Each takes a caller-chosen `user_data`, which comes back in
//! its [`Completion`](super::Completion)s; none allocates or submits by itself (except to make
//! room in a full submission queue).

use std::io;
use std::net::Shutdown;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::{LinkMode, LinkedIds, Ring};

impl Ring {
    /// A no-op that completes with result 0 (a marker, or a way to wake the loop).
    pub fn nop(&mut self, user_data: u64) -> io::Result<()> {
        let e = opcode::Nop::new().build().user_data(user_data);
        // SAFETY: a NOP carries no pointer.
        unsafe { self.push(&e) }
    }

    /// Multishot accept on listening socket `fd`: one completion per connection, whose result is
    /// the accepted descriptor (opened `SOCK_CLOEXEC`; blocking, which the ring does not mind),
    /// with [`more`](super::Completion::more) set while the accept stays armed. Re-arm after a
    /// completion without `more`.
    pub fn accept_multishot(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let e = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data);
        // SAFETY: no address buffer is passed (multishot accept takes none).
        unsafe { self.push(&e) }
    }

    /// Multishot receive on `fd` into buffers the kernel picks from provided buffer group
    /// `buf_group` (a [`BufRing`](super::BufRing)): each completion's result is the byte count
    /// (0 at end of stream) and its [`buffer_id`](super::Completion::buffer_id) the buffer
    /// filled. It ends (no `more`) at end of stream, on error, on cancel and with `-ENOBUFS` when
    /// the group is empty; re-arm after recycling buffers. Data left in the socket is not lost.
    /// The end of stream, too, is only reported when a buffer is free (the kernel picks one
    /// before it receives): with none, it ends with `-ENOBUFS` instead.
    pub fn recv_multishot(&mut self, fd: RawFd, buf_group: u16, user_data: u64) -> io::Result<()> {
        let e = opcode::RecvMulti::new(types::Fd(fd), buf_group)
            .build()
            .user_data(user_data);
        // SAFETY: the buffers come from a registered buffer ring, whose memory lives as long
        // as the io_uring (see `BufRing`); no other pointer is passed.
        unsafe { self.push(&e) }
    }

    /// Sends `len` bytes at `ptr` on socket `fd`, with `flags | MSG_NOSIGNAL`. The result is the
    /// number of bytes sent, which may be less than `len` on a stream socket (the caller sends
    /// the rest) unless `flags` has `MSG_WAITALL`, or `-errno`.
    ///
    /// # Safety
    ///
    /// The `len` bytes at `ptr` must stay valid, unmoved and unmodified until this operation's
    /// completion has been reaped.
    pub unsafe fn send(
        &mut self,
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        flags: i32,
        user_data: u64,
    ) -> io::Result<()> {
        let e = opcode::Send::new(types::Fd(fd), ptr, len)
            .flags(flags | libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data);
        // SAFETY: the caller keeps the bytes valid until the completion.
        unsafe { self.push(&e) }
    }

    /// Shuts down one or both directions of socket `fd`.
    pub fn shutdown(&mut self, fd: RawFd, how: Shutdown, user_data: u64) -> io::Result<()> {
        let e = opcode::Shutdown::new(types::Fd(fd), shut_how(how))
            .build()
            .user_data(user_data);
        // SAFETY: no pointer.
        unsafe { self.push(&e) }
    }

    /// Closes descriptor `fd`. Operations still pending on it are not cancelled by this (cancel
    /// them with [`cancel_fd`](Self::cancel_fd) first).
    pub fn close(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let e = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(user_data);
        // SAFETY: no pointer.
        unsafe { self.push(&e) }
    }

    /// Cancels the first pending operation whose `user_data` is `target` (multishot included).
    /// This completion's result is 0 when it was found, `-ENOENT` when not, `-EALREADY` when it
    /// was already running; the target then completes with `-ECANCELED` (or its own result).
    pub fn cancel(&mut self, target: u64, user_data: u64) -> io::Result<()> {
        let e = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(target))
            .build()
            .user_data(user_data);
        // SAFETY: no pointer.
        unsafe { self.push(&e) }
    }

    /// Cancels every pending operation on descriptor `fd` (`IORING_ASYNC_CANCEL_FD |
    /// IORING_ASYNC_CANCEL_ALL`, 5.19). This completion's result is the number cancelled (0 when
    /// there was none: with CANCEL_ALL the kernel does not report `-ENOENT`); each cancelled
    /// operation completes with `-ECANCELED`, without `F_MORE`.
    pub fn cancel_fd(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let e = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
            .build()
            .user_data(user_data);
        // SAFETY: no pointer.
        unsafe { self.push(&e) }
    }

    /// Multishot poll on `fd` for `events` (`libc::POLLIN` and so on): one completion, result
    /// the ready mask, each time the descriptor becomes ready (edge-like: drain it, e.g. read an
    /// eventfd, before the next one).
    pub fn poll_multishot(&mut self, fd: RawFd, events: u32, user_data: u64) -> io::Result<()> {
        let e = opcode::PollAdd::new(types::Fd(fd), events)
            .multi(true)
            .build()
            .user_data(user_data);
        // SAFETY: no pointer.
        unsafe { self.push(&e) }
    }

    /// Reads an eventfd's 8-byte counter into `*counter` (the result is 8 on success).
    ///
    /// # Safety
    ///
    /// `counter` must stay valid and unmoved until this operation's completion has been reaped.
    pub unsafe fn read_eventfd(
        &mut self,
        fd: RawFd,
        counter: *mut u64,
        user_data: u64,
    ) -> io::Result<()> {
        let e = opcode::Read::new(types::Fd(fd), counter.cast(), 8)
            .build()
            .user_data(user_data);
        // SAFETY: the caller keeps `counter` valid until the completion.
        unsafe { self.push(&e) }
    }

    /// Finishes a connection in one submission batch: sends `len` bytes at `ptr` (with
    /// `MSG_WAITALL | MSG_NOSIGNAL`, so a short send counts as a failure), then shuts both
    /// directions down, then closes `fd`, linked by `mode`.
    ///
    /// With `skip_success` (and [`Ring::supports_skip_success`]) operations that succeed post no
    /// completion (`IOSQE_CQE_SKIP_SUCCESS`). Verified on 6.18 (`tests.rs`):
    ///
    /// - All succeed: completions `len`, 0, 0; with `skip_success`, none at all.
    /// - The send fails (peer reset: `-ECONNRESET`/`-EPIPE`) or is short (part of the data went
    ///   out before the error: a positive result below `len`, still a failure because of
    ///   `MSG_WAITALL`). The send's completion is always posted, `skip_success` or not.
    ///   - `Soft`: the shutdown and close are cancelled and `fd` stays open. Without
    ///     `skip_success` they complete with `-ECANCELED`; **with `skip_success` they post
    ///     nothing** (the kernel skips the CQEs of a chain whose skipped head failed). So a
    ///     send completion that is not the full `len` means: the chain broke, close `fd`
    ///     yourself.
    ///   - `Hard`: the shutdown runs and fails (`-ENOTCONN`), the close runs and succeeds; `fd`
    ///     is closed. Without `skip_success` all three complete; with it only the failed send
    ///     posts (not even the shutdown's `-ENOTCONN`).
    ///
    /// In every mode the caller learns the outcome from the send's completion (plus, without
    /// `skip_success`, the close's), and must not reuse `fd` until it knows whether the close ran.
    ///
    /// # Safety
    ///
    /// As for [`send`](Self::send): the bytes must stay valid and unmoved until the send's
    /// completion (or, with `skip_success`, until the close has completed or been reaped).
    pub unsafe fn send_shutdown_close(
        &mut self,
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        ids: LinkedIds,
        mode: LinkMode,
        skip_success: bool,
    ) -> io::Result<()> {
        let link = match mode {
            LinkMode::Soft => squeue::Flags::IO_LINK,
            LinkMode::Hard => squeue::Flags::IO_HARDLINK,
        };
        let skip = if skip_success && self.supports_skip_success() {
            squeue::Flags::SKIP_SUCCESS
        } else {
            squeue::Flags::empty()
        };
        let entries = [
            opcode::Send::new(types::Fd(fd), ptr, len)
                .flags(libc::MSG_WAITALL | libc::MSG_NOSIGNAL)
                .build()
                .flags(link | skip)
                .user_data(ids.send),
            opcode::Shutdown::new(types::Fd(fd), libc::SHUT_RDWR)
                .build()
                .flags(link | skip)
                .user_data(ids.shutdown),
            opcode::Close::new(types::Fd(fd))
                .build()
                .flags(skip)
                .user_data(ids.close),
        ];
        // SAFETY: the caller keeps the send's bytes valid; the others carry no pointer.
        unsafe { self.push_all(&entries) }
    }
}

fn shut_how(how: Shutdown) -> i32 {
    match how {
        Shutdown::Read => libc::SHUT_RD,
        Shutdown::Write => libc::SHUT_WR,
        Shutdown::Both => libc::SHUT_RDWR,
    }
}
