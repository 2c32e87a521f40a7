//! Resource use of the real `ringfast` binary: file descriptors and memory.
//!
//! The open file descriptors of the engine process (entries of `/proc/PID/fd`) must return to
//! their starting count after 10,000 connections closed by the peer (after a keep-conn request,
//! or in the middle of one), by the engine (no keep-conn) and by the idle timeout. A large upload
//! (256 MiB streamed to `/drain`, which hashes it as it arrives) must not cost its size in memory: the
//! engine's peak resident set (`VmHWM`) stays small, because STDIN is streamed to the handler
//! through a bounded buffer.

mod fcgi_client;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::proto::fcgi::{self, rtype};
use fcgi_client::{get, post, record, wait_until, Closed, Conn, Engine, MIB};

/// How far the descriptor count may drift from its starting value.
const FD_TOLERANCE: usize = 2;

/// Warms the engine up (a few connections on both workers), then waits until its descriptor
/// count is stable and returns it.
fn baseline_fds(engine: &Engine) -> usize {
    for _ in 0..8 {
        let mut c = engine.connect();
        c.request(&get(1, "/hello"));
        c.request(&get(1, "/hello").keep(false));
        assert_eq!(c.expect_closed(), Closed::Eof);
    }
    let mut last = engine.fd_count();
    let mut stable = 0;
    while stable < 5 {
        std::thread::sleep(Duration::from_millis(50));
        let now = engine.fd_count();
        if now == last {
            stable += 1;
        } else {
            stable = 0;
            last = now;
        }
    }
    last
}

/// Waits (up to 15 s) for the descriptor count to come back to `base` within the tolerance.
fn assert_fds_back(engine: &Engine, base: usize, what: &str) {
    let mut now = 0;
    let back = wait_until(Duration::from_secs(15), || {
        now = engine.fd_count();
        now.abs_diff(base) <= FD_TOLERANCE
    });
    assert!(
        back,
        "{what}: the engine has {now} open descriptors, {base} before (leak of {})",
        now as isize - base as isize
    );
}

/// Runs `per_thread` connections on each of `threads` client threads.
fn run_clients(engine: &Engine, threads: usize, per_thread: usize, one: fn(&Engine, usize)) {
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in 0..per_thread {
                    one(engine, t * per_thread + i);
                }
            });
        }
    });
}

