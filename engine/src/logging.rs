//! Logging setup: tracing to stderr, filtered by `--log-level`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is a level name or any tracing filter directive;
/// `RUST_LOG` overrides it when set. Colours only when stderr is a terminal and `plain` is
/// false (a log file or a daemon gets plain text).
pub fn init(level: &str, plain: bool) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!plain && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
