//! Small modal boxes: the export path prompt and the quit confirmation.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph, Widget, Wrap},
};

use super::{
    app::{App, Dialog, DialogKind},
    theme,
};
use crate::plan;

fn boxed(area: Rect, w: u16, title: String, lines: Vec<Line<'static>>, buf: &mut Buffer) {
    let h = (lines.len() as u16 + 2).min(area.height);
    let r = area.centered(Constraint::Length(w.min(area.width)), Constraint::Length(h));
    Clear.render(r, buf);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(title).border_style(theme::key()))
        .render(r, buf);
}

pub fn render_path(app: &App, d: &Dialog, area: Rect, buf: &mut Buffer) {
    let what = match d.kind {
        DialogKind::Yaml => "mergekit passthrough config with the kept slices",
        DialogKind::Model => "a copy of the model without the dropped layers (renumbered)",
        DialogKind::ScanJson => "SNR of every scanned module, Spectrum/laserRMT layout",
    };
    let lines = vec![
        Line::styled(what, theme::dim()),
        Line::raw(plan::format_ranges(&app.selection.kept_ranges())),
        Line::raw(""),
        Line::from(vec![
            Span::styled("path ", theme::dim()),
            Span::raw(d.input.clone()),
            Span::styled("█", Style::new().fg(theme::ACCENT)),
        ]),
        Line::raw(""),
        Line::from(vec![
            Span::styled("Enter", theme::key()),
            Span::raw(" write  "),
            Span::styled("Esc", theme::key()),
            Span::raw(" cancel"),
        ]),
    ];
    boxed(area, 70, format!(" {} ", d.kind.title()), lines, buf);
}

pub fn render_confirm_quit(area: Rect, buf: &mut Buffer) {
    let lines = vec![
        Line::raw("The layer choice changed since it was last written."),
        Line::raw(""),
        Line::from(vec![
            Span::styled("y", theme::key()),
            Span::raw(" quit anyway   "),
            Span::styled("any other key", theme::key()),
            Span::raw(" stay"),
        ]),
    ];
    boxed(area, 56, " Quit? ".into(), lines, buf);
}
