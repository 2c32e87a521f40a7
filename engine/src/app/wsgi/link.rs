//! The one link between a request's handler task (on an I/O worker) and the Python thread that
//! runs it: one mutex, one condition variable for the Python side and the handler task's waker.
//!
//! Requests travel as an `Arc<Link>` through the pool's queue ([`super::pool`]); after that,
//! each direction is a queue behind the same lock:
//!
//! - in: the body, as the handler task reads it from the connection (at most [`BODY_LIMIT`]
//!   bytes buffered), and its end;
//! - out: [`Msg`]s, at most [`OUT_DEPTH`] queued. A non-streaming application's answer is one
//!   [`Msg::Whole`] (status, headers and body): one lock, one wake.
//!
//! A side only wakes the other when the other waits: the Python thread wakes the handler task
//! (its [`Waker`], which writes the worker's eventfd) when it queued a message the task waits
//! for, or made room in the body buffer the task waits on; the handler task signals the
//! condition variable only when a Python thread sleeps on it. When the handler task goes away
//! (answered, or the request was aborted) the link is closed: a Python thread still running the
//! request gets [`Gone`] at its next write and [`Disconnected`] at its next read past what was
//! received.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::environ::Vars;
use super::output::HeadState;

/// Body bytes buffered between the connection and the application before the handler task
/// stops reading the connection.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;
/// Messages queued towards the handler task before the Python thread waits.
pub(crate) const OUT_DEPTH: usize = 4;

/// The status and header fields of a response, as one text buffer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The status code.
    pub(crate) status: u16,
    /// Every name and value, one after the other.
    text: String,
    /// For each field: where its name ends and its value begins, where its value ends, and
    /// whether the value is ASCII (else Latin-1 chars, one byte each on the wire).
    fields: Vec<(u32, u32, bool)>,
}

impl Head {
    pub(crate) fn new(status: u16) -> Self {
        Head {
            status,
            text: String::new(),
            fields: Vec::new(),
        }
    }

    /// Adds a field (already checked).
    pub(crate) fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let mid = self.text.len() as u32;
        self.text.push_str(value);
        self.fields
            .push((mid, self.text.len() as u32, value.is_ascii()));
    }

    /// The fields: name, value, and whether the value is ASCII.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&str, &str, bool)> + '_ {
        let mut start = 0usize;
        self.fields.iter().map(move |&(mid, end, ascii)| {
            let (mid, end) = (mid as usize, end as usize);
            let f = (&self.text[start..mid], &self.text[mid..end], ascii);
            start = end;
            f
        })
    }

    /// The value of the application's own Content-Length, if it set a valid one.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.fields()
            .find(|(n, _, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v, _)| v.trim().parse().ok())
    }
}

/// What the Python thread sends to the handler task.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    /// Status and headers, before the first body chunk of a streamed answer.
    Head(Head),
    /// Body bytes of a streamed answer.
    Body(Vec<u8>),
    /// The streamed answer is complete.
    End,
    /// The whole answer at once: status, headers and body; nothing follows.
    Whole(Head, Vec<u8>),
    /// The application failed (the traceback is logged): 500, or a truncated body.
    Failed,
}

impl Msg {
    fn last(&self) -> bool {
        matches!(self, Msg::End | Msg::Whole(..) | Msg::Failed)
    }
}

/// The client went away: the handler task no longer listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client went away")]
pub(crate) struct Gone;

/// The client went away (or the request was aborted) before the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client went away while the request body was being read")]
pub(crate) struct Disconnected;

#[derive(Debug, Default)]
struct State {
    // In: the body.
    body: Vec<u8>,
    body_pos: usize,
    body_ended: bool,
    /// The connection failed before the body ended.
    body_lost: bool,
    // Out.
    out: VecDeque<Msg>,
    /// The last message was queued: the Python side is done with the request.
    finished: bool,
    /// The handler task went away.
    closed: bool,
    // Who waits.
    waker: Option<Waker>,
    task_wants_msg: bool,
    task_wants_room: bool,
    python_waits: bool,
}

impl State {
    fn pending(&self) -> &[u8] {
        &self.body[self.body_pos..]
    }

    /// The task's waker, if what it waits for just happened.
    fn take_wake(&mut self, msg: bool) -> Option<Waker> {
        let room = self.task_wants_room && (self.finished || self.pending().len() < BODY_LIMIT);
        if (msg && self.task_wants_msg) || room {
            self.task_wants_msg = false;
            self.task_wants_room = false;
            return self.waker.clone();
        }
        None
    }

