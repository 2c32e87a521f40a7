//! One WSGI call, on a Python thread with the GIL held: build the environ, call the application,
//! send what it returns, and always call its `close()` (also when the client went away, which
//! shows up as an `OSError` at the application's next read or write).

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::environ::{Environ, Settings};
use super::errors::traceback_text;
use super::input::Input;
use super::link::Link;
use super::output::{self, StartResponse};

/// The application as loaded, with what every call needs.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) callable: Py<PyAny>,
    pub(crate) environ: Environ,
    pub(crate) settings: Settings,
}

/// Serves one request. Never raises: failures are logged and reported to the handler task.
pub(crate) fn run(py: Python<'_>, app: &App, link: &Arc<Link>) {
    if link.is_closed() {
        // Aborted while queued: the application never sees it.
        return;
    }
    let outcome = Bound::new(py, Input::new(link.clone()))
        .and_then(|input| app.environ.build(py, &link.vars, input.into_any()))
        .and_then(|env| {
            let start_response = Bound::new(py, StartResponse::new(link.clone()))?;
            app.callable.bind(py).call1((env, start_response))
        })
        .and_then(|result| respond(py, link, &result));
    if let Err(e) = outcome {
        report(py, link, &e);
        link.fail();
    }
}

/// Sends the application's result: a list or tuple at once when it can, anything else as it
/// iterates; `close()` is called before the end is sent.
fn respond(py: Python<'_>, link: &Link, result: &Bound<'_, PyAny>) -> PyResult<()> {
    // Exact lists and tuples have no close(); their items are all there.
    if let Ok(list) = result.cast_exact::<PyList>() {
        let items: Vec<_> = list.iter().collect();
        if output::send_whole(py, link, &items)? {
            return Ok(());
        }
    } else if let Ok(tuple) = result.cast_exact::<PyTuple>() {
        let items: Vec<_> = tuple.iter().collect();
        if output::send_whole(py, link, &items)? {
            return Ok(());
        }
    }
    let streamed = stream(py, link, result);
    close(py, link, result);
    streamed?;
    output::finish(py, link)
}

/// Iterates the application's result, sending each non-empty chunk as it is produced.
fn stream(py: Python<'_>, link: &Link, result: &Bound<'_, PyAny>) -> PyResult<()> {
    for item in result.try_iter()? {
        let item = item?;
        let bytes = output::as_bytes(&item)?.as_bytes();
        if !bytes.is_empty() {
            output::send_body(py, link, bytes)?;
        }
    }
    Ok(())
}

/// Calls `result.close()` if it has one; an exception there is logged. The lookup does not
/// raise and discard an AttributeError for results without one (lists and tuples are not
/// looked up at all).
fn close(py: Python<'_>, link: &Link, result: &Bound<'_, PyAny>) {
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return;
    }
    let closed = result
        .getattr_opt(intern!(py, "close"))
        .and_then(|close| close.map(|c| c.call0()).transpose());
    if let Err(e) = closed {
        report(py, link, &e);
    }
}

/// Logs an application error with its traceback (at info when the client had gone away).
fn report(py: Python<'_>, link: &Link, e: &PyErr) {
    let tb = traceback_text(py, e);
    if link.is_closed() {
        tracing::info!(target: "wsgi", "client went away; the application stopped: {}", tb.trim_end());
    } else {
        tracing::error!(target: "wsgi", "the application raised:\n{}", tb.trim_end());
    }
}
