//! The result: JSON for the bench harness (layout in docs/loadgen.md) and a human summary.

use std::fmt::Write as _;

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::cli::Config;
use crate::run::Outcome;

/// Version of the JSON layout.
pub const JSON_VERSION: u32 = 1;

/// Bucket bounds per decade in the `buckets` array.
const BUCKETS_PER_DECADE: i32 = 10;

/// Successful requests per second.
fn rps(outcome: &Outcome) -> f64 {
    let secs = outcome.duration.as_secs_f64();
    if secs > 0.0 {
        outcome.stats.requests as f64 / secs
    } else {
        0.0
    }
}

/// The latency summary in microseconds.
fn latency(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({ "min": null, "mean": null, "stdev": null, "p50": null, "p90": null,
            "p99": null, "p99_9": null, "p99_99": null, "max": null });
    }
    let q = |p: f64| h.value_at_quantile(p) as f64;
    json!({
        "min": h.min() as f64, "mean": h.mean(), "stdev": h.stdev(),
        "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p99_9": q(0.999), "p99_99": q(0.9999),
        "max": h.max() as f64,
    })
}

/// Log-spaced buckets (`le_us` upper bounds, ten per decade from 1 µs) up to the maximum.
pub fn buckets(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    let mut out = Vec::new();
    if h.is_empty() {
        return out;
    }
    let mut low = 0u64;
    for k in 0.. {
        let bound = 10f64.powf(f64::from(k) / f64::from(BUCKETS_PER_DECADE));
        let high = bound.floor() as u64;
        if high <= low && k > 0 {
            continue;
        }
        let count = h.count_between(low + u64::from(low > 0), high.max(1));
        out.push((high as f64, count));
        low = high;
        if high >= h.max() {
            break;
        }
    }
    out
}

/// Coarse buckets for the text summary: upper bounds 1, 2, 5, 10, 20, 50, ... µs, from the
/// first non-empty one to the last.
fn coarse_buckets(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    if h.is_empty() {
        return out;
    }
    let mut low = 0u64;
    let mut decade = 1u64;
    'outer: loop {
        for step in [1, 2, 5] {
            let high = decade.saturating_mul(step);
            out.push((high, h.count_between(low + u64::from(low > 0), high)));
            low = high;
            if high >= h.max() {
                break 'outer;
            }
        }
        decade = decade.saturating_mul(10);
    }
    let first = out.iter().position(|&(_, c)| c > 0).unwrap_or(0);
    out.drain(..first);
    out
}

/// The raw histogram, V2 deflate encoded, base64.
fn serialized(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Serializing into a Vec cannot fail for a histogram of u64 counts.
    if V2DeflateSerializer::new().serialize(h, &mut bytes).is_err() {
        bytes.clear();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The JSON object of the contract.
pub fn json(config: &Config, outcome: &Outcome) -> Value {
    let s = &outcome.stats;
    let e = &s.errors;
    json!({
        "version": JSON_VERSION,
        "target": config.target.to_string(),
        "protocol": config.target.protocol.name(),
        "transport": config.target.transport(),
        "model": config.model(),
        "connections": config.connections,
        "mux": config.mux,
        "keepalive": config.keepalive,
        "threads": outcome.threads,
        "target_rps": config.rate,
        "duration_s": outcome.duration.as_secs_f64(),
        "interrupted": outcome.interrupted,
        "requests": s.requests,
        "errors": { "connect": e.connect, "protocol": e.protocol, "timeout": e.timeout,
                    "status": e.status, "body": e.body },
        "rps": rps(outcome),
        "bytes_sent": s.bytes_sent,
        "bytes_received": s.bytes_received,
        "latency_us": latency(&s.latency),
        "histogram": { "encoding": "hdrhistogram-v2-deflate-base64", "unit": "us",
                       "data": serialized(&s.latency) },
        "buckets": buckets(&s.latency).into_iter()
            .map(|(le, count)| json!({ "le_us": le, "count": count }))
            .collect::<Vec<_>>(),
    })
}

fn us(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.2}s", v / 1_000_000.0)
    } else if v >= 1000.0 {
        format!("{:.2}ms", v / 1000.0)
    } else {
        format!("{v:.0}us")
    }
}

