//! Starting the services of a contender (pinned, each its own process group, logs in the
//! temporary directory), waiting until they accept connections, and stopping them: always, even
//! when the harness fails (Drop).

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Layout, Spawn};
use crate::error::{io_ctx, BenchError};

/// How long a service may take to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A temporary directory, world-readable (Apache's and nginx's workers may run as another
/// user), removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(label: &str, keep: bool) -> Result<TempDir, BenchError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "ringfast-bench-{label}-{}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).map_err(io_ctx(format!("creating {}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(io_ctx("chmod temp dir"))?;
        Ok(TempDir { path, keep })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("ringfast-bench: kept {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One started service.
#[derive(Debug)]
pub struct Service {
    /// Its name (`nginx`, `ringfast`, ...).
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// The pid, which is also its process group id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn exited(&mut self) -> Option<BenchError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(BenchError::Exited {
                name: self.name.clone(),
                status: status.to_string(),
                log: self.log_tail(),
            }),
            _ => None,
        }
    }

    fn signal_group(&self, sig: libc::c_int) {
        // SAFETY: kill on our own child's process group.
        unsafe {
            libc::kill(-self.pid(), sig);
        }
    }

    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            // The leader is gone; its group may still hold processes.
            self.signal_group(libc::SIGKILL);
            return;
        }
        self.signal_group(libc::SIGTERM);
        // A benchmark needs no graceful exit: a short grace, then SIGKILL for the whole group.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_group(libc::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The running services of one contender, stopped (in reverse order) on drop.
#[derive(Debug)]
pub struct Running {
    services: Vec<Service>,
}

impl Running {
    /// Starts every spawn of `layout` in order, each pinned to `cpus` when given, and waits until
    /// each accepts connections.
    pub fn start(layout: &Layout, dir: &Path, cpus: Option<&str>) -> Result<Running, BenchError> {
        let mut running = Running {
            services: Vec::new(),
        };
        for spawn in &layout.spawns {
            let svc = start_one(spawn, dir, cpus)?;
            running.services.push(svc);
            let svc = running.services.last_mut().expect("just pushed");
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if let Some(e) = svc.exited() {
                    return Err(e);
                }
                if spawn.ready.accepts() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(BenchError::NotReady {
                        name: svc.name.clone(),
                        timeout: READY_TIMEOUT,
                        log: svc.log_tail(),
                    });
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        Ok(running)
    }

    /// The group leaders' pids.
    pub fn roots(&self) -> Vec<i32> {
        self.services.iter().map(Service::pid).collect()
    }

    /// An error when a service has exited.
    pub fn check_alive(&mut self) -> Result<(), BenchError> {
        match self.services.iter_mut().find_map(Service::exited) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops everything (front end first).
    pub fn stop(&mut self) {
        while let Some(mut s) = self.services.pop() {
            s.stop();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

fn start_one(spawn: &Spawn, dir: &Path, cpus: Option<&str>) -> Result<Service, BenchError> {
    let log = dir.join(format!("{}.log", spawn.name));
    let out = File::create(&log).map_err(io_ctx(format!("creating {}", log.display())))?;
    let err = out.try_clone().map_err(io_ctx("dup log"))?;
    let mut cmd = match cpus {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c).arg(&spawn.program);
            cmd
        }
        None => Command::new(&spawn.program),
    };
    cmd.args(&spawn.args)
        .envs(spawn.env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            // If the harness dies without stopping its services (SIGKILL), they get SIGTERM.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(io_ctx(format!("starting {}", spawn.program.display())))?;
    Ok(Service {
        name: spawn.name.clone(),
        child,
        log,
    })
}
