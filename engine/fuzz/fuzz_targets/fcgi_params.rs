//! `fcgi_params`: see proto::fuzz::fcgi_params (the body and its checks are shared with the stable corpus replay).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto::fuzz::fcgi_params(data));
