//! `metrics_merge`: the prefork /metrics merge (the body and its checks are shared with the stable corpus replay).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| engine::metrics::Merger::fuzz_pages(data));
