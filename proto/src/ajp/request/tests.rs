use proptest::prelude::*;

use super::*;
use crate::ajp::{decode_body_packet, BodyFraming, BodyPacket, CgiOptions};

const S: PacketSize = PacketSize::DEFAULT;

fn dec(buf: &[u8]) -> Result<Status<(ServerPacket<'_>, usize)>, Error> {
    decode_server_packet(buf, S)
}

fn forward(buf: &[u8]) -> (ForwardRequest<'_>, usize) {
    match dec(buf) {
        Ok(Status::Complete((ServerPacket::ForwardRequest(r), n))) => (r, n),
        other => panic!("expected a Forward Request, got {other:?}"),
    }
}

/// Prefix a server-bound payload with `12 34 len`.
fn packet(payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x12, 0x34];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Apache mod_proxy_ajp (`ProxyPass /app ajp://127.0.0.1:8009/app secret=s3cret`),
/// `curl http://127.0.0.1:8080/app/hello?x=1`: secret first, query_string, then the
/// AJP_REMOTE_PORT and AJP_LOCAL_ADDR req_attributes it always sends; remote_host null.
const APACHE_GET: &[u8] = b"\x12\x34\x00\xcd\
\x02\x02\
\x00\x08HTTP/1.1\x00\
\x00\x0a/app/hello\x00\
\x00\x09127.0.0.1\x00\
\xff\xff\
\x00\x09localhost\x00\
\x1f\x90\
\x00\
\x00\x04\
\xa0\x0b\x00\x0e127.0.0.1:8080\x00\
\xa0\x0e\x00\x0bcurl/7.88.1\x00\
\xa0\x01\x00\x03*/*\x00\
\x00\x0fX-Forwarded-For\x00\x00\x09127.0.0.1\x00\
\x0c\x00\x06s3cret\x00\
\x05\x00\x03x=1\x00\
\x0a\x00\x0fAJP_REMOTE_PORT\x00\x00\x0545678\x00\
\x0a\x00\x0eAJP_LOCAL_ADDR\x00\x00\x09127.0.0.1\x00\
\xff";

/// Apache: `curl -d hello` (POST, Content-Length 5), then the unasked first body packet with
/// its inner length.
const APACHE_POST: &[u8] = b"\x12\x34\x00\x8a\
\x02\x04\
\x00\x08HTTP/1.1\x00\
\x00\x05/echo\x00\
\x00\x09127.0.0.1\x00\
\xff\xff\
\x00\x09localhost\x00\
\x1f\x90\
\x00\
\x00\x03\
\xa0\x0b\x00\x09localhost\x00\
\xa0\x07\x00\x21application/x-www-form-urlencoded\x00\
\xa0\x08\x00\x015\x00\
\x0a\x00\x0fAJP_REMOTE_PORT\x00\x00\x0545679\x00\
\xff\
\x12\x34\x00\x07\x00\x05hello";

/// Apache, a method without an AJP code (`curl -X PATCH`): code 0xFF, name in attribute 0x0D.
const APACHE_PATCH: &[u8] = b"\x12\x34\x00\x41\
\x02\xff\
\x00\x08HTTP/1.1\x00\
\x00\x02/p\x00\
\x00\x09127.0.0.1\x00\
\xff\xff\
\x00\x09localhost\x00\
\x1f\x90\
\x00\
\x00\x01\
\xa0\x08\x00\x010\x00\
\x0d\x00\x05PATCH\x00\
\xff";

/// lighttpd 1.4.69 mod_ajp13, `curl -d abc` over HTTPS with `AJP13_SECRET`: every empty string
/// is null, remote_host is null, TLS attributes, body packet without an inner length.
const LIGHTTPD_POST: &[u8] = b"\x12\x34\x00\x7b\
\x02\x04\
\x00\x08HTTP/1.1\x00\
\x00\x05/echo\x00\
\x00\x09127.0.0.1\x00\
\xff\xff\
\x00\x09127.0.0.1\x00\
\x01\xbb\
\x01\
\x00\x03\
\xa0\x0b\x00\x09127.0.0.1\x00\
\xa0\x08\x00\x013\x00\
\x00\x06X-Null\x00\xff\xff\
\x08\x00\x16TLS_AES_256_GCM_SHA384\x00\
\x0b\x01\x00\
\x0c\x00\x06s3cret\x00\
\xff\
\x12\x34\x00\x03abc";

