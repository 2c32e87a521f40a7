//! The state one request shares between its connection driver and its handler task.
//!
//! Everything here is single-threaded (`Rc`, `Cell`, `RefCell`): a request lives on the worker
//! that accepted its connection. The driver pushes body bytes in and the handler takes them out
//! through a bounded buffer; the handler encodes its response straight into the connection's
//! [`ConnOut`] buffer, which the connection's writer task sends.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::notify::LocalNotify;

use crate::proto::ajp;
use crate::proto::fcgi::{self, protocol_status, rtype, Params, MAX_CONTENT_LEN};
use crate::proto::Headers;

/// A connection's outgoing bytes, shared by every request on it and drained by its writer task.
#[derive(Debug)]
pub(crate) struct ConnOut {
    buf: RefCell<Vec<u8>>,
    /// Wakes the writer task (one waiter; a permit is stored if it is busy).
    pub(crate) writer_wake: LocalNotify,
    /// Wakes writers waiting for the buffer to drain below the high-water mark.
    drained: LocalNotify,
    closed: Cell<bool>,
    closing: Cell<bool>,
    high_water: usize,
}

impl ConnOut {
    pub(crate) fn new(high_water: usize) -> Self {
        Self::with_buffer(high_water, Vec::with_capacity(16 * 1024))
    }

    /// A connection's output around `buf` (the native loop lends buffers from a worker pool
    /// while a connection is busy and takes them back while it is idle).
    pub(crate) fn with_buffer(high_water: usize, buf: Vec<u8>) -> Self {
        ConnOut {
            buf: RefCell::new(buf),
            writer_wake: LocalNotify::new(),
            drained: LocalNotify::new(),
            closed: Cell::new(false),
            closing: Cell::new(false),
            high_water,
        }
    }

    /// Appends with `f` and wakes the writer. Does nothing once the connection is closed.
    pub(crate) fn push(&self, f: impl FnOnce(&mut Vec<u8>)) {
        if self.closed.get() {
            return;
        }
        f(&mut self.buf.borrow_mut());
        self.writer_wake.notify_one();
    }

    /// Waits until the buffer is below the high-water mark; fails once the connection is closed.
    pub(crate) async fn writable(&self) -> Result<(), Closed> {
        loop {
            if self.closed.get() {
                return Err(Closed);
            }
            if self.buf.borrow().len() < self.high_water {
                return Ok(());
            }
            let drained = self.drained.notified();
            drained.await;
        }
    }

    /// Swaps the pending bytes into `spare` (which must be empty) for the writer to send.
    pub(crate) fn take(&self, spare: &mut Vec<u8>) {
        std::mem::swap(&mut *self.buf.borrow_mut(), spare);
    }

    /// The pending bytes, for a caller that encodes into them directly (the native loop hands
    /// this to a protocol state machine). Must not be held across a handler poll.
    pub(crate) fn buf_mut(&self) -> std::cell::RefMut<'_, Vec<u8>> {
        self.buf.borrow_mut()
    }

    /// Makes a closed buffer usable again for a new connection, keeping its allocation.
    pub(crate) fn reopen(&self) {
        self.buf.borrow_mut().clear();
        self.closed.set(false);
        self.closing.set(false);
    }

    /// The capacity of the pending-bytes buffer (0 when the native loop took it back).
    pub(crate) fn capacity(&self) -> usize {
        self.buf.borrow().capacity()
    }

    /// True when nothing is waiting to be sent.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.borrow().is_empty()
    }

    /// Called by the writer after a send completed.
    pub(crate) fn sent(&self) {
        self.drained.notify_waiters();
    }

    /// Marks the connection closed: pending and future writes are dropped and waiters fail.
    pub(crate) fn close(&self) {
        self.closed.set(true);
        self.buf.borrow_mut().clear();
        self.drained.notify_waiters();
        self.writer_wake.notify_one();
    }

    /// Asks the writer to send what is pending, then half-close the connection (FIN, not RST).
    pub(crate) fn begin_closing(&self) {
        self.closing.set(true);
        self.writer_wake.notify_one();
    }

    /// True once [`begin_closing`](ConnOut::begin_closing) was called.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// True once [`close`](ConnOut::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }
}

/// The connection was closed: the peer went away or the request was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// How a response is framed on its protocol's wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// FastCGI STDOUT records for request `id`, then END_REQUEST.
    Fcgi {
        /// The request id.
        id: u16,
    },
    /// SCGI: a CGI header block and the raw body; the connection closes after.
    Scgi,
    /// AJP13 SEND_HEADERS, SEND_BODY_CHUNK packets, END_RESPONSE with reuse.
    Ajp {
        /// The packet size agreed with the web server.
        size: ajp::PacketSize,
    },
}

