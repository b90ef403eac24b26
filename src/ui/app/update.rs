//! User intents: the one match from an [`Action`] to what changes, and the controls that end
//! things (Esc, quit, answers to questions).

use super::*;
use crate::ui::help_rows;

impl App {
    // ---- actions ----

    /// Scrolls the help overlay by `by` rows, within its rows at the current size.
    fn scroll_help(&mut self, by: isize) {
        if let Overlay::Help(scroll) = &mut self.overlay {
            let max = help_rows::max_scroll(self.view.size.0, self.view.size.1);
            *scroll = (*scroll as isize + by).clamp(0, max as isize) as usize;
        }
    }

    pub(super) fn apply(&mut self, action: Action) {
        match action {
            Action::Left => self.step_cursor(-1),
            Action::Right => self.step_cursor(1),
            Action::Home => self.cursor_to_end(false),
            Action::End => self.cursor_to_end(true),
            Action::PageLeft => self.step_cursor(-(self.page() as isize)),
            Action::PageRight => self.step_cursor(self.page() as isize),
            Action::HalfPageLeft => self.step_cursor(-((self.page() / 2).max(1) as isize)),
            Action::HalfPageRight => self.step_cursor((self.page() / 2).max(1) as isize),
            Action::Jump(first) => {
                let mut e = LineEdit::new("");
                if let Some(d) = first {
                    e.edit(crate::ui::action::Edit::Insert(d));
                }
                self.overlay = Overlay::Jump(e);
            }
            Action::NextInfinite => self.find_infinite(true),
            Action::PrevInfinite => self.find_infinite(false),
            Action::NextModule => self.switch_module(1),
            Action::PrevModule => self.switch_module(-1),
            Action::Toggle => {
                if self.view.cursor < self.num_layers() {
                    let snr = self.drive_module().reading();
                    self.choice.toggle(self.view.cursor, &snr);
                }
            }
            Action::Forget => {
                let snr = self.drive_module().reading();
                let had = self.choice.mark(self.view.cursor).is_override();
                self.choice.forget(self.view.cursor, &snr);
                if !had {
                    self.set_status(
                        format!("layer {} has no hand choice", self.view.cursor),
                        StatusKind::Info,
                    );
                }
            }
            Action::ApplyRule => {
                let n = self.choice.overrides();
                if n > 0 {
                    self.overlay = Overlay::Question(Question::DiscardHandChoices(n));
                } else {
                    self.set_status("the choice is the rule's already", StatusKind::Info);
                }
            }
            Action::KeepAll => {
                let snr = self.drive_module().reading();
                self.choice.keep_all(&snr);
            }
            Action::Invert => {
                let snr = self.drive_module().reading();
                self.choice.invert(&snr);
            }
            Action::CycleRule => {
                let snr = self.drive_module().reading();
                let rule = match self.choice.rule {
                    Rule::Infinite => Rule::Lowest(self.choice.lowest_k),
                    Rule::Lowest(_) => Rule::Below(if self.choice.below_x > 0.0 {
                        self.choice.below_x
                    } else {
                        choice::default_below(&snr.values)
                    }),
                    Rule::Below(_) => Rule::Infinite,
                };
                self.choice.set_rule(rule, &snr);
            }
            Action::RuleUp | Action::RuleDown => self.adjust_rule(action == Action::RuleUp),
            Action::DriveHere => self.drive_here(),
            Action::Undo => self.undo(true),
            Action::Redo => self.undo(false),
            Action::ToggleScale => self.view.log_scale = !self.view.log_scale,
            Action::SwitchMethod => {
                let m = match self.scans.options().method {
                    Method::Svd => Method::Gram,
                    Method::Gram => Method::Svd,
                };
                self.scans.set_method(m);
                self.set_status(
                    match m {
                        Method::Gram => {
                            "new scans use the Gram route (faster on big matrices; \
                             falls back to the SVD where it cannot pin the SNR)"
                        }
                        Method::Svd => "new scans use the SVD (the reference)",
                    },
                    StatusKind::Info,
                );
            }
            Action::ToggleSpectrum => {
                if self.is_scan_file() || self.module().metric.is_some() {
                    let what = if self.module().metric.is_some() {
                        format!("{} is a probe's metric", self.module().label)
                    } else {
                        "a scan file holds SNR values".to_string()
                    };
                    self.set_status(
                        format!("no spectrum: {what}, not singular values"),
                        StatusKind::Info,
                    );
                } else {
                    self.view.spectrum_zoom = !self.view.spectrum_zoom;
                    self.keep_cursor_visible();
                }
            }
            Action::ToggleSorted => {
                self.view.sorted = !self.view.sorted;
                self.keep_cursor_visible();
            }
            Action::Help => self.overlay = Overlay::Help(0),
            Action::ScrollLines(n) => self.scroll_help(n as isize),
            Action::ScrollPages(n) => {
                let (_, page) = help_rows::frame(self.view.size.0, self.view.size.1);
                self.scroll_help(n as isize * page.saturating_sub(1).max(1) as isize);
            }
            Action::Warnings => {
                if self.doc.warnings.is_empty() {
                    self.set_status("no warnings about this model", StatusKind::Info);
                } else {
                    self.overlay = Overlay::Warnings;
                }
            }
            Action::WriteYaml => self.open_dialog(DialogKind::Yaml, false),
            Action::ExportModel => self.export_requested(),
            Action::WriteScan => {
                if self.is_scan_file() {
                    self.set_status(
                        format!(
                            "this is a {}: no scan to write (w writes a model's scans)",
                            self.doc.kind_word()
                        ),
                        StatusKind::Info,
                    );
                } else {
                    self.open_dialog(DialogKind::ScanJson, false);
                }
            }
            Action::WriteUnfrozen => self.open_dialog(DialogKind::Unfrozen, false),
            Action::Evaluate => self.evaluate(),
            Action::Probe => self.probe_requested(),
            Action::Cancel => self.cancel(),
            Action::Quit => {
                if self.unsaved() || self.export.is_some() {
                    self.overlay = Overlay::QuitPrompt;
                } else {
                    self.shutdown();
                }
            }
            // Ctrl-C asks as q does when work would be lost; at the prompt it quits at once.
            Action::ForceQuit => {
                if (self.unsaved() || self.export.is_some()) && self.overlay != Overlay::QuitPrompt
                {
                    self.overlay = Overlay::QuitPrompt;
                } else {
                    self.shutdown();
                }
            }
            Action::Click(x, y) => self.click(x, y),
            Action::Edit(e) => match &mut self.overlay {
                Overlay::Dialog(d) => {
                    d.error = None;
                    d.fields[d.focus].edit.edit(e);
                }
                Overlay::Jump(l) => l.edit(e),
                _ => {}
            },
            Action::NextField => {
                if let Overlay::Dialog(d) = &mut self.overlay {
                    d.focus = (d.focus + 1) % d.fields.len();
                }
            }
            Action::Submit => match std::mem::replace(&mut self.overlay, Overlay::None) {
                Overlay::Dialog(d) => self.submit(d, false),
                Overlay::Jump(l) => self.jump(&l.text),
                other => self.overlay = other,
            },
            Action::Answer(yes) => self.answer(yes),
            Action::WriteThenQuit => self.open_dialog(DialogKind::Yaml, true),
        }
    }

