//! The I/O boundary: everything the server needs from the runtime, and nothing more.
//!
//! Connection drivers, codecs and apps see only these operations: accept a connection, read into
//! an owned buffer (appending to its initialised part), write an owned buffer whole, shut a
//! direction down, sleep, spawn a task on this worker, and run a worker's event loop. Today they
//! are implemented on tokio-uring ([`uring`]); a backend built directly on the `io-uring` crate
//! (multishot accept and receive, buffer rings, DEFER_TASKRUN) can replace that module without
//! touching anything above it.
//!
//! One caveat shapes the callers: tokio-uring does not cancel an in-flight operation when its
//! future is dropped (tokio-rs/tokio-uring#207). The drivers therefore never drop a pending read
//! to implement a timeout: they [`shutdown`](Stream::shutdown) the socket, which completes the
//! read, and then await it, so the descriptor is closed promptly and never leaks.

mod uring;

pub use uring::{run_worker, spawn, Listener, Stream, TaskHandle};

/// Sleeps without blocking the worker.
pub async fn sleep(d: std::time::Duration) {
    tokio::time::sleep(d).await
}

pub use std::net::Shutdown;
