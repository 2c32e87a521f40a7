//! Idle keep-alive connections: what each one costs a server in memory.
//!
//! The harness opens N FastCGI connections to the server (the floor, ringfast), sends one request
//! with `FCGI_KEEP_CONN` on each and reads its answer (so every connection has been used), then
//! leaves them all open and idle. The figure is the RSS of the server's processes with the
//! connections open minus their RSS before (after one throwaway request on a connection of its
//! own, so that what a server sets up on its first request is not counted), divided by N.
//! Kernel socket buffers are not in a process's RSS: this is the server's own memory.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cli::Plan;
use crate::contender::{self, Contender, Server};
use crate::endpoint::{Endpoint, Proto};
use crate::error::{io_ctx, BenchError};
use crate::services::{self, Running, TempDir};
use crate::tools::Tools;

/// File descriptors the harness keeps besides the idle connections (and a server besides its).
pub const FD_MARGIN: u64 = 1024;

/// How long the server may take to answer the request of one connection.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The measurement of one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleRecord {
    /// The contender (its row name, e.g. `ringfast fcgi tcp`).
    pub contender: String,
    /// Connections opened, each answered once and left open.
    pub connections: usize,
    /// RSS summed over the server's processes before, KiB.
    pub rss_before_kib: u64,
    /// The same with the connections open, KiB.
    pub rss_after_kib: u64,
    /// PSS before, KiB.
    pub pss_before_kib: u64,
    /// PSS with the connections open, KiB.
    pub pss_after_kib: u64,
    /// Connections the server had closed when the memory was read (should be 0).
    pub closed_by_server: usize,
    /// Seconds taken to open and use every connection.
    pub open_s: f64,
    /// What went wrong, when the measurement is not valid.
    pub error: Option<String>,
}

impl IdleRecord {
    fn per_conn(&self, before: u64, after: u64) -> Option<f64> {
        (self.error.is_none() && self.connections > 0)
            .then(|| (after as f64 - before as f64) / self.connections as f64)
    }

    /// RSS per idle connection, KiB (`None` when the measurement failed).
    pub fn rss_kib_per_conn(&self) -> Option<f64> {
        self.per_conn(self.rss_before_kib, self.rss_after_kib)
    }

    /// PSS per idle connection, KiB.
    pub fn pss_kib_per_conn(&self) -> Option<f64> {
        self.per_conn(self.pss_before_kib, self.pss_after_kib)
    }

    fn failed(contender: &str, connections: usize, e: &BenchError) -> IdleRecord {
        IdleRecord {
            contender: contender.to_string(),
            connections,
            rss_before_kib: 0,
            rss_after_kib: 0,
            pss_before_kib: 0,
            pss_after_kib: 0,
            closed_by_server: 0,
            open_s: 0.0,
            error: Some(e.to_string()),
        }
    }
}

/// The name of the memory row of `c` (what `--only` matches): `idle floor fcgi tcp`.
pub fn row_name(c: &Contender) -> String {
    format!("idle {}", c.name)
}

/// The servers measured: the floor and ringfast (once per `--engine-io` value), FastCGI over
/// TCP; with `only`, those whose row name (`idle ringfast fcgi tcp`) contains one of its strings,
/// plus the floor whenever a ringfast row is in.
pub fn contenders(only: &[String], engine_io: &[String]) -> Vec<Contender> {
    let mut rows: Vec<Contender> = contender::catalog()
        .into_iter()
        .filter(|c| c.name == "floor fcgi tcp" || c.name == "ringfast fcgi tcp")
        .collect();
    rows = contender::expand_engine_io(rows, engine_io);
    if only.is_empty() {
        return rows;
    }
    let picked: Vec<bool> = rows
        .iter()
        .map(|c| only.iter().any(|o| row_name(c).contains(o.as_str())))
        .collect();
    let any_ringfast = rows.iter().zip(&picked).any(|(c, p)| *p && c.is_ringfast());
    rows.into_iter()
        .zip(picked)
        .filter(|(c, p)| *p || (any_ringfast && c.server == Server::Floor))
        .map(|(c, _)| c)
        .collect()
}

