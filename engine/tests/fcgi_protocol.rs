//! FastCGI protocol behaviour of the real `ringfast` binary over real sockets.
//!
//! Each test starts its own engine (`--app diag --workers 2`, on a kernel-chosen loopback port or
//! a Unix socket) and speaks FastCGI to it with the engine's own client codec: multiplexing,
//! GET_VALUES, unknown types and roles, ABORT_REQUEST, keep-conn on and off, the response shape,
//! large bodies both ways, CONTENT_LENGTH quirks, PARAMS straddling records, every limit, garbage
//! input, many connections, graceful stop and the idle timeout. Every read has a timeout, so a
//! hung engine fails a test instead of hanging it. Timing is only ever checked generously.

mod fcgi_client;

use std::collections::HashMap;
use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use engine::proto::fcgi::{self, protocol_status, role, rtype, values, FLAG_KEEP_CONN};
use fcgi_client::{
    get, post, random_bytes, record, stdin_records, Closed, Collector, Engine, Req, MIB,
};

/// The `/env` answer as a map.
fn env_map(body: &[u8]) -> HashMap<String, String> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("/env returns JSON");
    v.as_object()
        .expect("/env returns an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string values").to_owned()))
        .collect()
}

fn assert_hello(reply: &fcgi_client::Reply) {
    let r = reply.assert_complete();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, World!");
}

