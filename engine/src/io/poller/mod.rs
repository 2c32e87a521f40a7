//! The epoll implementation of the loop's I/O ([`LoopIo`]): the operations of the io_uring
//! [`Ring`](crate::io::ring::Ring), emulated on readiness, with the same completions, so that the
//! native loop runs unchanged where a ring cannot be set up (an old kernel,
//! `kernel.io_uring_disabled`, a container's seccomp filter) or where `--io epoll` asks for it.
//!
//! # Emulation
//!
//! - **Multishot receive**: interest in `EPOLLIN | EPOLLRDHUP`, edge-triggered. On readiness the
//!   poller receives into free [`BufPool`] buffers, one completion per buffer (with `more` and
//!   the buffer id), until the socket is drained, at most [`READS_PER_TURN`] buffers per turn
//!   (the rest waits for the next turn, without waiting for readiness). A short read ends
//!   draining unless the peer's FIN or an error was reported (a stream socket that filled less
//!   than the buffer was empty; anything arriving later raises a new edge). End of stream,
//!   errors and cancellation end the receive (no `more`), as on the ring. Arming a receive
//!   reads at once, before waiting for readiness: a new connection's request is usually there
//!   already. A socket is registered with epoll only after that first read, and only when the
//!   loop is about to wait, so data or a FIN left behind is reported by the registration itself,
//!   and a connection answered and closed within its first turns costs no `epoll_ctl`. When no buffer is free the read waits
//!   for one (the ring would report `-ENOBUFS`; the loop recycles every buffer within a turn).
//! - **Multishot accept / poll**: level-triggered interest; `accept4` until `EAGAIN` (at most
//!   [`ACCEPTS_PER_TURN`] per turn), one completion per connection; a poll completes with the
//!   ready mask each time epoll reports it.
//! - **Send**: attempted at once (`MSG_NOSIGNAL | MSG_DONTWAIT`); only when the socket is full
//!   does the rest wait for `EPOLLOUT` (added to the registration for that time). The completion
//!   reports the whole count, or the count sent before an error, or `-errno`.
//! - **Send → shutdown → close**: run in order once the send is done; a short or failed send
//!   cancels the rest (`LinkMode::Soft`, `-ECANCELED`, the descriptor stays open) or not
//!   (`LinkMode::Hard`), with `skip_success` as on the ring. Shutting down the read side ends an
//!   armed receive (0, end of stream), and closing ends every other operation on the descriptor
//!   (`-ECANCELED`), as the ring's would.
//! - **Cancel** by `user_data`: the target completes with `-ECANCELED`, the cancel with 0 (or
//!   `-ENOENT`).
//! - **Wait**: one `epoll_wait` per turn, with the turn's timeout; none at all when a turn already
//!   has completions to report (sends that went out at once), for at most [`MAX_SKIPS`] turns in a
//!   row, so readiness is always collected.
//!
//! Nothing allocates per operation once warm: the descriptor table grows to the highest
//! descriptor seen, and the completion, work and event lists keep their capacity.

mod pool;
#[cfg(test)]
mod tests;

use std::io;
use std::marker::PhantomData;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub use pool::BufPool;

use super::loop_io::{
    Completion, LinkMode, LinkedIds, LoopIo, Wait, CQE_BUFFER_SHIFT, CQE_F_BUFFER, CQE_F_MORE,
};
use pool::PoolShared;

/// Buffers one socket may fill per turn before others get theirs.
pub const READS_PER_TURN: usize = 4;
/// Connections accepted per listener per turn (the listener is level-triggered: the rest are
/// reported again).
pub const ACCEPTS_PER_TURN: usize = 32;
/// Turns in a row that may skip `epoll_wait` because completions are already waiting.
pub const MAX_SKIPS: u32 = 2;
/// Events collected by one `epoll_wait`.
const EVENTS: usize = 256;

/// The registration of a stream socket (edge-triggered, read side and peer's FIN).
const STREAM_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// Events after which a short read does not prove the socket drained.
const CLOSING_EVENTS: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// A send in progress, and the shutdown and close linked after it.
struct PendingSend {
    user_data: u64,
    ptr: *const u8,
    len: usize,
    done: usize,
    flags: i32,
    link: Option<Link>,
}

