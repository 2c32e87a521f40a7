//! Server-bound packets between requests: Forward Request (prefix 2), CPING, SHUTDOWN.

use std::fmt;

use super::reader::{put_string, put_u16, Reader};
use super::{
    decode_frame, encode_packet, prefix, EncodeError, Error, PacketSize, Status, SERVER_MAGIC,
};

/// Method names by code (code = index + 1), from the AJP13 spec.
const METHODS: [&[u8]; 27] = [
    b"OPTIONS",
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"ACL",
    b"REPORT",
    b"VERSION-CONTROL",
    b"CHECKIN",
    b"CHECKOUT",
    b"UNCHECKOUT",
    b"SEARCH",
    b"MKWORKSPACE",
    b"UPDATE",
    b"LABEL",
    b"MERGE",
    b"BASELINE-CONTROL",
    b"MKACTIVITY",
];

/// Method code meaning "the method name is in the stored-method attribute (0x0D)".
const STORED_METHOD: u8 = 0xFF;

/// Coded request header names (code = 0xA000 + index + 1), as Tomcat names them.
const REQUEST_HEADERS: [&[u8]; 14] = [
    b"accept",
    b"accept-charset",
    b"accept-encoding",
    b"accept-language",
    b"authorization",
    b"connection",
    b"content-type",
    b"content-length",
    b"cookie",
    b"cookie2",
    b"host",
    b"pragma",
    b"referer",
    b"user-agent",
];

const ATTR_TERMINATOR: u8 = 0xFF;

/// The method name of an AJP method code (1..=27), e.g. 2 -> `GET`.
pub fn method_name(code: u8) -> Option<&'static [u8]> {
    METHODS.get(usize::from(code).checked_sub(1)?).copied()
}

/// The AJP code of a method name (exact, case-sensitive), e.g. `POST` -> 4.
pub fn method_code(name: &[u8]) -> Option<u8> {
    let i = METHODS.iter().position(|m| *m == name)?;
    u8::try_from(i + 1).ok()
}

/// The name of a coded request header (0xA001..=0xA00E), in lower case, e.g. 0xA00B -> `host`.
pub fn request_header_name(code: u16) -> Option<&'static [u8]> {
    let i = code.checked_sub(0xA001)?;
    REQUEST_HEADERS.get(usize::from(i)).copied()
}

/// The code of a request header name (ASCII case-insensitive), e.g. `Host` -> 0xA00B.
pub fn request_header_code(name: &[u8]) -> Option<u16> {
    let i = REQUEST_HEADERS
        .iter()
        .position(|h| h.eq_ignore_ascii_case(name))?;
    u16::try_from(i).ok().map(|i| 0xA001 + i)
}

