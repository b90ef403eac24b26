//! Draws the whole screen from the app state. Pure: reads `App`, writes the frame, nothing
//! else (no I/O, no locks), so a frame costs only formatting.

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    text::Line,
    widgets::{Paragraph, Widget, Wrap},
};

use super::{
    app::{App, Overlay},
    chart, details, dialog, help,
    layout::{self, MIN_HEIGHT, MIN_WIDTH},
    spectrum, summary, theme,
};

pub fn render(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let buf = frame.buffer_mut();
    draw(app, area, buf);
}

/// The same as [`render`], on a bare buffer (what the render tests use).
pub fn draw(app: &App, area: Rect, buf: &mut ratatui::buffer::Buffer) {
    if layout::too_small(area.width, area.height) {
        let msg = vec![
            Line::styled("terminal too small", theme::bold().fg(theme::FAILED)),
            Line::raw(format!(
                "need {MIN_WIDTH}×{MIN_HEIGHT}, have {}×{}",
                area.width, area.height
            )),
            Line::styled("enlarge the window, or q to quit", theme::dim()),
        ];
        let h = (msg.len() as u16).min(area.height);
        let r = area.centered_vertically(Constraint::Length(h));
        Paragraph::new(msg)
            .centered()
            .wrap(Wrap { trim: true })
            .render(r, buf);
        return;
    }
    let mut a = layout::areas(area.width, area.height, app);
    // The layout is computed from the size alone; place it where the area actually is.
    for r in [
        &mut a.header,
        &mut a.tabs,
        &mut a.main,
        &mut a.details,
        &mut a.spectrum,
        &mut a.progress,
        &mut a.summary,
        &mut a.rule,
        &mut a.status,
    ] {
        r.x += area.x;
        r.y += area.y;
    }
    summary::header(app, a.header, buf);
    summary::tabs(app, a.tabs, buf);
    if app.spectrum_zoom {
        spectrum::render(app, a.main, buf);
    } else {
        chart::render(app, a.main, buf);
    }
    details::render(app, a.details, buf);
    if a.spectrum.width > 0 {
        spectrum::render(app, a.spectrum, buf);
    }
    summary::progress(app, a.progress, buf);
    summary::summary(app, a.summary, buf);
    summary::rule(app, a.rule, buf);
    summary::status(app, a.status, buf);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => help::render(area, buf),
        Overlay::Dialog(d) => dialog::render_path(app, d, area, buf),
        Overlay::ConfirmQuit => dialog::render_confirm_quit(app, area, buf),
    }
}