impl Framing {
    /// Encodes the status and header fields, as the protocol frames them, followed by the first
    /// body bytes.
    pub(crate) fn encode_head(
        &self,
        out: &mut Vec<u8>,
        status: u16,
        headers: &Headers,
        body: &[u8],
    ) {
        let reason = super::reason_phrase(status);
        match *self {
            Framing::Fcgi { id } => {
                fcgi::encode_response_head(out, id, status, reason, headers, body)
            }
            Framing::Scgi => {
                crate::proto::cgi_status_line(out, status, reason);
                headers.write_cgi(out);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(body);
            }
            Framing::Ajp { size } => {
                if ajp::encode_response_head(out, size, status, reason, headers, body).is_err() {
                    // Response validated the fields, so only their size can fail here.
                    tracing::warn!(
                        status,
                        "response headers do not fit one AJP packet; sent 500"
                    );
                }
            }
        }
    }

    /// Encodes body bytes.
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>, body: &[u8]) {
        match *self {
            Framing::Fcgi { id } => fcgi::encode_stream(out, rtype::STDOUT, id, body),
            Framing::Scgi => out.extend_from_slice(body),
            Framing::Ajp { size } => ajp::encode_send_body(body, size, out),
        }
    }

    /// Encodes the end of the response.
    pub(crate) fn encode_end(&self, out: &mut Vec<u8>) {
        match *self {
            Framing::Fcgi { id } => {
                fcgi::encode_record(out, rtype::STDOUT, id, &[]);
                fcgi::encode_end_request(out, id, 0, protocol_status::REQUEST_COMPLETE);
            }
            Framing::Scgi => {}
            Framing::Ajp { .. } => ajp::encode_end_response(true, out),
        }
    }
}

/// The request body as it flows from the driver to the handler.
#[derive(Debug, Default)]
struct BodyPipe {
    data: Vec<u8>,
    read_pos: usize,
    ended: bool,
}

impl BodyPipe {
    /// Bytes written and not read yet.
    fn pending(&self) -> usize {
        self.data.len() - self.read_pos
    }

    /// Appends `data`, first moving the unread bytes to the front if appending would grow the
    /// buffer past `limit` (so it only grows when the unread bytes themselves need the room).
    fn append(&mut self, data: &[u8], limit: usize) {
        if self.read_pos > 0 && self.data.len() + data.len() > limit {
            let (start, pending) = (self.read_pos, self.pending());
            self.data.copy_within(start.., 0);
            self.data.truncate(pending);
            self.read_pos = 0;
        }
        self.data.extend_from_slice(data);
    }
}

/// One request's shared state. The driver keeps one `Rc` in its table of active requests; the
/// handler's [`Request`](super::Request) and [`Response`](super::Response) hold the others.
/// A connection reuses exchanges (and their buffers) once every holder has let go.
#[derive(Debug)]
pub(crate) struct Exchange {
    framing: Cell<Framing>,
    out: RefCell<Rc<ConnOut>>,
    params: RefCell<Params>,
    head: RefCell<Headers>,
    body: RefCell<BodyPipe>,
    body_limit: usize,
    body_ready: LocalNotify,
    body_space: LocalNotify,
    done: Cell<bool>,
    /// Notified (one permit) when the handler finished; owned by the connection.
    conn_events: RefCell<Rc<LocalNotify>>,
}

impl Exchange {
    pub(crate) fn new(
        out: Rc<ConnOut>,
        conn_events: Rc<LocalNotify>,
        framing: Framing,
        body_limit: usize,
    ) -> Self {
        Exchange {
            framing: Cell::new(framing),
            out: RefCell::new(out),
            params: RefCell::new(Params::new()),
            head: RefCell::new(Headers::new()),
            body: RefCell::new(BodyPipe::default()),
            body_limit: body_limit.max(MAX_CONTENT_LEN),
            body_ready: LocalNotify::new(),
            body_space: LocalNotify::new(),
            done: Cell::new(false),
            conn_events: RefCell::new(conn_events),
        }
    }

