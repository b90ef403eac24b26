//! Moving around: the layer cursor, pages, jumps, the module tabs, clicks.

use super::*;

impl App {
    // ---- moving around ----

    pub(super) fn visible(&self) -> usize {
        if self.view.sorted {
            let (w, h) = self.view.size;
            layout::list_rows(w, h, self.layout_flags())
        } else {
            self.chart_geom().visible
        }
    }

    pub(super) fn page(&self) -> usize {
        self.visible().max(1)
    }

    /// Moves the cursor by `delta` layers, or rows of the sorted list.
    pub(super) fn step_cursor(&mut self, delta: isize) {
        let n = self.num_layers();
        if n == 0 {
            return;
        }
        if self.view.sorted {
            let order = self.sorted_layers();
            let pos = order
                .iter()
                .position(|&l| l == self.view.cursor)
                .unwrap_or(0) as isize;
            let to = (pos + delta).clamp(0, n as isize - 1) as usize;
            self.view.cursor = order[to];
        } else {
            self.view.cursor =
                (self.view.cursor as isize + delta).clamp(0, n as isize - 1) as usize;
        }
        self.keep_cursor_visible();
    }

    pub(super) fn cursor_to_end(&mut self, last: bool) {
        let n = self.num_layers();
        if n == 0 {
            return;
        }
        self.view.cursor = if self.view.sorted {
            let order = self.sorted_layers();
            if last { order[n - 1] } else { order[0] }
        } else if last {
            n - 1
        } else {
            0
        };
        self.keep_cursor_visible();
    }

    pub fn set_cursor(&mut self, layer: usize) {
        self.view.cursor = layer.min(self.num_layers().saturating_sub(1));
        self.keep_cursor_visible();
    }

    /// Scrolls the chart (or the sorted list) just enough to show the cursor.
    pub fn keep_cursor_visible(&mut self) {
        let n = self.num_layers();
        let chart_visible = self.chart_geom().visible;
        self.view.scroll_to_cursor(n, chart_visible);
        if self.view.sorted {
            let (w, h) = self.view.size;
            let rows = layout::list_rows(w, h, self.layout_flags());
            let row = self
                .sorted_layers()
                .iter()
                .position(|&l| l == self.view.cursor)
                .unwrap_or(0);
            self.view.scroll_list(row, n, rows);
        }
    }

    pub(super) fn jump(&mut self, text: &str) {
        let n = self.num_layers();
        match text.trim().parse::<usize>() {
            Ok(l) if l < n => self.set_cursor(l),
            _ if text.trim().is_empty() => {}
            _ => self.set_status(
                format!(
                    "no layer {}: layers are 0–{}",
                    text.trim(),
                    n.saturating_sub(1)
                ),
                StatusKind::Error,
            ),
        }
    }

    pub(super) fn find_infinite(&mut self, forward: bool) {
        let m = self.module();
        let c = self.view.cursor;
        let is_inf = |i: &usize| m.cells[*i].kind() == Kind::Infinite;
        let found = if forward {
            (c + 1..self.num_layers()).find(is_inf)
        } else {
            (0..c).rev().find(is_inf)
        };
        match found {
            Some(l) => self.set_cursor(l),
            None => {
                let name = m.label.clone();
                self.set_status(
                    format!(
                        "no layer with infinite {name} SNR {} layer {c}",
                        if forward { "after" } else { "before" }
                    ),
                    StatusKind::Info,
                );
            }
        }
    }

    pub(super) fn switch_module(&mut self, dir: isize) {
        let n = self.doc.modules.len() as isize;
        if n == 0 {
            return;
        }
        self.select_module(((self.view.current as isize + dir).rem_euclid(n)) as usize);
    }

    /// Shows a module type, scanning it if it was never (fully) scanned.
    pub(super) fn select_module(&mut self, mi: usize) {
        if mi >= self.doc.modules.len() {
            return;
        }
        self.view.current = mi;
        if matches!(
            self.doc.modules[mi].state,
            ScanState::NotStarted | ScanState::Cancelled
        ) {
            self.scans.request(&mut self.doc, mi, &mut self.outbox);
        }
        self.keep_cursor_visible();
    }

    pub(super) fn click(&mut self, x: u16, y: u16) {
        let (w, h) = self.view.size;
        if layout::too_small(w, h) {
            return;
        }
        let areas = layout::areas(w, h, self.layout_flags());
        if y == areas.tabs.y {
            let widths = self.doc.tab_widths(self.view.current);
            let (_, _, tabs) = layout::tabs(&widths, self.view.current, w);
            if let Some(&(mi, _, _)) = tabs.iter().find(|(_, a, b)| (*a..=*b).contains(&x)) {
                self.select_module(mi);
            }
            return;
        }
        if self.view.spectrum_zoom {
            return;
        }
        if self.view.sorted {
            // Rows under the list's heading, inside its border.
            let first = areas.main.y + 2;
            if y >= first && y < areas.main.y + areas.main.height.saturating_sub(1) {
                let row = self.view.list_offset + (y - first) as usize;
                if let Some(&l) = self.sorted_layers().get(row) {
                    self.set_cursor(l);
                }
            }
            return;
        }
        if let Some(layer) = layout::layer_at(&self.chart_geom(), x, y) {
            self.set_cursor(layer);
        }
    }
}
