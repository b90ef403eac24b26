//! The per-layer SNR bar chart of the module type on screen.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Widget},
};

use super::{
    app::{App, Kind, ModuleView},
    layout::{self, ChartGeom},
    theme,
};
use crate::plan::Mark;

const EIGHTHS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

/// Maps finite SNRs to bar heights (fractions of the chart height). Infinite bars are full
/// height; finite ones top out below that so the two can never be confused.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub log: bool,
    pub min: f64,
    pub max: f64,
}

const FINITE_TOP: f64 = 0.85;
const FINITE_BOTTOM: f64 = 0.06;

impl Scale {
    pub fn for_module(m: &ModuleView, log: bool) -> Option<Scale> {
        let vals = m.cells.iter().filter_map(|c| match c.kind() {
            Kind::Finite(v) if !log || v > 0.0 => Some(v),
            _ => None,
        });
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in vals {
            min = min.min(v);
            max = max.max(v);
        }
        (min <= max).then_some(Scale { log, min, max })
    }

    pub fn fraction(&self, v: f64) -> f64 {
        if self.log {
            if v <= 0.0 {
                return 0.0;
            }
            if self.max <= self.min {
                return (FINITE_BOTTOM + FINITE_TOP) / 2.0;
            }
            let t = (v.ln() - self.min.ln()) / (self.max.ln() - self.min.ln());
            FINITE_BOTTOM + (FINITE_TOP - FINITE_BOTTOM) * t.clamp(0.0, 1.0)
        } else {
            let top = self.max.max(0.0);
            if top <= 0.0 {
                return 0.0;
            }
            FINITE_TOP * (v / top).clamp(0.0, 1.0)
        }
    }
}

/// Short number for axes and labels: `1.23e-2`, `0.5`, `12.3`.
pub fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if !v.is_finite() {
        if v.is_nan() {
            "NaN".into()
        } else {
            "∞".into()
        }
    } else if (0.01..1000.0).contains(&v.abs()) {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.2e}")
    }
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let m = app.module();
    let n = app.num_layers;
    let g = layout::chart_geom(area, n, app.offset);
    let range = if g.visible < n {
        format!(
            "layers {}–{} of {n}",
            g.offset,
            (g.offset + g.visible).saturating_sub(1)
        )
    } else {
        format!("{n} layers")
    };
    let title = Line::from(vec![
        Span::raw(" SNR of "),
        Span::styled(m.name.clone(), theme::bold().fg(theme::ACCENT)),
        Span::raw(format!(
            " · {} scale · {range} ",
            if app.log_scale { "log" } else { "linear" }
        )),
    ]);
    let legend = Line::from(vec![
        Span::styled(
            format!(" {} ", theme::GLYPH_INFINITE),
            Style::new().fg(theme::INFINITE),
        ),
        Span::raw("infinite "),
        Span::styled("█", Style::new().fg(theme::FINITE)),
        Span::raw(" finite "),
        Span::styled(theme::GLYPH_PENDING, Style::new().fg(theme::PENDING)),
        Span::raw(" pending "),
        Span::styled(theme::GLYPH_FAILED, Style::new().fg(theme::FAILED)),
        Span::raw(" failed "),
        Span::styled(theme::GLYPH_NAN, Style::new().fg(theme::FAILED)),
        Span::raw(" all-zero "),
        Span::styled(theme::GLYPH_DROP, Style::new().fg(theme::DROP_RULE)),
        Span::raw(" drop (rule) "),
        Span::styled(theme::GLYPH_DROP, Style::new().fg(theme::MANUAL)),
        Span::raw(" drop (hand) "),
        Span::styled(
            theme::GLYPH_KEEP_MANUAL,
            Style::new().fg(theme::KEEP_MANUAL),
        ),
        Span::raw(" keep (hand) "),
    ]);
    let mut block = Block::bordered().title(title);
    if area.width > 40 {
        block = block.title_bottom(legend);
    }
    block.render(area, buf);
    if g.bars.height == 0 || g.visible == 0 {
        return;
    }
    let scale = Scale::for_module(m, app.log_scale);
    draw_axis(&g, scale.as_ref(), buf);
    // Marks follow the driving module's choice even while another module is on screen.
    for i in g.offset..g.offset + g.visible {
        let x = g.bars.x + (i - g.offset) as u16 * g.slot;
        if i == app.cursor {
            let cursor = Rect::new(x, g.bars.y, g.bar_w, g.marks_y + 1 - g.bars.y);
            buf.set_style(cursor, Style::new().bg(theme::CURSOR_BG));
        }
        draw_bar(&g, x, m.cells[i].kind(), scale.as_ref(), buf);
        draw_mark(&g, x, app.selection.mark(i), buf);
    }
    draw_labels(app, &g, buf);
    if let (crate::plan::Rule::Below(x), Some(s)) = (app.rule, scale.as_ref())
        && app.current == app.drive
    {
        draw_threshold(&g, s, x, buf);
    }
}

