//! Medians with their spread, and the per-contender aggregates the report shows.

use std::collections::HashMap;

use serde::Serialize;

use crate::contender::{Contender, Group, Server};
use crate::endpoint::Transport;
use crate::results::{RawResults, RunKind, RunRecord};

/// Median, minimum and maximum of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// The spread of the finite values, `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// Half the min–max range relative to the median, in percent.
    pub fn pm_percent(&self) -> f64 {
        if self.median > 0.0 {
            (self.max - self.min) / 2.0 / self.median * 100.0
        } else {
            0.0
        }
    }
}

/// Open-loop results at one fraction.
#[derive(Debug, Clone, Serialize)]
pub struct OpenPoint {
    /// Fraction of the peak.
    pub fraction: f64,
    /// Offered req/s.
    pub offered: Spread,
    /// Achieved req/s.
    pub achieved: Spread,
    /// p50 µs.
    pub p50: Spread,
    /// p99 µs.
    pub p99: Spread,
    /// p99.9 µs.
    pub p99_9: Spread,
    /// Server µs per request.
    pub cpu_us: Option<Spread>,
}

/// Everything the report says about one contender.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The contender.
    pub contender: Contender,
    /// Peak req/s.
    pub peak: Option<Spread>,
    /// p50 at the peak, µs.
    pub p50: Option<Spread>,
    /// p99 at the peak, µs.
    pub p99: Option<Spread>,
    /// Server CPU µs per request at the peak.
    pub cpu_us: Option<Spread>,
    /// Server CPU share at the peak.
    pub server_util: Option<Spread>,
    /// Load generator CPU share at the peak.
    pub load_util: Option<Spread>,
    /// Peak over the floor's peak of the same round.
    pub ratio_floor: Option<Spread>,
    /// CPU per request over the floor's, same round.
    pub cpu_ratio_floor: Option<Spread>,
    /// Peak over nginx `return 200` of the same round (HTTP rows only).
    pub ratio_ceiling: Option<Spread>,
    /// PSS after the peak run, MiB.
    pub pss_mib: Option<Spread>,
    /// RSS summed over the processes after the peak run, MiB.
    pub rss_mib: Option<Spread>,
    /// Processes of the contender.
    pub procs: usize,
    /// The peak was set by the load generator: its CPU at least 90% while the server's below.
    pub loadgen_bound: bool,
    /// Runs with foreign CPU over the threshold.
    pub noisy_runs: usize,
    /// Runs in total.
    pub total_runs: usize,
    /// Errors of failed runs.
    pub errors: Vec<String>,
    /// Open-loop points, by fraction.
    pub open: Vec<OpenPoint>,
    /// wrk cross-check: req/s.
    pub wrk_rps: Option<Spread>,
    /// wrk cross-check: p99 µs.
    pub wrk_p99: Option<Spread>,
    /// The client of the peak runs.
    pub peak_client: String,
}

/// The name of the floor a contender is compared with: the floor over the same path (nginx in
/// front or not, transport, keep-alive, multiplexing) when the catalog has that row, else the
/// keep-alive floor of its group (`nginx > floor fcgi unix` behind nginx, `floor fcgi unix`
/// direct over Unix, `floor fcgi tcp` otherwise).
pub fn floor_for(c: &Contender) -> String {
    let mut same = Contender {
        server: Server::Floor,
        ..c.clone()
    };
    same.engine_args.clear();
    let same = same_path_floor(&same);
    if crate::contender::catalog()
        .iter()
        .any(|f| f.name == same && f.group() == c.group())
    {
        return same;
    }
    match (c.group(), c.transport) {
        (Group::BehindNginx, _) => "nginx > floor fcgi unix",
        (Group::Direct, Transport::Unix) => "floor fcgi unix",
        _ => "floor fcgi tcp",
    }
    .to_string()
}

/// The name the floor row over `c`'s path would have.
fn same_path_floor(c: &Contender) -> String {
    let mut name = String::new();
    if c.via_nginx {
        name.push_str("nginx > ");
    }
    name.push_str("floor fcgi ");
    name.push_str(match c.transport {
        Transport::Tcp => "tcp",
        Transport::Unix => "unix",
    });
    if !c.keepalive {
        name.push_str(" no-keepalive");
    }
    if c.mux > 1 {
        name.push_str(&format!(
            " mux {}x{}",
            c.connections.map_or_else(|| "?".into(), |n| n.to_string()),
            c.mux
        ));
    }
    name
}

