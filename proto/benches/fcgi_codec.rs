//! Criterion benchmarks of the FastCGI codec, in bytes per second.
//!
//! - `decode/nginx_get`: a GET as nginx sends it (BEGIN_REQUEST, the pairs of its stock
//!   `fastcgi_params` plus the usual HTTP_* headers in one PARAMS record, the empty PARAMS and the
//!   empty STDIN) decoded into records and a reused [`Params`];
//! - `decode/stdin_1mib`: a 1 MiB upload in records of 65535 bytes (zero-copy: the cost is per
//!   record), and `decode/stdin_1mib_copied`, which also copies the content out as a driver would;
//! - `encode/hello_response`: header block and body in one in-place STDOUT record, the empty
//!   STDOUT and END_REQUEST, into a reused buffer;
//! - `encode/stdout_1mib`: a 1 MiB response body split into STDOUT records.
//!
//! Run: `cargo bench -p proto --bench fcgi_codec -- --quick` (or `--measurement-time 2`).

use criterion::{black_box, criterion_main, Criterion, Throughput};
use proto::fcgi::{
    decode_record, encode_end_request, encode_record, encode_request, encode_stream,
    protocol_status, rtype, BeginRequest, Decode, Params, RequestSpec, StreamRecord,
};

const MIB: usize = 1 << 20;

/// What nginx 1.2x sends for `GET /app/users/42?page=2&sort=name` with `include fastcgi_params`
/// and `fastcgi_param SCRIPT_FILENAME ...`, from a browser.
const NGINX_PARAMS: &[(&str, &str)] = &[
    ("QUERY_STRING", "page=2&sort=name"),
    ("REQUEST_METHOD", "GET"),
    ("CONTENT_TYPE", ""),
    ("CONTENT_LENGTH", ""),
    ("SCRIPT_NAME", "/app/users/42"),
    ("REQUEST_URI", "/app/users/42?page=2&sort=name"),
    ("DOCUMENT_URI", "/app/users/42"),
    ("DOCUMENT_ROOT", "/srv/www/example/public"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REQUEST_SCHEME", "https"),
    ("HTTPS", "on"),
    ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("SERVER_SOFTWARE", "nginx/1.26.2"),
    ("REMOTE_ADDR", "203.0.113.57"),
    ("REMOTE_PORT", "51834"),
    ("SERVER_ADDR", "10.0.0.12"),
    ("SERVER_PORT", "443"),
    ("SERVER_NAME", "www.example.com"),
    ("REDIRECT_STATUS", "200"),
    ("SCRIPT_FILENAME", "/srv/www/example/public/app/users/42"),
    ("HTTP_HOST", "www.example.com"),
    (
        "HTTP_USER_AGENT",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "HTTP_ACCEPT",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    (
        "HTTP_ACCEPT_LANGUAGE",
        "pt-BR,pt;q=0.8,en-US;q=0.5,en;q=0.3",
    ),
    ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br, zstd"),
    (
        "HTTP_COOKIE",
        "sessionid=7c1f0c5e2b9a4d3f8e6a1b0c9d8e7f6a; csrftoken=Q2xHb3dZcXRZb0xJc1F2V0pQ",
    ),
    ("HTTP_CONNECTION", "keep-alive"),
];

fn nginx_request() -> Vec<u8> {
    let pairs: Vec<(&[u8], &[u8])> = NGINX_PARAMS
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    let mut out = Vec::new();
    encode_request(
        &mut out,
        &RequestSpec {
            request_id: 1,
            keep_conn: true,
            params: &pairs,
            body: &[],
        },
    );
    out
}

/// Decodes every record of `wire` into `params`; returns the body bytes seen (so that nothing is
/// optimised away).
fn decode_request(wire: &[u8], params: &mut Params) -> usize {
    params.clear();
    let mut pos = 0;
    let mut body = 0;
    while let Ok(Decode::Complete(rec, used)) = decode_record(&wire[pos..]) {
        match rec.header.rtype {
            rtype::BEGIN_REQUEST => {
                black_box(BeginRequest::parse(rec.content));
            }
            rtype::PARAMS => params.push(rec.content, 1 << 20).expect("valid params"),
            rtype::STDIN => body += rec.content.len(),
            _ => {}
        }
        pos += used;
    }
    assert_eq!(pos, wire.len());
    body
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");

    let wire = nginx_request();
    let mut params = Params::new();
    decode_request(&wire, &mut params);
    assert_eq!(params.len(), NGINX_PARAMS.len());
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("nginx_get", |b| {
        b.iter(|| {
            decode_request(black_box(&wire), &mut params);
            black_box(params.get(b"REQUEST_URI"));
        })
    });

    let body = vec![b'u'; MIB];
    let mut wire = Vec::new();
    encode_stream(&mut wire, rtype::STDIN, 1, &body);
    encode_record(&mut wire, rtype::STDIN, 1, &[]);
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("stdin_1mib", |b| {
        b.iter(|| assert_eq!(decode_request(black_box(&wire), &mut params), MIB))
    });
    // The same, moving each record's content into a reused body buffer as a connection driver
    // hands STDIN to its handler: memcpy-bound, where the above only walks the headers.
    let mut sink = Vec::with_capacity(MIB);
    g.bench_function("stdin_1mib_copied", |b| {
        b.iter(|| {
            sink.clear();
            let mut pos = 0;
            while let Ok(Decode::Complete(rec, used)) = decode_record(&wire[pos..]) {
                sink.extend_from_slice(rec.content);
                pos += used;
            }
            assert_eq!(sink.len(), MIB);
        })
    });

    g.finish();
}

const HELLO_HEADERS: &[u8] =
    b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n";
const HELLO_BODY: &[u8] = b"Hello, World!";

fn encode_hello(out: &mut Vec<u8>, request_id: u16) {
    let rec = StreamRecord::start(out, rtype::STDOUT, request_id);
    out.extend_from_slice(HELLO_HEADERS);
    out.extend_from_slice(HELLO_BODY);
    rec.finish(out);
    encode_record(out, rtype::STDOUT, request_id, &[]);
    encode_end_request(out, request_id, 0, protocol_status::REQUEST_COMPLETE);
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");

    let mut out = Vec::with_capacity(4096);
    encode_hello(&mut out, 1);
    g.throughput(Throughput::Bytes(out.len() as u64));
    g.bench_function("hello_response", |b| {
        b.iter(|| {
            out.clear();
            encode_hello(&mut out, black_box(1));
            black_box(out.len());
        })
    });

    let body = vec![b'd'; MIB];
    let mut out = Vec::with_capacity(MIB + 1024);
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("stdout_1mib", |b| {
        b.iter(|| {
            out.clear();
            encode_stream(&mut out, rtype::STDOUT, 1, black_box(&body));
            black_box(out.len());
        })
    });

    g.finish();
}

/// In a private module: `criterion_group!` defines an undocumented `pub fn`.
mod group {
    use super::{decode, encode};
    criterion::criterion_group!(benches, decode, encode);
}
criterion_main!(group::benches);
