//! The key bindings, as data: per mode, a table that the key handler, the help overlay and the
//! hint line all read, so none of them can disagree with what the keys do. Looking a key up
//! needs only the mode, not the app.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::action::{Action, Edit};

/// Which table a key is looked up in: the innermost thing on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    Warnings,
    Jump,
    Dialog,
    /// A yes/no question (replace a file, discard hand choices, export anyway).
    Confirm,
    QuitPrompt,
}

pub struct Binding {
    pub keys: &'static [KeyCode],
    /// With Ctrl held (Shift is part of the character itself: 'G', '?').
    pub ctrl: bool,
    /// How help and the hint line spell the keys.
    pub shown: &'static str,
    pub action: Action,
    pub help: &'static str,
    /// The word on the hint line, for the few keys it shows.
    pub hint: Option<&'static str>,
    /// How the hint line spells the keys, when not as help does.
    pub hint_keys: Option<&'static str>,
}

const fn b(
    keys: &'static [KeyCode],
    shown: &'static str,
    action: Action,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        ctrl: false,
        shown,
        action,
        help,
        hint: None,
        hint_keys: None,
    }
}

const fn hinted(
    keys: &'static [KeyCode],
    shown: &'static str,
    action: Action,
    help: &'static str,
    hint: &'static str,
) -> Binding {
    Binding {
        keys,
        ctrl: false,
        shown,
        action,
        help,
        hint: Some(hint),
        hint_keys: None,
    }
}

const fn ctrl(
    keys: &'static [KeyCode],
    shown: &'static str,
    action: Action,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        ctrl: true,
        shown,
        action,
        help,
        hint: None,
        hint_keys: None,
    }
}

use KeyCode::*;

