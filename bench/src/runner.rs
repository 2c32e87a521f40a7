//! The measurement loop: rounds of every contender in a rotated order; per contender a
//! closed-loop peak, a wrk cross-check for HTTP servers, and open-loop runs at fractions of the
//! peak; CPU and memory sampled from /proc around each run; foreign CPU watched.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cli::Plan;
use crate::contender::Contender;
use crate::endpoint::Proto;
use crate::error::BenchError;
use crate::load::{ClientKind, LoadRun, LoadSpec};
use crate::procfs::{self, ProcStat};
use crate::results::{Failure, RunKind, RunRecord};
use crate::services::{self, Layout, Running, TempDir};
use crate::tools::Tools;

/// CPUs for the server side and the load generator.
#[derive(Debug, Clone)]
pub struct Pinning {
    /// Server, and nginx when in the path.
    pub server: Option<String>,
    /// Load generator.
    pub load: Option<String>,
}

impl Pinning {
    /// CPU 0 for the server, CPU 1 for the load generator; nothing when `pin` is false.
    pub fn new(pin: bool) -> Pinning {
        if pin {
            Pinning {
                server: Some("0".into()),
                load: Some("1".into()),
            }
        } else {
            Pinning {
                server: None,
                load: None,
            }
        }
    }
}

/// Share of all CPUs used by foreign processes and stolen by the hypervisor during `secs`, and
/// the biggest consumers (`steal` among them when the hypervisor took time).
pub fn foreign_share(secs: f64) -> (f64, Vec<(String, f64)>) {
    let me: HashSet<i32> = HashSet::from([std::process::id() as i32]);
    let steal_a = procfs::steal_ticks().unwrap_or(0);
    let a = procfs::snapshot();
    let t0 = Instant::now();
    sleep(Duration::from_secs_f64(secs));
    let b = procfs::snapshot();
    let steal = procfs::steal_ticks().unwrap_or(0).saturating_sub(steal_a);
    let dt = t0.elapsed().as_secs_f64();
    let (ticks, mut top) = procfs::foreign_ticks(&a, &b, &me);
    if steal > 0 {
        top.insert(0, ("(hypervisor steal)".to_string(), steal));
    }
    let tck = procfs::clk_tck();
    let share = (ticks + steal) as f64 / tck / (dt * procfs::cpus() as f64);
    (
        share,
        top.into_iter().map(|(c, t)| (c, t as f64 / tck)).collect(),
    )
}

/// Waits (up to `max_wait` seconds) until foreign processes use less than `share` of the
/// machine over half a second. Returns the last share seen.
pub fn wait_quiet(max_wait: f64, share: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(max_wait);
    loop {
        let (s, _) = foreign_share(0.3);
        if s < share || Instant::now() >= deadline {
            return s;
        }
    }
}

/// CPU ticks of `pids` used between two snapshots (a pid reused in between counts from zero).
fn delta(a: &HashMap<i32, ProcStat>, b: &HashMap<i32, ProcStat>, pids: &HashSet<i32>) -> u64 {
    pids.iter()
        .filter_map(|p| b.get(p))
        .map(|sb| {
            let prev = a
                .get(&sb.pid)
                .filter(|sa| sa.start == sb.start)
                .map_or(0, |sa| sa.ticks);
            sb.ticks.saturating_sub(prev)
        })
        .sum()
}

/// Everything one contender needs for its runs in one round.
pub struct Bench<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// Tools found.
    pub tools: &'a Tools,
    /// CPUs.
    pub pin: Pinning,
    /// Set by SIGINT/SIGTERM: stop after the current run, stopping every service.
    pub interrupted: Arc<AtomicBool>,
}

