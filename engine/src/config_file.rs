//! `--config FILE`: the options in a TOML file, and `--print-config`.
//!
//! Every key of the file is the long name of an option (`max-requests = 1000`, `fastcgi =
//! ["unix:/run/app.sock"]`); there is no second list of names to keep in step with the command
//! line. Each value goes through the same parser as the flag, so `idle-timeout = "soon"` is
//! refused with the same words as `--idle-timeout soon`, plus the key and the line.
//!
//! Precedence, from the weakest: the defaults, the file, the environment variables some options
//! read (`RINGFAST_IO`, `RINGFAST_AJP_SECRET`), the command line. A repeatable option given on
//! the command line replaces the file's list rather than adding to it.
//!
//! How: the command line is parsed first (so its own errors are clap's). Each key of the file
//! becomes `--key=value` arguments, checked one key at a time (an error names the key and its
//! line), then the ones the command line or the environment do not set are put before the
//! command line's arguments and everything is parsed once more.

use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches};
use toml::de::{DeTable, DeValue};

use crate::config::Config;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}, line {line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A key that names no option.
    #[error("{}, line {line}: unknown option `{key}`{hint}", path.display())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The key.
        key: String,
        /// A suggestion (", did you mean `...`?") or nothing.
        hint: String,
    },
    /// A key whose value the option refuses.
    #[error("{}, line {line}: `{key}`: {message}", path.display())]
    Value {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The key.
        key: String,
        /// What is wrong with the value.
        message: String,
    },
}

/// What was asked for, after the command line and the file were combined.
#[derive(Debug)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    matches: ArgMatches,
}

/// Why the options could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The command line is wrong (or asks for `--help` or `--version`): clap's own error,
    /// which [`clap::Error::exit`] prints with the right status.
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// The `--config` file is wrong.
    #[error(transparent)]
    File(#[from] ConfigFileError),
}

/// Parses `args` (the program name first) and the `--config` file they name, if any.
pub fn load_from<I, T>(args: I) -> Result<Loaded, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut command = Config::command();
    command.build();
    let cli = command.clone().try_get_matches_from(&args)?;
    let Some(path) = cli.get_one::<PathBuf>("config").cloned() else {
        let config = Config::from_arg_matches(&cli)?;
        return Ok(Loaded {
            config,
            matches: cli,
        });
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Read {
        path: path.clone(),
        source,
    })?;
    let from_file = file_arguments(&command, &path, &text, &cli)?;
    let mut merged = Vec::with_capacity(from_file.len() + args.len());
    merged.extend(args.first().cloned());
    merged.extend(from_file);
    merged.extend(args.iter().skip(1).cloned());
    let matches = command.try_get_matches_from(merged)?;
    let config = Config::from_arg_matches(&matches)?;
    Ok(Loaded { config, matches })
}

/// [`load_from`] on the process's arguments; prints the error and exits on failure (status 2,
/// as clap does), and prints the configuration and exits 0 for `--print-config`.
pub fn load_or_exit() -> Config {
    match load_from(std::env::args_os()) {
        Ok(loaded) if loaded.config.print_config => {
            print!("{}", loaded.render());
            std::process::exit(0);
        }
        Ok(loaded) => loaded.config,
        Err(LoadError::Cli(e)) => e.exit(),
        Err(LoadError::File(e)) => {
            eprintln!("ringfast: {e}");
            std::process::exit(2);
        }
    }
}

