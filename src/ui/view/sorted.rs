//! The layers sorted by the SNR of the module on screen, largest first (spectrum.py's
//! order): a list to choose from where the chart is too dense to read values off. Space works
//! here as on the chart.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Widget},
};

use super::theme;
use crate::ui::{App, format, state::document::Kind};

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let m = app.module();
    let order = app.sorted_layers();
    let block = Block::bordered().title(Line::from(match &m.metric {
        Some(metric) => vec![
            Span::raw(" Layers by "),
            Span::styled(metric.name.clone(), theme::bold().fg(theme::ACCENT)),
            Span::raw(", lowest first · o: back to the chart "),
        ],
        None => vec![
            Span::raw(" Layers by SNR of "),
            Span::styled(m.label.clone(), theme::bold().fg(theme::ACCENT)),
            Span::raw(" · o: back to the chart "),
        ],
    }));
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height < 2 {
        return;
    }
    let values: Vec<f64> = order.iter().filter_map(|&l| m.cells[l].snr()).collect();
    let labels = format::distinct(&values);
    let mut label_of = std::collections::HashMap::new();
    for (v, s) in values.iter().zip(labels) {
        label_of.insert(v.to_bits(), s);
    }
    let column = if m.metric.is_some() { "value" } else { "SNR" };
    let head = format!("{:>5}  {:>6}  {:>14}  choice", "rank", "layer", column);
    buf.set_stringn(inner.x, inner.y, head, inner.width as usize, theme::dim());
    let rows = (inner.height - 1) as usize;
    for (row, &layer) in order
        .iter()
        .enumerate()
        .skip(app.view().list_offset)
        .take(rows)
    {
        let y = inner.y + 1 + (row - app.view().list_offset) as u16;
        let cell = &m.cells[layer];
        let (value, vstyle) = match cell.kind() {
            Kind::Infinite => ("∞".to_string(), theme::bold().fg(theme::INFINITE)),
            Kind::Finite(v) => (
                label_of.get(&v.to_bits()).cloned().unwrap_or_default(),
                Style::new().fg(theme::FINITE),
            ),
            Kind::NaN => ("all-zero".into(), Style::new().fg(theme::FAILED)),
            Kind::Failed => ("failed".into(), Style::new().fg(theme::FAILED)),
            Kind::Pending => ("pending".into(), theme::dim()),
            Kind::Missing => ("no weight".into(), theme::dim()),
        };
        let mark = app.choice().mark(layer);
        let (glyph, gstyle) = theme::mark(mark).unwrap_or((" ", Style::new()));
        let (fate, fstyle) = theme::fate(mark);
        let mut line = Line::from(vec![
            Span::raw(format!("{:>5}  {layer:>6}  ", row + 1)),
            Span::styled(format!("{value:>14}"), vstyle),
            Span::raw("  "),
            Span::styled(glyph, gstyle),
            Span::raw(" "),
            Span::styled(fate, fstyle),
        ]);
        if layer == app.view().cursor {
            line = line.patch_style(Style::new().add_modifier(Modifier::REVERSED));
        }
        buf.set_line(inner.x, y, &line, inner.width);
    }
}
