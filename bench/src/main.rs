//! `ringfast-bench`: see `bench/src/lib.rs` and docs/bench/README.md.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;

use bench::cli::{Options, Plan};
use bench::error::BenchError;
use bench::lock::RunLock;
use bench::results::{RawResults, Skipped};
use bench::runner::{self, Bench, Pinning};
use bench::tools::Tools;
use bench::{contender, envinfo, idle, report};

fn main() -> ExitCode {
    let opts = Options::parse();
    match run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ringfast-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the matrix and writes the report. `Ok(false)` when a contender failed to start, died, or
/// a run answered no request.
fn run(opts: &Options) -> Result<bool, BenchError> {
    if let Some(path) = &opts.from_json {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BenchError::io(format!("reading {}", path.display()), e))?;
        let raw: RawResults = serde_json::from_str(&text).map_err(|e| BenchError::Parse {
            client: path.display().to_string(),
            detail: e.to_string(),
        })?;
        report::write(&opts.out, &raw)?;
        eprintln!("ringfast-bench: rewrote {}/REPORT.md", opts.out.display());
        return Ok(true);
    }
    let started = Instant::now();
    let plan = Plan::from_options(opts)?;
    let lock = RunLock::acquire(&opts.lock)?;
    eprintln!("ringfast-bench: holding {}", lock.path().display());

    let (share, top) = runner::foreign_share(2.0);
    let load1 = bench::procfs::loadavg().unwrap_or(0.0);
    let busy_at_start = (share > 2.0 * plan.noisy_share).then(|| {
        let who: Vec<String> = top.iter().map(|(c, t)| format!("{c} {t:.2}s")).collect();
        format!(
            "other processes used {:.0}% of the machine's CPU over 2 s (load average {load1:.2}; top: {})",
            share * 100.0,
            who.join(", ")
        )
    });
    if let Some(b) = &busy_at_start {
        if !(opts.allow_busy || plan.quick) {
            return Err(BenchError::Busy(b.clone()));
        }
        eprintln!("ringfast-bench: busy machine, the report will be marked noisy: {b}");
    }

    let tools = Tools::prepare(
        &opts.bin_dir,
        opts.loadgen.as_deref(),
        &opts.work_dir,
        !opts.no_install,
    );
    for n in &tools.notes {
        eprintln!("ringfast-bench: note: {n}");
    }
    let env = envinfo::collect(&tools);
    let mut contenders = Vec::new();
    let mut skipped = Vec::new();
    for c in contender::select(&opts.only, &plan.engine_io) {
        match tools.missing_for(&c) {
            Some(reason) => skipped.push(Skipped {
                contender: c.name.clone(),
                reason,
            }),
            None => contenders.push(c),
        }
    }
    let mut idle_rows = Vec::new();
    if plan.idle_conns > 0 {
        for c in idle::contenders(&opts.only, &plan.engine_io) {
            match tools.missing_for(&c) {
                Some(reason) => skipped.push(Skipped {
                    contender: idle::row_name(&c),
                    reason,
                }),
                None => idle_rows.push(c),
            }
        }
    }
    if contenders.is_empty() && idle_rows.is_empty() {
        return Err(BenchError::Usage("no contender can run here".into()));
    }
    // The idle connections need a descriptor each, in this process and in the server (which
    // inherits the limit): raise RLIMIT_NOFILE before anything is started.
    let mut notes = tools.notes.clone();
    let mut idle_conns = plan.idle_conns;
    if !idle_rows.is_empty() {
        let want = idle_conns as u64 + idle::FD_MARGIN;
        match idle::raise_nofile(want) {
            Ok(limit) if limit < want => {
                idle_conns = limit.saturating_sub(idle::FD_MARGIN) as usize;
                notes.push(format!(
                    "RLIMIT_NOFILE could only be raised to {limit}: {idle_conns} idle connections instead of {}",
                    plan.idle_conns
                ));
            }
            Ok(_) => {}
            Err(e) => notes.push(format!(
                "raising RLIMIT_NOFILE failed ({e}): the idle connections may fail"
            )),
        }
        if idle_conns == 0 {
            idle_rows.clear();
        }
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&interrupted))
            .map_err(|e| BenchError::io("installing the signal handler", e))?;
    }
    let bench = Bench {
        plan: &plan,
        tools: &tools,
        pin: Pinning::new(plan.pin),
        interrupted,
    };
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    if !contenders.is_empty() && !runner::run_rounds(&bench, &contenders, &mut runs, &mut failures)
    {
        return Err(BenchError::Usage(
            "interrupted: every service stopped, no report written".into(),
        ));
    }
    let mut idle = Vec::new();
    for c in &idle_rows {
        if bench.interrupted.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(BenchError::Usage(
                "interrupted: every service stopped, no report written".into(),
            ));
        }
        eprintln!(
            "ringfast-bench: {}: {idle_conns} idle keep-alive connections",
            idle::row_name(c)
        );
        let rec = idle::measure(c, &tools, &plan, bench.pin.server.as_deref(), idle_conns);
        match (&rec.error, rec.rss_kib_per_conn()) {
            (None, Some(kib)) => eprintln!(
                "ringfast-bench:   RSS {:.1} -> {:.1} MiB: {kib:.2} KiB per connection (opened in {:.2} s)",
                rec.rss_before_kib as f64 / 1024.0,
                rec.rss_after_kib as f64 / 1024.0,
                rec.open_s
            ),
            (e, _) => eprintln!(
                "ringfast-bench:   failed: {}",
                e.as_deref().unwrap_or("no figure")
            ),
        }
        idle.push(rec);
    }

    let raw = RawResults {
        plan: serde_json::to_value(&plan).unwrap_or_default(),
        env,
        contenders,
        runs,
        skipped,
        failures,
        busy_at_start,
        notes,
        elapsed_s: started.elapsed().as_secs_f64(),
        date: report::date_utc(),
        idle,
    };
    report::write(&opts.out, &raw)?;
    eprintln!(
        "ringfast-bench: wrote {}/REPORT.md in {:.0} s",
        opts.out.display(),
        raw.elapsed_s
    );
    // A contender that did not start, died, or answered nothing fails the run; runs with a few
    // errors are reported in the tables but do not.
    let failed = !raw.failures.is_empty()
        || raw
            .runs
            .iter()
            .any(|r| r.result.as_ref().is_none_or(|x| x.requests == 0))
        || raw.idle.iter().any(|r| r.error.is_some());
    Ok(!failed)
}
