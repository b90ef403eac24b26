//! The choice: the rule, its parameter, the driving module, undo and redo.

use super::*;

impl App {
    // ---- the choice ----

    /// New values for the driving module: the rule's part of the choice follows them.
    pub(super) fn refresh_choice(&mut self) {
        let snr = self.drive_module().reading();
        self.choice.refresh(&snr);
    }

    pub(super) fn adjust_rule(&mut self, up: bool) {
        let snr = self.drive_module().reading();
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
            Rule::Below(x) => Rule::Below(choice::next_threshold(&snr.values, x, up)),
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
        let snr = self.doc.modules[target].reading();
        // No metric is ever infinite: under the seed's rule a metric would drop nothing, so
        // it starts from its own natural rule (one undoable step with the switch).
        let rule = match (&self.doc.modules[target].metric, self.choice.rule) {
            (Some(m), Rule::Infinite) if m.block > 1 => Some(Rule::Lowest(1)),
            (Some(_), Rule::Infinite) => Some(Rule::Lowest(self.choice.lowest_k)),
            _ => None,
        };
        self.choice.set_drive(target, rule, &snr);
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
        let snr = |mi: usize| {
            modules.get(mi).map(ModuleView::reading).unwrap_or(Reading {
                values: Vec::new(),
                block: 1,
            })
        };
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

    /// Carries on a saved pruning (`--yaml FILE`): its kept layers become hand choices (one
    /// undoable step), counted as written. A `model:` that names another model is a warning
    /// (`explicit_name`: the user gave `--model-name`); a repo id is taken as the model name.
    pub fn carry_on(&mut self, from: &Path, k: &export::KeptLayers, explicit_name: bool) {
        let snr = self.drive_module().reading();
        self.choice.set_kept(&k.kept, &snr);
        self.choice.mark_saved();
        let same_folder = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        let named = Path::new(&k.model);
        let warning = if k.model == self.model_name {
            None
        } else if named.exists() {
            (!same_folder(named, &self.doc.source_path)).then(|| {
                format!(
                    "{} is a config of {}, not of this model: its layers are used all the same",
                    from.display(),
                    k.model
                )
            })
        } else if explicit_name {
            Some(format!(
                "{} names the model {}, --model-name says {}: its layers are used all the same",
                from.display(),
                k.model,
                self.model_name
            ))
        } else {
            self.model_name = k.model.clone();
            None
        };
        let kept = plan::format_ranges(&self.choice.selection().kept_ranges());
        match warning {
            Some(w) => {
                self.set_status(format!("warning: {w}"), StatusKind::Error);
                self.doc.warnings.push(w);
            }
            None => self.set_status(
                format!(
                    "carried on from {}: keep {kept} by hand (u undoes)",
                    from.display()
                ),
                StatusKind::Ok,
            ),
        }
    }
}
