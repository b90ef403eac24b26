//! Where the user looks: the module on screen, the layer cursor, scrolling, scale, and which
//! view (chart, large spectrum, sorted list) fills the main area.

#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Index of the module type on screen.
    pub current: usize,
    pub cursor: usize,
    /// First layer shown when the chart has to scroll.
    pub offset: usize,
    /// First row shown when the sorted list has to scroll.
    pub list_offset: usize,
    pub log_scale: bool,
    pub spectrum_zoom: bool,
    /// The sorted list replaces the chart.
    pub sorted: bool,
    pub size: (u16, u16),
}

impl View {
    pub fn new(current: usize) -> View {
        View {
            current,
            cursor: 0,
            offset: 0,
            list_offset: 0,
            log_scale: true,
            spectrum_zoom: false,
            sorted: false,
            size: (120, 40),
        }
    }

    /// Scrolls the chart just enough to show the cursor, so the view does not jump around.
    pub fn scroll_to_cursor(&mut self, num_layers: usize, visible: usize) {
        let vis = visible.max(1);
        let max_offset = num_layers.saturating_sub(vis);
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + vis {
            self.offset = self.cursor + 1 - vis;
        }
        self.offset = self.offset.min(max_offset);
    }

    /// Keeps the cursor's row of the sorted list (`row` of `rows`) in its window of `visible`.
    pub fn scroll_list(&mut self, row: usize, rows: usize, visible: usize) {
        let vis = visible.max(1);
        if row < self.list_offset {
            self.list_offset = row;
        } else if row >= self.list_offset + vis {
            self.list_offset = row + 1 - vis;
        }
        self.list_offset = self.list_offset.min(rows.saturating_sub(vis));
    }
}
