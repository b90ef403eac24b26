//! The help overlay's rows, wrapped to the overlay's width: one column that scrolls, so every
//! key and every word of its description shows at any terminal size. Pure text (the view
//! styles it), shared by the view that draws it and the state that clamps its scrolling.

use snrscope::plan::Mark;

use super::keys;

/// Width of the key column.
const KEY_W: usize = 8;

/// What a legend row's glyph shows (the view picks the glyph's style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Glyph {
    Infinite,
    Failed,
    AllZero,
    Pending,
    NoWeight,
    Mark(Mark),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Heading(&'static str),
    /// A key (empty on a description's continuation rows) and (part of) its description.
    Binding(&'static str, String),
    Legend(Glyph, &'static str),
    Blank,
}

/// The overlay's outer width and the rows' height at most, on a `w`×`h` terminal.
pub fn frame(w: u16, h: u16) -> (u16, usize) {
    let width = w.min(84);
    (width, h.saturating_sub(2).max(1) as usize)
}

/// Every row, for an overlay `width` cells wide (borders included).
pub fn rows(width: u16) -> Vec<Row> {
    let text_w = (width as usize).saturating_sub(2 + 1 + KEY_W).max(10);
    let mut out = Vec::new();
    for (heading, table) in keys::sections() {
        if !heading.is_empty() {
            out.push(Row::Heading(heading));
        }
        for b in table {
            binding(&mut out, b.shown, b.help, text_w);
        }
    }
    binding(
        &mut out,
        "mouse",
        "click a bar, a list row or a module tab; the wheel moves",
        text_w,
    );
    out.push(Row::Blank);
    out.push(Row::Heading("marks"));
    for (g, t) in [
        (Glyph::Infinite, "infinite SNR"),
        (Glyph::Failed, "failed"),
        (Glyph::AllZero, "all-zero"),
        (Glyph::Pending, "pending"),
        (Glyph::NoWeight, "no such weight"),
        (Glyph::Mark(Mark::DropByRule), "dropped by the rule"),
        (Glyph::Mark(Mark::DropManual), "dropped by hand"),
        (Glyph::Mark(Mark::KeepManual), "kept by hand"),
        (
            Glyph::Mark(Mark::DropManualAgrees),
            "dim: by hand, the rule agrees",
        ),
    ] {
        out.push(Row::Legend(g, t));
    }
    out
}

/// The largest scroll offset that still fills the overlay on a `w`×`h` terminal.
pub fn max_scroll(w: u16, h: u16) -> usize {
    let (width, height) = frame(w, h);
    rows(width).len().saturating_sub(height)
}

/// A key and its description, the description word-wrapped under itself.
fn binding(out: &mut Vec<Row>, key: &'static str, help: &str, text_w: usize) {
    let mut line = String::new();
    let mut first = true;
    for word in help.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > text_w {
            out.push(Row::Binding(if first { key } else { "" }, line));
            first = false;
            line = String::new();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push(Row::Binding(if first { key } else { "" }, line));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_wrap_under_themselves_and_lose_no_word() {
        let mut out = Vec::new();
        binding(
            &mut out,
            "Esc",
            "close; else cancel the export; else the scan",
            20,
        );
        assert_eq!(
            out,
            vec![
                Row::Binding("Esc", "close; else cancel".into()),
                Row::Binding("", "the export; else the".into()),
                Row::Binding("", "scan".into()),
            ]
        );
    }
}