    pub(super) fn shutdown(&mut self) {
        self.scans.cancel_all(&mut self.doc, &mut self.outbox);
        self.cancel_export();
        self.outbox.extend(self.evals.cancel());
        if let Some(r) = self.probes.running() {
            self.outbox.push(Effect::CancelProbe { id: r.id });
        }
        self.quit = true;
    }

    /// Asks the running export to stop; whether there was one.
    fn cancel_export(&mut self) -> bool {
        match &mut self.export {
            Some(e) => {
                e.cancelling = true;
                self.outbox.push(Effect::CancelExport);
                true
            }
            None => false,
        }
    }

    /// Esc cancels one thing, the innermost: an open overlay (or the large spectrum), else a
    /// running export, else the scan.
    pub(super) fn cancel(&mut self) {
        match std::mem::replace(&mut self.overlay, Overlay::None) {
            Overlay::None => {}
            Overlay::Dialog(mut d) if d.replace.is_some() => {
                // "Replace?" answered with Esc: back to the path, not out of the dialog.
                d.replace = None;
                self.overlay = Overlay::Dialog(d);
                return;
            }
            _ => return,
        }
        if self.view.spectrum_zoom {
            self.view.spectrum_zoom = false;
            self.keep_cursor_visible();
            return;
        }
        if self.cancel_export() {
            let out = self.export.as_ref().map(|e| e.out.display().to_string());
            self.set_status(
                format!("cancelling the export to {}…", out.unwrap_or_default()),
                StatusKind::Info,
            );
            return;
        }
        if let Some(e) = self.evals.cancel() {
            self.outbox.push(e);
            self.set_status("cancelling the perplexity…", StatusKind::Info);
            return;
        }
        if let Some(r) = self.probes.running() {
            self.outbox.push(Effect::CancelProbe { id: r.id });
            self.set_status("cancelling the probe…", StatusKind::Info);
            return;
        }
        if self.scans.cancel_all(&mut self.doc, &mut self.outbox) {
            self.set_status("cancelling the scan…", StatusKind::Info);
        }
    }

    pub(super) fn answer(&mut self, yes: bool) {
        match std::mem::replace(&mut self.overlay, Overlay::None) {
            Overlay::Dialog(mut d) if d.replace.is_some() => {
                if yes {
                    self.submit(d, true);
                } else {
                    d.replace = None;
                    self.overlay = Overlay::Dialog(d);
                }
            }
            Overlay::Question(Question::DiscardHandChoices(_)) => {
                if yes {
                    let snr = self.drive_module().reading();
                    self.choice.apply_rule(&snr);
                    self.set_status(
                        format!("back to the rule: {} (u undoes)", self.rule_text()),
                        StatusKind::Info,
                    );
                }
            }
            Overlay::Question(Question::ExportAnyway(_)) => {
                if yes {
                    self.open_dialog(DialogKind::Model, false);
                }
            }
            Overlay::QuitPrompt => {
                if yes {
                    self.shutdown();
                }
            }
            other => self.overlay = other,
        }
    }
}
