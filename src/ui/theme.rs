//! Colours and glyphs, in one place so the chart, the legend and the help agree.

use ratatui::style::{Color, Modifier, Style};

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
pub const GLYPH_DROP: &str = "✗";
pub const GLYPH_KEEP_MANUAL: &str = "✓";

pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

pub fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

pub fn key() -> Style {
    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
}
