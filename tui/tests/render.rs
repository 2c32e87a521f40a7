//! Render tests: a model fed with given metrics pages, drawn into ratatui's `TestBackend`, and
//! the screen read back as text.

use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use tui::keys::Action;
use tui::model::{Model, RowKey};
use tui::prom;
use tui::render;
use tui::scrape::{ScrapeError, ScrapeEvent, Target};
use tui::snapshot::EngineSnapshot;
use tui::text;
use tui::view::{self, Dashboard};

const BOUNDS: [&str; 25] = [
    "0.00001", "0.000025", "0.00005", "0.000075", "0.0001", "0.00015", "0.00025", "0.0005",
    "0.00075", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2",
    "5", "10", "30", "60", "+Inf",
];

/// One worker on a page: requests ended (2xx and 5xx), all in the bucket ending at `le`.
struct Worker {
    ok: u64,
    failed: u64,
    le: &'static str,
    in_flight: u64,
    conns: u64,
}

/// A page in the engine's format, as its exporter writes it.
fn page(workers: &[Worker], start_time: f64) -> String {
    let mut out = String::new();
    out.push_str("# TYPE ringfast_requests_total counter\n");
    for (id, w) in workers.iter().enumerate() {
        out.push_str(&format!(
            "ringfast_requests_total{{worker=\"{id}\",protocol=\"fastcgi\",status_class=\"2xx\"}} {}\n",
            w.ok
        ));
        out.push_str(&format!(
            "ringfast_requests_total{{worker=\"{id}\",protocol=\"fastcgi\",status_class=\"5xx\"}} {}\n",
            w.failed
        ));
        out.push_str(&format!(
            "ringfast_requests_in_flight{{worker=\"{id}\"}} {}\n",
            w.in_flight
        ));
        out.push_str(&format!(
            "ringfast_connections_open{{worker=\"{id}\",protocol=\"fastcgi\"}} {}\n",
            w.conns
        ));
    }
    out.push_str("# TYPE ringfast_request_duration_seconds histogram\n");
    for (id, w) in workers.iter().enumerate() {
        let n = w.ok + w.failed;
        let at = BOUNDS.iter().position(|b| *b == w.le).unwrap();
        for (i, le) in BOUNDS.iter().enumerate() {
            let count = if i >= at { n } else { 0 };
            out.push_str(&format!(
                "ringfast_request_duration_seconds_bucket{{worker=\"{id}\",protocol=\"fastcgi\",le=\"{le}\"}} {count}\n"
            ));
        }
        // Every request took 3/4 of its bucket's bound.
        let sum = n as f64 * w.le.parse::<f64>().unwrap() * 0.75;
        out.push_str(&format!(
            "ringfast_request_duration_seconds_sum{{worker=\"{id}\",protocol=\"fastcgi\"}} {sum}\n"
        ));
        out.push_str(&format!(
            "ringfast_request_duration_seconds_count{{worker=\"{id}\",protocol=\"fastcgi\"}} {n}\n"
        ));
    }
    out.push_str(
        "ringfast_build_info{version=\"0.1.0\",revision=\"abc123\",io_backend=\"tokio-uring\"} 1\n",
    );
    out.push_str(&format!("ringfast_workers {}\n", workers.len()));
    out.push_str("process_resident_memory_bytes 10485760\n");
    out.push_str(&format!("process_start_time_seconds {start_time}\n"));
    out
}

fn snapshot(text: &str) -> EngineSnapshot {
    EngineSnapshot::from_exposition(&prom::parse(text).unwrap())
}

fn event(engine: usize, at: Instant, wall: f64, text: &str) -> ScrapeEvent {
    ScrapeEvent {
        engine,
        at,
        wall,
        result: Ok(snapshot(text)),
    }
}

fn target(port: u16) -> Target {
    Target::parse(&format!("127.0.0.1:{port}")).unwrap()
}

