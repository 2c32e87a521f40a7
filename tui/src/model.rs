//! The dashboard's state: every engine's history and scrape status, and what the user chose
//! (tab, row, window, sort, freeze, help). Key actions and scrape results change it; the view
//! is computed from it.

use std::time::{Duration, Instant};

use crate::history::History;
use crate::keys::Action;
use crate::scrape::{ScrapeError, ScrapeEvent, Target};

/// The windows `+` and `-` step through.
pub const WINDOWS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(900),
    Duration::from_secs(3600),
];

/// The window at start: 10 s.
pub const DEFAULT_WINDOW: usize = 1;

/// How much history is kept: the longest window, and the sparkline's span.
pub const RETAIN: Duration = Duration::from_secs(3600);

/// The sortable columns of the table, in the order `s` steps through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// Worker index (or engine order).
    Name,
    /// Requests per second.
    Rps,
    /// Requests in flight.
    InFlight,
    /// Connections open.
    Connections,
    /// p50 latency.
    P50,
    /// p99 latency.
    P99,
    /// p99.9 latency.
    P999,
    /// Errors in the window.
    Errors,
}

impl SortColumn {
    /// Every column, in `s` order.
    pub const ALL: [SortColumn; 8] = [
        SortColumn::Name,
        SortColumn::Rps,
        SortColumn::InFlight,
        SortColumn::Connections,
        SortColumn::P50,
        SortColumn::P99,
        SortColumn::P999,
        SortColumn::Errors,
    ];

    /// The column's heading.
    pub fn title(self) -> &'static str {
        match self {
            SortColumn::Name => "worker",
            SortColumn::Rps => "req/s",
            SortColumn::InFlight => "in flight",
            SortColumn::Connections => "conns",
            SortColumn::P50 => "p50",
            SortColumn::P99 => "p99",
            SortColumn::P999 => "p99.9",
            SortColumn::Errors => "errors",
        }
    }

    fn next(self) -> SortColumn {
        let i = Self::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

/// A row of the table: the total, a worker of the shown engine, or an engine (on "all").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKey {
    /// Every worker (or every engine) summed.
    Total,
    /// A worker of the engine shown.
    Worker(u32),
    /// An engine, on the "all" tab.
    Engine(usize),
}

/// The outcome of the newest scrape attempt of an engine.
#[derive(Debug, Clone, PartialEq)]
pub enum ScrapeStatus {
    /// No attempt has finished yet.
    Waiting,
    /// The last attempt worked.
    Ok {
        /// When.
        at: Instant,
    },
    /// The last attempt failed.
    Failed {
        /// When.
        at: Instant,
        /// Nothing answered (as opposed to a bad answer).
        unreachable: bool,
        /// The error.
        error: String,
    },
}

/// One engine.
#[derive(Debug, Clone)]
pub struct EngineState {
    /// Where its metrics are.
    pub target: Target,
    /// Its scrapes.
    pub history: History,
    /// The newest attempt's outcome.
    pub status: ScrapeStatus,
    /// When the last successful scrape was.
    pub last_ok: Option<Instant>,
    /// The last time the history started over, and why.
    pub last_reset: Option<(Instant, String)>,
}

impl EngineState {
    /// A new engine with no scrape yet.
    pub fn new(target: Target) -> Self {
        EngineState {
            target,
            history: History::new(RETAIN),
            status: ScrapeStatus::Waiting,
            last_ok: None,
            last_reset: None,
        }
    }

    /// Takes the result of a scrape attempt.
    pub fn apply(&mut self, event: ScrapeEvent) {
        match event.result {
            Ok(snapshot) => {
                let scrape = crate::history::Scrape {
                    at: event.at,
                    wall: event.wall,
                    snapshot,
                };
                if let Some(reset) = self.history.push(scrape) {
                    self.last_reset = Some((event.at, reset.to_string()));
                }
                self.status = ScrapeStatus::Ok { at: event.at };
                self.last_ok = Some(event.at);
            }
            Err(error) => {
                let unreachable = matches!(
                    error,
                    ScrapeError::Connect(_) | ScrapeError::Resolve(_) | ScrapeError::Io(_)
                );
                self.status = ScrapeStatus::Failed {
                    at: event.at,
                    unreachable,
                    error: error.to_string(),
                };
            }
        }
    }
}

