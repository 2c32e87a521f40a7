//! The WSGI environ: every request variable the front end sent, with SCRIPT_NAME and PATH_INFO
//! corrected ([`super::prefix`]), the CGI variables PEP 3333 requires filled in, and the `wsgi.*`
//! keys.
//!
//! [`Vars::new`] runs on the I/O thread (plain Rust, no Python): it copies the variables into one
//! buffer, as bytes, with the corrections appended. [`Environ::build`] runs on the Python thread:
//! it copies a prebuilt dict of the constant `wsgi.*` entries, then adds each variable with its
//! name from a cache of interned strings and its value decoded straight from the request bytes
//! as Latin-1 (PEP 3333's "native strings": one char per byte).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString};
use pyo3::{ffi, intern};

use super::errors::Errors;
use super::file_wrapper::FileWrapper;
use super::prefix::{self, PathVars};

/// A byte string as a Latin-1 `String`.
pub(crate) fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

/// Bytes as Latin-1 text, borrowed when they are ASCII (the usual case).
fn latin1_cow(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) if b.is_ascii() => Cow::Borrowed(s),
        _ => Cow::Owned(latin1(b)),
    }
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

/// The request variables as the application will see them, as bytes in one buffer.
#[derive(Debug, Default)]
pub(crate) struct Vars {
    buf: Vec<u8>,
    /// For each variable, where its name ends and where its value ends in `buf` (each starts
    /// where the one before ended).
    ends: Vec<(u32, u32)>,
    /// `wsgi.url_scheme` is https.
    pub(crate) https: bool,
}

/// The last value of each variable the corrections read.
#[derive(Default)]
struct Known<'a> {
    script_name: Option<&'a [u8]>,
    path_info: Option<&'a [u8]>,
    request_uri: Option<&'a [u8]>,
    script_url: Option<&'a [u8]>,
    redirect_url: Option<&'a [u8]>,
    host: Option<&'a [u8]>,
    https: Option<&'a [u8]>,
    scheme: Option<&'a [u8]>,
    method: Option<&'a [u8]>,
    query: Option<&'a [u8]>,
    server_name: Option<&'a [u8]>,
    server_port: Option<&'a [u8]>,
    protocol: Option<&'a [u8]>,
}

impl Vars {
    /// Copies `pairs` (the request's variables, in order), drops those PEP 3333 says to drop,
    /// and appends the corrected SCRIPT_NAME and PATH_INFO and the required variables that are
    /// missing. A later variable of the same name wins, as in the dict.
    pub(crate) fn new<'a>(
        pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        settings: &Settings,
    ) -> Vars {
        let mut v = Vars {
            buf: Vec::with_capacity(1024),
            ends: Vec::with_capacity(32),
            https: false,
        };
        let mut k = Known::default();
        for (name, value) in pairs {
            let slot = match name {
                b"SCRIPT_NAME" => {
                    k.script_name = Some(value);
                    continue;
                }
                b"PATH_INFO" => {
                    k.path_info = Some(value);
                    continue;
                }
                b"HTTP_CONTENT_TYPE" | b"HTTP_CONTENT_LENGTH" => continue,
                b"CONTENT_LENGTH" if value.trim_ascii().is_empty() => continue,
                b"REQUEST_URI" => &mut k.request_uri,
                b"SCRIPT_URL" => &mut k.script_url,
                b"REDIRECT_URL" => &mut k.redirect_url,
                b"HTTP_HOST" => &mut k.host,
                b"HTTPS" => &mut k.https,
                b"REQUEST_SCHEME" => &mut k.scheme,
                b"REQUEST_METHOD" => &mut k.method,
                b"QUERY_STRING" => &mut k.query,
                b"SERVER_NAME" => &mut k.server_name,
                b"SERVER_PORT" => &mut k.server_port,
                b"SERVER_PROTOCOL" => &mut k.protocol,
                _ => {
                    v.push(name, value);
                    continue;
                }
            };
            *slot = Some(value);
            v.push(name, value);
        }
        let text = |b: Option<&'a [u8]>| b.map(latin1_cow);
        let (script, info, uri) = (text(k.script_name), text(k.path_info), text(k.request_uri));
        let (surl, rurl) = (text(k.script_url), text(k.redirect_url));
        let split = prefix::split(
            PathVars {
                script_name: script.as_deref(),
                path_info: info.as_deref(),
                request_uri: uri.as_deref(),
                script_url: surl.as_deref(),
                redirect_url: rurl.as_deref(),
            },
            settings.script_name.as_deref(),
        );
        v.push_text(b"SCRIPT_NAME", &split.script_name);
        v.push_text(b"PATH_INFO", &split.path_info);
        let on = |b: Option<&[u8]>, words: &[&[u8]]| {
            b.is_some_and(|b| words.iter().any(|w| b.eq_ignore_ascii_case(w)))
        };
        v.https = on(k.https, &[b"on", b"1", b"yes", b"true"]) || on(k.scheme, &[b"https"]);
        let missing = |b: Option<&[u8]>| b.is_none_or(<[u8]>::is_empty);
        if missing(k.method) {
            v.push(b"REQUEST_METHOD", b"GET");
        }
        if k.query.is_none() {
            v.push(b"QUERY_STRING", b"");
        }
        if missing(k.server_name) {
            let name = match k.host {
                Some(h) => match h.iter().rposition(|&c| c == b':') {
                    Some(i) if h[i + 1..].iter().all(u8::is_ascii_digit) => &h[..i],
                    _ => h,
                },
                None => b"localhost",
            };
            v.push(b"SERVER_NAME", name);
        }
        if missing(k.server_port) {
            v.push(b"SERVER_PORT", if v.https { b"443" } else { b"80" });
        }
        if missing(k.protocol) {
            v.push(b"SERVER_PROTOCOL", b"HTTP/1.0");
        }
        v
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        self.buf.extend_from_slice(name);
        let mid = self.buf.len() as u32;
        self.buf.extend_from_slice(value);
        self.ends.push((mid, self.buf.len() as u32));
    }

    /// Pushes a value that is Latin-1 text (one byte per char).
    fn push_text(&mut self, name: &[u8], value: &str) {
        if value.is_ascii() {
            return self.push(name, value.as_bytes());
        }
        let bytes: Vec<u8> = value
            .chars()
            .map(|c| u8::try_from(c).unwrap_or(b'?'))
            .collect();
        self.push(name, &bytes);
    }

    /// Every variable, in order (a later one of the same name wins).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let mut start = 0usize;
        self.ends.iter().map(move |&(mid, end)| {
            let (mid, end) = (mid as usize, end as usize);
            let pair = (&self.buf[start..mid], &self.buf[mid..end]);
            start = end;
            pair
        })
    }

    /// The last value of `name`.
    #[cfg(test)]
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .filter(|(k, _)| *k == name.as_bytes())
            .last()
            .map(|(_, v)| v)
    }
}

