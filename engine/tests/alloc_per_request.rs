//! Counts heap allocations per hello request on a keep-alive FastCGI connection, with the server
//! running in this process under a counting allocator.
//!
//! The client thread uses one prebuilt request and a fixed read buffer, so every allocation
//! counted during the measured window is the server's. The figure is printed (run with
//! `--nocapture`) and reported in docs/architecture.md; the assertion only guards against a
//! regression.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use engine::app::Hello;
use engine::config::Config;
use engine::proto::fcgi::{self, Decode, RequestSpec};
use engine::server::Server;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Sends one request and reads until its END_REQUEST, without allocating.
fn round_trip(s: &mut std::net::TcpStream, request: &[u8], buf: &mut [u8]) {
    s.write_all(request).unwrap();
    let mut filled = 0;
    loop {
        let n = s.read(&mut buf[filled..]).unwrap();
        assert!(n > 0, "server closed the connection");
        filled += n;
        let mut pos = 0;
        while let Decode::Complete(rec, used) = fcgi::decode_record(&buf[pos..filled]).unwrap() {
            pos += used;
            if rec.header.rtype == fcgi::rtype::END_REQUEST {
                assert_eq!(pos, filled, "bytes after END_REQUEST");
                return;
            }
        }
    }
}

#[test]
fn hello_on_keep_alive_connection() {
    let mut config = Config::defaults();
    config.fastcgi = vec!["127.0.0.1:0".parse().unwrap()];
    config.workers = Some(1);
    let server = Server::bind(config).unwrap();
    let addr = match &server.local_addrs()[0].1 {
        engine::config::ListenAddr::Tcp(a) => *a,
        other => panic!("unexpected listener {other}"),
    };
    let stop = server.stop_handle();
    let thread = std::thread::spawn(move || server.run(|_| Hello));

    let params: Vec<(&[u8], &[u8])> = vec![
        (b"REQUEST_METHOD", b"GET"),
        (b"SCRIPT_NAME", b"/hello"),
        (b"REQUEST_URI", b"/hello"),
        (b"QUERY_STRING", b""),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"HTTP_HOST", b"localhost"),
        (b"HTTP_USER_AGENT", b"alloc-test"),
    ];
    let mut request = Vec::new();
    fcgi::encode_request(
        &mut request,
        &RequestSpec {
            request_id: 1,
            keep_conn: true,
            params: &params,
            body: b"",
        },
    );
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..2000 {
        round_trip(&mut s, &request, &mut buf);
    }
    const N: u64 = 20_000;
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..N {
        round_trip(&mut s, &request, &mut buf);
    }
    let per_request = (ALLOCS.load(Ordering::Relaxed) - before) as f64 / N as f64;
    println!("heap allocations per hello request (keep-alive): {per_request:.2}");
    drop(s);
    stop.stop();
    thread.join().unwrap().unwrap();
    assert!(
        per_request <= 2.0,
        "allocations per request regressed: {per_request:.2}"
    );
}