/// Raises this process's RLIMIT_NOFILE soft limit to `want` (and the hard limit with it when
/// allowed: root); the processes it starts afterwards inherit it. Returns the soft limit now in
/// force, which is below `want` when the hard limit could not be raised.
pub fn raise_nofile(want: u64) -> Result<u64, String> {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) } != 0 {
        return Err(format!("getrlimit: {}", io::Error::last_os_error()));
    }
    if cur.rlim_cur >= want {
        return Ok(cur.rlim_cur);
    }
    let wanted = libc::rlimit {
        rlim_cur: want,
        rlim_max: cur.rlim_max.max(want),
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
        return Ok(want);
    }
    let capped = libc::rlimit {
        rlim_cur: cur.rlim_max,
        rlim_max: cur.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } == 0 {
        return Ok(cur.rlim_max);
    }
    Err(format!("setrlimit: {}", io::Error::last_os_error()))
}

fn record(kind: u8, id: u16, content: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[1, kind]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(content);
}

/// One FastCGI GET of [`services::PATH`] with request id `id` and `FCGI_KEEP_CONN`: BEGIN_REQUEST,
/// PARAMS, the empty PARAMS, the empty STDIN.
pub fn request(id: u16) -> Vec<u8> {
    let mut params = Vec::new();
    for (k, v) in [
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", services::PATH),
        ("REQUEST_URI", services::PATH),
        ("DOCUMENT_URI", services::PATH),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "ringfast-bench"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "0"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "0"),
        ("HTTP_HOST", "localhost"),
    ] {
        params.push(k.len() as u8);
        params.push(v.len() as u8);
        params.extend_from_slice(k.as_bytes());
        params.extend_from_slice(v.as_bytes());
    }
    let mut out = Vec::new();
    // Role RESPONDER (1), flags FCGI_KEEP_CONN (1).
    record(1, id, &[0, 1, 1, 0, 0, 0, 0, 0], &mut out);
    record(4, id, &params, &mut out);
    record(4, id, &[], &mut out);
    record(5, id, &[], &mut out);
    out
}

fn protocol(detail: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail)
}

/// Reads the answer to request `id`: records up to its END_REQUEST, which must say
/// REQUEST_COMPLETE. Returns the STDOUT bytes (the CGI head and body).
pub fn read_answer(r: &mut impl Read, id: u16) -> io::Result<Vec<u8>> {
    let mut stdout = Vec::new();
    loop {
        let mut head = [0u8; 8];
        r.read_exact(&mut head)?;
        if head[0] != 1 {
            return Err(protocol(format!("FastCGI version {}", head[0])));
        }
        let rid = u16::from_be_bytes([head[2], head[3]]);
        let len = u16::from_be_bytes([head[4], head[5]]) as usize;
        let mut content = vec![0u8; len + head[6] as usize];
        r.read_exact(&mut content)?;
        content.truncate(len);
        if rid != id {
            return Err(protocol(format!("a record for request {rid}, not {id}")));
        }
        match head[1] {
            6 => stdout.extend_from_slice(&content),
            3 => {
                let status = content.get(4).copied().unwrap_or(255);
                if status != 0 {
                    return Err(protocol(format!("END_REQUEST protocolStatus {status}")));
                }
                return Ok(stdout);
            }
            _ => {}
        }
    }
}

/// One open connection.
#[derive(Debug)]
pub enum Conn {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix socket.
    Unix(UnixStream),
}