/// FNV-1a, for the short variable names of the key cache.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Variable names kept as interned strings; the names of the first requests fill it.
const KEY_CACHE_MAX: usize = 512;

type KeyCache = HashMap<Box<[u8]>, Py<PyString>, BuildHasherDefault<Fnv>>;

/// What every environ starts from: the constant entries and the interned names.
pub(crate) struct Environ {
    consts: Py<PyDict>,
    keys: Mutex<KeyCache>,
}

impl std::fmt::Debug for Environ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environ").finish_non_exhaustive()
    }
}

impl Environ {
    /// The constant entries: `wsgi.version`, `wsgi.errors` (one stream for the process, as
    /// `sys.stderr` would be), `wsgi.multithread`, `wsgi.multiprocess`, `wsgi.run_once`,
    /// `wsgi.input_terminated` and `wsgi.file_wrapper`.
    pub(crate) fn new(py: Python<'_>, settings: &Settings) -> PyResult<Environ> {
        let c = PyDict::new(py);
        c.set_item("wsgi.version", (1, 0))?;
        c.set_item("wsgi.errors", Bound::new(py, Errors::new())?)?;
        c.set_item("wsgi.multithread", PyBool::new(py, settings.multithread))?;
        c.set_item("wsgi.multiprocess", PyBool::new(py, settings.multiprocess))?;
        c.set_item("wsgi.run_once", false)?;
        c.set_item("wsgi.input_terminated", true)?;
        c.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
        Ok(Environ {
            consts: c.unbind(),
            keys: Mutex::new(KeyCache::default()),
        })
    }

    /// Builds one request's environ dict; `input` is its `wsgi.input`.
    pub(crate) fn build<'py>(
        &self,
        py: Python<'py>,
        vars: &Vars,
        input: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let env = self.consts.bind(py).copy()?;
        // try_lock: another Python thread can only hold it if this one was switched out while
        // building (a garbage collection running Python code); waiting for it with the GIL held
        // would deadlock, so that rare build makes its keys afresh.
        let mut keys = self.keys.try_lock().ok();
        for (name, value) in vars.iter() {
            let value = latin1_str(py, value)?;
            match keys.as_deref_mut() {
                Some(cache) => {
                    if let Some(k) = cache.get(name) {
                        env.set_item(k.bind(py), value)?;
                        continue;
                    }
                    let k = latin1_str(py, name)?;
                    if cache.len() < KEY_CACHE_MAX {
                        let mut raw = k.clone().unbind().into_ptr();
                        // SAFETY: `raw` is a strong reference to an exact str we own (made just
                        // above); PyUnicode_InternInPlace may replace it with the interned
                        // string, consuming our reference and giving one to that string, and we
                        // take ownership of whatever it leaves in `raw`. The GIL is held.
                        let interned = unsafe {
                            ffi::PyUnicode_InternInPlace(&mut raw);
                            Bound::from_owned_ptr(py, raw)
                                .cast_into_unchecked::<PyString>()
                                .unbind()
                        };
                        env.set_item(interned.bind(py), value)?;
                        cache.insert(name.into(), interned);
                    } else {
                        env.set_item(k, value)?;
                    }
                }
                None => env.set_item(latin1_str(py, name)?, value)?,
            }
        }
        let scheme = if vars.https {
            intern!(py, "https")
        } else {
            intern!(py, "http")
        };
        env.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
        env.set_item(intern!(py, "wsgi.input"), input)?;
        Ok(env)
    }
}

