//! A blocking FastCGI test client and the `ringfast` binary as a child process, shared by the
//! integration tests that speak FastCGI to the real engine over real sockets (`fcgi_protocol`,
//! `fcgi_resources`).
//!
//! [`Engine`] starts `ringfast --app diag --workers 2` on a loopback port chosen by the kernel
//! (read back from the engine's "listening" log line) or on a Unix socket, waits until it accepts,
//! and kills it on drop (printing its log when the test failed). [`Conn`] sends raw bytes and
//! decodes records with the engine's own client codec (`engine::proto::fcgi`); every read has a
//! timeout, so a hung engine fails the test instead of hanging it. [`Collector`] sorts records
//! into one [`Reply`] per request id, and [`parse_cgi`] splits a reply's STDOUT into status,
//! headers and body.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use engine::proto::fcgi::{self, rtype, Decode, EndRequest, NvIter, NULL_REQUEST_ID};

/// How long any single read or write may block before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the engine gets to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// One mebibyte.
pub const MIB: usize = 1024 * 1024;

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Where an engine listens.
#[derive(Debug, Clone)]
pub enum Addr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl Addr {
    /// Connects, with the read and write timeouts set to [`IO_TIMEOUT`].
    pub fn connect(&self) -> io::Result<Conn> {
        let sock = match self {
            Addr::Tcp(a) => {
                let s = TcpStream::connect(a)?;
                s.set_nodelay(true)?;
                Sock::Tcp(s)
            }
            Addr::Unix(p) => Sock::Unix(UnixStream::connect(p)?),
        };
        sock.set_timeouts(Some(IO_TIMEOUT))?;
        Ok(Conn {
            sock,
            buf: Vec::with_capacity(2 * fcgi::MAX_RECORD_LEN),
        })
    }
}

/// A `ringfast` child process, killed on drop.
pub struct Engine {
    child: Child,
    addr: Addr,
    log: Arc<Mutex<Vec<String>>>,
    dir: Option<PathBuf>,
    exited: Option<ExitStatus>,
}

impl Engine {
    /// Starts `ringfast --app diag --workers 2 --fastcgi 127.0.0.1:0` plus `extra` arguments.
    pub fn start(extra: &[&str]) -> Engine {
        Engine::spawn("127.0.0.1:0".to_owned(), None, extra)
    }

    /// Starts the engine on a Unix socket in a fresh temporary directory.
    pub fn start_unix(extra: &[&str]) -> Engine {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ringfast-fcgi-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join("engine.sock");
        Engine::spawn(format!("unix:{}", path.display()), Some(dir), extra)
    }

