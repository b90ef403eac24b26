//! Screen geometry, computed from the terminal size and a few flags alone, so that the
//! renderer and the state (page size, scrolling, mouse hits) agree on where everything is.

use ratatui::layout::Rect;

pub const MIN_WIDTH: u16 = 50;
pub const MIN_HEIGHT: u16 = 16;
/// Width of the chart's y-axis labels, e.g. `1.2345e-2 ┤`.
pub const AXIS_WIDTH: u16 = 11;

/// What changes the layout besides the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// A scan file has no spectra: the details pane takes the whole bottom.
    pub scan_file: bool,
    /// The large spectrum replaces the chart.
    pub spectrum_zoom: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    pub tabs: Rect,
    /// The chart, the sorted list, or the large spectrum.
    pub main: Rect,
    pub details: Rect,
    /// Empty when there is no room (or in scan-file mode).
    pub spectrum: Rect,
    pub progress: Rect,
    pub summary: Rect,
    pub rule: Rect,
    pub status: Rect,
}

pub fn too_small(w: u16, h: u16) -> bool {
    w < MIN_WIDTH || h < MIN_HEIGHT
}

fn bottom_height(h: u16) -> u16 {
    match h {
        34.. => 13,
        26.. => 10,
        20.. => 7,
        _ => 0,
    }
}

/// Header, tabs, and the four lines under the panes.
const FIXED_ROWS: u16 = 6;

pub fn areas(w: u16, h: u16, flags: Flags) -> Areas {
    let row = |y: u16| Rect::new(0, y, w, 1);
    let bottom_h = bottom_height(h);
    let main_h = h.saturating_sub(FIXED_ROWS + bottom_h);
    let bottom_y = 2 + main_h;
    let bottom = Rect::new(0, bottom_y, w, bottom_h);
    let (details, spectrum) = if flags.scan_file || flags.spectrum_zoom || w < 90 {
        (bottom, Rect::new(0, bottom_y, 0, 0))
    } else {
        let dw = (w / 2).min(56);
        (
            Rect::new(0, bottom_y, dw, bottom_h),
            Rect::new(dw, bottom_y, w - dw, bottom_h),
        )
    };
    let y = bottom_y + bottom_h;
    Areas {
        header: row(0),
        tabs: row(1),
        main: Rect::new(0, 2, w, main_h),
        details,
        spectrum,
        progress: row(y),
        summary: row(y + 1),
        rule: row(y + 2),
        status: row(y + 3),
    }
}

/// Where the bars of the chart go inside its bordered block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartGeom {
    pub inner: Rect,
    pub axis: Rect,
    pub bars: Rect,
    pub labels_y: u16,
    pub marks_y: u16,
    /// Columns per layer (bar plus gap).
    pub slot: u16,
    pub bar_w: u16,
    pub offset: usize,
    pub visible: usize,
}

/// Bar geometry for `n` layers in the block `area`, scrolled to `offset`.
pub fn chart_geom(area: Rect, n: usize, offset: usize) -> ChartGeom {
    let inner = Rect::new(
        area.x.saturating_add(1),
        area.y.saturating_add(1),
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    );
    let axis_w = AXIS_WIDTH.min(inner.width);
    let avail = inner.width.saturating_sub(axis_w) as usize;
    let bars_h = inner.height.saturating_sub(2);
    // Wide bars for few layers; one column each for many; beyond that keep gaps and scroll.
    let slot = match avail.checked_div(n).unwrap_or(0) {
        0 => 2,
        s => s.min(8),
    } as u16;
    let visible = if slot == 0 {
        0
    } else {
        (avail / slot as usize).min(n)
    };
    let offset = offset.min(n.saturating_sub(visible));
    ChartGeom {
        inner,
        axis: Rect::new(inner.x, inner.y, axis_w, bars_h),
        bars: Rect::new(inner.x + axis_w, inner.y, avail as u16, bars_h),
        labels_y: inner.y + bars_h,
        marks_y: inner.y + bars_h + 1,
        slot,
        bar_w: if slot >= 2 { slot - 1 } else { 1 },
        offset,
        visible,
    }
}

/// The chart's geometry at this size: the chart's area even while the spectrum is zoomed, so
/// paging does not change meaning with the view.
pub fn chart(w: u16, h: u16, flags: Flags, n: usize, offset: usize) -> ChartGeom {
    let a = areas(
        w,
        h,
        Flags {
            spectrum_zoom: false,
            ..flags
        },
    );
    chart_geom(a.main, n, offset)
}

/// Rows of the sorted list that fit in the main area (inside its border, under its heading).
pub fn list_rows(w: u16, h: u16, flags: Flags) -> usize {
    areas(w, h, flags).main.height.saturating_sub(3) as usize
}

/// The layer whose bar, label or mark is at a terminal cell (chart view only).
pub fn layer_at(g: &ChartGeom, x: u16, y: u16) -> Option<usize> {
    if x < g.bars.x || x >= g.bars.x + g.bars.width || y < g.bars.y || y > g.marks_y {
        return None;
    }
    let i = ((x - g.bars.x) / g.slot.max(1)) as usize;
    (i < g.visible).then_some(g.offset + i)
}

/// What the tab row starts with.
pub const TABS_PREFIX: &str = " module ";

/// Which module tabs fit in `width` columns, and where, given each tab's width (`widths`) and
/// the one on screen: `(first, last)` (half-open) plus each shown tab's module index and column
/// span. Starts late enough that the current tab fits. The renderer and mouse clicks both use
/// it, so a click lands on the tab it points at.
pub fn tabs(
    widths: &[usize],
    current: usize,
    width: u16,
) -> (usize, usize, Vec<(usize, u16, u16)>) {
    let room = (width as usize).saturating_sub(12);
    let mut first = 0;
    while first < current && widths[first..=current].iter().sum::<usize>() > room {
        first += 1;
    }
    let mut x = TABS_PREFIX.len();
    if first > 0 {
        x += format!("‹{first} ").chars().count();
    }
    let mut used = 0;
    let mut last = first;
    let mut spans = Vec::new();
    for (i, w) in widths.iter().enumerate().skip(first) {
        if used + w > room && i > current {
            break;
        }
        spans.push((i, x as u16, (x + w - 1) as u16));
        used += w;
        x += w;
        last = i + 1;
    }
    (first, last, spans)
}
