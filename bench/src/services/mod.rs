//! How each contender is started: the programs, their generated configs (written into the
//! contender's temporary directory) and the address the load generator targets.

mod config;
pub mod run;

use std::path::{Path, PathBuf};

use crate::cli::Plan;
use crate::contender::{Contender, Server};
use crate::endpoint::{Endpoint, Proto};
use crate::error::{io_ctx, BenchError};
use crate::tools::Tools;

pub use run::{Running, TempDir};

/// The body every contender answers with.
pub const HELLO: &str = "Hello, World!";

/// The path every request asks for.
pub const PATH: &str = "/hello";

/// One process to start.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// Name (log file, messages).
    pub name: String,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Ready once this accepts connections.
    pub ready: Endpoint,
}

/// Everything needed to run and drive one contender.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Processes, started in order (backend first, nginx last).
    pub spawns: Vec<Spawn>,
    /// What the load generator connects to.
    pub target: Endpoint,
    /// Extra request variables (`--param`) for direct FastCGI (php-fpm's SCRIPT_FILENAME).
    pub params: Vec<String>,
    /// Whether the body is checked byte for byte (not for chunked responses).
    pub expect_body: bool,
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, BenchError> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(io_ctx(format!("writing {}", p.display())))?;
    Ok(p)
}

fn tool(p: &Option<PathBuf>, what: &str) -> Result<PathBuf, BenchError> {
    p.clone()
        .ok_or_else(|| BenchError::Usage(format!("{what} is not available")))
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

/// Builds the configs of `c` in `dir` and says what to start.
pub fn layout(c: &Contender, tools: &Tools, plan: &Plan, dir: &Path) -> Result<Layout, BenchError> {
    let mut spawns = Vec::new();
    let mut params = Vec::new();
    let mut php_file = None;
    let backend = Endpoint::new(c.transport, dir, "backend").map_err(io_ctx("free port"))?;
    let (procs, threads) = (plan.py_procs, plan.py_threads);
    if c.server.is_python() {
        write(dir, "app.py", config::WSGI_APP)?;
    }
    let mut spawn = |name: &str, program: PathBuf, args: Vec<String>| {
        spawns.push(Spawn {
            name: name.to_string(),
            program,
            args,
            env: Vec::new(),
            ready: backend.clone(),
        });
    };
    match c.server {
        Server::Ringfast { proto, metrics } => {
            let flag = match proto {
                Proto::Scgi => "--scgi",
                Proto::Ajp => "--ajp",
                _ => "--fastcgi",
            };
            let metrics = if metrics {
                format!(
                    "127.0.0.1:{}",
                    crate::endpoint::free_port().map_err(io_ctx("free port"))?
                )
            } else {
                s("off")
            };
            let mut args = vec![
                s(flag),
                backend.arg(),
                s("--app"),
                s("hello"),
                s("--workers"),
                s(1),
                s("--socket-mode"),
                s("0666"),
                s("--log-level"),
                s("warn"),
                s("--metrics"),
                metrics,
            ];
            args.extend(c.engine_args.iter().cloned());
            spawn("ringfast", tool(&tools.ringfast, "ringfast")?, args);
        }
        Server::RingfastWsgi => {
            let metrics = crate::endpoint::free_port().map_err(io_ctx("free port"))?;
            let mut args = vec![
                s("--fastcgi"),
                backend.arg(),
                s("--wsgi"),
                s("app:application"),
                s("--chdir"),
                dir.display().to_string(),
                s("--processes"),
                s(procs),
                s("--threads"),
                s(threads),
                s("--workers"),
                s(1),
                s("--socket-mode"),
                s("0666"),
                s("--log-level"),
                s("warn"),
                s("--metrics"),
                format!("127.0.0.1:{metrics}"),
            ];
            args.extend(c.engine_args.iter().cloned());
            spawn("ringfast-wsgi", tool(&tools.ringfast, "ringfast")?, args);
        }
        Server::Floor => spawn("floor", tool(&tools.floor, "floor")?, vec![backend.arg()]),
        Server::PhpFpm => {
            let php = write(dir, "hello.php", config::PHP_APP)?;
            let conf = write(
                dir,
                "php-fpm.conf",
                &config::php_fpm(dir, &backend, plan.connections),
            )?;
            params.push(format!("SCRIPT_FILENAME={}", php.display()));
            php_file = Some(php);
            spawn(
                "php-fpm",
                tool(&tools.php_fpm, "php-fpm")?,
                vec![s("-F"), s("-R"), s("-y"), conf.display().to_string()],
            );
        }
        Server::UwsgiFcgi | Server::UwsgiNative => {
            let socket = if c.server == Server::UwsgiFcgi {
                "--fastcgi-socket"
            } else {
                "--uwsgi-socket"
            };
            spawn(
                "uwsgi",
                tool(&tools.uwsgi, "uwsgi")?,
                config::uwsgi_args(dir, socket, &backend, procs, threads),
            );
        }
        Server::Flup => {
            let script = write(dir, "flup_server.py", config::FLUP_SERVER)?;
            let venv = tool(&tools.venv_bin, "venv")?;
            // flup is thread-per-connection and hangs up on a connection when its pool is
            // full: one thread per load-generator connection.
            let threads = plan.connections.div_ceil(procs);
            spawn(
                "flup",
                venv.join("python"),
                vec![
                    script.display().to_string(),
                    backend.arg(),
                    s(procs),
                    s(threads),
                ],
            );
        }
        Server::GunicornSync | Server::GunicornGthread => {
            let venv = tool(&tools.venv_bin, "venv")?;
            let mut args = vec![
                s("--workers"),
                s(procs),
                s("--bind"),
                backend.plain(),
                s("--chdir"),
                dir.display().to_string(),
                s("--log-level"),
                s("warning"),
            ];
            if c.server == Server::GunicornGthread {
                args.extend([
                    s("--worker-class"),
                    s("gthread"),
                    s("--threads"),
                    s(threads),
                ]);
            } else {
                args.extend([s("--worker-class"), s("sync")]);
            }
            args.push(s("app:application"));
            spawn("gunicorn", venv.join("gunicorn"), args);
        }
        Server::Granian => {
            let venv = tool(&tools.venv_bin, "venv")?;
            let port = backend
                .port()
                .ok_or_else(|| BenchError::Usage("granian runs over TCP here".into()))?;
            spawn(
                "granian",
                venv.join("granian"),
                vec![
                    s("--interface"),
                    s("wsgi"),
                    s("--host"),
                    s("127.0.0.1"),
                    s("--port"),
                    s(port),
                    s("--workers"),
                    s(procs),
                    s("--blocking-threads"),
                    s(threads),
                    s("--runtime-threads"),
                    s(1),
                    s("--no-access-log"),
                    s("--log-level"),
                    s("warning"),
                    s("--working-dir"),
                    dir.display().to_string(),
                    s("app:application"),
                ],
            );
        }
        Server::ModWsgi => {
            let port = backend
                .port()
                .ok_or_else(|| BenchError::Usage("Apache runs over TCP here".into()))?;
            let conf = write(
                dir,
                "apache2.conf",
                &config::apache(dir, port, procs, threads),
            )?;
            spawns.push(Spawn {
                name: s("apache2"),
                program: tool(&tools.apache, "apache2")?,
                args: vec![s("-f"), conf.display().to_string(), s("-DFOREGROUND")],
                env: ["APACHE_RUN_DIR", "APACHE_LOCK_DIR", "APACHE_LOG_DIR"]
                    .iter()
                    .map(|k| (s(k), dir.display().to_string()))
                    .collect(),
                ready: backend.clone(),
            });
        }
        Server::NginxReturn => {}
    }
    let front = c.via_nginx || c.server == Server::NginxReturn;
    let target = if front {
        let port = crate::endpoint::free_port().map_err(io_ctx("free port"))?;
        let upstream = (c.server != Server::NginxReturn).then(|| config::Upstream {
            proto: c.server.proto(),
            addr: backend.clone(),
            keepalive: c.keepalive,
            script: php_file.clone(),
        });
        let conf = write(
            dir,
            "nginx.conf",
            &config::nginx(dir, port, upstream.as_ref()),
        )?;
        let ep = Endpoint::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        spawns.push(Spawn {
            name: s("nginx"),
            program: tool(&tools.nginx, "nginx")?,
            args: vec![
                s("-p"),
                dir.display().to_string(),
                s("-e"),
                dir.join("nginx-error.log").display().to_string(),
                s("-c"),
                conf.display().to_string(),
                s("-g"),
                s("daemon off;"),
            ],
            env: Vec::new(),
            ready: ep.clone(),
        });
        params.clear();
        ep
    } else {
        backend
    };
    Ok(Layout {
        spawns,
        target,
        params,
        // nginx sends PHP's answer chunked (PHP sets no Content-Length).
        expect_body: !(c.via_nginx && c.server == Server::PhpFpm),
    })
}
