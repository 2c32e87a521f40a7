//! Shared helpers for the end-to-end tests: temporary directories, free loopback ports, child
//! processes killed on drop, the `ringfast` engine, the real front ends (nginx, lighttpd, Apache
//! httpd, HAProxy) started on loopback with generated configs, and a `curl` driver.
//!
//! Every test file uses it with `mod support;`. Each test builds its own [`TempDir`], ports and
//! processes, so tests can run in parallel threads. A missing front-end binary makes the test fail
//! with a message pointing at `scripts/test.sh`, never pass silently.
//!
//! The config builders ([`Nginx`], [`Lighttpd`], [`Apache`], [`Haproxy`]) take a [`Backend`]
//! (protocol + address), so SCGI and AJP tests reuse them: every front end mounts the backend at
//! [`MOUNT`] (`/app`), and nginx adds two FastCGI-only locations (see [`Nginx`]).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a child process gets to start listening before the test fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where every front end mounts the backend application.
pub const MOUNT: &str = "/app";

/// One mebibyte.
pub const MIB: usize = 1024 * 1024;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{nanos:08x}", std::process::id())
}

// ---------------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------------

/// A fresh directory under [`std::env::temp_dir`], removed with its contents on drop.
///
/// Set `RINGFAST_KEEP_TMP=1` to keep it for inspection.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `ringfast-<label>-<pid>-<n>-<nanos>` in the system temp directory.
    ///
    /// The directory is world-traversable (0755) so front-end worker processes that drop
    /// privileges (Apache's `www-data` children) can reach sockets and files inside it.
    pub fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("ringfast-{label}-{}", unique_suffix()));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory (not created).
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates (or empties) a subdirectory and returns its path.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.join(name);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        p
    }

    /// Writes `contents` to `name` inside the directory and returns the file's path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(name);
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("RINGFAST_KEEP_TMP").is_some() {
            eprintln!("keeping {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Ports and addresses
// ---------------------------------------------------------------------------------------------

/// A free TCP port on 127.0.0.1, never the same twice within this test process.
///
/// The kernel picks it (bind to port 0); the port is released before it is returned, so another
/// program could take it in between, which is unlikely enough for tests.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// A listening address: TCP on loopback, or a Unix socket path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix stream socket path.
    Unix(PathBuf),
}

impl Addr {
    /// 127.0.0.1 with a [`free_port`].
    pub fn loopback() -> Addr {
        Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], free_port())))
    }

    /// A Unix socket named `name` inside `dir`.
    pub fn unix(dir: &TempDir, name: &str) -> Addr {
        Addr::Unix(dir.join(name))
    }

    /// The form the engine's `--fastcgi`/`--scgi`/... options take: `HOST:PORT`, `[V6]:PORT` or
    /// `unix:PATH`.
    pub fn to_arg(&self) -> String {
        match self {
            Addr::Tcp(a) => a.to_string(),
            Addr::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    /// The TCP port, if this is a TCP address.
    pub fn port(&self) -> Option<u16> {
        match self {
            Addr::Tcp(a) => Some(a.port()),
            Addr::Unix(_) => None,
        }
    }

    /// Whether a connection to the address succeeds right now (it is closed at once).
    pub fn accepts(&self) -> bool {
        match self {
            Addr::Tcp(a) => TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok(),
            Addr::Unix(p) => UnixStream::connect(p).is_ok(),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_arg())
    }
}

/// The number of ESTABLISHED TCP connections (IPv4 and IPv6) whose remote end is `port` on
/// loopback, read from `/proc/net/tcp{,6}`: i.e. connections a front end holds open to a backend
/// listening on `port`.
pub fn established_conns_to(port: u16) -> usize {
    let mut n = 0;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 4 || cols[3] != "01" {
                continue;
            }
            let remote_port = cols[2]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port) {
                n += 1;
            }
        }
    }
    n
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// A child process in its own process group, with stdout and stderr going to a log file.
///
/// On drop the whole group gets SIGKILL (so nginx and Apache workers die with their master) and
/// the child is reaped, also when the test panics.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    reaped: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` as `name` (used in messages), stdin from /dev/null, stdout and stderr
    /// appended to `log`.
    pub fn spawn(name: &str, cmd: Command, log: PathBuf) -> Proc {
        Proc::spawn_with_stdin(name, cmd, log, Stdio::null())
    }

    /// As [`Proc::spawn`], with `stdin` as descriptor 0 (e.g. an inherited listening socket).
    pub fn spawn_with_stdin(name: &str, mut cmd: Command, log: PathBuf, stdin: Stdio) -> Proc {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = out.try_clone().expect("dup log fd");
        cmd.stdin(stdin).stdout(out).stderr(err).process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
            reaped: None,
        }
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// Path of the stdout/stderr log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The exit status if the process has exited, without reaping it (the pid and the process
    /// group stay reserved until drop).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if let Some(st) = self.reaped {
            return Some(st);
        }
        // SAFETY: plain syscall on our own child's pid with a zeroed out-parameter.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PID,
                self.child.id() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            if r != 0 || info.si_pid() == 0 {
                return None;
            }
            let status = info.si_status();
            Some(match info.si_code {
                libc::CLD_EXITED => ExitStatus::from_raw((status & 0xff) << 8),
                _ => ExitStatus::from_raw(status & 0x7f),
            })
        }
    }

    /// Sends `sig` to the process only (not its group).
    pub fn signal(&self, sig: libc::c_int) {
        if self.reaped.is_none() {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        }
    }

    /// Waits up to `timeout` for the process to exit; reaps it and returns its status.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if wait_until(timeout, || self.exit_status().is_some()) {
            self.kill_group();
            let st = self.child.wait().expect("wait");
            self.reaped = Some(st);
            Some(st)
        } else {
            None
        }
    }

    /// Waits until `addr` accepts a connection. Panics with the process's log if it exits first
    /// or if `START_TIMEOUT` passes.
    pub fn wait_listening(&mut self, addr: &Addr) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(st) = self.exit_status() {
                panic!(
                    "{} exited ({st}) before listening on {addr}; its output:\n{}",
                    self.name,
                    self.log()
                );
            }
            if addr.accepts() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not listen on {addr} within {START_TIMEOUT:?}; its output:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_group(&mut self) {
        if self.reaped.is_none() {
            // SAFETY: kill(2) on the process group we created; the leader is not reaped yet, so
            // the group id cannot have been reused.
            unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

/// Reads a file as text (lossy UTF-8); empty if it does not exist.
pub fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Panics unless `path` is an executable file, telling how to install it.
pub fn require_binary(path: &str, package: &str) {
    let ok = fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    assert!(
        ok,
        "{path} is missing (Debian package `{package}`): run scripts/test.sh, which installs the \
         front ends the end-to-end tests need"
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------------

/// A running `ringfast` process.
pub struct Engine {
    /// The process.
    pub proc: Proc,
    /// The addresses it was asked to listen on (all accept connections once started).
    pub listeners: Vec<Addr>,
}

impl Engine {
    /// Starts the engine binary with `args` (logging to `engine.log` in `dir`) and waits until
    /// every address in `listeners` accepts connections.
    pub fn start(dir: &TempDir, args: &[String], listeners: &[Addr]) -> Engine {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfast"));
        cmd.args(args).env("RUST_BACKTRACE", "1");
        let log = dir.join(&format!("engine-{}.log", unique_suffix()));
        let mut proc = Proc::spawn("ringfast", cmd, log);
        for addr in listeners {
            proc.wait_listening(addr);
        }
        Engine {
            proc,
            listeners: listeners.to_vec(),
        }
    }

    /// Starts the `diag` app with two workers, serving FastCGI on `addr`, plus `extra` options.
    pub fn fastcgi_diag(dir: &TempDir, addr: &Addr, extra: &[&str]) -> Engine {
        Engine::diag(dir, Proto::FastCgi, addr, extra)
    }

    /// Starts the `diag` app with two workers, serving `proto` on `addr`, plus `extra` options.
    pub fn diag(dir: &TempDir, proto: Proto, addr: &Addr, extra: &[&str]) -> Engine {
        let mut args: Vec<String> = [proto.flag(), &addr.to_arg(), "--app", "diag"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--workers", "2", "--log-level", "info"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        Engine::start(dir, &args, std::slice::from_ref(addr))
    }

    /// The first listener.
    pub fn addr(&self) -> &Addr {
        &self.listeners[0]
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "=== ringfast output (tail) ===\n{}",
                tail(&self.proc.log(), 60)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Front ends
// ---------------------------------------------------------------------------------------------

/// The protocol a front end speaks to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// FastCGI 1.0 (responder role).
    FastCgi,
    /// SCGI.
    Scgi,
    /// AJP13.
    Ajp,
}

impl Proto {
    /// The engine option that adds a listener of this protocol.
    pub fn flag(self) -> &'static str {
        match self {
            Proto::FastCgi => "--fastcgi",
            Proto::Scgi => "--scgi",
            Proto::Ajp => "--ajp",
        }
    }
}

/// What a front end forwards to: a protocol and an address.
#[derive(Clone, Debug)]
pub struct Backend {
    /// Backend protocol.
    pub proto: Proto,
    /// Backend address.
    pub addr: Addr,
}

impl Backend {
    /// A FastCGI backend at `addr`.
    pub fn fastcgi(addr: &Addr) -> Backend {
        Backend {
            proto: Proto::FastCgi,
            addr: addr.clone(),
        }
    }
}

/// A front end running in the foreground on 127.0.0.1.
pub struct FrontEnd {
    /// Which server: "nginx", "lighttpd", "apache2" or "haproxy".
    pub kind: &'static str,
    /// The HTTP port on 127.0.0.1.
    pub port: u16,
    /// The generated config file.
    pub conf: PathBuf,
    /// The server's own error log (may equal the process log).
    pub error_log: PathBuf,
    /// The process (its whole process group is killed on drop).
    pub proc: Proc,
}

impl FrontEnd {
    /// `http://127.0.0.1:PORT` followed by `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.port)
    }

    /// The config, the process output and the error log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "--- {} config {}:", self.kind, self.conf.display());
        let _ = writeln!(s, "{}", read_lossy(&self.conf));
        let _ = writeln!(s, "--- {} output (tail):", self.kind);
        let _ = writeln!(s, "{}", tail(&self.proc.log(), 40));
        if self.error_log != self.proc.log_path() {
            let _ = writeln!(s, "--- {} error log (tail):", self.kind);
            let _ = writeln!(s, "{}", tail(&read_lossy(&self.error_log), 40));
        }
        s
    }

    fn launch(
        kind: &'static str,
        dir: &TempDir,
        port: u16,
        conf: PathBuf,
        error_log: PathBuf,
        cmd: Command,
    ) -> FrontEnd {
        let log = dir.join(&format!("{kind}-{}.out", unique_suffix()));
        let mut proc = Proc::spawn(kind, cmd, log);
        let addr = Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(st) = proc.exit_status() {
                panic!(
                    "{kind} exited ({st}) before listening on {addr}\n--- config {}:\n{}\n--- \
                     output:\n{}\n--- error log:\n{}",
                    conf.display(),
                    read_lossy(&conf),
                    proc.log(),
                    tail(&read_lossy(&error_log), 40)
                );
            }
            if addr.accepts() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{kind} did not listen on {addr} within {START_TIMEOUT:?}\n--- output:\n{}",
                proc.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        FrontEnd {
            kind,
            port,
            conf,
            error_log,
            proc,
        }
    }
}

/// nginx (`/usr/sbin/nginx`), master + one worker, in the foreground.
///
/// Locations (all forwarding to the same upstream):
/// - `/app/`: the stock params file; for FastCGI SCRIPT_NAME is the whole path, no PATH_INFO.
/// - `/split/` (FastCGI only): `fastcgi_split_path_info ^(/split)(/.*)$` and
///   `fastcgi_param PATH_INFO $fastcgi_path_info`, so SCRIPT_NAME=/split, PATH_INFO=the rest.
/// - `/unbuf/`: request buffering off, so a chunked upload is streamed with an empty
///   CONTENT_LENGTH.
#[derive(Clone, Debug)]
pub struct Nginx {
    /// Where requests go.
    pub backend: Backend,
    /// `Some(n)`: upstream `keepalive n` and (FastCGI) `fastcgi_keep_conn on`.
    pub keepalive: Option<u32>,
    /// Static files nginx serves itself: `location URL { alias DIR/; }`.
    pub aliases: Vec<(String, PathBuf)>,
}

impl Nginx {
    /// The binary.
    pub const BIN: &'static str = "/usr/sbin/nginx";

    /// A config forwarding to `backend`, without keep-alive.
    pub fn new(backend: Backend) -> Nginx {
        Nginx {
            backend,
            keepalive: None,
            aliases: Vec::new(),
        }
    }

    /// Serves the files under `dir` at the URL prefix `url` (ending in `/`) from nginx itself.
    pub fn alias(mut self, url: &str, dir: &Path) -> Nginx {
        self.aliases.push((url.to_string(), dir.to_path_buf()));
        self
    }

    /// Enables upstream keep-alive with `n` cached connections.
    pub fn keepalive(mut self, n: u32) -> Nginx {
        self.keepalive = Some(n);
        self
    }

    /// The config text; every path lives under `dir`.
    pub fn config(&self, dir: &TempDir, port: u16) -> String {
        let d = dir.path().display();
        let server = match &self.backend.addr {
            Addr::Tcp(a) => a.to_string(),
            Addr::Unix(p) => format!("unix:{}", p.display()),
        };
        let keepalive = self
            .keepalive
            .map(|n| format!("keepalive {n};"))
            .unwrap_or_default();
        let (pass, params, buffering, keep_conn) = match self.backend.proto {
            Proto::FastCgi => (
                "fastcgi_pass",
                "/etc/nginx/fastcgi_params",
                "fastcgi_request_buffering",
                if self.keepalive.is_some() {
                    "fastcgi_keep_conn on;"
                } else {
                    ""
                },
            ),
            Proto::Scgi => (
                "scgi_pass",
                "/etc/nginx/scgi_params",
                "scgi_request_buffering",
                "",
            ),
            Proto::Ajp => panic!("nginx has no AJP client"),
        };
        let split = if self.backend.proto == Proto::FastCgi {
            format!(
                "location /split/ {{\n            fastcgi_split_path_info ^(/split)(/.*)$;\n            \
                 include {params};\n            fastcgi_param PATH_INFO $fastcgi_path_info;\n            \
                 {keep_conn}\n            {pass} backend;\n        }}"
            )
        } else {
            String::new()
        };
        let user = if is_root() { "user root root;" } else { "" };
        let aliases: String = self
            .aliases
            .iter()
            .map(|(url, dir)| format!("location {url} {{ alias {}/; }}\n        ", dir.display()))
            .collect();
        format!(
            r#"# generated by engine/tests/support
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/nginx-client-body;
    fastcgi_temp_path {d}/nginx-fastcgi;
    proxy_temp_path {d}/nginx-proxy;
    scgi_temp_path {d}/nginx-scgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    client_max_body_size 0;
    upstream backend {{
        server {server};
        {keepalive}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location {MOUNT}/ {{
            include {params};
            {keep_conn}
            {pass} backend;
        }}
        {aliases}{split}
        location /unbuf/ {{
            include {params};
            {buffering} off;
            {keep_conn}
            {pass} backend;
        }}
    }}
}}
"#
        )
    }

    /// Writes the config into `dir` and starts nginx on a free port.
    pub fn start(&self, dir: &TempDir) -> FrontEnd {
        require_binary(Self::BIN, "nginx");
        let port = free_port();
        let conf = dir.write("nginx.conf", self.config(dir, port));
        let error_log = dir.join("nginx-error.log");
        let mut cmd = Command::new(Self::BIN);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(&error_log)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"]);
        FrontEnd::launch("nginx", dir, port, conf, error_log, cmd)
    }
}

/// lighttpd (`/usr/sbin/lighttpd -D`), with mod_fastcgi, mod_scgi or mod_ajp13 mounted at
/// [`MOUNT`] with `check-local` disabled: for FastCGI, SCRIPT_NAME=/app and PATH_INFO=the rest.
#[derive(Clone, Debug)]
pub struct Lighttpd {
    /// Where requests go.
    pub backend: Backend,
    /// The URL prefix mounted (default [`MOUNT`]). mod_ajp13 sends only the part of the path up
    /// to a non-root prefix (lighttpd moves the rest to PATH_INFO, which AJP cannot carry), so AJP
    /// tests mount `/`.
    pub mount: String,
    /// Extra config lines, appended (e.g. `server.modules += ( "mod_rewrite" )`).
    pub extra: Vec<String>,
    /// lighttpd starts the backend itself (`bin-path`), passing the socket it bound as
    /// descriptor 0; the backend address must be a Unix socket.
    pub bin_path: Option<String>,
}

impl Lighttpd {
    /// The binary.
    pub const BIN: &'static str = "/usr/sbin/lighttpd";

    /// A config forwarding to `backend`.
    pub fn new(backend: Backend) -> Lighttpd {
        Lighttpd {
            backend,
            mount: MOUNT.to_string(),
            extra: Vec::new(),
            bin_path: None,
        }
    }

    /// Appends a config line.
    pub fn line(mut self, line: &str) -> Lighttpd {
        self.extra.push(line.to_string());
        self
    }

    /// Lets lighttpd spawn the backend with this command line (`bin-path`, one process).
    pub fn spawn_backend(mut self, command: &str) -> Lighttpd {
        self.bin_path = Some(command.to_string());
        self
    }

    /// Mounts the backend at `mount` instead of [`MOUNT`].
    pub fn mount(mut self, mount: &str) -> Lighttpd {
        self.mount = mount.to_string();
        self
    }

    /// The config text; every path lives under `dir`.
    pub fn config(&self, dir: &TempDir, port: u16) -> String {
        let d = dir.path().display();
        let target = match &self.backend.addr {
            Addr::Tcp(a) => format!("\"host\" => \"{}\", \"port\" => {}", a.ip(), a.port()),
            Addr::Unix(p) => format!("\"socket\" => \"{}\"", p.display()),
        };
        let target = match &self.bin_path {
            Some(cmd) => format!("{target}, \"bin-path\" => \"{cmd}\", \"max-procs\" => 1"),
            None => target,
        };
        let (module, key) = match self.backend.proto {
            Proto::FastCgi => ("mod_fastcgi", "fastcgi.server"),
            Proto::Scgi => ("mod_scgi", "scgi.server"),
            Proto::Ajp => ("mod_ajp13", "ajp13.server"),
        };
        let mount = &self.mount;
        let extra = self.extra.join("\n");
        format!(
            r#"# generated by engine/tests/support
server.modules = ( "{module}" )
server.document-root = "{d}/lighttpd-docroot"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{d}/lighttpd-error.log"
server.upload-dirs = ( "{d}/lighttpd-upload" )
{key} = ( "{mount}" => ( ( {target}, "check-local" => "disable" ) ) )
{extra}
"#
        )
    }

    /// Writes the config into `dir` and starts lighttpd on a free port.
    pub fn start(&self, dir: &TempDir) -> FrontEnd {
        require_binary(Self::BIN, "lighttpd");
        dir.subdir("lighttpd-docroot");
        dir.subdir("lighttpd-upload");
        let port = free_port();
        let conf = dir.write("lighttpd.conf", self.config(dir, port));
        let error_log = dir.join("lighttpd-error.log");
        let mut cmd = Command::new(Self::BIN);
        cmd.arg("-D").arg("-f").arg(&conf);
        FrontEnd::launch("lighttpd", dir, port, conf, error_log, cmd)
    }
}

/// Apache httpd (`/usr/sbin/apache2 -DFOREGROUND`, mpm_event), with mod_proxy_fcgi,
/// mod_proxy_scgi or mod_proxy_ajp: `ProxyPass /app/ <scheme>://.../app/`. For FastCGI,
/// SCRIPT_NAME is the whole path and there is no PATH_INFO.
#[derive(Clone, Debug)]
pub struct Apache {
    /// Where requests go.
    pub backend: Backend,
    /// Adds `enablereuse=on` to the ProxyPass worker (FastCGI: KEEP_CONN and connection reuse).
    pub enablereuse: bool,
    /// Extra lines inside the `<VirtualHost>`-less server config (e.g. `SetEnv proxy-sendcl 1`).
    pub extra: Vec<String>,
    /// AJP only: adds `secret=<s>` to the ProxyPass worker (the engine's `--ajp-secret`).
    pub secret: Option<String>,
}

impl Apache {
    /// The binary.
    pub const BIN: &'static str = "/usr/sbin/apache2";
    /// Where Debian keeps the loadable modules.
    pub const MODULES: &'static str = "/usr/lib/apache2/modules";

    /// A config forwarding to `backend`, without connection reuse.
    pub fn new(backend: Backend) -> Apache {
        Apache {
            backend,
            enablereuse: false,
            extra: Vec::new(),
            secret: None,
        }
    }

    /// Adds `secret=<secret>` to the ProxyPass worker (mod_proxy_ajp).
    pub fn secret(mut self, secret: &str) -> Apache {
        self.secret = Some(secret.to_string());
        self
    }

    /// Turns `enablereuse=on` on.
    pub fn enablereuse(mut self) -> Apache {
        self.enablereuse = true;
        self
    }

    /// The config text; every path lives under `dir`.
    pub fn config(&self, dir: &TempDir, port: u16) -> String {
        let d = dir.path().display();
        let m = Self::MODULES;
        let (module, scheme) = match self.backend.proto {
            Proto::FastCgi => ("proxy_fcgi", "fcgi"),
            Proto::Scgi => ("proxy_scgi", "scgi"),
            Proto::Ajp => ("proxy_ajp", "ajp"),
        };
        let target = match &self.backend.addr {
            Addr::Tcp(a) => format!("{scheme}://{a}{MOUNT}/"),
            Addr::Unix(p) => format!("unix:{}|{scheme}://localhost{MOUNT}/", p.display()),
        };
        let mut reuse = if self.enablereuse {
            " enablereuse=on".to_string()
        } else {
            String::new()
        };
        if let Some(secret) = &self.secret {
            let _ = write!(reuse, " secret={secret}");
        }
        let user = if is_root() {
            "User www-data\nGroup www-data"
        } else {
            ""
        };
        let extra = self.extra.join("\n");
        format!(
            r#"# generated by engine/tests/support
ServerRoot "{d}"
ServerName localhost
Listen 127.0.0.1:{port}
PidFile "{d}/apache2.pid"
ErrorLog "{d}/apache2-error.log"
LogLevel warn
DefaultRuntimeDir "{d}"
Mutex file:{d} default
{user}
LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule proxy_module {m}/mod_proxy.so
LoadModule {module}_module {m}/mod_{module}.so
StartServers 1
ServerLimit 4
ThreadsPerChild 25
MinSpareThreads 25
MaxSpareThreads 75
MaxRequestWorkers 100
Timeout 60
{extra}
ProxyPass "{MOUNT}/" "{target}"{reuse}
"#
        )
    }

    /// Writes the config into `dir` and starts Apache on a free port.
    pub fn start(&self, dir: &TempDir) -> FrontEnd {
        require_binary(Self::BIN, "apache2");
        let port = free_port();
        let conf = dir.write("apache2.conf", self.config(dir, port));
        let error_log = dir.join("apache2-error.log");
        let mut cmd = Command::new(Self::BIN);
        cmd.arg("-f")
            .arg(&conf)
            .arg("-DFOREGROUND")
            // apache2 refuses to start without these when run directly instead of apache2ctl.
            .env("APACHE_RUN_DIR", dir.path())
            .env("APACHE_LOCK_DIR", dir.path())
            .env("APACHE_LOG_DIR", dir.path());
        FrontEnd::launch("apache2", dir, port, conf, error_log, cmd)
    }
}

/// HAProxy (`/usr/sbin/haproxy -db`) with an `fcgi-app` (FastCGI only), mounted at [`MOUNT`]
/// with `path-info ^(/app)(/.*)$`: SCRIPT_NAME=/app, PATH_INFO=the rest.
#[derive(Clone, Debug)]
pub struct Haproxy {
    /// Where requests go (must be FastCGI).
    pub backend: Backend,
    /// `option mpxs-conns` + `option max-reqs N` + `http-reuse always` when `Some(N)`.
    pub mpxs_max_reqs: Option<u32>,
    /// `option keep-conn` (HAProxy's default) or `no option keep-conn`.
    pub keep_conn: bool,
    /// `option get-values`.
    pub get_values: bool,
}

impl Haproxy {
    /// The binary.
    pub const BIN: &'static str = "/usr/sbin/haproxy";

    /// A config forwarding to `backend` with keep-conn and without multiplexing.
    pub fn new(backend: Backend) -> Haproxy {
        assert_eq!(backend.proto, Proto::FastCgi, "HAProxy only speaks FastCGI");
        Haproxy {
            backend,
            mpxs_max_reqs: None,
            keep_conn: true,
            get_values: false,
        }
    }

    /// Multiplexes up to `max_reqs` requests per connection.
    pub fn mpxs(mut self, max_reqs: u32) -> Haproxy {
        self.mpxs_max_reqs = Some(max_reqs);
        self
    }

    /// Sends FCGI_GET_VALUES on each new connection.
    pub fn get_values(mut self) -> Haproxy {
        self.get_values = true;
        self
    }

    /// The config text; every path lives under `dir`.
    pub fn config(&self, dir: &TempDir, port: u16) -> String {
        let d = dir.path().display();
        let server = match &self.backend.addr {
            Addr::Tcp(a) => a.to_string(),
            Addr::Unix(p) => p.display().to_string(),
        };
        let mut app = String::new();
        app += if self.keep_conn {
            "    option keep-conn\n"
        } else {
            "    no option keep-conn\n"
        };
        let mut reuse = "";
        if let Some(n) = self.mpxs_max_reqs {
            let _ = writeln!(app, "    option mpxs-conns\n    option max-reqs {n}");
            reuse = "    http-reuse always\n";
        }
        if self.get_values {
            app += "    option get-values\n";
        }
        format!(
            r#"# generated by engine/tests/support
global
    maxconn 1000
    nbthread 2
    pidfile {d}/haproxy.pid

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend fe
    bind 127.0.0.1:{port}
    default_backend be

backend be
    use-fcgi-app app
{reuse}    server s1 {server} proto fcgi

fcgi-app app
    docroot {d}
    path-info ^({MOUNT})(/.*)$
{app}"#
        )
    }

    /// Writes the config into `dir` and starts HAProxy on a free port.
    pub fn start(&self, dir: &TempDir) -> FrontEnd {
        require_binary(Self::BIN, "haproxy");
        let port = free_port();
        let conf = dir.write("haproxy.cfg", self.config(dir, port));
        let mut cmd = Command::new(Self::BIN);
        cmd.arg("-f").arg(&conf).arg("-db");
        let mut fe = FrontEnd::launch("haproxy", dir, port, conf.clone(), PathBuf::new(), cmd);
        fe.error_log = fe.proc.log_path().to_path_buf();
        fe
    }
}

// ---------------------------------------------------------------------------------------------
// A complete stack: temp dir + engine + front end
// ---------------------------------------------------------------------------------------------

/// A front end in front of an engine, with the temp dir holding their configs and logs.
///
/// Dropped in field order: front end, engine, directory. When dropped during a panic, it prints
/// the front end's config and logs, and the engine its output (shown with the failing test's
/// output).
pub struct Stack {
    /// The front end.
    pub front: FrontEnd,
    /// The engine behind it.
    pub engine: Engine,
    /// Configs, sockets, logs and scratch files.
    pub dir: TempDir,
}

impl Stack {
    /// Starts the `diag` engine serving FastCGI (on a loopback port, or on a Unix socket in the
    /// stack's directory when `unix`) and the front end `start` builds for it.
    pub fn fastcgi(
        label: &str,
        unix: bool,
        start: impl FnOnce(&TempDir, Backend) -> FrontEnd,
    ) -> Stack {
        Stack::fastcgi_with_args(label, unix, &[], start)
    }

    /// Like [`Stack::fastcgi`], with extra engine options (e.g. `--socket-mode 0666`).
    pub fn fastcgi_with_args(
        label: &str,
        unix: bool,
        engine_args: &[&str],
        start: impl FnOnce(&TempDir, Backend) -> FrontEnd,
    ) -> Stack {
        let dir = TempDir::new(label);
        let addr = if unix {
            Addr::unix(&dir, "ringfast.sock")
        } else {
            Addr::loopback()
        };
        let engine = Engine::fastcgi_diag(&dir, &addr, engine_args);
        let front = start(&dir, Backend::fastcgi(&addr));
        Stack { front, engine, dir }
    }

    /// Starts the `diag` engine serving `proto` on a loopback port, with `engine_args`, and the
    /// front end `start` builds for it.
    pub fn loopback(
        label: &str,
        proto: Proto,
        engine_args: &[&str],
        start: impl FnOnce(&TempDir, Backend) -> FrontEnd,
    ) -> Stack {
        let dir = TempDir::new(label);
        let addr = Addr::loopback();
        let engine = Engine::diag(&dir, proto, &addr, engine_args);
        let front = start(&dir, Backend { proto, addr });
        Stack { front, engine, dir }
    }

    /// A curl request to `path_and_query` on the front end.
    pub fn curl(&self, path_and_query: &str) -> Curl<'_> {
        Curl::new(&self.dir, self.front.url(path_and_query))
    }

    /// Front-end config and logs, for failure messages (the engine prints its own log when
    /// dropped during a panic).
    pub fn diagnostics(&self) -> String {
        self.front.diagnostics()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "=== diagnostics of the failed stack ===\n{}",
                self.diagnostics()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------------------------

/// A request made by the real `curl` binary (HTTP/1.1, no proxy).
pub struct Curl<'a> {
    dir: &'a TempDir,
    url: String,
    method: Option<String>,
    headers: Vec<String>,
    data_file: Option<PathBuf>,
    timeout_secs: u32,
}

/// What curl got back (the last response, after any `100 Continue`).
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as a JSON object of strings (the `diag` app's `/env`).
    pub fn env(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_slice(&self.body) {
            Ok(serde_json::Value::Object(m)) => m,
            other => panic!(
                "expected a JSON object, got {other:?} from body {:?}",
                self.text()
            ),
        }
    }
}

impl<'a> Curl<'a> {
    /// A GET of `url`; scratch files go to `dir`.
    pub fn new(dir: &'a TempDir, url: String) -> Curl<'a> {
        Curl {
            dir,
            url,
            method: None,
            headers: Vec::new(),
            data_file: None,
            timeout_secs: 120,
        }
    }

    /// Sets the method (`-X`).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    /// Adds a request header line (`-H 'Name: value'`).
    pub fn header(mut self, line: &str) -> Self {
        self.headers.push(line.to_string());
        self
    }

    /// POSTs the file's bytes (`--data-binary @file`).
    pub fn post_file(mut self, path: &Path) -> Self {
        self.data_file = Some(path.to_path_buf());
        self
    }

    /// POSTs `body`, written to a scratch file first.
    pub fn post(self, body: &[u8]) -> Self {
        let p = self
            .dir
            .write(&format!("req-{}.bin", unique_suffix()), body);
        self.post_file(&p)
    }

    /// Sends the body with `Transfer-Encoding: chunked` (no Content-Length).
    pub fn chunked(self) -> Self {
        self.header("Transfer-Encoding: chunked")
    }

    /// Sets `--max-time` (default 120 s).
    pub fn timeout(mut self, secs: u32) -> Self {
        self.timeout_secs = secs;
        self
    }

    /// Runs curl. Panics if curl fails (connection refused, timeout, ...).
    pub fn run(self) -> Response {
        require_binary("/usr/bin/curl", "curl");
        let id = unique_suffix();
        let body_path = self.dir.join(&format!("curl-{id}.body"));
        let head_path = self.dir.join(&format!("curl-{id}.head"));
        let mut cmd = Command::new("/usr/bin/curl");
        cmd.args(["-sS", "--noproxy", "*", "--http1.1"])
            .arg("--max-time")
            .arg(self.timeout_secs.to_string())
            .arg("-o")
            .arg(&body_path)
            .arg("-D")
            .arg(&head_path)
            .args(["-w", "%{http_code}"]);
        if let Some(m) = &self.method {
            cmd.arg("-X").arg(m);
        }
        for h in &self.headers {
            cmd.arg("-H").arg(h);
        }
        if let Some(f) = &self.data_file {
            cmd.arg("--data-binary").arg(format!("@{}", f.display()));
            if !self
                .headers
                .iter()
                .any(|h| h.to_ascii_lowercase().starts_with("content-type:"))
            {
                cmd.args(["-H", "Content-Type: application/octet-stream"]);
            }
        }
        cmd.arg(&self.url);
        let out = cmd.output().expect("run curl");
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success(),
            "curl {} failed ({}): {}",
            self.url,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let status: u16 = code
            .parse()
            .unwrap_or_else(|_| panic!("curl printed {code:?} as the status"));
        let head = read_lossy(&head_path);
        let body = fs::read(&body_path).unwrap_or_default();
        let _ = fs::remove_file(&body_path);
        let _ = fs::remove_file(&head_path);
        Response {
            status,
            headers: parse_last_header_block(&head),
            body,
        }
    }
}

/// Parses the last header block of a `curl -D` dump (skipping interim `100 Continue` blocks).
pub fn parse_last_header_block(dump: &str) -> Vec<(String, String)> {
    let blocks: Vec<&str> = dump
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    let last = blocks.last().copied().unwrap_or("");
    last.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Runs `n` copies of `f` (given the index) on their own threads at once and returns their
/// results in index order.
pub fn concurrently<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = (0..n).map(|i| s.spawn(move || f(i))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------

/// `len` deterministic pseudo-random bytes (xorshift64*), every byte value likely present.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Checks a `/stream?bytes=N` body: exactly `n` bytes, byte i = b'a' + i % 26.
pub fn check_stream_body(body: &[u8], n: usize) -> Result<(), String> {
    if body.len() != n {
        return Err(format!("stream body is {} bytes, expected {n}", body.len()));
    }
    match body
        .iter()
        .enumerate()
        .find(|&(i, &b)| b != b'a' + (i % 26) as u8)
    {
        Some((i, &b)) => Err(format!(
            "stream byte {i} is {b:#04x}, expected {:#04x}",
            b'a' + (i % 26) as u8
        )),
        None => Ok(()),
    }
}

/// Index of the first differing byte of two slices (or the shorter length), if they differ.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the front-end tests
// ---------------------------------------------------------------------------------------------

/// A string value from an `/env` object, `None` if absent.
pub fn env_var<'m>(
    env: &'m serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'m str> {
    env.get(name).map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("{name} is not a string in /env: {v}"))
    })
}

/// GET `<prefix>/hello`: 200, text/plain, "Hello, World!".
pub fn check_hello(stack: &Stack, prefix: &str) {
    let r = stack.curl(&format!("{prefix}/hello")).run();
    assert_eq!(
        r.status, 200,
        "{} GET {prefix}/hello: {r:?}",
        stack.front.kind
    );
    assert_eq!(r.text(), "Hello, World!", "{} hello body", stack.front.kind);
    let ct = r.header("Content-Type").unwrap_or("");
    assert!(
        ct.starts_with("text/plain"),
        "{} hello Content-Type {ct:?}",
        stack.front.kind
    );
}

/// POST `len` pseudo-random bytes to `<prefix>/echo` (chunked or with Content-Length) and
/// compares the echoed body byte for byte.
pub fn check_echo(stack: &Stack, prefix: &str, len: usize, chunked: bool) {
    let kind = stack.front.kind;
    let body = random_bytes(len, len as u64 ^ 0x5eed ^ chunked as u64);
    let mut c = stack
        .curl(&format!("{prefix}/echo"))
        .header("Content-Type: application/x-ringfast-test")
        .post(&body);
    if chunked {
        c = c.chunked();
    }
    let r = c.run();
    assert_eq!(
        r.status,
        200,
        "{kind} POST {prefix}/echo ({len} bytes, chunked={chunked}): status {}, body {:?}",
        r.status,
        String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
    );
    if let Some(i) = first_difference(&r.body, &body) {
        panic!(
            "{kind} echo of {len} bytes (chunked={chunked}) differs at byte {i}: got {} bytes",
            r.body.len()
        );
    }
    assert_eq!(
        r.header("Content-Type"),
        Some("application/x-ringfast-test"),
        "{kind} echo Content-Type"
    );
}

/// GET `<prefix>/stream?bytes=n&chunk=chunk` and checks length and content.
pub fn check_stream(stack: &Stack, prefix: &str, n: usize, chunk: usize) {
    let r = stack
        .curl(&format!("{prefix}/stream?bytes={n}&chunk={chunk}"))
        .run();
    assert_eq!(r.status, 200, "{} stream status", stack.front.kind);
    if let Err(e) = check_stream_body(&r.body, n) {
        panic!("{} /stream?bytes={n}&chunk={chunk}: {e}", stack.front.kind);
    }
}

/// GET (or POST `body`, chunked when `chunked`) `path_and_query` and returns the `/env` object.
pub fn fetch_env(
    stack: &Stack,
    path_and_query: &str,
    body: Option<&[u8]>,
    chunked: bool,
) -> serde_json::Map<String, serde_json::Value> {
    let mut c = stack.curl(path_and_query);
    if let Some(b) = body {
        c = c.post(b);
    }
    if chunked {
        c = c.chunked();
    }
    let r = c.run();
    assert_eq!(
        r.status, 200,
        "{} {path_and_query}: {r:?}",
        stack.front.kind
    );
    let ct = r.header("Content-Type").unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "env Content-Type {ct:?}"
    );
    r.env()
}