    /// The output of the connection this exchange belongs to.
    pub(crate) fn out(&self) -> std::cell::Ref<'_, Rc<ConnOut>> {
        self.out.borrow()
    }

    /// Moves a finished exchange to another connection (the native loop pools exchanges per
    /// worker, so an idle connection keeps none).
    pub(crate) fn rebind(&self, out: &Rc<ConnOut>, conn_events: &Rc<LocalNotify>) {
        if !Rc::ptr_eq(&self.out.borrow(), out) {
            *self.out.borrow_mut() = out.clone();
        }
        if !Rc::ptr_eq(&self.conn_events.borrow(), conn_events) {
            *self.conn_events.borrow_mut() = conn_events.clone();
        }
    }

    /// Makes a finished exchange ready for a new request, keeping its buffers.
    pub(crate) fn reset(&self, framing: Framing) {
        self.framing.set(framing);
        self.params.borrow_mut().clear();
        self.head.borrow_mut().clear();
        let mut body = self.body.borrow_mut();
        body.data.clear();
        body.read_pos = 0;
        body.ended = false;
        self.done.set(false);
    }

    pub(crate) fn framing(&self) -> Framing {
        self.framing.get()
    }

    /// The request's parameters, while the driver accumulates them.
    pub(crate) fn params_mut(&self) -> std::cell::RefMut<'_, Params> {
        self.params.borrow_mut()
    }

    /// Moves the parameters out for the handler's [`Request`](super::Request).
    pub(crate) fn take_params(&self) -> Params {
        std::mem::take(&mut *self.params.borrow_mut())
    }

    /// Gives the parameters' buffers back for reuse.
    pub(crate) fn return_params(&self, mut params: Params) {
        params.clear();
        *self.params.borrow_mut() = params;
    }

    /// The response's header fields, while the handler adds them.
    pub(crate) fn head_mut(&self) -> std::cell::RefMut<'_, Headers> {
        self.head.borrow_mut()
    }

    /// True once the response ended (or the request was refused): later records for this
    /// request are ignored.
    pub(crate) fn is_done(&self) -> bool {
        self.done.get()
    }

    /// Marks the response ended and tells the connection.
    pub(crate) fn mark_done(&self) {
        if !self.done.replace(true) {
            self.body_space.notify_waiters();
            self.conn_events.borrow().notify_one();
        }
    }

    /// Driver side: appends body bytes, waiting while the buffer is full (backpressure). Bytes
    /// for a request whose handler already finished are dropped.
    pub(crate) async fn push_body(&self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.done.get() {
                return;
            }
            let copied = {
                let mut body = self.body.borrow_mut();
                let n = (self.body_limit - body.pending()).min(data.len());
                if n > 0 {
                    body.append(&data[..n], self.body_limit);
                }
                n
            };
            if copied > 0 {
                data = &data[copied..];
                self.body_ready.notify_one();
                continue;
            }
            let space = self.body_space.notified();
            space.await;
        }
    }

    /// Driver side, without waiting: appends all of `data` (the buffer may pass its limit by
    /// this one piece) and returns true while there is room for more. The native loop stops
    /// reading the connection while it returns false: that is its backpressure.
    pub(crate) fn push_body_now(&self, data: &[u8]) -> bool {
        if self.done.get() {
            return true;
        }
        let mut body = self.body.borrow_mut();
        body.append(data, self.body_limit);
        let room = body.pending() < self.body_limit;
        drop(body);
        self.body_ready.notify_one();
        room
    }

    /// True while the body buffer has room (the handler has read enough of it).
    pub(crate) fn body_has_room(&self) -> bool {
        self.done.get() || self.body.borrow().pending() < self.body_limit
    }

    /// Driver side: the body ended (empty STDIN record).
    pub(crate) fn end_body(&self) {
        self.body.borrow_mut().ended = true;
        self.body_ready.notify_one();
    }

    /// Handler side: copies body bytes into `buf`; `Ok(0)` at the end of the body.
    pub(crate) async fn read_body(&self, buf: &mut [u8]) -> Result<usize, Closed> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut body = self.body.borrow_mut();
                let pending = body.data.len() - body.read_pos;
                if pending > 0 {
                    let n = pending.min(buf.len());
                    let start = body.read_pos;
                    buf[..n].copy_from_slice(&body.data[start..start + n]);
                    body.read_pos += n;
                    drop(body);
                    self.body_space.notify_waiters();
                    return Ok(n);
                }
                if body.ended {
                    return Ok(0);
                }
            }
            if self.out.borrow().is_closed() {
                return Err(Closed);
            }
            let ready = self.body_ready.notified();
            ready.await;
        }
    }

    /// Wakes a handler blocked on the body so it sees the connection closed.
    pub(crate) fn wake_reader(&self) {
        self.body_ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_and_small_body_share_one_record() {
        let mut out = Vec::new();
        let headers: Headers = [("Content-Type", "text/plain")].into_iter().collect();
        Framing::Fcgi { id: 1 }.encode_head(&mut out, 200, &headers, b"Hello, World!");
        let fcgi::Decode::Complete(rec, used) = fcgi::decode_record(&out).unwrap() else {
            panic!()
        };
        assert_eq!(used, out.len());
        assert_eq!(
            rec.content,
            b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nHello, World!"
        );
    }

    #[test]
    fn end_is_empty_stdout_then_end_request() {
        let mut out = Vec::new();
        Framing::Fcgi { id: 7 }.encode_end(&mut out);
        assert_eq!(
            out,
            [1, 6, 0, 7, 0, 0, 0, 0, 1, 3, 0, 7, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }
}