/// lighttpd, a GET: Content-Length "0" added, no attributes, then the empty packet it sends
/// unasked.
const LIGHTTPD_GET: &[u8] = b"\x12\x34\x00\x3b\
\x02\x02\
\x00\x08HTTP/1.1\x00\
\x00\x01/\x00\
\x00\x09127.0.0.1\x00\
\xff\xff\
\xff\xff\
\x1f\x90\
\x00\
\x00\x02\
\xa0\x0b\x00\x09127.0.0.1\x00\
\xa0\x08\x00\x010\x00\
\xff\
\x12\x34\x00\x00";

#[test]
fn apache_get_with_secret() {
    let (r, n) = forward(APACHE_GET);
    assert_eq!(n, APACHE_GET.len());
    assert_eq!(r.method(), b"GET");
    assert_eq!(r.method_code(), 2);
    assert_eq!(r.protocol(), Some(&b"HTTP/1.1"[..]));
    assert_eq!(r.req_uri(), Some(&b"/app/hello"[..]));
    assert_eq!(r.remote_addr(), Some(&b"127.0.0.1"[..]));
    assert_eq!(r.remote_host(), None);
    assert_eq!(r.server_name(), Some(&b"localhost"[..]));
    assert_eq!(r.server_port(), 8080);
    assert!(!r.is_ssl());
    assert_eq!(r.num_headers(), 4);
    assert_eq!(
        r.headers().collect::<Vec<_>>(),
        vec![
            (&b"host"[..], &b"127.0.0.1:8080"[..]),
            (b"user-agent", b"curl/7.88.1"),
            (b"accept", b"*/*"),
            (b"X-Forwarded-For", b"127.0.0.1"),
        ]
    );
    assert_eq!(r.content_length(), None);
    assert!(!r.expects_first_body_packet());
    assert_eq!(r.query_string(), Some(&b"x=1"[..]));
    assert_eq!(r.secret(), Some(&b"s3cret"[..]));
    assert!(r.secret_matches(b"s3cret"));
    assert!(!r.secret_matches(b"s3creT"));
    assert!(!r.secret_matches(b"s3cret!"));
    assert!(!r.secret_matches(b""));
    assert_eq!(r.req_attribute(b"AJP_REMOTE_PORT"), Some(&b"45678"[..]));
    assert_eq!(r.req_attribute(b"AJP_OTHER"), None);
    assert_eq!(r.attributes().count(), 4);
    assert_eq!(
        r.attributes().next(),
        Some(Attribute::Secret(Some(b"s3cret")))
    );
    assert!(!format!("{r:?}").contains("s3cret"));
}

