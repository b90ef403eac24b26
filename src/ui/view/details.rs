//! The details pane: everything known about the matrix under the cursor.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::Style,
    text::{Line, Span},
    widgets::{Block, Paragraph, Widget, Wrap},
};

use super::theme;
use crate::ui::{App, format::short, state::document::Value};

fn kv(k: &str, v: impl Into<String>) -> Vec<Span<'static>> {
    vec![
        Span::styled(format!("{k} "), theme::dim()),
        Span::raw(v.into()),
        Span::raw("  "),
    ]
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    let layer = app.view().cursor;
    let block = Block::bordered().title(format!(" Layer {layer} "));
    let Some(cell) = app.current_cell() else {
        Paragraph::new("no layer").block(block).render(area, buf);
        return;
    };
    let mut lines: Vec<Line> = Vec::new();
    if let Some(metric) = &app.module().metric {
        metric_lines(app, metric, cell, &mut lines);
    } else if matches!(cell.value, Value::Missing) {
        lines.push(Line::from(format!(
            "layer {layer} has no {} weight",
            app.module().label
        )));
    } else {
        lines.push(Line::from(Span::styled(
            snrscope::util::text::escape_controls(&cell.name).into_owned(),
            theme::bold(),
        )));
        let mut l2 = Vec::new();
        if !cell.shape.is_empty() {
            let shape = cell
                .shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("×");
            l2.extend(kv("shape", shape));
        }
        if !cell.dtype.is_empty() {
            l2.extend(kv("dtype", cell.dtype.clone()));
        }
        if cell.cached {
            l2.extend(kv("scan", "cached".to_string()));
        } else if let Some(t) = cell.elapsed {
            l2.extend(kv("scan", format!("{:.1} ms", t.as_secs_f64() * 1e3)));
        }
        if let Some(m) = cell.method {
            l2.extend(kv("method", m.name().to_string()));
        }
        if !l2.is_empty() {
            lines.push(Line::from(l2));
        }
    }
    match &cell.value {
        Value::Missing | Value::Metric(_) => {}
        Value::Pending => lines.push(Line::styled("not scanned yet", theme::dim())),
        Value::Failed(e) => lines.push(Line::styled(
            format!("failed: {e}"),
            Style::new().fg(theme::FAILED),
        )),
        Value::Stats(s) => {
            let ratio = if s.is_infinite() {
                Span::styled("∞ (infinite)", theme::bold().fg(theme::INFINITE))
            } else if s.snr_ratio.is_nan() {
                Span::styled(
                    "NaN (all-zero matrix: S[0] = 0)",
                    theme::bold().fg(theme::FAILED),
                )
            } else {
                Span::styled(format!("{:.6e}", s.snr_ratio), theme::bold())
            };
            lines.push(Line::from(vec![
                Span::styled("snr_ratio ", theme::dim()),
                ratio,
                Span::raw("  "),
                Span::styled("raw snr ", theme::dim()),
                Span::raw(short(s.raw_snr)),
            ]));
            let mut l = kv("S[0]", format!("{:.4e}", s.max_singular_value));
            l.extend(kv("sigma", format!("{:.4e}", s.sigma)));
            lines.push(Line::from(l));
            let mut l = kv("threshold", format!("{:.4e}", s.threshold));
            l.extend(kv(
                "signal/noise",
                format!("{}/{} values", s.n_signal, s.n_noise),
            ));
            lines.push(Line::from(l));
        }
        Value::File { snr, extra, error } => {
            if let Some(e) = error {
                lines.push(Line::styled(
                    format!("failed: {e}"),
                    Style::new().fg(theme::FAILED),
                ));
            } else {
                lines.push(Line::from(kv("snr", short(*snr))));
            }
            let mut l = Vec::new();
            for (k, v) in extra {
                l.extend(kv(k, short(*v)));
            }
            if !l.is_empty() {
                lines.push(Line::from(l));
            }
        }
    }
    let (fate, style) = theme::fate(app.choice().mark(layer));
    lines.push(Line::from(vec![
        Span::styled("choice ", theme::dim()),
        Span::styled(fate, style),
    ]));
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block)
        .render(area, buf);
}

/// A probe metric's value under the cursor: the value, its rank (lowest first, the order the
/// rules drop in) and what it means.
fn metric_lines(
    app: &App,
    metric: &crate::ui::state::document::Metric,
    cell: &crate::ui::state::document::Cell,
    lines: &mut Vec<Line<'static>>,
) {
    let layer = app.view().cursor;
    match cell.value {
        Value::Metric(v) if !v.is_nan() => {
            let order = app.sorted_layers();
            let known = order
                .iter()
                .filter(|&&l| app.module().cells[l].snr().is_some())
                .count();
            let rank = order.iter().position(|&l| l == layer).map_or(0, |r| r + 1);
            lines.push(Line::from(Span::styled(
                snrscope::util::text::escape_controls(&cell.name).into_owned(),
                theme::bold(),
            )));
            let mut l = vec![
                Span::styled(format!("{} ", metric.name), theme::dim()),
                Span::styled(format!("{v:.6e}"), theme::bold()),
                Span::raw("  "),
            ];
            l.extend(kv("rank", format!("{rank} of {known}, lowest first")));
            lines.push(Line::from(l));
        }
        Value::Metric(_) => lines.push(Line::styled(
            format!("the probe has no {} for layer {layer}", metric.name),
            theme::dim(),
        )),
        _ if metric.block > 1 => lines.push(Line::styled(
            format!(
                "no block of {} layers starts at layer {layer} (the stack ends first)",
                metric.block
            ),
            theme::dim(),
        )),
        _ => lines.push(Line::styled(
            format!("the probe has no {} for layer {layer}", metric.name),
            theme::dim(),
        )),
    }
    lines.push(Line::styled(metric.definition.clone(), theme::dim()));
}
