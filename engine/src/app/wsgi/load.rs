//! Loading the application: start the interpreter, set up `sys.path` (working directory,
//! `--pythonpath`, `--venv`), import `MODULE` and look up `CALLABLE`.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::errors::traceback_text;
use crate::app::WsgiOptions;

/// Why the application could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// `--chdir` failed.
    #[error("cannot change to {path}: {source}")]
    Chdir {
        /// The directory given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--venv` is not a virtualenv for this Python.
    #[error("{0}")]
    Venv(String),
    /// `--wsgi` is not `MODULE:CALLABLE`.
    #[error("--wsgi {0:?}: expected MODULE:CALLABLE, as in mysite.wsgi:application")]
    Spec(String),
    /// Importing the module, or finding the callable in it, raised.
    #[error("cannot load the WSGI application {spec}:\n{traceback}")]
    Python {
        /// `--wsgi` as given.
        spec: String,
        /// The Python traceback.
        traceback: String,
    },
    /// The object named is not callable.
    #[error("{spec}: {kind} object is not callable")]
    NotCallable {
        /// `--wsgi` as given.
        spec: String,
        /// Its Python type.
        kind: String,
    },
    /// The Python threads could not start.
    #[error("cannot start the Python threads: {0}")]
    Threads(std::io::Error),
}

/// Splits `MODULE:CALLABLE` (`MODULE` alone means `MODULE:application`).
pub(crate) fn parse_spec(spec: &str) -> Result<(&str, &str), LoadError> {
    let (module, attr) = spec.split_once(':').unwrap_or((spec, "application"));
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| c.is_alphanumeric() || c == '_')
                    && !part.starts_with(|c: char| c.is_ascii_digit())
            })
    };
    if ident(module) && ident(attr) {
        Ok((module, attr))
    } else {
        Err(LoadError::Spec(spec.to_string()))
    }
}

/// Starts the interpreter (once) and imports the application. Returns the callable.
pub(crate) fn load(opts: &WsgiOptions, spec: &str) -> Result<Py<PyAny>, LoadError> {
    let (module, attr) = parse_spec(spec)?;
    if let Some(dir) = &opts.chdir {
        std::env::set_current_dir(dir).map_err(|source| LoadError::Chdir {
            path: dir.clone(),
            source,
        })?;
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    Python::initialize();
    Python::attach(|py| {
        let python_err = |e: PyErr| LoadError::Python {
            spec: spec.to_string(),
            traceback: traceback_text(py, &e),
        };
        let mut front: Vec<PathBuf> = vec![cwd.clone()];
        front.extend(opts.pythonpath.iter().map(|p| cwd.join(p)));
        if let Some(venv) = &opts.venv {
            front.push(venv_site_packages(py, &cwd.join(venv))?);
        }
        set_path(py, &front).map_err(python_err)?;
        let mut obj = py.import(module).map_err(python_err)?.into_any();
        for part in attr.split('.') {
            obj = obj.getattr(part).map_err(python_err)?;
        }
        if !obj.is_callable() {
            let kind = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            return Err(LoadError::NotCallable {
                spec: spec.to_string(),
                kind,
            });
        }
        tracing::info!(target: "wsgi", app = spec, python = %python_version(py), "WSGI application loaded");
        Ok(obj.unbind())
    })
}

/// `<venv>/lib/pythonX.Y/site-packages` for the running interpreter's X.Y.
fn venv_site_packages(py: Python<'_>, venv: &Path) -> Result<PathBuf, LoadError> {
    if !venv.join("pyvenv.cfg").is_file() {
        return Err(LoadError::Venv(format!(
            "--venv {}: no pyvenv.cfg there; not a virtualenv",
            venv.display()
        )));
    }
    let v = py.version_info();
    let site = venv
        .join("lib")
        .join(format!("python{}.{}", v.major, v.minor))
        .join("site-packages");
    if !site.is_dir() {
        return Err(LoadError::Venv(format!(
            "--venv {}: no {} (the virtualenv must be made with Python {}.{}, the one ringfast \
             links)",
            venv.display(),
            site.display(),
            v.major,
            v.minor
        )));
    }
    Ok(site)
}

/// Puts `dirs` first on sys.path, in order; site directories among them get their `.pth` files
/// processed (`site.addsitedir`).
fn set_path(py: Python<'_>, dirs: &[PathBuf]) -> PyResult<()> {
    let sys = py.import("sys")?;
    let site = py.import("site")?;
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    let before = path.len();
    for dir in dirs.iter().filter(|d| d.ends_with("site-packages")) {
        site.call_method1("addsitedir", (dir.to_string_lossy(),))?;
    }
    // addsitedir appends; move what it added, and the plain directories, to the front.
    let added: Vec<Bound<'_, PyAny>> = path.iter().skip(before).collect();
    let mut new_front: Vec<Bound<'_, PyAny>> = Vec::new();
    for dir in dirs.iter().filter(|d| !d.ends_with("site-packages")) {
        new_front.push(dir.to_string_lossy().into_pyobject(py)?.into_any());
    }
    new_front.extend(added);
    let rest: Vec<Bound<'_, PyAny>> = path.iter().take(before).collect();
    let all = PyList::new(py, new_front.into_iter().chain(rest))?;
    path.call_method1("__setitem__", (pyo3::types::PySlice::full(py), all))?;
    Ok(())
}

fn python_version(py: Python<'_>) -> String {
    let v = py.version_info();
    format!("{}.{}.{}", v.major, v.minor, v.patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse_spec("mysite.wsgi:application").unwrap(),
            ("mysite.wsgi", "application")
        );
        assert_eq!(parse_spec("app").unwrap(), ("app", "application"));
        assert_eq!(parse_spec("app:make.wsgi").unwrap(), ("app", "make.wsgi"));
        assert!(parse_spec("app:").is_err());
        assert!(parse_spec(":x").is_err());
        assert!(parse_spec("a..b:x").is_err());
        assert!(parse_spec("a:x()").is_err());
    }
}
