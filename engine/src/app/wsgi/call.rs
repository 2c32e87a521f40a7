//! One WSGI call, on a Python thread: build the environ, call the application, stream the
//! iterable it returns, and always call its `close()` (also when the client went away, which
//! shows up as an `OSError` at the application's next read or write).

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::mpsc;

use super::environ::{self, Settings};
use super::errors::traceback_text;
use super::input::{BodyMsg, Input};
use super::output::{send_body_py, Event, Output, StartResponse};

/// What the handler task hands to a Python thread for one request.
#[derive(Debug)]
pub(crate) struct Call {
    /// The CGI variables, corrected ([`environ::cgi_vars`]).
    pub(crate) vars: Vec<(String, String)>,
    /// Body chunks from the handler task.
    pub(crate) body: mpsc::Receiver<BodyMsg>,
    /// Status, headers and body chunks to the handler task.
    pub(crate) events: mpsc::Sender<Event>,
}

/// The application as loaded, with what every call needs.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) callable: Py<PyAny>,
    pub(crate) file_wrapper: Py<PyAny>,
    pub(crate) settings: Settings,
}

/// Serves one request. Never raises: failures are logged and reported to the handler task.
pub(crate) fn run(py: Python<'_>, app: &App, call: Call) {
    let out = Output::new(call.events);
    if out.is_gone() {
        // Aborted while queued: the application never sees it.
        return;
    }
    let input = Input::new(call.body);
    let environ = environ::to_dict(
        py,
        &call.vars,
        &app.settings,
        input,
        app.file_wrapper.bind(py),
    );
    let outcome = environ
        .and_then(|env| {
            let start_response = Bound::new(py, StartResponse::new(out.clone()))?;
            app.callable.bind(py).call1((env, start_response))
        })
        .map(|result| {
            let streamed = stream(py, &out, &result);
            close(py, &out, &result);
            streamed
        })
        .and_then(|streamed| streamed);
    match outcome {
        Ok(()) => finish(py, &out),
        Err(e) => {
            report(py, &out, &e);
            let _ = py.detach(|| out.send(Event::Failed));
        }
    }
}

/// Iterates the application's result, sending each non-empty chunk as it is produced.
fn stream(py: Python<'_>, out: &Output, result: &Bound<'_, PyAny>) -> PyResult<()> {
    for item in result.try_iter()? {
        let item = item?;
        let bytes = item
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("the application yielded a non-bytes value"))?;
        if !bytes.as_bytes().is_empty() {
            send_body_py(py, out, bytes.as_bytes())?;
        }
    }
    Ok(())
}

/// Calls `result.close()` if it has one; an exception there is logged.
fn close(py: Python<'_>, out: &Output, result: &Bound<'_, PyAny>) {
    let closed = result
        .hasattr("close")
        .and_then(|has| has.then(|| result.call_method0("close")).transpose());
    if let Err(e) = closed {
        report(py, out, &e);
    }
}

/// Ends a response whose iteration finished: headers if none went out yet, then the end.
fn finish(py: Python<'_>, out: &Arc<Output>) {
    let sent = py.detach(|| match out.send_head() {
        Ok(Ok(())) => out.send(Event::Done).map_err(|_| None),
        Ok(Err(_)) => Err(None),
        Err(e) => Err(Some(e)),
    });
    if let Err(Some(e)) = sent {
        tracing::error!(target: "wsgi", "{e}");
        let _ = py.detach(|| out.send(Event::Failed));
    }
}

/// Logs an application error with its traceback (at info when the client had gone away).
fn report(py: Python<'_>, out: &Output, e: &PyErr) {
    let tb = traceback_text(py, e);
    if out.is_gone() {
        tracing::info!(target: "wsgi", "client went away; the application stopped: {}", tb.trim_end());
    } else {
        tracing::error!(target: "wsgi", "the application raised:\n{}", tb.trim_end());
    }
}
