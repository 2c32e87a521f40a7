//! The dashboard as plain text, for `--once` and output that is not a terminal.

use std::fmt::Write;

use crate::view::Dashboard;

/// Writes the header, the table and the histogram of `dash` as plain text lines.
pub fn render(dash: &Dashboard) -> String {
    let mut out = String::new();
    let h = &dash.header;
    let _ = writeln!(out, "ringfast-top · {}", h.title);
    let fields: Vec<String> = h.fields.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if !fields.is_empty() {
        let _ = writeln!(out, "{}", fields.join("   "));
    }
    let _ = writeln!(out, "{}", h.status.1);
    if let Some(note) = &h.note {
        let _ = writeln!(out, "{note}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", dash.table.title.trim());
    let mut widths: Vec<usize> = dash
        .table
        .headings
        .iter()
        .map(|s| s.chars().count())
        .collect();
    for row in &dash.table.rows {
        for (w, cell) in widths.iter_mut().zip(&row.cells) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                let pad = w.saturating_sub(c.chars().count());
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let _ = writeln!(out, "{}", line(&dash.table.headings));
    for row in &dash.table.rows {
        let _ = writeln!(out, "{}", line(&row.cells));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", dash.histogram.title.trim());
    let max = dash.histogram.bars.iter().map(|b| b.1).max().unwrap_or(0);
    for (label, count) in &dash.histogram.bars {
        let len = if max == 0 {
            0
        } else {
            (count * 40).div_ceil(max) as usize
        };
        let _ = writeln!(out, "{label:>6} {:<40} {count}", "#".repeat(len));
    }
    out
}
