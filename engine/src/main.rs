//! `ringfast`: parse the command line, bind, serve until SIGTERM/SIGINT (SIGHUP reloads under a
//! supervisor and is logged and ignored without one).

use engine::server::daemon::Daemonized;
use engine::server::{Forked, Server};

fn main() -> std::process::ExitCode {
    // `--config FILE` merged under the command line; `--print-config` prints and exits here.
    let config = engine::config_file::load_or_exit();
    // A daemon redirects its output itself, after the fork; bind errors still reach the terminal.
    if let Some(path) = config.log_file.as_ref().filter(|_| !config.daemonize) {
        if let Err(e) = engine::server::daemon::redirect_output(path) {
            eprintln!("ringfast: cannot open the log file {}: {e}", path.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    let plain = config.daemonize || config.log_file.is_some();
    engine::logging::init(&config.log_level, plain);
    let app = config.app;
    #[cfg(not(feature = "wsgi"))]
    if config.wsgi.app.is_some() {
        tracing::error!("--wsgi needs ringfast built with the `wsgi` feature (docs/wsgi.md)");
        return std::process::ExitCode::FAILURE;
    }
    #[cfg(feature = "wsgi")]
    let (wsgi, processes) = (config.wsgi.clone(), config.processes);
    let mut server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match server.daemonize() {
        Ok(Daemonized::Parent { pid }) => {
            println!("ringfast: running in the background as pid {pid}");
            return std::process::ExitCode::SUCCESS;
        }
        Ok(Daemonized::Daemon) => {}
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    // With --processes N, the supervisor stays here until it stops; each worker process goes on.
    let server = match server.fork_processes() {
        Ok(Forked::Serve(s)) => *s,
        Ok(Forked::Exit(0)) => return std::process::ExitCode::SUCCESS,
        Ok(Forked::Exit(_)) => return std::process::ExitCode::FAILURE,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(e) = server.install_signals() {
        tracing::error!("cannot install signal handlers: {e}");
        return std::process::ExitCode::FAILURE;
    }
    // Loaded after binding, in the process that serves, before anything is accepted.
    #[cfg(feature = "wsgi")]
    if wsgi.app.is_some() {
        return match engine::app::wsgi::load(&wsgi, processes) {
            Ok(handler) => finish(server.run(move |_| handler.clone())),
            Err(e) => {
                tracing::error!("{e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    finish(server.run(move |_| app))
}

fn finish(ran: Result<(), engine::server::ServerError>) -> std::process::ExitCode {
    match ran {
        Ok(()) => {
            tracing::info!("stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
