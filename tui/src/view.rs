//! What the screen shows, computed from the [`Model`] at one instant: plain data (strings and
//! numbers), so the terminal renderer and the `--once` text printer show the same figures and
//! tests can check them without a terminal.

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use crate::format;
use crate::history::Selection;
use crate::keys::{self, Action};
use crate::model::{EngineState, Model, RowKey, ScrapeStatus, SortColumn};
use crate::rate::WorkerWindow;

/// Good, worrying or bad: how the renderer colours a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// All is well.
    Good,
    /// Not yet known, or partly down.
    Warn,
    /// Down or failing.
    Bad,
}

/// The header: who, and the totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The engine's metrics URL, or `all: N engines`.
    pub title: String,
    /// Labelled figures, in display order.
    pub fields: Vec<(&'static str, String)>,
    /// Scrape status and its level.
    pub status: (Level, String),
    /// A note, such as a restart seen.
    pub note: Option<String>,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What the row is.
    pub key: RowKey,
    /// The cells, one per [`SortColumn::ALL`] column.
    pub cells: Vec<String>,
    /// The figures the row is sorted by, one per column.
    values: Vec<Option<f64>>,
}

/// The table of workers (or engines, on "all").
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Its title.
    pub title: String,
    /// Column headings, the sort column marked.
    pub headings: Vec<String>,
    /// Rows in display order; the total is last.
    pub rows: Vec<Row>,
    /// Index of the selected row.
    pub selected: usize,
}

/// The latency histogram of the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    /// Its title.
    pub title: String,
    /// Bucket label and requests in it, for the buckets worth showing.
    pub bars: Vec<(String, u64)>,
}

/// The requests-per-second sparkline.
#[derive(Debug, Clone, PartialEq)]
pub struct Spark {
    /// Its title.
    pub title: String,
    /// Requests per second per scrape interval, oldest first.
    pub points: Vec<f64>,
    /// Seconds each point covers (the time between its two scrapes).
    pub point_seconds: Vec<f64>,
}

/// Everything on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// Tab titles (empty with one engine).
    pub tabs: Vec<String>,
    /// The tab shown.
    pub tab: usize,
    /// The header.
    pub header: Header,
    /// The table.
    pub table: Table,
    /// The histogram of the selection.
    pub histogram: Bars,
    /// The sparkline of the selection.
    pub sparkline: Spark,
    /// The footer: window, sort, freeze, key hints.
    pub footer: String,
    /// The help screen's lines (keys, description), when shown.
    pub help: Option<Vec<(String, String)>>,
}

/// Computes the screen from the model at `now` (a frozen display uses the freeze time).
pub fn build(model: &Model, now: Instant) -> Dashboard {
    let now = model.frozen_at.unwrap_or(now);
    let window = model.window();
    let tabs = if model.engines.len() > 1 {
        model
            .engines
            .iter()
            .map(|e| e.target.authority.clone())
            .chain(std::iter::once("all".to_owned()))
            .collect()
    } else {
        Vec::new()
    };
    let (header, mut rows) = if model.on_all_tab() {
        all_tab(model, window)
    } else {
        match model.engines.get(model.tab) {
            Some(engine) => engine_tab(model, engine, now, window),
            None => (empty_header(), Vec::new()),
        }
    };
    sort_rows(&mut rows, model.sort, model.reverse);
    let selected_key = model.selected_row();
    let selected = rows
        .iter()
        .position(|r| r.key == selected_key)
        .unwrap_or(rows.len().saturating_sub(1));
    let selected_key = rows.get(selected).map(|r| r.key).unwrap_or(RowKey::Total);

    let headings = SortColumn::ALL
        .iter()
        .map(|c| {
            let title = if *c == SortColumn::Name && model.on_all_tab() {
                "engine"
            } else {
                c.title()
            };
            if *c == model.sort {
                format!("{title}{}", if model.reverse { "▲" } else { "▼" })
            } else {
                title.to_owned()
            }
        })
        .collect();
    let stale = stale_note(model, now);
    let span = window_label(model, window);
    let table = Table {
        title: format!(
            " {} over the last {span}{stale} ",
            if model.on_all_tab() {
                "engines"
            } else {
                "workers"
            },
        ),
        headings,
        rows,
        selected,
    };
    let (histogram, sparkline) = selection_views(model, selected_key, window, &span);
    Dashboard {
        tabs,
        tab: model.tab,
        header,
        table,
        histogram,
        sparkline,
        footer: footer(model),
        help: model.show_help.then(|| {
            keys::BINDINGS
                .iter()
                .map(|b| (keys::keys_label(b), b.help.to_owned()))
                .collect()
        }),
    }
}

