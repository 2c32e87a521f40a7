use super::*;

/// The value of the sample `name{labels}` (labels in any order, all of them given) in `text`.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (n, rest) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if n != name {
            return None;
        }
        let mut got: Vec<(&str, &str)> = rest
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k, v.trim_matches('"')))
            })
            .collect();
        let mut want = labels.to_vec();
        got.sort();
        want.sort();
        (got == want).then(|| value.parse().ok())?
    })
}

#[test]
fn status_classes() {
    assert_eq!(StatusClass::of(101).as_str(), "1xx");
    assert_eq!(StatusClass::of(200).as_str(), "2xx");
    assert_eq!(StatusClass::of(304).as_str(), "3xx");
    assert_eq!(StatusClass::of(431).as_str(), "4xx");
    assert_eq!(StatusClass::of(503).as_str(), "5xx");
    assert_eq!(StatusClass::of(999).as_str(), "5xx");
    for (i, c) in StatusClass::ALL.iter().enumerate() {
        assert_eq!(c.index(), i);
    }
    for (i, k) in ProtocolErrorKind::ALL.iter().enumerate() {
        assert_eq!(k.index(), i);
    }
    for (i, l) in Limit::ALL.iter().enumerate() {
        assert_eq!(l.index(), i);
    }
}

#[test]
fn buckets_separate_the_durations_that_matter() {
    let bucket = |secs: f64| DURATION_BUCKETS.iter().position(|&b| secs <= b);
    assert_ne!(bucket(50e-6), bucket(100e-6));
    assert_ne!(bucket(1.0), bucket(2.0));
    assert!(DURATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn off_records_nothing_and_costs_no_clock() {
    let m = WorkerMetrics::off();
    assert!(!m.is_enabled());
    let mut t = m.request_started(Protocol::FastCgi);
    assert!(!t.is_running());
    t.add_body_out(10);
    t.finish(StatusClass::Success);
    let _g = m.connection_opened(Protocol::FastCgi);
    m.protocol_error(Protocol::FastCgi, ProtocolErrorKind::BadVersion);
    m.limit_rejected(Protocol::FastCgi, Limit::MaxConns);
}

#[test]
fn counts_are_exact() {
    let reg = Registry::new();
    let m = WorkerMetrics::new(&reg, 3, &[Protocol::FastCgi]);
    let w = ("worker", "3");
    let p = ("protocol", "fastcgi");
    let text = reg.render();
    // Every series exists at 0 before the first request.
    assert_eq!(
        sample(&text, names::REQUESTS, &[w, p, ("status_class", "2xx")]),
        Some(0.0)
    );
    const N: usize = 1000;
    for i in 0..N {
        let mut t = m.request_started(Protocol::FastCgi);
        t.add_body_out(5);
        if i % 10 == 0 {
            t.finish(StatusClass::of(404));
        } else {
            t.finish(StatusClass::of(200));
        }
        t.finish(StatusClass::of(500)); // ignored: already finished
    }
    {
        let _dropped = m.request_started(Protocol::FastCgi);
        let _conn = m.connection_opened(Protocol::FastCgi);
        m.request_body_bytes(Protocol::FastCgi, 7);
        m.protocol_error(Protocol::FastCgi, ProtocolErrorKind::BadVersion);
        m.limit_rejected(Protocol::FastCgi, Limit::MaxParamsBytes);
        let text = reg.render();
        assert_eq!(sample(&text, names::REQUESTS_IN_FLIGHT, &[w]), Some(1.0));
        assert_eq!(sample(&text, names::CONNECTIONS_OPEN, &[w, p]), Some(1.0));
    }
    let text = reg.render();
    let class = |c| sample(&text, names::REQUESTS, &[w, p, ("status_class", c)]);
    assert_eq!(class("2xx"), Some(900.0));
    assert_eq!(class("4xx"), Some(100.0));
    assert_eq!(class("5xx"), Some(0.0));
    assert_eq!(class("aborted"), Some(1.0));
    assert_eq!(
        sample(&text, "ringfast_request_duration_seconds_count", &[w, p]),
        Some(N as f64 + 1.0)
    );
    assert_eq!(
        sample(
            &text,
            "ringfast_request_duration_seconds_bucket",
            &[w, p, ("le", "+Inf")]
        ),
        Some(N as f64 + 1.0)
    );
    assert!(text.contains("# TYPE ringfast_request_duration_seconds histogram"));
    assert_eq!(sample(&text, names::REQUESTS_IN_FLIGHT, &[w]), Some(0.0));
    assert_eq!(sample(&text, names::CONNECTIONS_OPEN, &[w, p]), Some(0.0));
    assert_eq!(
        sample(&text, names::CONNECTIONS_ACCEPTED, &[w, p]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, names::RESPONSE_BODY_BYTES, &[w, p]),
        Some(5.0 * N as f64)
    );
    assert_eq!(sample(&text, names::REQUEST_BODY_BYTES, &[w, p]), Some(7.0));
    assert_eq!(
        sample(
            &text,
            names::PROTOCOL_ERRORS,
            &[w, p, ("kind", "bad_version")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            names::LIMIT_REJECTIONS,
            &[w, p, ("limit", "max_params_bytes")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            names::LIMIT_REJECTIONS,
            &[w, p, ("limit", "max_conns")]
        ),
        Some(0.0)
    );
}

#[test]
fn workers_have_their_own_series() {
    let reg = Registry::new();
    let a = WorkerMetrics::new(&reg, 0, &[Protocol::FastCgi]);
    let b = WorkerMetrics::new(&reg, 1, &[Protocol::FastCgi]);
    a.request_started(Protocol::FastCgi)
        .finish(StatusClass::Success);
    for _ in 0..2 {
        b.request_started(Protocol::FastCgi)
            .finish(StatusClass::Success);
    }
    reg.set_workers(2);
    let text = reg.render();
    let ok = |w| {
        sample(
            &text,
            names::REQUESTS,
            &[
                ("worker", w),
                ("protocol", "fastcgi"),
                ("status_class", "2xx"),
            ],
        )
    };
    assert_eq!(ok("0"), Some(1.0));
    assert_eq!(ok("1"), Some(2.0));
    assert_eq!(sample(&text, names::WORKERS, &[]), Some(2.0));
}

#[test]
fn unserved_protocols_are_ignored() {
    let reg = Registry::new();
    let m = WorkerMetrics::new(&reg, 0, &[]);
    let mut t = m.request_started(Protocol::FastCgi);
    assert!(!t.is_running());
    t.finish(StatusClass::Success);
    m.protocol_error(Protocol::FastCgi, ProtocolErrorKind::BadVersion);
    let text = reg.render();
    assert!(!text.contains("protocol=\"fastcgi\""));
    assert_eq!(
        sample(&text, names::REQUESTS_IN_FLIGHT, &[("worker", "0")]),
        Some(0.0)
    );
}

#[test]
fn build_info_and_help() {
    let text = Registry::new().render();
    let info = text
        .lines()
        .find(|l| l.starts_with("ringfast_build_info{"))
        .expect("build info");
    assert!(
        info.contains(&format!("io_backend=\"{}\"", super::io_backend())),
        "{info}"
    );
    assert!(info.contains(&format!("version=\"{VERSION}\"")), "{info}");
    assert!(info.ends_with(" 1"), "{info}");
    assert!(!REVISION.is_empty());
    for name in [names::BUILD_INFO, names::PROCESS_CPU_SECONDS] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
    }
}