/// Draws `dash` on a `width` x `height` test terminal and returns the screen's lines.
fn screen(dash: &Dashboard, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render::draw(f, dash)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol().to_owned())
                .collect::<String>()
        })
        .collect()
}

/// The cells of the table row whose first cell is `name`.
fn row<'a>(lines: &'a [String], name: &str) -> Vec<&'a str> {
    lines
        .iter()
        .map(|l| {
            l.trim_matches(|c| c == '│' || c == ' ')
                .trim_start_matches("▶ ")
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name) && cells.len() == 8)
        .unwrap_or_else(|| panic!("no row {name:?} in\n{}", lines.join("\n")))
}

/// An engine with two workers scraped twice, 10 s apart: worker 0 did 1000 requests (10 of
/// them 5xx) in (250 µs, 500 µs], worker 1 did 500 in (1 ms, 2.5 ms].
fn busy_model() -> (Model, Instant) {
    let base = Instant::now();
    let mut model = Model::new(vec![target(9191)], Duration::from_secs(1));
    let before = page(
        &[
            Worker {
                ok: 0,
                failed: 0,
                le: "0.0005",
                in_flight: 0,
                conns: 0,
            },
            Worker {
                ok: 0,
                failed: 0,
                le: "0.0025",
                in_flight: 0,
                conns: 0,
            },
        ],
        1000.0,
    );
    let after = page(
        &[
            Worker {
                ok: 990,
                failed: 10,
                le: "0.0005",
                in_flight: 3,
                conns: 4,
            },
            Worker {
                ok: 500,
                failed: 0,
                le: "0.0025",
                in_flight: 1,
                conns: 2,
            },
        ],
        1000.0,
    );
    model.on_scrape(event(0, base, 1100.0, &before));
    let end = base + Duration::from_secs(10);
    model.on_scrape(event(0, end, 1110.0, &after));
    (model, end)
}

#[test]
fn workers_show_rates_latencies_and_errors() {
    let (model, now) = busy_model();
    let lines = screen(&view::build(&model, now), 140, 40);
    let all = lines.join("\n");
    assert!(
        all.contains("ringfast-top · http://127.0.0.1:9191/metrics"),
        "{all}"
    );
    assert!(all.contains("version 0.1.0 (abc123, tokio-uring)"), "{all}");
    assert!(all.contains("up 01:50"), "{all}");
    assert!(all.contains("req/s 150.0"), "{all}");
    assert!(all.contains("errors 0.67%"), "{all}");
    assert!(all.contains("mem 10.0 MiB"), "{all}");
    assert!(all.contains("scrape ok 0.0s ago (every 1s)"), "{all}");
    // worker, req/s, in flight, conns, p50, p99, p99.9, errors. Interpolated in the bucket:
    // worker 0's p99 is 250µs + 0.99 × 250µs = 497.5µs, worker 1's is 1ms + 0.99 × 1.5ms.
    assert_eq!(
        row(&lines, "0"),
        ["0", "100.0", "3", "4", "375µs", "498µs", "500µs", "10"]
    );
    assert_eq!(
        row(&lines, "1"),
        ["1", "50.0", "1", "2", "1.75ms", "2.49ms", "2.50ms", "0"]
    );
    assert_eq!(row(&lines, "all")[..4], ["all", "150.0", "4", "6"]);
    // The histogram of every worker: the two buckets, labelled by their bounds.
    assert!(
        all.contains("latency of all workers, 10s: 1500 req, mean"),
        "{all}"
    );
    assert!(all.contains("500µ"), "{all}");
    assert!(all.contains("2.5m"), "{all}");
    assert!(all.contains("1000") && all.contains("500█"), "{all}");
    assert!(all.contains("mean 875µs"), "{all}");
    assert!(all.contains("req/s now 150.0, max 150.0 over 10s"), "{all}");
}

