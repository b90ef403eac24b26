//! The `?` overlay: every key binding, straight from the key table.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph, Widget},
};

use super::{keys::BINDINGS, theme};

pub fn lines() -> Vec<Line<'static>> {
    let mut out: Vec<Line> = BINDINGS
        .iter()
        .map(|b| {
            Line::from(vec![
                Span::styled(format!(" {:<7}", b.shown), theme::key()),
                Span::raw(b.help),
            ])
        })
        .collect();
    out.push(Line::from(vec![
        Span::styled(format!(" {:<7}", "Ctrl-C"), theme::key()),
        Span::raw("quit at once"),
    ]));
    out.push(Line::from(vec![
        Span::styled(format!(" {:<7}", "mouse"), theme::key()),
        Span::raw("click a bar or a module tab; the wheel moves"),
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
        Span::raw("pending"),
    ]));
    out.push(Line::from(vec![
        Span::styled(" ✗ ", Style::new().fg(theme::DROP_RULE)),
        Span::raw("dropped by rule  "),
        Span::styled("✗ ", theme::bold().fg(theme::MANUAL)),
        Span::raw("dropped by hand  "),
        Span::styled("✓ ", theme::bold().fg(theme::KEEP_MANUAL)),
        Span::raw("kept by hand"),
    ]));
    out
}

pub fn render(area: Rect, buf: &mut Buffer) {
    let lines = lines();
    let block = Block::bordered().title(" Keys · any key closes ");
    let one_column = lines.len() as u16 + 2 <= area.height;
    if one_column {
        let w = 62.min(area.width);
        let h = lines.len() as u16 + 2;
        let r = area.centered(Constraint::Length(w), Constraint::Length(h));
        Clear.render(r, buf);
        Paragraph::new(lines).block(block).render(r, buf);
        return;
    }
    // Too short for one column: two side by side, so no key is ever hidden on a small
    // terminal (descriptions may be cut on the right, the keys never are).
    let half = lines.len().div_ceil(2);
    let w = area.width.min(124);
    let h = (half as u16 + 2).min(area.height);
    let r = area.centered(Constraint::Length(w), Constraint::Length(h));
    Clear.render(r, buf);
    let inner = block.inner(r);
    block.render(r, buf);
    let mut right = lines;
    let left: Vec<Line> = right.drain(..half).collect();
    let cw = inner.width / 2;
    Paragraph::new(left).render(Rect::new(inner.x, inner.y, cw, inner.height), buf);
    Paragraph::new(right).render(
        Rect::new(inner.x + cw, inner.y, inner.width - cw, inner.height),
        buf,
    );
}