/// Bytes as a Python str, one char per byte (Latin-1), decoded straight from the slice.
pub(crate) fn latin1_str<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: the pointer and length describe a live slice (a slice is never longer than
    // isize::MAX); Latin-1 decoding accepts every byte, so the call only fails on memory
    // exhaustion, in which case it returns NULL with an exception set, which
    // from_owned_ptr_or_err turns into Err. The GIL is held (`py`). On success the result is a
    // new reference to an exact str, so the unchecked cast is right.
    unsafe {
        let ptr = ffi::PyUnicode_DecodeLatin1(
            b.as_ptr().cast(),
            b.len() as ffi::Py_ssize_t,
            std::ptr::null(),
        );
        Bound::from_owned_ptr_or_err(py, ptr).map(|o| o.cast_into_unchecked())
    }
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

    fn fixed(pairs: &[(&str, &str)], prefix: Option<&str>) -> Vars {
        Vars::new(
            pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
            &settings(prefix),
        )
    }

    #[test]
    fn required_variables_are_filled_in() {
        let v = fixed(
            &[
                ("REQUEST_URI", "/x?y=1"),
                ("HTTP_HOST", "example.org:8080"),
                ("CONTENT_LENGTH", ""),
                ("HTTPS", "on"),
                ("REQUEST_METHOD", ""),
            ],
            None,
        );
        assert_eq!(v.get("SCRIPT_NAME"), Some(&b""[..]));
        assert_eq!(v.get("PATH_INFO"), Some(&b"/x"[..]));
        assert_eq!(v.get("REQUEST_METHOD"), Some(&b"GET"[..]));
        assert_eq!(v.get("QUERY_STRING"), Some(&b""[..]));
        assert_eq!(v.get("SERVER_NAME"), Some(&b"example.org"[..]));
        assert_eq!(v.get("SERVER_PORT"), Some(&b"443"[..]));
        assert_eq!(v.get("SERVER_PROTOCOL"), Some(&b"HTTP/1.0"[..]));
        assert_eq!(v.get("CONTENT_LENGTH"), None);
        assert!(v.https);
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
                ("HTTP_CONTENT_LENGTH", "12"),
                ("QUERY_STRING", "a=\u{e9}"),
            ],
            Some("/app"),
        );
        assert_eq!(v.get("SCRIPT_NAME"), Some(&b"/app"[..]));
        assert_eq!(v.get("PATH_INFO"), Some(&b"/polls/"[..]));
        assert_eq!(v.get("SERVER_PORT"), Some(&b"8080"[..]));
        assert_eq!(v.get("CONTENT_LENGTH"), Some(&b"12"[..]));
        assert_eq!(v.get("HTTP_CONTENT_LENGTH"), None);
        assert_eq!(v.get("QUERY_STRING"), Some("a=\u{e9}".as_bytes()));
        assert!(!v.https);
        assert_eq!(v.iter().filter(|(k, _)| *k == b"SCRIPT_NAME").count(), 1);
    }

    #[test]
    fn non_ascii_paths_stay_one_byte_per_char() {
        // "/caf\xc3\xa9" as the front end sent it (UTF-8 on the wire): PATH_INFO keeps the two
        // bytes, which the application sees as two Latin-1 chars.
        let v = Vars::new(
            [(&b"REQUEST_URI"[..], &b"/caf\xc3\xa9"[..])].into_iter(),
            &settings(None),
        );
        assert_eq!(v.get("PATH_INFO"), Some(&b"/caf\xc3\xa9"[..]));
    }

    #[test]
    fn latin1_strings_and_the_environ_dict() {
        Python::initialize();
        Python::attach(|py| {
            let s = latin1_str(py, b"caf\xe9 \xff").unwrap();
            assert_eq!(s.to_str().unwrap(), "caf\u{e9} \u{ff}");
            assert_eq!(latin1_str(py, b"").unwrap().to_str().unwrap(), "");
            let env = Environ::new(py, &settings(None)).unwrap();
            let vars = fixed(&[("HTTP_X_A", "\u{e9}"), ("REQUEST_URI", "/p")], None);
            for _ in 0..2 {
                let d = env.build(py, &vars, py.None().into_bound(py)).unwrap();
                let get = |k: &str| d.get_item(k).unwrap().unwrap().to_string();
                // The value's two UTF-8 bytes are two chars.
                assert_eq!(get("HTTP_X_A"), "\u{c3}\u{a9}");
                assert_eq!(get("PATH_INFO"), "/p");
                assert_eq!(get("wsgi.url_scheme"), "http");
                assert_eq!(get("wsgi.version"), "(1, 0)");
                assert_eq!(get("wsgi.multithread"), "True");
            }
            let keys = env.keys.lock().unwrap();
            let k = keys.get(&b"HTTP_X_A"[..]).unwrap().bind(py).clone();
            assert!(k.is(PyString::intern(py, "HTTP_X_A")));
        });
    }
}
