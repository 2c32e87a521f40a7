//! ringfast-load: a load generator that speaks FastCGI, SCGI, AJP13 and HTTP/1.1 over TCP or
//! Unix sockets, in closed loop (`-c` connections, as wrk) or open loop at a constant rate
//! (`--rate`, latency from the intended send time, as wrk2 and oha), with hdrhistogram
//! latencies and a JSON result for the bench harness (layout in docs/loadgen.md).
//!
//! The FastCGI, SCGI and AJP sides reuse the engine's sans-IO codecs (`engine::proto`); the
//! request is encoded once before the run.

pub mod cli;
pub mod conn;
pub mod report;
pub mod request;
pub mod response;
pub mod run;
pub mod stats;
pub mod target;
pub mod timer;