/// The human summary.
pub fn summary(config: &Config, outcome: &Outcome) -> String {
    let s = &outcome.stats;
    let h = &s.latency;
    let mut out = String::new();
    let model = match config.rate {
        Some(rate) => format!("open loop at {rate} req/s"),
        None => "closed loop".to_string(),
    };
    let _ = writeln!(
        out,
        "ringfast-load {}: {model}, {} connections{}, {} threads, {}",
        config.target,
        config.connections,
        if config.mux > 1 {
            format!(" x mux {}", config.mux)
        } else {
            String::new()
        },
        outcome.threads,
        if config.keepalive {
            "keep-alive"
        } else {
            "a connection per request"
        },
    );
    let _ = writeln!(
        out,
        "  measured   {:.3} s after {:.1} s warm-up{}",
        outcome.duration.as_secs_f64(),
        config.warmup.as_secs_f64(),
        if outcome.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    let _ = write!(
        out,
        "  requests   {} ok, {:.1} req/s",
        s.requests,
        rps(outcome)
    );
    if let Some(rate) = config.rate {
        let _ = write!(out, " (target {rate})");
    }
    out.push('\n');
    let e = &s.errors;
    let _ = writeln!(
        out,
        "  errors     {} (connect {}, protocol {}, timeout {}, status {}, body {})",
        e.total(),
        e.connect,
        e.protocol,
        e.timeout,
        e.status,
        e.body
    );
    if !h.is_empty() {
        let q = |p: f64| us(h.value_at_quantile(p) as f64);
        let _ = writeln!(
            out,
            "  latency    min {}  mean {}  stdev {}  max {}",
            us(h.min() as f64),
            us(h.mean()),
            us(h.stdev()),
            us(h.max() as f64)
        );
        let _ = writeln!(
            out,
            "             p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}",
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            q(0.9999)
        );
        if config.rate.is_some() {
            let _ = writeln!(out, "             (from the intended send time)");
        }
        let buckets = coarse_buckets(h);
        let top = buckets.iter().map(|&(_, c)| c).max().unwrap_or(1).max(1);
        for (le, count) in buckets {
            let bar = "#".repeat(((count * 40).div_ceil(top)) as usize);
            let _ = writeln!(
                out,
                "  {:>10} {:>10} {bar}",
                format!("<={}", us(le as f64)),
                count
            );
        }
    }
    let _ = writeln!(
        out,
        "  transfer   sent {:.2} MiB, received {:.2} MiB",
        s.bytes_sent as f64 / 1048576.0,
        s.bytes_received as f64 / 1048576.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_recorded_value() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in [1u64, 3, 3, 40, 900, 12_000, 250_000] {
            h.record(v).unwrap();
        }
        let b = buckets(&h);
        assert_eq!(b.iter().map(|(_, c)| c).sum::<u64>(), h.len());
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0), "increasing bounds");
        assert!(b.last().unwrap().0 >= h.max() as f64);
    }

    #[test]
    fn coarse_buckets_start_at_the_first_value_and_cover_all() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in [30u64, 45, 700, 701, 12_000] {
            h.record(v).unwrap();
        }
        let b = coarse_buckets(&h);
        assert_eq!(b.first(), Some(&(50, 2)));
        assert_eq!(b.iter().map(|&(_, c)| c).sum::<u64>(), 5);
        assert!(b.last().unwrap().0 >= h.max());
        assert!(b.contains(&(1000, 2)));
    }

    #[test]
    fn serialized_histogram_round_trips() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        h.record(123).unwrap();
        h.record(4567).unwrap();
        let text = serialized(&h);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        let back: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut &bytes[..])
            .unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.max(), h.max());
    }
}