    fn register(&mut self, cx: &Context<'_>) {
        match &self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
    }
}

/// One request, shared by its handler task and the Python thread that runs it.
#[derive(Debug)]
pub(crate) struct Link {
    /// The request variables (written once, before the link is shared).
    pub(crate) vars: Vars,
    state: Mutex<State>,
    /// The Python thread waits here for body bytes or for room in the out queue.
    python: Condvar,
    /// The response as start_response and the iteration see it (only Python touches it).
    head: Mutex<HeadState>,
    /// What `wsgi.input` took from the body buffer and has not read yet (only Python touches it).
    reader: Mutex<ReadBuf>,
}

impl Link {
    pub(crate) fn new(vars: Vars) -> Self {
        Link {
            vars,
            state: Mutex::new(State::default()),
            python: Condvar::new(),
            head: Mutex::new(HeadState::default()),
            reader: Mutex::new(ReadBuf::default()),
        }
    }

    /// The Python side's response state.
    pub(crate) fn head_state(&self) -> MutexGuard<'_, HeadState> {
        self.head.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails the request (nothing more will come; the task answers 500 or cuts the body).
    pub(crate) fn fail(&self) {
        let _ = self.try_send(Msg::Failed);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_python(&self, st: &mut State) {
        if st.python_waits {
            st.python_waits = false;
            self.python.notify_all();
        }
    }

    // --- The handler task's side (never blocks) ---

    /// The next message from the Python thread.
    pub(crate) fn poll_msg(&self, cx: &Context<'_>) -> Poll<Msg> {
        let mut st = self.lock();
        if let Some(m) = st.out.pop_front() {
            self.wake_python(&mut st);
            return Poll::Ready(m);
        }
        st.register(cx);
        st.task_wants_msg = true;
        Poll::Pending
    }

    /// Ready(true) when the body buffer has room for more; Ready(false) when no more body is
    /// wanted (the Python side is done with the request).
    pub(crate) fn poll_body_room(&self, cx: &Context<'_>) -> Poll<bool> {
        let mut st = self.lock();
        if st.finished || st.closed {
            return Poll::Ready(false);
        }
        if st.pending().len() < BODY_LIMIT {
            return Poll::Ready(true);
        }
        st.register(cx);
        st.task_wants_room = true;
        Poll::Pending
    }

    /// Appends body bytes.
    pub(crate) fn push_body(&self, data: &[u8]) {
        let mut st = self.lock();
        if st.body_pos > 0 && st.body_pos == st.body.len() {
            st.body.clear();
            st.body_pos = 0;
        } else if st.body_pos > 0 && st.body.len() + data.len() > st.body.capacity() {
            let pos = st.body_pos;
            st.body.drain(..pos);
            st.body_pos = 0;
        }
        st.body.extend_from_slice(data);
        self.wake_python(&mut st);
    }

    /// The body ended (`lost`: because the connection failed).
    pub(crate) fn end_body(&self, lost: bool) {
        let mut st = self.lock();
        st.body_ended = true;
        st.body_lost = lost;
        self.wake_python(&mut st);
    }

    /// The handler task goes away: whatever the Python thread does next for this request fails.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.waker = None;
        self.wake_python(&mut st);
    }

    // --- The Python thread's side ---

