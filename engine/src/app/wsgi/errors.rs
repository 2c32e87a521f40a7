//! `wsgi.errors`: a text stream whose lines go to the engine's log (target `wsgi.errors`, level
//! warn), and Python tracebacks as log text.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// The `wsgi.errors` object: collects text and logs it line by line.
#[pyclass(frozen, module = "ringfast")]
pub(crate) struct Errors {
    partial: Mutex<String>,
}

impl Errors {
    pub(crate) fn new() -> Self {
        Errors {
            partial: Mutex::new(String::new()),
        }
    }

    fn log_line(line: &str) {
        tracing::warn!(target: "wsgi.errors", "{line}");
    }
}

#[pymethods]
impl Errors {
    fn write(&self, text: &str) -> usize {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        partial.push_str(text);
        while let Some(i) = partial.find('\n') {
            Self::log_line(&partial[..i]);
            partial.drain(..=i);
        }
        text.chars().count()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?.extract::<String>()?);
        }
        Ok(())
    }

    fn flush(&self) {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        if !partial.is_empty() {
            Self::log_line(&partial);
            partial.clear();
        }
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        let partial = self.partial.get_mut().unwrap_or_else(|e| e.into_inner());
        if !partial.is_empty() {
            Self::log_line(partial);
        }
    }
}

/// The exception's traceback as Python prints it.
pub(crate) fn traceback_text(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        let lines = tb.call_method1("format_exception", PyTuple::new(py, [err.value(py)])?)?;
        let text: String = py
            .import("builtins")?
            .getattr("str")?
            .call_method1("join", ("", lines))?
            .extract()?;
        Ok::<_, PyErr>(text)
    });
    formatted.unwrap_or_else(|_| err.to_string())
}