    fn spawn(listen: String, dir: Option<PathBuf>, extra: &[&str]) -> Engine {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringfast"))
            .args(["--app", "diag", "--workers", "2", "--fastcgi", &listen])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringfast");
        // Drain stderr continuously (a full pipe would block the engine's logging), keep the
        // lines for the failure report, and pass the "listening" address on.
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("listening") {
                        if let Some(a) = line
                            .split_whitespace()
                            .find_map(|w| w.strip_prefix("addr="))
                        {
                            let _ = tx.send(a.trim_matches('"').to_owned());
                        }
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut engine = Engine {
            child,
            addr: Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            log,
            dir,
            exited: None,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let announced = loop {
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(50)) {
                break a;
            }
            if let Ok(Some(status)) = engine.child.try_wait() {
                engine.exited = Some(status);
                panic!("ringfast exited at startup ({status}):\n{}", engine.logs());
            }
            assert!(
                Instant::now() < deadline,
                "ringfast did not start:\n{}",
                engine.logs()
            );
        };
        engine.addr = match announced.strip_prefix("unix:") {
            Some(p) => Addr::Unix(PathBuf::from(p)),
            None => Addr::Tcp(announced.parse().expect("listening address")),
        };
        // Bound is not yet accepting: wait until a connection is actually served.
        loop {
            if let Ok(mut c) = engine.addr.connect() {
                c.send(&get(1, "/hello").keep(false).encode());
                if let Ok(r) = c.try_collect(&[1]) {
                    if r.replies.get(&1).is_some_and(|r| r.end.is_some()) {
                        break;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "ringfast does not serve:\n{}",
                engine.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        engine
    }

    /// The address the engine listens on.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// A new connection; panics when it cannot connect.
    pub fn connect(&self) -> Conn {
        self.addr
            .connect()
            .unwrap_or_else(|e| panic!("connect to {:?}: {e}\n{}", self.addr, self.logs()))
    }

    /// The engine's process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Open file descriptors of the engine process (entries of `/proc/PID/fd`).
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`...), in bytes.
    pub fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let line = status
            .lines()
            .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"));
        let kb: u64 = line[field.len() + 1..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .expect("kB value");
        kb * 1024
    }

    /// Sends a signal to the engine.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited {
                return Some(s);
            }
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(s);
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.wait_exit(Duration::ZERO).is_none()
    }

    /// Everything the engine logged so far.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(200).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("--- ringfast log (last lines) ---\n{}", tail.join("\n"));
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A TCP or Unix stream.
#[derive(Debug)]
pub enum Sock {
    /// TCP.
    Tcp(TcpStream),
    /// Unix.
    Unix(UnixStream),
}

impl Sock {
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            Sock::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
        }
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<Sock> {
        Ok(match self {
            Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
        })
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(how),
            Sock::Unix(s) => s.shutdown(how),
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A decoded record, owning its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Record type.
    pub rtype: u8,
    /// Request id (0 for management records).
    pub id: u16,
    /// Content, without padding.
    pub content: Vec<u8>,
}

impl OwnedRecord {
    /// The END_REQUEST body, when this is one.
    pub fn end(&self) -> Option<EndRequest> {
        (self.rtype == rtype::END_REQUEST)
            .then(|| EndRequest::parse(&self.content))
            .flatten()
    }

    /// The name-value pairs of a GET_VALUES_RESULT, as strings.
    pub fn values(&self) -> HashMap<String, String> {
        assert_eq!(
            self.rtype,
            rtype::GET_VALUES_RESULT,
            "not GET_VALUES_RESULT"
        );
        NvIter::new(&self.content)
            .map(|p| {
                let (n, v) = p.expect("well-formed pairs");
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// Orderly EOF (FIN).
    Eof,
    /// ECONNRESET.
    Reset,
}

/// One client connection to the engine.
#[derive(Debug)]
pub struct Conn {
    sock: Sock,
    buf: Vec<u8>,
}

impl Conn {
    /// The socket, for cloning (a writer thread) or shutting down.
    pub fn sock(&self) -> &Sock {
        &self.sock
    }

    /// Writes all of `bytes`; panics on error.
    pub fn send(&mut self, bytes: &[u8]) {
        self.sock
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send {} bytes: {e}", bytes.len()));
    }

    /// Writes all of `bytes`.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sock.write_all(bytes)
    }

    /// Reads the next record. `Ok(None)` is EOF between records; EOF inside a record, a decode
    /// error and a timeout are errors.
    pub fn read_record(&mut self) -> io::Result<Option<OwnedRecord>> {
        loop {
            match fcgi::decode_record(&self.buf) {
                Ok(Decode::Complete(rec, used)) => {
                    let owned = OwnedRecord {
                        rtype: rec.header.rtype,
                        id: rec.header.request_id,
                        content: rec.content.to_vec(),
                    };
                    self.buf.drain(..used);
                    return Ok(Some(owned));
                }
                Ok(Decode::Partial) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.sock.read(&mut chunk)?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF inside a record ({} bytes buffered)", self.buf.len()),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next record; panics on EOF, timeout or garbage.
    pub fn next_record(&mut self) -> OwnedRecord {
        match self.read_record() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("engine closed the connection; a record was expected"),
            Err(e) => panic!("no record from the engine: {e}"),
        }
    }

    /// Reads until the connection ends, expecting no record before that; tells EOF from reset.
    /// Panics on a timeout (the engine kept the connection open) or on a record.
    pub fn expect_closed(&mut self) -> Closed {
        match self.read_record() {
            Ok(None) => Closed::Eof,
            Ok(Some(r)) => panic!("expected the connection to close, got record {r:?}"),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Closed::Reset,
            Err(e) => panic!("expected the connection to close: {e}"),
        }
    }

    /// Collects records until every id in `ids` has its END_REQUEST; panics on error.
    pub fn collect(&mut self, ids: &[u16]) -> Collector {
        self.try_collect(ids)
            .unwrap_or_else(|e| panic!("collecting replies for {ids:?}: {e}"))
    }

    /// Collects records until every id in `ids` has its END_REQUEST.
    pub fn try_collect(&mut self, ids: &[u16]) -> io::Result<Collector> {
        let mut c = Collector::default();
        self.collect_into(&mut c, ids)?;
        Ok(c)
    }

    /// Adds records to `c` until every id in `ids` has its END_REQUEST.
    pub fn collect_into(&mut self, c: &mut Collector, ids: &[u16]) -> io::Result<()> {
        while !ids
            .iter()
            .all(|id| c.replies.get(id).is_some_and(|r| r.end.is_some()))
        {
            match self.read_record()? {
                Some(r) => c.feed(r),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before every END_REQUEST",
                    ))
                }
            }
        }
        Ok(())
    }

    /// Sends one request and collects its reply.
    pub fn request(&mut self, req: &Req) -> Reply {
        self.send(&req.encode());
        let mut c = self.collect(&[req.id]);
        c.replies.remove(&req.id).expect("reply")
    }

    /// Sends GET_VALUES and returns the next record, which must be its answer: a barrier that
    /// proves nothing else was queued before it.
    pub fn barrier(&mut self) -> OwnedRecord {
        let mut b = Vec::new();
        fcgi::encode_get_values(&mut b, &[fcgi::values::MPXS_CONNS]);
        self.send(&b);
        let r = self.next_record();
        assert_eq!(
            r.rtype,
            rtype::GET_VALUES_RESULT,
            "expected only GET_VALUES_RESULT, got {r:?}"
        );
        r
    }
}

/// Everything received for one request id.
#[derive(Debug, Default, Clone)]
pub struct Reply {
    /// STDOUT, concatenated.
    pub stdout: Vec<u8>,
    /// STDERR, concatenated.
    pub stderr: Vec<u8>,
    /// Non-empty STDOUT records.
    pub stdout_records: usize,
    /// Largest STDOUT record content.
    pub max_stdout_record: usize,
    /// Empty STDOUT records (stream end markers).
    pub stdout_ends: usize,
    /// STDOUT data received after the empty STDOUT record.
    pub stdout_after_end: bool,
    /// The END_REQUEST, once received.
    pub end: Option<EndRequest>,
    /// Records received after END_REQUEST.
    pub after_end: usize,
}

impl Reply {
    /// The parsed CGI response.
    pub fn cgi(&self) -> CgiResponse {
        parse_cgi(&self.stdout)
    }

    /// Checks the shape every complete response must have: a `Status:` header block, STDOUT
    /// records of at most 65535 bytes, exactly one empty STDOUT after the data, then
    /// END_REQUEST with protocol status 0; returns the parsed response.
    pub fn assert_complete(&self) -> CgiResponse {
        let end = self.end.expect("END_REQUEST received");
        assert_eq!(
            end.protocol_status, 0,
            "protocol status of a served request"
        );
        assert_eq!(self.stdout_ends, 1, "exactly one empty STDOUT record");
        assert!(!self.stdout_after_end, "STDOUT data after the empty STDOUT");
        assert_eq!(self.after_end, 0, "records after END_REQUEST");
        assert!(self.max_stdout_record <= fcgi::MAX_CONTENT_LEN);
        self.cgi()
    }
}

/// Records sorted by request id, with the order END_REQUESTs arrived in.
#[derive(Debug, Default)]
pub struct Collector {
    /// Replies by request id.
    pub replies: HashMap<u16, Reply>,
    /// Request ids in the order their END_REQUEST arrived.
    pub ends: Vec<u16>,
    /// Request ids in the order their first STDOUT record arrived.
    pub first_stdout: Vec<u16>,
    /// Management records received.
    pub management: Vec<OwnedRecord>,
}

impl Collector {
    /// Files one record.
    pub fn feed(&mut self, r: OwnedRecord) {
        if r.id == NULL_REQUEST_ID {
            self.management.push(r);
            return;
        }
        let reply = self.replies.entry(r.id).or_default();
        if reply.end.is_some() {
            reply.after_end += 1;
        }
        match r.rtype {
            rtype::STDOUT if r.content.is_empty() => reply.stdout_ends += 1,
            rtype::STDOUT => {
                if reply.stdout_records == 0 {
                    self.first_stdout.push(r.id);
                }
                if reply.stdout_ends > 0 {
                    reply.stdout_after_end = true;
                }
                reply.stdout_records += 1;
                reply.max_stdout_record = reply.max_stdout_record.max(r.content.len());
                reply.stdout.extend_from_slice(&r.content);
            }
            rtype::STDERR => reply.stderr.extend_from_slice(&r.content),
            rtype::END_REQUEST => {
                reply.end = Some(r.end().expect("END_REQUEST body"));
                self.ends.push(r.id);
            }
            t => panic!("unexpected record type {t} for request {}", r.id),
        }
    }

    /// Takes the reply for `id`.
    pub fn take(&mut self, id: u16) -> Reply {
        self.replies
            .remove(&id)
            .unwrap_or_else(|| panic!("no reply for request {id}"))
    }

    /// Where `id`'s END_REQUEST is in arrival order.
    pub fn end_position(&self, id: u16) -> Option<usize> {
        self.ends.iter().position(|&i| i == id)
    }
}

/// A CGI response: the header block of STDOUT, parsed, and the body after it.
#[derive(Debug, Clone)]
pub struct CgiResponse {
    /// The code of the `Status:` header.
    pub status: u16,
    /// Every header line, in order (the `Status:` line included).
    pub headers: Vec<(String, String)>,
    /// Bytes after the blank line.
    pub body: Vec<u8>,
}

impl CgiResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits STDOUT into a header block (ended by an empty line, which must be present) and a body;
/// the block must carry a `Status:` header.
pub fn parse_cgi(stdout: &[u8]) -> CgiResponse {
    let end = find(stdout, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "no complete header block in STDOUT: {:?}",
            String::from_utf8_lossy(&stdout[..stdout.len().min(300)])
        )
    });
    let head = std::str::from_utf8(&stdout[..end]).expect("UTF-8 header block");
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("header line without colon: {l:?}"));
            (n.to_owned(), v.trim().to_owned())
        })
        .collect();
    let status_line = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Status"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no Status header in {head:?}"));
    let status = status_line
        .split_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad Status header {status_line:?}"));
    CgiResponse {
        status,
        headers,
        body: stdout[end + 4..].to_vec(),
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A request to send: id, keep-conn flag, variables and body.
#[derive(Debug, Clone)]
pub struct Req {
    /// Request id.
    pub id: u16,
    /// FCGI_KEEP_CONN.
    pub keep_conn: bool,
    /// Request variables, in order.
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    /// Request body.
    pub body: Vec<u8>,
}

/// A GET of `uri` (path and optional query) as nginx would send it, with keep-conn on.
pub fn get(id: u16, uri: &str) -> Req {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let vars = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "ringfast-tests"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", uri),
        ("SCRIPT_NAME", path),
        ("PATH_INFO", ""),
        ("QUERY_STRING", query),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("HTTP_HOST", "localhost"),
    ];
    Req {
        id,
        keep_conn: true,
        params: vars
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        body: Vec::new(),
    }
}

/// A POST of `body` to `uri`, with CONTENT_LENGTH and CONTENT_TYPE, keep-conn on.
pub fn post(id: u16, uri: &str, body: &[u8]) -> Req {
    get(id, uri)
        .param("REQUEST_METHOD", "POST")
        .param("CONTENT_LENGTH", &body.len().to_string())
        .param("CONTENT_TYPE", "application/octet-stream")
        .body(body)
}

impl Req {
    /// Sets the keep-conn flag.
    pub fn keep(mut self, keep_conn: bool) -> Req {
        self.keep_conn = keep_conn;
        self
    }

    /// Sets a variable, replacing an existing one of that name.
    pub fn param(mut self, name: &str, value: &str) -> Req {
        self = self.without(name);
        self.params
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    /// Removes a variable.
    pub fn without(mut self, name: &str) -> Req {
        self.params.retain(|(n, _)| n != name.as_bytes());
        self
    }

    /// Sets the body (variables unchanged).
    pub fn body(mut self, body: &[u8]) -> Req {
        self.body = body.to_vec();
        self
    }

    /// The whole request on the wire (BEGIN_REQUEST, PARAMS, STDIN), via the engine's encoder.
    pub fn encode(&self) -> Vec<u8> {
        let params: Vec<(&[u8], &[u8])> = self
            .params
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        let mut out = Vec::new();
        fcgi::encode_request(
            &mut out,
            &fcgi::RequestSpec {
                request_id: self.id,
                keep_conn: self.keep_conn,
                params: &params,
                body: &self.body,
            },
        );
        out
    }

    /// BEGIN_REQUEST alone.
    pub fn encode_begin(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let flags = if self.keep_conn {
            fcgi::FLAG_KEEP_CONN
        } else {
            0
        };
        fcgi::encode_begin_request(&mut out, self.id, fcgi::role::RESPONDER, flags);
        out
    }

    /// The PARAMS stream content (name-value pairs), unframed.
    pub fn params_stream(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in &self.params {
            fcgi::encode_nv(&mut out, n, v);
        }
        out
    }

    /// BEGIN_REQUEST, then the PARAMS stream cut into records of `chunk` bytes, then the empty
    /// PARAMS (no STDIN).
    pub fn encode_head_chunked(&self, chunk: usize) -> Vec<u8> {
        let mut out = self.encode_begin();
        for c in self.params_stream().chunks(chunk) {
            fcgi::encode_record(&mut out, rtype::PARAMS, self.id, c);
        }
        fcgi::encode_record(&mut out, rtype::PARAMS, self.id, &[]);
        out
    }

    /// BEGIN_REQUEST and the whole PARAMS stream with its end (no STDIN).
    pub fn encode_head(&self) -> Vec<u8> {
        self.encode_head_chunked(fcgi::MAX_CONTENT_LEN)
    }
}

/// One record, encoded.
pub fn record(rtype: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    fcgi::encode_record(&mut out, rtype, id, content);
    out
}

/// `data` as STDIN records of `chunk` bytes (not ended).
pub fn stdin_records(id: u16, data: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(chunk) {
        fcgi::encode_record(&mut out, rtype::STDIN, id, c);
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Retries `f` until it returns true or `timeout` passes; returns whether it did.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
