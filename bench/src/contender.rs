//! The contenders: what runs, over which protocol and transport, and with what in front.

use serde::{Deserialize, Serialize};

use crate::endpoint::{Proto, Transport};

/// The server under test (the backend, when nginx is in front).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Server {
    /// ringfast `--app hello`, one worker.
    Ringfast {
        /// The protocol it listens with.
        proto: Proto,
        /// The Prometheus endpoint on (the default) or `--metrics off`.
        metrics: bool,
    },
    /// ringfast hosting the WSGI hello app (`--wsgi`, prefork), over FastCGI.
    RingfastWsgi,
    /// The minimal epoll FastCGI responder in C (bench/floor/fcgi_floor.c).
    Floor,
    /// PHP-FPM, pm=static, serving `<?php echo "Hello, World!";`.
    PhpFpm,
    /// uWSGI `--fastcgi-socket` with the WSGI hello app.
    UwsgiFcgi,
    /// uWSGI's own protocol (`--uwsgi-socket`), behind nginx `uwsgi_pass`.
    UwsgiNative,
    /// flup's FastCGI WSGIServer (threaded), preforked.
    Flup,
    /// Apache httpd event MPM with mod_wsgi in daemon mode.
    ModWsgi,
    /// gunicorn, sync workers.
    GunicornSync,
    /// gunicorn, gthread workers.
    GunicornGthread,
    /// granian `--interface wsgi`.
    Granian,
    /// nginx answering `return 200` itself: the ceiling of the path through nginx.
    NginxReturn,
}

impl Server {
    /// The protocol the server itself speaks.
    pub fn proto(self) -> Proto {
        match self {
            Server::Ringfast { proto, .. } => proto,
            Server::RingfastWsgi
            | Server::Floor
            | Server::PhpFpm
            | Server::UwsgiFcgi
            | Server::Flup => Proto::Fcgi,
            Server::UwsgiNative => Proto::Uwsgi,
            Server::ModWsgi
            | Server::GunicornSync
            | Server::GunicornGthread
            | Server::Granian
            | Server::NginxReturn => Proto::Http,
        }
    }

    /// Whether it runs the Python WSGI hello app.
    pub fn is_python(self) -> bool {
        matches!(
            self,
            Server::RingfastWsgi
                | Server::UwsgiFcgi
                | Server::UwsgiNative
                | Server::Flup
                | Server::ModWsgi
                | Server::GunicornSync
                | Server::GunicornGthread
                | Server::Granian
        )
    }
}

/// One row of the comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contender {
    /// Unique, human-readable name (`nginx > ringfast fcgi unix`).
    pub name: String,
    /// The server under test.
    pub server: Server,
    /// How the server listens.
    pub transport: Transport,
    /// nginx in front (the client speaks HTTP to nginx).
    pub via_nginx: bool,
    /// Keep-alive to the server: the load generator's keep-alive when direct, nginx's upstream
    /// `keepalive` + `fastcgi_keep_conn on` when behind nginx.
    pub keepalive: bool,
    /// FastCGI requests in flight per connection (ringfast-load `--mux`), request ids 1..=mux;
    /// 1 is no multiplexing.
    #[serde(default = "one")]
    pub mux: u32,
    /// Load-generator connections for this row, instead of the plan's `--connections`.
    #[serde(default)]
    pub connections: Option<u32>,
    /// Extra ringfast options for this row (`--io ring`, from `--engine-io`), appended to its
    /// command line; the row name says which (`io=ring`).
    #[serde(default)]
    pub engine_args: Vec<String>,
}

fn one() -> u32 {
    1
}

