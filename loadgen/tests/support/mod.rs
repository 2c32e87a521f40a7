//! Shared helpers for ringfast-load's integration tests: temporary directories, free loopback
//! ports, child processes killed (with their process group) on drop, the `ringfast` engine,
//! nginx and php-fpm started on loopback with generated configs, and a runner for the
//! `ringfast-load` binary that returns its JSON result.
//!
//! A missing server binary fails the test with a pointer to scripts/test.sh, never a silent pass.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a server gets to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh world-traversable directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `ringfast-load-<label>-<pid>-<n>` under the system temp directory.
    pub fn new(label: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("ringfast-load-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir(path)
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to `name` inside the directory (mode 0644), creating parents.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent");
            fs::set_permissions(parent, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        fs::write(&path, contents).expect("write temp file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on 127.0.0.1 (the kernel's pick, released at once).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local_addr").port()
}

/// Where a server listens.
#[derive(Clone, Debug)]
pub enum Addr {
    /// TCP on loopback.
    Tcp(SocketAddr),
    /// A Unix socket.
    Unix(PathBuf),
}

impl Addr {
    /// 127.0.0.1 with a free port.
    pub fn loopback() -> Addr {
        Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], free_port())))
    }

    /// The ringfast-load TARGET for `scheme` and `path`.
    pub fn target(&self, scheme: &str, path: &str) -> String {
        match self {
            Addr::Tcp(a) => format!("{scheme}://{a}{path}"),
            Addr::Unix(p) => format!("{scheme}+unix:{}:{path}", p.display()),
        }
    }

    /// The engine's listener syntax.
    pub fn engine_arg(&self) -> String {
        match self {
            Addr::Tcp(a) => a.to_string(),
            Addr::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    fn accepts(&self) -> bool {
        match self {
            Addr::Tcp(a) => TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok(),
            Addr::Unix(p) => UnixStream::connect(p).is_ok(),
        }
    }
}

/// A child in its own process group; SIGKILL to the group and reaped on drop.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd`, stdout and stderr to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).expect("create log");
        let err = out.try_clone().expect("dup log");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    /// What the process wrote so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits until `addr` accepts connections; panics with the log if the process exits first.
    pub fn wait_listening(&mut self, addr: &Addr) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "{} exited ({st}) before listening:\n{}",
                    self.name,
                    self.log()
                );
            }
            if addr.accepts() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {addr:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group we created; the leader is not reaped yet.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("=== {} log ===\n{}", self.name, self.log());
        }
    }
}

/// Panics unless `path` exists, naming the Debian package.
pub fn require_binary(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing (Debian package `{package}`): run scripts/test.sh, which installs it"
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The `ringfast` binary of this workspace: in the test executable's target directory, built
/// with `cargo build -p engine --bin ringfast` when missing.
pub fn ringfast_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/ringfast
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable in target/<profile>/deps");
    let bin = profile_dir.join("ringfast");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "engine", "--bin", "ringfast"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p engine --bin ringfast failed"
        );
    }
    bin
}

/// A running ringfast with the diag app.
pub struct Engine {
    _proc: Proc,
}

impl Engine {
    /// Starts `ringfast --app diag --workers 1` with `listeners` as (option, address) pairs,
    /// e.g. `("--fastcgi", addr)`.
    pub fn diag(dir: &TempDir, listeners: &[(&str, &Addr)]) -> Engine {
        Engine::diag_with(dir, listeners, &[])
    }

    /// [`Engine::diag`] with `extra` options.
    pub fn diag_with(dir: &TempDir, listeners: &[(&str, &Addr)], extra: &[&str]) -> Engine {
        let mut cmd = Command::new(ringfast_bin());
        cmd.args(["--app", "diag", "--workers", "1"]).args(extra);
        for (option, addr) in listeners {
            cmd.args([option.to_string(), addr.engine_arg()]);
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut proc = Proc::spawn("ringfast", cmd, dir.join(&format!("engine-{n}.log")));
        for (_, addr) in listeners {
            proc.wait_listening(addr);
        }
        Engine { _proc: proc }
    }
}

/// The result of one ringfast-load run.
pub struct Run {
    /// Exit status code.
    pub code: i32,
    /// The JSON result (`Null` when none was written).
    pub json: serde_json::Value,
    /// The human summary and messages (stderr).
    pub stderr: String,
}

impl Run {
    /// `json[key]` as u64 (panics with the whole result when absent).
    pub fn u64(&self, key: &str) -> u64 {
        self.json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} missing in {}\n{}", self.json, self.stderr))
    }