/// The `below X` rule's line: bars under it are the ones it drops.
fn draw_threshold(g: &ChartGeom, s: &Scale, x: f64, buf: &mut Buffer) {
    let h = g.bars.height;
    let frac = if s.log && x <= 0.0 {
        0.0
    } else {
        s.fraction(x)
    };
    let r = ((1.0 - frac) * h as f64).floor() as u16;
    let y = g.bars.y + r.min(h - 1);
    let style = Style::new().fg(theme::DROP_RULE);
    for cx in g.bars.x..g.bars.x + g.bars.width {
        if let Some(c) = buf.cell_mut((cx, y))
            && c.symbol() == " "
        {
            c.set_symbol("╌");
            c.set_style(style);
        }
    }
    let text = format!(
        "{:>w$}┤",
        short(x),
        w = (g.axis.width as usize).saturating_sub(1)
    );
    buf.set_stringn(g.axis.x, y, text, g.axis.width as usize, style);
}

fn draw_axis(g: &ChartGeom, scale: Option<&Scale>, buf: &mut Buffer) {
    let h = g.bars.height;
    let label = |buf: &mut Buffer, row: u16, text: &str, style: Style| {
        let text = format!("{text:>w$}┤", w = (g.axis.width as usize).saturating_sub(1));
        buf.set_stringn(g.axis.x, row, text, g.axis.width as usize, style);
    };
    label(buf, g.bars.y, "∞", Style::new().fg(theme::INFINITE));
    let Some(s) = scale else {
        return;
    };
    let row_of = |frac: f64| -> u16 {
        let r = ((1.0 - frac) * h as f64).floor() as u16;
        g.bars.y + r.min(h - 1)
    };
    if h >= 3 {
        let top = row_of(s.fraction(s.max));
        if top > g.bars.y {
            label(buf, top, &short(s.max), theme::dim());
        }
        let bottom = g.bars.y + h - 1;
        let low = if s.log { s.min } else { 0.0 };
        if bottom > top {
            label(buf, bottom, &short(low), theme::dim());
        }
    }
}

