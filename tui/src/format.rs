//! How figures are written on screen: short, fixed units, and `-` for "nothing to show".

use std::time::Duration;

/// A rate per second: two decimals below 10, one below 1000, none above.
pub fn rate(value: f64) -> String {
    if !value.is_finite() {
        return "-".into();
    }
    if value.abs() < 10.0 {
        format!("{value:.2}")
    } else if value.abs() < 1000.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// A count (gauges and window counts): no decimals when whole.
pub fn count(value: f64) -> String {
    if !value.is_finite() {
        "-".into()
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// A latency in seconds, in µs, ms or s.
pub fn seconds(value: f64) -> String {
    if !value.is_finite() || value < 0.0 {
        "-".into()
    } else if value < 0.001 {
        format!("{:.0}µs", value * 1e6)
    } else if value < 1.0 {
        format!("{:.2}ms", value * 1e3)
    } else {
        format!("{value:.2}s")
    }
}

/// A bucket bound for a bar label, as short as possible: `75µ`, `2.5m`, `1s`, `+Inf`.
pub fn bound(value: f64) -> String {
    fn trim(x: f64) -> String {
        let s = format!("{x:.1}");
        s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
    }
    if value.is_infinite() {
        "+Inf".into()
    } else if value < 0.001 {
        format!("{}µ", trim(value * 1e6))
    } else if value < 1.0 {
        format!("{}m", trim(value * 1e3))
    } else {
        format!("{}s", trim(value))
    }
}

/// A ratio as a percentage.
pub fn percent(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{:.2}%", ratio * 100.0)
    } else {
        "-".into()
    }
}

/// Bytes in B, KiB, MiB or GiB.
pub fn bytes(value: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    if !value.is_finite() || value < 0.0 {
        return "-".into();
    }
    let mut v = value;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A duration as `3d 04:05:06`, `04:05:06` or `05:06` (uptime, spans).
pub fn uptime(d: Duration) -> String {
    let total = d.as_secs();
    let (days, h, m, s) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    if days > 0 {
        format!("{days}d {h:02}:{m:02}:{s:02}")
    } else if h > 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// A window or period: `5s`, `1m`, `1m30s`, `1h`.
pub fn span(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// How long ago, with a tenth of a second: `0.4s`, `12.0s`.
pub fn ago(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        span(Duration::from_secs(d.as_secs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures() {
        assert_eq!(rate(4.256), "4.26");
        assert_eq!(rate(123.45), "123.5");
        assert_eq!(rate(12345.6), "12346");
        assert_eq!(rate(f64::NAN), "-");
        assert_eq!(count(3.0), "3");
        assert_eq!(count(2.5), "2.5");
        assert_eq!(seconds(0.000_052), "52µs");
        assert_eq!(seconds(0.0123), "12.30ms");
        assert_eq!(seconds(2.5), "2.50s");
        assert_eq!(seconds(f64::NAN), "-");
        assert_eq!(bound(0.000_075), "75µ");
        assert_eq!(bound(0.0025), "2.5m");
        assert_eq!(bound(1.0), "1s");
        assert_eq!(bound(f64::INFINITY), "+Inf");
        assert_eq!(percent(0.0123), "1.23%");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(10_403_840.0), "9.9 MiB");
        assert_eq!(uptime(Duration::from_secs(65)), "01:05");
        assert_eq!(
            uptime(Duration::from_secs(3 * 86_400 + 3661)),
            "3d 01:01:01"
        );
        assert_eq!(span(Duration::from_secs(90)), "1m30s");
        assert_eq!(span(Duration::from_secs(3600)), "1h");
        assert_eq!(span(Duration::from_millis(500)), "500ms");
        assert_eq!(ago(Duration::from_millis(400)), "0.4s");
    }
}
