//! ringfast-load against the real engine (`ringfast --app diag`): every protocol and connection
//! model, bodies both ways, wrong answers counted as errors, and the open loop (it keeps its
//! rate; a stalled server shows up as the stall, from the intended send time).

mod support;

use support::{load, Addr, Engine, TempDir};

const HELLO: &str = "Hello, World!";

/// An engine serving FastCGI (TCP and Unix), SCGI and AJP.
struct Servers {
    _dir: TempDir,
    _engine: Engine,
    fcgi: Addr,
    fcgi_unix: Addr,
    scgi: Addr,
    scgi_unix: Addr,
    ajp: Addr,
    ajp_unix: Addr,
}

fn servers() -> Servers {
    let dir = TempDir::new("engine");
    let fcgi = Addr::loopback();
    let fcgi_unix = Addr::Unix(dir.join("fcgi.sock"));
    let scgi = Addr::loopback();
    let scgi_unix = Addr::Unix(dir.join("scgi.sock"));
    let ajp = Addr::loopback();
    let ajp_unix = Addr::Unix(dir.join("ajp.sock"));
    let engine = Engine::diag(
        &dir,
        &[
            ("--fastcgi", &fcgi),
            ("--fastcgi", &fcgi_unix),
            ("--scgi", &scgi),
            ("--scgi", &scgi_unix),
            ("--ajp", &ajp),
            ("--ajp", &ajp_unix),
        ],
    );
    Servers {
        _dir: dir,
        _engine: engine,
        fcgi,
        fcgi_unix,
        scgi,
        scgi_unix,
        ajp,
        ajp_unix,
    }
}

fn closed(target: &str, extra: &[&str]) -> support::Run {
    let mut args = vec!["-n", "300", "--warmup", "0.1", "-c", "4", "-t", "2"];
    args.extend_from_slice(extra);
    args.push(target);
    load(&args)
}

#[test]
fn every_protocol_keepalive_closed_loop() {
    let s = servers();
    for (scheme, addr) in [
        ("fcgi", &s.fcgi),
        ("fcgi", &s.fcgi_unix),
        ("scgi", &s.scgi),
        ("scgi", &s.scgi_unix),
        ("ajp", &s.ajp),
        ("ajp", &s.ajp_unix),
    ] {
        let target = addr.target(scheme, "/hello");
        let run = closed(&target, &["--expect-body", HELLO]);
        run.assert_clean(300);
        assert_eq!(run.json["protocol"], scheme);
        assert_eq!(run.json["model"], "closed");
        assert_eq!(run.json["keepalive"], scheme != "scgi", "{target}");
        assert!(run.u64("bytes_received") >= 300 * HELLO.len() as u64);
        assert!(run.latency("p50") > 0.0 && run.latency("max") >= run.latency("p99"));
    }
}

#[test]
fn a_connection_per_request() {
    let s = servers();
    for (scheme, addr) in [
        ("fcgi", &s.fcgi),
        ("fcgi", &s.fcgi_unix),
        ("ajp", &s.ajp),
        ("ajp", &s.ajp_unix),
    ] {
        let target = addr.target(scheme, "/hello");
        let run = closed(&target, &["--no-keepalive", "--expect-body", HELLO]);
        run.assert_clean(300);
        assert_eq!(run.json["keepalive"], false);
    }
}

#[test]
fn fastcgi_multiplexing() {
    let s = servers();
    let target = s.fcgi.target("fcgi", "/hello");
    let run = load(&[
        "-n",
        "300",
        "--warmup",
        "0.1",
        "-c",
        "2",
        "-t",
        "1",
        "--mux",
        "8",
        "--expect-body",
        HELLO,
        &target,
    ]);
    run.assert_clean(300);
    assert_eq!(run.u64("mux"), 8);
}

#[test]
fn request_bodies_are_sent_and_echoed() {
    let s = servers();
    // 100 000 bytes: several FastCGI STDIN records, GET_BODY_CHUNK rounds in AJP.
    let body: String = "abcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .cycle()
        .take(100_000)
        .collect();
    for (scheme, addr) in [("fcgi", &s.fcgi), ("scgi", &s.scgi), ("ajp", &s.ajp)] {
        let target = addr.target(scheme, "/echo");
        let run = load(&[
            "-n",
            "40",
            "--warmup",
            "0",
            "-c",
            "2",
            "-t",
            "1",
            "-m",
            "POST",
            "--body-size",
            "100000",
            "--expect-body",
            &body,
            &target,
        ]);
        run.assert_clean(40);
        assert!(run.u64("bytes_sent") >= 40 * 100_000, "{target}");
    }
}