#[test]
fn sorting_and_selection() {
    let (mut model, now) = busy_model();
    // Sort by req/s, then by p50: the slower worker 1 comes first.
    model.on_action(Action::Sort, now, &[]);
    model.on_action(Action::Sort, now, &[]);
    model.on_action(Action::Sort, now, &[]);
    model.on_action(Action::Sort, now, &[]);
    let dash = view::build(&model, now);
    let keys: Vec<RowKey> = dash.table.rows.iter().map(|r| r.key).collect();
    assert_eq!(keys, [RowKey::Worker(1), RowKey::Worker(0), RowKey::Total]);
    assert!(dash.table.headings[4].starts_with("p50"));
    // Up from the total selects the row above it, and the histogram follows.
    model.on_action(Action::Up, now, &keys);
    let lines = screen(&view::build(&model, now), 140, 40);
    let all = lines.join("\n");
    assert!(all.contains("latency of worker 0, 10s: 1000 req"), "{all}");
    assert!(all.contains("▶ 0 "), "{all}");
    assert!(all.contains("sort p50"), "{all}");
}

#[test]
fn an_unreachable_engine_says_so_and_keeps_its_last_figures() {
    let (mut model, now) = busy_model();
    let later = now + Duration::from_secs(3);
    model.on_scrape(ScrapeEvent {
        engine: 0,
        at: later,
        wall: 1113.0,
        result: Err(ScrapeError::Connect(
            std::io::ErrorKind::ConnectionRefused.into(),
        )),
    });
    let lines = screen(&view::build(&model, later), 140, 40);
    let all = lines.join("\n");
    assert!(
        all.contains("UNREACHABLE: connect: connection refused"),
        "{all}"
    );
    assert!(all.contains("retrying every 1s; last ok 3.0s ago"), "{all}");
    assert!(all.contains("(stale: last scrape 3.0s ago)"), "{all}");
    assert_eq!(row(&lines, "0")[1], "100.0");
}

#[test]
fn an_engine_never_reached_shows_no_rows() {
    let model = Model::new(vec![target(1)], Duration::from_secs(2));
    let now = Instant::now();
    let all = screen(&view::build(&model, now), 140, 30).join("\n");
    assert!(all.contains("connecting (every 2s)"), "{all}");
    assert!(all.contains("no requests"), "{all}");
}

#[test]
fn a_restart_starts_over_instead_of_showing_nonsense() {
    let (mut model, now) = busy_model();
    let later = now + Duration::from_secs(1);
    let restarted = page(
        &[
            Worker {
                ok: 5,
                failed: 0,
                le: "0.0005",
                in_flight: 0,
                conns: 0,
            },
            Worker {
                ok: 5,
                failed: 0,
                le: "0.0025",
                in_flight: 0,
                conns: 0,
            },
        ],
        1111.0,
    );
    model.on_scrape(event(0, later, 1111.0, &restarted));
    let lines = screen(&view::build(&model, later), 140, 40);
    let all = lines.join("\n");
    assert!(all.contains("restart seen 0.0s ago (new process"), "{all}");
    // One scrape since the restart: no rate yet, never a negative one.
    assert_eq!(row(&lines, "0")[1], "-");
    assert!(!all.contains("-99"), "{all}");
}

#[test]
fn a_replaced_worker_process_starts_the_figures_over() {
    // Prefork: the page also says how many worker processes run and how many were replaced.
    // A replaced process's workers count from 0 while the service's start time stays.
    let (mut model, now) = busy_model();
    let later = now + Duration::from_secs(1);
    let mut replaced = page(
        &[
            Worker {
                ok: 1500,
                failed: 10,
                le: "0.0005",
                in_flight: 0,
                conns: 0,
            },
            Worker {
                ok: 2,
                failed: 0,
                le: "0.0025",
                in_flight: 0,
                conns: 0,
            },
        ],
        1000.0,
    );
    replaced.push_str("ringfast_worker_processes 2\nringfast_process_restarts_total 1\n");
    model.on_scrape(event(0, later, 1111.0, &replaced));
    let all = screen(&view::build(&model, later), 140, 40).join("\n");
    assert!(all.contains("processes 2 (1 replaced)"), "{all}");
    assert!(
        all.contains("restart seen 0.0s ago (requests of worker 1 went down)"),
        "{all}"
    );
}