/// The name of the nginx ceiling.
pub const CEILING: &str = "nginx return 200";

fn peak_runs<'a>(runs: &'a [RunRecord], name: &str) -> Vec<&'a RunRecord> {
    runs.iter()
        .filter(|r| r.contender == name && r.kind == RunKind::Peak && r.valid())
        .collect()
}

/// Per-round value of a peak metric, by round.
fn by_round(runs: &[&RunRecord], f: impl Fn(&RunRecord) -> Option<f64>) -> HashMap<usize, f64> {
    runs.iter().filter_map(|r| Some((r.round, f(r)?))).collect()
}

fn rps(r: &RunRecord) -> Option<f64> {
    r.result.as_ref().map(|x| x.rps)
}

/// Aggregates the raw runs per contender (report order).
pub fn summarize(raw: &RawResults) -> Vec<Summary> {
    let runs = &raw.runs;
    let ceiling = by_round(&peak_runs(runs, CEILING), rps);
    raw.contenders
        .iter()
        .map(|c| {
            let peaks = peak_runs(runs, &c.name);
            let floor_runs = peak_runs(runs, &floor_for(c));
            let floor_rps = by_round(&floor_runs, rps);
            let floor_cpu = by_round(&floor_runs, RunRecord::cpu_us_per_req);
            let ratio = |den: &HashMap<usize, f64>, f: &dyn Fn(&RunRecord) -> Option<f64>| {
                Spread::of(peaks.iter().filter_map(|r| Some(f(r)? / den.get(&r.round)?)))
            };
            let all: Vec<&RunRecord> = runs.iter().filter(|r| r.contender == c.name).collect();
            let server_util = Spread::of(peaks.iter().map(|r| r.server_util()));
            let load_util = Spread::of(peaks.iter().map(|r| r.load_util()));
            let loadgen_bound = matches!((load_util, server_util), (Some(l), Some(s)) if l.median >= 0.9 && s.median < 0.9);
            let mut fractions: Vec<f64> = all.iter().filter_map(|r| r.fraction).collect();
            fractions.sort_by(|a, b| a.total_cmp(b));
            fractions.dedup();
            let open = fractions
                .iter()
                .filter_map(|&f| {
                    let pts: Vec<&&RunRecord> = all
                        .iter()
                        .filter(|r| r.kind == RunKind::Open && r.fraction == Some(f) && r.valid())
                        .collect();
                    let lat = |g: fn(&crate::load::Latency) -> f64| {
                        Spread::of(pts.iter().filter_map(|r| r.result.as_ref().map(|x| g(&x.latency_us))))
                    };
                    Some(OpenPoint {
                        fraction: f,
                        offered: Spread::of(pts.iter().filter_map(|r| r.target_rps))?,
                        achieved: Spread::of(pts.iter().filter_map(|r| rps(r)))?,
                        p50: lat(|l| l.p50)?,
                        p99: lat(|l| l.p99)?,
                        p99_9: lat(|l| l.p99_9)?,
                        cpu_us: Spread::of(pts.iter().filter_map(|r| r.cpu_us_per_req())),
                    })
                })
                .collect();
            let wrk: Vec<&&RunRecord> = all
                .iter()
                .filter(|r| r.kind == RunKind::WrkCheck && r.valid())
                .collect();
            let mut errors: Vec<String> = all.iter().filter_map(|r| r.error.clone()).collect();
            errors.extend(
                raw.failures
                    .iter()
                    .filter(|f| f.contender == c.name)
                    .map(|f| format!("round {}: {}", f.round + 1, f.error)),
            );
            Summary {
                contender: c.clone(),
                peak: Spread::of(peaks.iter().filter_map(|r| rps(r))),
                p50: Spread::of(peaks.iter().filter_map(|r| r.result.as_ref().map(|x| x.latency_us.p50))),
                p99: Spread::of(peaks.iter().filter_map(|r| r.result.as_ref().map(|x| x.latency_us.p99))),
                cpu_us: Spread::of(peaks.iter().filter_map(|r| r.cpu_us_per_req())),
                server_util,
                load_util,
                ratio_floor: ratio(&floor_rps, &rps),
                cpu_ratio_floor: ratio(&floor_cpu, &RunRecord::cpu_us_per_req),
                ratio_ceiling: if c.group() != Group::Direct {
                    ratio(&ceiling, &rps)
                } else {
                    None
                },
                pss_mib: Spread::of(peaks.iter().filter_map(|r| r.pss_kib.map(|k| k as f64 / 1024.0))),
                rss_mib: Spread::of(peaks.iter().filter_map(|r| r.rss_kib.map(|k| k as f64 / 1024.0))),
                procs: peaks.iter().map(|r| r.server_procs).max().unwrap_or(0),
                loadgen_bound,
                noisy_runs: all.iter().filter(|r| r.noisy).count(),
                total_runs: all.len(),
                errors,
                open,
                wrk_rps: Spread::of(wrk.iter().filter_map(|r| rps(r))),
                wrk_p99: Spread::of(wrk.iter().filter_map(|r| r.result.as_ref().map(|x| x.latency_us.p99))),
                peak_client: peaks.first().map_or_else(String::new, |r| r.client.clone()),
            }
        })
        .collect()
}

