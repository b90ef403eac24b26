//! The per-layer SNR bar chart of the module type on screen.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Widget},
};

use super::theme;
use crate::ui::{
    App, format,
    layout::{self, ChartGeom},
    state::document::{Kind, ModuleView},
};
use snrscope::plan::Rule;

const EIGHTHS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

/// Maps finite SNRs to bar heights (fractions of the chart height). Infinite bars are full
/// height; finite ones top out below that so the two can never be confused. The range is
/// honest: a log scale spans at least a decade (a 0.03 % spread must not look like a 10×
/// one), a linear scale starts at 0.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub log: bool,
    /// The data's smallest and largest finite value (positive ones on a log scale).
    pub min: f64,
    pub max: f64,
    /// The ends of the axis.
    pub lo: f64,
    pub hi: f64,
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
        if min > max {
            return None;
        }
        let (lo, hi) = if log {
            if max / min >= 10.0 {
                (min, max)
            } else {
                // One decade around the values' geometric middle.
                let mid = (min * max).sqrt();
                (mid / 10f64.sqrt(), mid * 10f64.sqrt())
            }
        } else {
            (0.0, max.max(0.0))
        };
        Some(Scale {
            log,
            min,
            max,
            lo,
            hi,
        })
    }

    /// Whether the log axis was widened to a decade around the values.
    pub fn widened(&self) -> bool {
        self.log && self.hi / self.lo > self.max / self.min * (1.0 + 1e-12)
    }

    pub fn fraction(&self, v: f64) -> f64 {
        if self.log {
            if v <= 0.0 {
                return 0.0;
            }
            let t = (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
            FINITE_BOTTOM + (FINITE_TOP - FINITE_BOTTOM) * t.clamp(0.0, 1.0)
        } else {
            if self.hi <= 0.0 {
                return 0.0;
            }
            FINITE_TOP * (v / self.hi).clamp(0.0, 1.0)
        }
    }

    /// The title's words for the scale.
    pub fn describe(&self) -> String {
        if !self.log {
            return "linear scale from 0".into();
        }
        if self.widened() {
            let spread = (self.max - self.min) / self.min * 100.0;
            format!(
                "log scale widened to one decade (values spread {})",
                if spread < 0.01 {
                    format!("{spread:.1e} %")
                } else {
                    format!("{} %", format::sig(spread, 2))
                }
            )
        } else {
            format!("log scale ({}× range)", format::sig(self.max / self.min, 2))
        }
    }
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let m = app.module();
    let n = app.num_layers();
    let g = layout::chart_geom(area, n, app.view().offset);
    let scale = Scale::for_module(m, app.view().log_scale);
    let range = if g.visible < n {
        format!(
            "layers {}–{} of {n}",
            g.offset,
            (g.offset + g.visible).saturating_sub(1)
        )
    } else {
        format!("{n} layers")
    };
    let scale_text = match &scale {
        Some(s) => s.describe(),
        None if app.view().log_scale => "log scale".into(),
        None => "linear scale".into(),
    };
    // Which layers show comes before the scale's words, which are the first to be cut.
    let title = match &m.metric {
        // A metric's bars: what they measure, and which way is "drop".
        Some(metric) => Line::from(vec![
            Span::raw(" "),
            Span::styled(metric.name.clone(), theme::bold().fg(theme::ACCENT)),
            Span::raw(format!(" · low = drop first · {range} · {scale_text} ")),
        ]),
        None => Line::from(vec![
            Span::raw(" SNR of "),
            Span::styled(m.label.clone(), theme::bold().fg(theme::ACCENT)),
            Span::raw(format!(" · {range} · {scale_text} ")),
        ]),
    };
    let mut block = Block::bordered().title(title);
    if area.width > 40 {
        block = block.title_bottom(legend(
            area.width.saturating_sub(2) as usize,
            m.metric.is_some(),
        ));
    }
    block.render(area, buf);
    if g.bars.height == 0 || g.visible == 0 {
        return;
    }
    let threshold = match app.choice().rule {
        Rule::Below(x) if app.view().current == app.choice().drive => Some(x),
        _ => None,
    };
    let threshold_label = draw_axis(&g, scale.as_ref(), threshold, m.metric.is_none(), buf);
    // Marks follow the driving module's choice even while another module is on screen.
    for i in g.offset..g.offset + g.visible {
        let x = g.bars.x + (i - g.offset) as u16 * g.slot;
        if i == app.view().cursor {
            let cursor = Rect::new(x, g.bars.y, g.bar_w, g.marks_y + 1 - g.bars.y);
            buf.set_style(cursor, Style::new().bg(theme::CURSOR_BG));
        }
        draw_bar(&g, x, m.cells[i].kind(), scale.as_ref(), buf);
        draw_mark(app, &g, x, i, buf);
    }
    draw_labels(app, &g, buf);
    if let (Some(x), Some(s), Some(l)) = (threshold, scale.as_ref(), threshold_label) {
        draw_threshold(&g, s, x, &format!("rule: below {l}"), buf);
    }
}