    /// `json[key]` as f64.
    pub fn f64(&self, key: &str) -> f64 {
        self.json[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {}\n{}", self.json, self.stderr))
    }

    /// `json["errors"][kind]`.
    pub fn errors(&self, kind: &str) -> u64 {
        self.json["errors"][kind]
            .as_u64()
            .unwrap_or_else(|| panic!("errors.{kind} missing in {}\n{}", self.json, self.stderr))
    }

    /// The sum of all error counts.
    pub fn total_errors(&self) -> u64 {
        ["connect", "protocol", "timeout", "status", "body"]
            .iter()
            .map(|k| self.errors(k))
            .sum()
    }

    /// `json["latency_us"][key]`.
    pub fn latency(&self, key: &str) -> f64 {
        self.json["latency_us"][key]
            .as_f64()
            .unwrap_or_else(|| panic!("latency_us.{key} missing in {}", self.json))
    }

    /// Panics unless the run exited 0 with `n` successful requests and no error.
    pub fn assert_clean(&self, n: u64) {
        assert_eq!(self.code, 0, "{}", self.stderr);
        assert_eq!(self.u64("requests"), n, "{}\n{}", self.json, self.stderr);
        assert_eq!(self.total_errors(), 0, "{}\n{}", self.json, self.stderr);
    }
}

/// Runs `ringfast-load ARGS --json - --no-progress`.
pub fn load(args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_ringfast-load"))
        .args(args)
        .args(["--json", "-", "--no-progress"])
        .output()
        .expect("run ringfast-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// nginx on a free loopback port and a Unix socket.
pub struct Nginx {
    _proc: Proc,
    /// The TCP listener.
    pub tcp: Addr,
    /// The Unix-socket listener.
    pub unix: Addr,
}

impl Nginx {
    /// nginx with `extra` inside its `server {}` block, root = `dir/www`.
    pub fn start(dir: &TempDir, extra: &str) -> Nginx {
        require_binary("/usr/sbin/nginx", "nginx");
        let tcp = Addr::loopback();
        let unix = Addr::Unix(dir.join("nginx.sock"));
        let d = dir.0.display();
        let listen = match &tcp {
            Addr::Tcp(a) => a.to_string(),
            Addr::Unix(_) => unreachable!("loopback is TCP"),
        };
        let user = if is_root() { "user root;" } else { "" };
        let conf = format!(
            "{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/nginx-client-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    scgi_temp_path {d}/nginx-scgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    keepalive_requests 1000000;
    server {{
        listen {listen};
        listen unix:{d}/nginx.sock;
        root {d}/www;
{extra}
    }}
}}
"
        );
        let conf_path = dir.write("nginx.conf", conf);
        let mut cmd = Command::new("/usr/sbin/nginx");
        cmd.arg("-p").arg(&dir.0).arg("-c").arg(&conf_path);
        let mut proc = Proc::spawn("nginx", cmd, dir.join("nginx.out"));
        proc.wait_listening(&tcp);
        proc.wait_listening(&unix);
        Nginx {
            _proc: proc,
            tcp,
            unix,
        }
    }
}

/// php-fpm 8.2 in the foreground with a static pool of two children.
pub struct PhpFpm {
    _proc: Proc,
    /// Where the pool listens.
    pub addr: Addr,
}

impl PhpFpm {
    /// The php-fpm binary (Debian package php8.2-fpm).
    pub const BIN: &'static str = "/usr/sbin/php-fpm8.2";

    /// Starts a pool listening on `addr`.
    pub fn start(dir: &TempDir, addr: Addr) -> PhpFpm {
        require_binary(Self::BIN, "php8.2-fpm");
        let d = dir.0.display();
        let listen = match &addr {
            Addr::Tcp(a) => a.to_string(),
            Addr::Unix(p) => p.display().to_string(),
        };
        let conf = format!(
            "[global]
error_log = {d}/php-fpm.log
pid = {d}/php-fpm.pid
[load]
listen = {listen}
listen.mode = 0666
pm = static
pm.max_children = 2
"
        );
        let conf_path = dir.write("php-fpm.conf", conf);
        let mut cmd = Command::new(Self::BIN);
        cmd.arg("-F")
            .arg("-y")
            .arg(&conf_path)
            .arg("-p")
            .arg(&dir.0);
        if is_root() {
            cmd.arg("-R");
        }
        let mut proc = Proc::spawn("php-fpm", cmd, dir.join("php-fpm.out"));
        proc.wait_listening(&addr);
        PhpFpm { _proc: proc, addr }
    }
}
