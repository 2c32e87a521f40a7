//! `wsgi.input`: the request body as a Python file-like object, pulled chunk by chunk from the
//! handler task through a bounded channel (never more than [`BODY_CHUNKS`] chunks of at most
//! [`CHUNK`] bytes in flight, plus what the caller asked to read).
//!
//! [`BodyReader`] is the Rust side (read, read(n), readline), tested without Python; [`Input`]
//! is the Python object, which releases the GIL while it waits for body bytes.

use std::sync::Mutex;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tokio::sync::mpsc;

/// Largest body chunk the handler task sends at once.
pub(crate) const CHUNK: usize = 64 * 1024;
/// Chunks the body channel holds before the handler task waits.
pub(crate) const BODY_CHUNKS: usize = 2;

/// What the handler task sends down the body channel.
#[derive(Debug)]
pub(crate) enum BodyMsg {
    /// Body bytes (never empty).
    Data(Vec<u8>),
    /// The body ended.
    End,
}

/// The client went away (or the request was aborted) before the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client went away while the request body was being read")]
pub(crate) struct Disconnected;

/// The receiving end of the body channel, with what was received but not yet read.
#[derive(Debug)]
pub(crate) struct BodyReader {
    rx: mpsc::Receiver<BodyMsg>,
    buf: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl BodyReader {
    pub(crate) fn new(rx: mpsc::Receiver<BodyMsg>) -> Self {
        BodyReader {
            rx,
            buf: Vec::new(),
            pos: 0,
            ended: false,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Waits for the next chunk; `Ok(false)` at the end of the body. Blocks the thread.
    fn fill(&mut self) -> Result<bool, Disconnected> {
        if self.ended {
            return Ok(false);
        }
        match self.rx.blocking_recv() {
            Some(BodyMsg::Data(d)) => {
                if self.pos == self.buf.len() {
                    self.buf = d;
                    self.pos = 0;
                } else {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                    self.buf.extend_from_slice(&d);
                }
                Ok(true)
            }
            Some(BodyMsg::End) => {
                self.ended = true;
                Ok(false)
            }
            None => Err(Disconnected),
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.pending().len());
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        out
    }

    /// `read(size)`: up to `size` bytes (all that is left when `None`), fewer only at the end.
    pub(crate) fn read(&mut self, size: Option<usize>) -> Result<Vec<u8>, Disconnected> {
        let want = size.unwrap_or(usize::MAX);
        while self.pending().len() < want && self.fill()? {}
        Ok(self.take(want))
    }

    /// `readline(size)`: up to and including the next `\n`, at most `size` bytes.
    pub(crate) fn readline(&mut self, size: Option<usize>) -> Result<Vec<u8>, Disconnected> {
        let limit = size.unwrap_or(usize::MAX);
        let mut scanned = 0;
        loop {
            let pending = self.pending();
            if let Some(i) = pending[scanned..].iter().position(|&b| b == b'\n') {
                return Ok(self.take((scanned + i + 1).min(limit)));
            }
            scanned = pending.len();
            if scanned >= limit || !self.fill()? {
                return Ok(self.take(limit));
            }
        }
    }
}

/// The `wsgi.input` object.
#[pyclass(frozen, module = "ringfast")]
pub(crate) struct Input {
    reader: Mutex<BodyReader>,
}

impl Input {
    pub(crate) fn new(rx: mpsc::Receiver<BodyMsg>) -> Self {
        Input {
            reader: Mutex::new(BodyReader::new(rx)),
        }
    }

    /// Runs `f` on the reader with the GIL released.
    fn with_reader<'py>(
        &self,
        py: Python<'py>,
        f: impl FnOnce(&mut BodyReader) -> Result<Vec<u8>, Disconnected> + Send,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let got = py.detach(|| {
            let mut r = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut r)
        });
        match got {
            Ok(bytes) => Ok(PyBytes::new(py, &bytes)),
            Err(e) => Err(PyOSError::new_err(e.to_string())),
        }
    }
}

/// A negative or missing size means "no limit", as for Python files.
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let size = limit(size);
        self.with_reader(py, move |r| r.read(size))
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let size = limit(size);
        self.with_reader(py, move |r| r.readline(size))
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.with_reader(py, |r| r.readline(None))?;
            let n = line.as_bytes().len();
            if n == 0 {
                return Ok(lines);
            }
            lines.append(line)?;
            total += n;
            if hint.is_some_and(|h| total >= h) {
                return Ok(lines);
            }
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.with_reader(py, |r| r.readline(None))?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(chunks: &[&[u8]], end: bool) -> BodyReader {
        let (tx, rx) = mpsc::channel(chunks.len() + 1);
        for c in chunks {
            tx.try_send(BodyMsg::Data(c.to_vec())).unwrap();
        }
        if end {
            tx.try_send(BodyMsg::End).unwrap();
        }
        BodyReader::new(rx)
    }

    #[test]
    fn read_sizes_span_chunks() {
        let mut r = reader(&[b"hel", b"lo wo", b"rld"], true);
        assert_eq!(r.read(Some(4)).unwrap(), b"hell");
        assert_eq!(r.read(Some(0)).unwrap(), b"");
        assert_eq!(r.read(None).unwrap(), b"o world");
        assert_eq!(r.read(Some(10)).unwrap(), b"");
        assert_eq!(r.read(None).unwrap(), b"");
    }

    #[test]
    fn readline_with_and_without_limits() {
        let mut r = reader(&[b"ab\ncd", b"ef\n", b"gh"], true);
        assert_eq!(r.readline(None).unwrap(), b"ab\n");
        assert_eq!(r.readline(Some(2)).unwrap(), b"cd");
        assert_eq!(r.readline(None).unwrap(), b"ef\n");
        assert_eq!(r.readline(None).unwrap(), b"gh");
        assert_eq!(r.readline(None).unwrap(), b"");
    }

    #[test]
    fn a_dropped_sender_without_end_is_a_disconnect() {
        let mut r = reader(&[b"abc"], false);
        assert_eq!(r.read(Some(3)).unwrap(), b"abc");
        assert_eq!(r.read(Some(1)), Err(Disconnected));
        let mut r = reader(&[b"abc"], false);
        assert_eq!(r.read(None), Err(Disconnected));
    }
}