/// A Forward Request attribute. Strings are `None` when sent as the null string.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute<'a> {
    /// 0x01 context (unused by Apache).
    Context(Option<&'a [u8]>),
    /// 0x02 servlet_path (unused).
    ServletPath(Option<&'a [u8]>),
    /// 0x03 remote_user, as authenticated by the web server.
    RemoteUser(Option<&'a [u8]>),
    /// 0x04 auth_type.
    AuthType(Option<&'a [u8]>),
    /// 0x05 query_string (without `?`).
    QueryString(Option<&'a [u8]>),
    /// 0x06 jvm_route (load-balancer route).
    JvmRoute(Option<&'a [u8]>),
    /// 0x07 ssl_cert (client certificate, PEM).
    SslCert(Option<&'a [u8]>),
    /// 0x08 ssl_cipher.
    SslCipher(Option<&'a [u8]>),
    /// 0x09 ssl_session.
    SslSession(Option<&'a [u8]>),
    /// 0x0A req_attribute: a named request attribute (`AJP_REMOTE_PORT`, ...). Untrusted.
    ReqAttribute {
        /// Attribute name.
        name: Option<&'a [u8]>,
        /// Attribute value.
        value: Option<&'a [u8]>,
    },
    /// 0x0B ssl_key_size (an integer, not a string).
    SslKeySize(u16),
    /// 0x0C secret: the shared secret (Apache `secret=`, lighttpd `AJP13_SECRET`).
    Secret(Option<&'a [u8]>),
    /// 0x0D stored_method: the method name when the method code is 0xFF.
    StoredMethod(Option<&'a [u8]>),
}

impl<'a> Attribute<'a> {
    /// The attribute's code on the wire.
    pub fn code(&self) -> u8 {
        match self {
            Self::Context(_) => 0x01,
            Self::ServletPath(_) => 0x02,
            Self::RemoteUser(_) => 0x03,
            Self::AuthType(_) => 0x04,
            Self::QueryString(_) => 0x05,
            Self::JvmRoute(_) => 0x06,
            Self::SslCert(_) => 0x07,
            Self::SslCipher(_) => 0x08,
            Self::SslSession(_) => 0x09,
            Self::ReqAttribute { .. } => 0x0A,
            Self::SslKeySize(_) => 0x0B,
            Self::Secret(_) => 0x0C,
            Self::StoredMethod(_) => 0x0D,
        }
    }

    fn read(code: u8, r: &mut Reader<'a>) -> Result<Self, Error> {
        const F: &str = "attribute";
        Ok(match code {
            0x01 => Self::Context(r.string(F)?),
            0x02 => Self::ServletPath(r.string(F)?),
            0x03 => Self::RemoteUser(r.string(F)?),
            0x04 => Self::AuthType(r.string(F)?),
            0x05 => Self::QueryString(r.string(F)?),
            0x06 => Self::JvmRoute(r.string(F)?),
            0x07 => Self::SslCert(r.string(F)?),
            0x08 => Self::SslCipher(r.string(F)?),
            0x09 => Self::SslSession(r.string(F)?),
            0x0A => Self::ReqAttribute {
                name: r.string("req_attribute name")?,
                value: r.string("req_attribute value")?,
            },
            0x0B => Self::SslKeySize(r.u16("ssl_key_size")?),
            0x0C => Self::Secret(r.string(F)?),
            0x0D => Self::StoredMethod(r.string(F)?),
            other => return Err(Error::UnknownAttribute(other)),
        })
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        const F: &str = "attribute";
        out.push(self.code());
        match *self {
            Self::Context(s)
            | Self::ServletPath(s)
            | Self::RemoteUser(s)
            | Self::AuthType(s)
            | Self::QueryString(s)
            | Self::JvmRoute(s)
            | Self::SslCert(s)
            | Self::SslCipher(s)
            | Self::SslSession(s)
            | Self::Secret(s)
            | Self::StoredMethod(s) => put_string(out, s, F),
            Self::ReqAttribute { name, value } => {
                put_string(out, name, "req_attribute name")?;
                put_string(out, value, "req_attribute value")
            }
            Self::SslKeySize(n) => {
                put_u16(out, n);
                Ok(())
            }
        }
    }
}

/// A packet the web server sends between requests.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerPacket<'a> {
    /// A request (prefix 2).
    ForwardRequest(ForwardRequest<'a>),
    /// CPING (prefix 10): answer with [`super::encode_cpong`].
    Cping,
    /// SHUTDOWN (prefix 7): recognised so that it can be ignored; never honour it.
    Shutdown,
    /// An empty packet (`12 34 00 00`): an end-of-body marker outside a body, as lighttpd sends
    /// right after the Forward Request of a GET. Ignore it.
    EmptyBody,
}

/// Decode the packet at the start of `buf` when no request body is expected: a Forward
/// Request, CPING, SHUTDOWN or a stray empty body packet. Returns the packet and the bytes it
/// took. Any other type is [`Error::UnknownPacketType`]; after any error, close the connection.
pub fn decode_server_packet(
    buf: &[u8],
    size: PacketSize,
) -> Result<Status<(ServerPacket<'_>, usize)>, Error> {
    let (payload, consumed) = match decode_frame(buf, SERVER_MAGIC, size)? {
        Status::Complete(frame) => frame,
        Status::Partial => return Ok(Status::Partial),
    };
    let Some((&kind, rest)) = payload.split_first() else {
        return Ok(Status::Complete((ServerPacket::EmptyBody, consumed)));
    };
    let packet = match kind {
        prefix::FORWARD_REQUEST => ServerPacket::ForwardRequest(ForwardRequest::decode(rest)?),
        prefix::CPING | prefix::SHUTDOWN if !rest.is_empty() => {
            return Err(Error::TrailingBytes { count: rest.len() })
        }
        prefix::CPING => ServerPacket::Cping,
        prefix::SHUTDOWN => ServerPacket::Shutdown,
        other => return Err(Error::UnknownPacketType(other)),
    };
    Ok(Status::Complete((packet, consumed)))
}

/// A decoded Forward Request, borrowing the packet.
///
/// Headers and attributes are validated when decoded and walked in place by
/// [`Self::headers`] and [`Self::attributes`]; nothing is allocated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ForwardRequest<'a> {
    method: &'a [u8],
    method_code: u8,
    protocol: Option<&'a [u8]>,
    req_uri: Option<&'a [u8]>,
    remote_addr: Option<&'a [u8]>,
    remote_host: Option<&'a [u8]>,
    server_name: Option<&'a [u8]>,
    server_port: u16,
    is_ssl: bool,
    num_headers: u16,
    headers: &'a [u8],
    attributes: &'a [u8],
    content_length: Option<u64>,
    content_type: Option<&'a [u8]>,
    transfer_encoding: bool,
    query_string: Option<&'a [u8]>,
    secret: Option<&'a [u8]>,
}

impl<'a> ForwardRequest<'a> {
    /// Decode a Forward Request from its payload after the prefix byte.
    fn decode(payload: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(payload);
        let method_code = r.u8("method")?;
        if method_code != STORED_METHOD && method_name(method_code).is_none() {
            return Err(Error::UnknownMethod(method_code));
        }
        let protocol = r.string("protocol")?;
        let req_uri = r.string("req_uri")?;
        let remote_addr = r.string("remote_addr")?;
        let remote_host = r.string("remote_host")?;
        let server_name = r.string("server_name")?;
        let server_port = r.u16("server_port")?;
        let is_ssl = r.u8("is_ssl")? != 0;
        let num_headers = r.u16("num_headers")?;

        let headers_start = r.pos();
        let mut content_length = None;
        let mut content_type = None;
        let mut transfer_encoding = false;
        for _ in 0..num_headers {
            let (name, value) = read_header(&mut r)?;
            let value = value.unwrap_or_default();
            if name.eq_ignore_ascii_case(b"content-length") {
                if content_length.is_some() {
                    return Err(Error::DuplicateContentLength);
                }
                content_length = Some(parse_decimal(value).ok_or(Error::InvalidContentLength)?);
            } else if name.eq_ignore_ascii_case(b"content-type") {
                content_type.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                transfer_encoding = true;
            }
        }
        let headers = r.slice(headers_start, r.pos());

        let attributes_start = r.pos();
        let mut seen: u16 = 0;
        let mut query_string = None;
        let mut secret = None;
        let mut stored_method = None;
        loop {
            let code = r.u8("attributes (no 0xFF terminator)")?;
            if code == ATTR_TERMINATOR {
                break;
            }
            let attribute = Attribute::read(code, &mut r)?;
            if code != 0x0A {
                let bit = 1u16 << code;
                if seen & bit != 0 {
                    return Err(Error::DuplicateAttribute(code));
                }
                seen |= bit;
            }
            match attribute {
                Attribute::QueryString(q) => query_string = q,
                Attribute::Secret(s) => secret = Some(s.unwrap_or_default()),
                Attribute::StoredMethod(m) => stored_method = m,
                _ => {}
            }
        }
        let attributes = r.slice(attributes_start, r.pos().saturating_sub(1));
        if r.remaining() > 0 {
            return Err(Error::TrailingBytes {
                count: r.remaining(),
            });
        }
        let method = match method_name(method_code) {
            Some(name) => name,
            None => stored_method
                .filter(|m| !m.is_empty())
                .ok_or(Error::MissingStoredMethod)?,
        };
        Ok(Self {
            method,
            method_code,
            protocol,
            req_uri,
            remote_addr,
            remote_host,
            server_name,
            server_port,
            is_ssl,
            num_headers,
            headers,
            attributes,
            content_length,
            content_type,
            transfer_encoding,
            query_string,
            secret,
        })
    }

    /// The method name: from the code, or from the stored-method attribute for code 0xFF.
    pub fn method(&self) -> &'a [u8] {
        self.method
    }

    /// The method code as sent (1..=27, or 0xFF).
    pub fn method_code(&self) -> u8 {
        self.method_code
    }

    /// The protocol, e.g. `HTTP/1.1`.
    pub fn protocol(&self) -> Option<&'a [u8]> {
        self.protocol
    }

    /// The request path without the query (Apache: still %-encoded; lighttpd: decoded).
    pub fn req_uri(&self) -> Option<&'a [u8]> {
        self.req_uri
    }

    /// The client's address.
    pub fn remote_addr(&self) -> Option<&'a [u8]> {
        self.remote_addr
    }

    /// The client's host name (usually null: Apache without HostnameLookups, lighttpd always).
    pub fn remote_host(&self) -> Option<&'a [u8]> {
        self.remote_host
    }

    /// The server name (the Host the client asked for).
    pub fn server_name(&self) -> Option<&'a [u8]> {
        self.server_name
    }

    /// The port the web server received the request on.
    pub fn server_port(&self) -> u16 {
        self.server_port
    }

    /// Whether the client used TLS.
    pub fn is_ssl(&self) -> bool {
        self.is_ssl
    }

    /// How many request headers were sent.
    pub fn num_headers(&self) -> u16 {
        self.num_headers
    }

    /// The request headers in wire order, as (name, value); coded names come back in lower case
    /// (see [`request_header_name`]) and a null value as empty.
    pub fn headers(&self) -> RequestHeaders<'a> {
        RequestHeaders {
            reader: Reader::new(self.headers),
            left: self.num_headers,
        }
    }

    /// The attributes in wire order (terminator excluded).
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            reader: Reader::new(self.attributes),
        }
    }

    /// The Content-Length request header, if sent (checked: digits only, at most once).
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The first Content-Type request header, if sent.
    pub fn content_type(&self) -> Option<&'a [u8]> {
        self.content_type
    }

    /// Whether a Transfer-Encoding request header was sent (a chunked body of unknown length:
    /// read it with GET_BODY_CHUNK until an empty packet).
    pub fn has_transfer_encoding(&self) -> bool {
        self.transfer_encoding
    }

    /// Whether the web server sends the first body packet unasked, right after this request:
    /// exactly when Content-Length is present and non-zero (Tomcat's rule).
    pub fn expects_first_body_packet(&self) -> bool {
        self.content_length.is_some_and(|n| n > 0)
    }

    /// The query_string attribute (without `?`), if sent.
    pub fn query_string(&self) -> Option<&'a [u8]> {
        self.query_string
    }

    /// The secret attribute, if sent (a null secret reads as empty).
    pub fn secret(&self) -> Option<&'a [u8]> {
        self.secret
    }

    /// Whether the request carries the secret `expected`, compared in constant time over the
    /// bytes (the lengths may leak). A missing secret never matches, and neither does an empty
    /// `expected`.
    pub fn secret_matches(&self, expected: &[u8]) -> bool {
        let Some(secret) = self.secret else {
            return false;
        };
        if expected.is_empty() {
            return false;
        }
        if secret.len() != expected.len() {
            return false;
        }
        let diff = secret
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }

    /// The value of a req_attribute (0x0A) named `name`, if sent.
    pub fn req_attribute(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.attributes().find_map(|a| match a {
            Attribute::ReqAttribute {
                name: Some(n),
                value,
            } if n == name => Some(value.unwrap_or_default()),
            _ => None,
        })
    }
}