#[test]
fn wrong_answers_are_errors_not_successes() {
    let s = servers();
    let hello = s.fcgi.target("fcgi", "/hello");
    let run = closed(&hello, &["--expect-body", "Goodbye"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.u64("requests"), 0);
    assert_eq!(run.errors("body"), 300);
    let missing = s.ajp.target("ajp", "/status/503");
    let run = closed(&missing, &[]);
    assert_eq!(run.u64("requests"), 0);
    assert_eq!(run.errors("status"), 300);
    let run = closed(&missing, &["--expect-status", "503"]);
    run.assert_clean(300);
}

#[test]
fn timeouts_are_counted() {
    let s = servers();
    let slow = s.fcgi.target("fcgi", "/sleep?ms=2000");
    let run = load(&[
        "-d",
        "1",
        "--warmup",
        "0",
        "-c",
        "2",
        "-t",
        "1",
        "--timeout",
        "0.3",
        &slow,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.u64("requests"), 0);
    assert!(run.errors("timeout") >= 2, "{}", run.json);
}

#[test]
fn exit_status_for_unreachable_and_bad_usage() {
    let dir = TempDir::new("unreachable");
    let nobody = Addr::Unix(dir.join("nobody.sock")).target("fcgi", "/");
    let run = load(&["-d", "0.3", "--warmup", "0", "-c", "1", &nobody]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.errors("connect") > 0);
    assert!(
        run.stderr.contains("could never be reached"),
        "{}",
        run.stderr
    );
    assert_eq!(load(&["--mux", "2", "http://127.0.0.1:1/"]).code, 2);
    assert_eq!(load(&["ftp://127.0.0.1:1/"]).code, 2);
}

#[test]
fn open_loop_keeps_its_rate() {
    let s = servers();
    let target = s.fcgi.target("fcgi", "/hello");
    let run = load(&[
        "--rate", "400", "-d", "2", "--warmup", "0.3", "-c", "8", "-t", "2", &target,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.total_errors(), 0, "{}", run.json);
    assert_eq!(run.json["model"], "open");
    assert_eq!(run.f64("target_rps"), 400.0);
    let rps = run.f64("rps");
    // 800 requests are scheduled in the window; allow for the edges of a noisy machine. A closed
    // loop against this server runs far faster (see every_protocol_keepalive_closed_loop), so
    // a rate near 400 is the schedule at work.
    assert!((320.0..=440.0).contains(&rps), "rps {rps}: {}", run.json);
}

#[test]
fn a_stalled_server_shows_as_the_stall_not_the_service_time() {
    let s = servers();
    // Every request takes 200 ms; one connection is asked for 20 requests/s. The server can
    // serve 5/s, so requests queue behind each other: in open loop each latency counts the
    // time since the request was due, which grows through the run far past 200 ms. A closed
    // loop (one request at a time) sees only the 200 ms of service time.
    let target = s.fcgi.target("fcgi", "/sleep?ms=200");
    let open = load(&[
        "--rate", "20", "-d", "2", "--warmup", "0", "-c", "1", &target,
    ]);
    assert_eq!(open.code, 0, "{}", open.stderr);
    assert_eq!(open.total_errors(), 0, "{}", open.json);
    let closed = load(&["-d", "2", "--warmup", "0", "-c", "1", &target]);
    assert_eq!(closed.total_errors(), 0, "{}", closed.json);
    let served = closed.latency("p50");
    assert!(
        (190_000.0..400_000.0).contains(&served),
        "closed p50 {served}"
    );
    // After ~2 s the request due at t is served near 4t+0.2 s: the worst waits over a second.
    let stalled = open.latency("max");
    assert!(
        stalled > 1_000_000.0,
        "open-loop max {stalled} us: {}",
        open.json
    );
    assert!(open.latency("p50") > 2.0 * served, "{}", open.json);
    assert!(
        open.f64("rps") < 8.0,
        "the server could not keep up: {}",
        open.json
    );
}

#[test]
fn json_has_the_layout_the_bench_relies_on() {
    use base64::Engine as _;
    let s = servers();
    let target = s.fcgi.target("fcgi", "/hello?x=1");
    let run = closed(&target, &[]);
    run.assert_clean(300);
    let j = &run.json;
    assert_eq!(j["version"], 1);
    assert_eq!(j["target"], target.as_str());
    assert_eq!(j["protocol"], "fcgi");
    assert_eq!(j["transport"], "tcp");
    assert_eq!(j["model"], "closed");
    assert_eq!(j["connections"], 4);
    assert_eq!(j["mux"], 1);
    assert_eq!(j["keepalive"], true);
    assert_eq!(j["threads"], 2);
    assert!(j["target_rps"].is_null());
    assert!(run.f64("duration_s") > 0.0);
    let rps = run.f64("rps");
    assert!((rps - 300.0 / run.f64("duration_s")).abs() < 1e-6 * rps.max(1.0));
    assert!(run.u64("bytes_sent") > 0 && run.u64("bytes_received") > 0);
    for key in [
        "min", "mean", "stdev", "p50", "p90", "p99", "p99_9", "p99_99", "max",
    ] {
        assert!(j["latency_us"][key].is_f64(), "latency_us.{key} in {j}");
    }
    assert!(run.latency("min") <= run.latency("p50"));
    assert!(run.latency("p50") <= run.latency("p99") && run.latency("p99") <= run.latency("max"));
    let h = &j["histogram"];
    assert_eq!(h["encoding"], "hdrhistogram-v2-deflate-base64");
    assert_eq!(h["unit"], "us");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(h["data"].as_str().expect("histogram data"))
        .expect("base64");
    let hist: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &bytes[..])
        .expect("V2 deflate histogram");
    assert_eq!(hist.len(), 300);
    assert_eq!(hist.max() as f64, run.latency("max"));
    let buckets = j["buckets"].as_array().expect("buckets");
    let counted: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 300);
    assert!(buckets.iter().all(|b| b["le_us"].is_f64()));
}

#[test]
fn no_progress_line_outside_a_terminal() {
    let s = servers();
    let target = s.fcgi.target("fcgi", "/hello");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringfast-load"))
        .args(["-d", "1.5", "--warmup", "0", "-c", "1", &target])
        .output()
        .expect("run ringfast-load");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("req/s"), "{stdout}");
    assert!(
        !stdout.contains('\r') && !stderr.contains('\r'),
        "{stdout}{stderr}"
    );
}

