//! Small modal boxes: the write dialogs (with their replace question), yes/no questions, the
//! quit prompt and the jump prompt.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Rect},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph, Widget, Wrap},
};

use super::theme;
use crate::ui::{
    App, keys,
    state::overlay::{Dialog, DialogKind, LineEdit, Question},
};
use snrscope::plan;

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

/// The key hints of a mode, as a line.
fn hints(mode: keys::Mode) -> Line<'static> {
    Line::from(
        keys::hints(mode)
            .into_iter()
            .flat_map(|(k, d)| [Span::styled(k, theme::key()), Span::raw(format!(" {d}  "))])
            .collect::<Vec<_>>(),
    )
}

/// A field with a block cursor on the character it stands before (when focused).
fn field_line(label: &str, e: &LineEdit, focused: bool) -> Line<'static> {
    let chars: Vec<char> = e.text.chars().collect();
    let mut spans = vec![Span::styled(format!("{label:>6} "), theme::dim())];
    if !focused {
        spans.push(Span::raw(e.text.clone()));
        return Line::from(spans);
    }
    let at = e.cursor.min(chars.len());
    let before: String = chars[..at].iter().collect();
    let (under, after): (String, String) = match chars.get(at) {
        Some(c) => (c.to_string(), chars[at + 1..].iter().collect()),
        None => (" ".to_string(), String::new()),
    };
    spans.extend([
        Span::raw(before),
        Span::styled(
            under,
            Style::new()
                .fg(theme::ACCENT)
                .add_modifier(Modifier::REVERSED),
        ),
        Span::raw(after),
    ]);
    Line::from(spans)
}

pub fn render_dialog(app: &App, d: &Dialog, area: Rect, buf: &mut Buffer) {
    let mut lines = vec![Line::styled(d.kind.what(), theme::dim())];
    if matches!(d.kind, DialogKind::Yaml | DialogKind::Model) {
        lines.push(Line::raw(format!(
            "keep {}",
            plan::format_ranges(&app.choice().selection().kept_ranges())
        )));
        let unknown = app.drive_module().unknown();
        if unknown > 0 {
            lines.push(Line::styled(
                format!(
                    "{unknown} layer(s) have no {} SNR (yet): the rule could not judge them",
                    app.drive_module().label
                ),
                Style::new().fg(theme::MANUAL),
            ));
        }
    }
    lines.push(Line::raw(""));
    for (i, f) in d.fields.iter().enumerate() {
        lines.push(field_line(
            f.label,
            &f.edit,
            i == d.focus && d.replace.is_none(),
        ));
        if let Some(h) = &f.hint {
            lines.push(Line::styled(format!("       {h}"), theme::dim()));
        }
    }
    lines.push(Line::raw(""));
    if let Some(e) = &d.error {
        lines.push(Line::styled(
            snrscope::util::text::escape_controls(e).into_owned(),
            theme::bold().fg(theme::FAILED),
        ));
        lines.push(Line::raw(""));
    }
    match &d.replace {
        Some(p) => {
            let what = if p.is_dir() { "folder" } else { "file" };
            lines.push(Line::styled(
                format!("{} exists. Replace this {what}?", p.display()),
                theme::bold().fg(theme::MANUAL),
            ));
            lines.push(hints(keys::Mode::Confirm));
        }
        None => lines.push(hints(keys::Mode::Dialog)),
    }
    boxed(area, 76, format!(" {} ", d.kind.title()), lines, buf);
}

pub fn render_question(q: &Question, area: Rect, buf: &mut Buffer) {
    let (title, text) = match q {
        Question::DiscardHandChoices(n) => (
            " Back to the rule? ",
            format!("This forgets {n} hand choice(s). (u undoes it.)"),
        ),
        Question::ExportAnyway(why) => (" Export anyway? ", why.clone()),
    };
    let lines = vec![Line::raw(text), Line::raw(""), hints(keys::Mode::Confirm)];
    boxed(area, 64, title.into(), lines, buf);
}

pub fn render_quit_prompt(app: &App, area: Rect, buf: &mut Buffer) {
    let mut lines = Vec::new();
    if let Some(e) = &app.export() {
        lines.push(Line::raw(format!(
            "An export to {} is still running; quitting cancels it.",
            e.out.display()
        )));
    }
    if app.unsaved() {
        lines.push(Line::raw(
            "The layer choice changed since it was last written.",
        ));
    }
    lines.push(Line::raw(""));
    lines.push(hints(keys::Mode::QuitPrompt));
    boxed(area, 64, " Quit? ".into(), lines, buf);
}

pub fn render_jump(app: &App, e: &LineEdit, area: Rect, buf: &mut Buffer) {
    let lines = vec![
        field_line("layer", e, true),
        Line::styled(
            format!("0–{}", app.num_layers().saturating_sub(1)),
            theme::dim(),
        ),
        hints(keys::Mode::Jump),
    ];
    boxed(area, 36, " Jump to layer ".into(), lines, buf);
}
