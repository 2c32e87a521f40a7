//! The response side of a WSGI call: `start_response`, the `write()` callable, and the events
//! that carry status, headers and body chunks to the handler task through a bounded channel.
//!
//! As PEP 3333 asks, `start_response` only records the status and headers; they go out with the
//! first non-empty body chunk (or at the end, for an empty body). Until then a second call with
//! `exc_info` replaces them; after that it re-raises the application's exception.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use tokio::sync::mpsc;

/// Events a channel holds before the Python thread waits for the connection.
pub(crate) const EVENT_DEPTH: usize = 4;

/// What the Python thread sends to the handler task.
#[derive(Debug)]
pub(crate) enum Event {
    /// Status and headers (sent once, before the first body chunk).
    Head {
        /// The status code.
        status: u16,
        /// Header names and values.
        headers: Vec<(String, String)>,
    },
    /// Body bytes.
    Body(Vec<u8>),
    /// The response is complete.
    Done,
    /// The application failed (the traceback is logged): 500, or a truncated body.
    Failed,
}

/// The client went away: the handler task no longer listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client went away")]
pub(crate) struct Gone;

#[derive(Debug, Default)]
struct HeadState {
    /// Set by start_response.
    pending: Option<(u16, Vec<(String, String)>)>,
    sent: bool,
    /// The app's Content-Length: no more body bytes than that are sent.
    remaining: Option<u64>,
}

/// One response: the channel to the handler task and the header state, shared by
/// `start_response`, `write` and the iteration of the app's result.
#[derive(Debug)]
pub(crate) struct Output {
    tx: mpsc::Sender<Event>,
    head: Mutex<HeadState>,
}

impl Output {
    pub(crate) fn new(tx: mpsc::Sender<Event>) -> Arc<Self> {
        Arc::new(Output {
            tx,
            head: Mutex::new(HeadState::default()),
        })
    }

    /// True once the handler task stopped listening.
    pub(crate) fn is_gone(&self) -> bool {
        self.tx.is_closed()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HeadState> {
        self.head.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True once the headers went out.
    pub(crate) fn headers_sent(&self) -> bool {
        self.state().sent
    }

    /// Sends an event, waiting while the channel is full. Blocks the thread: call it with the
    /// GIL released.
    pub(crate) fn send(&self, ev: Event) -> Result<(), Gone> {
        self.tx.blocking_send(ev).map_err(|_| Gone)
    }

    /// Sends the headers if they have not gone out yet. Fails when start_response was not called.
    pub(crate) fn send_head(&self) -> Result<Result<(), Gone>, NoStatus> {
        let head = {
            let mut st = self.state();
            if st.sent {
                return Ok(Ok(()));
            }
            let Some((status, headers)) = st.pending.clone() else {
                return Err(NoStatus);
            };
            st.sent = true;
            st.remaining = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok());
            Event::Head { status, headers }
        };
        Ok(self.send(head))
    }

    /// Sends body bytes (headers first); bytes past the app's Content-Length are dropped.
    pub(crate) fn send_body(&self, data: &[u8]) -> Result<Result<(), Gone>, NoStatus> {
        if let Err(e) = self.send_head()? {
            return Ok(Err(e));
        }
        let n = {
            let mut st = self.state();
            match st.remaining.as_mut() {
                Some(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    if (n as usize) < data.len() {
                        tracing::warn!(
                            target: "wsgi",
                            dropped = data.len() - n as usize,
                            "the application wrote more than its Content-Length; extra bytes dropped"
                        );
                    }
                    n as usize
                }
                None => data.len(),
            }
        };
        if n == 0 {
            return Ok(Ok(()));
        }
        Ok(self.send(Event::Body(data[..n].to_vec())))
    }
}

/// Body bytes before start_response was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the application sent body bytes before calling start_response")]
pub(crate) struct NoStatus;

/// Python's view of [`Output::send_body`].
pub(crate) fn send_body_py(py: Python<'_>, out: &Output, data: &[u8]) -> PyResult<()> {
    match py.detach(|| out.send_body(data)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Gone)) => Err(PyOSError::new_err(Gone.to_string())),
        Err(NoStatus) => Err(PyRuntimeError::new_err(NoStatus.to_string())),
    }
}