#[derive(Clone, Copy)]
struct Link {
    ids: LinkedIds,
    mode: LinkMode,
    skip_success: bool,
}

/// What the poller knows of one descriptor (indexed by the descriptor's number).
#[derive(Default)]
struct FdSlot {
    /// Bumped when the descriptor is closed (or a new one is accepted under its number), so
    /// that events and queued work for the old one are recognised.
    gen: u32,
    /// The events registered with epoll; 0 when not registered.
    registered: u32,
    /// A stream socket (receive or send): edge-triggered registration, kept until close.
    stream: bool,
    recv: Option<u64>,
    accept: Option<u64>,
    poll: Option<(u64, u32)>,
    send: Option<PendingSend>,
    /// On the work list (a read to do this turn without waiting for readiness).
    queued: bool,
}

/// One epoll instance and the operations pending on it, owned by one thread (like a ring, it is
/// neither `Send` nor `Sync`).
pub struct Poller {
    epfd: OwnedFd,
    slots: Vec<FdSlot>,
    /// Completions not drained yet.
    ready: Vec<Completion>,
    /// Reads to do at the start of the next turn (descriptor, generation).
    work: Vec<(RawFd, u32)>,
    /// The work list being run (kept to reuse its capacity).
    running: Vec<(RawFd, u32)>,
    /// Sockets read once and not registered with epoll yet (descriptor, generation).
    unregistered: Vec<(RawFd, u32)>,
    events: Vec<libc::epoll_event>,
    pool: Option<Rc<PoolShared>>,
    skipped: u32,
    _thread: PhantomData<*const ()>,
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `-1` (forever) for no timeout, else the timeout in milliseconds, rounded up so that a wait
/// for 0.3 ms does not become a busy loop.
fn timeout_ms(t: Option<Duration>) -> i32 {
    match t {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}

fn pack(fd: RawFd, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(fd as u32)
}

impl Poller {
    /// Creates the epoll instance.
    pub fn new() -> io::Result<Poller> {
        // SAFETY: epoll_create1 has no memory arguments; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Poller {
            // SAFETY: a new descriptor nothing else owns.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            slots: Vec::new(),
            ready: Vec::with_capacity(EVENTS * READS_PER_TURN),
            work: Vec::with_capacity(64),
            running: Vec::with_capacity(64),
            unregistered: Vec::with_capacity(64),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS],
            pool: None,
            skipped: 0,
            _thread: PhantomData,
        })
    }

    fn set_pool(&mut self, pool: Rc<PoolShared>) {
        self.pool = Some(pool);
    }

    /// The slot of `fd`, grown into the table if it is the highest descriptor seen yet.
    fn slot(&mut self, fd: RawFd) -> io::Result<&mut FdSlot> {
        let i = usize::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, FdSlot::default);
        }
        Ok(&mut self.slots[i])
    }

    fn post(&mut self, user_data: u64, result: i32, flags: u32) {
        self.ready.push(Completion {
            user_data,
            result,
            flags,
        });
    }

    /// Brings `fd`'s epoll registration in line with what is pending on it.
    fn update(&mut self, fd: RawFd) {
        let epfd = self.epfd.as_raw_fd();
        let s = &mut self.slots[fd as usize];
        let want = if s.stream {
            STREAM_EVENTS
                | if s.send.is_some() {
                    libc::EPOLLOUT as u32
                } else {
                    0
                }
        } else {
            s.accept.map_or(0, |_| libc::EPOLLIN as u32) | s.poll.map_or(0, |(_, e)| e)
        };
        if want == s.registered {
            return;
        }
        let mut ev = libc::epoll_event {
            events: want,
            u64: pack(fd, s.gen),
        };
        let ctl = |op: i32, ev: &mut libc::epoll_event| {
            // SAFETY: `ev` is a live epoll_event; epfd and fd are descriptors (a bad one is an
            // error, not undefined behaviour).
            unsafe { libc::epoll_ctl(epfd, op, fd, ev) }
        };
        let rc = if want == 0 {
            ctl(libc::EPOLL_CTL_DEL, &mut ev)
        } else if s.registered == 0 {
            match ctl(libc::EPOLL_CTL_ADD, &mut ev) {
                r if r < 0 && errno() == libc::EEXIST => ctl(libc::EPOLL_CTL_MOD, &mut ev),
                r => r,
            }
        } else {
            match ctl(libc::EPOLL_CTL_MOD, &mut ev) {
                r if r < 0 && errno() == libc::ENOENT => ctl(libc::EPOLL_CTL_ADD, &mut ev),
                r => r,
            }
        };
        if rc < 0 {
            let err = errno();
            tracing::debug!(fd, error = %io::Error::from_raw_os_error(err), "epoll_ctl failed");
            // Nothing will report readiness: end what waits for it.
            self.fail_all(fd, -err);
            return;
        }
        self.slots[fd as usize].registered = want;
    }

    /// Ends every operation pending on `fd` with `result` (a failed registration, or a close).
    fn fail_all(&mut self, fd: RawFd, result: i32) {
        let s = &mut self.slots[fd as usize];
        let recv = s.recv.take();
        let accept = s.accept.take();
        let poll = s.poll.take();
        let send = s.send.take();
        s.registered = 0;
        for ud in [recv, accept, poll.map(|p| p.0)].into_iter().flatten() {
            self.post(ud, result, 0);
        }
        if let Some(p) = send {
            self.post(p.user_data, result, 0);
            if let Some(link) = p.link {
                if !link.skip_success {
                    self.post(link.ids.shutdown, -libc::ECANCELED, 0);
                    self.post(link.ids.close, -libc::ECANCELED, 0);
                }
            }
        }
    }

    fn queue(&mut self, fd: RawFd) {
        let s = &mut self.slots[fd as usize];
        if !s.queued {
            s.queued = true;
            let gen = s.gen;
            self.work.push((fd, gen));
        }
    }

    /// Receives into free buffers until `fd` is drained, fails, ends or has had its share of
    /// this turn. `short_is_drained`: a short read proves the socket empty (see the module
    /// documentation).
    fn read(&mut self, fd: RawFd, short_is_drained: bool) {
        let Some(pool) = self.pool.clone() else {
            return;
        };
        let size = pool.size();
        for _ in 0..READS_PER_TURN {
            let Some(ud) = self.slots[fd as usize].recv else {
                return;
            };
            let Some((bid, ptr)) = pool.take() else {
                // Every buffer is out: read again once one is recycled.
                self.queue(fd);
                return;
            };
            // SAFETY: `ptr` is a free buffer of `size` bytes in the pool's allocation; taken
            // (marked posted), it is written by nobody else and read by nobody until claimed.
            let n = unsafe { libc::recv(fd, ptr.cast(), size, libc::MSG_DONTWAIT) };
            if n > 0 {
                let flags = CQE_F_MORE | CQE_F_BUFFER | (u32::from(bid) << CQE_BUFFER_SHIFT);
                self.post(ud, n as i32, flags);
                if (n as usize) < size && short_is_drained {
                    return;
                }
                continue;
            }
            let err = if n == 0 { 0 } else { errno() };
            pool.untake(bid);
            match err {
                libc::EAGAIN => return,
                libc::EINTR => continue,
                _ => {
                    // End of stream (0) or an error: the receive ends.
                    self.slots[fd as usize].recv = None;
                    self.post(ud, -err, 0);
                    return;
                }
            }
        }
        // Its share is used: the rest next turn.
        self.queue(fd);
    }

    fn accept(&mut self, fd: RawFd) {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(ud) = self.slots[fd as usize].accept else {
                return;
            };
            // SAFETY: accept4 on a (non-blocking) listening socket, asking for no address.
            let s = unsafe {
                libc::accept4(
                    fd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            if s >= 0 {
                // A new descriptor under this number: forget whatever the old one left.
                if let Ok(slot) = self.slot(s) {
                    let gen = slot.gen.wrapping_add(1);
                    *slot = FdSlot {
                        gen,
                        ..FdSlot::default()
                    };
                }
                self.post(ud, s, CQE_F_MORE);
                continue;
            }
            match errno() {
                libc::EAGAIN => return,
                libc::EINTR | libc::ECONNABORTED => continue,
                err => {
                    // As a multishot accept does, end on an error (the caller re-arms).
                    self.slots[fd as usize].accept = None;
                    self.post(ud, -err, 0);
                    self.update(fd);
                    return;
                }
            }
        }
    }

    /// Sends what is left of `fd`'s pending send; completes it when all is sent or it fails,
    /// otherwise waits for `EPOLLOUT`.
    fn progress_send(&mut self, fd: RawFd) {
        let Some(mut p) = self.slots[fd as usize].send.take() else {
            return;
        };
        let mut error = 0;
        while p.done < p.len {
            // SAFETY: the caller of `send`/`send_shutdown_close` keeps the `len` bytes at `ptr`
            // valid until the completion, which has not been posted yet; `done < len`.
            let n = unsafe {
                libc::send(
                    fd,
                    p.ptr.add(p.done).cast(),
                    p.len - p.done,
                    p.flags | libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                p.done += n as usize;
                continue;
            }
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN => {
                    self.slots[fd as usize].send = Some(p);
                    self.update(fd);
                    return;
                }
                e => {
                    error = e;
                    break;
                }
            }
        }
        let had_out = self.slots[fd as usize].registered & libc::EPOLLOUT as u32 != 0;
        if had_out {
            // Done waiting for room: stop being woken for it.
            self.update(fd);
        }
        let result = if p.done > 0 || error == 0 {
            i32::try_from(p.done).unwrap_or(i32::MAX)
        } else {
            -error
        };
        let complete = p.done == p.len && error == 0;
        match p.link {
            None => self.post(p.user_data, result, 0),
            Some(link) => self.finish_link(fd, p.user_data, result, complete, link),
        }
    }

    /// The shutdown and close after a linked send that came to `result`.
    fn finish_link(&mut self, fd: RawFd, send_ud: u64, result: i32, complete: bool, link: Link) {
        let skip = link.skip_success;
        if !(complete && skip) {
            self.post(send_ud, result, 0);
        }
        if !complete && link.mode == LinkMode::Soft {
            if !skip {
                self.post(link.ids.shutdown, -libc::ECANCELED, 0);
                self.post(link.ids.close, -libc::ECANCELED, 0);
            }
            return;
        }
        // With skip_success, a chain whose send failed posts nothing more (as the ring does);
        // one whose send succeeded posts only what fails.
        let post_rest = |r: i32| !skip || (complete && r < 0);
        let r = self.shutdown_now(fd, libc::SHUT_RDWR);
        if post_rest(r) {
            self.post(link.ids.shutdown, r, 0);
        }
        let r = self.close_now(fd);
        if post_rest(r) {
            self.post(link.ids.close, r, 0);
        }
    }

    /// `shutdown(2)` now; a receive armed on a read side that is shut down ends (0).
    fn shutdown_now(&mut self, fd: RawFd, how: i32) -> i32 {
        // SAFETY: shutdown has no memory arguments.
        let r = unsafe { libc::shutdown(fd, how) };
        let r = if r < 0 { -errno() } else { 0 };
        if how != libc::SHUT_WR {
            if let Some(ud) = self.slots.get_mut(fd as usize).and_then(|s| s.recv.take()) {
                self.post(ud, 0, 0);
            }
        }
        r
    }

    /// `close(2)` now, ending whatever is still pending on the descriptor.
    fn close_now(&mut self, fd: RawFd) -> i32 {
        self.fail_all(fd, -libc::ECANCELED);
        let s = &mut self.slots[fd as usize];
        s.gen = s.gen.wrapping_add(1);
        s.stream = false;
        s.queued = false;
        // SAFETY: the caller hands `fd` to the poller to close, once (the end of a linked
        // send); closing removes it from the epoll set.
        let r = unsafe { libc::close(fd) };
        if r < 0 {
            -errno()
        } else {
            0
        }
    }

    /// Runs the reads queued for this turn.
    fn run_work(&mut self) {
        if self.work.is_empty() {
            return;
        }
        std::mem::swap(&mut self.work, &mut self.running);
        for i in 0..self.running.len() {
            let (fd, gen) = self.running[i];
            let s = &mut self.slots[fd as usize];
            if s.gen != gen || !s.queued {
                continue;
            }
            s.queued = false;
            let fresh = s.registered == 0;
            if s.recv.is_some() {
                self.read(fd, fresh);
            }
            let s = &self.slots[fd as usize];
            if fresh && s.gen == gen && !s.queued && s.recv.is_some() {
                // Registered after the first read (what it left behind is then reported at
                // once), and only before the loop waits: a connection answered and closed
                // within its first turns is never registered at all.
                self.unregistered.push((fd, gen));
            }
        }
        self.running.clear();
    }

    /// Registers the sockets read since their receive was armed, before `epoll_wait`.
    fn register_new(&mut self) {
        for i in 0..self.unregistered.len() {
            let (fd, gen) = self.unregistered[i];
            let s = &self.slots[fd as usize];
            if s.gen == gen && s.registered == 0 && (s.recv.is_some() || s.send.is_some()) {
                self.update(fd);
            }
        }
        self.unregistered.clear();
    }

    /// Whether queued reads can make progress now (they wait while every buffer is out).
    fn work_ready(&self) -> bool {
        !self.work.is_empty() && self.pool.as_ref().is_some_and(|p| p.has_free())
    }

    fn dispatch(&mut self, data: u64, bits: u32) {
        let fd = data as u32 as RawFd;
        let gen = (data >> 32) as u32;
        match self.slots.get(fd as usize) {
            Some(s) if s.gen == gen => {}
            _ => return,
        }
        let s = &self.slots[fd as usize];
        let inbound = bits & (libc::EPOLLIN as u32 | CLOSING_EVENTS) != 0;
        if s.accept.is_some() && inbound {
            self.accept(fd);
        }
        if let Some((ud, want)) = self.slots[fd as usize].poll {
            let hit = bits & (want | (libc::EPOLLERR | libc::EPOLLHUP) as u32);
            if hit != 0 {
                self.post(ud, hit as i32, CQE_F_MORE);
            }
        }
        if self.slots[fd as usize].recv.is_some() && inbound {
            self.read(fd, bits & CLOSING_EVENTS == 0);
        }
        let outbound = bits & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
        if self.slots[fd as usize].send.is_some() && outbound {
            self.progress_send(fd);
        }
    }

    /// Queues a send (linked or not) and tries it at once.
    fn start_send(&mut self, fd: RawFd, p: PendingSend) -> io::Result<()> {
        let s = self.slot(fd)?;
        if s.send.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "a send is already pending on this descriptor",
            ));
        }
        s.stream = true;
        s.send = Some(p);
        self.progress_send(fd);
        Ok(())
    }
}

