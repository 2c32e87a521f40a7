//! `ringfast`: parse the command line, bind, serve until SIGTERM/SIGINT (SIGHUP reloads under a
//! supervisor and is logged and ignored without one). The work is in [`engine::launch`], which
//! the Python package's `ringfast` command shares.

fn main() -> std::process::ExitCode {
    // `--config FILE` merged under the command line; `--print-config` prints and exits here.
    std::process::ExitCode::from(engine::launch::serve(engine::config_file::load_or_exit()))
}
