//! ringfast-bench: sets up every contender on loopback (ringfast, the C floor, PHP-FPM, uWSGI,
//! flup, Apache mod_wsgi, gunicorn, granian, nginx), pins server and load generator to their
//! own CPUs, drives each with ringfast-load (wrk as a cross-check for HTTP servers), samples CPU
//! and memory from /proc, and writes docs/bench/REPORT.md with SVG plots and the raw JSON.

pub mod cli;
pub mod contender;
pub mod endpoint;
pub mod envinfo;
pub mod error;
pub mod idle;
pub mod load;
pub mod lock;
pub mod procfs;
pub mod report;
pub mod results;
pub mod runner;
pub mod services;
pub mod stats;
pub mod tools;
