//! Writing what the user asks for: the dialogs, where a path points, and the write requests
//! (the files are written by the runtime, which reports back).

use super::*;
use crate::ui::write_job::{Content, Outcome, WriteJob};

impl App {
    // ---- writing ----

    /// The file or folder name a dialog suggests first.
    pub fn default_name(&self, kind: DialogKind) -> String {
        let base = sanitize(&self.doc.name);
        match kind {
            DialogKind::Yaml => format!("{base}-pruned.yml"),
            DialogKind::Model if self.model().is_some_and(|m| m.gguf.is_some()) => {
                format!("{base}-pruned.gguf")
            }
            DialogKind::Model => format!("{base}-pruned"),
            DialogKind::ScanJson => format!("{base}-snr.json"),
            DialogKind::Unfrozen => format!("{base}-unfrozen.yml"),
        }
    }

    pub(super) fn open_dialog(&mut self, kind: DialogKind, then_quit: bool) {
        let path = self
            .last_paths
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| self.default_name(kind));
        let mut d = Dialog::new(kind, path);
        match kind {
            DialogKind::Yaml => {
                let gguf = self.model().is_some_and(|m| m.gguf.is_some());
                let hint = if self.is_scan_file() {
                    &*format!(
                        "required: the model's Hugging Face repo id or folder (a {} is not a model)",
                        self.doc.kind_word()
                    )
                } else if gguf {
                    "required: the Hugging Face model the GGUF was converted from (mergekit cannot read a GGUF)"
                } else {
                    "mergekit's model: (a repo id, or the folder; a relative path reads as a repo id)"
                };
                d = d.with_field("model", self.model_name.clone(), Some(hint.into()));
            }
            // The CLI's `--copy`: files of the model folder that are not model files
            // (sentence-transformers' modules.json, a README's images) are copied only when
            // named. A GGUF is one file: nothing beside it to copy.
            DialogKind::Model if self.model().is_none_or(|m| m.gguf.is_none()) => {
                d = d.with_field(
                    "copy",
                    self.last_copy.clone(),
                    Some(
                        "also copy these files or folders of the model folder (names, \
                         comma-separated, e.g. modules.json, 1_Pooling)"
                            .into(),
                    ),
                );
            }
            DialogKind::Unfrozen => {
                d = d.with_field(
                    "top %",
                    "50",
                    Some("share of layers per module type".into()),
                );
            }
            _ => {}
        }
        d.then_quit = then_quit;
        self.overlay = Overlay::Dialog(d);
    }

    /// `e`: asks first when the plan is doubtful (unscanned layers kept, nothing dropped).
    pub(super) fn export_requested(&mut self) {
        if self.is_scan_file() {
            self.set_status(
                format!(
                    "cannot export a model from a {}: open the model folder instead",
                    self.doc.kind_word()
                ),
                StatusKind::Error,
            );
            return;
        }
        if self.export.is_some() {
            self.set_status("an export is already running", StatusKind::Info);
            return;
        }
        let unknown = self.drive_module().unknown();
        let dropped = self.choice.selection().dropped().len();
        let reason = if unknown > 0 {
            Some(format!(
                "{unknown} layer(s) have no {} SNR yet (not scanned, or failed): they will be kept",
                self.drive_module().label
            ))
        } else if dropped == 0 {
            let size = self.model().map_or(0, |m| m.total_bytes());
            Some(format!(
                "nothing is dropped: this writes a full copy of {}",
                human_bytes(size)
            ))
        } else {
            None
        };
        match reason {
            Some(r) => self.overlay = Overlay::Question(Question::ExportAnyway(r)),
            None => self.open_dialog(DialogKind::Model, false),
        }
    }

    /// Asks for what a dialog wants written; `replace` once the user said yes to replacing.
    /// The path is resolved and checked by the runtime, which reports back ([`App::on_written`]).
    pub(super) fn submit(&mut self, mut d: Dialog, replace: bool) {
        d.error = None;
        d.replace = None;
        if d.path().trim().is_empty() {
            d.error = Some("give a path to write to".into());
            self.overlay = Overlay::Dialog(d);
            return;
        }
        if d.kind == DialogKind::Yaml {
            let name = d.field("model").unwrap_or_default().trim().to_string();
            if name.is_empty() {
                d.error = Some(
                    "model: empty; give the model name mergekit should load (its repo id or folder)"
                        .into(),
                );
                d.focus = 1;
                self.overlay = Overlay::Dialog(d);
                return;
            }
            self.model_name = name;
        }
        let content = match d.kind {
            DialogKind::Yaml => Content::MergekitYaml(self.plan()),
            DialogKind::ScanJson => {
                let entries = self.scan_entries();
                Content::ScanJson {
                    text: scanfile::to_json(&entries),
                    entries: entries.len(),
                }
            }
            DialogKind::Unfrozen => {
                let top: f64 = match d.field("top %").unwrap_or("50").trim().parse() {
                    Ok(t) if (0.0..=100.0).contains(&t) => t,
                    _ => {
                        d.error = Some("top %: give a number from 0 to 100".into());
                        d.focus = 1;
                        self.overlay = Overlay::Dialog(d);
                        return;
                    }
                };
                Content::Unfrozen {
                    groups: self.unfrozen_groups(),
                    top_percent: top,
                }
            }
            DialogKind::Model => {
                let Some(model) = self.model().cloned() else {
                    return;
                };
                Content::Model {
                    model,
                    plan: self.plan(),
                }
            }
        };
        self.outbox.push(Effect::Write(Box::new(WriteJob {
            default_name: self.default_name(d.kind),
            dialog: d,
            replace,
            inputs: self.inputs(),
            content,
        })));
    }

    /// What the runtime did with a write: done (say so), running (the export), or back to the
    /// dialog with the "Replace?" question or the reason.
    pub(super) fn on_written(&mut self, job: Box<WriteJob>, outcome: Outcome) {
        let WriteJob {
            dialog: mut d,
            content,
            ..
        } = *job;
        // A path is remembered for the next dialog of its kind once it was accepted (written,
        // started, or found existing and asked about), never when it was refused.
        if !matches!(outcome, Outcome::Failed(_)) {
            self.last_paths.insert(d.kind, d.path().to_string());
            if let Some(copy) = d.field("copy") {
                self.last_copy = copy.to_string();
            }
        }
        match outcome {
            Outcome::Written(path) => {
                if d.kind == DialogKind::Yaml {
                    self.choice.mark_saved();
                }
                self.set_status(reports::written(&path, &content), StatusKind::Ok);
                if d.then_quit {
                    self.shutdown();
                }
            }
            Outcome::Started(path) => {
                self.export = Some(ExportJob::new(path.clone()));
                self.set_status(
                    format!("exporting to {}…", path.display()),
                    StatusKind::Info,
                );
            }
            Outcome::Exists(path) => {
                d.replace = Some(path);
                self.overlay = Overlay::Dialog(d);
            }
            Outcome::Failed(e) => {
                // Every write failure is about where it goes: the cursor goes back to the path.
                d.error = Some(format!("path: {e}"));
                d.focus = 0;
                self.overlay = Overlay::Dialog(d);
            }
        }
    }

    /// Spectrum's groups from every module type with values.
    pub(super) fn unfrozen_groups(&self) -> Vec<export::UnfrozenGroup> {
        self.doc
            .modules
            .iter()
            .filter(|m| m.cells.iter().any(|c| c.snr().is_some()))
            .map(|m| export::UnfrozenGroup {
                module_type: m.name.clone(),
                modules: m
                    .cells
                    .iter()
                    .enumerate()
                    .filter_map(|(l, c)| {
                        c.snr().map(|s| {
                            let name = if c.name.is_empty() {
                                format!("{}.{l}.{}", self.doc.stack.prefix, m.name)
                            } else {
                                c.name
                                    .strip_suffix(".weight")
                                    .unwrap_or(&c.name)
                                    .to_string()
                            };
                            (name, s)
                        })
                    })
                    .collect(),
            })
            .collect()
    }
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() { "model".into() } else { s }
}