#[test]
fn apache_get_cgi_vars() {
    let (r, _) = forward(APACHE_GET);
    let mut vars = Vec::new();
    let mut scratch = Vec::new();
    r.for_each_cgi_var(&CgiOptions::default(), &mut scratch, |n, v| {
        vars.push((
            String::from_utf8(n.to_vec()).unwrap(),
            String::from_utf8(v.to_vec()).unwrap(),
        ));
    });
    let want: Vec<(String, String)> = [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/app/hello?x=1"),
        ("QUERY_STRING", "x=1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "8080"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REQUEST_SCHEME", "http"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/app/hello"),
        ("HTTP_HOST", "127.0.0.1:8080"),
        ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("HTTP_ACCEPT", "*/*"),
        ("HTTP_X_FORWARDED_FOR", "127.0.0.1"),
        ("AJP_REMOTE_PORT", "45678"),
        ("REMOTE_PORT", "45678"),
        ("AJP_LOCAL_ADDR", "127.0.0.1"),
        ("SERVER_ADDR", "127.0.0.1"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(vars, want);
}

#[test]
fn apache_post_then_first_body_packet() {
    let (r, n) = forward(APACHE_POST);
    assert_eq!(r.method(), b"POST");
    assert_eq!(r.content_length(), Some(5));
    assert_eq!(
        r.content_type(),
        Some(&b"application/x-www-form-urlencoded"[..])
    );
    assert!(r.expects_first_body_packet());
    let rest = &APACHE_POST[n..];
    assert_eq!(
        decode_body_packet(rest, S, BodyFraming::Standard),
        Ok(Status::Complete((BodyPacket::Data(b"hello"), rest.len())))
    );
    let mut vars = Vec::new();
    r.for_each_cgi_var(&CgiOptions::default(), &mut Vec::new(), |n, v| {
        vars.push((n.to_vec(), v.to_vec()));
    });
    assert!(vars.contains(&(b"CONTENT_LENGTH".to_vec(), b"5".to_vec())));
    assert!(vars.contains(&(
        b"CONTENT_TYPE".to_vec(),
        b"application/x-www-form-urlencoded".to_vec()
    )));
    assert!(vars.contains(&(b"QUERY_STRING".to_vec(), b"".to_vec())));
    assert!(vars.contains(&(b"REQUEST_URI".to_vec(), b"/echo".to_vec())));
    assert!(!vars.iter().any(|(n, _)| n.starts_with(b"HTTP_CONTENT")));
}

#[test]
fn apache_stored_method() {
    let (r, _) = forward(APACHE_PATCH);
    assert_eq!(r.method(), b"PATCH");
    assert_eq!(r.method_code(), 0xFF);
    assert_eq!(r.content_length(), Some(0));
    assert!(!r.expects_first_body_packet());
}

#[test]
fn lighttpd_post_over_tls() {
    let (r, n) = forward(LIGHTTPD_POST);
    assert!(r.is_ssl());
    assert_eq!(r.server_port(), 443);
    assert_eq!(r.headers().nth(2), Some((&b"X-Null"[..], &b""[..])));
    assert!(r.secret_matches(b"s3cret"));
    let rest = &LIGHTTPD_POST[n..];
    assert_eq!(
        decode_body_packet(rest, S, BodyFraming::Detect),
        Ok(Status::Complete((BodyPacket::Data(b"abc"), rest.len())))
    );
    let mut vars = Vec::new();
    r.for_each_cgi_var(&CgiOptions::default(), &mut Vec::new(), |n, v| {
        vars.push((n.to_vec(), v.to_vec()));
    });
    for (n, v) in [
        (&b"HTTPS"[..], &b"on"[..]),
        (b"REQUEST_SCHEME", b"https"),
        (b"SSL_CIPHER", b"TLS_AES_256_GCM_SHA384"),
        (b"SSL_CIPHER_USEKEYSIZE", b"256"),
        (b"HTTP_X_NULL", b""),
        (b"CONTENT_LENGTH", b"3"),
    ] {
        assert!(
            vars.contains(&(n.to_vec(), v.to_vec())),
            "{}",
            String::from_utf8_lossy(n)
        );
    }
    assert!(!vars.iter().any(|(_, v)| v == b"s3cret"));
}

#[test]
fn lighttpd_get_then_stray_empty_packet() {
    let (r, n) = forward(LIGHTTPD_GET);
    assert_eq!(r.server_name(), None);
    assert_eq!(r.content_length(), Some(0));
    assert_eq!(r.attributes().count(), 0);
    assert_eq!(
        dec(&LIGHTTPD_GET[n..]),
        Ok(Status::Complete((ServerPacket::EmptyBody, 4)))
    );
    let mut vars = Vec::new();
    r.for_each_cgi_var(&CgiOptions::default(), &mut Vec::new(), |n, v| {
        vars.push((n.to_vec(), v.to_vec()));
    });
    assert!(vars.contains(&(b"SERVER_NAME".to_vec(), b"".to_vec())));
}

#[test]
fn partial_at_every_split_point() {
    for fixture in [
        APACHE_GET,
        APACHE_POST,
        APACHE_PATCH,
        LIGHTTPD_POST,
        LIGHTTPD_GET,
    ] {
        let (r, n) = forward(fixture);
        for cut in 0..n {
            assert_eq!(dec(&fixture[..cut]), Ok(Status::Partial), "cut at {cut}");
        }
        assert_eq!(forward(&fixture[..n]), (r, n));
    }
}

#[test]
fn cping_shutdown_and_other_types() {
    assert_eq!(
        dec(b"\x12\x34\x00\x01\x0a"),
        Ok(Status::Complete((ServerPacket::Cping, 5)))
    );
    assert_eq!(
        dec(b"\x12\x34\x00\x01\x07"),
        Ok(Status::Complete((ServerPacket::Shutdown, 5)))
    );
    assert_eq!(
        dec(b"\x12\x34\x00\x02\x0a\x00"),
        Err(Error::TrailingBytes { count: 1 })
    );
    assert_eq!(
        dec(b"\x12\x34\x00\x01\x08"),
        Err(Error::UnknownPacketType(8))
    );
    assert_eq!(
        dec(b"\x12\x34\x00\x01\x03"),
        Err(Error::UnknownPacketType(3))
    );
    // A body packet where a request is expected: its inner length's high byte is the "type".
    assert_eq!(
        dec(b"\x12\x34\x00\x04\x00\x02hi"),
        Err(Error::UnknownPacketType(0))
    );
    assert_eq!(
        dec(b"AB\x00\x01\x09"),
        Err(Error::BadMagic { found: *b"AB" })
    );
    assert_eq!(
        dec(b"\x12\x34\x20\x00"),
        Err(Error::PacketTooLarge {
            len: 0x2000,
            max: 8188
        })
    );
    let mut out = Vec::new();
    encode_cping(&mut out);
    encode_shutdown(&mut out);
    assert_eq!(out, b"\x12\x34\x00\x01\x0a\x12\x34\x00\x01\x07");
}

/// A minimal request payload (after the prefix) with `headers` and `attrs` spliced in.
fn minimal(method: u8, headers: &[u8], attrs: &[u8]) -> Vec<u8> {
    let mut p = vec![0x02, method];
    p.extend_from_slice(b"\x00\x08HTTP/1.1\x00\x00\x01/\x00\xff\xff\xff\xff\xff\xff\x00\x50\x00");
    p.extend_from_slice(headers);
    p.extend_from_slice(attrs);
    packet(&p)
}

#[test]
fn minimal_request() {
    let wire = minimal(2, b"\x00\x00", b"\xff");
    let (r, _) = forward(&wire);
    assert_eq!(r.remote_addr(), None);
    assert_eq!(r.server_port(), 80);
    assert_eq!(r.headers().count(), 0);
}

#[test]
fn forward_request_errors() {
    let cases: Vec<(Vec<u8>, Error)> = vec![
        (minimal(0, b"\x00\x00", b"\xff"), Error::UnknownMethod(0)),
        (minimal(28, b"\x00\x00", b"\xff"), Error::UnknownMethod(28)),
        (
            minimal(0xFF, b"\x00\x00", b"\xff"),
            Error::MissingStoredMethod,
        ),
        (
            minimal(0xFF, b"\x00\x00", b"\x0d\x00\x00\x00\xff"),
            Error::MissingStoredMethod,
        ),
        (
            minimal(0xFF, b"\x00\x00", b"\x0d\xff\xff\xff"),
            Error::MissingStoredMethod,
        ),
        (
            minimal(2, b"\x00\x01\xa0\x0f\x00\x00\x00", b"\xff"),
            Error::UnknownHeaderCode(0xA00F),
        ),
        (
            minimal(2, b"\x00\x01\xa0\x00\x00\x00\x00", b"\xff"),
            Error::UnknownHeaderCode(0xA000),
        ),
        (
            minimal(2, b"\x00\x01\xff\xff\x00\x00\x00", b"\xff"),
            Error::InvalidHeaderName,
        ),
        (
            minimal(2, b"\x00\x01\x00\x00\x00\x00\x00\x00", b"\xff"),
            Error::InvalidHeaderName,
        ),
        (
            minimal(2, b"\x00\x01\x00\x01X\x01\x00\x00\x00", b"\xff"),
            Error::MissingNul {
                field: "header name",
            },
        ),
        (
            minimal(2, b"\x00\x02\xa0\x01\x00\x00\x00", b"\xff"),
            Error::Truncated {
                field: "header name",
            },
        ),
        (
            minimal(2, b"\x00\x01\xa0\x08\x00\x02-1\x00", b"\xff"),
            Error::InvalidContentLength,
        ),
        (
            minimal(2, b"\x00\x01\xa0\x08\xff\xff", b"\xff"),
            Error::InvalidContentLength,
        ),
        (
            minimal(
                2,
                b"\x00\x02\xa0\x08\x00\x011\x00\x00\x0eContent-Length\x00\x00\x011\x00",
                b"\xff",
            ),
            Error::DuplicateContentLength,
        ),
        (
            minimal(2, b"\x00\x00", b"\x0e\xff"),
            Error::UnknownAttribute(0x0E),
        ),
        (
            minimal(2, b"\x00\x00", b"\x00\xff"),
            Error::UnknownAttribute(0),
        ),
        (
            minimal(2, b"\x00\x00", b"\x0c\x00\x01a\x00\x0c\x00\x01b\x00\xff"),
            Error::DuplicateAttribute(0x0C),
        ),
        (
            minimal(2, b"\x00\x00", b"\x05\xff\xff\x05\xff\xff\xff"),
            Error::DuplicateAttribute(0x05),
        ),
        (
            minimal(2, b"\x00\x00", b"\xff\x00"),
            Error::TrailingBytes { count: 1 },
        ),
        (
            minimal(2, b"\x00\x00", b""),
            Error::Truncated {
                field: "attributes (no 0xFF terminator)",
            },
        ),
        (
            minimal(2, b"\x00\x00", b"\x0b\x01"),
            Error::Truncated {
                field: "ssl_key_size",
            },
        ),
        (
            minimal(2, b"\x00\x00", b"\x0a\x00\x01a\x00"),
            Error::Truncated {
                field: "req_attribute value",
            },
        ),
        (packet(b"\x02"), Error::Truncated { field: "method" }),
        (
            packet(b"\x02\x02\x00\x08HTTP"),
            Error::Truncated { field: "protocol" },
        ),
        (
            packet(b"\x02\x02\x00\x08HTTP/1.1X"),
            Error::MissingNul { field: "protocol" },
        ),
    ];
    for (wire, error) in cases {
        assert_eq!(dec(&wire), Err(error), "{wire:02x?}");
    }
    // Repeated req_attributes are fine.
    let wire = minimal(
        2,
        b"\x00\x00",
        b"\x0a\x00\x01a\x00\x00\x01b\x00\x0a\x00\x01a\x00\x00\x01c\x00\xff",
    );
    assert_eq!(forward(&wire).0.req_attribute(b"a"), Some(&b"b"[..]));
}

#[test]
fn method_and_header_tables() {
    assert_eq!(method_name(1), Some(&b"OPTIONS"[..]));
    assert_eq!(method_name(27), Some(&b"MKACTIVITY"[..]));
    assert_eq!(method_name(0), None);
    assert_eq!(method_name(28), None);
    for code in 1..=27 {
        assert_eq!(method_code(method_name(code).unwrap()), Some(code));
    }
    assert_eq!(method_code(b"get"), None);
    assert_eq!(method_code(b"PATCH"), None);
    assert_eq!(request_header_code(b"User-Agent"), Some(0xA00E));
    assert_eq!(request_header_name(0xA007), Some(&b"content-type"[..]));
    assert_eq!(request_header_name(0xA00F), None);
    assert_eq!(request_header_name(0x0007), None);
}

#[test]
fn cgi_vars_filtering() {
    let head = RequestHead {
        method: b"GET",
        protocol: Some(b"HTTP/1.1"),
        req_uri: Some(b"/x"),
        remote_host: Some(b"client.example"),
        headers: &[
            (b"Proxy", b"http://evil/"),
            (b"X_Under", b"1"),
            (b"X-Ok", b"2"),
            (b"x-ok", b"3"),
        ],
        attributes: &[
            Attribute::RemoteUser(Some(b"alice")),
            Attribute::AuthType(Some(b"Basic")),
            Attribute::ReqAttribute {
                name: Some(b"javax.servlet.include.request_uri"),
                value: Some(b"/WEB-INF/web.xml"),
            },
            Attribute::ReqAttribute {
                name: Some(b"AJP_SSL_PROTOCOL"),
                value: Some(b"TLSv1.3"),
            },
            Attribute::Context(Some(b"/ctx")),
            Attribute::JvmRoute(Some(b"r1")),
            Attribute::QueryString(Some(b"")),
        ],
        ..RequestHead::default()
    };
    let mut wire = Vec::new();
    encode_forward_request(&head, S, &mut wire).unwrap();
    let (r, _) = forward(&wire);
    let collect = |options: &CgiOptions| {
        let mut vars = Vec::new();
        r.for_each_cgi_var(options, &mut Vec::new(), |n, v| {
            vars.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        });
        vars
    };
    let vars = collect(&CgiOptions::default());
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.contains(&"HTTP_PROXY"));
    assert!(!names.contains(&"HTTP_X_UNDER"));
    assert!(!names.contains(&"REMOTE_USER"));
    assert!(!vars
        .iter()
        .any(|(_, v)| v == "/WEB-INF/web.xml" || v == "/ctx" || v == "r1"));
    assert_eq!(names.iter().filter(|n| **n == "HTTP_X_OK").count(), 2);
    assert!(vars.contains(&("REMOTE_HOST".into(), "client.example".into())));
    assert!(vars.contains(&("REQUEST_URI".into(), "/x".into())));
    assert!(vars.contains(&("SSL_PROTOCOL".into(), "TLSv1.3".into())));
    assert!(vars.contains(&("AJP_SSL_PROTOCOL".into(), "TLSv1.3".into())));
    let trusted = collect(&CgiOptions {
        trust_remote_user: true,
    });
    assert!(trusted.contains(&("REMOTE_USER".into(), "alice".into())));
    assert!(trusted.contains(&("AUTH_TYPE".into(), "Basic".into())));
}

#[test]
fn encode_errors() {
    let mut out = b"x".to_vec();
    let head = RequestHead::default();
    assert_eq!(
        encode_forward_request(&head, S, &mut out),
        Err(EncodeError::Empty { field: "method" })
    );
    let big = vec![b'a'; 9000];
    let head = RequestHead {
        method: b"GET",
        req_uri: Some(&big),
        ..RequestHead::default()
    };
    assert!(matches!(
        encode_forward_request(&head, S, &mut out),
        Err(EncodeError::PacketTooLarge { .. })
    ));
    let name = vec![b'n'; 0xA000];
    let headers = [(&name[..], &b""[..])];
    let head = RequestHead {
        method: b"GET",
        headers: &headers,
        ..RequestHead::default()
    };
    assert_eq!(
        encode_forward_request(&head, PacketSize::new(65536).unwrap(), &mut out),
        Err(EncodeError::StringTooLong {
            field: "header name"
        })
    );
    let headers = [(&b""[..], &b"v"[..])];
    let head = RequestHead {
        method: b"GET",
        headers: &headers,
        ..RequestHead::default()
    };
    assert_eq!(
        encode_forward_request(&head, S, &mut out),
        Err(EncodeError::Empty {
            field: "header name"
        })
    );
    assert_eq!(out, b"x");
}

#[test]
fn encode_matches_apache_capture() {
    let headers: [(&[u8], &[u8]); 4] = [
        (b"Host", b"127.0.0.1:8080"),
        (b"User-Agent", b"curl/7.88.1"),
        (b"Accept", b"*/*"),
        (b"X-Forwarded-For", b"127.0.0.1"),
    ];
    let attributes = [
        Attribute::Secret(Some(b"s3cret")),
        Attribute::QueryString(Some(b"x=1")),
        Attribute::ReqAttribute {
            name: Some(b"AJP_REMOTE_PORT"),
            value: Some(b"45678"),
        },
        Attribute::ReqAttribute {
            name: Some(b"AJP_LOCAL_ADDR"),
            value: Some(b"127.0.0.1"),
        },
    ];
    let head = RequestHead {
        method: b"GET",
        protocol: Some(b"HTTP/1.1"),
        req_uri: Some(b"/app/hello"),
        remote_addr: Some(b"127.0.0.1"),
        remote_host: None,
        server_name: Some(b"localhost"),
        server_port: 8080,
        is_ssl: false,
        headers: &headers,
        attributes: &attributes,
    };
    let mut out = Vec::new();
    encode_forward_request(&head, S, &mut out).unwrap();
    assert_eq!(out, APACHE_GET);

    // An unknown method goes out as 0xFF plus the stored method, like Apache.
    let headers: [(&[u8], &[u8]); 1] = [(b"Content-Length", b"0")];
    let head = RequestHead {
        method: b"PATCH",
        protocol: Some(b"HTTP/1.1"),
        req_uri: Some(b"/p"),
        remote_addr: Some(b"127.0.0.1"),
        server_name: Some(b"localhost"),
        server_port: 8080,
        headers: &headers,
        ..RequestHead::default()
    };
    out.clear();
    encode_forward_request(&head, S, &mut out).unwrap();
    assert_eq!(out, APACHE_PATCH);
}

fn opt_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10))
}

