//! REPORT.md, results.json and the SVG plots.

pub mod svg;

use std::fmt::Write as _;
use std::path::Path;

use crate::contender::Group;
use crate::error::{io_ctx, BenchError};
use crate::results::RawResults;
use crate::stats::{self, Spread, Summary};

/// The command that regenerates docs/bench (written into the report).
pub const REGENERATE: &str = "PYO3_PYTHON=/usr/bin/python3 cargo build --release -p engine -p loadgen -p bench --features engine/wsgi && target/release/ringfast-bench --out docs/bench";

/// Writes REPORT.md, results.json, throughput.svg, cpu.svg and latency-{direct,nginx,http}.svg
/// into `out`.
pub fn write(out: &Path, raw: &RawResults) -> Result<(), BenchError> {
    std::fs::create_dir_all(out).map_err(io_ctx(format!("creating {}", out.display())))?;
    let summaries = stats::summarize(raw);
    let json = serde_json::to_string_pretty(raw).map_err(|e| BenchError::Usage(e.to_string()))?;
    let put = |name: &str, text: &str| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(io_ctx(format!("writing {}", p.display())))
    };
    put("results.json", &json)?;
    put("throughput.svg", &throughput_svg(&summaries))?;
    put("cpu.svg", &cpu_svg(&summaries))?;
    for g in GROUPS {
        put(latency_file(g), &latency_svg(&summaries, g))?;
    }
    put("REPORT.md", &markdown(raw, &summaries))?;
    Ok(())
}

fn throughput_svg(s: &[Summary]) -> String {
    let rows: Vec<(String, Spread, bool)> = s
        .iter()
        .filter_map(|x| Some((x.contender.name.clone(), x.peak?, x.contender.is_ringfast())))
        .collect();
    svg::bars(
        "Peak throughput (closed loop), ringfast in red",
        "requests per second",
        &rows,
    )
}

fn cpu_svg(s: &[Summary]) -> String {
    let rows: Vec<(String, Spread, bool)> = s
        .iter()
        .filter_map(|x| {
            Some((
                x.contender.name.clone(),
                x.cpu_us?,
                x.contender.is_ringfast(),
            ))
        })
        .collect();
    svg::bars(
        "Server CPU per request at the peak (all its processes; nginx included when in the path)",
        "microseconds of CPU per request",
        &rows,
    )
}

/// The report's groups, in order.
const GROUPS: [Group; 3] = [Group::Direct, Group::BehindNginx, Group::Http];

fn latency_file(g: Group) -> &'static str {
    match g {
        Group::Direct => "latency-direct.svg",
        Group::BehindNginx => "latency-nginx.svg",
        Group::Http => "latency-http.svg",
    }
}

fn latency_svg(s: &[Summary], group: Group) -> String {
    let series: Vec<svg::Series> = s
        .iter()
        .filter(|x| !x.open.is_empty() && x.contender.group() == group)
        .map(|x| {
            let mut points: Vec<(f64, f64)> = x
                .open
                .iter()
                .map(|o| (o.achieved.median, o.p99.median))
                .collect();
            if let (Some(p), Some(l)) = (x.peak, x.p99) {
                points.push((p.median, l.median));
            }
            svg::Series {
                label: x.contender.name.clone(),
                points,
            }
        })
        .collect();
    svg::lines(
        &format!("p99 latency against load: {}", group.title()),
        "requests per second",
        "p99 latency, microseconds",
        &series,
    )
}

fn num(v: f64) -> String {
    let r = v.round() as i64;
    let s = r.abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if r < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.1} µs")
    }
}

fn spread_rps(s: &Option<Spread>) -> String {
    match s {
        Some(s) if s.n > 1 => format!("{} ({}–{})", num(s.median), num(s.min), num(s.max)),
        Some(s) => num(s.median),
        None => "–".into(),
    }
}

fn opt(s: &Option<Spread>, f: impl Fn(f64) -> String) -> String {
    s.map_or_else(|| "–".to_string(), |s| f(s.median))
}

fn ratio(s: &Option<Spread>) -> String {
    opt(s, |v| format!("{v:.3}"))
}

