//! The programs the contenders need: found on the machine, installed when missing (apt-get for
//! Debian packages, pip into a venv for PyPI ones), or built (the floor).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::contender::{Contender, Server};
use crate::endpoint::Proto;
use crate::error::{io_ctx, BenchError};

/// Debian packages, each with a file that shows it is installed.
pub const APT: &[(&str, &str)] = &[
    ("nginx", "/usr/sbin/nginx"),
    ("php-fpm", "/usr/sbin/php-fpm8.2"),
    ("uwsgi", "/usr/bin/uwsgi"),
    (
        "uwsgi-plugin-python3",
        "/usr/lib/uwsgi/plugins/python3_plugin.so",
    ),
    ("apache2", "/usr/sbin/apache2"),
    (
        "libapache2-mod-wsgi-py3",
        "/usr/lib/apache2/modules/mod_wsgi.so",
    ),
    ("wrk", "/usr/bin/wrk"),
    ("python3-venv", "/usr/lib/python3.11/ensurepip/__init__.py"),
    ("gcc", "/usr/bin/gcc"),
];

/// PyPI packages installed into the harness's venv, pinned so reruns compare like with like.
pub const PIP: &[&str] = &["flup==1.0.3", "gunicorn==27.0.1", "granian==2.8.7"];

/// The floor's source, compiled by the harness with `gcc -O2`.
pub const FLOOR_SOURCE: &str = include_str!("../floor/fcgi_floor.c");

/// Paths of everything found; `None` when missing.
#[derive(Debug, Clone, Default)]
pub struct Tools {
    /// target/release/ringfast (or --bin-dir).
    pub ringfast: Option<PathBuf>,
    /// ringfast was built with the `wsgi` feature (it links libpython).
    pub ringfast_wsgi: bool,
    /// ringfast-load.
    pub load: Option<PathBuf>,
    /// wrk.
    pub wrk: Option<PathBuf>,
    /// nginx.
    pub nginx: Option<PathBuf>,
    /// php-fpm.
    pub php_fpm: Option<PathBuf>,
    /// uwsgi with the python3 plugin.
    pub uwsgi: Option<PathBuf>,
    /// apache2 with mod_wsgi.
    pub apache: Option<PathBuf>,
    /// The venv's bin/ with flup, gunicorn and granian.
    pub venv_bin: Option<PathBuf>,
    /// The compiled floor.
    pub floor: Option<PathBuf>,
    /// What went wrong while preparing (shown in the report).
    pub notes: Vec<String>,
}

