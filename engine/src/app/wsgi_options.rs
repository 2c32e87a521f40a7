//! The options of a hosted Python WSGI application (`--wsgi` and its companions). They live with
//! the applications, not in `config`, so that the application layer does not import the
//! configuration that assembles it; `config` embeds them in its command line.

use std::path::PathBuf;

/// The Python WSGI application and where it comes from (docs/wsgi.md).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Python WSGI (feature `wsgi`)")]
pub struct WsgiOptions {
    /// Serve this WSGI callable instead of a built-in app: `MODULE:CALLABLE`, e.g.
    /// `mysite.wsgi:application` (`MODULE` alone means `MODULE:application`).
    #[arg(id = "wsgi", long = "wsgi", value_name = "MODULE:CALLABLE")]
    pub app: Option<String>,

    /// Change to this directory before loading the app (it is also put first on sys.path).
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<PathBuf>,

    /// Directory to put on sys.path, before the virtualenv's packages. Repeatable.
    #[arg(long = "pythonpath", value_name = "DIR")]
    pub pythonpath: Vec<PathBuf>,

    /// Use the packages of this virtualenv (made with the same Python version ringfast links).
    #[arg(long, value_name = "DIR")]
    pub venv: Option<PathBuf>,

    /// Python threads per process running the app; requests beyond that wait in a queue.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,

    /// Force SCRIPT_NAME to this URL prefix (as Django's FORCE_SCRIPT_NAME does); PATH_INFO
    /// becomes the rest of the path. `""` or `/` mounts the app at the root.
    #[arg(long, value_name = "PREFIX")]
    pub script_name: Option<String>,
}
