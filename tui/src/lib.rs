//! ringfast-top: a terminal dashboard over one or more ringfast engines' Prometheus `/metrics`.
//!
//! The pieces, each small and tested on its own: [`prom`] parses the text format, [`snapshot`]
//! reduces a page to per-worker figures, [`histogram`] and [`rate`] compute windowed rates and
//! quantiles, [`reset`] spots engine restarts, [`history`] keeps the scrapes, [`scrape`] fetches
//! pages on threads of their own, [`model`] holds the state keys change, [`view`] computes what
//! the screen shows, [`render`] draws it and [`text`] prints it for `--once`; [`app`] runs the
//! terminal loop, and [`tty`] watches the terminal so that one that went away ends it.

pub mod app;
pub mod format;
pub mod histogram;
pub mod history;
pub mod keys;
pub mod model;
pub mod prom;
pub mod rate;
pub mod render;
pub mod reset;
pub mod scrape;
pub mod snapshot;
pub mod text;
pub mod tty;
pub mod view;