impl Conn {
    /// Connects to `ep`, reads with a timeout.
    pub fn connect(ep: &Endpoint) -> io::Result<Conn> {
        let c = match ep {
            Endpoint::Tcp(a) => {
                let s = TcpStream::connect(a)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
                Conn::Tcp(s)
            }
            Endpoint::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
                Conn::Unix(s)
            }
        };
        Ok(c)
    }

    /// Sends request `id` with KEEP_CONN and checks its answer ends with the hello body.
    pub fn use_once(&mut self, id: u16) -> io::Result<()> {
        let req = request(id);
        let out = match self {
            Conn::Tcp(s) => {
                s.write_all(&req)?;
                read_answer(s, id)?
            }
            Conn::Unix(s) => {
                s.write_all(&req)?;
                read_answer(s, id)?
            }
        };
        if !out.ends_with(services::HELLO.as_bytes()) {
            return Err(protocol(format!(
                "unexpected answer {:?}",
                String::from_utf8_lossy(&out)
            )));
        }
        Ok(())
    }

    /// Whether the server still holds the connection open and quiet: a non-blocking read finds
    /// nothing to read (not an end of file, not data).
    pub fn idle_and_open(&mut self) -> bool {
        let mut b = [0u8; 1];
        let r = match self {
            Conn::Tcp(s) => s.set_nonblocking(true).and_then(|()| s.read(&mut b)),
            Conn::Unix(s) => s.set_nonblocking(true).and_then(|()| s.read(&mut b)),
        };
        matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Opens `n` connections to `ep`, each used for one request and kept.
pub fn open_idle(ep: &Endpoint, n: usize) -> Result<Vec<Conn>, BenchError> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = Conn::connect(ep).map_err(io_ctx(format!("idle connection {i}: connect")))?;
        c.use_once(1)
            .map_err(io_ctx(format!("idle connection {i}: request")))?;
        conns.push(c);
    }
    Ok(conns)
}

/// (PSS, RSS) in KiB of the processes of `running`.
fn memory(running: &Running) -> (u64, u64) {
    let snap = crate::procfs::snapshot();
    crate::procfs::memory_kib(&crate::procfs::family(&snap, &running.roots()))
}

/// Measures a started server reached at `target`: `n` idle connections.
pub fn sample(
    name: &str,
    running: &mut Running,
    target: &Endpoint,
    n: usize,
    settle: Duration,
) -> Result<IdleRecord, BenchError> {
    // One throwaway request on its own connection: first-request set-up is not per connection.
    Conn::connect(target)
        .and_then(|mut c| c.use_once(1))
        .map_err(io_ctx("the first request"))?;
    sleep(settle);
    let (pss_before, rss_before) = memory(running);
    let t0 = Instant::now();
    let mut conns = open_idle(target, n)?;
    let open_s = t0.elapsed().as_secs_f64();
    sleep(settle);
    let (pss_after, rss_after) = memory(running);
    running.check_alive()?;
    let closed_by_server = conns
        .iter_mut()
        .map(|c| c.idle_and_open())
        .filter(|open| !open)
        .count();
    drop(conns);
    let error = (closed_by_server > 0).then(|| {
        format!("{closed_by_server} of {n} connections were closed by the server while idle")
    });
    Ok(IdleRecord {
        contender: name.to_string(),
        connections: n,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        pss_before_kib: pss_before,
        pss_after_kib: pss_after,
        closed_by_server,
        open_s,
        error,
    })
}

