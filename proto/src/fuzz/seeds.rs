//! Valid inputs for every target: the corpus the fuzzers start from (committed under
//! `engine/fuzz/corpus/<target>/`, written by `proto/tests/fuzz_corpus.rs`).

use crate::ajp::{self, Attribute, PacketSize, RequestHead};
use crate::fcgi::{self, RequestSpec};
use crate::scgi;

const PARAMS: [(&[u8], &[u8]); 5] = [
    (b"REQUEST_METHOD", b"POST"),
    (b"REQUEST_URI", b"/upload?x=1"),
    (b"QUERY_STRING", b"x=1"),
    (b"CONTENT_TYPE", b"text/plain"),
    (b"HTTP_HOST", b"example.org"),
];

fn fcgi_request(id: u16, keep_conn: bool, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    fcgi::encode_request(
        &mut out,
        &RequestSpec {
            request_id: id,
            keep_conn,
            params: &PARAMS,
            body,
        },
    );
    out
}

fn scgi_request(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    scgi::encode_request_with_body(PARAMS[..3].iter().copied(), body, &mut out)
        .expect("a valid request");
    out
}

fn ajp_request(body: &[u8], attributes: &[Attribute<'_>]) -> Vec<u8> {
    let len = body.len().to_string();
    let mut headers: Vec<(&[u8], &[u8])> = vec![
        (b"Host", b"example.org"),
        (b"User-Agent", b"seed"),
        (b"X-Custom-Header", b"1"),
    ];
    if !body.is_empty() {
        headers.push((b"Content-Length", len.as_bytes()));
    }
    let head = RequestHead {
        method: if body.is_empty() { b"GET" } else { b"POST" },
        protocol: Some(b"HTTP/1.1"),
        req_uri: Some(b"/upload"),
        remote_addr: Some(b"127.0.0.1"),
        remote_host: None,
        server_name: Some(b"example.org"),
        server_port: 80,
        is_ssl: false,
        headers: &headers,
        attributes,
    };
    let size = PacketSize::DEFAULT;
    let mut out = Vec::new();
    ajp::encode_forward_request(&head, size, &mut out).expect("a valid request");
    let mut at = ajp::first_body_packet(body, size, &mut out);
    while at < body.len() {
        at += ajp::encode_body_chunk(&body[at..], usize::MAX, size, &mut out);
    }
    if !body.is_empty() {
        ajp::encode_body_end(&mut out);
    }
    out
}

/// The connection targets' prefix: flags, params, reqs, then `ctl` (see `fcgi_conn`).
fn conn(flags: u8, ctl: &[u8], wire: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, 0, 0, ctl.len() as u8];
    v.extend_from_slice(ctl);
    v.extend_from_slice(wire);
    v
}

/// `(target, name, input)` for every seed.
pub fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut v = Vec::new();
    let body = b"hello, world";

    let get = fcgi_request(1, false, b"");
    let post = fcgi_request(1, true, body);
    let mut multiplexed = fcgi_request(1, true, body);
    multiplexed.extend(fcgi_request(2, true, b""));
    let mut values = Vec::new();
    fcgi::encode_get_values(
        &mut values,
        &[fcgi::values::MAX_CONNS, fcgi::values::MPXS_CONNS],
    );
    let mut abort = Vec::new();
    fcgi::encode_begin_request(&mut abort, 3, fcgi::role::RESPONDER, fcgi::FLAG_KEEP_CONN);
    fcgi::encode_record(&mut abort, fcgi::rtype::ABORT_REQUEST, 3, &[]);
    abort.extend_from_slice(&post);

    for (name, wire) in [
        ("get", &get),
        ("post_keep_conn", &post),
        ("multiplexed", &multiplexed),
        ("get_values", &values),
        ("abort", &abort),
    ] {
        let mut record = vec![128];
        record.extend_from_slice(wire);
        v.push(("fcgi_record", name, record));
    }
    let mut params = vec![0, 1, 0, 0];
    let mut nv = Vec::new();
    for (n, val) in PARAMS {
        fcgi::encode_nv(&mut nv, n, val);
    }
    for piece in nv.chunks(50) {
        params.push(piece.len() as u8);
        params.extend_from_slice(piece);
    }
    params.push(0);
    v.push(("fcgi_params", "request", params));

    v.push(("fcgi_conn", "get", conn(0, &[], &get)));
    v.push((
        "fcgi_conn",
        "post_keep_conn_bytewise",
        conn(0, &[0; 40], &post),
    ));
    v.push((
        "fcgi_conn",
        "multiplexed_slow",
        conn(0x40, &[0x2c, 0x1c, 0xaf], &multiplexed),
    ));
    v.push((
        "fcgi_conn",
        "abort_get_values",
        conn(2, &[7, 0x4d], &[abort, values].concat()),
    ));
    v.push(("fcgi_conn", "overloaded", conn(1, &[], &post)));

    let scgi_post = scgi_request(body);
    let scgi_get = scgi_request(b"");
    let limit = [0xff, 0xff, 128];
    v.push(("scgi_decode", "post", [&limit[..], &scgi_post].concat()));
    v.push(("scgi_decode", "get", [&limit[..], &scgi_get].concat()));
    v.push((
        "scgi_decode",
        "response",
        [&limit[..], b"Status: 200 OK\r\nContent-Length: 2\r\n\r\nhi"].concat(),
    ));
    v.push(("scgi_conn", "post", conn(0, &[], &scgi_post)));
    v.push((
        "scgi_conn",
        "post_bytewise",
        conn(0x40, &[0; 60], &scgi_post),
    ));
    v.push((
        "scgi_conn",
        "get_stalled",
        conn(2, &[0x8c, 0x3f], &scgi_get),
    ));
    v.push(("scgi_conn", "overloaded", conn(1, &[], &scgi_post)));

    let secret = [Attribute::Secret(Some(super::conn::AJP_SECRET))];
    let ajp_post = ajp_request(body, &[Attribute::QueryString(Some(b"x=1"))]);
    let ajp_get = ajp_request(b"", &secret);
    let mut cping = Vec::new();
    ajp::encode_cping(&mut cping);
    let big = vec![b'x'; 9_000];
    let ajp_big = ajp_request(&big, &[]);
    v.push(("ajp_decode", "post", [&[0, 128][..], &ajp_post].concat()));
    v.push((
        "ajp_decode",
        "get_secret",
        [&[0, 128][..], &ajp_get].concat(),
    ));
    v.push((
        "ajp_decode",
        "response",
        [
            &[0, 128][..],
            b"AB\x00\x19\x04\x00\xc8\x00\x02OK\x00\x00\x01\xa0\x01\x00\x0atext/plain\x00",
            b"AB\x00\x06\x03\x00\x02hi\x00AB\x00\x02\x05\x01",
        ]
        .concat(),
    ));
    v.push(("ajp_conn", "post", conn(0, &[], &ajp_post)));
    v.push(("ajp_conn", "get_secret", conn(4, &[], &ajp_get)));
    v.push((
        "ajp_conn",
        "cping_get_bytewise",
        conn(0x40, &[0; 30], &[cping, ajp_get].concat()),
    ));
    v.push((
        "ajp_conn",
        "big_post_stalled",
        conn(0, &[0x8e, 0x2e, 0x0f], &ajp_big),
    ));
    v.push(("ajp_conn", "overloaded", conn(1, &[], &ajp_post)));
    v
}
