//! `prom_parse`: ringfast-top's Prometheus text parser (the body and its checks are shared with the stable corpus replay).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tui::prom::fuzz_parse(data));
