//! The `?` overlay (every key binding, straight from the key tables) and the `!` overlay (the
//! model's warnings).

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph, Widget, Wrap},
};

use super::theme;
use crate::ui::keys;
use snrscope::plan::Mark;

pub fn lines() -> Vec<Line<'static>> {
    let mut out: Vec<Line> = Vec::new();
    for (heading, table) in keys::sections() {
        if !heading.is_empty() {
            out.push(Line::styled(format!(" {heading}"), theme::bold()));
        }
        for b in table {
            out.push(Line::from(vec![
                Span::styled(format!(" {:<7}", b.shown), theme::key()),
                Span::raw(b.help),
            ]));
        }
    }
    out.push(Line::from(vec![
        Span::styled(format!(" {:<7}", "mouse"), theme::key()),
        Span::raw("click a bar, a list row or a module tab; the wheel moves"),
    ]));
    out.push(Line::raw(""));
    out.push(Line::from(vec![
        Span::styled(" ∞ ", Style::new().fg(theme::INFINITE)),
        Span::raw("infinite SNR  "),
        Span::styled("! ", Style::new().fg(theme::FAILED)),
        Span::raw("failed  "),
        Span::styled("∅ ", Style::new().fg(theme::FAILED)),
        Span::raw("all-zero  "),
        Span::styled("· ", Style::new().fg(theme::PENDING)),
        Span::raw("pending  "),
        Span::styled("- ", theme::dim()),
        Span::raw("no such weight"),
    ]));
    let mut marks = vec![Span::raw(" ")];
    for (m, text) in [
        (Mark::DropByRule, "dropped by rule  "),
        (Mark::DropManual, "dropped by hand  "),
        (Mark::KeepManual, "kept by hand  "),
        (Mark::DropManualAgrees, "dim: by hand, the rule agrees"),
    ] {
        if let Some((g, s)) = theme::mark(m) {
            marks.push(Span::styled(format!("{g} "), s));
            marks.push(Span::raw(text));
        }
    }
    out.push(Line::from(marks));
    out
}

pub fn render(area: Rect, buf: &mut Buffer) {
    let lines = lines();
    let block = Block::bordered().title(" Keys · any key closes ");
    let one_column = lines.len() as u16 + 2 <= area.height;
    if one_column {
        let w = 72.min(area.width);
        let h = lines.len() as u16 + 2;
        let r = area.centered(Constraint::Length(w), Constraint::Length(h));
        Clear.render(r, buf);
        Paragraph::new(lines).block(block).render(r, buf);
        return;
    }
    // Too short for one column: side by side, so no key is ever hidden on a small terminal
    // (descriptions may be cut on the right, the keys never are).
    let w = area.width.min(150);
    let inner_h = area.height.saturating_sub(2).max(1) as usize;
    let columns = lines.len().div_ceil(inner_h).clamp(2, 3);
    let per = lines.len().div_ceil(columns);
    let h = (per as u16 + 2).min(area.height);
    let r = area.centered(Constraint::Length(w), Constraint::Length(h));
    Clear.render(r, buf);
    let inner = block.inner(r);
    block.render(r, buf);
    let cw = inner.width / columns as u16;
    for (c, chunk) in lines.chunks(per).enumerate() {
        let x = inner.x + c as u16 * cw;
        let width = if c + 1 == columns {
            inner.width - c as u16 * cw
        } else {
            cw
        };
        Paragraph::new(chunk.to_vec()).render(Rect::new(x, inner.y, width, inner.height), buf);
    }
}

pub fn render_warnings(warnings: &[String], area: Rect, buf: &mut Buffer) {
    let mut lines: Vec<Line> = warnings
        .iter()
        .map(|w| Line::raw(format!("• {}", snrscope::util::text::escape_controls(w))))
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled("any key closes", theme::dim()));
    let w = area.width.min(100);
    let inner = w.saturating_sub(2).max(1) as usize;
    let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
    let h = (rows as u16 + 2).min(area.height);
    let r = area.centered(Constraint::Length(w), Constraint::Length(h));
    Clear.render(r, buf);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(format!(" {} warning(s) about the model ", warnings.len())))
        .render(r, buf);
}
