//! Draws a [`Dashboard`] on a ratatui frame. Pure: the same dashboard and area always draw
//! the same cells, so tests render into a `TestBackend` and read the buffer.

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Bar, BarChart, BarGroup, Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table,
    TableState, Tabs, Wrap,
};
use ratatui::Frame;

use std::time::Duration;

use crate::format;
use crate::view::{Dashboard, Level};

/// A span rounded to whole seconds (at least one).
fn round_secs(d: Duration) -> Duration {
    Duration::from_secs((d.as_secs_f64().round() as u64).max(1))
}

fn level_style(level: Level) -> Style {
    match level {
        Level::Good => Style::default().fg(Color::Green),
        Level::Warn => Style::default().fg(Color::Yellow),
        Level::Bad => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, dash: &Dashboard) {
    let area = frame.area();
    let header = header_lines(dash, area.width.saturating_sub(2));
    let header_height = header.len() as u16 + 2;
    let tabs_height = u16::from(!dash.tabs.is_empty());
    let table_height = (dash.table.rows.len() as u16 + 3).max(4);
    let fixed = tabs_height + header_height + 1;
    let table_height = table_height.min(area.height.saturating_sub(fixed + 8).max(4));
    let chunks = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(tabs_height),
            Constraint::Length(header_height),
            Constraint::Length(table_height),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .split(area);
    if !dash.tabs.is_empty() {
        draw_tabs(frame, chunks[0], dash);
    }
    draw_header(frame, chunks[1], dash, header);
    draw_table(frame, chunks[2], dash);
    let bottom = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(60), Constraint::Percentage(40)])
        .split(chunks[3]);
    draw_histogram(frame, bottom[0], dash);
    draw_sparkline(frame, bottom[1], dash);
    frame.render_widget(
        Paragraph::new(dash.footer.as_str()).style(Style::default().add_modifier(Modifier::DIM)),
        chunks[4],
    );
    if let Some(help) = &dash.help {
        draw_help(frame, area, help);
    }
}

fn draw_tabs(frame: &mut Frame, area: Rect, dash: &Dashboard) {
    let tabs = Tabs::new(dash.tabs.iter().map(|t| Line::from(t.as_str())))
        .select(dash.tab)
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    frame.render_widget(tabs, area);
}

/// The header's lines for an inner width: the fields packed greedily into as few lines as fit,
/// then the status, then the note.
fn header_lines(dash: &Dashboard, width: u16) -> Vec<Line<'_>> {
    let header = &dash.header;
    let width = usize::from(width.max(1));
    let mut lines = Vec::new();
    let mut current: Vec<Span> = Vec::new();
    let mut used = 0;
    for (label, value) in &header.fields {
        let len = label.chars().count() + 1 + value.chars().count();
        if used > 0 && used + 3 + len > width {
            lines.push(Line::from(std::mem::take(&mut current)));
            used = 0;
        }
        if used > 0 {
            current.push(Span::raw("   "));
            used += 3;
        }
        current.push(Span::styled(
            format!("{label} "),
            Style::default().add_modifier(Modifier::DIM),
        ));
        current.push(Span::styled(
            value.as_str(),
            Style::default().add_modifier(Modifier::BOLD),
        ));
        used += len;
    }
    if !current.is_empty() {
        lines.push(Line::from(current));
    }
    let (level, status) = &header.status;
    lines.push(Line::from(Span::styled(
        status.as_str(),
        level_style(*level),
    )));
    if let Some(note) = &header.note {
        lines.push(Line::from(Span::styled(
            note.as_str(),
            Style::default().fg(Color::Yellow),
        )));
    }
    lines
}

fn draw_header(frame: &mut Frame, area: Rect, dash: &Dashboard, lines: Vec<Line>) {
    let header = &dash.header;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(level_style(header.status.0))
        .title(format!(" ringfast-top · {} ", header.title));
    frame.render_widget(
        Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
        area,
    );
}

fn draw_table(frame: &mut Frame, area: Rect, dash: &Dashboard) {
    let table = &dash.table;
    let last = table.rows.len().saturating_sub(1);
    let rows = table.rows.iter().enumerate().map(|(i, row)| {
        let cells = row.cells.iter().map(|c| Cell::from(c.as_str()));
        let style = if i == last {
            Style::default().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        Row::new(cells).style(style)
    });
    let mut widths = vec![Constraint::Length(22)];
    widths.extend(std::iter::repeat_n(Constraint::Length(10), 7));
    let widget = Table::new(rows, widths)
        .header(
            Row::new(table.headings.iter().map(|h| Cell::from(h.as_str())))
                .style(Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)),
        )
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ")
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(table.title.as_str()),
        );
    let mut state = TableState::default();
    if !table.rows.is_empty() {
        state.select(Some(table.selected));
    }
    frame.render_stateful_widget(widget, area, &mut state);
}

