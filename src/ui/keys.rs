//! The key bindings: one table that both the key handler and the help overlay read, so the
//! help can never disagree with what the keys do.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{Action, App, Edit, Overlay};

pub struct Binding {
    pub keys: &'static [KeyCode],
    /// How the help overlay spells the keys.
    pub shown: &'static str,
    pub action: Action,
    pub help: &'static str,
}

const fn b(
    keys: &'static [KeyCode],
    shown: &'static str,
    action: Action,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        shown,
        action,
        help,
    }
}

use KeyCode::*;

pub const BINDINGS: &[Binding] = &[
    b(
        &[KeyCode::Left, Char('h')],
        "← h",
        Action::Left,
        "previous layer",
    ),
    b(
        &[KeyCode::Right, Char('l')],
        "→ l",
        Action::Right,
        "next layer",
    ),
    b(
        &[KeyCode::Home, Char('g')],
        "Home g",
        Action::Home,
        "first layer",
    ),
    b(
        &[KeyCode::End, Char('G')],
        "End G",
        Action::End,
        "last layer",
    ),
    b(
        &[PageUp],
        "PgUp",
        Action::PageLeft,
        "one page of layers back",
    ),
    b(
        &[PageDown],
        "PgDn",
        Action::PageRight,
        "one page of layers on",
    ),
    b(
        &[Tab],
        "Tab",
        Action::NextModule,
        "next module type (scans it if needed)",
    ),
    b(
        &[BackTab],
        "S-Tab",
        Action::PrevModule,
        "previous module type",
    ),
    b(
        &[Char(' ')],
        "Space",
        Action::Toggle,
        "drop / keep the layer under the cursor",
    ),
    b(
        &[Char('a')],
        "a",
        Action::ApplyRule,
        "re-apply the rule (forget hand changes)",
    ),
    b(&[Char('c')], "c", Action::Clear, "keep every layer"),
    b(&[Char('i')], "i", Action::Invert, "invert the choice"),
    b(
        &[Char('r')],
        "r",
        Action::CycleRule,
        "next rule: infinite, lowest K, below X",
    ),
    b(
        &[Char('+'), Char('=')],
        "+",
        Action::RuleUp,
        "rule drops one layer more",
    ),
    b(
        &[Char('-')],
        "-",
        Action::RuleDown,
        "rule drops one layer fewer",
    ),
    b(
        &[Char('L')],
        "L",
        Action::ToggleScale,
        "log / linear SNR scale",
    ),
    b(
        &[Char('s')],
        "s",
        Action::ToggleSpectrum,
        "large spectrum view of the layer",
    ),
    b(
        &[Char('y')],
        "y",
        Action::ExportYaml,
        "write the mergekit YAML",
    ),
    b(
        &[Char('e')],
        "e",
        Action::ExportModel,
        "export the pruned model",
    ),
    b(
        &[Char('w')],
        "w",
        Action::WriteScan,
        "write the scan results as JSON",
    ),
    b(
        &[Esc],
        "Esc",
        Action::Cancel,
        "close / cancel the scan or export",
    ),
    b(&[Char('?')], "?", Action::Help, "this help"),
    b(
        &[Char('q')],
        "q",
        Action::Quit,
        "quit (asks if the choice is unsaved)",
    ),
];

/// Ctrl-C is not in the table: in raw mode it is an ordinary key, and it must work in every
/// mode, dialogs included.
fn is_ctrl_c(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && matches!(key.code, Char('c') | Char('C'))
}

pub fn lookup(key: &KeyEvent) -> Option<Action> {
    // Shift is part of the character itself ('G', '?'); other modifiers make a different key.
    let mods = key.modifiers - KeyModifiers::SHIFT;
    if !mods.is_empty() {
        return None;
    }
    BINDINGS
        .iter()
        .find(|b| b.keys.contains(&key.code))
        .map(|b| b.action)
}

/// The action a key means in the app's current mode.
pub fn action_for(app: &App, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if is_ctrl_c(&key) {
        return Some(Action::ForceQuit);
    }
    match &app.overlay {
        Overlay::Dialog(_) => {
            let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
            let edit = |e| Some(Action::DialogEdit(e));
            match key.code {
                Enter => Some(Action::DialogSubmit),
                Esc => Some(Action::Cancel),
                Backspace => edit(Edit::Backspace),
                Delete => edit(Edit::Delete),
                KeyCode::Left => edit(Edit::Left),
                KeyCode::Right => edit(Edit::Right),
                KeyCode::Home => edit(Edit::Home),
                KeyCode::End => edit(Edit::End),
                Char('u') if ctrl => edit(Edit::Clear),
                Char('a') if ctrl => edit(Edit::Home),
                Char('e') if ctrl => edit(Edit::End),
                Char(c) if !ctrl => edit(Edit::Insert(c)),
                _ => None,
            }
        }
        Overlay::ConfirmQuit => match key.code {
            Char('y') | Char('Y') | Char('q') | Enter => Some(Action::Confirm(true)),
            _ => Some(Action::Confirm(false)),
        },
        Overlay::Help => match lookup(&key) {
            Some(a @ (Action::Help | Action::Cancel | Action::Quit)) => Some(a),
            // Any other key just closes the help.
            _ => Some(Action::Help),
        },
        Overlay::None => lookup(&key),
    }
}