/// Pairs (metrics on, metrics off) of ringfast rows that differ only in `--metrics`.
pub fn metrics_pairs(summaries: &[Summary]) -> Vec<(&Summary, &Summary)> {
    summaries
        .iter()
        .filter_map(|off| {
            let Server::Ringfast {
                proto,
                metrics: false,
            } = off.contender.server
            else {
                return None;
            };
            let on = summaries.iter().find(|s| {
                s.contender.server
                    == Server::Ringfast {
                        proto,
                        metrics: true,
                    }
                    && s.contender.transport == off.contender.transport
                    && s.contender.via_nginx == off.contender.via_nginx
                    && s.contender.keepalive == off.contender.keepalive
                    && s.contender.mux == off.contender.mux
                    && s.contender.engine_args == off.contender.engine_args
            })?;
            Some((on, off))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_even_and_empty() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Spread::of([f64::NAN]).is_none());
        assert!(Spread::of(std::iter::empty()).is_none());
        assert_eq!(Spread::of([90.0, 100.0, 110.0]).unwrap().pm_percent(), 10.0);
    }

    #[test]
    fn each_row_is_compared_with_the_floor_over_its_path() {
        let io = ["ring".to_string()];
        let all = crate::contender::expand_engine_io(crate::contender::catalog(), &io);
        let floor = |n: &str| floor_for(all.iter().find(|c| c.name == n).unwrap());
        assert_eq!(floor("ringfast fcgi tcp io=ring"), "floor fcgi tcp");
        assert_eq!(floor("ringfast fcgi unix io=ring"), "floor fcgi unix");
        assert_eq!(
            floor("ringfast fcgi tcp no-keepalive io=ring"),
            "floor fcgi tcp no-keepalive"
        );
        assert_eq!(
            floor("ringfast fcgi unix no-keepalive io=ring"),
            "floor fcgi unix no-keepalive"
        );
        assert_eq!(
            floor("ringfast fcgi tcp mux 16x8 io=ring"),
            "floor fcgi tcp mux 16x8"
        );
        assert_eq!(floor("ringfast scgi unix io=ring"), "floor fcgi unix");
        assert_eq!(floor("ringfast ajp tcp io=ring"), "floor fcgi tcp");
        assert_eq!(
            floor("nginx > ringfast fcgi tcp no-keepalive io=ring"),
            "nginx > floor fcgi tcp no-keepalive"
        );
        assert_eq!(
            floor("nginx > php-fpm fcgi tcp no-keepalive"),
            "nginx > floor fcgi tcp no-keepalive"
        );
        assert_eq!(
            floor("nginx > ringfast fcgi tcp io=ring"),
            "nginx > floor fcgi unix"
        );
        assert_eq!(floor("granian http tcp"), "floor fcgi tcp");
        assert_eq!(floor("nginx return 200"), "nginx > floor fcgi unix");
        // Every floor row is its own reference.
        for c in all.iter().filter(|c| c.server == Server::Floor) {
            assert_eq!(floor_for(c), c.name);
        }
    }
}
