//! Counts heap allocations per hello request, on a keep-alive FastCGI connection and with a new
//! connection per request, with the server running in this process under a counting allocator.
//!
//! The client uses one prebuilt request and a fixed read buffer, so every allocation counted
//! during the measured window is the server's (the client's `TcpStream::connect` allocates
//! nothing). The figures are printed (run with `--nocapture`) and reported in
//! docs/architecture.md. On the native ring (`--io ring`, the default) a warmed-up worker
//! allocates nothing per request or per connection; on tokio-uring the assertion only guards
//! against a regression.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use engine::app::Hello;
use engine::config::Config;
use engine::proto::fcgi::{self, Decode, RequestSpec};
use engine::server::Server;

/// Allocations tolerated in a measured window on the native loop: a pool or a connection slab
/// that grows once more than the warm-up made it (not one per request or per connection).
const STRAGGLERS: u64 = 4;

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

/// True when this run's workers use the native ring (the default; `RINGFAST_IO` selects).
fn on_ring() -> bool {
    std::env::var("RINGFAST_IO").as_deref() != Ok("tokio-uring")
}

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

/// Starts a one-worker hello server in this process; returns its address and a stopper.
fn start() -> (
    std::net::SocketAddr,
    engine::server::StopHandle,
    std::thread::JoinHandle<Result<(), engine::server::ServerError>>,
) {
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
    (addr, stop, thread)
}

fn hello_request(keep_conn: bool) -> Vec<u8> {
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
            keep_conn,
            params: &params,
            body: b"",
        },
    );
    request
}

/// Reads until the server closes the connection.
fn read_to_close(s: &mut std::net::TcpStream, buf: &mut [u8]) {
    while s.read(buf).unwrap_or(0) > 0 {}
}

/// One test, so that the two measurements never run at the same time (the counter is global).
#[test]
fn allocations_per_request() {
    keep_alive_connection();
    new_connection_per_request();
}

fn keep_alive_connection() {
    let (addr, stop, thread) = start();
    let request = hello_request(true);
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
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    let per_request = allocs as f64 / N as f64;
    println!("heap allocations per hello request (keep-alive): {per_request:.2} ({allocs} in {N})");
    drop(s);
    stop.stop();
    thread.join().unwrap().unwrap();
    if on_ring() {
        assert!(
            allocs <= STRAGGLERS,
            "a warm worker allocated {allocs} times in {N} keep-alive requests"
        );
    } else {
        assert!(
            per_request <= 2.0,
            "allocations per request regressed: {per_request:.2}"
        );
    }
}

fn new_connection_per_request() {
    let (addr, stop, thread) = start();
    let request = hello_request(false);
    let mut buf = vec![0u8; 64 * 1024];
    let one = |buf: &mut [u8]| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(&request).unwrap();
        read_to_close(&mut s, buf);
    };
    for _ in 0..500 {
        one(&mut buf);
    }
    const N: u64 = 3_000;
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..N {
        one(&mut buf);
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    let per_conn = allocs as f64 / N as f64;
    println!(
        "heap allocations per hello request (new connection each): {per_conn:.2} ({allocs} in {N})"
    );
    stop.stop();
    thread.join().unwrap().unwrap();
    if on_ring() {
        assert!(
            allocs <= STRAGGLERS,
            "a warm worker allocated {allocs} times in {N} new connections"
        );
    }
}