fn pct(s: &Option<Spread>) -> String {
    opt(s, |v| format!("{:.0}%", v * 100.0))
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub fn date_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn markdown(raw: &RawResults, summaries: &[Summary]) -> String {
    let mut m = String::new();
    let plan = &raw.plan;
    let quick = plan["quick"].as_bool().unwrap_or(false);
    let noisy_runs: usize = summaries.iter().map(|s| s.noisy_runs).sum();
    let total_runs: usize = summaries.iter().map(|s| s.total_runs).sum();
    let _ = writeln!(m, "# ringfast benchmark report\n");
    let _ = writeln!(
        m,
        "Generated by `ringfast-bench` on {} in {:.0} s: {} contenders, {} load runs.\n",
        if raw.date.is_empty() {
            date_utc()
        } else {
            raw.date.clone()
        },
        raw.elapsed_s,
        raw.contenders.len(),
        total_runs
    );
    if quick {
        let _ = writeln!(
            m,
            "> **QUICK MODE (smoke test).** Runs of {} s, one round: the numbers are not meant to be read.\n",
            plan["duration"]
        );
    }
    let share = plan["noisy_share"].as_f64().unwrap_or(0.05) * 100.0;
    if raw.busy_at_start.is_some() || noisy_runs * 10 > total_runs {
        let _ = writeln!(
            m,
            "> **NOISY RUN.** The machine was not quiet: {}{} of {total_runs} load runs saw other processes (or the hypervisor's steal) take more than {share:.0}% of the machine's CPU. Absolute figures are depressed; compare ratios within a round, and rerun on a quiet machine.\n",
            raw.busy_at_start
                .as_ref()
                .map(|b| format!("before the start, {b}; "))
                .unwrap_or_default(),
            noisy_runs,
        );
    } else if noisy_runs > 0 {
        let _ = writeln!(
            m,
            "> **Some noise.** {noisy_runs} of {total_runs} load runs saw other processes (or the hypervisor's steal) take more than {share:.0}% of the machine's CPU; they are marked in the notes column, and the medians over rounds absorb them. The machine is shared (5 engineers building and testing on 2 vCPUs): treat absolute figures with care, and rerun on a quiet machine for publication.\n"
        );
    }
    let _ = writeln!(
        m,
        "## Regenerate\n\n```\n{REGENERATE}\n```\n\nRun from the repository root, as root (missing Debian packages are installed with apt-get and the Python servers into a venv under target/bench), on a quiet machine: the harness refuses to start when other processes keep the CPUs busy (`--allow-busy` runs anyway and marks the report noisy). `--quick` is the smoke test CI runs (under 3 minutes); `--only NAME,...` runs a subset. See docs/bench/README.md.\n"
    );

    let _ = writeln!(m, "## Environment\n\n| | |\n|---|---|");
    for (k, v) in &raw.env {
        let _ = writeln!(m, "| {k} | {v} |");
    }
    let _ = writeln!(m);

    let _ = writeln!(m, "## Method\n");
    let _ = writeln!(
        m,
        "- Every server runs on loopback, started by the harness with a generated config in a temporary directory and stopped after; every one answers `200`, `text/plain`, `Hello, World!`.\n\
         - Placement: {}\n\
         - Python servers run the same 5-line WSGI app with {} processes × {} threads (uWSGI `--processes/--threads`, mod_wsgi daemon `processes/threads`, gunicorn gthread `--workers/--threads`, granian `--workers/--blocking-threads`, flup prefork of threaded WSGIServers); gunicorn sync has no threads ({} processes); flup is thread-per-connection (it hangs up on a connection when its pool is full), so it gets one thread per load-generator connection, spread over the same number of processes. uWSGI's FastCGI socket ignores FCGI_KEEP_CONN and closes after every answer, so it is driven directly with a connection per request. nginx has no AJP13 client, so the AJP13 rows are direct only. flup sets no TCP_NODELAY and writes each answer in several sends, so over TCP it waits on delayed ACKs (about 40 ms per answer): its TCP row measures that, not its CPU. PHP-FPM is `pm=static` with one child per load-generator connection ({}), so that keep-alive connections are not starved (see shared/research/baselines.md). ringfast runs one worker thread; ringfast-wsgi (`--wsgi`, the same WSGI app) runs `--processes {}` × `--threads {}` with one worker thread per process. nginx runs one worker.\n\
         - Keep-alive to the backend is on (`fastcgi_keep_conn on`, upstream `keepalive 64`) except in the rows named `no-keepalive`, where nginx (or the load generator, for direct rows) opens a connection per request.\n\
         - Per contender and round: a closed-loop run with {} connections (the peak; the `mux` rows use the connections and FastCGI requests in flight per connection their name gives, e.g. `mux 16x8`: 16 connections × 8 multiplexed request ids), then open-loop runs at {:?} of that round's peak (latency measured from the intended send time), each {} s measured after {} s of warm-up. HTTP servers are also driven by wrk (closed loop) as a cross-check of the load generator.\n\
         - {} rounds; each round runs every contender once, in an order rotated from round to round, so slow drifts of the machine spread over all contenders. Tables give the median over rounds, with the min–max range when there are several.\n\
         - CPU per request: utime+stime from /proc/PID/stat of every process of the contender (the group leaders, their process groups and descendants; nginx included when in the path), over a sampling window inside the measured window, divided by the requests in that window. Memory: proportional set size (PSS) of those processes after the peak run.\n\
         - Ratios are computed within a round, then the median taken: peak req/s and CPU per request against the floor (the C epoll responder over the same path: the floor row with the same front, transport, keep-alive and multiplexing when there is one, else the keep-alive floor over the same transport, or `nginx > floor fcgi unix` behind nginx), and peak req/s against `nginx return 200` for the HTTP rows (behind nginx, and the HTTP servers: nginx's `return 200` is the most this rig drives over HTTP).\n\
         - A run is **noisy** when other processes (not the contender, the load generator or kernel threads) plus the hypervisor's steal time took more than {:.0}% of the machine's CPU during its window. A peak is **load-generator bound** when the load generator's CPU was at 90% or more while the server side's was below 90%: the server could have gone faster, so the figure is a lower bound.\n",
        if plan["pin"].as_bool().unwrap_or(false) {
            "server side (the backend and nginx when in the path) on CPU 0, load generator on CPU 1 (`taskset`)."
        } else {
            "no pinning (fewer than 2 CPUs, or --no-pin)."
        },
        plan["py_procs"],
        plan["py_threads"],
        plan["py_procs"],
        plan["connections"],
        plan["py_procs"],
        plan["py_threads"],
        plan["connections"],
        plan["fractions"].as_array().map(|a| a.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect::<Vec<_>>()).unwrap_or_default(),
        plan["duration"],
        plan["warmup"],
        plan["rounds"],
        plan["noisy_share"].as_f64().unwrap_or(0.05) * 100.0,
    );

    let mut affinities: Vec<String> = raw
        .runs
        .iter()
        .flat_map(|r| r.server_cpus.iter().cloned())
        .collect();
    affinities.sort();
    affinities.dedup();
    if !affinities.is_empty() {
        let _ = writeln!(
            m,
            "Pinning check: the CPU affinity of every thread of every contender, read from /proc at each peak, was {}.\n",
            affinities
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(m, "## Results at the peak (closed loop)\n");
    for group in GROUPS {
        let rows: Vec<&Summary> = summaries
            .iter()
            .filter(|s| s.contender.group() == group)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(m, "### {}\n", group.title());
        let _ = writeln!(
            m,
            "| contender | peak req/s | vs floor | vs nginx ceiling | server CPU µs/req | CPU vs floor | p50 | p99 | server CPU | loadgen CPU | PSS / RSS MiB (procs) | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for s in rows {
            let mut notes = Vec::new();
            if s.loadgen_bound {
                notes.push("**load-generator bound**".to_string());
            } else if at_rig_limit(s) {
                notes.push("both CPUs saturated: the rig's limit".to_string());
            } else if s.noisy_runs == 0
                && matches!((s.server_util, s.load_util), (Some(a), Some(b)) if a.median < 0.5 && b.median < 0.5)
            {
                notes.push("neither CPU saturated (waits, not CPU, set the pace)".to_string());
            }
            if s.noisy_runs > 0 {
                notes.push(format!("{} of {} runs noisy", s.noisy_runs, s.total_runs));
            }
            if !s.errors.is_empty() {
                notes.push(format!("{} failed run(s)", s.errors.len()));
            }
            if s.peak_client == "wrk" {
                notes.push("driven by wrk".into());
            }
            let name = if s.contender.is_ringfast() {
                format!("**{}**", s.contender.name)
            } else {
                s.contender.name.clone()
            };
            let _ = writeln!(
                m,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                spread_rps(&s.peak),
                ratio(&s.ratio_floor),
                ratio(&s.ratio_ceiling),
                opt(&s.cpu_us, |v| format!("{v:.2}")),
                ratio(&s.cpu_ratio_floor),
                opt(&s.p50, us),
                opt(&s.p99, us),
                pct(&s.server_util),
                pct(&s.load_util),
                match (s.pss_mib, s.rss_mib) {
                    (Some(p), Some(r)) =>
                        format!("{:.1} / {:.1} ({})", p.median, r.median, s.procs),
                    _ => "–".into(),
                },
                notes.join("; ")
            );
        }
        let _ = writeln!(m);
    }
    let _ = writeln!(
        m,
        "![Peak throughput](throughput.svg)\n\n![Server CPU per request](cpu.svg)\n"
    );

    idle_section(&mut m, &raw.idle);

    let _ = writeln!(m, "## Where ringfast loses\n");
    let loses = losses(summaries);
    if loses.is_empty() {
        let _ = writeln!(m, "No contender in the same group beat a ringfast row on peak throughput or CPU per request in this run (the floor aside, which is the lower bound by construction).\n");
    } else {
        for l in loses {
            let _ = writeln!(m, "- {l}");
        }
        let _ = writeln!(m);
    }

    let _ = writeln!(m, "## Load-generator-bound figures\n");
    let limit: Vec<String> = summaries
        .iter()
        .filter(|s| at_rig_limit(s))
        .map(|s| s.contender.name.clone())
        .collect();
    if !limit.is_empty() {
        let _ = writeln!(
            m,
            "At the rig's limit (load generator and server side both at 90% CPU or more, so neither figure is the server's own ceiling): {}.\n",
            limit.join(", ")
        );
    }
    let bound: Vec<&Summary> = summaries.iter().filter(|s| s.loadgen_bound).collect();
    if bound.is_empty() {
        let _ = writeln!(m, "No peak was load-generator bound by the rule above (load generator ≥ 90% CPU with the server side below 90%).\n");
    } else {
        let _ = writeln!(m, "These peaks are lower bounds: the load generator's CPU was saturated while the server side's was not, so the server could have answered more.\n");
        for s in bound {
            let _ = writeln!(
                m,
                "- {}: {} req/s with the load generator at {} and the server side at {}.",
                s.contender.name,
                opt(&s.peak, num),
                pct(&s.load_util),
                pct(&s.server_util)
            );
        }
        let _ = writeln!(m);
    }

    let pairs = stats::metrics_pairs(summaries);
    if !pairs.is_empty() {
        let _ = writeln!(m, "## Metrics on against `--metrics off`\n\n| configuration | µs/req, metrics on | µs/req, metrics off | cost of metrics | peak on | peak off |\n|---|---:|---:|---:|---:|---:|");
        for (on, off) in pairs {
            let cost = match (on.cpu_us, off.cpu_us) {
                (Some(a), Some(b)) if b.median > 0.0 => {
                    format!("{:+.1}%", (a.median / b.median - 1.0) * 100.0)
                }
                _ => "–".into(),
            };
            let _ = writeln!(
                m,
                "| {} | {} | {} | {cost} | {} | {} |",
                on.contender.name,
                opt(&on.cpu_us, |v| format!("{v:.2}")),
                opt(&off.cpu_us, |v| format!("{v:.2}")),
                opt(&on.peak, num),
                opt(&off.peak, num)
            );
        }
        let _ = writeln!(m);
    }

    let _ = writeln!(m, "## Latency against offered load (open loop)\n\n| contender | fraction of peak | offered req/s | achieved req/s | p50 | p99 | p99.9 | server CPU µs/req |\n|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in summaries {
        for o in &s.open {
            let _ = writeln!(
                m,
                "| {} | {:.0}% | {} | {} | {} | {} | {} | {} |",
                s.contender.name,
                o.fraction * 100.0,
                num(o.offered.median),
                num(o.achieved.median),
                us(o.p50.median),
                us(o.p99.median),
                us(o.p99_9.median),
                opt(&o.cpu_us, |v| format!("{v:.2}"))
            );
        }
    }
    let _ = writeln!(
        m,
        "\nEach line: the open-loop points at the fractions of the peak, then the closed-loop peak. The closed-loop peak often shows a lower p99 than the open loop at 90%: a closed loop sends the next request only after an answer, so queueing delay never enters its latency (coordinated omission); the open-loop figures are the ones to read.\n"
    );
    for g in GROUPS {
        let _ = writeln!(
            m,
            "![Latency against load: {}]({})\n",
            g.title(),
            latency_file(g)
        );
    }

    let wrk: Vec<&Summary> = summaries.iter().filter(|s| s.wrk_rps.is_some()).collect();
    if !wrk.is_empty() {
        let _ = writeln!(m, "## wrk cross-check (HTTP servers)\n\n| contender | ringfast-load req/s | wrk req/s | ringfast-load p99 | wrk p99 |\n|---|---:|---:|---:|---:|");
        for s in wrk {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} |",
                s.contender.name,
                opt(&s.peak, num),
                opt(&s.wrk_rps, num),
                opt(&s.p99, us),
                opt(&s.wrk_p99, us)
            );
        }
        let _ = writeln!(m, "\nwrk 4.1 does not count connections that never got an answer, and its latency is closed-loop (coordinated omission); ringfast-load's open-loop figures above are the ones to read for latency.\n");
    }

    if !raw.skipped.is_empty() || !raw.failures.is_empty() || !raw.notes.is_empty() {
        let _ = writeln!(m, "## Skipped, failed and notes\n");
        for s in &raw.skipped {
            let _ = writeln!(m, "- skipped {}: {}", s.contender, s.reason);
        }
        for f in &raw.failures {
            let first = f.error.lines().next().unwrap_or_default();
            let _ = writeln!(
                m,
                "- failed {} (round {}): {first}",
                f.contender,
                f.round + 1
            );
        }
        for r in raw.runs.iter().filter(|r| r.error.is_some()) {
            let _ = writeln!(
                m,
                "- invalid run {} (round {}, {:?}): {}",
                r.contender,
                r.round + 1,
                r.kind,
                r.error
                    .as_deref()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
            );
        }
        for n in &raw.notes {
            let _ = writeln!(m, "- note: {n}");
        }
        let _ = writeln!(m);
    }
    let _ = writeln!(m, "## Raw data\n\n[results.json](results.json): every load run with its load-generator result, sampling window, CPU seconds of the contender, the load generator and foreign processes, and memory.");
    m
}

/// The memory table of the idle keep-alive connections.
fn idle_section(m: &mut String, idle: &[crate::idle::IdleRecord]) {
    if idle.is_empty() {
        return;
    }
    let _ = writeln!(
        m,
        "## Idle keep-alive connections: memory\n\n\
         Per server: N FastCGI connections over TCP, each used for one request with `FCGI_KEEP_CONN` and then left open and idle (the server pinned as above; ringfast one worker, `--max-conns` above N). RSS and PSS are summed over the server's processes from /proc/PID/smaps_rollup, before (after one throwaway request on its own connection) and with the N connections open; per connection = (with − before) / N. Kernel socket memory is not in either.\n\n\
         | server | idle connections | RSS before MiB | RSS with them MiB | RSS per connection | PSS per connection | vs floor | notes |\n|---|---:|---:|---:|---:|---:|---:|---|"
    );
    let floor = idle
        .iter()
        .find(|r| r.contender == "floor fcgi tcp")
        .and_then(|r| r.rss_kib_per_conn());
    for r in idle {
        let kib = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |k| format!("{k:.2} KiB"));
        let per = r.rss_kib_per_conn();
        let vs = match (per, floor) {
            (Some(a), Some(f)) if f > 0.0 && r.contender != "floor fcgi tcp" => {
                format!("{:.2}", a / f)
            }
            _ => "–".into(),
        };
        let mut notes = Vec::new();
        if let Some(e) = &r.error {
            notes.push(format!("failed: {}", e.lines().next().unwrap_or_default()));
        } else {
            notes.push(format!("opened in {:.2} s", r.open_s));
        }
        let name = if r.contender.starts_with("ringfast") {
            format!("**{}**", r.contender)
        } else {
            r.contender.clone()
        };
        let ok = r.error.is_none();
        let mib = |v: u64| {
            if ok {
                format!("{:.1}", v as f64 / 1024.0)
            } else {
                "–".into()
            }
        };
        let _ = writeln!(
            m,
            "| {name} | {} | {} | {} | {} | {} | {vs} | {} |",
            num(r.connections as f64),
            mib(r.rss_before_kib),
            mib(r.rss_after_kib),
            kib(per),
            kib(r.pss_kib_per_conn()),
            notes.join("; ")
        );
    }
    let _ = writeln!(m);
}