#[test]
fn help_is_drawn_from_the_key_table() {
    let (mut model, now) = busy_model();
    model.on_action(Action::Help, now, &[]);
    let all = screen(&view::build(&model, now), 140, 40).join("\n");
    for binding in tui::keys::BINDINGS {
        assert!(all.contains(&tui::keys::keys_label(binding)), "{all}");
        assert!(all.contains(binding.help), "{}\n{all}", binding.help);
    }
}

#[test]
fn freeze_keeps_the_screen_until_unfrozen() {
    let (mut model, now) = busy_model();
    model.on_action(Action::Freeze, now, &[]);
    let frozen = view::build(&model, now);
    model.on_scrape(ScrapeEvent {
        engine: 0,
        at: now + Duration::from_secs(1),
        wall: 1111.0,
        result: Err(ScrapeError::Connect(
            std::io::ErrorKind::ConnectionRefused.into(),
        )),
    });
    let still = view::build(&model, now + Duration::from_secs(5));
    assert_eq!(frozen, still);
    assert!(still.footer.contains("FROZEN"));
    model.on_action(Action::Freeze, now + Duration::from_secs(5), &[]);
    let thawed = view::build(&model, now + Duration::from_secs(5));
    assert!(thawed.header.status.1.starts_with("UNREACHABLE"));
}

#[test]
fn several_engines_have_tabs_and_an_all_view() {
    let base = Instant::now();
    let mut model = Model::new(vec![target(9191), target(9192)], Duration::from_secs(1));
    let idle = |start| {
        page(
            &[Worker {
                ok: 0,
                failed: 0,
                le: "0.0005",
                in_flight: 0,
                conns: 0,
            }],
            start,
        )
    };
    let busy = |n, start| {
        page(
            &[Worker {
                ok: n,
                failed: 0,
                le: "0.0005",
                in_flight: 1,
                conns: 1,
            }],
            start,
        )
    };
    model.on_scrape(event(0, base, 100.0, &idle(1.0)));
    model.on_scrape(event(1, base, 100.0, &idle(2.0)));
    let end = base + Duration::from_secs(10);
    model.on_scrape(event(0, end, 110.0, &busy(100, 1.0)));
    model.on_scrape(event(1, end, 110.0, &busy(300, 2.0)));
    model.on_action(Action::NextEngine, end, &[]);
    model.on_action(Action::NextEngine, end, &[]);
    assert!(model.on_all_tab());
    let lines = screen(&view::build(&model, end), 140, 40);
    let all = lines.join("\n");
    assert!(
        lines[0].contains("127.0.0.1:9191")
            && lines[0].contains("127.0.0.1:9192")
            && lines[0].contains("all"),
        "{all}"
    );
    assert!(all.contains("all: 2 engines"), "{all}");
    assert!(all.contains("2 of 2 engines up"), "{all}");
    assert_eq!(row(&lines, "127.0.0.1:9191")[1], "10.0");
    assert_eq!(row(&lines, "127.0.0.1:9192")[1], "30.0");
    assert_eq!(row(&lines, "all")[..4], ["all", "40.0", "2", "2"]);
    assert!(all.contains("engine▼"), "{all}");

    // One engine goes down: it is named, shows no figures, and leaves the sums.
    let later = end + Duration::from_secs(1);
    model.on_scrape(ScrapeEvent {
        engine: 1,
        at: later,
        wall: 111.0,
        result: Err(ScrapeError::Connect(
            std::io::ErrorKind::ConnectionRefused.into(),
        )),
    });
    let lines = screen(&view::build(&model, later), 140, 40);
    let all = lines.join("\n");
    assert!(
        all.contains("1 of 2 engines up; UNREACHABLE: 127.0.0.1:9192"),
        "{all}"
    );
    assert_eq!(row(&lines, "127.0.0.1:9192")[1..4], ["-", "-", "-"]);
    assert_eq!(row(&lines, "all")[1], "10.0");
}

