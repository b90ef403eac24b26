//! The singular values of the matrix under the cursor, with the Marchenko–Pastur threshold
//! that splits them into signal and noise.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Style, Stylize},
    symbols::Marker,
    text::Line,
    widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph, Widget},
};

use super::theme;
use crate::ui::{App, state::document::Value};

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    if area.width < 10 || area.height < 4 {
        return;
    }
    let layer = app.view().cursor;
    let block = Block::bordered().title(format!(" Spectrum · layer {layer} "));
    let stats = app.current_cell().and_then(|c| match &c.value {
        Value::Stats(s) => Some(s),
        _ => None,
    });
    let Some(s) = stats else {
        let why = if app.module().metric.is_some() {
            "a probe's metric has no singular values"
        } else if app.is_scan_file() {
            "a scan file holds no singular values"
        } else {
            "no singular values for this layer yet"
        };
        Paragraph::new(Line::styled(why, theme::dim()))
            .block(block)
            .render(area, buf);
        return;
    };
    // log10 of the values; zeros sit on the floor of the axis.
    let positive_min = s
        .singular_values
        .iter()
        .copied()
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    if !positive_min.is_finite() {
        Paragraph::new("every singular value is 0 (all-zero matrix)")
            .block(block)
            .render(area, buf);
        return;
    }
    // Tight bounds around the values (and the threshold when it is positive), padded a bit so
    // a flat spectrum still shows as a line rather than an axis.
    let mut lo = positive_min.log10();
    let mut hi = s.max_singular_value.log10();
    if s.threshold > 0.0 {
        lo = lo.min(s.threshold.log10());
        hi = hi.max(s.threshold.log10());
    }
    let pad = ((hi - lo) * 0.05).max(0.05);
    let (floor, top) = (lo - pad, hi + pad);
    let lg = |v: f64| if v > 0.0 { v.log10().max(floor) } else { floor };
    let points: Vec<(f64, f64)> = s
        .singular_values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as f64, lg(v)))
        .collect();
    let n = points.len().max(2) as f64 - 1.0;
    let threshold = [(0.0, lg(s.threshold)), (n, lg(s.threshold))];
    let mut datasets = vec![
        Dataset::default()
            .name("singular values")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(theme::FINITE))
            .data(&points),
    ];
    if s.threshold > 0.0 {
        datasets.push(
            Dataset::default()
                .name(format!("MP threshold {:.3e}", s.threshold))
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(theme::FAILED))
                .data(&threshold),
        );
    }
    let ylabels: Vec<Line> = [lo, hi]
        .iter()
        .map(|e| Line::from(format!("{:.1e}", 10f64.powf(*e))))
        .collect();
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .title("index".dim())
                .bounds([0.0, n])
                .labels(vec![Line::from("0"), Line::from(format!("{n:.0}"))]),
        )
        .y_axis(
            Axis::default()
                .title("σ (log)".dim())
                .bounds([floor, top])
                .labels(ylabels),
        );
    chart.render(area, buf);
}