/// Response headers an application must not send (PEP 3333: hop-by-hop).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// Parses `"200 OK"`: three digits, then nothing or a space and the reason.
pub(crate) fn parse_status(s: &str) -> Result<u16, String> {
    let b = s.as_bytes();
    let ok = b.len() >= 3
        && b[..3].iter().all(u8::is_ascii_digit)
        && (b.len() == 3 || b[3] == b' ')
        && !b.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0);
    if !ok {
        return Err(format!("invalid status {s:?}: expected \"NNN Reason\""));
    }
    let code: u16 = s[..3]
        .parse()
        .map_err(|_| format!("invalid status {s:?}"))?;
    if code < 100 {
        return Err(format!("invalid status code {code}"));
    }
    Ok(code)
}

/// Checks one response header: a token name, a value without control line breaks, Latin-1,
/// and not hop-by-hop.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(format!("invalid header name {name:?}"));
    }
    if value
        .chars()
        .any(|c| c == '\r' || c == '\n' || c == '\0' || c as u32 > 0xff)
    {
        return Err(format!("invalid value for header {name}: {value:?}"));
    }
    if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(format!(
            "hop-by-hop header {name} is not allowed (PEP 3333)"
        ));
    }
    Ok(())
}

/// The `start_response` callable.
#[pyclass(frozen, module = "ringfast")]
pub(crate) struct StartResponse {
    out: Arc<Output>,
}

impl StartResponse {
    pub(crate) fn new(out: Arc<Output>) -> Self {
        StartResponse { out }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        &self,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        if let Some(info) = exc_info {
            if self.out.headers_sent() {
                // PEP 3333: re-raise the exception the application passed.
                let value = info.cast::<PyTuple>()?.get_item(1)?;
                return Err(PyErr::from_value(value));
            }
        } else if self.out.state().pending.is_some() {
            return Err(PyRuntimeError::new_err(
                "start_response was already called (pass exc_info to replace the headers)",
            ));
        }
        let status: String = status
            .extract()
            .map_err(|_| PyTypeError::new_err("status must be a str"))?;
        let code = parse_status(&status).map_err(PyValueError::new_err)?;
        let mut list = Vec::new();
        for item in headers.try_iter()? {
            let (name, value): (String, String) = item?
                .extract()
                .map_err(|_| PyTypeError::new_err("headers must be (str, str) tuples"))?;
            check_header(&name, &value).map_err(PyValueError::new_err)?;
            list.push((name, value));
        }
        self.out.state().pending = Some((code, list));
        Ok(Write {
            out: self.out.clone(),
        })
    }
}

/// The `write()` callable start_response returns.
#[pyclass(frozen, module = "ringfast")]
pub(crate) struct Write {
    out: Arc<Output>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() takes bytes"))?;
        send_body_py(py, &self.out, bytes.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(parse_status("200 OK"), Ok(200));
        assert_eq!(parse_status("404"), Ok(404));
        assert_eq!(parse_status("599 Whatever it is"), Ok(599));
        assert!(parse_status("20 OK").is_err());
        assert!(parse_status("200OK").is_err());
        assert!(parse_status("099 x").is_err());
        assert!(parse_status("200 OK\r\nX: y").is_err());
    }

    #[test]
    fn headers() {
        assert!(check_header("Content-Type", "text/html; charset=utf-8").is_ok());
        assert!(check_header("X-Caf\u{e9}", "x").is_err());
        assert!(check_header("X-A", "caf\u{e9}").is_ok());
        assert!(check_header("X-A", "\u{20ac}").is_err());
        assert!(check_header("X-A", "a\r\nb: c").is_err());
        assert!(check_header("Bad Name", "x").is_err());
        assert!(check_header("Transfer-Encoding", "chunked").is_err());
    }

    #[test]
    fn body_waits_for_status_and_respects_content_length() {
        let (tx, mut rx) = mpsc::channel(8);
        let out = Output::new(tx);
        assert_eq!(out.send_body(b"x"), Err(NoStatus));
        out.state().pending = Some((200, vec![("Content-Length".into(), "3".into())]));
        assert_eq!(out.send_body(b"ab"), Ok(Ok(())));
        assert_eq!(out.send_body(b"cd"), Ok(Ok(())));
        assert_eq!(out.send_body(b"ef"), Ok(Ok(())));
        assert!(matches!(rx.try_recv(), Ok(Event::Head { status: 200, .. })));
        assert!(matches!(rx.try_recv(), Ok(Event::Body(b)) if b == b"ab"));
        assert!(matches!(rx.try_recv(), Ok(Event::Body(b)) if b == b"c"));
        assert!(rx.try_recv().is_err());
        drop(rx);
        assert!(out.is_gone());
    }
}