/// Starts `c` (pinned to `cpus`), measures `n` idle connections, stops it. ringfast gets
/// `--max-conns` above `n`. Never fails: a failure is recorded in the record.
pub fn measure(
    c: &Contender,
    tools: &Tools,
    plan: &Plan,
    cpus: Option<&str>,
    n: usize,
) -> IdleRecord {
    let run = || -> Result<IdleRecord, BenchError> {
        if c.via_nginx || c.server.proto() != Proto::Fcgi {
            return Err(BenchError::Usage("idle rows are direct FastCGI".into()));
        }
        let mut c = c.clone();
        if c.is_ringfast() {
            c.engine_args
                .extend(["--max-conns".to_string(), (n + 64).to_string()]);
        }
        let slug: String = row_name(&c)
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
            .collect();
        let dir = TempDir::new(&slug, plan.keep_temp)?;
        let layout = services::layout(&c, tools, plan, dir.path())?;
        let mut running = Running::start(&layout, dir.path(), cpus)?;
        let settle = Duration::from_millis(if plan.quick { 200 } else { 500 });
        let rec = sample(&c.name, &mut running, &layout.target, n, settle);
        running.stop();
        rec
    };
    run().unwrap_or_else(|e| IdleRecord::failed(&c.name, n, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the floor answers: STDOUT(body), STDOUT(empty), END_REQUEST.
    fn answer(id: u16, status: u8) -> Vec<u8> {
        let body = b"Status: 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";
        let mut out = Vec::new();
        record(6, id, body, &mut out);
        record(6, id, &[], &mut out);
        record(3, id, &[0, 0, 0, 0, status, 0, 0, 0], &mut out);
        out
    }

    #[test]
    fn the_request_keeps_the_connection() {
        let r = request(7);
        // BEGIN_REQUEST, id 7, 8 bytes: role 1, KEEP_CONN.
        assert_eq!(&r[..8], &[1, 1, 0, 7, 0, 8, 0, 0]);
        assert_eq!(&r[8..11], &[0, 1, 1]);
        // Then PARAMS with the path, the empty PARAMS and the empty STDIN.
        assert_eq!(r[17], 4);
        assert!(r.windows(6).any(|w| w == b"/hello"));
        assert_eq!(
            &r[r.len() - 16..],
            &[1, 4, 0, 7, 0, 0, 0, 0, 1, 5, 0, 7, 0, 0, 0, 0]
        );
    }

    #[test]
    fn reads_an_answer_and_refuses_a_bad_one() {
        let out = read_answer(&mut &answer(1, 0)[..], 1).unwrap();
        assert!(out.ends_with(b"Hello, World!"));
        // FCGI_OVERLOADED, a record for another id, a cut answer.
        assert!(read_answer(&mut &answer(1, 2)[..], 1).is_err());
        assert!(read_answer(&mut &answer(2, 0)[..], 1).is_err());
        let cut = answer(1, 0);
        assert!(read_answer(&mut &cut[..cut.len() - 3], 1).is_err());
    }

    #[test]
    fn per_connection_figures() {
        let mut r = IdleRecord {
            contender: "floor fcgi tcp".into(),
            connections: 10_000,
            rss_before_kib: 1_000,
            rss_after_kib: 81_000,
            pss_before_kib: 500,
            pss_after_kib: 40_500,
            closed_by_server: 0,
            open_s: 1.0,
            error: None,
        };
        assert_eq!(r.rss_kib_per_conn(), Some(8.0));
        assert_eq!(r.pss_kib_per_conn(), Some(4.0));
        r.error = Some("closed".into());
        assert_eq!(r.rss_kib_per_conn(), None);
    }

    #[test]
    fn rows_floor_and_ringfast_per_engine_io() {
        let names = |v: Vec<Contender>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(
            names(contenders(&[], &[])),
            ["floor fcgi tcp", "ringfast fcgi tcp"]
        );
        let io = ["ring".to_string(), "epoll".to_string()];
        assert_eq!(
            names(contenders(&[], &io)),
            [
                "floor fcgi tcp",
                "ringfast fcgi tcp io=ring",
                "ringfast fcgi tcp io=epoll"
            ]
        );
        // --only matches the row names `idle ...`; the floor comes with a ringfast row.
        assert_eq!(
            names(contenders(&["idle ringfast".to_string()], &io[..1])),
            ["floor fcgi tcp", "ringfast fcgi tcp io=ring"]
        );
        assert_eq!(
            names(contenders(&["idle floor".to_string()], &[])),
            ["floor fcgi tcp"]
        );
        assert!(contenders(&["granian".to_string()], &[]).is_empty());
    }

    #[test]
    fn raising_the_limit_never_lowers_it() {
        let now = raise_nofile(1).unwrap();
        assert!(now >= 1);
        assert_eq!(raise_nofile(now).unwrap(), now);
    }
}