/// The explorer's own keys, in the order help lists them.
pub const NORMAL: &[Binding] = &[
    Binding {
        keys: &[KeyCode::Left, Char('h'), Up, Char('k')],
        ctrl: false,
        shown: "← h",
        action: Action::Left,
        help: "previous layer (↑ in the sorted view)",
        hint: Some("move"),
        hint_keys: Some("←→"),
    },
    b(
        &[KeyCode::Right, Char('l'), Down, Char('j')],
        "→ l",
        Action::Right,
        "next layer (↓ in the sorted view)",
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
    ctrl(
        &[Char('u')],
        "Ctrl-U",
        Action::HalfPageLeft,
        "half a page of layers back",
    ),
    ctrl(
        &[Char('d')],
        "Ctrl-D",
        Action::HalfPageRight,
        "half a page of layers on",
    ),
    hinted(
        &[Char(':')],
        ": 0-9",
        Action::Jump(None),
        "jump to layer N (type the number, Enter)",
        "jump",
    ),
    b(
        &[Char('/')],
        "/",
        Action::Jump(None),
        "search a layer by its number (type it, Enter puts the cursor there)",
    ),
    b(
        &[Char('n')],
        "n",
        Action::NextInfinite,
        "next layer with infinite SNR",
    ),
    b(
        &[Char('N')],
        "N",
        Action::PrevInfinite,
        "previous layer with infinite SNR",
    ),
    hinted(
        &[Tab],
        "Tab",
        Action::NextModule,
        "next module type (scans it if needed)",
        "module",
    ),
    b(
        &[BackTab],
        "S-Tab",
        Action::PrevModule,
        "previous module type",
    ),
    hinted(
        &[Char(' ')],
        "Space",
        Action::Toggle,
        "drop / keep the layer under the cursor (by hand)",
        "toggle",
    ),
    b(
        &[Char('x')],
        "x",
        Action::Forget,
        "forget the hand choice of this layer (the rule decides)",
    ),
    b(
        &[Char('a')],
        "a",
        Action::ApplyRule,
        "back to the rule alone (asks before forgetting hand choices)",
    ),
    b(
        &[Char('c')],
        "c",
        Action::KeepAll,
        "keep every layer (by hand)",
    ),
    b(
        &[Char('i')],
        "i",
        Action::Invert,
        "invert the choice (by hand)",
    ),
    hinted(
        &[Char('r')],
        "r",
        Action::CycleRule,
        "next rule: infinite, lowest K, below X",
        "rule",
    ),
    b(
        &[Char('+'), Char('=')],
        "+",
        Action::RuleUp,
        "the rule drops one layer more",
    ),
    b(
        &[Char('-')],
        "-",
        Action::RuleDown,
        "the rule drops one layer fewer",
    ),
    b(
        &[Char('d')],
        "d",
        Action::DriveHere,
        "the tab on screen (SNR or metric) drives the choice (again: the default)",
    ),
    hinted(
        &[Char('u')],
        "u",
        Action::Undo,
        "undo the last change of the choice",
        "undo",
    ),
    ctrl(&[Char('r')], "Ctrl-R", Action::Redo, "redo"),
    b(
        &[Char('L')],
        "L",
        Action::ToggleScale,
        "log / linear SNR scale",
    ),
    b(
        &[Char('m')],
        "m",
        Action::SwitchMethod,
        "SVD / Gram method for the scans that follow",
    ),
    b(
        &[Char('s')],
        "s",
        Action::ToggleSpectrum,
        "large spectrum view of the layer",
    ),
    b(
        &[Char('o')],
        "o",
        Action::ToggleSorted,
        "layers sorted by SNR, or a metric lowest first (Space works there too)",
    ),
    b(&[Char('!')], "!", Action::Warnings, "the model's warnings"),
    hinted(
        &[Char('y')],
        "y",
        Action::WriteYaml,
        "write the mergekit YAML",
        "yaml",
    ),
    hinted(
        &[Char('e')],
        "e",
        Action::ExportModel,
        "export the pruned model",
        "export",
    ),
    hinted(
        &[Char('p')],
        "p",
        Action::Evaluate,
        "perplexity of the original and of the current choice (Esc cancels)",
        "ppl",
    ),
    b(
        &[Char('P')],
        "P",
        Action::Probe,
        "probe: Block Influence and angular distances as tabs (Esc cancels)",
    ),
    b(
        &[Char('w')],
        "w",
        Action::WriteScan,
        "write the scan results as JSON",
    ),
    b(
        &[Char('U')],
        "U",
        Action::WriteUnfrozen,
        "write Spectrum's unfrozen-parameters YAML",
    ),
    b(
        &[Esc],
        "Esc",
        Action::Cancel,
        "close; else cancel the export; else the perplexity; else the scan",
    ),
    hinted(&[Char('?')], "?", Action::Help, "this help", "help"),
    hinted(
        &[Char('q')],
        "q",
        Action::Quit,
        "quit (asks if the choice is not written)",
        "quit",
    ),
    ctrl(
        &[Char('c')],
        "Ctrl-C",
        Action::ForceQuit,
        "quit (asks as q does; again at the prompt quits at once)",
    ),
];

/// Keys inside a dialog; any other character is typed into the field.
pub const DIALOG: &[Binding] = &[
    hinted(&[Enter], "Enter", Action::Submit, "write", "write"),
    hinted(&[Esc], "Esc", Action::Cancel, "close the dialog", "cancel"),
    hinted(
        &[Tab, BackTab],
        "Tab",
        Action::NextField,
        "next field",
        "next field",
    ),
    Binding {
        keys: &[Char('u')],
        ctrl: true,
        shown: "Ctrl-U",
        action: Action::Edit(Edit::Clear),
        help: "clear the field",
        hint: Some("clear"),
        hint_keys: None,
    },
    b(
        &[KeyCode::Left],
        "←",
        Action::Edit(Edit::Left),
        "cursor left",
    ),
    b(
        &[KeyCode::Right],
        "→",
        Action::Edit(Edit::Right),
        "cursor right",
    ),
    b(
        &[KeyCode::Home],
        "Home",
        Action::Edit(Edit::Home),
        "start of the field",
    ),
    ctrl(
        &[Char('a')],
        "Ctrl-A",
        Action::Edit(Edit::Home),
        "start of the field",
    ),
    b(
        &[KeyCode::End],
        "End",
        Action::Edit(Edit::End),
        "end of the field",
    ),
    ctrl(
        &[Char('e')],
        "Ctrl-E",
        Action::Edit(Edit::End),
        "end of the field",
    ),
    b(
        &[Backspace],
        "Bksp",
        Action::Edit(Edit::Backspace),
        "delete left",
    ),
    b(
        &[Delete],
        "Delete",
        Action::Edit(Edit::Delete),
        "delete right",
    ),
];

pub const CONFIRM: &[Binding] = &[
    hinted(
        &[Char('y'), Char('Y')],
        "y",
        Action::Answer(true),
        "yes",
        "yes",
    ),
    hinted(
        &[Char('n'), Char('N'), Esc],
        "n Esc",
        Action::Answer(false),
        "no",
        "no",
    ),
];

pub const QUIT_PROMPT: &[Binding] = &[
    hinted(
        &[Char('w'), Char('y')],
        "w",
        Action::WriteThenQuit,
        "write the YAML, then quit",
        "write the YAML, then quit",
    ),
    hinted(
        &[Char('q')],
        "q",
        Action::Answer(true),
        "quit without writing",
        "quit without writing",
    ),
    hinted(&[Esc, Char('n')], "Esc", Action::Cancel, "stay", "stay"),
];

/// Keys at the jump prompt; digits are typed.
pub const JUMP: &[Binding] = &[
    hinted(&[Enter], "Enter", Action::Submit, "go to the layer", "go"),
    hinted(&[Esc], "Esc", Action::Cancel, "cancel", "cancel"),
    b(
        &[Backspace],
        "Bksp",
        Action::Edit(Edit::Backspace),
        "delete a digit",
    ),
];

/// Keys in the help overlay: it scrolls, and closes only on these three (any other key used
/// to close it, so a j meant for scrolling lost the page).
pub const HELP: &[Binding] = &[
    hinted(
        &[Char('j'), Down],
        "j ↓",
        Action::ScrollLines(1),
        "scroll down",
        "scroll",
    ),
    b(
        &[Char('k'), Up],
        "k ↑",
        Action::ScrollLines(-1),
        "scroll up",
    ),
    hinted(
        &[PageDown, Char(' ')],
        "PgDn",
        Action::ScrollPages(1),
        "one page down",
        "page",
    ),
    b(&[PageUp], "PgUp", Action::ScrollPages(-1), "one page up"),
    b(
        &[Home, Char('g')],
        "Home g",
        Action::ScrollPages(-1000),
        "top",
    ),
    b(
        &[End, Char('G')],
        "End G",
        Action::ScrollPages(1000),
        "bottom",
    ),
    hinted(
        &[Esc, Char('?'), Char('q')],
        "Esc ? q",
        Action::Cancel,
        "close the help",
        "close",
    ),
];

fn table(mode: Mode) -> &'static [Binding] {
    match mode {
        Mode::Normal => NORMAL,
        Mode::Dialog => DIALOG,
        Mode::Confirm => CONFIRM,
        Mode::QuitPrompt => QUIT_PROMPT,
        Mode::Jump => JUMP,
        Mode::Help => HELP,
        Mode::Warnings => &[],
    }
}

