//! What `ringfast` does with its parsed command line: log, bind, daemonize, fork the worker
//! processes, load the application and serve until stopped. The binary (`src/main.rs`) and the
//! Python package's `ringfast` command (`python/`) both call [`serve`].

use crate::config::Config;
use crate::server::daemon::Daemonized;
use crate::server::{Forked, Server};

/// Runs the server `config` describes until it stops. Returns the process's exit status. In a
/// process that `--daemonize` or `--processes` forked, it returns there too when that process
/// is done: the caller exits with the status.
pub fn serve(config: Config) -> u8 {
    // A daemon redirects its output itself, after the fork; bind errors still reach the terminal.
    if let Some(path) = config.log_file.as_ref().filter(|_| !config.daemonize) {
        if let Err(e) = crate::server::daemon::redirect_output(path) {
            eprintln!("ringfast: cannot open the log file {}: {e}", path.display());
            return 1;
        }
    }
    let plain = config.daemonize || config.log_file.is_some();
    crate::logging::init(&config.log_level, plain);
    let app = config.app;
    #[cfg(not(feature = "wsgi"))]
    if config.wsgi.app.is_some() {
        tracing::error!("--wsgi needs ringfast built with the `wsgi` feature (docs/wsgi.md)");
        return 1;
    }
    #[cfg(feature = "wsgi")]
    let (wsgi, processes) = (config.wsgi.clone(), config.processes);
    let mut server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    match server.daemonize() {
        Ok(Daemonized::Parent { pid }) => {
            println!("ringfast: running in the background as pid {pid}");
            return 0;
        }
        Ok(Daemonized::Daemon) => {}
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    }
    // With --processes N, the supervisor stays here until it stops; each worker process goes on.
    let server = match server.fork_processes() {
        Ok(Forked::Serve(s)) => *s,
        Ok(Forked::Exit(0)) => return 0,
        Ok(Forked::Exit(_)) => return 1,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    if let Err(e) = server.install_signals() {
        tracing::error!("cannot install signal handlers: {e}");
        return 1;
    }
    // Loaded after binding, in the process that serves, before anything is accepted.
    #[cfg(feature = "wsgi")]
    if wsgi.app.is_some() {
        return match crate::app::wsgi::load(&wsgi, processes) {
            Ok(handler) => finish(server.run(move |_| handler.clone())),
            Err(e) => {
                tracing::error!("{e}");
                1
            }
        };
    }
    finish(server.run(move |_| app))
}

fn finish(ran: Result<(), crate::server::ServerError>) -> u8 {
    match ran {
        Ok(()) => {
            tracing::info!("stopped");
            0
        }
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}