    /// True once the handler task went away.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Queues `msg` if there is room, without waiting. `Err(Some(msg))`: full, try
    /// [`send_wait`](Self::send_wait) with the GIL released.
    pub(crate) fn try_send(&self, msg: Msg) -> Result<(), Result<Msg, Gone>> {
        let waker = {
            let mut st = self.lock();
            if st.closed {
                return Err(Err(Gone));
            }
            if st.out.len() >= OUT_DEPTH && !msg.last() {
                return Err(Ok(msg));
            }
            st.finished |= msg.last();
            st.out.push_back(msg);
            st.take_wake(true)
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues `msg`, waiting while the queue is full. Blocks the thread: call it with the GIL
    /// released.
    pub(crate) fn send_wait(&self, msg: Msg) -> Result<(), Gone> {
        let mut st = self.lock();
        while !st.closed && st.out.len() >= OUT_DEPTH && !msg.last() {
            st.python_waits = true;
            st = self.python.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.closed {
            return Err(Gone);
        }
        st.finished |= msg.last();
        st.out.push_back(msg);
        let waker = st.take_wake(true);
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Takes body bytes once `decide` (given the unread bytes and whether the body ended) says
    /// how many, without waiting. `None`: it needs more, try [`read_wait`](Self::read_wait).
    pub(crate) fn try_read(
        &self,
        decide: &mut impl FnMut(&[u8], bool) -> Option<usize>,
    ) -> Option<Result<Vec<u8>, Disconnected>> {
        self.read(decide, false)
    }

    /// As [`try_read`](Self::try_read), waiting for body bytes. Blocks the thread: call it with
    /// the GIL released.
    pub(crate) fn read_wait(
        &self,
        decide: &mut impl FnMut(&[u8], bool) -> Option<usize>,
    ) -> Result<Vec<u8>, Disconnected> {
        self.read(decide, true).unwrap_or(Err(Disconnected))
    }

    /// The reader decides on its own bytes first; only when they are not enough does it move
    /// what the handler task buffered over (which makes room for the task to read on).
    fn read(
        &self,
        decide: &mut impl FnMut(&[u8], bool) -> Option<usize>,
        wait: bool,
    ) -> Option<Result<Vec<u8>, Disconnected>> {
        let mut r = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = decide(r.pending(), false) {
            return Some(Ok(r.take(n)));
        }
        let mut st = self.lock();
        loop {
            if st.body_pos < st.body.len() {
                let start = st.body_pos;
                r.absorb(&mut st.body, start);
                st.body_pos = 0;
                if let Some(w) = st.take_wake(false) {
                    w.wake();
                }
            }
            let ended = st.body_ended && !st.body_lost;
            if let Some(n) = decide(r.pending(), ended) {
                drop(st);
                return Some(Ok(r.take(n)));
            }
            if st.closed || st.body_lost {
                // Nothing more will come.
                return Some(Err(Disconnected));
            }
            if !wait {
                return None;
            }
            st.python_waits = true;
            st = self.python.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The body bytes the Python side took from the link and has not read yet.
#[derive(Debug, Default)]
struct ReadBuf {
    buf: Vec<u8>,
    pos: usize,
}

impl ReadBuf {
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Moves `from[start..]` to the end of the unread bytes, leaving `from` empty (swapping the
    /// buffers when nothing is unread, so no byte is copied).
    fn absorb(&mut self, from: &mut Vec<u8>, start: usize) {
        if self.pos == self.buf.len() && start == 0 {
            self.buf.clear();
            self.pos = 0;
            std::mem::swap(&mut self.buf, from);
            return;
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(&from[start..]);
        from.clear();
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.pending().len());
        if self.pos == 0 && n == self.buf.len() {
            return std::mem::take(&mut self.buf);
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        out
    }
}

/// What `read(size)` takes (`None`: everything to the end).
pub(crate) fn decide_read(size: Option<usize>) -> impl FnMut(&[u8], bool) -> Option<usize> {
    let want = size.unwrap_or(usize::MAX);
    move |pending, ended| (pending.len() >= want || ended).then(|| want.min(pending.len()))
}

/// What `readline(size)` takes: up to and including the next `\n`, at most `size` bytes.
pub(crate) fn decide_readline(size: Option<usize>) -> impl FnMut(&[u8], bool) -> Option<usize> {
    let limit = size.unwrap_or(usize::MAX);
    let mut scanned = 0;
    move |pending, ended| {
        let upto = pending.len().min(limit);
        if let Some(i) = pending[scanned.min(upto)..upto]
            .iter()
            .position(|&b| b == b'\n')
        {
            return Some(scanned.min(upto) + i + 1);
        }
        scanned = upto;
        (pending.len() >= limit || ended).then_some(upto)
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

    fn link() -> Link {
        Link::new(Vars::default())
    }

    fn read(l: &Link, size: Option<usize>) -> Result<Vec<u8>, Disconnected> {
        l.read_wait(&mut decide_read(size))
    }

    fn readline(l: &Link, size: Option<usize>) -> Result<Vec<u8>, Disconnected> {
        l.read_wait(&mut decide_readline(size))
    }

    #[test]
    fn read_sizes_span_chunks() {
        let l = link();
        for c in [&b"hel"[..], b"lo wo", b"rld"] {
            l.push_body(c);
        }
        l.end_body(false);
        assert_eq!(read(&l, Some(4)).unwrap(), b"hell");
        assert_eq!(read(&l, Some(0)).unwrap(), b"");
        assert_eq!(read(&l, None).unwrap(), b"o world");
        assert_eq!(read(&l, Some(10)).unwrap(), b"");
        assert_eq!(read(&l, None).unwrap(), b"");
    }

    #[test]
    fn readline_with_and_without_limits() {
        let l = link();
        l.push_body(b"ab\ncd");
        l.push_body(b"ef\n");
        l.push_body(b"gh");
        l.end_body(false);
        assert_eq!(readline(&l, None).unwrap(), b"ab\n");
        assert_eq!(readline(&l, Some(2)).unwrap(), b"cd");
        assert_eq!(readline(&l, None).unwrap(), b"ef\n");
        assert_eq!(readline(&l, None).unwrap(), b"gh");
        assert_eq!(readline(&l, None).unwrap(), b"");
    }

    #[test]
    fn a_reader_waits_for_the_handler_task() {
        let l = Arc::new(link());
        let reader = {
            let l = l.clone();
            std::thread::spawn(move || (readline(&l, None), read(&l, None)))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        l.push_body(b"first li");
        std::thread::sleep(std::time::Duration::from_millis(20));
        l.push_body(b"ne\nrest");
        l.end_body(false);
        let (line, rest) = reader.join().unwrap();
        assert_eq!(line.unwrap(), b"first line\n");
        assert_eq!(rest.unwrap(), b"rest");
    }

    #[test]
    fn a_lost_connection_or_closed_task_is_a_disconnect() {
        let l = link();
        l.push_body(b"abc");
        l.end_body(true);
        assert_eq!(read(&l, Some(3)).unwrap(), b"abc");
        assert_eq!(read(&l, Some(1)), Err(Disconnected));
        let l = link();
        l.push_body(b"abc");
        l.close();
        assert_eq!(read(&l, None), Err(Disconnected));
    }

    #[test]
    fn a_reader_of_everything_makes_room_for_the_task() {
        let l = link();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let cx = Context::from_waker(&waker);
        l.push_body(&vec![1; BODY_LIMIT]);
        assert!(l.poll_body_room(&cx).is_pending());
        // read() needs the end, so it takes what is there and waits: the task may read on.
        assert!(l.try_read(&mut decide_read(None)).is_none());
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(l.poll_body_room(&cx), Poll::Ready(true));
        l.push_body(b"xy");
        l.end_body(false);
        assert_eq!(read(&l, None).unwrap().len(), BODY_LIMIT + 2);
        assert_eq!(read(&l, None).unwrap(), b"");
    }

    #[test]
    fn the_task_is_woken_once_for_a_whole_answer_and_python_waits_for_room() {
        let l = Arc::new(link());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let cx = Context::from_waker(&waker);
        assert!(l.poll_msg(&cx).is_pending());
        assert_eq!(l.poll_body_room(&cx), Poll::Ready(true));
        l.try_send(Msg::Whole(Head::new(200), b"hi".to_vec()))
            .unwrap();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert!(matches!(l.poll_msg(&cx), Poll::Ready(Msg::Whole(..))));
        assert_eq!(l.poll_body_room(&cx), Poll::Ready(false));

        let l = Arc::new(link());
        for _ in 0..OUT_DEPTH {
            l.try_send(Msg::Body(b"x".to_vec())).unwrap();
        }
        let Err(Ok(msg)) = l.try_send(Msg::Body(b"y".to_vec())) else {
            panic!("the queue should be full")
        };
        let sender = {
            let l = l.clone();
            std::thread::spawn(move || l.send_wait(msg))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(matches!(l.poll_msg(&cx), Poll::Ready(Msg::Body(_))));
        sender.join().unwrap().unwrap();
        l.close();
        assert_eq!(l.try_send(Msg::End), Err(Err(Gone)));
    }

    #[test]
    fn head_fields_round_trip() {
        let mut h = Head::new(201);
        h.push("Content-Type", "text/plain");
        h.push("X-Caf", "caf\u{e9}");
        h.push("content-length", " 12 ");
        let f: Vec<_> = h.fields().collect();
        assert_eq!(
            f,
            [
                ("Content-Type", "text/plain", true),
                ("X-Caf", "caf\u{e9}", false),
                ("content-length", " 12 ", true)
            ]
        );
        assert_eq!(h.content_length(), Some(12));
    }
}
