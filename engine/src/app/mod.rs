//! Applications: the [`Handler`] API every protocol serves, and the built-in apps.
//!
//! A handler sees one [`Request`] (method, path, query, headers, every request variable, and the
//! body as a stream) and writes one [`Response`] (status, headers, streamed body). One handler
//! instance serves all the requests of one worker thread, so it needs neither `Send` nor `Sync`.
//! When the request is aborted (FastCGI ABORT_REQUEST, or the peer closing the connection) the
//! handler's future is dropped at its next await point.

mod builtin;
mod catch;
pub(crate) mod exchange;
pub(crate) mod notify;
mod request;
mod response;
mod status;
#[cfg(feature = "wsgi")]
pub mod wsgi;
mod wsgi_options;

pub use builtin::{BuiltinApp, Diag, Hello, ECHO_LIMIT};
pub(crate) use catch::CatchUnwind;
pub use request::{BodyError, Request};
pub use response::{Response, ResponseError};
pub use status::reason_phrase;
pub use wsgi_options::WsgiOptions;

use std::future::Future;

/// An error a handler returns; the engine logs it and fails the request (500 when no header was
/// sent yet).
pub type HandlerError = Box<dyn std::error::Error>;

/// Serves requests. One instance per worker thread: `&self` is shared by that worker's
/// concurrent requests, which run as separate tasks on the same thread.
pub trait Handler: 'static {
    /// Serves one request. Returning without finishing the response finishes it; returning an
    /// error fails it. The future may be dropped at any await point if the request is aborted.
    fn handle(
        &self,
        req: &mut Request,
        resp: &mut Response,
    ) -> impl Future<Output = Result<(), HandlerError>>;
}
