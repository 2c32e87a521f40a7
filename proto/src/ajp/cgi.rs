//! A Forward Request as the CGI request variables a FastCGI request would carry.

use super::{Attribute, ForwardRequest};

/// Choices for [`ForwardRequest::for_each_cgi_var`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgiOptions {
    /// Pass the remote_user and auth_type attributes on as REMOTE_USER and AUTH_TYPE. Off by
    /// default: only a web server that authenticates (and a connection protected by the secret)
    /// makes them meaningful (Tomcat's `tomcatAuthentication=false`).
    pub trust_remote_user: bool,
}

/// req_attribute names passed on, with the CGI name they also fill. Apache always sends the
/// first two (and the third over TLS); every other req_attribute is ignored.
const REQ_ATTRIBUTES: [(&[u8], &[u8]); 3] = [
    (b"AJP_REMOTE_PORT", b"REMOTE_PORT"),
    (b"AJP_LOCAL_ADDR", b"SERVER_ADDR"),
    (b"AJP_SSL_PROTOCOL", b"SSL_PROTOCOL"),
];

impl<'a> ForwardRequest<'a> {
    /// Call `visit(name, value)` for every CGI variable of this request, as FastCGI would
    /// carry them, so one application serves all three protocols:
    ///
    /// - REQUEST_METHOD; REQUEST_URI (req_uri, plus `?` and the query when one was sent);
    ///   QUERY_STRING (empty when none); SERVER_PROTOCOL; SERVER_NAME; SERVER_PORT;
    ///   REMOTE_ADDR; REMOTE_HOST (when sent non-empty); REQUEST_SCHEME; HTTPS=`on` over TLS;
    /// - CONTENT_TYPE and CONTENT_LENGTH when those headers were sent;
    /// - SCRIPT_NAME = "" and PATH_INFO = req_uri (the application is mounted at the root);
    /// - HTTP_* for every other header (upper case, `-` -> `_`), except: names with a byte
    ///   other than ASCII letters, digits and `-` (they could collide with another header
    ///   after mapping, as Apache drops them), and `Proxy` (httpoxy);
    /// - from req_attribute only `AJP_REMOTE_PORT` (also as REMOTE_PORT), `AJP_LOCAL_ADDR`
    ///   (also SERVER_ADDR) and `AJP_SSL_PROTOCOL` (also SSL_PROTOCOL); SSL_CIPHER,
    ///   SSL_SESSION_ID, SSL_CLIENT_CERT and SSL_CIPHER_USEKEYSIZE from the TLS attributes;
    ///   REMOTE_USER and AUTH_TYPE only with [`CgiOptions::trust_remote_user`]. No other
    ///   attribute (secret, context, servlet_path, jvm_route, unknown req_attributes) is
    ///   passed on.
    ///
    /// Null strings read as empty. Repeated headers give repeated variables, in order.
    /// `scratch` is working space for the names and values that have to be built; a name or
    /// value passed to `visit` lives only for that call.
    pub fn for_each_cgi_var<F>(&self, options: &CgiOptions, scratch: &mut Vec<u8>, mut visit: F)
    where
        F: FnMut(&[u8], &[u8]),
    {
        let uri = self.req_uri().unwrap_or_default();
        let query = self.query_string();
        visit(b"REQUEST_METHOD", self.method());
        match query {
            Some(q) if !q.is_empty() => {
                scratch.clear();
                scratch.extend_from_slice(uri);
                scratch.push(b'?');
                scratch.extend_from_slice(q);
                visit(b"REQUEST_URI", scratch);
            }
            _ => visit(b"REQUEST_URI", uri),
        }
        visit(b"QUERY_STRING", query.unwrap_or_default());
        visit(b"SERVER_PROTOCOL", self.protocol().unwrap_or_default());
        visit(b"SERVER_NAME", self.server_name().unwrap_or_default());
        let mut digits = [0u8; 5];
        visit(b"SERVER_PORT", format_port(self.server_port(), &mut digits));
        visit(b"REMOTE_ADDR", self.remote_addr().unwrap_or_default());
        if let Some(host) = self.remote_host().filter(|h| !h.is_empty()) {
            visit(b"REMOTE_HOST", host);
        }
        if self.is_ssl() {
            visit(b"REQUEST_SCHEME", b"https");
            visit(b"HTTPS", b"on");
        } else {
            visit(b"REQUEST_SCHEME", b"http");
        }
        if let Some(content_type) = self.content_type() {
            visit(b"CONTENT_TYPE", content_type);
        }
        if let Some(length) = self.content_length() {
            let mut digits = [0u8; 20];
            visit(b"CONTENT_LENGTH", crate::decimal(length, &mut digits));
        }
        visit(b"SCRIPT_NAME", b"");
        visit(b"PATH_INFO", uri);

        for (name, value) in self.headers() {
            let skip = name.eq_ignore_ascii_case(b"content-type")
                || name.eq_ignore_ascii_case(b"content-length")
                || name.eq_ignore_ascii_case(b"proxy")
                || !name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-');
            if skip {
                continue;
            }
            scratch.clear();
            scratch.extend_from_slice(b"HTTP_");
            scratch.extend(name.iter().map(|&b| match b {
                b'-' => b'_',
                b => b.to_ascii_uppercase(),
            }));
            visit(scratch, value);
        }

        for attribute in self.attributes() {
            let (name, value): (&[u8], &[u8]) = match attribute {
                Attribute::ReqAttribute {
                    name: Some(name),
                    value,
                } => {
                    let Some(&(ajp, cgi)) = REQ_ATTRIBUTES.iter().find(|(n, _)| *n == name) else {
                        continue;
                    };
                    let value = value.unwrap_or_default();
                    visit(ajp, value);
                    (cgi, value)
                }
                Attribute::SslCipher(v) => (b"SSL_CIPHER", v.unwrap_or_default()),
                Attribute::SslSession(v) => (b"SSL_SESSION_ID", v.unwrap_or_default()),
                Attribute::SslCert(v) => (b"SSL_CLIENT_CERT", v.unwrap_or_default()),
                Attribute::SslKeySize(n) => {
                    let mut digits = [0u8; 5];
                    visit(b"SSL_CIPHER_USEKEYSIZE", format_port(n, &mut digits));
                    continue;
                }
                Attribute::RemoteUser(v) if options.trust_remote_user => {
                    (b"REMOTE_USER", v.unwrap_or_default())
                }
                Attribute::AuthType(v) if options.trust_remote_user => {
                    (b"AUTH_TYPE", v.unwrap_or_default())
                }
                _ => continue,
            };
            visit(name, value);
        }
    }
}

fn format_port(n: u16, buf: &mut [u8; 5]) -> &[u8] {
    let mut wide = [0u8; 20];
    let digits = crate::decimal(u64::from(n), &mut wide);
    let len = digits.len();
    buf[..len].copy_from_slice(digits);
    &buf[..len]
}
