//! Running the dashboard: the terminal loop, and `--once`.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::DefaultTerminal;

use crate::keys;
use crate::model::{Model, RowKey};
use crate::render;
use crate::scrape::{self, ScrapeEvent, Target};
use crate::text;
use crate::tty::{Input, Waited};
use crate::view;

/// How often the screen is redrawn when nothing happens (ages and uptime move on).
pub const REDRAW: Duration = Duration::from_millis(250);

/// Starts one scraper thread per target and returns the channel their results arrive on.
pub fn start_scrapers(targets: &[Target], interval: Duration) -> io::Result<Receiver<ScrapeEvent>> {
    let (tx, rx) = mpsc::channel();
    for (i, target) in targets.iter().enumerate() {
        scrape::spawn_scraper(i, target.clone(), interval, tx.clone())?;
    }
    Ok(rx)
}

/// Why the dashboard ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// A quit key.
    Quit,
    /// `stop` was set (SIGTERM, SIGHUP).
    Stopped,
    /// The terminal went away (hung up, end of input, an error): the reason.
    TerminalGone(String),
}

/// Runs the interactive dashboard until a quit key, until `stop` is set (SIGTERM, SIGHUP: the
/// caller registers them, so the terminal is restored then too), or until the terminal `input`
/// watches goes away. The caller sets the terminal up (and restores it after, also on panic).
/// An error writing to the terminal is returned.
pub fn run(
    terminal: &mut DefaultTerminal,
    mut model: Model,
    events: Receiver<ScrapeEvent>,
    input: &Input,
    stop: &AtomicBool,
) -> io::Result<Ended> {
    let mut dash = view::build(&model, Instant::now());
    loop {
        terminal.draw(|frame| render::draw(frame, &dash))?;
        // crossterm is asked only when bytes are waiting: on a terminal that went away its
        // reader would retry for ever (see `tty`).
        match input.wait(REDRAW) {
            Waited::Input => {
                while event::poll(Duration::ZERO)? {
                    match event::read()? {
                        Event::Key(key) if key.kind != KeyEventKind::Release => {
                            if let Some(action) = keys::action_for(&key) {
                                let rows: Vec<RowKey> =
                                    dash.table.rows.iter().map(|r| r.key).collect();
                                model.on_action(action, Instant::now(), &rows);
                            }
                        }
                        // A resize needs nothing but the redraw below; other events are ignored.
                        _ => {}
                    }
                }
            }
            Waited::Idle => {}
            Waited::Gone(why) => return Ok(Ended::TerminalGone(why)),
        }
        while let Ok(event) = events.try_recv() {
            model.on_scrape(event);
        }
        if model.quit {
            return Ok(Ended::Quit);
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(Ended::Stopped);
        }
        dash = view::build(&model, Instant::now());
    }
}

/// `--once`: scrapes every engine twice, `interval` apart, prints a text snapshot of each
/// engine (and of "all" with several), and says whether every engine answered both times.
pub fn once(targets: &[Target], interval: Duration) -> (String, bool) {
    let mut model = Model::new(targets.to_vec(), interval);
    model.retrying = false;
    let timeout = interval.clamp(Duration::from_millis(200), Duration::from_secs(5));
    let mut all_ok = true;
    for round in 0..2 {
        if round == 1 {
            std::thread::sleep(interval);
        }
        let handles: Vec<_> = targets
            .iter()
            .map(|t| {
                let t = t.clone();
                std::thread::spawn(move || scrape::scrape(&t, timeout))
            })
            .collect();
        for (engine, handle) in handles.into_iter().enumerate() {
            let result = handle.join().unwrap_or_else(|_| {
                Err(scrape::ScrapeError::Http("scraper thread panicked".into()))
            });
            all_ok &= result.is_ok();
            model.on_scrape(ScrapeEvent {
                engine,
                at: Instant::now(),
                wall: scrape::wall_clock(),
                result,
            });
        }
    }
    let mut out = String::new();
    for tab in 0..model.tab_count() {
        model.tab = tab;
        if tab > 0 {
            out.push('\n');
        }
        out.push_str(&text::render(&view::build(&model, Instant::now())));
    }
    (out, all_ok)
}