impl Contender {
    fn new(server: Server, transport: Transport, via_nginx: bool, keepalive: bool) -> Contender {
        let mut name = String::new();
        if via_nginx {
            name.push_str("nginx > ");
        }
        let base = match server {
            Server::Ringfast { .. } => "ringfast",
            Server::RingfastWsgi => "ringfast-wsgi",
            Server::Floor => "floor",
            Server::PhpFpm => "php-fpm",
            Server::UwsgiFcgi | Server::UwsgiNative => "uwsgi",
            Server::Flup => "flup",
            Server::ModWsgi => "apache mod_wsgi",
            Server::GunicornSync => "gunicorn sync",
            Server::GunicornGthread => "gunicorn gthread",
            Server::Granian => "granian",
            Server::NginxReturn => "nginx return 200",
        };
        name.push_str(base);
        if server != Server::NginxReturn {
            let t = match transport {
                Transport::Tcp => "tcp",
                Transport::Unix => "unix",
            };
            name.push_str(&format!(" {} {t}", server.proto().scheme()));
        }
        if !keepalive {
            name.push_str(" no-keepalive");
        }
        if let Server::Ringfast { metrics: false, .. } = server {
            name.push_str(" metrics-off");
        }
        Contender {
            name,
            server,
            transport,
            via_nginx,
            keepalive,
            mux: 1,
            connections: None,
            engine_args: Vec::new(),
        }
    }

    /// The same row driven by `connections` connections with `mux` multiplexed FastCGI requests
    /// each (`... mux 16x8`).
    pub fn multiplexed(mut self, connections: u32, mux: u32) -> Contender {
        self.name.push_str(&format!(" mux {connections}x{mux}"));
        self.connections = Some(connections);
        self.mux = mux;
        self
    }

    /// The same ringfast row with `--io VALUE` (`... io=VALUE`); [`DEFAULT_IO`] keeps the row
    /// as it is (no `--io` flag). Rows of other servers are returned unchanged.
    pub fn with_engine_io(mut self, value: &str) -> Contender {
        if self.is_ringfast() && value != DEFAULT_IO {
            self.name.push_str(&format!(" io={value}"));
            self.engine_args
                .extend(["--io".to_string(), value.to_string()]);
        }
        self
    }

    /// What the load generator speaks.
    pub fn client_proto(&self) -> Proto {
        if self.via_nginx {
            Proto::Http
        } else {
            self.server.proto()
        }
    }

    /// A ringfast row.
    pub fn is_ringfast(&self) -> bool {
        matches!(self.server, Server::Ringfast { .. } | Server::RingfastWsgi)
    }

    /// An HTTP server (no FastCGI hop): wrk drives it too, as a cross-check.
    pub fn http_only(&self) -> bool {
        !self.via_nginx && self.server.proto() == Proto::Http
    }

    /// The group the report tables use.
    pub fn group(&self) -> Group {
        if self.via_nginx || self.server == Server::NginxReturn {
            Group::BehindNginx
        } else if self.server.proto() == Proto::Http {
            Group::Http
        } else {
            Group::Direct
        }
    }
}

/// The `--engine-io` value that means "no `--io` flag" (the engine's own default).
pub const DEFAULT_IO: &str = "default";

/// How a contender is reached, for grouping the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Group {
    /// FastCGI / SCGI / AJP13 spoken directly by the load generator.
    Direct,
    /// HTTP through nginx (and nginx's own ceiling).
    BehindNginx,
    /// HTTP servers that host the WSGI app themselves.
    Http,
}

impl Group {
    /// Table heading.
    pub fn title(self) -> &'static str {
        match self {
            Group::Direct => "FastCGI, SCGI and AJP13 spoken directly by the load generator",
            Group::BehindNginx => "HTTP through nginx (one worker, on the server's CPU)",
            Group::Http => "HTTP servers hosting the WSGI app",
        }
    }
}

