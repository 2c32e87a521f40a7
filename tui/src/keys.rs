//! The key-binding table: the one list that both handles keys and draws the help screen.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave the dashboard.
    Quit,
    /// Show or hide the help screen.
    Help,
    /// Select the row above.
    Up,
    /// Select the row below.
    Down,
    /// Show the next engine (or the "all" tab).
    NextEngine,
    /// Show the previous engine.
    PrevEngine,
    /// A longer window for rates and latencies.
    WiderWindow,
    /// A shorter window.
    NarrowerWindow,
    /// Sort the workers table by the next column.
    Sort,
    /// Reverse the sort order.
    ReverseSort,
    /// Freeze or unfreeze the display (scrapes go on and are shown when unfrozen).
    Freeze,
}

/// A key as the table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character, without Ctrl or Alt.
    Char(char),
    /// Ctrl and a character.
    Ctrl(char),
    /// Escape.
    Esc,
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Tab.
    Tab,
    /// Shift-Tab.
    BackTab,
}

impl Key {
    /// How the help screen writes the key.
    pub fn label(self) -> String {
        match self {
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("Ctrl-{}", c.to_ascii_uppercase()),
            Key::Esc => "Esc".into(),
            Key::Up => "↑".into(),
            Key::Down => "↓".into(),
            Key::Tab => "Tab".into(),
            Key::BackTab => "Shift-Tab".into(),
        }
    }

    fn matches(self, event: &KeyEvent) -> bool {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        let alt = event.modifiers.contains(KeyModifiers::ALT);
        match (self, event.code) {
            (Key::Char(want), KeyCode::Char(got)) => !ctrl && !alt && want == got,
            (Key::Ctrl(want), KeyCode::Char(got)) => ctrl && want.eq_ignore_ascii_case(&got),
            (Key::Esc, KeyCode::Esc) => true,
            (Key::Up, KeyCode::Up) => true,
            (Key::Down, KeyCode::Down) => true,
            (Key::Tab, KeyCode::Tab) => !event.modifiers.contains(KeyModifiers::SHIFT),
            (Key::BackTab, KeyCode::BackTab) => true,
            (Key::BackTab, KeyCode::Tab) => event.modifiers.contains(KeyModifiers::SHIFT),
            _ => false,
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The keys, any of which does it.
    pub keys: &'static [Key],
    /// What they do.
    pub action: Action,
    /// The help screen's description.
    pub help: &'static str,
}

/// Every binding, in the order the help screen lists them.
pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[Key::Char('q'), Key::Esc, Key::Ctrl('c')],
        action: Action::Quit,
        help: "quit (Esc closes the help first when it is open)",
    },
    Binding {
        keys: &[Key::Char('?')],
        action: Action::Help,
        help: "show or hide this help",
    },
    Binding {
        keys: &[Key::Up, Key::Char('k')],
        action: Action::Up,
        help: "select the row above (the \"all\" row: every worker)",
    },
    Binding {
        keys: &[Key::Down, Key::Char('j')],
        action: Action::Down,
        help: "select the row below",
    },
    Binding {
        keys: &[Key::Tab],
        action: Action::NextEngine,
        help: "next engine (several URLs: one tab each, then \"all\")",
    },
    Binding {
        keys: &[Key::BackTab],
        action: Action::PrevEngine,
        help: "previous engine",
    },
    Binding {
        keys: &[Key::Char('+'), Key::Char('=')],
        action: Action::WiderWindow,
        help: "longer window for rates and latencies",
    },
    Binding {
        keys: &[Key::Char('-'), Key::Char('_')],
        action: Action::NarrowerWindow,
        help: "shorter window",
    },
    Binding {
        keys: &[Key::Char('s')],
        action: Action::Sort,
        help: "sort the table by the next column",
    },
    Binding {
        keys: &[Key::Char('r')],
        action: Action::ReverseSort,
        help: "reverse the sort order",
    },
    Binding {
        keys: &[Key::Char('f')],
        action: Action::Freeze,
        help: "freeze or unfreeze the display (scraping goes on)",
    },
];

/// The action of a key press, if the table binds it. Key releases and repeats are ignored.
pub fn action_for(event: &KeyEvent) -> Option<Action> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    BINDINGS
        .iter()
        .find(|b| b.keys.iter().any(|k| k.matches(event)))
        .map(|b| b.action)
}

/// The keys of a binding as the help screen writes them: `q, Esc, Ctrl-C`.
pub fn keys_label(binding: &Binding) -> String {
    binding
        .keys
        .iter()
        .map(|k| k.label())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first key bound to `action`, for hints in the footer.
pub fn first_key(action: Action) -> String {
    BINDINGS
        .iter()
        .find(|b| b.action == action)
        .and_then(|b| b.keys.first())
        .map(|k| k.label())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn the_issue_keys() {
        let none = KeyModifiers::NONE;
        let cases = [
            (press(KeyCode::Char('q'), none), Action::Quit),
            (press(KeyCode::Esc, none), Action::Quit),
            (
                press(KeyCode::Char('c'), KeyModifiers::CONTROL),
                Action::Quit,
            ),
            (press(KeyCode::Char('?'), KeyModifiers::SHIFT), Action::Help),
            (press(KeyCode::Up, none), Action::Up),
            (press(KeyCode::Char('k'), none), Action::Up),
            (press(KeyCode::Down, none), Action::Down),
            (press(KeyCode::Char('j'), none), Action::Down),
            (press(KeyCode::Tab, none), Action::NextEngine),
            (
                press(KeyCode::BackTab, KeyModifiers::SHIFT),
                Action::PrevEngine,
            ),
            (
                press(KeyCode::Char('+'), KeyModifiers::SHIFT),
                Action::WiderWindow,
            ),
            (press(KeyCode::Char('-'), none), Action::NarrowerWindow),
            (press(KeyCode::Char('s'), none), Action::Sort),
            (press(KeyCode::Char('f'), none), Action::Freeze),
        ];
        for (event, action) in cases {
            assert_eq!(action_for(&event), Some(action), "{event:?}");
        }
    }

    #[test]
    fn unbound_and_released_keys_do_nothing() {
        assert_eq!(
            action_for(&press(KeyCode::Char('x'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            action_for(&press(KeyCode::Char('q'), KeyModifiers::CONTROL)),
            None
        );
        let mut release = press(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(action_for(&release), None);
    }

    #[test]
    fn every_action_has_a_binding_and_no_key_is_bound_twice() {
        let mut seen = Vec::new();
        for b in BINDINGS {
            for k in b.keys {
                assert!(!seen.contains(k), "{k:?} bound twice");
                seen.push(*k);
            }
        }
        assert_eq!(keys_label(&BINDINGS[0]), "q, Esc, Ctrl-C");
        assert_eq!(first_key(Action::Help), "?");
    }
}
