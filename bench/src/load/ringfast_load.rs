//! ringfast-load's command line and JSON result (see the loadgen contract).

use std::path::Path;

use serde::Deserialize;

use super::{Latency, LoadResult, LoadSpec};
use crate::error::BenchError;

/// Arguments for one run; the load generator runs on one thread (it has one CPU).
pub fn args(spec: &LoadSpec, json: &Path) -> Vec<String> {
    let mut a = vec![
        "-c".to_string(),
        spec.connections.to_string(),
        "-d".into(),
        format!("{}", spec.duration),
        "--warmup".into(),
        format!("{}", spec.warmup),
        "-t".into(),
        "1".into(),
        "--json".into(),
        json.display().to_string(),
        "--quiet".into(),
    ];
    if let Some(rate) = spec.rate {
        a.push("--rate".into());
        a.push(format!("{rate:.0}"));
    }
    if !spec.keepalive {
        a.push("--no-keepalive".into());
    }
    if spec.mux > 1 {
        a.push("--mux".into());
        a.push(spec.mux.to_string());
    }
    for p in &spec.params {
        a.push("--param".into());
        a.push(p.clone());
    }
    if let Some(body) = &spec.expect_body {
        a.push("--expect-body".into());
        a.push(body.clone());
    }
    a.push(spec.target.clone());
    a
}

#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    connect: u64,
    #[serde(default)]
    protocol: u64,
    #[serde(default)]
    timeout: u64,
    #[serde(default)]
    status: u64,
    #[serde(default)]
    body: u64,
}

/// Latency fields; `null` (no sample) reads as NaN, which the statistics skip.
#[derive(Deserialize)]
struct Lat {
    mean: Option<f64>,
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    p99_9: Option<f64>,
    max: Option<f64>,
}

#[derive(Deserialize)]
struct Raw {
    version: u32,
    duration_s: f64,
    requests: u64,
    errors: Errors,
    rps: f64,
    latency_us: Lat,
}

/// Parses the JSON object ringfast-load writes with `--json`.
pub fn parse(text: &str) -> Result<LoadResult, BenchError> {
    let bad = |detail: String| BenchError::Parse {
        client: "ringfast-load".into(),
        detail,
    };
    let raw: Raw = serde_json::from_str(text).map_err(|e| {
        // Show the text around the error (the result is one long line).
        let at = if e.line() == 1 { e.column() } else { 0 };
        let near = text
            .get(at.saturating_sub(80)..(at + 40).min(text.len()))
            .unwrap_or_default();
        bad(format!("{e}, near: {near}"))
    })?;
    if raw.version != 1 {
        return Err(bad(format!("unknown result version {}", raw.version)));
    }
    if !(raw.rps.is_finite() && raw.duration_s.is_finite() && raw.duration_s >= 0.0) {
        return Err(bad("non-finite rps or duration".into()));
    }
    let e = raw.errors;
    let l = raw.latency_us;
    Ok(LoadResult {
        requests: raw.requests,
        errors: e.connect + e.protocol + e.timeout + e.status + e.body,
        rps: raw.rps,
        duration_s: raw.duration_s,
        latency_us: Latency {
            mean: l.mean.unwrap_or(f64::NAN),
            p50: l.p50.unwrap_or(f64::NAN),
            p90: l.p90.unwrap_or(f64::NAN),
            p99: l.p99.unwrap_or(f64::NAN),
            p99_9: l.p99_9.unwrap_or(f64::NAN),
            max: l.max.unwrap_or(f64::NAN),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "version": 1, "target": "fcgi://127.0.0.1:9000/hello", "protocol": "fcgi",
      "transport": "tcp", "model": "open", "connections": 16, "mux": 1, "keepalive": true,
      "threads": 1, "target_rps": 5000.0, "duration_s": 2.001, "requests": 10000,
      "errors": { "connect": 1, "protocol": 0, "timeout": 2, "status": 0, "body": 3 },
      "rps": 4997.5, "bytes_sent": 10, "bytes_received": 20,
      "latency_us": { "min": 10.0, "mean": 55.5, "stdev": 3.0, "p50": 50.0, "p90": 80.0,
                      "p99": 120.0, "p99_9": 300.0, "p99_99": 400.0, "max": 900.0 },
      "histogram": { "encoding": "hdrhistogram-v2-deflate-base64", "unit": "us", "data": "AAA=" },
      "buckets": [ { "le_us": 100.0, "count": 10 } ]
    }"#;

    #[test]
    fn parses_the_contract_layout() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.requests, 10000);
        assert_eq!(r.errors, 6);
        assert_eq!(r.rps, 4997.5);
        assert_eq!(r.latency_us.p99, 120.0);
        assert_eq!(r.latency_us.p99_9, 300.0);
    }

    #[test]
    fn null_latencies_read_as_nan() {
        let r = parse(&SAMPLE.replace("\"p99\": 120.0", "\"p99\": null")).unwrap();
        assert!(r.latency_us.p99.is_nan());
        assert_eq!(r.latency_us.p50, 50.0);
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        assert!(parse(&SAMPLE.replace("\"version\": 1", "\"version\": 2")).is_err());
        assert!(parse("{}").is_err());
        assert!(parse("not json").is_err());
    }

    #[test]
    fn builds_the_command_line() {
        let spec = LoadSpec {
            target: "fcgi+unix:/tmp/a.sock:/hello".into(),
            connections: 32,
            duration: 2.0,
            warmup: 0.5,
            rate: Some(12345.4),
            keepalive: false,
            mux: 1,
            params: vec!["SCRIPT_FILENAME=/x.php".into()],
            expect_body: Some("Hello, World!".into()),
        };
        let a = args(&spec, Path::new("/tmp/r.json")).join(" ");
        assert_eq!(
            a,
            "-c 32 -d 2 --warmup 0.5 -t 1 --json /tmp/r.json --quiet --rate 12345 --no-keepalive \
             --param SCRIPT_FILENAME=/x.php --expect-body Hello, World! fcgi+unix:/tmp/a.sock:/hello"
        );
        let mux = LoadSpec {
            connections: 16,
            rate: None,
            keepalive: true,
            mux: 8,
            params: vec![],
            expect_body: None,
            ..spec
        };
        let a = args(&mux, Path::new("/tmp/r.json")).join(" ");
        assert!(a.starts_with("-c 16 ") && a.contains(" --mux 8 "), "{a}");
    }
}
