//! The response side of a WSGI call, on the Python thread: `start_response`, the `write()`
//! callable, and turning the application's result into [`Msg`]s for the handler task.
//!
//! As PEP 3333 asks, `start_response` only records the status and headers; they go out with the
//! first non-empty body chunk (or at the end, for an empty body). Until then a second call with
//! `exc_info` replaces them; after that it re-raises the application's exception. A result that
//! is a list or a tuple of bytes (what most frameworks return) goes out as one message with the
//! status and headers ([`send_whole`]); anything else is streamed chunk by chunk.

use std::sync::Arc;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::link::{Gone, Head, Link, Msg};

/// The response state of a request, on the Python side.
#[derive(Debug, Default)]
pub(crate) struct HeadState {
    /// Set by start_response.
    pending: Option<Head>,
    sent: bool,
    /// The app's Content-Length: no more body bytes than that are sent.
    remaining: Option<u64>,
}

impl HeadState {
    /// The head to send now, if it has not gone out yet (marking it sent).
    fn take(&mut self) -> Result<Option<Head>, NoStatus> {
        if self.sent {
            return Ok(None);
        }
        let head = self.pending.take().ok_or(NoStatus)?;
        self.sent = true;
        self.remaining = head.content_length();
        Ok(Some(head))
    }

    /// How many of `len` body bytes may go out (the app's Content-Length caps them).
    fn allow(&mut self, len: usize) -> usize {
        let Some(left) = self.remaining.as_mut() else {
            return len;
        };
        let n = (*left).min(len as u64);
        *left -= n;
        if (n as usize) < len {
            tracing::warn!(
                target: "wsgi",
                dropped = len - n as usize,
                "the application wrote more than its Content-Length; extra bytes dropped"
            );
        }
        n as usize
    }
}

/// Body bytes before start_response was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the application sent body bytes before calling start_response")]
pub(crate) struct NoStatus;

fn gone() -> PyErr {
    PyOSError::new_err(Gone.to_string())
}

fn no_status() -> PyErr {
    PyRuntimeError::new_err(NoStatus.to_string())
}

/// Queues a message, releasing the GIL only if the queue is full.
fn send(py: Python<'_>, link: &Link, msg: Msg) -> PyResult<()> {
    match link.try_send(msg) {
        Ok(()) => Ok(()),
        Err(Err(Gone)) => Err(gone()),
        Err(Ok(msg)) => py.detach(|| link.send_wait(msg)).map_err(|_| gone()),
    }
}

/// Sends body bytes of a streamed answer (the head first if it has not gone out).
pub(crate) fn send_body(py: Python<'_>, link: &Link, data: &[u8]) -> PyResult<()> {
    let (head, n) = {
        let mut st = link.head_state();
        let head = st.take().map_err(|_| no_status())?;
        (head, st.allow(data.len()))
    };
    if let Some(head) = head {
        send(py, link, Msg::Head(head))?;
    }
    if n > 0 {
        send(py, link, Msg::Body(data[..n].to_vec()))?;
    }
    Ok(())
}

/// Sends a whole answer whose body is `items` (a list or tuple that must hold bytes) as one
/// message. `Ok(false)`: the headers already went out (through `write()`), stream instead.
pub(crate) fn send_whole(
    py: Python<'_>,
    link: &Link,
    items: &[Bound<'_, PyAny>],
) -> PyResult<bool> {
    let mut chunks = Vec::with_capacity(items.len());
    for item in items {
        chunks.push(as_bytes(item)?.as_bytes());
    }
    let (head, n) = {
        let mut st = link.head_state();
        if st.sent {
            return Ok(false);
        }
        let head = st.take().map_err(|_| no_status())?.unwrap_or_default();
        let total = chunks.iter().map(|c| c.len()).sum();
        (head, st.allow(total))
    };
    let mut body = Vec::with_capacity(n);
    for c in chunks {
        let room = n - body.len();
        body.extend_from_slice(&c[..c.len().min(room)]);
    }
    send(py, link, Msg::Whole(head, body))?;
    Ok(true)
}

/// Ends a streamed answer: the head with an empty body if nothing went out yet, else the end.
pub(crate) fn finish(py: Python<'_>, link: &Link) -> PyResult<()> {
    let head = link.head_state().take().map_err(|_| no_status())?;
    match head {
        Some(head) => send(py, link, Msg::Whole(head, Vec::new())),
        None => send(py, link, Msg::End),
    }
}

/// The item as bytes, or the TypeError PEP 3333 calls for.
pub(crate) fn as_bytes<'a, 'py>(item: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyBytes>> {
    item.cast::<PyBytes>()
        .map_err(|_| PyTypeError::new_err("the application yielded a non-bytes value"))
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
    let code = b[..3]
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
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
    let bad_byte = |b: u8| b == b'\r' || b == b'\n' || b == 0;
    let bad = if value.is_ascii() {
        value.bytes().any(bad_byte)
    } else {
        value
            .chars()
            .any(|c| c as u32 > 0xff || u8::try_from(c).is_ok_and(bad_byte))
    };
    if bad {
        return Err(format!("invalid value for header {name}: {value:?}"));
    }
    if name.len() <= 19 && HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(format!(
            "hop-by-hop header {name} is not allowed (PEP 3333)"
        ));
    }
    Ok(())
}

/// Reads `headers` (an iterable of `(str, str)`) into a [`Head`].
fn read_headers(status: u16, headers: &Bound<'_, PyAny>) -> PyResult<Head> {
    let mut head = Head::new(status);
    let mut add = |item: &Bound<'_, PyAny>| -> PyResult<()> {
        let bad = || PyTypeError::new_err("headers must be (str, str) tuples");
        let Ok(pair) = item.cast::<PyTuple>() else {
            // Not a tuple: any pair of str will do.
            let (name, value): (String, String) = item.extract().map_err(|_| bad())?;
            check_header(&name, &value).map_err(PyValueError::new_err)?;
            head.push(&name, &value);
            return Ok(());
        };
        if pair.len() != 2 {
            return Err(bad());
        }
        let (name, value) = (pair.get_borrowed_item(0)?, pair.get_borrowed_item(1)?);
        let (name, value) = (
            name.cast::<PyString>().map_err(|_| bad())?,
            value.cast::<PyString>().map_err(|_| bad())?,
        );
        let (name, value) = (name.to_str()?, value.to_str()?);
        check_header(name, value).map_err(PyValueError::new_err)?;
        head.push(name, value);
        Ok(())
    };
    if let Ok(list) = headers.cast::<PyList>() {
        for item in list.iter() {
            add(&item)?;
        }
    } else {
        for item in headers.try_iter()? {
            add(&item?)?;
        }
    }
    Ok(head)
}

