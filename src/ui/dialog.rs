//! Small modal boxes: the export path prompt and the quit confirmation.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Rect},
    style::Style,
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph, Widget, Wrap},
};

use super::{
    app::{App, Dialog, DialogKind, Value},
    theme,
};
use crate::plan;

fn boxed(area: Rect, w: u16, title: String, lines: Vec<Line<'static>>, buf: &mut Buffer) {
    let w = w.min(area.width);
    // Wrapped lines take several rows; size the box for them so the key hints never fall off.
    let inner = w.saturating_sub(2).max(1) as usize;
    let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
    let h = (rows as u16 + 2).min(area.height);
    let r = area.centered(Constraint::Length(w), Constraint::Length(h));
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
    let mut lines = vec![
        Line::styled(what, theme::dim()),
        Line::raw(format!(
            "keep {}",
            plan::format_ranges(&app.selection.kept_ranges())
        )),
    ];
    let pending = app
        .drive_module()
        .cells
        .iter()
        .filter(|c| c.snr().is_none() && !matches!(c.value, Value::Missing))
        .count();
    if pending > 0 && d.kind != DialogKind::ScanJson {
        lines.push(Line::styled(
            format!(
                "{pending} layer(s) have no {} SNR (yet): the rule could not judge them",
                app.drive_module().name
            ),
            Style::new().fg(theme::MANUAL),
        ));
    }
    if app.is_scan_file() && d.kind == DialogKind::Yaml {
        lines.push(Line::styled(
            "the YAML names the scan file as `model:`; edit it before running mergekit",
            Style::new().fg(theme::MANUAL),
        ));
    }
    lines.extend([
        Line::raw(""),
        path_line(d),
        Line::raw(""),
        Line::from(vec![
            Span::styled("Enter", theme::key()),
            Span::raw(" write  "),
            Span::styled("Esc", theme::key()),
            Span::raw(" cancel  "),
            Span::styled("Ctrl-U", theme::key()),
            Span::raw(" clear  "),
            Span::styled("← →", theme::key()),
            Span::raw(" move"),
        ]),
    ]);
    boxed(area, 70, format!(" {} ", d.kind.title()), lines, buf);
}

pub fn render_confirm_quit(app: &App, area: Rect, buf: &mut Buffer) {
    let why = if app.export.is_some() {
        "An export is still running; quitting cancels it."
    } else {
        "The layer choice changed since it was last written."
    };
    let lines = vec![
        Line::raw(why),
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

/// The path with a block cursor on the character it stands before.
fn path_line(d: &Dialog) -> Line<'static> {
    let chars: Vec<char> = d.input.chars().collect();
    let at = d.cursor.min(chars.len());
    let before: String = chars[..at].iter().collect();
    let (under, after): (String, String) = match chars.get(at) {
        Some(c) => (c.to_string(), chars[at + 1..].iter().collect()),
        None => (" ".to_string(), String::new()),
    };
    Line::from(vec![
        Span::styled("path ", theme::dim()),
        Span::raw(before),
        Span::styled(
            under,
            Style::new()
                .fg(theme::ACCENT)
                .add_modifier(ratatui::style::Modifier::REVERSED),
        ),
        Span::raw(after),
    ])
}