fn draw_bar(g: &ChartGeom, x: u16, kind: Kind, scale: Option<&Scale>, buf: &mut Buffer) {
    let h = g.bars.height;
    let bottom = g.bars.y + h - 1;
    let put = |buf: &mut Buffer, y: u16, sym: &str, style: Style| {
        for dx in 0..g.bar_w {
            if let Some(c) = buf.cell_mut((x + dx, y)) {
                c.set_symbol(sym);
                c.set_fg(style.fg.unwrap_or_default());
                if style.add_modifier.contains(Modifier::BOLD) {
                    c.modifier.insert(Modifier::BOLD);
                }
            }
        }
    };
    match kind {
        // Not every layer has every module (gaps, mixed architectures): say so, visibly.
        Kind::Missing => put(buf, bottom, "-", theme::dim()),
        Kind::Pending => put(
            buf,
            bottom,
            theme::GLYPH_PENDING,
            Style::new().fg(theme::PENDING),
        ),
        Kind::Failed => put(
            buf,
            bottom,
            theme::GLYPH_FAILED,
            theme::bold().fg(theme::FAILED),
        ),
        Kind::NaN => put(
            buf,
            bottom,
            theme::GLYPH_NAN,
            theme::bold().fg(theme::FAILED),
        ),
        Kind::Infinite => {
            for y in g.bars.y + 1..=bottom {
                put(buf, y, "█", Style::new().fg(theme::INFINITE));
            }
            put(buf, g.bars.y, "█", Style::new().fg(theme::INFINITE));
            let mid = x + g.bar_w.saturating_sub(1) / 2;
            if let Some(c) = buf.cell_mut((mid, g.bars.y)) {
                c.set_symbol(theme::GLYPH_INFINITE);
                c.set_fg(theme::INFINITE);
                c.modifier.insert(Modifier::BOLD);
                // Reversed would hide it in the bar; an inverted cell keeps it readable.
                c.set_bg(ratatui::style::Color::Reset);
            }
        }
        Kind::Finite(v) => {
            let frac = scale.map_or(0.5, |s| s.fraction(v));
            // At least a sliver, so a finite value is never mistaken for a missing one.
            let eighths = ((frac * h as f64 * 8.0).round() as u32).max(1);
            let full = (eighths / 8) as u16;
            let rem = (eighths % 8) as usize;
            let style = Style::new().fg(theme::FINITE);
            for k in 0..full.min(h) {
                put(buf, bottom - k, "█", style);
            }
            if rem > 0 && full < h {
                put(buf, bottom - full, EIGHTHS[rem], style);
            }
        }
    }
}

fn draw_mark(g: &ChartGeom, x: u16, mark: Mark, buf: &mut Buffer) {
    let (sym, style) = match mark {
        Mark::Keep => return,
        Mark::DropByRule => (theme::GLYPH_DROP, Style::new().fg(theme::DROP_RULE)),
        Mark::DropManual => (theme::GLYPH_DROP, theme::bold().fg(theme::MANUAL)),
        Mark::KeepManual => (
            theme::GLYPH_KEEP_MANUAL,
            theme::bold().fg(theme::KEEP_MANUAL),
        ),
    };
    let cx = x + (g.bar_w.saturating_sub(1)) / 2;
    if let Some(c) = buf.cell_mut((cx, g.marks_y)) {
        c.set_symbol(sym);
        c.set_style(style);
    }
}

fn draw_labels(app: &App, g: &ChartGeom, buf: &mut Buffer) {
    let slot = g.slot as usize;
    let digits = app.num_layers.saturating_sub(1).to_string().len();
    // Label every k-th layer so labels never overlap.
    let every = [1usize, 2, 5, 10, 20, 50, 100, 1000]
        .into_iter()
        .find(|k| k * slot > digits)
        .unwrap_or(1000);
    let x_of = |i: usize| g.bars.x + ((i - g.offset) * slot) as u16;
    let right = g.bars.x + g.bars.width;
    let style_of = |i: usize| {
        if app.selection.is_dropped(i) {
            Style::new().fg(theme::DROP_RULE)
        } else {
            theme::dim()
        }
    };
    // The cursor's label is always drawn; regular labels it would collide with give way.
    let cursor_span = (g.offset..g.offset + g.visible)
        .contains(&app.cursor)
        .then(|| {
            let len = app.cursor.to_string().len() as u16;
            let x = x_of(app.cursor).min(right.saturating_sub(len));
            (x, x + len)
        });
    for i in g.offset..g.offset + g.visible {
        if i % every != 0 || i == app.cursor {
            continue;
        }
        let text = i.to_string();
        let x = x_of(i);
        let end = x + text.len() as u16;
        if cursor_span.is_some_and(|(cx, cend)| x <= cend && end >= cx) {
            continue;
        }
        if x as usize + text.len() <= right as usize {
            buf.set_string(x, g.labels_y, &text, style_of(i));
        }
    }
    if (g.offset..g.offset + g.visible).contains(&app.cursor) {
        let text = app.cursor.to_string();
        let x = x_of(app.cursor).min(right.saturating_sub(text.len() as u16));
        buf.set_string(
            x,
            g.labels_y,
            &text,
            style_of(app.cursor).add_modifier(Modifier::REVERSED | Modifier::BOLD),
        );
    }
}