fn empty_header() -> Header {
    Header {
        title: String::new(),
        fields: Vec::new(),
        status: (Level::Warn, "no engine".into()),
        note: None,
    }
}

/// The row cells of a window (or of gauges only, before two scrapes).
fn row(key: RowKey, name: String, window: Option<&WorkerWindow>, gauges: (f64, f64)) -> Row {
    let (in_flight, conns) = window
        .map(|w| (w.in_flight, w.connections_open))
        .unwrap_or(gauges);
    let q = |p: f64| window.and_then(|w| w.quantile(p));
    let values = vec![
        None,
        window.map(WorkerWindow::rps),
        Some(in_flight).filter(|v| v.is_finite()),
        Some(conns).filter(|v| v.is_finite()),
        q(0.5),
        q(0.99),
        q(0.999),
        window.map(|w| w.errors),
    ];
    let cells = vec![
        name,
        values[1].map(format::rate).unwrap_or_else(|| "-".into()),
        format::count(in_flight),
        format::count(conns),
        values[4].map(format::seconds).unwrap_or_else(|| "-".into()),
        values[5].map(format::seconds).unwrap_or_else(|| "-".into()),
        values[6].map(format::seconds).unwrap_or_else(|| "-".into()),
        values[7].map(format::count).unwrap_or_else(|| "-".into()),
    ];
    Row { key, cells, values }
}

/// Sorts the rows (the total stays last): by name ascending, by figures descending, `-` last.
fn sort_rows(rows: &mut [Row], column: SortColumn, reverse: bool) {
    let index = SortColumn::ALL
        .iter()
        .position(|c| *c == column)
        .unwrap_or(0);
    let body = match rows.last() {
        Some(last) if last.key == RowKey::Total => rows.len() - 1,
        _ => rows.len(),
    };
    rows[..body].sort_by(|a, b| {
        let by_name = name_order(a.key).cmp(&name_order(b.key));
        let ordering = if index == 0 {
            by_name
        } else {
            match (a.values[index], b.values[index]) {
                (Some(x), Some(y)) => y.total_cmp(&x).then(by_name),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => by_name,
            }
        };
        if reverse {
            ordering.reverse()
        } else {
            ordering
        }
    });
}

fn name_order(key: RowKey) -> (u8, u64) {
    match key {
        RowKey::Worker(w) => (0, u64::from(w)),
        RowKey::Engine(e) => (0, e as u64),
        RowKey::Total => (1, 0),
    }
}

