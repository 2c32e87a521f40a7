//! Python WSGI hosting (PEP 3333), behind the cargo feature `wsgi`.
//!
//! A request flows like this: the worker's handler task ([`handler`]) copies the request
//! variables into one buffer ([`environ::Vars`], with the URL prefix corrected by [`prefix`])
//! and queues the request, as one [`link::Link`], on the pool of Python threads ([`pool`]). A
//! Python thread ([`call`]) builds the environ dict, calls the application and sends its answer
//! back through the same link ([`output`]: a list or tuple as one message with status and
//! headers, anything else chunk by chunk); `wsgi.input` ([`input`]) reads the body the handler
//! task feeds into the link. I/O threads never take the GIL; a Python thread holds it from one
//! request to the next while requests are queued, and releases it whenever it waits.

mod call;
mod environ;
mod errors;
mod file_wrapper;
mod handler;
mod input;
mod link;
mod load;
mod output;
mod pool;
mod prefix;

use std::sync::Arc;

use pyo3::prelude::*;

pub use handler::{WsgiError, WsgiHandler};
pub use load::LoadError;

use crate::app::WsgiOptions;

/// Loads the application `opts.app` names (a `--wsgi` option is required) and starts its Python
/// threads. `processes` is `--processes`, for `wsgi.multiprocess`. Call it in the process that
/// serves, after binding the listeners and before serving.
pub fn load(opts: &WsgiOptions, processes: usize) -> Result<WsgiHandler, LoadError> {
    let spec = opts
        .app
        .as_deref()
        .ok_or_else(|| LoadError::Spec(String::new()))?;
    let callable = load::load(opts, spec)?;
    let threads = usize::from(opts.threads.max(1));
    let settings = environ::Settings {
        script_name: opts
            .script_name
            .as_deref()
            .map(|s| environ::latin1(s.as_bytes())),
        multithread: threads > 1,
        multiprocess: processes > 1,
    };
    let environ = Python::attach(|py| environ::Environ::new(py, &settings)).map_err(|e| {
        LoadError::Python {
            spec: spec.to_string(),
            traceback: e.to_string(),
        }
    })?;
    let app = Arc::new(call::App {
        callable,
        environ,
        settings,
    });
    let pool = pool::Pool::start(threads, app.clone()).map_err(LoadError::Threads)?;
    tracing::info!(target: "wsgi", threads, processes, "Python threads started");
    Ok(WsgiHandler { app, pool })
}
