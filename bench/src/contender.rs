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
        }
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
        c(rf(Proto::Fcgi, true), Tcp, false, true),
        c(rf(Proto::Fcgi, true), Unix, false, true),
        c(rf(Proto::Fcgi, true), Tcp, false, false),
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

/// The contenders whose name contains one of `only` (all when `only` is empty), plus the
/// reference rows ([`REFERENCES`]), in catalog order.
pub fn select(only: &[String]) -> Vec<Contender> {
    catalog()
        .into_iter()
        .filter(|c| {
            only.is_empty()
                || REFERENCES.contains(&c.name.as_str())
                || only.iter().any(|o| c.name.contains(o.as_str()))
        })
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
        let s = select(&["granian".to_string()]);
        let names: Vec<&str> = s.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), REFERENCES.len() + 1);
        assert!(names.contains(&"granian http tcp"));
        assert!(REFERENCES.iter().all(|r| names.contains(r)));
        assert_eq!(select(&[]).len(), catalog().len());
    }
}