impl LoopIo for Poller {
    type Bufs = BufPool;

    const NAME: &'static str = "epoll";

    fn open(entries: u32, group: u16, count: u32, size: u32) -> io::Result<(Self, Self::Bufs)> {
        let _ = entries;
        let mut poller = Poller::new()?;
        let pool = BufPool::new(&mut poller, group, count, size)?;
        Ok((poller, pool))
    }

    fn accept_multishot(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        // accept4 until EAGAIN needs a non-blocking listener.
        // SAFETY: fcntl on a descriptor with integer arguments only.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        self.slot(fd)?.accept = Some(user_data);
        self.update(fd);
        Ok(())
    }

    fn poll_multishot(&mut self, fd: RawFd, events: u32, user_data: u64) -> io::Result<()> {
        self.slot(fd)?.poll = Some((user_data, events));
        self.update(fd);
        Ok(())
    }

    fn recv_multishot(&mut self, fd: RawFd, buf_group: u16, user_data: u64) -> io::Result<()> {
        if self.pool.as_ref().map(|p| p.group()) != Some(buf_group) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no receive buffers registered under this group",
            ));
        }
        let s = self.slot(fd)?;
        s.stream = true;
        s.recv = Some(user_data);
        // Read at once (next turn), before waiting for readiness.
        self.queue(fd);
        Ok(())
    }

    unsafe fn send(
        &mut self,
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        flags: i32,
        user_data: u64,
    ) -> io::Result<()> {
        self.start_send(
            fd,
            PendingSend {
                user_data,
                ptr,
                len: len as usize,
                done: 0,
                flags,
                link: None,
            },
        )
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
        self.start_send(
            fd,
            PendingSend {
                user_data: ids.send,
                ptr,
                len: len as usize,
                done: 0,
                flags: 0,
                link: Some(Link {
                    ids,
                    mode,
                    skip_success,
                }),
            },
        )
    }

    fn shutdown(&mut self, fd: RawFd, how: Shutdown, user_data: u64) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        self.slot(fd)?;
        let r = self.shutdown_now(fd, how);
        self.post(user_data, r, 0);
        Ok(())
    }

    fn cancel(&mut self, target: u64, user_data: u64) -> io::Result<()> {
        let found = self.slots.iter().position(|s| {
            s.recv == Some(target)
                || s.accept == Some(target)
                || s.poll.is_some_and(|p| p.0 == target)
                || s.send.as_ref().is_some_and(|p| p.user_data == target)
        });
        let Some(fd) = found else {
            self.post(user_data, -libc::ENOENT, 0);
            return Ok(());
        };
        let fd = fd as RawFd;
        let s = &mut self.slots[fd as usize];
        if s.recv == Some(target) {
            s.recv = None;
        } else if s.accept == Some(target) {
            s.accept = None;
        } else if s.poll.is_some_and(|p| p.0 == target) {
            s.poll = None;
        } else if let Some(p) = s.send.take() {
            self.update(fd);
            // What went out before the cancel is reported, as for a send that failed midway.
            let result = match p.done {
                0 => -libc::ECANCELED,
                n => i32::try_from(n).unwrap_or(i32::MAX),
            };
            match p.link {
                None => self.post(target, result, 0),
                Some(link) => self.finish_link(fd, target, result, false, link),
            }
            self.post(user_data, 0, 0);
            return Ok(());
        }
        self.post(target, -libc::ECANCELED, 0);
        self.post(user_data, 0, 0);
        self.update(fd);
        Ok(())
    }

    fn submit_and_wait(&mut self, want: usize, timeout: Option<Duration>) -> io::Result<Wait> {
        self.run_work();
        let have = self.ready.len();
        if have > 0 && have >= want && self.skipped < MAX_SKIPS {
            self.skipped += 1;
            return Ok(Wait::Ready);
        }
        self.skipped = 0;
        self.register_new();
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut wait = if have >= want || self.work_ready() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        loop {
            // SAFETY: `events` is a live buffer of EVENTS entries, which bounds maxevents.
            let n = unsafe {
                libc::epoll_wait(
                    self.epfd.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    EVENTS as i32,
                    timeout_ms(wait),
                )
            };
            if n < 0 {
                return match errno() {
                    libc::EINTR => Ok(Wait::Interrupted),
                    e => Err(io::Error::from_raw_os_error(e)),
                };
            }
            for i in 0..n as usize {
                let ev = self.events[i];
                self.dispatch(ev.u64, ev.events);
            }
            if self.ready.len() >= want {
                return Ok(Wait::Ready);
            }
            if n == 0 || wait == Some(Duration::ZERO) {
                return Ok(Wait::TimedOut);
            }
            // Events that completed nothing (readiness for a paused receive): wait on.
            wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        }
    }

    fn drain_completions(&mut self, out: &mut Vec<Completion>) -> usize {
        let n = self.ready.len();
        out.append(&mut self.ready);
        n
    }
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("epfd", &self.epfd.as_raw_fd())
            .field("pending", &self.ready.len())
            .finish_non_exhaustive()
    }
}