/// The `start_response` callable.
#[pyclass(frozen, module = "ringfast")]
pub(crate) struct StartResponse {
    link: Arc<Link>,
}

impl StartResponse {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        StartResponse { link }
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
        {
            let st = self.link.head_state();
            if let Some(info) = exc_info {
                if st.sent {
                    // PEP 3333: re-raise the exception the application passed.
                    let value = info.cast::<PyTuple>()?.get_item(1)?;
                    return Err(PyErr::from_value(value));
                }
            } else if st.pending.is_some() || st.sent {
                return Err(PyRuntimeError::new_err(
                    "start_response was already called (pass exc_info to replace the headers)",
                ));
            }
        }
        let status = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("status must be a str"))?
            .to_str()?;
        let code = parse_status(status).map_err(PyValueError::new_err)?;
        let head = read_headers(code, headers)?;
        self.link.head_state().pending = Some(head);
        Ok(Write {
            link: self.link.clone(),
        })
    }
}

/// The `write()` callable start_response returns.
#[pyclass(frozen, module = "ringfast")]
pub(crate) struct Write {
    link: Arc<Link>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() takes bytes"))?;
        if bytes.as_bytes().is_empty() {
            return Ok(());
        }
        send_body(py, &self.link, bytes.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::wsgi::environ::Vars;
    use std::task::{Context, Poll, Waker};

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
        assert!(check_header("X-A", "\u{e9}\nb").is_err());
        assert!(check_header("Bad Name", "x").is_err());
        assert!(check_header("Transfer-Encoding", "chunked").is_err());
    }

    fn next(link: &Link) -> Option<Msg> {
        let cx = Context::from_waker(Waker::noop());
        match link.poll_msg(&cx) {
            Poll::Ready(m) => Some(m),
            Poll::Pending => None,
        }
    }

    #[test]
    fn body_waits_for_status_and_respects_content_length() {
        Python::initialize();
        Python::attach(|py| {
            let link = Link::new(Vars::default());
            assert!(send_body(py, &link, b"x").is_err());
            let mut head = Head::new(200);
            head.push("Content-Length", "3");
            link.head_state().pending = Some(head.clone());
            send_body(py, &link, b"ab").unwrap();
            send_body(py, &link, b"cd").unwrap();
            send_body(py, &link, b"ef").unwrap();
            finish(py, &link).unwrap();
            assert_eq!(next(&link), Some(Msg::Head(head)));
            assert_eq!(next(&link), Some(Msg::Body(b"ab".to_vec())));
            assert_eq!(next(&link), Some(Msg::Body(b"c".to_vec())));
            assert_eq!(next(&link), Some(Msg::End));
            assert_eq!(next(&link), None);
            // The client went away: the next write raises.
            let link = Link::new(Vars::default());
            link.head_state().pending = Some(Head::new(200));
            link.close();
            assert!(send_body(py, &link, b"x").is_err());
        });
    }

    #[test]
    fn a_list_goes_out_whole_and_trimmed() {
        Python::initialize();
        Python::attach(|py| {
            let link = Link::new(Vars::default());
            let mut head = Head::new(200);
            head.push("Content-Length", "4");
            link.head_state().pending = Some(head.clone());
            let items = [
                PyBytes::new(py, b"ab").into_any(),
                PyBytes::new(py, b"").into_any(),
                PyBytes::new(py, b"cde").into_any(),
            ];
            assert!(send_whole(py, &link, &items).unwrap());
            assert_eq!(next(&link), Some(Msg::Whole(head, b"abcd".to_vec())));
            let link = Link::new(Vars::default());
            link.head_state().pending = Some(Head::new(200));
            let bad = [PyString::new(py, "text").into_any()];
            assert!(send_whole(py, &link, &bad).is_err());
            assert_eq!(next(&link), None);
        });
    }
}
