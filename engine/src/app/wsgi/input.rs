//! `wsgi.input`: the request body as a Python file-like object, read from the request's
//! [`Link`] (at most [`BODY_LIMIT`](super::link::BODY_LIMIT) bytes buffered between the
//! connection and the application). A read that the buffered bytes satisfy keeps the GIL; one
//! that must wait for the connection releases it while it waits.

use std::sync::Arc;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::link::{decide_read, decide_readline, Link};

/// The `wsgi.input` object.
#[pyclass(frozen, module = "ringfast")]
pub(crate) struct Input {
    link: Arc<Link>,
}

impl Input {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        Input { link }
    }

    /// Takes what `decide` says, waiting (GIL released) only when it needs more bytes.
    fn take<'py>(
        &self,
        py: Python<'py>,
        mut decide: impl FnMut(&[u8], bool) -> Option<usize> + Send,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let got = match self.link.try_read(&mut decide) {
            Some(got) => got,
            None => py.detach(|| self.link.read_wait(&mut decide)),
        };
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
        self.take(py, decide_read(limit(size)))
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.take(py, decide_readline(limit(size)))
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.take(py, decide_readline(None))?;
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
        let line = self.take(py, decide_readline(None))?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}
