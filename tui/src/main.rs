//! `ringfast-top`: a live terminal dashboard over ringfast engines' `/metrics`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use tui::app;
use tui::model::Model;
use tui::scrape::{Target, DEFAULT_URL};

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
    // SIGTERM and SIGHUP (a closed SSH session) end the loop like `q`, so the terminal is
    // restored; in raw mode Ctrl-C arrives as a key, not as SIGINT.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("ringfast-top: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    // ratatui::init installs a panic hook that restores the terminal before the panic message.
    let mut terminal = ratatui::init();
    let result = app::run(&mut terminal, Model::new(targets, interval), events, &stop);
    ratatui::restore();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringfast-top: terminal error: {e}");
            ExitCode::FAILURE
        }
    }
}