fn exists(p: &str) -> Option<PathBuf> {
    Path::new(p).exists().then(|| PathBuf::from(p))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Output tail of a failed command, for error messages.
fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a command, mapping a failure to [`BenchError::Install`].
fn run(what: &str, cmd: &mut Command) -> Result<(), BenchError> {
    let out = cmd.output().map_err(io_ctx(format!("running {what}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let mut detail = tail(&out.stdout, 5);
        detail.push('\n');
        detail.push_str(&tail(&out.stderr, 10));
        Err(BenchError::Install {
            what: what.to_string(),
            detail,
        })
    }
}

/// Installs the missing Debian packages (as root), with services kept from starting.
fn apt_install(missing: &[&str]) -> Result<(), BenchError> {
    if !is_root() {
        return Err(BenchError::Install {
            what: missing.join(" "),
            detail: "not root: install them with apt-get".into(),
        });
    }
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let created = !policy.exists();
    if created {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").map_err(io_ctx("writing policy-rc.d"))?;
        let _ = Command::new("chmod").arg("755").arg(policy).status();
    }
    let install = |update: bool| {
        if update {
            run("apt-get update", Command::new("apt-get").arg("update"))?;
        }
        run(
            &format!("apt-get install {}", missing.join(" ")),
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y"])
                .args(missing),
        )
    };
    let result = install(false).or_else(|_| install(true));
    if created {
        let _ = std::fs::remove_file(policy);
    }
    result
}

/// Creates the venv and pip-installs [`PIP`] unless they are importable already.
fn prepare_venv(venv: &Path, install: bool) -> Result<PathBuf, BenchError> {
    let bin = venv.join("bin");
    let python = bin.join("python");
    let importable = || {
        Command::new(&python)
            .args(["-c", "import flup.server.fcgi, gunicorn, granian"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if python.exists() && importable() {
        return Ok(bin);
    }
    if !install {
        return Err(BenchError::Install {
            what: PIP.join(" "),
            detail: format!("not in {} and --no-install given", venv.display()),
        });
    }
    if !python.exists() {
        run(
            "python3 -m venv",
            Command::new("/usr/bin/python3")
                .arg("-m")
                .arg("venv")
                .arg(venv),
        )?;
    }
    run(
        &format!("pip install {}", PIP.join(" ")),
        Command::new(bin.join("pip"))
            .args(["install", "-q"])
            .args(PIP),
    )?;
    if importable() {
        Ok(bin)
    } else {
        Err(BenchError::Install {
            what: PIP.join(" "),
            detail: "installed but not importable".into(),
        })
    }
}

/// Whether a binary links libpython (ringfast built with the `wsgi` feature).
pub fn links_libpython(bin: &Path) -> bool {
    std::fs::read(bin).is_ok_and(|b| b.windows(10).any(|w| w == b"libpython3"))
}

/// Writes the floor's source into `work` and compiles it (`gcc -O2`).
pub fn build_floor(work: &Path) -> Result<PathBuf, BenchError> {
    let src = work.join("fcgi_floor.c");
    let bin = work.join("fcgi_floor");
    std::fs::write(&src, FLOOR_SOURCE).map_err(io_ctx(format!("writing {}", src.display())))?;
    run(
        "gcc -O2 fcgi_floor.c",
        Command::new("gcc")
            .args(["-O2", "-Wall", "-o"])
            .arg(&bin)
            .arg(&src),
    )?;
    Ok(bin)
}

impl Tools {
    /// Finds, installs and builds everything. Failures become notes; the contenders that need
    /// what is missing are skipped.
    pub fn prepare(
        bin_dir: &Path,
        loadgen: Option<&Path>,
        work_dir: &Path,
        install: bool,
    ) -> Tools {
        let mut t = Tools::default();
        // Services run in their own temporary directory: every path must be absolute.
        let bin_dir = &std::path::absolute(bin_dir).unwrap_or_else(|_| bin_dir.to_path_buf());
        let work_dir = &std::path::absolute(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
        let missing: Vec<&str> = APT
            .iter()
            .filter(|(_, probe)| !Path::new(probe).exists())
            .map(|(pkg, _)| *pkg)
            .collect();
        if !missing.is_empty() {
            if install {
                eprintln!("ringfast-bench: installing {}", missing.join(" "));
                if let Err(e) = apt_install(&missing) {
                    t.notes.push(e.to_string());
                }
            } else {
                t.notes.push(format!(
                    "missing Debian packages (--no-install): {}",
                    missing.join(" ")
                ));
            }
        }
        if let Err(e) = std::fs::create_dir_all(work_dir) {
            t.notes
                .push(format!("cannot create {}: {e}", work_dir.display()));
        }
        t.ringfast = Some(bin_dir.join("ringfast")).filter(|p| p.exists());
        t.load = Some(loadgen.map_or_else(|| bin_dir.join("ringfast-load"), Path::to_path_buf))
            .and_then(|p| std::path::absolute(p).ok())
            .filter(|p| p.exists());
        t.wrk = exists("/usr/bin/wrk");
        t.nginx = exists("/usr/sbin/nginx");
        t.php_fpm = exists("/usr/sbin/php-fpm8.2");
        t.uwsgi = exists("/usr/bin/uwsgi").filter(|_| Path::new(APT[3].1).exists());
        t.apache = exists("/usr/sbin/apache2").filter(|_| Path::new(APT[5].1).exists());
        t.ringfast_wsgi = t.ringfast.as_deref().is_some_and(links_libpython);
        if t.ringfast.is_some() && !t.ringfast_wsgi {
            t.notes.push(
                "ringfast was built without the `wsgi` feature: the ringfast-wsgi rows are skipped \
                 (PYO3_PYTHON=/usr/bin/python3 cargo build --release -p engine --features wsgi)"
                    .into(),
            );
        }
        if t.ringfast.is_none() {
            t.notes.push(format!(
                "{}/ringfast not found: build it with `cargo build --release -p engine`",
                bin_dir.display()
            ));
        }
        if t.load.is_none() {
            t.notes.push(format!(
                "{}/ringfast-load not found (`cargo build --release -p loadgen`): only HTTP contenders can run, driven by wrk",
                bin_dir.display()
            ));
        }
        match prepare_venv(&work_dir.join("venv"), install) {
            Ok(bin) => t.venv_bin = Some(bin),
            Err(e) => t.notes.push(e.to_string()),
        }
        match build_floor(work_dir) {
            Ok(bin) => t.floor = Some(bin),
            Err(e) => t.notes.push(e.to_string()),
        }
        t
    }

    /// Why `c` cannot run here, or `None` when it can.
    pub fn missing_for(&self, c: &Contender) -> Option<String> {
        let need = |p: &Option<PathBuf>, what: &str| p.is_none().then(|| format!("{what} missing"));
        let server = match c.server {
            Server::Ringfast { .. } => need(&self.ringfast, "ringfast binary"),
            Server::RingfastWsgi => need(&self.ringfast, "ringfast binary").or_else(|| {
                (!self.ringfast_wsgi).then(|| "ringfast built without the wsgi feature".into())
            }),
            Server::Floor => need(&self.floor, "floor binary (gcc)"),
            Server::PhpFpm => need(&self.php_fpm, "php-fpm"),
            Server::UwsgiFcgi | Server::UwsgiNative => need(&self.uwsgi, "uwsgi + python3 plugin"),
            Server::Flup | Server::GunicornSync | Server::GunicornGthread | Server::Granian => {
                need(&self.venv_bin, "Python venv (flup, gunicorn, granian)")
            }
            Server::ModWsgi => need(&self.apache, "apache2 + mod_wsgi"),
            Server::NginxReturn => None,
        };
        let nginx = (c.via_nginx || c.server == Server::NginxReturn)
            .then(|| need(&self.nginx, "nginx"))
            .flatten();
        let client = if c.client_proto() == Proto::Http {
            (self.load.is_none() && self.wrk.is_none()).then(|| "no load generator".to_string())
        } else {
            need(&self.load, "ringfast-load (not built yet)")
        };
        server.or(nginx).or(client)
    }
}