/// The checks every front end passes through the same mount: hello, a 1 MiB POST echo with
/// Content-Length, a 1 MiB chunked POST echo (`chunked_len` bytes; HAProxy needs less), a 5 MiB
/// stream, 404 for an unknown path and `/status/NNN`.
pub fn check_common(stack: &Stack, prefix: &str, chunked_len: usize) {
    check_hello(stack, prefix);
    check_echo(stack, prefix, MIB, false);
    check_echo(stack, prefix, chunked_len, true);
    check_echo(stack, prefix, 0, false);
    check_stream(stack, prefix, 5 * MIB, 65536);
    check_stream(stack, prefix, 100_000, 1000);
    let r = stack.curl(&format!("{prefix}/no-such-route")).run();
    assert_eq!(r.status, 404, "{} unknown route", stack.front.kind);
    let r = stack.curl(&format!("{prefix}/status/418")).run();
    assert_eq!(r.status, 418, "{} /status/418", stack.front.kind);
}

/// Asserts the front end keeps (`true`) or does not keep (`false`) an idle connection open to the
/// engine's TCP port once the requests are done. Waits up to 3 s for it to settle.
pub fn check_idle_backend_conns(stack: &Stack, expect_kept: bool) {
    let Some(port) = stack.engine.addr().port() else {
        return;
    };
    let ok = wait_until(Duration::from_secs(3), || {
        let n = established_conns_to(port);
        if expect_kept {
            n >= 1
        } else {
            n == 0
        }
    });
    assert!(
        ok,
        "{}: expected {} idle connection to the engine, found {} established to port {port}",
        stack.front.kind,
        if expect_kept { "a kept" } else { "no" },
        established_conns_to(port)
    );
}

/// The child processes of `pid` (a supervisor's worker processes), from /proc.
pub fn child_pids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