/// The options a file cannot set: the file itself, and the ones that print and exit.
fn settable(arg: &Arg) -> bool {
    !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
        && !matches!(arg.get_id().as_str(), "config" | "print_config")
        && arg.get_long().is_some()
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The arguments the file's keys stand for, leaving out the options the command line (or the
/// environment) sets. Every key is checked, also those left out.
fn file_arguments(
    command: &clap::Command,
    path: &Path,
    text: &str,
    cli: &ArgMatches,
) -> Result<Vec<OsString>, ConfigFileError> {
    let table = DeTable::parse(text).map_err(|e| ConfigFileError::Syntax {
        path: path.to_path_buf(),
        line: line_of(text, e.span().map_or(0, |s| s.start)),
        message: e.message().trim().to_string(),
    })?;
    let mut out = Vec::new();
    // In the file's order, so that the first error reported is the first in the file.
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    for (key, value) in entries {
        let name = key.get_ref().as_ref();
        let key_line = line_of(text, key.span().start);
        let Some(arg) = command
            .get_arguments()
            .find(|a| settable(a) && a.get_long() == Some(name))
        else {
            return Err(ConfigFileError::UnknownKey {
                path: path.to_path_buf(),
                line: key_line,
                key: name.to_string(),
                hint: hint(command, name),
            });
        };
        let refuse = |span: Range<usize>, message: String| ConfigFileError::Value {
            path: path.to_path_buf(),
            line: line_of(text, span.start),
            key: name.to_string(),
            message,
        };
        let tokens = arguments_for(arg, name, value.get_ref(), value.span())
            .map_err(|(span, message)| refuse(span, message))?;
        // The option's own parser, on each value alone (a list's items each on its line).
        for (token, span) in &tokens {
            let check = [OsString::from("ringfast"), token.clone()];
            if let Err(e) = command.clone().try_get_matches_from(check) {
                return Err(refuse(span.clone(), clap_message(&e)));
            }
        }
        let tokens = tokens.into_iter().map(|(token, _)| token);
        let given = cli.value_source(arg.get_id().as_str());
        if !matches!(
            given,
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            out.extend(tokens);
        }
    }
    Ok(out)
}

/// The first line of a clap error, without its `error: ` prefix.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first
        .strip_prefix("error: ")
        .unwrap_or(first)
        .trim()
        .to_string()
}

/// ", did you mean `max-requests`?" for a key written with underscores or another case.
fn hint(command: &clap::Command, key: &str) -> String {
    let wanted = key.replace('_', "-").to_ascii_lowercase();
    command
        .get_arguments()
        .filter(|a| settable(a))
        .filter_map(|a| a.get_long())
        .find(|long| *long == wanted)
        .map(|long| format!(", did you mean `{long}`?"))
        .unwrap_or_default()
}

/// What is refused, and where.
type Refusal = (Range<usize>, String);

/// The command-line arguments for `key = value`, each with where its value is in the file.
fn arguments_for(
    arg: &Arg,
    name: &str,
    value: &DeValue<'_>,
    span: Range<usize>,
) -> Result<Vec<(OsString, Range<usize>)>, Refusal> {
    match arg.get_action() {
        ArgAction::SetTrue => match value {
            DeValue::Boolean(true) => Ok(vec![(format!("--{name}").into(), span)]),
            DeValue::Boolean(false) => Ok(Vec::new()),
            _ => Err((span, "expects true or false".into())),
        },
        ArgAction::Append => {
            let items: Vec<(Range<usize>, &DeValue<'_>)> = match value {
                DeValue::Array(items) => items.iter().map(|v| (v.span(), v.get_ref())).collect(),
                one => vec![(span, one)],
            };
            items
                .into_iter()
                .map(|(span, v)| {
                    scalar(v)
                        .map(|s| (OsString::from(format!("--{name}={s}")), span.clone()))
                        .map_err(|m| (span, m))
                })
                .collect()
        }
        _ => match value {
            DeValue::Array(_) => Err((
                span,
                "takes one value, not a list (only repeatable options take lists)".into(),
            )),
            one => scalar(one)
                .map(|s| vec![(OsString::from(format!("--{name}={s}")), span.clone())])
                .map_err(|m| (span, m)),
        },
    }
}