#[test]
fn ajp_secret_and_packet_size() {
    let dir = TempDir::new("ajp-secret");
    let ajp = Addr::loopback();
    let _engine = Engine::diag_with(
        &dir,
        &[("--ajp", &ajp)],
        &["--ajp-secret", "s3cret", "--ajp-packet-size", "16384"],
    );
    let target = ajp.target("ajp", "/echo");
    let body: String = "abcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .cycle()
        .take(40_000)
        .collect();
    let base = [
        "-n",
        "50",
        "--warmup",
        "0",
        "-c",
        "2",
        "-t",
        "1",
        "-m",
        "POST",
        "--body-size",
        "40000",
        "--ajp-packet-size",
        "16384",
    ];
    let mut good = base.to_vec();
    good.extend(["--ajp-secret", "s3cret", "--expect-body", &body, &target]);
    load(&good).assert_clean(50);
    // Without the secret the engine answers 403.
    let mut bad = base.to_vec();
    bad.push(&target);
    let run = load(&bad);
    assert_eq!(run.u64("requests"), 0);
    assert_eq!(run.errors("status"), 50, "{}", run.json);
}

#[test]
fn sigint_stops_the_run_and_reports_it() {
    let s = servers();
    let target = s.fcgi.target("fcgi", "/hello");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ringfast-load"))
        .args([
            "-d", "60", "--warmup", "0", "-c", "2", "--json", "-", &target,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ringfast-load");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON result");
    assert_eq!(json["interrupted"], true);
    let duration = json["duration_s"].as_f64().unwrap();
    assert!((1.0..30.0).contains(&duration), "{json}");
    assert!(json["requests"].as_u64().unwrap() > 0, "{json}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("(interrupted)"));
}