/// The whole dashboard state.
#[derive(Debug)]
pub struct Model {
    /// The engines, in command-line order.
    pub engines: Vec<EngineState>,
    /// The tab shown: an engine index, or `engines.len()` for "all" (only with several).
    pub tab: usize,
    /// The selected row, per tab.
    pub selected: Vec<RowKey>,
    /// Index into [`WINDOWS`].
    pub window: usize,
    /// The sort column.
    pub sort: SortColumn,
    /// Whether the sort is reversed.
    pub reverse: bool,
    /// When the display was frozen, if it is.
    pub frozen_at: Option<Instant>,
    /// Scrape results that came in while frozen, applied on unfreeze.
    pub pending: Vec<ScrapeEvent>,
    /// Whether the help screen is shown.
    pub show_help: bool,
    /// The scrape period.
    pub interval: Duration,
    /// Set by the quit keys.
    pub quit: bool,
    /// Whether failed scrapes are retried (the live dashboard) or not (`--once`).
    pub retrying: bool,
}

impl Model {
    /// A dashboard over `targets`, scraped every `interval`.
    pub fn new(targets: Vec<Target>, interval: Duration) -> Self {
        let tabs = targets.len() + usize::from(targets.len() > 1);
        Model {
            engines: targets.into_iter().map(EngineState::new).collect(),
            tab: 0,
            selected: vec![RowKey::Total; tabs],
            window: DEFAULT_WINDOW,
            sort: SortColumn::Name,
            reverse: false,
            frozen_at: None,
            pending: Vec::new(),
            show_help: false,
            interval,
            quit: false,
            retrying: true,
        }
    }

    /// Number of tabs: one per engine, plus "all" when there are several.
    pub fn tab_count(&self) -> usize {
        self.selected.len()
    }

    /// Whether the "all" tab is shown.
    pub fn on_all_tab(&self) -> bool {
        self.engines.len() > 1 && self.tab == self.engines.len()
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        WINDOWS[self.window.min(WINDOWS.len() - 1)]
    }

    /// Takes a scrape result (kept aside while frozen).
    pub fn on_scrape(&mut self, event: ScrapeEvent) {
        if self.frozen_at.is_some() {
            self.pending.push(event);
            return;
        }
        if let Some(engine) = self.engines.get_mut(event.engine) {
            engine.apply(event);
        }
    }

    /// The selected row of the tab shown.
    pub fn selected_row(&self) -> RowKey {
        self.selected
            .get(self.tab)
            .copied()
            .unwrap_or(RowKey::Total)
    }

    /// Does what a key asked. `rows` is the table's row order as drawn (for Up/Down).
    pub fn on_action(&mut self, action: Action, now: Instant, rows: &[RowKey]) {
        match action {
            Action::Quit => {
                if self.show_help {
                    self.show_help = false;
                } else {
                    self.quit = true;
                }
            }
            Action::Help => self.show_help = !self.show_help,
            Action::Up | Action::Down => self.move_selection(action == Action::Down, rows),
            Action::NextEngine => self.tab = (self.tab + 1) % self.tab_count(),
            Action::PrevEngine => {
                self.tab = (self.tab + self.tab_count() - 1) % self.tab_count();
            }
            Action::WiderWindow => self.window = (self.window + 1).min(WINDOWS.len() - 1),
            Action::NarrowerWindow => self.window = self.window.saturating_sub(1),
            Action::Sort => self.sort = self.sort.next(),
            Action::ReverseSort => self.reverse = !self.reverse,
            Action::Freeze => match self.frozen_at {
                Some(_) => {
                    self.frozen_at = None;
                    for event in std::mem::take(&mut self.pending) {
                        self.on_scrape(event);
                    }
                }
                None => self.frozen_at = Some(now),
            },
        }
    }

