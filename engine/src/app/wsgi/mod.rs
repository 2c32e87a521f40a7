//! Python WSGI hosting (PEP 3333), behind the cargo feature `wsgi`.
//!
//! A request flows like this: the worker's handler task ([`handler`]) builds the CGI variables
//! ([`environ`], with the URL prefix corrected by [`prefix`]) and queues a call on the bounded
//! pool of Python threads ([`pool`]). The Python thread ([`call`]) builds the environ dict, calls
//! the application, and streams the iterable's chunks back through a bounded channel
//! ([`output`]: `start_response`, `write()`); `wsgi.input` ([`input`]) pulls body chunks from the
//! handler task through another bounded channel. I/O threads never take the GIL; Python threads
//! release it whenever they wait for the connection.

mod call;
mod environ;
mod errors;
mod file_wrapper;
mod handler;
mod input;
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
    let file_wrapper = Python::attach(|py| environ::file_wrapper_type(py).unbind());
    let pool = pool::Pool::start(threads).map_err(LoadError::Threads)?;
    tracing::info!(target: "wsgi", threads, processes, "Python threads started");
    Ok(WsgiHandler {
        app: Arc::new(call::App {
            callable,
            file_wrapper,
            settings,
        }),
        pool,
    })
}
