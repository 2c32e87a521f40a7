//! ringfast: a thread-per-core FastCGI application server on io_uring.
//!
//! The crate is layered so that each part can be read and tested alone:
//! - [`proto`]: sans-IO codecs (no sockets, no clock);
//! - [`app`]: the [`Handler`](app::Handler) API and the built-in applications;
//! - [`io`]: the narrow I/O boundary over the io_uring runtime;
//! - [`server`]: listeners, workers, connection drivers, shutdown;
//! - [`metrics`]: metric names, per-worker handles, the Prometheus endpoint;
//! - [`config`]: the command line; [`config_file`]: `--config FILE` and `--print-config`;
//! - [`launch`]: what the `ringfast` command does with it.

pub mod app;
pub mod config;
pub mod config_file;
pub mod io;
pub mod launch;
pub mod logging;
pub mod metrics;
pub use proto;
pub mod server;