fn engine_tab(
    model: &Model,
    engine: &EngineState,
    now: Instant,
    window: Duration,
) -> (Header, Vec<Row>) {
    let history = &engine.history;
    let latest = history.latest();
    let total = history.worker_window(window, Selection::All);
    let mut fields = Vec::new();
    if let Some(scrape) = latest {
        let snap = &scrape.snapshot;
        if let Some(build) = &snap.build {
            fields.push((
                "version",
                format!(
                    "{} ({}, {})",
                    build.version, build.revision, build.io_backend
                ),
            ));
        }
        if let Some(start) = snap.process.start_time {
            let mut up = scrape.wall - start;
            if matches!(engine.status, ScrapeStatus::Ok { .. }) {
                up += now.saturating_duration_since(scrape.at).as_secs_f64();
            }
            fields.push(("up", format::uptime(Duration::from_secs_f64(up.max(0.0)))));
        }
        fields.push(("workers", snap.workers.len().to_string()));
        if let Some(procs) = snap.worker_processes {
            let restarts = snap.process_restarts.unwrap_or(0.0);
            fields.push((
                "processes",
                format!(
                    "{} ({} replaced)",
                    format::count(procs),
                    format::count(restarts)
                ),
            ));
        }
        let gauges = snap.total();
        fields.push((
            "req/s",
            total
                .as_ref()
                .map(|w| format::rate(w.rps()))
                .unwrap_or_else(|| "-".into()),
        ));
        fields.push(("in flight", format::count(gauges.in_flight)));
        fields.push((
            "errors",
            total
                .as_ref()
                .and_then(WorkerWindow::error_ratio)
                .map(format::percent)
                .unwrap_or_else(|| "-".into()),
        ));
        fields.push(("conns", format::count(gauges.connections_open)));
        if let Some(rss) = snap.process.resident_bytes {
            fields.push(("mem", format::bytes(rss)));
        }
        if let Some(cpu) = history.cpu_cores(window) {
            fields.push(("cpu", format!("{:.0}%", cpu * 100.0)));
        }
        if let (Some(open), Some(max)) = (snap.process.open_fds, snap.process.max_fds) {
            fields.push((
                "fds",
                format!("{}/{}", format::count(open), format::count(max)),
            ));
        }
    }
    let header = Header {
        title: engine.target.url(),
        fields,
        status: status_line(engine, model, now),
        note: engine.last_reset.as_ref().map(|(at, why)| {
            format!(
                "restart seen {} ago ({why}): figures start over",
                format::ago(now.saturating_duration_since(*at))
            )
        }),
    };
    let mut rows = Vec::new();
    if let Some(scrape) = latest {
        for (id, w) in &scrape.snapshot.workers {
            let win = history.worker_window(window, Selection::Worker(*id));
            rows.push(row(
                RowKey::Worker(*id),
                id.to_string(),
                win.as_ref(),
                (w.in_flight, w.connections_open),
            ));
        }
        let gauges = scrape.snapshot.total();
        rows.push(row(
            RowKey::Total,
            "all".into(),
            total.as_ref(),
            (gauges.in_flight, gauges.connections_open),
        ));
    }
    (header, rows)
}

fn all_tab(model: &Model, window: Duration) -> (Header, Vec<Row>) {
    let mut rows = Vec::new();
    let mut sum = WorkerWindow::default();
    let mut any_window = false;
    let (mut in_flight, mut conns, mut mem, mut cpu) = (0.0, 0.0, 0.0, 0.0);
    let mut up = 0;
    for (i, engine) in model.engines.iter().enumerate() {
        let name = engine.target.authority.clone();
        let live = matches!(engine.status, ScrapeStatus::Ok { .. });
        let latest = engine.history.latest();
        let Some(latest) = latest.filter(|_| live) else {
            // Down or not yet up: no figures, and none of its old ones in the sums.
            rows.push(row(RowKey::Engine(i), name, None, (f64::NAN, f64::NAN)));
            continue;
        };
        up += 1;
        let gauges = latest.snapshot.total();
        let win = engine.history.worker_window(window, Selection::All);
        if let Some(w) = &win {
            sum.add_rates(w);
            any_window = true;
        }
        in_flight += gauges.in_flight;
        conns += gauges.connections_open;
        mem += latest.snapshot.process.resident_bytes.unwrap_or(0.0);
        cpu += engine.history.cpu_cores(window).unwrap_or(0.0);
        rows.push(row(
            RowKey::Engine(i),
            name,
            win.as_ref(),
            (gauges.in_flight, gauges.connections_open),
        ));
    }
    let total = any_window.then_some(&sum);
    rows.push(row(RowKey::Total, "all".into(), total, (in_flight, conns)));
    let n = model.engines.len();
    let level = match up {
        0 => Level::Bad,
        u if u == n => Level::Good,
        _ => Level::Warn,
    };
    let down: Vec<_> = model
        .engines
        .iter()
        .filter(|e| matches!(e.status, ScrapeStatus::Failed { .. }))
        .map(|e| e.target.authority.clone())
        .collect();
    let mut status = format!("{up} of {n} engines up");
    if !down.is_empty() {
        status.push_str(&format!("; UNREACHABLE: {}", down.join(", ")));
    }
    let header = Header {
        title: format!("all: {n} engines"),
        fields: vec![
            (
                "req/s",
                total
                    .map(|w| format::rate(w.rps()))
                    .unwrap_or_else(|| "-".into()),
            ),
            ("in flight", format::count(in_flight)),
            (
                "errors",
                total
                    .and_then(WorkerWindow::error_ratio)
                    .map(format::percent)
                    .unwrap_or_else(|| "-".into()),
            ),
            ("conns", format::count(conns)),
            ("mem", format::bytes(mem)),
            ("cpu", format!("{:.0}%", cpu * 100.0)),
        ],
        status: (level, status),
        note: None,
    };
    (header, rows)
}