/// Load generator and server side both saturated: the figure is the two-core rig's limit.
fn at_rig_limit(s: &Summary) -> bool {
    !s.loadgen_bound
        && matches!((s.server_util, s.load_util), (Some(a), Some(b)) if a.median >= 0.9 && b.median >= 0.9)
}

/// One line per ringfast row that some contender of the same group and transport beat, on
/// peak throughput or on CPU per request (of the floors, only the one the row is compared with).
fn losses(summaries: &[Summary]) -> Vec<String> {
    use crate::contender::Server;
    let mut out = Vec::new();
    for r in summaries.iter().filter(|s| s.contender.is_ringfast()) {
        let Some(rp) = r.peak else {
            continue;
        };
        let mut beaten = Vec::new();
        for o in summaries.iter().filter(|s| {
            let floor = s.contender.server == Server::Floor;
            !s.contender.is_ringfast()
                && s.contender.group() == r.contender.group()
                && s.contender.name != stats::CEILING
                && (s.contender.transport == r.contender.transport
                    || s.contender.group() == Group::Http)
                && (!floor || s.contender.name == stats::floor_for(&r.contender))
        }) {
            let mut how = Vec::new();
            if let Some(op) = o.peak.filter(|op| op.median > rp.median) {
                how.push(format!(
                    "{:.2}× the throughput ({} req/s)",
                    op.median / rp.median,
                    num(op.median)
                ));
            }
            if let (Some(a), Some(b)) = (r.cpu_us, o.cpu_us) {
                if b.median < a.median {
                    how.push(format!("{:.2} µs of CPU per request", b.median));
                }
            }
            if !how.is_empty() {
                let floor = if o.contender.server == Server::Floor {
                    " (the floor)"
                } else {
                    ""
                };
                beaten.push(format!("{}{floor}: {}", o.contender.name, how.join(", ")));
            }
        }
        if !beaten.is_empty() {
            out.push(format!(
                "**{}** ({} req/s, {} µs/req) loses to {}.",
                r.contender.name,
                num(rp.median),
                opt(&r.cpu_us, |v| format!("{v:.2}")),
                beaten.join("; ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contender::catalog;
    use crate::load::{Latency, LoadResult};
    use crate::results::{RunKind, RunRecord};

    fn run(name: &str, round: usize, rps: f64, cpu_s: f64, load_cpu_s: f64) -> RunRecord {
        RunRecord {
            contender: name.into(),
            round,
            kind: RunKind::Peak,
            client: "ringfast-load".into(),
            fraction: None,
            target_rps: None,
            result: Some(LoadResult {
                requests: (rps * 2.0) as u64,
                errors: 0,
                rps,
                duration_s: 2.0,
                latency_us: Latency {
                    mean: 100.0,
                    p50: 90.0,
                    p90: 150.0,
                    p99: 300.0,
                    p99_9: 500.0,
                    max: 900.0,
                },
            }),
            error: None,
            window_s: 1.0,
            server_cpu_s: cpu_s,
            load_cpu_s,
            foreign_cpu_s: 0.0,
            steal_s: 0.0,
            foreign_top: vec![],
            server_procs: 1,
            server_cpus: vec!["0".into()],
            pss_kib: Some(2048),
            rss_kib: Some(4096),
            noisy: false,
        }
    }

    #[test]
    fn report_files_ratios_and_losses() {
        let names = [
            "floor fcgi tcp",
            "ringfast fcgi tcp",
            "ringfast fcgi tcp metrics-off",
        ];
        let contenders: Vec<_> = catalog()
            .into_iter()
            .filter(|c| names.contains(&c.name.as_str()))
            .collect();
        let mut runs = Vec::new();
        for round in 0..3 {
            runs.push(run("floor fcgi tcp", round, 100_000.0, 0.5, 0.99));
            runs.push(run(
                "ringfast fcgi tcp",
                round,
                50_000.0 + round as f64,
                0.95,
                0.7,
            ));
            runs.push(run(
                "ringfast fcgi tcp metrics-off",
                round,
                60_000.0,
                0.95,
                0.8,
            ));
        }
        let mut open = run("ringfast fcgi tcp", 0, 25_000.0, 0.4, 0.3);
        open.kind = RunKind::Open;
        open.fraction = Some(0.5);
        open.target_rps = Some(25_000.0);
        runs.push(open);
        let raw = RawResults {
            plan: serde_json::json!({"quick": false, "duration": 1.5, "rounds": 3, "pin": true,
                                     "noisy_share": 0.05, "connections": 32, "fractions": [0.5],
                                     "py_procs": 2, "py_threads": 4, "warmup": 0.5}),
            env: vec![("kernel".into(), "6.18".into())],
            contenders,
            runs,
            skipped: vec![],
            failures: vec![],
            busy_at_start: Some("a busy machine".into()),
            notes: vec![],
            elapsed_s: 10.0,
            date: "2026-11-24 06:00 UTC".into(),
            idle: vec![
                crate::idle::IdleRecord {
                    contender: "floor fcgi tcp".into(),
                    connections: 10_000,
                    rss_before_kib: 1024,
                    rss_after_kib: 1024 + 40_000,
                    pss_before_kib: 512,
                    pss_after_kib: 512 + 40_000,
                    closed_by_server: 0,
                    open_s: 0.8,
                    error: None,
                },
                crate::idle::IdleRecord {
                    contender: "ringfast fcgi tcp".into(),
                    connections: 10_000,
                    rss_before_kib: 8192,
                    rss_after_kib: 8192 + 100_000,
                    pss_before_kib: 4096,
                    pss_after_kib: 4096 + 100_000,
                    closed_by_server: 0,
                    open_s: 1.1,
                    error: None,
                },
            ],
        };
        let dir = std::env::temp_dir().join(format!("bench-report-test-{}", std::process::id()));
        write(&dir, &raw).unwrap();
        let md = std::fs::read_to_string(dir.join("REPORT.md")).unwrap();
        for f in [
            "results.json",
            "throughput.svg",
            "cpu.svg",
            "latency-direct.svg",
        ] {
            assert!(dir.join(f).exists(), "{f}");
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(md.contains("**NOISY RUN.**"), "{md}");
        // The floor is load-generator bound (loadgen 99%, server 50%).
        assert!(
            md.contains("| floor fcgi tcp | 100,000 (100,000–100,000) | 1.000 |"),
            "{md}"
        );
        assert!(md.contains("**load-generator bound**"));
        // ringfast: median 50,001 over 3 rounds, ratio 0.500 to the floor, 19.00 µs/req.
        assert!(
            md.contains("| **ringfast fcgi tcp** | 50,001 (50,000–50,002) | 0.500 |"),
            "{md}"
        );
        assert!(md.contains("**ringfast fcgi tcp** (50,001 req/s, 19.00 µs/req) loses to floor fcgi tcp (the floor)"), "{md}");
        // Metrics on against off: 19.00 against 15.83 µs.
        assert!(
            md.contains("| ringfast fcgi tcp | 19.00 | 15.83 | +20.0% |"),
            "{md}"
        );
        assert!(
            md.contains("| ringfast fcgi tcp | 50% | 25,000 | 25,000 |"),
            "{md}"
        );
        assert!(md.contains(REGENERATE));
        // Idle connections: 4.00 and 10.00 KiB each, 2.50 times the floor's.
        assert!(
            md.contains("| floor fcgi tcp | 10,000 | 1.0 | 40.1 | 4.00 KiB | 4.00 KiB | – |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| **ringfast fcgi tcp** | 10,000 | 8.0 | 105.7 | 10.00 KiB | 10.00 KiB | 2.50 |"
            ),
            "{md}"
        );
    }
}