fn method() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (1u8..=27).prop_map(|c| method_name(c).unwrap().to_vec()),
        "[A-Z]{1,8}".prop_map(String::into_bytes),
    ]
}

fn header_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0xA001u16..=0xA00E).prop_map(|c| request_header_name(c).unwrap().to_ascii_uppercase()),
        proptest::collection::vec(any::<u8>(), 1..10),
    ]
}

#[derive(Debug, Clone)]
enum AttrSpec {
    Str(u8, Option<Vec<u8>>),
    Req(Option<Vec<u8>>, Option<Vec<u8>>),
    KeySize(u16),
}

fn attributes() -> impl Strategy<Value = Vec<AttrSpec>> {
    let attr = prop_oneof![
        (prop_oneof![1u8..=9, Just(0x0C)], opt_bytes()).prop_map(|(c, s)| AttrSpec::Str(c, s)),
        (opt_bytes(), opt_bytes()).prop_map(|(n, v)| AttrSpec::Req(n, v)),
        any::<u16>().prop_map(AttrSpec::KeySize),
    ];
    proptest::collection::vec(attr, 0..8).prop_map(|attrs| {
        // Single-valued attributes at most once.
        let mut seen = 0u32;
        attrs
            .into_iter()
            .filter(|a| {
                let code = match a {
                    AttrSpec::Str(c, _) => *c,
                    AttrSpec::KeySize(_) => 0x0B,
                    AttrSpec::Req(..) => return true,
                };
                let fresh = seen & (1 << code) == 0;
                seen |= 1 << code;
                fresh
            })
            .collect()
    })
}

