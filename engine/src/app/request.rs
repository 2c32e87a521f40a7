//! What a handler reads: request variables and the body stream.

use std::borrow::Cow;
use std::rc::Rc;

use super::exchange::Exchange;
use crate::proto::fcgi::Params;

/// Why the body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The peer closed the connection or aborted the request.
    #[error("the request was aborted by the peer")]
    Aborted,
    /// The body is larger than the caller's limit.
    #[error("request body exceeds {limit} bytes")]
    TooLarge {
        /// The limit that was passed in.
        limit: usize,
    },
}

/// One request: every request variable the front end sent (CGI/1.1 style: `REQUEST_METHOD`,
/// `SCRIPT_NAME`, `HTTP_HOST`...) and the body, streamed as it arrives.
#[derive(Debug)]
pub struct Request {
    params: Params,
    ex: Rc<Exchange>,
}

impl Request {
    pub(crate) fn new(params: Params, ex: Rc<Exchange>) -> Self {
        Request { params, ex }
    }

    /// The raw value of a request variable.
    pub fn var_bytes(&self, name: &[u8]) -> Option<&[u8]> {
        self.params.get(name)
    }

    /// A request variable, if present and valid UTF-8.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.var_bytes(name.as_bytes())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every request variable, in the order received.
    pub fn vars(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.params.iter()
    }

    /// `REQUEST_METHOD`, or "GET" when absent.
    pub fn method(&self) -> &str {
        self.var("REQUEST_METHOD").unwrap_or("GET")
    }

    /// `QUERY_STRING`, or "" when absent.
    pub fn query(&self) -> &str {
        self.var("QUERY_STRING").unwrap_or("")
    }

    /// The request path: `SCRIPT_NAME` + `PATH_INFO`, or the path of `REQUEST_URI` when both
    /// are empty. Borrowed unless both parts are present.
    pub fn path(&self) -> Cow<'_, str> {
        let script = self.var("SCRIPT_NAME").unwrap_or("");
        let info = self.var("PATH_INFO").unwrap_or("");
        match (script.is_empty(), info.is_empty()) {
            (false, false) => Cow::Owned(format!("{script}{info}")),
            (false, true) => Cow::Borrowed(script),
            (true, false) => Cow::Borrowed(info),
            (true, true) => {
                let uri = self.var("REQUEST_URI").unwrap_or("");
                Cow::Borrowed(uri.split_once('?').map_or(uri, |(p, _)| p))
            }
        }
    }

    /// An HTTP request header by name, case-insensitive (`"content-type"`), from its
    /// `HTTP_*` variable; `Content-Type` and `Content-Length` come from `CONTENT_TYPE` and
    /// `CONTENT_LENGTH` as CGI defines.
    pub fn header(&self, name: &str) -> Option<&str> {
        let n = name.as_bytes();
        if n.eq_ignore_ascii_case(b"content-type") {
            return self.var("CONTENT_TYPE").filter(|v| !v.is_empty());
        }
        if n.eq_ignore_ascii_case(b"content-length") {
            return self.var("CONTENT_LENGTH").filter(|v| !v.is_empty());
        }
        self.params
            .iter()
            .filter(|(k, _)| header_var_matches(k, n))
            .last()
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Reads body bytes into `buf`; `Ok(0)` at the end of the body. The body ends where the
    /// stream ends, whatever `CONTENT_LENGTH` said (chunked uploads have none).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, BodyError> {
        self.ex.read_body(buf).await.map_err(|_| BodyError::Aborted)
    }

    /// Reads the whole body into memory, refusing more than `limit` bytes.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, BodyError> {
        // Read straight into the vector: a stack buffer here would be part of every handler's
        // future, which the native loop moves into its slot once per request.
        const CHUNK: usize = 16 * 1024;
        let mut body = Vec::new();
        loop {
            let len = body.len();
            body.resize(len + CHUNK, 0);
            let n = self.read(&mut body[len..]).await?;
            body.truncate(len + n);
            if n == 0 {
                return Ok(body);
            }
            if body.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.ex.return_params(std::mem::take(&mut self.params));
    }
}

/// True when the variable `var` (e.g. `HTTP_USER_AGENT`) carries the header `name`
/// (e.g. `user-agent`).
fn header_var_matches(var: &[u8], name: &[u8]) -> bool {
    let Some(rest) = var.strip_prefix(b"HTTP_") else {
        return false;
    };
    rest.len() == name.len()
        && rest.iter().zip(name).all(|(&v, &c)| {
            let c = if c == b'-' {
                b'_'
            } else {
                c.to_ascii_uppercase()
            };
            v == c
        })
}

#[cfg(test)]
mod tests {
    use super::header_var_matches;

    #[test]
    fn header_names_map_to_cgi_variables() {
        assert!(header_var_matches(b"HTTP_USER_AGENT", b"user-agent"));
        assert!(header_var_matches(b"HTTP_X_A", b"X-a"));
        assert!(!header_var_matches(b"HTTP_HOSTS", b"host"));
        assert!(!header_var_matches(b"CONTENT_TYPE", b"content-type"));
    }
}
