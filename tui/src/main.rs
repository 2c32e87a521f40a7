//! `ringfast-top`: a live terminal dashboard over ringfast engines' `/metrics`.

use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGTERM};
use signal_hook::iterator::Signals;

use tui::app::{self, Ended};
use tui::model::Model;
use tui::scrape::{Target, DEFAULT_URL};
use tui::tty;

/// How long after SIGTERM or SIGHUP the dashboard may take to end before it is made to.
const SIGNAL_GRACE: Duration = Duration::from_secs(1);

/// ringfast-top: live per-worker rates, latencies and errors of ringfast engines, read from
/// their Prometheus /metrics.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Metrics URLs (http://HOST:PORT/metrics, or HOST:PORT). Several engines show as tabs plus
    /// an "all" tab summing them.
    #[arg(default_value = DEFAULT_URL)]
    urls: Vec<String>,
    /// Scrape period, in seconds (fractions allowed).
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    interval: f64,
    /// Print a plain-text snapshot (two scrapes, one interval apart) and exit: 0 when every
    /// engine answered, 1 otherwise. The default when standard output is not a terminal.
    #[arg(long)]
    once: bool,
}

fn parse_interval(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.05..=3600.0).contains(&v) {
        Ok(v)
    } else {
        Err("the interval must be between 0.05 and 3600 seconds".into())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut targets = Vec::new();
    for url in &args.urls {
        match Target::parse(url) {
            Ok(t) => targets.push(t),
            Err(e) => {
                eprintln!("ringfast-top: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let interval = Duration::from_secs_f64(args.interval);
    if args.once || !std::io::stdout().is_terminal() {
        let (text, ok) = app::once(&targets, interval);
        print!("{text}");
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let events = match app::start_scrapers(&targets, interval) {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("ringfast-top: cannot start the scraper threads: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Keys come from this terminal; when it goes away (a closed SSH session, a killed tmux
    // session) the dashboard ends.
    let input = match tty::Input::open() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("ringfast-top: no terminal to read keys from: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SIGTERM and SIGHUP (a closed SSH session) end the loop like `q`, so the terminal is
    // restored; in raw mode Ctrl-C arrives as a key, not as SIGINT.
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    if let Err(e) = watch_signals(stop.clone(), finished.clone()) {
        eprintln!("ringfast-top: cannot handle signals: {e}");
        return ExitCode::FAILURE;
    }
    // ratatui::init installs a panic hook that restores the terminal before the panic message.
    let mut terminal = ratatui::init();
    let result = app::run(
        &mut terminal,
        Model::new(targets, interval),
        events,
        &input,
        &stop,
    );
    finished.store(true, Ordering::SeqCst);
    // Restoring a terminal that went away fails; there is nobody left to tell. (The terminal's
    // own drop would print that failure to the missing terminal, and panic as printing fails.)
    if terminal.show_cursor().is_ok() {
        drop(terminal);
    } else {
        std::mem::forget(terminal);
    }
    let _ = ratatui::try_restore();
    match result {
        Ok(Ended::Quit | Ended::Stopped | Ended::TerminalGone(_)) => ExitCode::SUCCESS,
        Err(e) => {
            // The terminal may be gone: a failed write to it is not worth a panic.
            let _ = writeln!(std::io::stderr(), "ringfast-top: terminal error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sets `stop` on SIGTERM or SIGHUP. The dashboard's loop sees it within a redraw; should the
/// loop not end within [`SIGNAL_GRACE`] (stuck on a terminal that went away), this thread
/// restores what it can of the terminal and exits.
fn watch_signals(stop: Arc<AtomicBool>, finished: Arc<AtomicBool>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("ringfast-top-signals".into())
        .spawn(move || {
            if signals.forever().next().is_none() {
                return;
            }
            stop.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + SIGNAL_GRACE;
            while Instant::now() < deadline {
                if finished.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !finished.load(Ordering::SeqCst) {
                let _ = ratatui::try_restore();
                std::process::exit(0);
            }
        })?;
    Ok(())
}