/// Every contender, in the order of the report.
pub fn catalog() -> Vec<Contender> {
    use Transport::{Tcp, Unix};
    let rf = |proto, metrics| Server::Ringfast { proto, metrics };
    let c = Contender::new;
    vec![
        // The floor and ringfast, direct.
        c(Server::Floor, Tcp, false, true),
        c(Server::Floor, Unix, false, true),
        c(Server::Floor, Tcp, false, false),
        c(Server::Floor, Unix, false, false),
        c(Server::Floor, Tcp, false, true).multiplexed(16, 8),
        c(rf(Proto::Fcgi, true), Tcp, false, true),
        c(rf(Proto::Fcgi, true), Unix, false, true),
        c(rf(Proto::Fcgi, true), Tcp, false, false),
        c(rf(Proto::Fcgi, true), Unix, false, false),
        c(rf(Proto::Fcgi, true), Tcp, false, true).multiplexed(16, 8),
        c(rf(Proto::Fcgi, false), Tcp, false, true),
        c(rf(Proto::Fcgi, false), Unix, false, true),
        c(rf(Proto::Scgi, true), Tcp, false, true),
        c(rf(Proto::Scgi, true), Unix, false, true),
        c(rf(Proto::Ajp, true), Tcp, false, true),
        c(rf(Proto::Ajp, true), Unix, false, true),
        // The other FastCGI servers, direct; ringfast hosting the same WSGI app among them.
        c(Server::PhpFpm, Tcp, false, true),
        c(Server::RingfastWsgi, Tcp, false, true),
        c(Server::RingfastWsgi, Unix, false, true),
        // uWSGI's FastCGI socket ignores FCGI_KEEP_CONN and closes after every answer.
        c(Server::UwsgiFcgi, Tcp, false, false),
        c(Server::UwsgiFcgi, Unix, false, false),
        c(Server::Flup, Tcp, false, true),
        c(Server::Flup, Unix, false, true),
        // Through nginx.
        c(Server::NginxReturn, Tcp, false, true),
        c(Server::Floor, Unix, true, true),
        c(Server::Floor, Tcp, true, false),
        c(rf(Proto::Fcgi, true), Tcp, true, true),
        c(rf(Proto::Fcgi, true), Unix, true, true),
        c(rf(Proto::Fcgi, true), Tcp, true, false),
        c(rf(Proto::Fcgi, false), Unix, true, true),
        c(rf(Proto::Scgi, true), Tcp, true, true),
        c(rf(Proto::Scgi, true), Unix, true, true),
        c(Server::PhpFpm, Tcp, true, true),
        c(Server::PhpFpm, Tcp, true, false),
        c(Server::UwsgiFcgi, Tcp, true, true),
        c(Server::UwsgiFcgi, Unix, true, true),
        c(Server::UwsgiNative, Tcp, true, true),
        c(Server::RingfastWsgi, Unix, true, true),
        c(Server::Flup, Unix, true, true),
        // HTTP servers hosting the same WSGI app.
        c(Server::ModWsgi, Tcp, false, true),
        c(Server::GunicornSync, Tcp, false, true),
        c(Server::GunicornGthread, Tcp, false, true),
        c(Server::Granian, Tcp, false, true),
    ]
}

/// The rows every ratio is computed against: always run, whatever `--only` says.
pub const REFERENCES: [&str; 4] = [
    "floor fcgi tcp",
    "floor fcgi unix",
    "nginx > floor fcgi unix",
    "nginx return 200",
];

