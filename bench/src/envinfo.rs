//! The environment a report was measured in: CPU, kernel, distribution and the version of every
//! contender and load generator.

use std::path::Path;
use std::process::Command;

use crate::tools::Tools;

/// First line of a command's output (stdout, else stderr), or `None`.
fn first_line(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let text = String::from_utf8_lossy(&text);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())?
        .trim()
        .to_string();
    Some(line)
}

fn deb_version(pkg: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", pkg])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The CPU model from /proc/cpuinfo.
fn cpu_model() -> Option<String> {
    let text = read("/proc/cpuinfo")?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
}

/// Key-value lines for the report's environment section.
pub fn collect(tools: &Tools) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            env.push((k.to_string(), v));
        }
    };
    put(
        "CPU",
        cpu_model().map(|m| format!("{m}, {} CPUs online", crate::procfs::cpus())),
    );
    put("kernel", read("/proc/sys/kernel/osrelease"));
    put(
        "distribution",
        read("/etc/debian_version").map(|v| format!("Debian {v}")),
    );
    put(
        "io_uring_disabled",
        read("/proc/sys/kernel/io_uring_disabled"),
    );
    put(
        "git commit",
        first_line(Path::new("git"), &["rev-parse", "--short", "HEAD"]),
    );
    if let Some(p) = &tools.ringfast {
        put("ringfast", first_line(p, &["--version"]));
    }
    if let Some(p) = &tools.load {
        put("ringfast-load", first_line(p, &["--version"]));
    }
    put(
        "fcgi_floor",
        first_line(Path::new("gcc"), &["--version"])
            .map(|g| format!("bench/floor/fcgi_floor.c, gcc -O2 ({g})")),
    );
    for pkg in [
        "nginx",
        "php8.2-fpm",
        "uwsgi",
        "uwsgi-plugin-python3",
        "apache2",
        "libapache2-mod-wsgi-py3",
        "python3.11",
        "wrk",
    ] {
        put(
            pkg,
            deb_version(pkg).map(|v| format!("{v} (Debian package)")),
        );
    }
    if let Some(bin) = &tools.venv_bin {
        let py = bin.join("python");
        for pkg in ["flup", "gunicorn", "granian"] {
            let code = format!("import importlib.metadata as m; print(m.version('{pkg}'))");
            put(
                pkg,
                first_line(&py, &["-c", &code]).map(|v| format!("{v} (PyPI, in a venv)")),
            );
        }
    }
    env
}