    fn move_selection(&mut self, down: bool, rows: &[RowKey]) {
        if rows.is_empty() {
            return;
        }
        let current = self.selected_row();
        let at = rows.iter().position(|r| *r == current);
        let next = match (at, down) {
            (None, true) => 0,
            (None, false) => rows.len() - 1,
            (Some(i), true) => (i + 1).min(rows.len() - 1),
            (Some(i), false) => i.saturating_sub(1),
        };
        if let Some(slot) = self.selected.get_mut(self.tab) {
            *slot = rows[next];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::EngineSnapshot;

    fn model(n: usize) -> Model {
        let targets = (0..n)
            .map(|i| Target::parse(&format!("127.0.0.1:{}", 9000 + i)).unwrap())
            .collect();
        Model::new(targets, Duration::from_secs(1))
    }

    #[test]
    fn tabs_cycle_through_engines_and_all() {
        let mut m = model(2);
        let now = Instant::now();
        assert_eq!(m.tab_count(), 3);
        m.on_action(Action::NextEngine, now, &[]);
        m.on_action(Action::NextEngine, now, &[]);
        assert!(m.on_all_tab());
        m.on_action(Action::NextEngine, now, &[]);
        assert_eq!(m.tab, 0);
        m.on_action(Action::PrevEngine, now, &[]);
        assert!(m.on_all_tab());
        assert_eq!(model(1).tab_count(), 1);
    }

    #[test]
    fn window_sort_help_and_quit() {
        let mut m = model(1);
        let now = Instant::now();
        assert_eq!(m.window(), Duration::from_secs(10));
        for _ in 0..20 {
            m.on_action(Action::WiderWindow, now, &[]);
        }
        assert_eq!(m.window(), Duration::from_secs(3600));
        for _ in 0..20 {
            m.on_action(Action::NarrowerWindow, now, &[]);
        }
        assert_eq!(m.window(), Duration::from_secs(5));
        for column in SortColumn::ALL.iter().skip(1) {
            m.on_action(Action::Sort, now, &[]);
            assert_eq!(m.sort, *column);
        }
        m.on_action(Action::Sort, now, &[]);
        assert_eq!(m.sort, SortColumn::Name);
        m.on_action(Action::Help, now, &[]);
        m.on_action(Action::Quit, now, &[]);
        assert!(!m.show_help && !m.quit);
        m.on_action(Action::Quit, now, &[]);
        assert!(m.quit);
    }

    #[test]
    fn selection_moves_through_the_drawn_rows() {
        let mut m = model(1);
        let now = Instant::now();
        let rows = [RowKey::Worker(1), RowKey::Worker(0), RowKey::Total];
        assert_eq!(m.selected_row(), RowKey::Total);
        m.on_action(Action::Up, now, &rows);
        assert_eq!(m.selected_row(), RowKey::Worker(0));
        m.on_action(Action::Up, now, &rows);
        m.on_action(Action::Up, now, &rows);
        assert_eq!(m.selected_row(), RowKey::Worker(1));
        m.on_action(Action::Down, now, &rows);
        assert_eq!(m.selected_row(), RowKey::Worker(0));
    }

    #[test]
    fn freezing_holds_scrapes_until_unfrozen() {
        let mut m = model(1);
        let now = Instant::now();
        m.on_action(Action::Freeze, now, &[]);
        m.on_scrape(ScrapeEvent {
            engine: 0,
            at: now,
            wall: 0.0,
            result: Ok(EngineSnapshot::default()),
        });
        assert!(m.engines[0].history.is_empty());
        assert_eq!(m.engines[0].status, ScrapeStatus::Waiting);
        m.on_action(Action::Freeze, now, &[]);
        assert_eq!(m.engines[0].history.len(), 1);
        assert_eq!(m.engines[0].status, ScrapeStatus::Ok { at: now });
    }

    #[test]
    fn failures_keep_the_history_and_say_why() {
        let mut m = model(1);
        let now = Instant::now();
        m.on_scrape(ScrapeEvent {
            engine: 0,
            at: now,
            wall: 0.0,
            result: Ok(EngineSnapshot::default()),
        });
        m.on_scrape(ScrapeEvent {
            engine: 0,
            at: now + Duration::from_secs(1),
            wall: 1.0,
            result: Err(ScrapeError::Connect(
                std::io::ErrorKind::ConnectionRefused.into(),
            )),
        });
        assert_eq!(m.engines[0].history.len(), 1);
        assert!(matches!(
            m.engines[0].status,
            ScrapeStatus::Failed {
                unreachable: true,
                ..
            }
        ));
        assert_eq!(m.engines[0].last_ok, Some(now));
    }
}
