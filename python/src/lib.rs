//! `ringfast._ringfast`: the engine as a Python extension module.
//!
//! The `ringfast` binary embeds Python: it starts an interpreter in each process that serves.
//! Here the interpreter already exists (the one that imported this module, with its virtualenv's
//! packages on `sys.path`), so [`run`] parses the same command line as the binary, releases the
//! GIL and calls [`engine::launch::serve`]. The engine's WSGI host finds the interpreter
//! initialised and uses it. The server forks (`--daemonize`, `--processes`, `--max-requests`,
//! `--touch-reload`), so [`fork_hooks`] carry the interpreter across each fork as `os.fork()`
//! does.

use std::cell::Cell;

use pyo3::ffi;
use pyo3::prelude::*;

thread_local! {
    /// The GIL state taken before a fork, released after it (on the forking thread).
    static FORK_GIL: Cell<Option<ffi::PyGILState_STATE>> = const { Cell::new(None) };
}

fn before_fork() {
    // SAFETY: the forking thread is the one that called `run`, inside `Python::detach`: it has
    // a thread state and does not hold the GIL, so PyGILState_Ensure takes it back.
    // PyOS_BeforeFork is called with the GIL held, as its documentation requires.
    unsafe {
        let state = ffi::PyGILState_Ensure();
        ffi::PyOS_BeforeFork();
        FORK_GIL.with(|g| g.set(Some(state)));
    }
}

fn after_fork(child: bool) {
    // SAFETY: paired with `before_fork` on the same thread, which still holds the GIL.
    unsafe {
        if child {
            ffi::PyOS_AfterFork_Child();
        } else {
            ffi::PyOS_AfterFork_Parent();
        }
        if let Some(state) = FORK_GIL.with(|g| g.take()) {
            ffi::PyGILState_Release(state);
        }
    }
}

/// The hooks the engine runs around its forks.
fn fork_hooks() -> engine::server::fork::ForkHooks {
    engine::server::fork::ForkHooks {
        before: before_fork,
        parent: || after_fork(false),
        child: || after_fork(true),
    }
}

/// Runs ringfast with `argv` (`argv[0]` is the program name; the options are the `ringfast`
/// binary's) in this interpreter, until the server stops. Returns the exit status.
///
/// A process forked by the server (`--daemonize`, a worker process of `--processes`) returns
/// here too when it is done; the caller must then leave with `os._exit(status)`.
#[pyfunction]
fn run(py: Python<'_>, argv: Vec<String>) -> i32 {
    use engine::config_file::{load_from, LoadError};
    // The binary's parsing, `--config FILE` included (engine/src/config_file.rs), without its
    // process::exit: the interpreter decides how to leave.
    let config = match load_from(&argv) {
        Ok(loaded) if loaded.config.print_config => {
            print!("{}", loaded.render());
            return 0;
        }
        Ok(loaded) => loaded.config,
        Err(LoadError::Cli(e)) => {
            // --help and --version land here too, with status 0.
            let _ = e.print();
            return e.exit_code();
        }
        Err(LoadError::File(e)) => {
            eprintln!("ringfast: {e}");
            return 2;
        }
    };
    engine::server::fork::set_hooks(fork_hooks());
    i32::from(py.detach(move || engine::launch::serve(config)))
}

/// The version of the engine this module was built from.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The extension module `ringfast._ringfast`.
#[pymodule]
fn _ringfast(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