/// The hint line's entries for a mode: (keys, word).
pub fn hints(mode: Mode) -> Vec<(&'static str, &'static str)> {
    match mode {
        Mode::Warnings => vec![("any key", "close")],
        _ => table(mode)
            .iter()
            .filter_map(|b| b.hint.map(|h| (b.hint_keys.unwrap_or(b.shown), h)))
            .collect(),
    }
}

fn lookup(bindings: &[Binding], key: &KeyEvent) -> Option<Action> {
    // Shift is part of the character itself ('G', '?'); Alt makes a different key.
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if key.modifiers.contains(KeyModifiers::ALT) {
        return None;
    }
    let code = match key.code {
        // Terminals report Ctrl-R as 'r' with Control (some as 'R').
        Char(c) if ctrl => Char(c.to_ascii_lowercase()),
        c => c,
    };
    bindings
        .iter()
        .find(|b| b.ctrl == ctrl && b.keys.contains(&code))
        .map(|b| b.action)
}

/// The action a key means in `mode`.
pub fn action_for(mode: Mode, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    // Ctrl-C works everywhere: in raw mode it is an ordinary key.
    if ctrl && matches!(key.code, Char('c') | Char('C')) {
        return Some(Action::ForceQuit);
    }
    match mode {
        Mode::Normal => match key.code {
            Char(d) if d.is_ascii_digit() && !ctrl => Some(Action::Jump(Some(d))),
            _ => lookup(NORMAL, &key),
        },
        Mode::Help => lookup(HELP, &key),
        Mode::Warnings => Some(Action::Cancel),
        Mode::Confirm => lookup(CONFIRM, &key),
        Mode::QuitPrompt => lookup(QUIT_PROMPT, &key),
        Mode::Jump => lookup(JUMP, &key).or(match key.code {
            Char(d) if d.is_ascii_digit() && !ctrl => Some(Action::Edit(Edit::Insert(d))),
            _ => None,
        }),
        Mode::Dialog => lookup(DIALOG, &key).or(match key.code {
            Char(c) if !ctrl => Some(Action::Edit(Edit::Insert(c))),
            _ => None,
        }),
    }
}

