//! Hand-written SVG plots: horizontal bars with min–max whiskers, and log–log lines.

use std::fmt::Write;

use crate::stats::Spread;

const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Compact number: 1234567 -> 1.23M, 12345 -> 12.3k, 4.567 -> 4.57.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.2}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Decades covering [lo, hi] for a log axis.
fn decades(lo: f64, hi: f64) -> (f64, f64) {
    let lo = lo.max(1e-3).log10().floor();
    let hi = hi.max(1e-3).log10().ceil().max(lo + 1.0);
    (lo, hi)
}

/// Horizontal bars (log scale) of medians with min–max whiskers; a bar is highlighted when
/// `highlight` says so (the ringfast rows).
pub fn bars(title: &str, unit: &str, rows: &[(String, Spread, bool)]) -> String {
    let label_w = 300.0;
    let plot_w = 520.0;
    let row_h = 18.0;
    let top = 40.0;
    let h = top + row_h * rows.len() as f64 + 40.0;
    let w = label_w + plot_w + 90.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="20" font-size="14" text-anchor="middle">{}</text>
"#,
        w / 2.0,
        esc(title)
    );
    let lo = rows.iter().map(|r| r.1.min).fold(f64::INFINITY, f64::min);
    let hi = rows.iter().map(|r| r.1.max).fold(0.0, f64::max);
    if rows.is_empty() || !(lo.is_finite() && hi > 0.0) {
        svg.push_str("<text x=\"20\" y=\"40\">no data</text></svg>\n");
        return svg;
    }
    let (dlo, dhi) = decades(lo, hi);
    let x = |v: f64| label_w + (v.max(10f64.powf(dlo)).log10() - dlo) / (dhi - dlo) * plot_w;
    let bottom = top + row_h * rows.len() as f64;
    let mut d = dlo;
    while d <= dhi + 1e-9 {
        let xv = x(10f64.powf(d));
        let _ = writeln!(
            svg,
            r##"<line x1="{xv:.1}" y1="{top}" x2="{xv:.1}" y2="{bottom}" stroke="#ddd"/><text x="{xv:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 14.0,
            short(10f64.powf(d))
        );
        d += 1.0;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} (log scale; bar = median, whisker = min–max)</text>"#,
        label_w + plot_w / 2.0,
        bottom + 30.0,
        esc(unit)
    );
    for (i, (label, s, hl)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let color = if *hl { "#d62728" } else { "#1f77b4" };
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{label_w}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}" opacity="0.8"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            label_w - 6.0,
            y + 13.0,
            esc(label),
            y + 3.0,
            (x(s.median) - label_w).max(1.0),
            row_h - 6.0,
            x(s.min),
            y + row_h / 2.0,
            x(s.max),
            y + row_h / 2.0,
            x(s.max) + 4.0,
            y + 13.0,
            short(s.median)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// One line of a line plot.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points (x, y), both > 0.
    pub points: Vec<(f64, f64)>,
}

/// Lines on log–log axes with a legend on the right.
pub fn lines(title: &str, xlabel: &str, ylabel: &str, series: &[Series]) -> String {
    let (left, top, pw, ph): (f64, f64, f64, f64) = (70.0, 40.0, 560.0, 400.0);
    let legend_w = 320.0;
    let h = (top + ph + 50.0).max(top + 14.0 * series.len() as f64 + 20.0);
    let w = left + pw + legend_w;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="20" font-size="14" text-anchor="middle">{}</text>
"#,
        left + pw / 2.0,
        esc(title)
    );
    let pts = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.0 > 0.0 && p.1 > 0.0);
    let (mut xlo, mut xhi, mut ylo, mut yhi) = (f64::INFINITY, 0.0f64, f64::INFINITY, 0.0f64);
    for &(px, py) in pts {
        xlo = xlo.min(px);
        xhi = xhi.max(px);
        ylo = ylo.min(py);
        yhi = yhi.max(py);
    }
    if !(xlo.is_finite() && ylo.is_finite()) {
        svg.push_str("<text x=\"20\" y=\"40\">no data</text></svg>\n");
        return svg;
    }
    let (xd0, xd1) = decades(xlo, xhi);
    let (yd0, yd1) = decades(ylo, yhi);
    let x = |v: f64| left + (v.log10() - xd0) / (xd1 - xd0) * pw;
    let y = |v: f64| top + ph - (v.log10() - yd0) / (yd1 - yd0) * ph;
    let mut d = xd0;
    while d <= xd1 + 1e-9 {
        let xv = x(10f64.powf(d));
        let _ = writeln!(
            svg,
            r##"<line x1="{xv:.1}" y1="{top}" x2="{xv:.1}" y2="{:.1}" stroke="#ddd"/><text x="{xv:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            top + ph,
            top + ph + 14.0,
            short(10f64.powf(d))
        );
        d += 1.0;
    }
    let mut d = yd0;
    while d <= yd1 + 1e-9 {
        let yv = y(10f64.powf(d));
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{yv:.1}" x2="{:.1}" y2="{yv:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 4.0,
            yv + 4.0,
            short(10f64.powf(d))
        );
        d += 1.0;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} (log)</text><text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{} (log)</text>"#,
        left + pw / 2.0,
        top + ph + 34.0,
        esc(xlabel),
        top + ph / 2.0,
        top + ph / 2.0,
        esc(ylabel)
    );
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let dash = if (i / PALETTE.len()) % 2 == 1 {
            " stroke-dasharray=\"5,3\""
        } else {
            ""
        };
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.0 > 0.0 && p.1 > 0.0)
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>"#,
            path.join(" ")
        );
        for p in &path {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                r#"<circle cx="{px}" cy="{py}" r="2.5" fill="{color}"/>"#
            );
        }
        let ly = top + 14.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            left + pw + 10.0,
            left + pw + 30.0,
            left + pw + 34.0,
            ly + 4.0,
            esc(&s.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_cover_the_range() {
        assert_eq!(decades(1234.0, 17_000.0), (3.0, 5.0));
        assert_eq!(decades(100.0, 100.0), (2.0, 3.0));
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(1_234_567.0), "1.235M");
        assert_eq!(short(12_345.0), "12.3k");
        assert_eq!(short(4.567), "4.57");
    }

    #[test]
    fn bars_and_lines_are_svg_with_every_label() {
        let s = Spread::of([100.0, 120.0, 90.0]).unwrap();
        let svg = bars(
            "t",
            "req/s",
            &[("a<b".into(), s, true), ("c".into(), s, false)],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a&lt;b") && svg.contains(">c<"));
        let l = lines(
            "t",
            "x",
            "y",
            &[Series {
                label: "one".into(),
                points: vec![(10.0, 5.0), (100.0, 50.0)],
            }],
        );
        assert!(l.contains("<polyline") && l.contains(">one<"));
        assert!(bars("t", "u", &[]).contains("no data"));
    }
}
