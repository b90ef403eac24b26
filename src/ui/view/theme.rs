//! Colours and glyphs, in one place so the chart, the legend and the help agree. Every
//! distinction colour makes is also made by a glyph or a modifier, so the screen reads the same
//! with `NO_COLOR=1` (which crossterm honours by dropping colours, not modifiers).

use ratatui::style::{Color, Modifier, Style};

use snrscope::plan::Mark;

/// Infinite-SNR bars: the seed's pruning candidates, so they get the loudest colour.
pub const INFINITE: Color = Color::Magenta;
pub const FINITE: Color = Color::Cyan;
pub const FAILED: Color = Color::Red;
pub const PENDING: Color = Color::DarkGray;
pub const DROP_RULE: Color = Color::Red;
/// Hand-made choices stand apart from the rule's.
pub const MANUAL: Color = Color::Yellow;
pub const KEEP_MANUAL: Color = Color::Green;
pub const CURSOR_BG: Color = Color::Indexed(237);
pub const ACCENT: Color = Color::LightBlue;

pub const GLYPH_INFINITE: &str = "∞";
pub const GLYPH_FAILED: &str = "!";
/// An all-zero matrix: S[0] = 0, so the ratio is NaN.
pub const GLYPH_NAN: &str = "∅";
pub const GLYPH_PENDING: &str = "·";
pub const GLYPH_MISSING: &str = "-";
pub const GLYPH_DROP_RULE: &str = "✗";
pub const GLYPH_DROP_HAND: &str = "✖";
pub const GLYPH_KEEP_HAND: &str = "✓";
/// Under the cursor's bar when it carries no mark.
pub const GLYPH_CURSOR: &str = "^";

pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// Dim in colour and, for monochrome screens, by the DIM attribute too.
pub fn faint() -> Style {
    dim().add_modifier(Modifier::DIM)
}

pub fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

pub fn key() -> Style {
    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
}

/// The glyph and style of a layer's mark; `None` for a layer the rule keeps.
pub fn mark(m: Mark) -> Option<(&'static str, Style)> {
    Some(match m {
        Mark::Keep => return None,
        Mark::DropByRule => (GLYPH_DROP_RULE, Style::new().fg(DROP_RULE)),
        Mark::DropManual => (GLYPH_DROP_HAND, bold().fg(MANUAL)),
        Mark::KeepManual => (GLYPH_KEEP_HAND, bold().fg(KEEP_MANUAL)),
        // Recorded hand choices the rule agrees with: the same glyph, dim.
        Mark::DropManualAgrees => (GLYPH_DROP_HAND, faint()),
        Mark::KeepManualAgrees => (GLYPH_KEEP_HAND, faint()),
    })
}

/// A layer's fate in words (details pane, sorted list).
pub fn fate(m: Mark) -> (&'static str, Style) {
    match m {
        Mark::Keep => ("kept", dim()),
        Mark::DropByRule => ("dropped by the rule", Style::new().fg(DROP_RULE)),
        Mark::DropManual => ("dropped by hand", bold().fg(MANUAL)),
        Mark::KeepManual => (
            "kept by hand (the rule would drop it)",
            bold().fg(KEEP_MANUAL),
        ),
        Mark::DropManualAgrees => ("dropped by hand (the rule agrees)", faint()),
        Mark::KeepManualAgrees => ("kept by hand (the rule agrees)", faint()),
    }
}