/// Every ringfast row of `rows` once per `--engine-io` value (`engine_io` empty: unchanged), the
/// value in its name; the other rows as they are.
pub fn expand_engine_io(rows: Vec<Contender>, engine_io: &[String]) -> Vec<Contender> {
    if engine_io.is_empty() {
        return rows;
    }
    let mut out = Vec::new();
    for c in rows {
        if c.is_ringfast() {
            out.extend(engine_io.iter().map(|v| c.clone().with_engine_io(v)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks `--engine-io` values: words of letters, digits, `-` and `_`, each once.
pub fn check_engine_io(values: &[String]) -> Result<(), String> {
    for (i, v) in values.iter().enumerate() {
        let word = !v.is_empty()
            && v.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !word {
            return Err(format!("--engine-io: bad value {v:?}"));
        }
        if values[..i].contains(v) {
            return Err(format!("--engine-io: {v} given twice"));
        }
    }
    Ok(())
}

/// The contenders whose name contains one of `only` (all when `only` is empty), plus the
/// reference rows ([`REFERENCES`]) and the floor each selected row is compared with, in catalog
/// order; ringfast rows once per `--engine-io` value.
pub fn select(only: &[String], engine_io: &[String]) -> Vec<Contender> {
    let all = expand_engine_io(catalog(), engine_io);
    let picked: Vec<bool> = all
        .iter()
        .map(|c| {
            only.is_empty()
                || REFERENCES.contains(&c.name.as_str())
                || only.iter().any(|o| c.name.contains(o.as_str()))
        })
        .collect();
    let floors: Vec<String> = all
        .iter()
        .zip(&picked)
        .filter(|(_, p)| **p)
        .map(|(c, _)| crate::stats::floor_for(c))
        .collect();
    all.into_iter()
        .zip(picked)
        .filter(|(c, p)| *p || floors.contains(&c.name))
        .map(|(c, _)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_say_what_runs() {
        let all = catalog();
        let names: HashSet<_> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), all.len());
        assert!(names.contains("nginx > ringfast fcgi unix"));
        assert!(names.contains("ringfast fcgi tcp metrics-off"));
        assert!(names.contains("nginx > php-fpm fcgi tcp no-keepalive"));
        assert!(names.contains("nginx > uwsgi uwsgi tcp"));
        assert!(names.contains("nginx return 200"));
        for new in [
            "floor fcgi unix no-keepalive",
            "ringfast fcgi unix no-keepalive",
            "nginx > floor fcgi tcp no-keepalive",
            "floor fcgi tcp mux 16x8",
            "ringfast fcgi tcp mux 16x8",
        ] {
            assert!(names.contains(new), "{new}");
        }
        let mux = all.iter().find(|c| c.name == "floor fcgi tcp mux 16x8");
        assert_eq!(mux.map(|c| (c.connections, c.mux)), Some((Some(16), 8)));
    }

    #[test]
    fn client_protocol_and_group() {
        let all = catalog();
        let by = |n: &str| all.iter().find(|c| c.name == n).unwrap().clone();
        assert_eq!(by("ringfast ajp unix").client_proto(), Proto::Ajp);
        assert_eq!(by("nginx > ringfast scgi tcp").client_proto(), Proto::Http);
        assert_eq!(by("granian http tcp").group(), Group::Http);
        assert!(by("granian http tcp").http_only());
        assert!(!by("nginx > flup fcgi unix").http_only());
        assert_eq!(by("nginx return 200").group(), Group::BehindNginx);
    }

    #[test]
    fn select_filters_by_substring() {
        let s = select(&["granian".to_string()], &[]);
        let names: Vec<&str> = s.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), REFERENCES.len() + 1);
        assert!(names.contains(&"granian http tcp"));
        assert!(REFERENCES.iter().all(|r| names.contains(r)));
        assert_eq!(select(&[], &[]).len(), catalog().len());
    }

    #[test]
    fn select_adds_the_floor_each_row_is_compared_with() {
        let s = select(&["unix no-keepalive".to_string(), "mux".to_string()], &[]);
        let names: Vec<&str> = s.iter().map(|c| c.name.as_str()).collect();
        for n in [
            "floor fcgi unix no-keepalive",
            "ringfast fcgi unix no-keepalive",
            "floor fcgi tcp mux 16x8",
            "ringfast fcgi tcp mux 16x8",
        ] {
            assert!(names.contains(&n), "{n}: {names:?}");
        }
        let s = select(&["nginx > ringfast fcgi tcp no-keepalive".to_string()], &[]);
        assert!(s
            .iter()
            .any(|c| c.name == "nginx > floor fcgi tcp no-keepalive"));
    }

    #[test]
    fn engine_io_makes_one_ringfast_row_per_value() {
        let io = ["ring".to_string(), "tokio-uring".to_string()];
        let s = select(&["ringfast fcgi tcp mux".to_string()], &io);
        let rows: Vec<(&str, &[String])> = s
            .iter()
            .map(|c| (c.name.as_str(), c.engine_args.as_slice()))
            .collect();
        let ring = ["--io".to_string(), "ring".to_string()];
        assert!(rows.contains(&("ringfast fcgi tcp mux 16x8 io=ring", &ring[..])));
        assert!(rows
            .iter()
            .any(|(n, _)| *n == "ringfast fcgi tcp mux 16x8 io=tokio-uring"));
        assert!(!rows.iter().any(|(n, _)| *n == "ringfast fcgi tcp mux 16x8"));
        // The floors are not multiplied, and carry no engine option.
        assert!(rows.contains(&("floor fcgi tcp mux 16x8", &[][..])));
        // No --engine-io, or `default`: today's rows, no --io flag.
        let plain = select(&[], &[]);
        assert!(plain.iter().all(|c| c.engine_args.is_empty()));
        let default = select(&[], &[DEFAULT_IO.to_string()]);
        assert_eq!(plain, default);
        assert!(check_engine_io(&io).is_ok());
        assert!(check_engine_io(&["a b".to_string()]).is_err());
        assert!(check_engine_io(&["ring".to_string(), "ring".to_string()]).is_err());
    }
}