impl Bench<'_> {
    /// Runs one contender for one round: start, peak, cross-check, open loop, stop.
    pub fn contender(
        &self,
        c: &Contender,
        round: usize,
        runs: &mut Vec<RunRecord>,
    ) -> Result<(), BenchError> {
        let slug: String = c
            .name
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
            .collect();
        let dir = TempDir::new(&slug, self.plan.keep_temp)?;
        let layout = services::layout(c, self.tools, self.plan, dir.path())?;
        let mut running = Running::start(&layout, dir.path(), self.pin.server.as_deref())?;
        // Let servers finish forking their workers before the first request.
        sleep(Duration::from_millis(if self.plan.quick {
            100
        } else {
            300
        }));

        let use_load = self.tools.load.is_some();
        let peak_client = if use_load {
            ClientKind::RingfastLoad
        } else {
            ClientKind::Wrk
        };
        let peak = self.measure(
            c,
            round,
            &layout,
            &running,
            dir.path(),
            peak_client,
            None,
            true,
        )?;
        let peak_rps = peak.result.as_ref().filter(|_| peak.valid()).map(|r| r.rps);
        runs.push(peak);
        running.check_alive()?;

        if c.http_only() && use_load && self.tools.wrk.is_some() {
            let rec = self.measure(
                c,
                round,
                &layout,
                &running,
                dir.path(),
                ClientKind::Wrk,
                None,
                false,
            )?;
            runs.push(rec);
        }
        if let (Some(peak), true) = (peak_rps, use_load) {
            for &f in &self.plan.fractions {
                if self.interrupted.load(Ordering::Relaxed) {
                    break;
                }
                let rec = self.measure(
                    c,
                    round,
                    &layout,
                    &running,
                    dir.path(),
                    ClientKind::RingfastLoad,
                    Some((f, (peak * f).max(1.0))),
                    false,
                )?;
                runs.push(rec);
            }
        }
        running.check_alive()?;
        running.stop();
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn measure(
        &self,
        c: &Contender,
        round: usize,
        layout: &Layout,
        running: &Running,
        dir: &std::path::Path,
        kind: ClientKind,
        open: Option<(f64, f64)>,
        memory: bool,
    ) -> Result<RunRecord, BenchError> {
        let plan = self.plan;
        let program = match kind {
            ClientKind::RingfastLoad => self.tools.load.clone(),
            ClientKind::Wrk => self.tools.wrk.clone(),
        }
        .ok_or_else(|| BenchError::Usage(format!("{} missing", kind.name())))?;
        let spec = LoadSpec {
            target: layout.target.url(c.client_proto(), services::PATH),
            connections: c.connections.unwrap_or(plan.connections),
            duration: plan.duration,
            warmup: plan.warmup,
            rate: open.map(|o| o.1),
            // Behind nginx the client always keeps its connections; `keepalive` is nginx's.
            keepalive: c.keepalive || c.client_proto() == Proto::Http && c.via_nginx,
            mux: c.mux,
            params: layout.params.clone(),
            expect_body: layout.expect_body.then(|| services::HELLO.to_string()),
        };
        let (lead, window) = match kind {
            ClientKind::RingfastLoad => (plan.warmup + 0.05 * plan.duration, 0.9 * plan.duration),
            // wrk has no warm-up and runs whole seconds.
            ClientKind::Wrk => {
                let d = plan.duration.ceil().max(1.0);
                (0.1 * d, 0.8 * d)
            }
        };
        let load = LoadRun::start(kind, &program, &spec, dir, self.pin.load.as_deref())?;
        let load_pid = load.pid();
        sleep(Duration::from_secs_f64(lead));
        let steal_a = procfs::steal_ticks();
        let a = procfs::snapshot();
        let t0 = Instant::now();
        sleep(Duration::from_secs_f64(window));
        let b = procfs::snapshot();
        let steal_b = procfs::steal_ticks();
        let window_s = t0.elapsed().as_secs_f64();

        let roots = running.roots();
        let mut server: HashSet<i32> = procfs::family(&a, &roots);
        server.extend(procfs::family(&b, &roots));
        let load_set = HashSet::from([load_pid]);
        let mut ours = server.clone();
        ours.insert(load_pid);
        ours.insert(std::process::id() as i32);
        let tck = procfs::clk_tck();
        let server_cpu_s = delta(&a, &b, &server) as f64 / tck;
        let load_cpu_s = delta(&a, &b, &load_set) as f64 / tck;
        let (foreign, top) = procfs::foreign_ticks(&a, &b, &ours);
        let foreign_cpu_s = foreign as f64 / tck;
        let (pss, rss, server_cpus) = if memory {
            let (p, r) = procfs::memory_kib(&server);
            (Some(p), Some(r), procfs::allowed_cpus(&server))
        } else {
            (None, None, Vec::new())
        };
        let outcome = load.finish();
        let steal_s = match (steal_a, steal_b) {
            (Some(x), Some(y)) => y.saturating_sub(x) as f64 / tck,
            _ => 0.0,
        };
        let noisy = foreign_cpu_s + steal_s > plan.noisy_share * window_s * procfs::cpus() as f64;
        let (result, error) = match outcome {
            Ok(r) => {
                let err = if r.requests == 0 {
                    Some("no successful request".to_string())
                } else if r.errors * 100 > r.requests {
                    Some(format!("{} errors for {} requests", r.errors, r.requests))
                } else {
                    None
                };
                (Some(r), err)
            }
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(RunRecord {
            contender: c.name.clone(),
            round,
            kind: match (kind, open) {
                (_, Some(_)) => RunKind::Open,
                (ClientKind::Wrk, None) if self.tools.load.is_some() => RunKind::WrkCheck,
                _ => RunKind::Peak,
            },
            client: kind.name().to_string(),
            fraction: open.map(|o| o.0),
            target_rps: open.map(|o| o.1),
            result,
            error,
            window_s,
            server_cpu_s,
            load_cpu_s,
            foreign_cpu_s,
            steal_s,
            foreign_top: top.into_iter().map(|(c, t)| (c, t as f64 / tck)).collect(),
            server_procs: server.len(),
            server_cpus,
            pss_kib: pss,
            rss_kib: rss,
            noisy,
        })
    }
}

/// Most seconds spent waiting for the machine to go quiet over a whole run.
pub const QUIET_BUDGET_S: f64 = 60.0;

/// Runs every round; contenders rotate so each round starts with a different one. Returns
/// `false` when interrupted.
pub fn run_rounds(
    bench: &Bench<'_>,
    contenders: &[Contender],
    runs: &mut Vec<RunRecord>,
    failures: &mut Vec<Failure>,
) -> bool {
    let n = contenders.len();
    // Waiting for quiet is bounded over the whole run, so a machine that never goes quiet
    // gives a noisy report in the usual time rather than no report.
    let mut quiet_budget = QUIET_BUDGET_S;
    for round in 0..bench.plan.rounds {
        for i in 0..n {
            let c = &contenders[(i + round * n.div_ceil(bench.plan.rounds.max(1))) % n];
            if bench.interrupted.load(Ordering::Relaxed) {
                return false;
            }
            let max_wait = bench.plan.quiet_wait.min(quiet_budget);
            if max_wait > 0.0 {
                let t = Instant::now();
                wait_quiet(max_wait, bench.plan.noisy_share);
                quiet_budget -= t.elapsed().as_secs_f64();
            }
            eprintln!(
                "ringfast-bench: round {}/{}: {}",
                round + 1,
                bench.plan.rounds,
                c.name
            );
            let before = runs.len();
            if let Err(e) = bench.contender(c, round, runs) {
                eprintln!("ringfast-bench:   {}: {e}", c.name);
                failures.push(Failure {
                    contender: c.name.clone(),
                    round,
                    error: e.to_string(),
                });
            }
            for r in &runs[before..] {
                match (&r.result, &r.error) {
                    (Some(res), None) => eprintln!(
                        "ringfast-bench:   {:>8} {:>10.0} req/s  p99 {:>9.0} us  server {:>5.2} us/req  cpu {:.0}%/{:.0}%{}",
                        match r.kind {
                            RunKind::Peak => "peak".to_string(),
                            RunKind::WrkCheck => "wrk".to_string(),
                            RunKind::Open => format!("open {:.0}%", r.fraction.unwrap_or(0.0) * 100.0),
                        },
                        res.rps,
                        res.latency_us.p99,
                        r.cpu_us_per_req().unwrap_or(f64::NAN),
                        r.server_util() * 100.0,
                        r.load_util() * 100.0,
                        if r.noisy { "  NOISY" } else { "" }
                    ),
                    (_, Some(e)) => eprintln!("ringfast-bench:   run failed: {e}"),
                    (None, None) => {}
                }
            }
        }
    }
    !bench.interrupted.load(Ordering::Relaxed)
}
