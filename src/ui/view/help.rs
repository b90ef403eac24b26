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
use crate::ui::help_rows::{self, Glyph, Row};

fn line(row: &Row) -> Line<'static> {
    match row {
        Row::Heading(h) => Line::styled(format!(" {h}"), theme::bold()),
        Row::Binding(key, text) => Line::from(vec![
            Span::styled(format!(" {key:<7} "), theme::key()),
            Span::raw(text.clone()),
        ]),
        Row::Legend(g, text) => {
            let (glyph, style) = match g {
                Glyph::Infinite => ("∞", Style::new().fg(theme::INFINITE)),
                Glyph::Failed => ("!", Style::new().fg(theme::FAILED)),
                Glyph::AllZero => ("∅", Style::new().fg(theme::FAILED)),
                Glyph::Pending => ("·", Style::new().fg(theme::PENDING)),
                Glyph::NoWeight => ("-", theme::dim()),
                Glyph::Mark(m) => theme::mark(*m).unwrap_or((" ", Style::new())),
            };
            Line::from(vec![
                Span::raw(" "),
                Span::styled(glyph, style),
                Span::raw(format!(" {text}")),
            ])
        }
        Row::Blank => Line::raw(""),
    }
}

/// The help overlay, `scroll` rows down: one column of every key, wrapped to its width, that
/// scrolls (the title says where it is and how to move).
pub fn render(scroll: usize, area: Rect, buf: &mut Buffer) {
    let (w, max_h) = help_rows::frame(area.width, area.height);
    let rows = help_rows::rows(w);
    let h = rows.len().min(max_h);
    let scroll = scroll.min(rows.len().saturating_sub(h));
    let title = if rows.len() > h {
        format!(
            " Keys {}–{} of {} · j/k PgUp/PgDn scroll · Esc closes ",
            scroll + 1,
            scroll + h,
            rows.len()
        )
    } else {
        " Keys · Esc closes ".to_string()
    };
    let r = area.centered(Constraint::Length(w), Constraint::Length(h as u16 + 2));
    Clear.render(r, buf);
    let lines: Vec<Line> = rows[scroll..scroll + h].iter().map(line).collect();
    Paragraph::new(lines)
        .block(Block::bordered().title(title))
        .render(r, buf);
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
