//! Drawing: the whole screen from the app state. Pure: reads `App`, writes the frame, nothing
//! else (no I/O, no locks), so a frame costs only formatting. Nothing under `ui::state`
//! imports from here.

pub mod bars;
pub mod chart;
pub mod details;
pub mod dialog;
pub mod help;
pub mod sorted;
pub mod spectrum;
pub mod theme;

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    text::Line,
    widgets::{Paragraph, Widget, Wrap},
};

use super::{
    App,
    layout::{self, MIN_HEIGHT, MIN_WIDTH},
    state::overlay::Overlay,
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
    let mut a = layout::areas(area.width, area.height, app.layout_flags());
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
    bars::header(app, a.header, buf);
    bars::tabs(app, a.tabs, buf);
    if app.view().spectrum_zoom {
        spectrum::render(app, a.main, buf);
    } else if app.view().sorted {
        sorted::render(app, a.main, buf);
    } else {
        chart::render(app, a.main, buf);
    }
    details::render(app, a.details, buf);
    if a.spectrum.width > 0 {
        spectrum::render(app, a.spectrum, buf);
    }
    bars::progress(app, a.progress, buf);
    bars::summary(app, a.summary, buf);
    bars::rule(app, a.rule, buf);
    bars::status(app, a.status, buf);
    match &app.overlay() {
        Overlay::None => {}
        Overlay::Help(scroll) => help::render(*scroll, area, buf),
        Overlay::Warnings => help::render_warnings(&app.doc().warnings, area, buf),
        Overlay::Jump(e) => dialog::render_jump(app, e, area, buf),
        Overlay::Dialog(d) => dialog::render_dialog(app, d, area, buf),
        Overlay::Question(q) => dialog::render_question(q, area, buf),
        Overlay::QuitPrompt => dialog::render_quit_prompt(app, area, buf),
    }
}