fn to_attribute(spec: &AttrSpec) -> Attribute<'_> {
    match spec {
        AttrSpec::Str(code, s) => {
            let s = s.as_deref();
            match code {
                1 => Attribute::Context(s),
                2 => Attribute::ServletPath(s),
                3 => Attribute::RemoteUser(s),
                4 => Attribute::AuthType(s),
                5 => Attribute::QueryString(s),
                6 => Attribute::JvmRoute(s),
                7 => Attribute::SslCert(s),
                8 => Attribute::SslCipher(s),
                9 => Attribute::SslSession(s),
                _ => Attribute::Secret(s),
            }
        }
        AttrSpec::Req(n, v) => Attribute::ReqAttribute {
            name: n.as_deref(),
            value: v.as_deref(),
        },
        AttrSpec::KeySize(n) => Attribute::SslKeySize(*n),
    }
}

proptest! {
    #[test]
    fn encode_then_decode_at_every_split(
        method in method(),
        fields in proptest::collection::vec(opt_bytes(), 5),
        server_port in any::<u16>(),
        is_ssl in any::<bool>(),
        headers in proptest::collection::vec((header_name(), proptest::collection::vec(any::<u8>(), 0..10)), 0..8),
        attrs in attributes(),
    ) {
        let headers: Vec<(&[u8], &[u8])> = headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(b"content-length"))
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        let attributes: Vec<Attribute<'_>> = attrs.iter().map(to_attribute).collect();
        let head = RequestHead {
            method: &method,
            protocol: fields[0].as_deref(),
            req_uri: fields[1].as_deref(),
            remote_addr: fields[2].as_deref(),
            remote_host: fields[3].as_deref(),
            server_name: fields[4].as_deref(),
            server_port,
            is_ssl,
            headers: &headers,
            attributes: &attributes,
        };
        let mut wire = Vec::new();
        encode_forward_request(&head, S, &mut wire).unwrap();
        for cut in 0..wire.len() {
            prop_assert_eq!(dec(&wire[..cut]), Ok(Status::Partial));
        }
        wire.extend_from_slice(b"\x12\x34");
        let (r, n) = forward(&wire);
        prop_assert_eq!(n, wire.len() - 2);
        prop_assert_eq!(r.method(), &method[..]);
        prop_assert_eq!(r.protocol(), head.protocol);
        prop_assert_eq!(r.req_uri(), head.req_uri);
        prop_assert_eq!(r.remote_addr(), head.remote_addr);
        prop_assert_eq!(r.remote_host(), head.remote_host);
        prop_assert_eq!(r.server_name(), head.server_name);
        prop_assert_eq!(r.server_port(), server_port);
        prop_assert_eq!(r.is_ssl(), is_ssl);
        let got: Vec<_> = r.headers().collect();
        prop_assert_eq!(got.len(), headers.len());
        for ((gn, gv), (n, v)) in got.iter().zip(&headers) {
            prop_assert!(gn.eq_ignore_ascii_case(n));
            prop_assert_eq!(gv, v);
        }
        let got: Vec<_> = r.attributes().filter(|a| !matches!(a, Attribute::StoredMethod(_))).collect();
        prop_assert_eq!(got, attributes.clone());
        let secret = attributes.iter().find_map(|a| match a {
            Attribute::Secret(s) => Some(s.unwrap_or_default()),
            _ => None,
        });
        prop_assert_eq!(r.secret(), secret);
        let mut count = 0;
        r.for_each_cgi_var(&CgiOptions { trust_remote_user: true }, &mut Vec::new(), |_, _| count += 1);
        prop_assert!(count >= 10);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        let _ = dec(&bytes);
        let mut payload = vec![0x02];
        payload.extend_from_slice(&bytes);
        if let Ok(Status::Complete((ServerPacket::ForwardRequest(r), _))) = dec(&packet(&payload)) {
            prop_assert_eq!(r.headers().count(), usize::from(r.num_headers()));
            let _ = r.attributes().count();
            r.for_each_cgi_var(&CgiOptions::default(), &mut Vec::new(), |_, _| {});
        }
    }

    #[test]
    fn mutated_captures_never_panic(
        which in 0usize..5,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let fixture = [APACHE_GET, APACHE_POST, APACHE_PATCH, LIGHTTPD_POST, LIGHTTPD_GET][which];
        let mut wire = fixture.to_vec();
        let i = at.index(wire.len());
        wire[i] = byte;
        if let Ok(Status::Complete((ServerPacket::ForwardRequest(r), _))) = dec(&wire) {
            prop_assert_eq!(r.headers().count(), usize::from(r.num_headers()));
            r.for_each_cgi_var(&CgiOptions::default(), &mut Vec::new(), |_, _| {});
        }
    }
}