/// Every table help shows, with a heading.
pub fn sections() -> [(&'static str, &'static [Binding]); 5] {
    [
        ("", NORMAL),
        ("in a dialog", DIALOG),
        ("at a question", CONFIRM),
        ("at the quit prompt", QUIT_PROMPT),
        ("in this help", HELP),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn every_normal_binding_is_reachable_by_its_keys() {
        for b in NORMAL {
            for &k in b.keys {
                let mods = if b.ctrl {
                    KeyModifiers::CONTROL
                } else {
                    KeyModifiers::NONE
                };
                assert_eq!(
                    action_for(Mode::Normal, KeyEvent::new(k, mods)),
                    Some(b.action),
                    "{}",
                    b.shown
                );
            }
        }
    }

    #[test]
    fn modes_read_their_own_tables() {
        assert_eq!(
            action_for(Mode::Normal, key(Char('y'))),
            Some(Action::WriteYaml)
        );
        assert_eq!(
            action_for(Mode::Confirm, key(Char('y'))),
            Some(Action::Answer(true))
        );
        assert_eq!(
            action_for(Mode::QuitPrompt, key(Char('w'))),
            Some(Action::WriteThenQuit)
        );
        assert_eq!(
            action_for(Mode::QuitPrompt, key(Char('q'))),
            Some(Action::Answer(true))
        );
        assert_eq!(action_for(Mode::QuitPrompt, key(Esc)), Some(Action::Cancel));
        assert_eq!(action_for(Mode::QuitPrompt, key(Char('x'))), None);
        assert_eq!(
            action_for(Mode::Dialog, key(Char('q'))),
            Some(Action::Edit(Edit::Insert('q')))
        );
        assert_eq!(
            action_for(Mode::Normal, key(Char('7'))),
            Some(Action::Jump(Some('7')))
        );
        assert_eq!(
            action_for(
                Mode::Normal,
                KeyEvent::new(Char('r'), KeyModifiers::CONTROL)
            ),
            Some(Action::Redo)
        );
        assert_eq!(
            action_for(
                Mode::Dialog,
                KeyEvent::new(Char('c'), KeyModifiers::CONTROL)
            ),
            Some(Action::ForceQuit)
        );
    }
}
