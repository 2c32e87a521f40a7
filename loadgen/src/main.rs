//! `ringfast-load`: parse the command line, run, report. Exit status: 0 when the run completed
//! (errors counted or not), 2 on bad usage, 1 when the target could never be reached.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use loadgen::cli::{Args, Config};
use loadgen::{report, run};

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringfast-load: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match run::run(config.clone()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ringfast-load: {e}");
            return ExitCode::from(1);
        }
    };
    let json_to_stdout = config.json.as_deref() == Some("-");
    if let Some(path) = &config.json {
        let text = report::json(&config, &outcome).to_string();
        let written = if json_to_stdout {
            writeln!(std::io::stdout(), "{text}")
        } else {
            std::fs::write(path, text + "\n")
        };
        if let Err(e) = written {
            eprintln!("ringfast-load: cannot write --json {path}: {e}");
            return ExitCode::from(1);
        }
    }
    if !config.quiet {
        let summary = report::summary(&config, &outcome);
        if json_to_stdout {
            eprint!("{summary}");
        } else {
            print!("{summary}");
        }
    }
    if !outcome.stats.connected {
        eprintln!("ringfast-load: {} could never be reached", config.target);
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
