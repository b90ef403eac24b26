//! Background work as the state sees it: starting the perplexity and the export, and folding
//! in what the scans, the export and the perplexity report.

use super::*;
use snrscope::spectrum::scan::ScanEvent;

impl App {
    pub(super) fn on_scan(&mut self, scan_id: u64, event: ScanEvent) {
        let mut touched = None;
        let finished = self.scans.on_event(
            &mut self.doc,
            scan_id,
            event,
            self.view.current,
            &mut touched,
            &mut self.outbox,
        );
        if touched == Some(self.choice.drive) {
            self.refresh_choice();
        }
        if let Some(f) = finished {
            if f.module == self.choice.drive {
                self.refresh_choice();
            }
            // The progress line already tells the quiet case for the module on screen.
            if f.cancelled || f.failed > 0 || f.module != self.view.current {
                let kind = if f.failed > 0 {
                    StatusKind::Error
                } else if f.cancelled {
                    StatusKind::Info
                } else {
                    StatusKind::Ok
                };
                self.set_status(f.text, kind);
            }
        }
    }

    pub(super) fn on_export(&mut self, e: ExportMsg) {
        match e {
            ExportMsg::Progress(p) => {
                if let Some(job) = &mut self.export {
                    job.progress = p;
                }
            }
            ExportMsg::Done(r) => {
                let Some(job) = self.export.take() else {
                    return;
                };
                match r {
                    Ok(s) => {
                        self.choice.mark_saved();
                        let text = reports::exported(&s);
                        self.set_status(text, StatusKind::Ok);
                    }
                    Err(_) if job.cancelling => self.set_status(
                        format!(
                            "export cancelled, nothing written under {}",
                            job.out.display()
                        ),
                        StatusKind::Info,
                    ),
                    Err(e) => self.set_status(format!("export failed: {e}"), StatusKind::Error),
                }
            }
        }
    }

    pub(super) fn on_eval(&mut self, id: u64, msg: EvalMsg) {
        let Some(msg) = self.evals.on_msg(id, msg) else {
            return;
        };
        match msg {
            EvalMsg::Text(Err(e)) => self.set_status(format!("perplexity: {e}"), StatusKind::Error),
            EvalMsg::Event(EvalEvent::Result { result: Err(e), .. }) => {
                self.set_status(format!("perplexity: {e}"), StatusKind::Error)
            }
            EvalMsg::Event(EvalEvent::Finished { cancelled: true }) => {
                self.set_status("perplexity cancelled (p starts again)", StatusKind::Info)
            }
            EvalMsg::Event(EvalEvent::Finished { cancelled: false })
                if self.evals.state.error.is_none() =>
            {
                let text = self.eval_report();
                self.set_status(text, StatusKind::Ok);
            }
            _ => {}
        }
    }

    /// `p`: the original's perplexity unless known, then the current choice's.
    pub(super) fn evaluate(&mut self) {
        let Some(model) = self.model().cloned() else {
            self.set_status(
                "perplexity needs the model's weights: open the model folder (with --scan or --probe FILE)",
                StatusKind::Info,
            );
            return;
        };
        if self.evals.running() {
            self.set_status(
                "the perplexity is being computed (Esc cancels)",
                StatusKind::Info,
            );
            return;
        }
        let dropped = self.choice.selection().dropped();
        if dropped.len() == self.num_layers() {
            self.set_status(
                "the choice keeps no layer: nothing to evaluate",
                StatusKind::Info,
            );
            return;
        }
        let choices = self.evals.state.choices_for(&dropped);
        if choices.is_empty() {
            let text = self.eval_report();
            self.set_status(format!("already computed: {text}"), StatusKind::Info);
            return;
        }
        let what = if choices.len() == 2 {
            "the original, then the choice"
        } else if choices[0].is_empty() {
            "the original"
        } else {
            "the choice"
        };
        let start = self.evals.start(model, choices);
        self.outbox.push(start);
        self.set_status(
            format!("computing the perplexity of {what} in the background (Esc cancels)"),
            StatusKind::Info,
        );
    }

    /// `P`: Block Influence and every angular distance of the model on the text `p` scores,
    /// in the background; their tabs appear beside the SNR when done.
    pub(super) fn probe_requested(&mut self) {
        let Some(model) = self.model().cloned() else {
            self.set_status(
                "probing needs the model's weights: open the model folder (a probe file opens \
                 with --probe FILE)",
                StatusKind::Info,
            );
            return;
        };
        if self.probes.running().is_some() {
            self.set_status("the probe is running (Esc cancels)", StatusKind::Info);
            return;
        }
        if self.doc.modules.iter().any(|m| m.metric.is_some()) {
            self.set_status(
                "the probe's metrics are shown already (the tabs after the modules)",
                StatusKind::Info,
            );
            return;
        }
        let id = self.probes.start();
        self.outbox.push(Effect::StartProbe {
            id,
            model,
            setup: self.evals.setup().clone(),
            use_cache: self.options.cache.is_some(),
        });
        self.set_status(
            "probing the model in the background: Block Influence and angular distances \
             (Esc cancels)",
            StatusKind::Info,
        );
    }

    pub(super) fn on_probe(&mut self, id: u64, msg: ProbeMsg) {
        if !self.probes.is_running(id) {
            return;
        }
        match msg {
            ProbeMsg::Event(e) => self.probes.progress(&e),
            ProbeMsg::Done(result) => {
                self.probes.finished();
                match result {
                    Ok(Some(doc)) => {
                        let first = self.doc.modules.len();
                        match self.doc.add_probe(Path::new("the probe"), &doc) {
                            Ok(()) => {
                                let tabs: Vec<&str> = self.doc.modules[first..]
                                    .iter()
                                    .map(|m| m.label.as_str())
                                    .collect();
                                let shown = match tabs.as_slice() {
                                    [a, .., z] => format!("{a} … {z}"),
                                    _ => tabs.join(" "),
                                };
                                self.set_status(
                                    format!(
                                        "probed {} samples, {} tokens of {}: tabs {shown} \
                                         (d lets one drive)",
                                        doc.samples, doc.tokens, doc.text
                                    ),
                                    StatusKind::Ok,
                                );
                            }
                            Err(e) => self.set_status(format!("probe: {e}"), StatusKind::Error),
                        }
                    }
                    Ok(None) => {
                        self.set_status("probe cancelled (P starts again)", StatusKind::Info)
                    }
                    Err(e) => self.set_status(format!("probe: {e}"), StatusKind::Error),
                }
            }
        }
    }
}