#[test]
fn fds_return_after_connections_closed_by_the_peer() {
    let engine = Engine::start(&[]);
    let base = baseline_fds(&engine);
    // The count does follow connections: 100 open ones show.
    let mut held: Vec<Conn> = (0..100).map(|_| engine.connect()).collect();
    for c in &mut held {
        c.request(&get(1, "/hello")).assert_complete();
    }
    let open = engine.fd_count();
    assert!(
        open >= base + 100,
        "100 open connections should show in /proc/PID/fd (base {base}, now {open})"
    );
    drop(held);
    assert_fds_back(&engine, base, "100 connections closed by the peer");
    // 3,700 connections: a keep-conn hello, answered, then the client closes.
    run_clients(&engine, 2, 1_850, |engine, i| {
        let mut c = engine.connect();
        let id = 1 + (i % 5) as u16;
        let r = c.request(&get(id, "/hello"));
        assert_eq!(r.assert_complete().status, 200);
    });
    assert_fds_back(&engine, base, "closed by the peer after a response");
    // 200 connections closed by the peer in the middle of a request: during a sleeping handler,
    // while PARAMS arrive, and while a body is streamed to /echo.
    run_clients(&engine, 2, 100, |engine, i| {
        let mut c = engine.connect();
        match i % 3 {
            0 => c.send(&get(1, "/sleep?ms=2000").encode()),
            1 => {
                let req = get(1, "/hello");
                let mut wire = req.encode_begin();
                fcgi::encode_record(&mut wire, rtype::PARAMS, 1, &req.params_stream()[..9]);
                c.send(&wire);
            }
            _ => {
                let mut wire = post(1, "/echo", b"")
                    .without("CONTENT_LENGTH")
                    .encode_head();
                wire.extend(record(rtype::STDIN, 1, &[b'z'; 5000]));
                c.send(&wire);
                // /echo collects the whole body first: give the handler time to be reading it.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if i % 2 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    assert_fds_back(&engine, base, "closed by the peer mid-request");
    assert!(engine.fd_count() <= base + FD_TOLERANCE);
}

#[test]
fn fds_return_after_connections_closed_by_the_engine() {
    let engine = Engine::start(&[]);
    let base = baseline_fds(&engine);
    // 5,500 connections without keep-conn: answered, then the engine closes (EOF, no reset),
    // then the client closes.
    run_clients(&engine, 2, 2_750, |engine, i| {
        let mut c = engine.connect();
        let req = if i % 4 == 0 {
            post(1, "/echo", b"bye")
        } else {
            get(1, "/hello")
        };
        c.request(&req.keep(false)).assert_complete();
        assert_eq!(c.expect_closed(), Closed::Eof);
    });
    assert_fds_back(&engine, base, "closed by the engine (no keep-conn)");
}

#[test]
fn fds_return_after_connections_closed_by_idle_timeout() {
    let engine = Engine::start(&["--idle-timeout", "0.2"]);
    let base = baseline_fds(&engine);
    // 700 idle connections, in two waves: half after a keep-conn request, half silent.
    for _wave in 0..2 {
        let mut conns: Vec<Conn> = Vec::new();
        for i in 0..350 {
            let mut c = engine.connect();
            if i % 2 == 0 {
                c.send(&get(1, "/hello").encode());
            }
            conns.push(c);
        }
        for (i, c) in conns.iter_mut().enumerate() {
            if i % 2 == 0 {
                c.collect(&[1]).take(1).assert_complete();
            }
            assert_eq!(c.expect_closed(), Closed::Eof, "idle connection {i}");
        }
        drop(conns);
        assert_fds_back(&engine, base, "closed by the idle timeout");
    }
}

#[test]
fn upload_of_256_mib_uses_bounded_memory() {
    const TOTAL: usize = 256 * MIB;
    const PERIOD: usize = 251; // prime: a lost, repeated or reordered record breaks the pattern
    let engine = Engine::start(&[]);
    let pattern: Arc<Vec<u8>> = Arc::new(
        (0..PERIOD + fcgi::MAX_CONTENT_LEN + 64 * 1024)
            .map(|i| (i % PERIOD) as u8)
            .collect(),
    );
    let mut conn = engine.connect();
    let req = post(1, "/drain", b"")
        .param("CONTENT_LENGTH", &TOTAL.to_string())
        .param("CONTENT_TYPE", "application/x-test");
    let mut wsock = conn.sock().try_clone().unwrap();
    let head = req.encode_head();
    let writer = {
        let pattern = pattern.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            wsock.write_all(&head)?;
            let mut rec = Vec::with_capacity(fcgi::MAX_RECORD_LEN);
            let mut off = 0;
            while off < TOTAL {
                let n = fcgi::MAX_CONTENT_LEN.min(TOTAL - off);
                rec.clear();
                let start = off % PERIOD;
                fcgi::encode_record(&mut rec, rtype::STDIN, 1, &pattern[start..start + n]);
                wsock.write_all(&rec)?;
                off += n;
            }
            wsock.write_all(&record(rtype::STDIN, 1, &[]))
        })
    };
    // Sample the resident set while the upload runs.
    let done = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(0));
    let pid = engine.pid();
    let sampler = {
        let (done, max_rss) = (done.clone(), max_rss.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    if let Some(kb) = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    {
                        max_rss.fetch_max(kb * 1024, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    // /drain streams the body through a small buffer and answers its length and FNV-1a hash.
    let mut expected_hash: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..TOTAL {
        expected_hash = (expected_hash ^ (i % PERIOD) as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut replies = conn.collect(&[1]);
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    writer.join().unwrap().expect("upload sent");
    let resp = replies.take(1).assert_complete();
    assert_eq!(resp.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&resp.body),
        format!("{TOTAL} {expected_hash:016x}\n"),
        "drained length and hash"
    );

    let hwm = engine.status_bytes("VmHWM");
    let rss = max_rss.load(Ordering::Relaxed);
    const LIMIT: u64 = 64 * MIB as u64;
    assert!(
        hwm < LIMIT && rss < LIMIT,
        "a 256 MiB upload cost too much memory: VmHWM {} MiB, sampled VmRSS up to {} MiB",
        hwm / MIB as u64,
        rss / MIB as u64
    );
    eprintln!(
        "256 MiB upload: engine VmHWM {} KiB, sampled VmRSS up to {} KiB",
        hwm / 1024,
        rss / 1024
    );
}