impl fmt::Debug for ForwardRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        f.debug_struct("ForwardRequest")
            .field("method", &String::from_utf8_lossy(self.method))
            .field("req_uri", &s(self.req_uri))
            .field("num_headers", &self.num_headers)
            .field("content_length", &self.content_length)
            .field("secret", &self.secret.map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Read one request header: coded or string name, then the value.
fn read_header<'a>(r: &mut Reader<'a>) -> Result<(&'a [u8], Option<&'a [u8]>), Error> {
    let first = r.u16("header name")?;
    let name = if first >> 8 == 0xA0 {
        request_header_name(first).ok_or(Error::UnknownHeaderCode(first))?
    } else {
        match r.string_body(first, "header name")? {
            Some(name) if !name.is_empty() => name,
            _ => return Err(Error::InvalidHeaderName),
        }
    };
    Ok((name, r.string("header value")?))
}

fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Iterator over a [`ForwardRequest`]'s headers: (name, value).
#[derive(Debug, Clone)]
pub struct RequestHeaders<'a> {
    reader: Reader<'a>,
    left: u16,
}

impl<'a> Iterator for RequestHeaders<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        // Validated when the request was decoded: this cannot fail.
        let (name, value) = read_header(&mut self.reader).ok()?;
        Some((name, value.unwrap_or_default()))
    }
}