fn draw_histogram(frame: &mut Frame, area: Rect, dash: &Dashboard) {
    let hist = &dash.histogram;
    let block = Block::default()
        .borders(Borders::ALL)
        .title(hist.title.as_str());
    if hist.bars.is_empty() {
        frame.render_widget(
            Paragraph::new("nothing observed in this window").block(block),
            area,
        );
        return;
    }
    let inner = area.width.saturating_sub(2);
    let merged = fit_buckets(&hist.bars, inner);
    let n = merged.len() as u16;
    let bar_width = (inner.saturating_sub(n) / n.max(1)).clamp(1, 9);
    let bars: Vec<Bar> = merged
        .iter()
        .map(|(label, count)| Bar::with_label(label.as_str(), *count))
        .collect();
    let chart = BarChart::default()
        .block(block)
        .data(BarGroup::default().bars(&bars))
        .bar_width(bar_width)
        .bar_gap(1)
        .bar_style(Style::default().fg(Color::Cyan));
    frame.render_widget(chart, area);
}

/// Merges neighbouring buckets in pairs until every bar is as wide as its label, so labels are
/// never cut: a merged bar keeps the upper bound of its upper bucket and the sum of the counts
/// (exact for cumulative histograms: it is the histogram without every other bound).
fn fit_buckets(bars: &[(String, u64)], width: u16) -> Vec<(String, u64)> {
    let mut bars = bars.to_vec();
    let label = bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(1);
    while bars.len() > 1 && bars.len() * (label + 1) > usize::from(width) {
        let mut merged = Vec::with_capacity(bars.len().div_ceil(2));
        // Pair from the top so the last (largest) bound keeps its own bar label.
        let mut rest = bars.as_slice();
        if rest.len() % 2 == 1 {
            merged.push(rest[0].clone());
            rest = &rest[1..];
        }
        for pair in rest.chunks(2) {
            merged.push((pair[1].0.clone(), pair[0].1 + pair[1].1));
        }
        bars = merged;
    }
    bars
}

fn draw_sparkline(frame: &mut Frame, area: Rect, dash: &Dashboard) {
    let spark = &dash.sparkline;
    let inner = usize::from(area.width.saturating_sub(2));
    let start = spark.points.len().saturating_sub(inner);
    // Sparklines draw integers: hundredths of a request per second keep low rates visible.
    let data: Vec<u64> = spark.points[start..]
        .iter()
        .map(|r| (r * 100.0).round().max(0.0) as u64)
        .collect();
    let shown = Duration::from_secs_f64(spark.point_seconds[start..].iter().sum::<f64>());
    let title = if data.is_empty() {
        format!("{} ", spark.title)
    } else {
        format!("{} over {} ", spark.title, format::span(round_secs(shown)))
    };
    let widget = Sparkline::default()
        .block(Block::default().borders(Borders::ALL).title(title))
        .data(&data)
        .style(Style::default().fg(Color::Green));
    frame.render_widget(widget, area);
}

fn draw_help(frame: &mut Frame, area: Rect, help: &[(String, String)]) {
    let width = area.width.min(80);
    let height = (help.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let rows = help
        .iter()
        .map(|(keys, what)| Row::new([Cell::from(keys.as_str()), Cell::from(what.as_str())]));
    let table = Table::new(rows, [Constraint::Length(18), Constraint::Min(10)]).block(
        Block::default()
            .borders(Borders::ALL)
            .title(" keys (? or Esc to close) "),
    );
    frame.render_widget(Clear, popup);
    frame.render_widget(table, popup);
}

#[cfg(test)]
mod tests {
    use super::fit_buckets;

    #[test]
    fn buckets_merge_in_pairs_until_labels_fit() {
        let bars: Vec<(String, u64)> = ["25µ", "50µ", "75µ", "100µ", "150µ"]
            .iter()
            .zip(1..)
            .map(|(l, c)| (l.to_string(), c))
            .collect();
        assert_eq!(fit_buckets(&bars, 25), bars);
        let merged = fit_buckets(&bars, 20);
        assert_eq!(
            merged,
            [("25µ".into(), 1), ("75µ".into(), 5), ("150µ".into(), 9)]
        );
        assert_eq!(fit_buckets(&bars, 1), [("150µ".to_string(), 15)]);
        assert!(fit_buckets(&[], 10).is_empty());
    }
}
