//! The WSGI environ: every request variable the front end sent, with SCRIPT_NAME and PATH_INFO
//! corrected ([`super::prefix`]), the CGI variables PEP 3333 requires filled in, and the `wsgi.*`
//! keys.
//!
//! [`cgi_vars`] runs on the I/O thread (plain Rust, no Python); [`to_dict`] runs on the Python
//! thread. Strings are Latin-1 (one char per byte), as PEP 3333 specifies for "native strings".

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};

use super::errors::Errors;
use super::file_wrapper::FileWrapper;
use super::input::Input;
use super::prefix::{self, PathVars};
use crate::app::Request;

/// A byte string as a Latin-1 `String`.
pub(crate) fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

/// What is the same for every request of a process.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `--script-name`, as Latin-1.
    pub(crate) script_name: Option<String>,
    /// `wsgi.multithread`: more than one Python thread.
    pub(crate) multithread: bool,
    /// `wsgi.multiprocess`: more than one process.
    pub(crate) multiprocess: bool,
}

fn find<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The request's CGI variables as the application will see them.
pub(crate) fn cgi_vars(req: &Request, settings: &Settings) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = req
        .vars()
        .filter(|(k, _)| *k != b"HTTP_CONTENT_TYPE" && *k != b"HTTP_CONTENT_LENGTH")
        .map(|(k, v)| (latin1(k), latin1(v)))
        .collect();
    fix_vars(&mut vars, settings);
    vars
}

/// Corrects the path split and fills in the variables PEP 3333 requires.
pub(crate) fn fix_vars(vars: &mut Vec<(String, String)>, settings: &Settings) {
    let split = prefix::split(
        PathVars {
            script_name: find(vars, "SCRIPT_NAME"),
            path_info: find(vars, "PATH_INFO"),
            request_uri: find(vars, "REQUEST_URI"),
            script_url: find(vars, "SCRIPT_URL"),
            redirect_url: find(vars, "REDIRECT_URL"),
        },
        settings.script_name.as_deref(),
    );
    let https = is_https(vars);
    let host = find(vars, "HTTP_HOST").map(|h| {
        h.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(h, |(name, _)| name)
            .to_string()
    });
    vars.retain(|(k, v)| {
        k != "SCRIPT_NAME" && k != "PATH_INFO" && !(k == "CONTENT_LENGTH" && v.trim().is_empty())
    });
    vars.push(("SCRIPT_NAME".into(), split.script_name));
    vars.push(("PATH_INFO".into(), split.path_info));
    let defaults = [
        ("REQUEST_METHOD", "GET".to_string()),
        ("QUERY_STRING", String::new()),
        ("SERVER_NAME", host.unwrap_or_else(|| "localhost".into())),
        ("SERVER_PORT", if https { "443" } else { "80" }.to_string()),
        ("SERVER_PROTOCOL", "HTTP/1.0".to_string()),
    ];
    for (name, value) in defaults {
        if find(vars, name).is_none_or(str::is_empty) {
            vars.retain(|(k, _)| k != name);
            vars.push((name.into(), value));
        }
    }
}

/// HTTPS=on (or 1, yes), or REQUEST_SCHEME=https.
fn is_https(vars: &[(String, String)]) -> bool {
    let on = find(vars, "HTTPS").is_some_and(|v| {
        ["on", "1", "yes", "true"]
            .iter()
            .any(|t| v.eq_ignore_ascii_case(t))
    });
    on || find(vars, "REQUEST_SCHEME").is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Builds the environ dict on the Python thread.
pub(crate) fn to_dict<'py>(
    py: Python<'py>,
    vars: &[(String, String)],
    settings: &Settings,
    input: Input,
    file_wrapper: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let env = PyDict::new(py);
    for (k, v) in vars {
        env.set_item(k, v)?;
    }
    let scheme = if is_https(vars) { "https" } else { "http" };
    env.set_item("wsgi.version", (1, 0))?;
    env.set_item("wsgi.url_scheme", scheme)?;
    env.set_item("wsgi.input", Bound::new(py, input)?)?;
    env.set_item("wsgi.errors", Bound::new(py, Errors::new())?)?;
    env.set_item("wsgi.multithread", PyBool::new(py, settings.multithread))?;
    env.set_item("wsgi.multiprocess", PyBool::new(py, settings.multiprocess))?;
    env.set_item("wsgi.run_once", false)?;
    env.set_item("wsgi.input_terminated", true)?;
    env.set_item("wsgi.file_wrapper", file_wrapper)?;
    Ok(env)
}

/// The `wsgi.file_wrapper` class object.
pub(crate) fn file_wrapper_type(py: Python<'_>) -> Bound<'_, PyAny> {
    py.get_type::<FileWrapper>().into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(prefix: Option<&str>) -> Settings {
        Settings {
            script_name: prefix.map(String::from),
            multithread: true,
            multiprocess: false,
        }
    }

    fn fixed(pairs: &[(&str, &str)], prefix: Option<&str>) -> Vec<(String, String)> {
        let mut v = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        fix_vars(&mut v, &settings(prefix));
        v
    }

    #[test]
    fn required_variables_are_filled_in() {
        let v = fixed(
            &[
                ("REQUEST_URI", "/x?y=1"),
                ("HTTP_HOST", "example.org:8080"),
                ("CONTENT_LENGTH", ""),
                ("HTTPS", "on"),
            ],
            None,
        );
        assert_eq!(find(&v, "SCRIPT_NAME"), Some(""));
        assert_eq!(find(&v, "PATH_INFO"), Some("/x"));
        assert_eq!(find(&v, "REQUEST_METHOD"), Some("GET"));
        assert_eq!(find(&v, "QUERY_STRING"), Some(""));
        assert_eq!(find(&v, "SERVER_NAME"), Some("example.org"));
        assert_eq!(find(&v, "SERVER_PORT"), Some("443"));
        assert_eq!(find(&v, "CONTENT_LENGTH"), None);
        assert!(is_https(&v));
    }

    #[test]
    fn sent_values_are_kept_and_paths_corrected() {
        let v = fixed(
            &[
                ("SCRIPT_NAME", "/app/polls/"),
                ("REQUEST_URI", "/app/polls/"),
                ("SERVER_NAME", "localhost"),
                ("SERVER_PORT", "8080"),
                ("CONTENT_LENGTH", "12"),
            ],
            Some("/app"),
        );
        assert_eq!(find(&v, "SCRIPT_NAME"), Some("/app"));
        assert_eq!(find(&v, "PATH_INFO"), Some("/polls/"));
        assert_eq!(find(&v, "SERVER_PORT"), Some("8080"));
        assert_eq!(find(&v, "CONTENT_LENGTH"), Some("12"));
        assert!(!is_https(&v));
        assert_eq!(v.iter().filter(|(k, _)| k == "SCRIPT_NAME").count(), 1);
    }
}