/// Iterator over a [`ForwardRequest`]'s attributes.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    reader: Reader<'a>,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Attribute<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let code = self.reader.u8("attribute").ok()?;
        // Validated when the request was decoded: this cannot fail.
        Attribute::read(code, &mut self.reader).ok()
    }
}

// ===== client side =====

/// What [`encode_forward_request`] sends: the client-side view of a Forward Request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// Method name; one of the 27 AJP methods is sent as its code, any other as code 0xFF
    /// plus a stored-method attribute.
    pub method: &'a [u8],
    /// Protocol, e.g. `HTTP/1.1`.
    pub protocol: Option<&'a [u8]>,
    /// Request path, without the query.
    pub req_uri: Option<&'a [u8]>,
    /// Client address.
    pub remote_addr: Option<&'a [u8]>,
    /// Client host name (Apache sends null).
    pub remote_host: Option<&'a [u8]>,
    /// Server name.
    pub server_name: Option<&'a [u8]>,
    /// Server port.
    pub server_port: u16,
    /// Whether the client used TLS.
    pub is_ssl: bool,
    /// Request headers; the 14 well-known names (any case) are sent coded.
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// Attributes, in order, before the terminator.
    pub attributes: &'a [Attribute<'a>],
}

/// Append a Forward Request packet for `head` to `out`. Fails (leaving `out` as it was) if the
/// packet exceeds `size`, a string is too long, the method or a header name is empty.
pub fn encode_forward_request(
    head: &RequestHead<'_>,
    size: PacketSize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if head.method.is_empty() {
        return Err(EncodeError::Empty { field: "method" });
    }
    let num_headers = u16::try_from(head.headers.len()).map_err(|_| EncodeError::TooManyHeaders)?;
    encode_packet(out, SERVER_MAGIC, size, |out| {
        out.push(prefix::FORWARD_REQUEST);
        let code = method_code(head.method);
        out.push(code.unwrap_or(STORED_METHOD));
        put_string(out, head.protocol, "protocol")?;
        put_string(out, head.req_uri, "req_uri")?;
        put_string(out, head.remote_addr, "remote_addr")?;
        put_string(out, head.remote_host, "remote_host")?;
        put_string(out, head.server_name, "server_name")?;
        put_u16(out, head.server_port);
        out.push(u8::from(head.is_ssl));
        put_u16(out, num_headers);
        for &(name, value) in head.headers {
            match request_header_code(name) {
                Some(code) => put_u16(out, code),
                None if name.is_empty() => {
                    return Err(EncodeError::Empty {
                        field: "header name",
                    })
                }
                None if name.len() >= 0xA000 => {
                    return Err(EncodeError::StringTooLong {
                        field: "header name",
                    })
                }
                None => put_string(out, Some(name), "header name")?,
            }
            put_string(out, Some(value), "header value")?;
        }
        let has_stored = head
            .attributes
            .iter()
            .any(|a| matches!(a, Attribute::StoredMethod(_)));
        for attribute in head.attributes {
            attribute.write(out)?;
        }
        if code.is_none() && !has_stored {
            Attribute::StoredMethod(Some(head.method)).write(out)?;
        }
        out.push(ATTR_TERMINATOR);
        Ok(())
    })
}

/// Append a CPING packet (`12 34 00 01 0A`).
pub fn encode_cping(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x12, 0x34, 0x00, 0x01, prefix::CPING]);
}

/// Append a SHUTDOWN packet (`12 34 00 01 07`), for negative tests.
pub fn encode_shutdown(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x12, 0x34, 0x00, 0x01, prefix::SHUTDOWN]);
}

#[cfg(test)]
mod tests;
