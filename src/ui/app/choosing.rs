//! The choice: the rule, its parameter, the driving module, undo and redo.

use super::*;

impl App {
    // ---- the choice ----

    /// New values for the driving module: the rule's part of the choice follows them.
    pub(super) fn refresh_choice(&mut self) {
        let snr = self.drive_module().snr();
        self.choice.refresh(&snr);
    }

    pub(super) fn adjust_rule(&mut self, up: bool) {
        let snr = self.drive_module().snr();
        let rule = match self.choice.rule {
            Rule::Infinite => {
                self.set_status(
                    "the infinite rule has no parameter (r cycles rules)",
                    StatusKind::Info,
                );
                return;
            }
            Rule::Lowest(k) => Rule::Lowest(if up {
                (k + 1).min(self.num_layers())
            } else {
                k.saturating_sub(1)
            }),
            Rule::Below(x) => Rule::Below(choice::next_threshold(&snr, x, up)),
        };
        self.choice.set_rule(rule, &snr);
    }

    pub(super) fn drive_here(&mut self) {
        let target = if self.view.current != self.choice.drive {
            self.view.current
        } else {
            self.doc.default_module
        };
        if target == self.choice.drive {
            self.set_status(
                format!(
                    "{} drives the choice already (Tab to another module, then d)",
                    self.drive_module().label
                ),
                StatusKind::Info,
            );
            return;
        }
        let snr = self.doc.modules[target].snr();
        self.choice.set_drive(target, &snr);
        if matches!(
            self.doc.modules[target].state,
            ScanState::NotStarted | ScanState::Cancelled
        ) {
            self.scans.request(&mut self.doc, target, &mut self.outbox);
        }
        self.set_status(
            format!("the choice now follows {}", self.drive_module().label),
            StatusKind::Info,
        );
    }

    pub(super) fn undo(&mut self, back: bool) {
        let modules = &self.doc.modules;
        let snr = |mi: usize| modules.get(mi).map(ModuleView::snr).unwrap_or_default();
        let done = if back {
            self.choice.undo(&snr)
        } else {
            self.choice.redo(&snr)
        };
        if !done {
            self.set_status(
                if back {
                    "nothing to undo"
                } else {
                    "nothing to redo"
                },
                StatusKind::Info,
            );
        }
    }
}