fn status_line(engine: &EngineState, model: &Model, now: Instant) -> (Level, String) {
    let every = format::span(model.interval);
    match &engine.status {
        ScrapeStatus::Waiting => (Level::Warn, format!("connecting (every {every})")),
        ScrapeStatus::Ok { at } => (
            Level::Good,
            format!(
                "scrape ok {} ago (every {every})",
                format::ago(now.saturating_duration_since(*at))
            ),
        ),
        ScrapeStatus::Failed {
            unreachable, error, ..
        } => {
            let what = if *unreachable {
                "UNREACHABLE"
            } else {
                "BAD ANSWER"
            };
            let last = match engine.last_ok {
                Some(at) => format!(
                    "last ok {} ago",
                    format::ago(now.saturating_duration_since(at))
                ),
                None => "never reached".into(),
            };
            let retry = if model.retrying {
                format!("retrying every {every}; ")
            } else {
                String::new()
            };
            (Level::Bad, format!("{what}: {error}; {retry}{last}"))
        }
    }
}

/// The window as its titles say it: `10s`, or, while the history is shorter than the window,
/// the time it does cover: `3.5s (10s window filling)`.
fn window_label(model: &Model, window: Duration) -> String {
    let engines: Vec<&EngineState> = if model.on_all_tab() {
        model.engines.iter().collect()
    } else {
        model.engines.get(model.tab).into_iter().collect()
    };
    let covered = engines
        .iter()
        .filter_map(|e| e.history.window(window))
        .map(|(start, end)| end.at.duration_since(start.at))
        .max();
    match covered {
        Some(c) if c + model.interval / 2 < window => format!(
            "{} ({} window filling)",
            format::ago(c),
            format::span(window)
        ),
        _ => format::span(window),
    }
}

fn stale_note(model: &Model, now: Instant) -> String {
    if model.on_all_tab() {
        return String::new();
    }
    match model.engines.get(model.tab) {
        Some(engine) if matches!(engine.status, ScrapeStatus::Failed { .. }) => {
            match engine.last_ok {
                Some(at) => format!(
                    " (stale: last scrape {} ago)",
                    format::ago(now.saturating_duration_since(at))
                ),
                None => String::new(),
            }
        }
        _ => String::new(),
    }
}