#[test]
fn multiplexed_interleaved_requests() {
    let engine = Engine::start(&[]);
    let mut conn = engine.connect();

    // id 1 sleeps; id 2 is a fast hello; id 3 is an echo whose STDIN stays open until every
    // other request has finished (a request blocked on its body must not hold up the others);
    // the rest mix hello, env and echo.
    let mut reqs: Vec<Req> = Vec::new();
    for id in 1..=20u16 {
        let req = match id {
            1 => get(id, "/sleep?ms=500"),
            2 => get(id, "/hello"),
            3 => post(id, "/echo", &random_bytes(30_000, 3)),
            _ if id % 3 == 0 => get(id, "/hello"),
            _ if id % 3 == 1 => get(id, "/env").param("HTTP_X_REQUEST_ID", &id.to_string()),
            _ => post(
                id,
                "/echo",
                &random_bytes(5_000 + id as usize * 997, id as u64),
            ),
        };
        reqs.push(req.param("HTTP_X_REQUEST_ID", &id.to_string()));
    }

    let mut wire = Vec::new();
    for r in &reqs {
        wire.extend(r.encode_begin());
    }
    // PARAMS of all requests interleaved, in records of 1 to 13 bytes.
    let streams: Vec<Vec<u8>> = reqs.iter().map(Req::params_stream).collect();
    let mut offsets = vec![0usize; reqs.len()];
    loop {
        let mut progressed = false;
        for (i, r) in reqs.iter().enumerate() {
            let s = &streams[i];
            if offsets[i] < s.len() {
                let n = (1 + (r.id as usize + offsets[i]) % 13).min(s.len() - offsets[i]);
                fcgi::encode_record(&mut wire, rtype::PARAMS, r.id, &s[offsets[i]..][..n]);
                offsets[i] += n;
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    for r in &reqs {
        fcgi::encode_record(&mut wire, rtype::PARAMS, r.id, &[]);
    }
    // STDIN interleaved in 1000-byte records; id 3 only gets its first half for now.
    let mut offsets = vec![0usize; reqs.len()];
    loop {
        let mut progressed = false;
        for (i, r) in reqs.iter().enumerate() {
            let limit = if r.id == 3 {
                r.body.len() / 2
            } else {
                r.body.len()
            };
            if offsets[i] < limit {
                let n = 1000.min(limit - offsets[i]);
                fcgi::encode_record(&mut wire, rtype::STDIN, r.id, &r.body[offsets[i]..][..n]);
                offsets[i] += n;
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    for r in reqs.iter().filter(|r| r.id != 3) {
        fcgi::encode_record(&mut wire, rtype::STDIN, r.id, &[]);
    }
    conn.send(&wire);

    let others: Vec<u16> = (1..=20).filter(|&id| id != 3).collect();
    let mut c = conn.collect(&others);
    let (p1, p2) = (c.end_position(1).unwrap(), c.end_position(2).unwrap());
    assert!(
        p2 < p1,
        "the fast /hello (id 2) must end before the slow /sleep (id 1): END order {:?}",
        c.ends
    );
    assert!(
        c.replies.get(&3).and_then(|r| r.end).is_none(),
        "id 3 cannot end before its STDIN does"
    );

    // Now finish id 3.
    let r3 = &reqs[2];
    let mut rest = stdin_records(3, &r3.body[r3.body.len() / 2..], 1000);
    rest.extend(record(rtype::STDIN, 3, &[]));
    conn.send(&rest);
    conn.collect_into(&mut c, &[3]).expect("id 3 ends");

    for r in &reqs {
        let reply = c.take(r.id);
        let resp = reply.assert_complete();
        assert_eq!(resp.status, 200, "id {}", r.id);
        let path = std::str::from_utf8(
            &r.params
                .iter()
                .find(|(n, _)| n == b"SCRIPT_NAME")
                .unwrap()
                .1,
        )
        .unwrap()
        .to_owned();
        match path.as_str() {
            "/hello" => assert_eq!(resp.body, b"Hello, World!", "id {}", r.id),
            "/echo" => assert!(resp.body == r.body, "echo body of id {} differs", r.id),
            "/env" => {
                let env = env_map(&resp.body);
                assert_eq!(env["HTTP_X_REQUEST_ID"], r.id.to_string());
                assert_eq!(env["SCRIPT_NAME"], "/env");
            }
            "/sleep" => assert_eq!(resp.body, b"slept 500 ms\n"),
            p => unreachable!("{p}"),
        }
    }
    // And the connection is still good.
    assert_hello(&conn.request(&get(1, "/hello")));
}

#[test]
fn get_values_reports_configured_limits() {
    let engine = Engine::start(&["--max-conns", "37", "--max-reqs-per-conn", "5"]);
    let mut conn = engine.connect();
    let mut q = Vec::new();
    fcgi::encode_get_values(
        &mut q,
        &[
            values::MAX_CONNS,
            values::MAX_REQS,
            values::MPXS_CONNS,
            b"NOT_A_FCGI_VARIABLE",
        ],
    );
    conn.send(&q);
    let r = conn.next_record();
    assert_eq!(r.rtype, rtype::GET_VALUES_RESULT);
    assert_eq!(r.id, 0);
    let v = r.values();
    assert_eq!(v["FCGI_MAX_CONNS"], "37");
    assert_eq!(v["FCGI_MAX_REQS"], (37 * 5).to_string());
    assert_eq!(v["FCGI_MPXS_CONNS"], "1");
    assert!(!v.contains_key("NOT_A_FCGI_VARIABLE"), "{v:?}");

    // In the middle of a request: after BEGIN_REQUEST and part of its PARAMS.
    let req = post(1, "/echo", b"middle");
    let params = req.params_stream();
    let mut wire = req.encode_begin();
    fcgi::encode_record(&mut wire, rtype::PARAMS, 1, &params[..10]);
    conn.send(&wire);
    conn.send(&q);
    let r = conn.next_record();
    assert_eq!(r.rtype, rtype::GET_VALUES_RESULT, "{r:?}");
    assert_eq!(r.values()["FCGI_MAX_REQS"], "185");
    let mut wire = record(rtype::PARAMS, 1, &params[10..]);
    wire.extend(record(rtype::PARAMS, 1, &[]));
    wire.extend(record(rtype::STDIN, 1, b"middle"));
    conn.send(&wire);
    // ...and while the handler waits for the rest of its body.
    conn.send(&q);
    let mut c = Collector::default();
    loop {
        let r = conn.next_record();
        if r.rtype == rtype::GET_VALUES_RESULT {
            assert_eq!(r.values()["FCGI_MPXS_CONNS"], "1");
            break;
        }
        c.feed(r);
    }
    conn.send(&record(rtype::STDIN, 1, &[]));
    conn.collect_into(&mut c, &[1]).unwrap();
    let resp = c.take(1).assert_complete();
    assert_eq!(resp.body, b"middle");

    // An empty GET_VALUES gets an empty answer.
    let mut e = Vec::new();
    fcgi::encode_get_values(&mut e, &[]);
    conn.send(&e);
    let r = conn.next_record();
    assert_eq!(r.rtype, rtype::GET_VALUES_RESULT);
    assert!(r.values().is_empty());
}

#[test]
fn unknown_management_type_gets_unknown_type() {
    let engine = Engine::start(&[]);
    let mut conn = engine.connect();
    for t in [12u8, 99, 255] {
        conn.send(&record(t, 0, b"whatever"));
        let r = conn.next_record();
        assert_eq!(r.rtype, rtype::UNKNOWN_TYPE, "answer to type {t}: {r:?}");
        assert_eq!(r.id, 0);
        assert_eq!(r.content.len(), 8);
        assert_eq!(r.content[0], t);
        assert_eq!(&r.content[1..], &[0; 7]);
    }
    assert_hello(&conn.request(&get(1, "/hello")));
}

#[test]
fn other_roles_get_unknown_role() {
    let engine = Engine::start(&[]);
    let mut conn = engine.connect();
    for (id, r) in [(1u16, role::AUTHORIZER), (2, role::FILTER), (3, 77)] {
        let mut wire = Vec::new();
        fcgi::encode_begin_request(&mut wire, id, r, FLAG_KEEP_CONN);
        // A client sends its PARAMS and STDIN right behind BEGIN_REQUEST: they are ignored.
        let req = get(id, "/hello");
        for c in req.params_stream().chunks(50) {
            fcgi::encode_record(&mut wire, rtype::PARAMS, id, c);
        }
        wire.extend(record(rtype::PARAMS, id, &[]));
        wire.extend(record(rtype::STDIN, id, b"data"));
        wire.extend(record(rtype::DATA, id, b"filter data"));
        wire.extend(record(rtype::STDIN, id, &[]));
        conn.send(&wire);
        let r = conn.next_record();
        assert_eq!(r.id, id, "{r:?}");
        let end = r
            .end()
            .unwrap_or_else(|| panic!("END_REQUEST expected, got {r:?}"));
        assert_eq!(
            end.protocol_status,
            protocol_status::UNKNOWN_ROLE,
            "role {r:?}"
        );
        // Nothing else about that id follows.
        conn.barrier();
    }
    assert_hello(&conn.request(&get(1, "/hello")));
    assert_hello(&conn.request(&get(2, "/hello")));

    // Without keep-conn the refusal closes the connection, cleanly.
    let mut conn = engine.connect();
    let mut wire = Vec::new();
    fcgi::encode_begin_request(&mut wire, 1, role::AUTHORIZER, 0);
    conn.send(&wire);
    let end = conn.next_record().end().expect("END_REQUEST");
    assert_eq!(end.protocol_status, protocol_status::UNKNOWN_ROLE);
    assert_eq!(conn.expect_closed(), Closed::Eof);
}

#[test]
fn abort_request_ends_it_promptly_and_connection_survives() {
    let engine = Engine::start(&[]);
    let mut conn = engine.connect();

    // A running handler.
    // GET_VALUES right behind the request: its answer proves the engine has read the request
    // (records are handled in order) and started its handler.
    conn.send(&get(1, "/sleep?ms=5000").encode());
    conn.barrier();
    let aborted_at = Instant::now();
    conn.send(&record(rtype::ABORT_REQUEST, 1, &[]));
    let mut c = conn.collect(&[1]);
    let took = aborted_at.elapsed();
    assert!(
        took < Duration::from_millis(4000),
        "END_REQUEST took {took:?} after ABORT_REQUEST: the handler was not cancelled"
    );
    let r = c.take(1);
    assert!(r.end.is_some());
    assert_eq!(r.after_end, 0);

    // The same id and the connection are reusable.
    assert_hello(&conn.request(&get(1, "/hello")));

    // Abort while the PARAMS are still arriving.
    let req = get(2, "/hello");
    let mut wire = req.encode_begin();
    fcgi::encode_record(&mut wire, rtype::PARAMS, 2, &req.params_stream()[..20]);
    wire.extend(record(rtype::ABORT_REQUEST, 2, &[]));
    conn.send(&wire);
    let r = conn.collect(&[2]).take(2);
    assert!(r.end.is_some());

    // Abort of an id that is not active is ignored.
    conn.send(&record(rtype::ABORT_REQUEST, 9, &[]));
    conn.barrier();
    assert_hello(&conn.request(&get(2, "/hello")));
    assert_hello(&conn.request(&get(1, "/hello")));
}

#[test]
fn keep_conn_on_reuses_id_1_and_off_closes_cleanly() {
    let engine = Engine::start(&[]);
    let mut conn = engine.connect();
    for i in 0..100 {
        let req = if i % 2 == 0 {
            get(1, "/hello")
        } else {
            post(1, "/echo", format!("request {i}").as_bytes())
        };
        let resp = conn.request(&req).assert_complete();
        assert_eq!(resp.status, 200);
        if i % 2 == 1 {
            assert_eq!(resp.body, format!("request {i}").as_bytes());
        }
    }
    // The last request without keep-conn: answered, then an orderly close (no reset).
    let resp = conn
        .request(&post(1, "/echo", b"last").keep(false))
        .assert_complete();
    assert_eq!(resp.body, b"last");
    assert_eq!(conn.expect_closed(), Closed::Eof);

    // Keep-conn off from the first request.
    for route in ["/hello", "/env", "/status/204", "/nope"] {
        let mut conn = engine.connect();
        conn.request(&get(1, route).keep(false)).assert_complete();
        assert_eq!(conn.expect_closed(), Closed::Eof, "{route}");
    }
    // Over a Unix socket too.
    let unix = Engine::start_unix(&[]);
    let mut conn = unix.connect();
    for _ in 0..10 {
        assert_hello(&conn.request(&get(1, "/hello")));
    }
    assert_hello(&conn.request(&get(1, "/hello").keep(false)));
    assert_eq!(conn.expect_closed(), Closed::Eof);
}

#[test]
fn every_response_has_status_header_block_empty_stdout_and_end_request() {
    let engine = Engine::start(&[]);
    let mut conn = engine.connect();
    let cases: Vec<(Req, u16)> = vec![
        (get(1, "/hello"), 200),
        (post(1, "/echo", b""), 200),
        (post(1, "/echo", &[7u8; 70_000]), 200),
        (get(1, "/env"), 200),
        (get(1, "/status/204"), 204),
        (get(1, "/status/302"), 302),
        (get(1, "/nope"), 404),
        (get(1, "/sleep?ms=1"), 200),
        (get(1, "/stream?bytes=0"), 200),
        (get(1, "/stream?bytes=300000&chunk=200000"), 200),
        (get(1, "/stream?bytes=65535&chunk=65535"), 200),
    ];
    for (req, status) in &cases {
        let reply = conn.request(req);
        let resp = reply.assert_complete();
        assert_eq!(resp.status, *status, "{:?}", req.params);
        assert!(
            reply.stdout.starts_with(b"Status: "),
            "STDOUT starts with the Status line"
        );
        if let Some(len) = resp.header("Content-Length") {
            assert_eq!(len.parse::<usize>().unwrap(), resp.body.len());
        }
        conn.barrier();
    }
}

#[test]
fn handler_status_503_comes_back_as_503() {
    let engine = Engine::start(&[]);
    let mut conn = engine.connect();
    let resp = conn.request(&get(1, "/app/status/503")).assert_complete();
    assert_eq!(resp.status, 503);
    assert!(resp.body.is_empty());
    let resp = conn.request(&get(1, "/status/503")).assert_complete();
    assert_eq!(resp.status, 503);
}

/// Sends `req`'s head, then `body` in 65535-byte STDIN records from another thread while this
/// thread collects the reply (neither side can block the other).
fn post_concurrently(conn: &mut fcgi_client::Conn, req: &Req, body: Vec<u8>) -> fcgi_client::Reply {
    let mut wsock = conn.sock().try_clone().expect("clone socket");
    let head = req.encode_head();
    let id = req.id;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        wsock.write_all(&head)?;
        let mut rec = Vec::with_capacity(fcgi::MAX_RECORD_LEN);
        for chunk in body.chunks(fcgi::MAX_CONTENT_LEN) {
            rec.clear();
            fcgi::encode_record(&mut rec, rtype::STDIN, id, chunk);
            wsock.write_all(&rec)?;
        }
        wsock.write_all(&record(rtype::STDIN, id, &[]))
    });
    let reply = conn.collect(&[id]).take(id);
    writer.join().unwrap().expect("sending the body");
    reply
}

#[test]
fn echo_10_mib_integrity_tcp_and_unix() {
    let body = random_bytes(10 * MIB, 42);
    for engine in [Engine::start(&[]), Engine::start_unix(&[])] {
        let mut conn = engine.connect();
        let req = post(1, "/echo", &body).body(b"");
        let reply = post_concurrently(&mut conn, &req, body.clone());
        let resp = reply.assert_complete();
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("Content-Type"),
            Some("application/octet-stream")
        );
        assert_eq!(resp.body.len(), body.len());
        assert!(resp.body == body, "echoed body differs");
        assert_hello(&conn.request(&get(1, "/hello")));
    }
}

#[test]
fn stream_50_mib_in_1_mib_chunks() {
    let engine = Engine::start(&[]);
    let mut conn = engine.connect();
    let total = 50 * MIB;
    let reply = conn.request(&get(1, &format!("/stream?bytes={total}&chunk={MIB}")));
    let resp = reply.assert_complete();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), total);
    let pattern: Vec<u8> = (0..26 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    for (n, chunk) in resp.body.chunks(pattern.len()).enumerate() {
        assert!(
            chunk == &pattern[..chunk.len()],
            "pattern broken in block {n} (offset {})",
            n * pattern.len()
        );
    }
    assert!(reply.stdout_records >= total / fcgi::MAX_CONTENT_LEN);
    assert_hello(&conn.request(&get(1, "/hello")));
}

#[test]
fn content_length_absent_empty_or_wrong_reads_all_of_stdin() {
    let engine = Engine::start(&[]);
    let mut conn = engine.connect();
    let body = random_bytes(200_000, 7);
    for cl in [
        None,
        Some(""),
        Some("10"),
        Some("0"),
        Some("5000000"),
        Some("junk"),
    ] {
        let mut req = post(1, "/echo", &body);
        req = match cl {
            None => req.without("CONTENT_LENGTH"),
            Some(v) => req.param("CONTENT_LENGTH", v),
        };
        let resp =
            post_concurrently(&mut conn, &req.clone().body(b""), body.clone()).assert_complete();
        assert_eq!(resp.status, 200, "CONTENT_LENGTH {cl:?}");
        assert!(
            resp.body == body,
            "CONTENT_LENGTH {cl:?}: got {} bytes back, sent {}",
            resp.body.len(),
            body.len()
        );
    }
    // Chunked-style: STDIN in uneven records with the stream end alone.
    let req = post(1, "/echo", b"").without("CONTENT_LENGTH");
    let mut wire = req.encode_head();
    for c in body.chunks(7777) {
        wire.extend(record(rtype::STDIN, 1, c));
    }
    wire.extend(record(rtype::STDIN, 1, &[]));
    conn.send(&wire);
    let resp = conn.collect(&[1]).take(1).assert_complete();
    assert!(resp.body == body);
}

#[test]
fn params_pairs_straddling_records() {
    let engine = Engine::start(&[]);
    let mut conn = engine.connect();
    let long_value = "v".repeat(300); // 4-byte length encoding
    let long_name = format!("HTTP_X_{}", "N".repeat(200));
    let req = get(1, "/env")
        .param("HTTP_X_LONG", &long_value)
        .param(&long_name, "short")
        .param("HTTP_X_EMPTY", "")
        .param("HTTP_X_UTF8", "café ☕");
    for chunk in [1usize, 7, 128, 65535] {
        conn.send(&req.encode_head_chunked(chunk));
        conn.send(&record(rtype::STDIN, 1, &[]));
        let resp = conn.collect(&[1]).take(1).assert_complete();
        let env = env_map(&resp.body);
        for (n, v) in &req.params {
            let n = std::str::from_utf8(n).unwrap();
            assert_eq!(
                env.get(n).map(String::as_bytes),
                Some(v.as_slice()),
                "{n} with PARAMS records of {chunk} bytes"
            );
        }
        assert_eq!(env.len(), req.params.len(), "chunk {chunk}");
    }
    // Any padding (0-255) on every record, the stream split into 5-byte records.
    let mut wire = Vec::new();
    let padded = |wire: &mut Vec<u8>, t: u8, content: &[u8], pad: u8| {
        let len = (content.len() as u16).to_be_bytes();
        wire.extend([1, t, 0, 1, len[0], len[1], pad, 0]);
        wire.extend(content);
        wire.extend(std::iter::repeat_n(0xEE, pad as usize));
    };
    padded(
        &mut wire,
        rtype::BEGIN_REQUEST,
        &[0, 1, 1, 0, 0, 0, 0, 0],
        255,
    );
    let req = post(1, "/echo", b"padded body");
    for (i, c) in req.params_stream().chunks(5).enumerate() {
        padded(&mut wire, rtype::PARAMS, c, (i * 37 % 256) as u8);
    }
    padded(&mut wire, rtype::PARAMS, &[], 3);
    padded(&mut wire, rtype::STDIN, b"padded ", 200);
    padded(&mut wire, rtype::STDIN, b"body", 1);
    padded(&mut wire, rtype::STDIN, &[], 255);
    conn.send(&wire);
    let resp = conn.collect(&[1]).take(1).assert_complete();
    assert_eq!(resp.body, b"padded body");
}

#[test]
fn params_over_max_params_bytes_gets_431_and_others_survive() {
    let engine = Engine::start(&["--max-params-bytes", "2048"]);
    let mut conn = engine.connect();
    conn.send(&get(1, "/sleep?ms=300").encode());
    let big = get(2, "/hello").param("HTTP_X_BIG", &"x".repeat(4000));
    let mut wire = big.encode_head_chunked(1000);
    wire.extend(record(rtype::STDIN, 2, b"ignored"));
    wire.extend(record(rtype::STDIN, 2, &[]));
    conn.send(&wire);
    let mut c = conn.collect(&[1, 2]);
    let r2 = c.take(2).assert_complete();
    assert_eq!(r2.status, 431);
    let r1 = c.take(1).assert_complete();
    assert_eq!(r1.status, 200);
    assert_eq!(r1.body, b"slept 300 ms\n");
    conn.barrier();
    // The connection and the refused id are usable again.
    assert_hello(&conn.request(&get(2, "/hello")));
    // Just under the limit still works.
    let near = get(3, "/hello").param("HTTP_X_PAD", &"p".repeat(1200));
    assert_hello(&conn.request(&near));
}

#[test]
fn past_max_reqs_per_conn_gets_overloaded() {
    let engine = Engine::start(&["--max-reqs-per-conn", "3"]);
    let mut conn = engine.connect();
    // Three echoes in flight, their bodies still open.
    let mut wire = Vec::new();
    for id in 1..=3u16 {
        wire.extend(
            post(id, "/echo", b"")
                .without("CONTENT_LENGTH")
                .encode_head(),
        );
    }
    conn.send(&wire);
    // A fourth gets FCGI_OVERLOADED, whatever else it sends.
    conn.send(&get(4, "/hello").encode());
    let mut c = conn.collect(&[4]);
    let r4 = c.take(4);
    assert_eq!(r4.end.unwrap().protocol_status, protocol_status::OVERLOADED);
    assert!(r4.stdout.is_empty());
    for id in 1..=3 {
        assert!(c.replies.get(&id).and_then(|r| r.end).is_none());
    }
    // The three finish normally.
    let mut wire = Vec::new();
    for id in 1..=3u16 {
        wire.extend(record(rtype::STDIN, id, format!("body {id}").as_bytes()));
        wire.extend(record(rtype::STDIN, id, &[]));
    }
    conn.send(&wire);
    conn.collect_into(&mut c, &[1, 2, 3]).unwrap();
    for id in 1..=3u16 {
        let resp = c.take(id).assert_complete();
        assert_eq!(resp.body, format!("body {id}").as_bytes());
    }
    // With room again, id 4 is served.
    assert_hello(&conn.request(&get(4, "/hello")));
}

/// A connection that got a hello served: retried while the engine still counts connections that
/// were just closed (the startup probe, or one the test dropped) against `--max-conns`.
fn admitted(engine: &Engine) -> fcgi_client::Conn {
    for _ in 0..100 {
        let mut c = engine.connect();
        c.send(&get(1, "/hello").encode());
        if let Ok(mut col) = c.try_collect(&[1]) {
            let r = col.take(1);
            if r.end.unwrap().protocol_status == protocol_status::REQUEST_COMPLETE {
                assert_hello(&r);
                return c;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no connection slot became free");
}

#[test]
fn past_max_conns_with_every_connection_busy_gets_overloaded() {
    let engine = Engine::start(&["--max-conns", "2"]);
    // Both have a request in flight, so neither can be closed to make room (an idle one would
    // be: tests/max_conns.rs). `a` is busy before `b` is admitted, so that the engine's count of
    // the start-up probe cannot make it close `a` for `b`.
    let mut a = admitted(&engine);
    a.send(&get(2, "/sleep?ms=3000").encode());
    let mut b = admitted(&engine);
    b.send(&get(2, "/sleep?ms=3000").encode());
    // Time for both to be read and started, even on a loaded machine.
    std::thread::sleep(Duration::from_millis(1000));
    // A third connection is accepted, but its request is refused and the connection closed.
    let mut c = engine.connect();
    c.send(&get(1, "/hello").encode());
    let r = c.collect(&[1]).take(1);
    assert_eq!(r.end.unwrap().protocol_status, protocol_status::OVERLOADED);
    assert!(r.stdout.is_empty());
    assert_eq!(c.expect_closed(), Closed::Eof);
    drop(c);
    // The first two are unaffected; once one closes there is room again.
    for conn in [&mut a, &mut b] {
        let r = conn.collect(&[2]).take(2);
        assert_eq!(
            r.end.unwrap().protocol_status,
            protocol_status::REQUEST_COMPLETE
        );
    }
    drop(a);
    drop(b);
    let _d = admitted(&engine);
}

#[test]
fn records_for_finished_ids_are_ignored() {
    let engine = Engine::start(&[]);
    let mut conn = engine.connect();
    assert_hello(&conn.request(&get(1, "/hello")));
    let mut wire = Vec::new();
    for id in [1u16, 42] {
        wire.extend(record(rtype::PARAMS, id, b"\x01\x01AB"));
        wire.extend(record(rtype::PARAMS, id, &[]));
        wire.extend(record(rtype::STDIN, id, b"late body"));
        wire.extend(record(rtype::STDIN, id, &[]));
        wire.extend(record(rtype::DATA, id, b"data"));
        wire.extend(record(rtype::ABORT_REQUEST, id, &[]));
    }
    conn.send(&wire);
    conn.barrier();
    assert_hello(&conn.request(&get(1, "/hello")));
    let resp = conn.request(&post(42, "/echo", b"fresh")).assert_complete();
    assert_eq!(resp.body, b"fresh");
}

#[test]
fn garbage_closes_the_connection_and_the_engine_serves_on() {
    let mut engine = Engine::start(&[]);
    let mut bad_version = vec![2u8, rtype::BEGIN_REQUEST, 0, 1, 0, 8, 0, 0];
    bad_version.extend([0, 1, 1, 0, 0, 0, 0, 0]);
    let bad_begin_len = vec![1u8, rtype::BEGIN_REQUEST, 0, 1, 0, 3, 0, 0, 0, 1, 1];
    let mgmt_with_id = record(rtype::GET_VALUES, 5, &[]);
    let stdin_id_0 = record(rtype::STDIN, 0, b"x");
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        (
            "HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("version 2", bad_version.clone()),
        ("BEGIN_REQUEST of 3 bytes", bad_begin_len),
        ("GET_VALUES with id 5", mgmt_with_id),
        ("STDIN with id 0", stdin_id_0),
    ];
    for (what, bytes) in &garbage {
        let mut conn = engine.connect();
        conn.send(bytes);
        let closed = conn.expect_closed();
        assert!(matches!(closed, Closed::Eof | Closed::Reset), "{what}");
        assert_hello(&engine.connect().request(&get(1, "/hello")));
    }
    // Garbage after a good request on a keep-conn connection, with another request in flight.
    let mut conn = engine.connect();
    assert_hello(&conn.request(&get(1, "/hello")));
    conn.send(&bad_version);
    let mut c = Collector::default();
    loop {
        match conn.read_record() {
            Ok(Some(r)) => c.feed(r),
            Ok(None) => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("expected close after garbage: {e}"),
        }
    }
    assert!(engine.is_running());
    let mut conn = engine.connect();
    for id in 1..=3 {
        assert_hello(&conn.request(&get(id, "/hello")));
    }
}

#[test]
fn two_hundred_concurrent_connections() {
    let engine = Engine::start(&[]);
    let mut conns: Vec<_> = (0..200).map(|_| engine.connect()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(&get(1 + (i % 7) as u16, "/hello").keep(i % 2 == 0).encode());
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let id = 1 + (i % 7) as u16;
        assert_hello(&c.collect(&[id]).take(id));
        if i % 2 == 1 {
            assert_eq!(c.expect_closed(), Closed::Eof);
        }
    }
    // The kept ones still work.
    for c in conns.iter_mut().step_by(2) {
        assert_hello(&c.request(&get(1, "/hello")));
    }
}

#[test]
fn sigterm_finishes_in_flight_request_then_exits_0() {
    let mut engine = Engine::start(&["--shutdown-timeout", "20"]);
    let mut conn = engine.connect();
    conn.send(&get(1, "/sleep?ms=1000").encode());
    // The barrier's answer proves the request was read and its handler started.
    conn.barrier();
    engine.signal(libc::SIGTERM);
    let resp = conn.collect(&[1]).take(1).assert_complete();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"slept 1000 ms\n");
    // Stopping: a keep-conn connection is closed once idle.
    assert_eq!(conn.expect_closed(), Closed::Eof);
    let status = engine
        .wait_exit(Duration::from_secs(20))
        .expect("engine exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let err = engine
        .addr()
        .connect()
        .expect_err("connections are refused after the stop");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let engine = Engine::start(&["--idle-timeout", "1"]);
    let mut used = engine.connect();
    assert_hello(&used.request(&get(1, "/hello")));
    let served_at = Instant::now();
    let mut silent = engine.connect();
    let connected_at = Instant::now();

    assert_eq!(used.expect_closed(), Closed::Eof);
    let idle = served_at.elapsed();
    assert!(
        idle >= Duration::from_millis(900),
        "closed after {idle:?}, before the 1 s idle timeout"
    );
    assert_eq!(silent.expect_closed(), Closed::Eof);
    assert!(connected_at.elapsed() >= Duration::from_millis(900));

    // A connection that keeps working is not closed by the timer.
    let mut busy = engine.connect();
    for _ in 0..4 {
        assert_hello(&busy.request(&get(1, "/hello")));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_hello(&busy.request(&get(1, "/hello")));
    busy.sock().shutdown(Shutdown::Both).unwrap();
}