/// The legend in at most `width` cells: the marks of the choice always show (nothing else on
/// screen explains them); the bar kinds give way, the most self-evident first.
fn legend(width: usize, metric: bool) -> Line<'static> {
    let item = |glyph: &'static str, style: Style, text: &'static str| {
        [Span::styled(glyph, style), Span::raw(format!(" {text} "))]
    };
    let mut parts = legend_items(item);
    // A metric is never infinite, pending, failed or all-zero: only the marks need words.
    if metric {
        parts.retain(|p| {
            !["infinite", "finite", "pending", "failed", "all-zero"].contains(&p[1].content.trim())
        });
    }
    for drop in ["finite", "pending", "all-zero", "failed", "infinite"] {
        let w: usize = 1 + parts
            .iter()
            .flatten()
            .map(|s| s.content.chars().count())
            .sum::<usize>();
        if w <= width {
            break;
        }
        parts.retain(|p| p[1].content.trim() != drop);
    }
    let mut spans = vec![Span::raw(" ")];
    for part in parts {
        spans.extend(part);
    }
    Line::from(spans)
}

fn legend_items(
    item: impl Fn(&'static str, Style, &'static str) -> [Span<'static>; 2],
) -> Vec<[Span<'static>; 2]> {
    let style = |m| theme::mark(m).map(|(_, s)| s).unwrap_or_default();
    vec![
        item(
            theme::GLYPH_INFINITE,
            Style::new().fg(theme::INFINITE),
            "infinite",
        ),
        item("█", Style::new().fg(theme::FINITE), "finite"),
        item(
            theme::GLYPH_PENDING,
            Style::new().fg(theme::PENDING),
            "pending",
        ),
        item(
            theme::GLYPH_FAILED,
            Style::new().fg(theme::FAILED),
            "failed",
        ),
        item(theme::GLYPH_NAN, Style::new().fg(theme::FAILED), "all-zero"),
        item(
            theme::GLYPH_DROP_RULE,
            style(snrscope::plan::Mark::DropByRule),
            "drop (rule)",
        ),
        item(
            theme::GLYPH_DROP_HAND,
            style(snrscope::plan::Mark::DropManual),
            "drop (hand)",
        ),
        item(
            theme::GLYPH_KEEP_HAND,
            style(snrscope::plan::Mark::KeepManual),
            "keep (hand)",
        ),
    ]
}

/// The row of a fraction of the bar height.
fn row_of(g: &ChartGeom, frac: f64) -> u16 {
    let h = g.bars.height;
    let r = ((1.0 - frac) * h as f64).floor() as u16;
    g.bars.y + r.min(h - 1)
}

/// The `below X` rule's line: bars under it are the ones it drops.
fn draw_threshold(g: &ChartGeom, s: &Scale, x: f64, label: &str, buf: &mut Buffer) {
    let y = row_of(
        g,
        if s.log && x <= 0.0 {
            0.0
        } else {
            s.fraction(x)
        },
    );
    let style = Style::new().fg(theme::DROP_RULE);
    let mut free = Vec::new();
    for cx in g.bars.x..g.bars.x + g.bars.width {
        if let Some(c) = buf.cell_mut((cx, y))
            && c.symbol() == " "
        {
            c.set_symbol("╌");
            c.set_style(style);
            free.push(cx);
        }
    }
    // Said on the line itself, in the rightmost gap between bars wide enough for it (bars are
    // never drawn over); without such a gap the red axis label alone names it.
    let text: Vec<char> = format!(" {} ", label).chars().collect();
    let need = text.len() as u16;
    let mut run_end = None;
    let mut run_len = 0u16;
    for &cx in free.iter().rev() {
        if run_end.is_some_and(|e: u16| e - run_len == cx) {
            run_len += 1;
        } else {
            run_end = Some(cx);
            run_len = 1;
        }
        if run_len >= need {
            let start = run_end.unwrap_or(cx) + 1 - need;
            for (i, ch) in text.iter().enumerate() {
                if let Some(c) = buf.cell_mut((start + i as u16, y)) {
                    c.set_symbol(&ch.to_string());
                    c.set_style(style);
                }
            }
            return;
        }
    }
}

fn axis_label(g: &ChartGeom, buf: &mut Buffer, row: u16, text: &str, style: Style) {
    let text = format!("{text:>w$}┤", w = (g.axis.width as usize).saturating_sub(1));
    buf.set_stringn(g.axis.x, row, text, g.axis.width as usize, style);
}

/// Labels for the infinite row, the largest and smallest value, and the rule's threshold,
/// each with enough digits to tell it from the others. Returns the threshold's label.
fn draw_axis(
    g: &ChartGeom,
    scale: Option<&Scale>,
    threshold: Option<f64>,
    infinite_row: bool,
    buf: &mut Buffer,
) -> Option<String> {
    let h = g.bars.height;
    if infinite_row {
        axis_label(g, buf, g.bars.y, "∞", Style::new().fg(theme::INFINITE));
    }
    let s = scale?;
    if h < 3 {
        return None;
    }
    let bottom = g.bars.y + h - 1;
    let mut values = vec![s.max, s.min];
    if !s.log {
        values.push(0.0);
    }
    if let Some(x) = threshold {
        values.push(x);
    }
    let labels = format::distinct(&values);
    let mut used = vec![g.bars.y];
    // The threshold's text is drawn last (in its own colour); the same text is not drawn twice.
    let mut shown: Vec<String> = threshold
        .map(|_| labels[labels.len() - 1].clone())
        .into_iter()
        .collect();
    // Close values share a row: the later label takes the nearest free row below (or above),
    // so both stay readable. Equal values (one layer, or all alike) get one label.
    let mut put = |row: u16, text: &str, style: Style, buf: &mut Buffer| {
        if shown.iter().any(|s| s == text) {
            return;
        }
        shown.push(text.to_string());
        let free = (row..=bottom)
            .chain((g.bars.y..row).rev())
            .find(|r| !used.contains(r));
        if let Some(r) = free {
            axis_label(g, buf, r, text, style);
            used.push(r);
        }
    };
    put(row_of(g, s.fraction(s.max)), &labels[0], theme::dim(), buf);
    if !s.log {
        put(bottom, &labels[2], theme::dim(), buf);
    }
    put(row_of(g, s.fraction(s.min)), &labels[1], theme::dim(), buf);
    if let Some(x) = threshold {
        let frac = if s.log && x <= 0.0 {
            0.0
        } else {
            s.fraction(x)
        };
        // The threshold's label wins its row: it is what the user is adjusting.
        let text = labels.last().cloned().unwrap_or_default();
        axis_label(
            g,
            buf,
            row_of(g, frac),
            &text,
            Style::new().fg(theme::DROP_RULE),
        );
        return Some(text);
    }
    None
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
        Kind::Missing => put(buf, bottom, theme::GLYPH_MISSING, theme::dim()),
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
            for y in g.bars.y..=bottom {
                put(buf, y, "█", Style::new().fg(theme::INFINITE));
            }
            let mid = x + g.bar_w.saturating_sub(1) / 2;
            if let Some(c) = buf.cell_mut((mid, g.bars.y)) {
                c.set_symbol(theme::GLYPH_INFINITE);
                c.set_fg(theme::INFINITE);
                c.modifier.insert(Modifier::BOLD);
                // A plain cell keeps the ∞ readable on top of the bar.
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

fn draw_mark(app: &App, g: &ChartGeom, x: u16, layer: usize, buf: &mut Buffer) {
    let cx = x + (g.bar_w.saturating_sub(1)) / 2;
    let Some(c) = buf.cell_mut((cx, g.marks_y)) else {
        return;
    };
    match theme::mark(app.choice().mark(layer)) {
        Some((sym, style)) => {
            c.set_symbol(sym);
            c.set_style(style);
        }
        // Without colour the shaded column does not show: point at the cursor.
        None if layer == app.view().cursor => {
            c.set_symbol(theme::GLYPH_CURSOR);
            c.set_style(theme::bold());
        }
        None => {}
    }
}

fn draw_labels(app: &App, g: &ChartGeom, buf: &mut Buffer) {
    let slot = g.slot as usize;
    let cursor = app.view().cursor;
    let digits = app.num_layers().saturating_sub(1).to_string().len();
    // Label every k-th layer so labels never overlap.
    let every = [1usize, 2, 5, 10, 20, 50, 100, 1000]
        .into_iter()
        .find(|k| k * slot > digits)
        .unwrap_or(1000);
    let x_of = |i: usize| g.bars.x + ((i - g.offset) * slot) as u16;
    let right = g.bars.x + g.bars.width;
    let style_of = |i: usize| {
        if app.choice().selection().is_dropped(i) {
            Style::new().fg(theme::DROP_RULE)
        } else {
            theme::dim()
        }
    };
    // The cursor's label is always drawn; regular labels it would collide with give way.
    let on_screen = (g.offset..g.offset + g.visible).contains(&cursor);
    let cursor_span = on_screen.then(|| {
        let len = cursor.to_string().len() as u16;
        let x = x_of(cursor).min(right.saturating_sub(len));
        (x, x + len)
    });
    for i in g.offset..g.offset + g.visible {
        if i % every != 0 || i == cursor {
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
    if let Some((x, _)) = cursor_span {
        buf.set_string(
            x,
            g.labels_y,
            cursor.to_string(),
            style_of(cursor).add_modifier(Modifier::REVERSED | Modifier::BOLD),
        );
    }
}