fn selection_views(model: &Model, key: RowKey, window: Duration, span: &str) -> (Bars, Spark) {
    // The histogram window and the rate series of the selection.
    let (name, win, series): (String, Option<WorkerWindow>, Vec<(f64, f64)>) = if model.on_all_tab()
    {
        match key {
            RowKey::Engine(i) => {
                let engine = &model.engines[i];
                (
                    engine.target.authority.clone(),
                    engine.history.worker_window(window, Selection::All),
                    rates(engine, Selection::All),
                )
            }
            _ => {
                let mut sum: Option<WorkerWindow> = None;
                let mut series: Vec<(f64, f64)> = Vec::new();
                let live = model
                    .engines
                    .iter()
                    .filter(|e| matches!(e.status, ScrapeStatus::Ok { .. }));
                for engine in live {
                    if let Some(w) = engine.history.worker_window(window, Selection::All) {
                        sum.get_or_insert_with(WorkerWindow::default).add_rates(&w);
                    }
                    let mine = rates(engine, Selection::All);
                    // Align on the newest point.
                    if mine.len() > series.len() {
                        let pad = mine.len() - series.len();
                        series.splice(0..0, mine[..pad].iter().map(|(d, _)| (*d, 0.0)));
                    }
                    let offset = series.len() - mine.len();
                    for (slot, (_, v)) in series[offset..].iter_mut().zip(mine) {
                        slot.1 += v;
                    }
                }
                ("all engines".into(), sum, series)
            }
        }
    } else {
        let engine = model.engines.get(model.tab);
        let selection = match key {
            RowKey::Worker(id) => Selection::Worker(id),
            _ => Selection::All,
        };
        let name = match selection {
            Selection::Worker(id) => format!("worker {id}"),
            Selection::All => "all workers".to_owned(),
        };
        (
            name,
            engine.and_then(|e| e.history.worker_window(window, selection)),
            engine.map(|e| rates(e, selection)).unwrap_or_default(),
        )
    };
    let histogram = match &win {
        Some(w) if !w.durations.bounds.is_empty() && w.durations.total() > 0.0 => {
            let bounds = &w.durations.bounds;
            let counts = w.durations.per_bucket();
            let first = counts.iter().position(|c| *c > 0.0).unwrap_or(0);
            let last = counts.iter().rposition(|c| *c > 0.0).unwrap_or(0);
            let from = first.saturating_sub(1);
            let to = (last + 1).min(counts.len().saturating_sub(1));
            Bars {
                title: format!(
                    " latency of {name}, {span}: {} req, mean {} ",
                    format::count(w.durations.total()),
                    w.durations
                        .mean()
                        .map(format::seconds)
                        .unwrap_or_else(|| "-".into())
                ),
                bars: (from..=to)
                    .map(|i| (format::bound(bounds[i]), counts[i].round() as u64))
                    .collect(),
            }
        }
        _ => Bars {
            title: format!(" latency of {name}, {span}: no requests "),
            bars: Vec::new(),
        },
    };
    let now_rate = series.last().map(|p| p.1);
    let max = series
        .iter()
        .map(|p| p.1)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let sparkline = Spark {
        title: format!(
            " req/s now {}, max {}",
            now_rate.map(format::rate).unwrap_or_else(|| "-".into()),
            max.map(format::rate).unwrap_or_else(|| "-".into()),
        ),
        points: series.iter().map(|p| p.1).collect(),
        point_seconds: series.iter().map(|p| p.0).collect(),
    };
    (histogram, sparkline)
}

fn rates(engine: &EngineState, selection: Selection) -> Vec<(f64, f64)> {
    engine
        .history
        .rps_series(selection)
        .into_iter()
        .map(|(d, r)| (d.as_secs_f64(), r))
        .collect()
}

fn footer(model: &Model) -> String {
    let mut parts = vec![format!("window {}", format::span(model.window()))];
    parts.push(format!(
        "sort {}{}",
        model.sort.title(),
        if model.reverse { " (reversed)" } else { "" }
    ));
    if model.frozen_at.is_some() {
        parts.push("FROZEN".into());
    }
    let hint = |a: Action, what: &str| format!("{} {what}", keys::first_key(a));
    parts.push(
        [
            hint(Action::Help, "help"),
            hint(Action::Quit, "quit"),
            "↑↓ select".to_owned(),
            hint(Action::NextEngine, "engine"),
            "+/- window".to_owned(),
            hint(Action::Sort, "sort"),
            hint(Action::Freeze, "freeze"),
        ]
        .join("  "),
    );
    parts.join(" │ ")
}