/// One value as the command line would spell it. An octal TOML integer (`0o660`) keeps its
/// `0o` for the file modes; other integers are written in decimal.
fn scalar(value: &DeValue<'_>) -> Result<String, String> {
    match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str();
            match i.radix() {
                10 => Ok(digits.to_string()),
                8 => Ok(format!("0o{digits}")),
                radix => i128::from_str_radix(digits, radix)
                    .map(|n| n.to_string())
                    .map_err(|_| format!("{i} is not an integer")),
            }
        }
        DeValue::Float(f) => Ok(f.as_str().to_string()),
        DeValue::Boolean(b) => Ok(b.to_string()),
        DeValue::Datetime(_) => Err("expects a string or a number, not a date".into()),
        DeValue::Array(_) => Err("expects a string or a number, not a list".into()),
        DeValue::Table(_) => {
            Err("expects a string or a number, not a table (options are top-level keys)".into())
        }
    }
}

impl Loaded {
    /// The effective configuration as a TOML file that `--config` accepts: every option, with
    /// its value (or, commented out, the ones without one), and where each came from.
    pub fn render(&self) -> String {
        let mut command = Config::command();
        command.build();
        let mut out =
            String::from("# ringfast: the effective configuration (ringfast --print-config)\n");
        for arg in command.get_arguments().filter(|a| settable(a)) {
            let Some(name) = arg.get_long() else { continue };
            let id = arg.get_id().as_str();
            let source = match self.matches.value_source(id) {
                Some(ValueSource::DefaultValue) | None => " # default",
                Some(ValueSource::EnvVariable) => " # from the environment",
                _ => "",
            };
            let raw: Vec<String> = self
                .matches
                .get_raw(id)
                .map(|vals| {
                    vals.map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if id == "ajp_secret" && !raw.is_empty() {
                out.push_str("# ajp-secret = (set, not shown)\n");
                continue;
            }
            match arg.get_action() {
                ArgAction::SetTrue => {
                    let on = raw.first().is_some_and(|v| v == "true");
                    out.push_str(&format!("{name} = {on}{source}\n"));
                }
                ArgAction::Append => {
                    let items: Vec<String> = raw.iter().map(|v| toml_value(v)).collect();
                    out.push_str(&format!("{name} = [{}]{source}\n", items.join(", ")));
                }
                _ => match raw.first() {
                    Some(v) => out.push_str(&format!("{name} = {}{source}\n", toml_value(v))),
                    None => out.push_str(&format!("# {name} = (not set)\n")),
                },
            }
        }
        out
    }
}

/// `v` as a TOML value: a plain decimal number as a number, anything else as a string.
fn toml_value(v: &str) -> String {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let integer = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && v.parse::<i64>().is_ok();
    let float = match digits.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
                && (a == "0" || !a.starts_with('0'))
        }
        None => false,
    };
    if integer || float {
        return v.to_string();
    }
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() => s.push_str(&format!("\\u{:04X}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct File(PathBuf);

    impl File {
        fn new(name: &str, text: &str) -> File {
            let path = std::env::temp_dir().join(format!(
                "ringfast-config-{}-{name}.toml",
                std::process::id()
            ));
            std::fs::write(&path, text).unwrap();
            File(path)
        }

        fn load(&self, more: &[&str]) -> Result<Loaded, LoadError> {
            let mut args = vec!["ringfast", "--config", self.0.to_str().unwrap()];
            args.extend_from_slice(more);
            load_from(args)
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn file_error(r: Result<Loaded, LoadError>) -> String {
        match r {
            Err(LoadError::File(e)) => e.to_string(),
            other => panic!("expected a file error, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_the_long_flags_and_the_command_line_wins() {
        let f = File::new(
            "basic",
            "# comment\nfastcgi = [\"127.0.0.1:9001\", \"unix:/tmp/x.sock\"]\nworkers = 3\n\
             idle-timeout = 0.5\nsocket-mode = 0o600\npin = true\nmax-requests = 1_000\n\
             shutdown-timeout = \"7\"\n",
        );
        let c = f.load(&[]).unwrap().config;
        assert_eq!(c.fastcgi.len(), 2);
        assert_eq!(c.workers, Some(3));
        assert_eq!(c.idle_timeout, Duration::from_millis(500));
        assert_eq!(c.socket_mode, 0o600);
        assert!(c.pin);
        assert_eq!(c.max_requests, Some(1000));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(7));
        let c = f
            .load(&["--workers", "5", "--fastcgi", "127.0.0.1:9002"])
            .unwrap()
            .config;
        assert_eq!(c.workers, Some(5));
        assert_eq!(
            c.fastcgi.len(),
            1,
            "the command line's list replaces the file's"
        );
        assert_eq!(c.max_requests, Some(1000));
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        let f = File::new("unknown", "workers = 2\n\nmax_requests = 5\n");
        let e = file_error(f.load(&[]));
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("unknown option `max_requests`"), "{e}");
        assert!(e.contains("did you mean `max-requests`"), "{e}");

        let f = File::new("bad", "workers = 2\nidle-timeout = \"soon\"\n");
        let e = file_error(f.load(&[]));
        assert!(e.contains("line 2") && e.contains("`idle-timeout`"), "{e}");
        assert!(e.contains("not a number of seconds"), "{e}");

        let f = File::new("list", "app = [\"hello\"]\n");
        let e = file_error(f.load(&[]));
        assert!(e.contains("line 1") && e.contains("not a list"), "{e}");

        let f = File::new("flag", "\n\npin = \"yes\"\n");
        let e = file_error(f.load(&[]));
        assert!(e.contains("line 3") && e.contains("true or false"), "{e}");

        let f = File::new("syntax", "workers = 2\nworkers = 3\n");
        let e = file_error(f.load(&[]));
        assert!(e.contains("line 2"), "{e}");

        let f = File::new("table", "[server]\nworkers = 2\n");
        let e = file_error(f.load(&[]));
        assert!(e.contains("line 1") && e.contains("`server`"), "{e}");

        let f = File::new("self", "config = \"/etc/x\"\n");
        assert!(file_error(f.load(&[])).contains("unknown option `config`"));

        let f = File::new("enum", "io = \"kqueue\"\n");
        let e = file_error(f.load(&[]));
        assert!(e.contains("`io`") && e.contains("kqueue"), "{e}");

        let missing = load_from(["ringfast", "--config", "/nonexistent/ringfast.toml"]);
        assert!(matches!(
            missing,
            Err(LoadError::File(ConfigFileError::Read { .. }))
        ));
    }

    #[test]
    fn a_bad_value_is_refused_even_when_the_command_line_overrides_it() {
        let f = File::new("override", "workers = \"many\"\n");
        assert!(file_error(f.load(&["--workers", "2"])).contains("`workers`"));
    }

    #[test]
    fn the_printed_configuration_loads_back_to_the_same() {
        let f = File::new(
            "print",
            "fastcgi = [\"127.0.0.1:9001\"]\nscgi = \"unix:/tmp/s.sock\"\nworkers = 3\n\
             idle-timeout = 0.25\nsocket-mode = \"0600\"\nlog-level = \"debug\"\n\
             script-name = \"/a \\\"b\\\"\"\n",
        );
        let loaded = f.load(&["--max-requests", "9"]).unwrap();
        let printed = loaded.render();
        assert!(printed.contains("workers = 3\n"), "{printed}");
        assert!(printed.contains("max-requests = 9\n"), "{printed}");
        assert!(printed.contains("backlog = 1024 # default\n"), "{printed}");
        assert!(printed.contains("# pidfile = (not set)\n"), "{printed}");
        let again = File::new("print-again", &printed);
        let c = again.load(&[]).unwrap().config;
        let a = &loaded.config;
        assert_eq!(c.fastcgi, a.fastcgi);
        assert_eq!(c.scgi, a.scgi);
        assert_eq!(c.workers, a.workers);
        assert_eq!(c.idle_timeout, a.idle_timeout);
        assert_eq!(c.socket_mode, a.socket_mode);
        assert_eq!(c.max_requests, Some(9));
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.wsgi.script_name.as_deref(), Some("/a \"b\""));
    }

    #[test]
    fn without_a_file_the_command_line_alone() {
        let c = load_from(["ringfast", "--workers", "2"]).unwrap().config;
        assert_eq!(c.workers, Some(2));
        assert!(load_from(["ringfast", "--workers", "x"]).is_err());
    }
}