#[test]
fn small_terminals_do_not_panic() {
    let (mut model, now) = busy_model();
    for (w, h) in [(1, 1), (20, 5), (40, 12), (80, 24)] {
        let _ = screen(&view::build(&model, now), w, h);
    }
    model.on_action(Action::Help, now, &[]);
    for (w, h) in [(1, 1), (20, 5), (80, 24)] {
        let _ = screen(&view::build(&model, now), w, h);
    }
}

#[test]
fn the_text_snapshot_has_the_same_figures() {
    let (model, now) = busy_model();
    let out = text::render(&view::build(&model, now));
    assert!(out.contains("req/s 150.0"), "{out}");
    let zero = out
        .lines()
        .find(|l| l.starts_with("0 "))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<_> = zero.split_whitespace().collect();
    assert_eq!(
        cells,
        ["0", "100.0", "3", "4", "375µs", "498µs", "500µs", "10"]
    );
}

#[test]
fn a_window_longer_than_the_history_says_what_it_covers() {
    let base = Instant::now();
    let mut model = Model::new(vec![target(9191)], Duration::from_secs(1));
    let w = |n| {
        page(
            &[Worker {
                ok: n,
                failed: 0,
                le: "0.0005",
                in_flight: 0,
                conns: 0,
            }],
            1.0,
        )
    };
    model.on_scrape(event(0, base, 10.0, &w(0)));
    let end = base + Duration::from_secs(2);
    model.on_scrape(event(0, end, 12.0, &w(100)));
    let dash = view::build(&model, end);
    assert!(
        dash.table
            .title
            .contains("over the last 2.0s (10s window filling)"),
        "{}",
        dash.table.title
    );
    assert!(
        dash.histogram
            .title
            .contains(" 2.0s (10s window filling): 100 req"),
        "{}",
        dash.histogram.title
    );
    assert_eq!(dash.table.rows[0].cells[1], "50.0");
}

#[test]
fn a_narrow_terminal_wraps_the_header_and_keeps_the_status() {
    let (model, now) = busy_model();
    let lines = screen(&view::build(&model, now), 80, 30);
    let all = lines.join("\n");
    assert!(all.contains("version 0.1.0"), "{all}");
    assert!(all.contains("mem 10.0 MiB"), "{all}");
    assert!(all.contains("scrape ok 0.0s ago"), "{all}");
    assert_eq!(row(&lines, "1")[1], "50.0");
}

#[test]
fn pages_with_missing_series_show_dashes_not_panics() {
    // Counters but no histogram buckets (only _sum and _count), then a page of something else.
    let base = Instant::now();
    let mut model = Model::new(vec![target(9191)], Duration::from_secs(1));
    let partial = |n: u64| {
        format!(
            "ringfast_requests_total{{worker=\"0\",protocol=\"fastcgi\",status_class=\"2xx\"}} {n}\n\
             ringfast_request_duration_seconds_sum{{worker=\"0\",protocol=\"fastcgi\"}} 1\n\
             ringfast_request_duration_seconds_count{{worker=\"0\",protocol=\"fastcgi\"}} {n}\n"
        )
    };
    model.on_scrape(event(0, base, 1.0, &partial(0)));
    let end = base + Duration::from_secs(10);
    model.on_scrape(event(0, end, 11.0, &partial(100)));
    let lines = screen(&view::build(&model, end), 140, 40);
    assert_eq!(
        row(&lines, "0")[1..],
        ["10.0", "0", "0", "-", "-", "-", "0"]
    );
    model.on_scrape(event(
        0,
        end + Duration::from_secs(1),
        12.0,
        "node_load1 0.5\n",
    ));
    let all = screen(&view::build(&model, end + Duration::from_secs(1)), 140, 40).join("\n");
    assert!(all.contains("restart seen"), "{all}");
}
