//! The explorer's state and the one place it changes: [`App::handle`] for messages,
//! [`App::update`] for user intents. Each concern lives in a sub-state (`state::*`); this
//! module routes and enforces the rules between them. Rendering only reads it.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use crossbeam_channel::Sender;
use crossterm::event::{MouseButton, MouseEventKind};

use super::{
    action::Action,
    format,
    keys::{self, Mode},
    layout::{self, Flags},
    msg::{EvalMsg, ExportMsg, Msg},
    state::{
        choice::{self, Choice},
        document::{Cell, Document, Kind, ModuleView, ScanState, Source},
        eval_job::{EvalSetup, Evals},
        export_job::ExportJob,
        overlay::{Dialog, DialogKind, LineEdit, Overlay, Question, Status, StatusKind},
        scans::Scans,
        view::View,
    },
};
use snrscope::{
    checkpoint::Model,
    export::{self, ExportOptions, Inputs},
    forward::{EvalEvent, format_perplexity},
    plan::{self, Mark, Plan, Rule},
    scanfile::{self, ScanEntry},
    spectrum::{
        cache::Cache,
        scan::ScanOptions,
        snr::{Method, SnrStats},
    },
    util::{bytes::human_bytes, text::escape_controls},
};

/// Settings from the command line (and tests, which drive scans by hand).
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// Start scanning the driving module at once.
    pub autoscan: bool,
    /// Scan worker threads; 0 = one per core.
    pub threads: usize,
    /// mergekit's `model:` for the YAML (`--model-name`); default: the model folder's path.
    pub model_name: Option<String>,
    /// How new scans get their singular values (`m` switches).
    pub method: Method,
    /// The persistent scan cache (`None`: `--no-cache`, and tests unless they ask).
    pub cache: Option<Arc<Cache>>,
    /// What `p` evaluates on.
    pub eval: EvalSetup,
}

impl AppOptions {
    #[cfg(test)]
    pub fn interactive() -> AppOptions {
        AppOptions {
            autoscan: true,
            ..AppOptions::default()
        }
    }
}

pub struct App {
    pub doc: Document,
    pub scans: Scans,
    pub choice: Choice,
    pub view: View,
    pub overlay: Overlay,
    pub status: Option<Status>,
    pub export: Option<ExportJob>,
    pub evals: Evals,
    pub options: AppOptions,
    /// What the user last wrote per kind this session (the dialogs start from it).
    last_paths: HashMap<DialogKind, String>,
    /// mergekit's `model:` as last entered.
    model_name: String,
    pub quit: bool,
    pub tick: u64,
    tx: Sender<Msg>,
}

impl App {
    /// An explorer on an opened model. Starts the default module's scan when `autoscan`.
    pub fn for_model(
        model: Arc<Model>,
        tx: Sender<Msg>,
        options: AppOptions,
    ) -> color_eyre::Result<App> {
        let doc = Document::for_model(model)?;
        let mut app = App::with_document(doc, tx, options);
        if let Some(first) = app.doc.warnings.first() {
            let more = app.doc.warnings.len() - 1;
            let text = if more > 0 {
                format!("warning: {first} (and {more} more: ! shows them)")
            } else {
                format!("warning: {first}")
            };
            app.set_status(text, StatusKind::Error);
        }
        if app.options.autoscan {
            app.scans.request(&mut app.doc, app.choice.drive);
        }
        Ok(app)
    }

    /// An explorer on a model with a saved scan (`snrscope MODEL --scan FILE`): the module
    /// types the file holds are not scanned again.
    pub fn for_model_with_scan(
        model: Arc<Model>,
        scan: &Path,
        entries: &[ScanEntry],
        tx: Sender<Msg>,
        options: AppOptions,
    ) -> color_eyre::Result<App> {
        let autoscan = options.autoscan;
        let mut app = App::for_model(
            model,
            tx,
            AppOptions {
                autoscan: false,
                ..options
            },
        )?;
        app.doc.load_saved_scan(scan, entries)?;
        app.refresh_choice();
        app.options.autoscan = autoscan;
        if autoscan {
            app.scans.request(&mut app.doc, app.choice.drive);
        }
        Ok(app)
    }

    /// An explorer on a scan file: bars from the file, nothing to compute.
    pub fn for_scan_file(
        path: &Path,
        entries: Vec<ScanEntry>,
        tx: Sender<Msg>,
    ) -> color_eyre::Result<App> {
        let doc = Document::for_scan_file(path, &entries)?;
        let mut app = App::with_document(doc, tx, AppOptions::default());
        app.refresh_choice();
        Ok(app)
    }

    fn with_document(doc: Document, tx: Sender<Msg>, options: AppOptions) -> App {
        let drive = doc.default_module;
        let model_name = match (&options.model_name, &doc.source) {
            (Some(n), _) => n.clone(),
            // mergekit reads a relative path as a Hugging Face repo id: give it the folder.
            (None, Source::Model(_)) => std::fs::canonicalize(&doc.source_path)
                .map(|p| {
                    if p.is_file() {
                        p.parent().map(Path::to_path_buf).unwrap_or(p)
                    } else {
                        p
                    }
                })
                .unwrap_or_else(|_| doc.source_path.clone())
                .display()
                .to_string(),
            // A scan file is not a model: the user must say which model it describes.
            (None, Source::ScanFile(_)) => String::new(),
        };
        App {
            choice: Choice::new(doc.num_layers, drive),
            view: View::new(drive),
            scans: Scans::new(
                tx.clone(),
                ScanOptions {
                    threads: options.threads,
                    method: options.method,
                    cache: options.cache.clone(),
                },
            ),
            doc,
            overlay: Overlay::None,
            status: None,
            export: None,
            evals: Evals::new(options.eval.clone()),
            options,
            last_paths: HashMap::new(),
            model_name,
            quit: false,
            tick: 0,
            tx,
        }
    }

    /// Presets mergekit's `model:` (`--model-name`).
    pub fn with_model_name(mut self, name: &str) -> App {
        self.model_name = name.to_string();
        self
    }

    // ---- reading ----

    pub fn num_layers(&self) -> usize {
        self.doc.num_layers
    }

    pub fn model(&self) -> Option<&Arc<Model>> {
        self.doc.model()
    }

    pub fn is_scan_file(&self) -> bool {
        self.doc.is_scan_file()
    }

    /// The module type on screen.
    pub fn module(&self) -> &ModuleView {
        &self.doc.modules[self.view.current]
    }

    /// The module type whose SNR the rule reads.
    pub fn drive_module(&self) -> &ModuleView {
        &self.doc.modules[self.choice.drive]
    }

    pub fn current_cell(&self) -> Option<&Cell> {
        self.module().cells.get(self.view.cursor)
    }

    pub fn scanning(&self) -> bool {
        self.scans.busy()
    }

    /// The key table in force.
    pub fn mode(&self) -> Mode {
        self.overlay.mode()
    }

    /// The choice changed since it was last written.
    pub fn unsaved(&self) -> bool {
        self.choice.is_dirty()
    }

    #[cfg(test)]
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    pub fn layout_flags(&self) -> Flags {
        Flags {
            scan_file: self.is_scan_file(),
            spectrum_zoom: self.view.spectrum_zoom,
        }
    }

    pub fn chart_geom(&self) -> layout::ChartGeom {
        let (w, h) = self.view.size;
        layout::chart(
            w,
            h,
            self.layout_flags(),
            self.num_layers(),
            self.view.offset,
        )
    }

    /// Layers of the module on screen in the sorted view's order: infinite first, then by SNR
    /// descending (spectrum.py's order), then the ones without a value, by layer.
    pub fn sorted_layers(&self) -> Vec<usize> {
        let m = self.module();
        let mut v: Vec<usize> = (0..self.num_layers()).collect();
        v.sort_by(|&a, &b| {
            let key = |i: usize| m.cells[i].snr().filter(|x| !x.is_nan());
            match (key(a), key(b)) {
                (Some(x), Some(y)) => y.total_cmp(&x).then(a.cmp(&b)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.cmp(&b),
            }
        });
        v
    }

    /// The rule with its parameter as currently set; the threshold exactly.
    pub fn rule_text(&self) -> String {
        let module = &self.drive_module().name;
        let mut s = match self.choice.rule {
            Rule::Below(x) => format!(
                "drop layers whose {module} SNR is below {}",
                format::exact(x)
            ),
            rule => rule.describe(module),
        };
        let sel = self.choice.selection();
        let against = sel.against_rule();
        let agreeing = sel.overrides().len() - against;
        match (against, agreeing) {
            (0, 0) => {}
            (a, 0) => s.push_str(&format!(", {a} changed by hand")),
            (0, g) => s.push_str(&format!(", {g} hand choice(s) the rule agrees with")),
            (a, g) => s.push_str(&format!(
                ", {a} changed by hand (+{g} the rule agrees with)"
            )),
        }
        s
    }

    /// What the explorer reads: no write may touch it.
    pub fn inputs(&self) -> Inputs {
        match &self.doc.source {
            Source::Model(m) => Inputs::of_model(m),
            Source::ScanFile(p) => Inputs::of_path(p),
        }
    }

    /// The choice as the writers take it; the reason is worded as `snrscope export` words it,
    /// so files from the explorer and from the command line read the same.
    pub fn plan(&self) -> Plan {
        let n = self.num_layers();
        let marked = |m: Mark| {
            (0..n)
                .filter(|&i| self.choice.mark(i) == m)
                .collect::<Vec<_>>()
        };
        let module = self.drive_module().name.clone();
        Plan {
            model_ref: self.model_name.clone(),
            stack_prefix: self.doc.stack.prefix.clone(),
            num_layers: n,
            dropped: self.choice.selection().dropped(),
            reason: plan::describe_choice(
                &self.choice.rule,
                &module,
                &marked(Mark::DropManual),
                &marked(Mark::KeepManual),
            ),
            module_type: module,
            snr: self.drive_module().snr(),
            dtype: self
                .model()
                .map_or_else(|| "bfloat16".to_string(), |m| plan::model_dtype(m)),
            mergekit_modules: self.model().and_then(|m| plan::mergekit_modules(m)),
        }
    }

    /// Every scanned module type, in the layout `snrscope scan --out` writes.
    pub fn scan_entries(&self) -> Vec<ScanEntry> {
        let mut out = Vec::new();
        for m in &self.doc.modules {
            if m.state == ScanState::NotStarted {
                continue;
            }
            for (job, &layer) in m.jobs.iter().zip(&m.job_layer) {
                let cell = &m.cells[layer];
                let r: Option<Result<SnrStats, String>> = match &cell.value {
                    super::state::document::Value::Stats(s) => Some(Ok((**s).clone())),
                    super::state::document::Value::Failed(e) => Some(Err(e.clone())),
                    _ => None,
                };
                let mut e = ScanEntry::from_result(job, r.as_ref());
                if matches!(r, Some(Ok(_))) {
                    e.method = cell.method;
                }
                out.push(e);
            }
        }
        out
    }

    // ---- messages ----

    /// Applies one message. Keys become actions through the key table of the current mode.
    pub fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Key(key) => {
                if let Some(action) = keys::action_for(self.mode(), key) {
                    // A message stays until the user does something else; then the key hints
                    // come back.
                    if self.overlay == Overlay::None {
                        self.status = None;
                    }
                    self.update(action);
                }
            }
            Msg::Mouse(m) => {
                if self.overlay != Overlay::None {
                    return;
                }
                match m.kind {
                    MouseEventKind::Down(MouseButton::Left) => {
                        self.update(Action::Click(m.column, m.row))
                    }
                    MouseEventKind::ScrollUp => self.update(Action::Left),
                    MouseEventKind::ScrollDown => self.update(Action::Right),
                    _ => {}
                }
            }
            Msg::Resize(w, h) => {
                self.view.size = (w, h);
                self.keep_cursor_visible();
            }
            Msg::Scan { scan_id, event } => {
                let mut touched = None;
                let finished = self.scans.on_event(
                    &mut self.doc,
                    scan_id,
                    event,
                    self.view.current,
                    &mut touched,
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
            Msg::Export(e) => self.on_export(e),
            Msg::Eval { id, msg } => self.on_eval(id, msg),
            Msg::Tick => self.tick = self.tick.wrapping_add(1),
            Msg::Terminate => self.shutdown(),
        }
    }

    fn on_export(&mut self, e: ExportMsg) {
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
                        let mut text = format!(
                            "exported {} tensors ({} shard{}, {}) to {}",
                            s.tensors,
                            s.shards,
                            if s.shards == 1 { "" } else { "s" },
                            human_bytes(s.bytes),
                            s.out.display()
                        );
                        if !s.skipped.is_empty() {
                            text.push_str(&format!(
                                "; {} file(s) of the folder not copied ({})",
                                s.skipped.len(),
                                s.skipped
                                    .iter()
                                    .map(|(n, _)| escape_controls(n).into_owned())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                        }
                        if let Some(note) = s.notes.first() {
                            text.push_str(&format!(" — note: {note}"));
                        }
                        self.set_status(text, StatusKind::Ok);
                    }
                    Err(_) if job.cancel.is_cancelled() => self.set_status(
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

    fn on_eval(&mut self, id: u64, msg: EvalMsg) {
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

    /// The finished evaluation in one line: what was scored, both perplexities, the speed.
    fn eval_report(&self) -> String {
        let st = &self.evals.state;
        let mut s = match (&st.original, self.evals.summary()) {
            (_, Some(sum)) if !sum.is_stale(&self.choice.selection().dropped()) => format!(
                "{} dropping {}",
                sum.text(),
                plan::format_layer_list(&sum.dropped)
            ),
            (Some(o), _) => format!("ppl {} (original)", format_perplexity(o.perplexity)),
            (None, _) => return "perplexity: nothing computed".into(),
        };
        let last = st.pruned.iter().chain(&st.original).next();
        if let (Some(p), Some(t)) = (last, &self.evals.text) {
            s.push_str(&format!(
                " — {} tokens of {}, {:.0} tokens/s",
                p.tokens,
                escape_controls(&t.name),
                p.tokens_per_second
            ));
            if t.unknown * 10 > t.tokens.len() {
                s.push_str(&format!(
                    "; {} of {} tokens unknown to the tokenizer, so the number says little \
                     about the text",
                    t.unknown,
                    t.tokens.len()
                ));
            }
        }
        s
    }

    /// `p`: the original's perplexity unless known, then the current choice's.
    fn evaluate(&mut self) {
        let Some(model) = self.model().cloned() else {
            self.set_status(
                "perplexity needs the model's weights: open the model folder (with --scan FILE)",
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
        self.evals.start(model, choices, self.tx.clone());
        self.set_status(
            format!("computing the perplexity of {what} in the background (Esc cancels)"),
            StatusKind::Info,
        );
    }

    // ---- actions ----

    pub fn update(&mut self, action: Action) {
        match action {
            Action::Left => self.step_cursor(-1),
            Action::Right => self.step_cursor(1),
            Action::Home => self.cursor_to_end(false),
            Action::End => self.cursor_to_end(true),
            Action::PageLeft => self.step_cursor(-(self.page() as isize)),
            Action::PageRight => self.step_cursor(self.page() as isize),
            Action::Jump(first) => {
                let mut e = LineEdit::new("");
                if let Some(d) = first {
                    e.edit(super::action::Edit::Insert(d));
                }
                self.overlay = Overlay::Jump(e);
            }
            Action::NextInfinite => self.find_infinite(true),
            Action::PrevInfinite => self.find_infinite(false),
            Action::NextModule => self.switch_module(1),
            Action::PrevModule => self.switch_module(-1),
            Action::Toggle => {
                if self.view.cursor < self.num_layers() {
                    let snr = self.drive_module().snr();
                    self.choice.toggle(self.view.cursor, &snr);
                }
            }
            Action::Forget => {
                let snr = self.drive_module().snr();
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
                let snr = self.drive_module().snr();
                self.choice.keep_all(&snr);
            }
            Action::Invert => {
                let snr = self.drive_module().snr();
                self.choice.invert(&snr);
            }
            Action::CycleRule => {
                let snr = self.drive_module().snr();
                let rule = match self.choice.rule {
                    Rule::Infinite => Rule::Lowest(self.choice.lowest_k),
                    Rule::Lowest(_) => Rule::Below(if self.choice.below_x > 0.0 {
                        self.choice.below_x
                    } else {
                        choice::default_below(&snr)
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
                let m = match self.scans.options.method {
                    Method::Svd => Method::Gram,
                    Method::Gram => Method::Svd,
                };
                self.scans.options.method = m;
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
                if self.is_scan_file() {
                    self.set_status(
                        "no spectrum: a scan file holds SNR values, not singular values",
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
            Action::Help => self.overlay = Overlay::Help,
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
                        "this is already a scan file; nothing new to write",
                        StatusKind::Info,
                    );
                } else {
                    self.open_dialog(DialogKind::ScanJson, false);
                }
            }
            Action::WriteUnfrozen => self.open_dialog(DialogKind::Unfrozen, false),
            Action::Evaluate => self.evaluate(),
            Action::Cancel => self.cancel(),
            Action::Quit => {
                if self.unsaved() || self.export.is_some() {
                    self.overlay = Overlay::QuitPrompt;
                } else {
                    self.shutdown();
                }
            }
            Action::ForceQuit => self.shutdown(),
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

    fn set_status(&mut self, text: impl Into<String>, kind: StatusKind) {
        self.status = Some(Status {
            text: text.into(),
            kind,
        });
    }

    fn shutdown(&mut self) {
        self.scans.cancel_all(&mut self.doc);
        if let Some(e) = &self.export {
            e.cancel.cancel();
        }
        self.evals.cancel();
        self.quit = true;
    }

    /// Esc cancels one thing, the innermost: an open overlay (or the large spectrum), else a
    /// running export, else the scan.
    fn cancel(&mut self) {
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
        if let Some(e) = &self.export {
            e.cancel.cancel();
            self.set_status(
                format!("cancelling the export to {}…", e.out.display()),
                StatusKind::Info,
            );
            return;
        }
        if self.evals.cancel() {
            self.set_status("cancelling the perplexity…", StatusKind::Info);
            return;
        }
        if self.scans.cancel_all(&mut self.doc) {
            self.set_status("cancelling the scan…", StatusKind::Info);
        }
    }

    fn answer(&mut self, yes: bool) {
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
                    let snr = self.drive_module().snr();
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

    // ---- moving around ----

    fn visible(&self) -> usize {
        if self.view.sorted {
            let (w, h) = self.view.size;
            layout::list_rows(w, h, self.layout_flags())
        } else {
            self.chart_geom().visible
        }
    }

    fn page(&self) -> usize {
        self.visible().max(1)
    }

    /// Moves the cursor by `delta` layers, or rows of the sorted list.
    fn step_cursor(&mut self, delta: isize) {
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

    fn cursor_to_end(&mut self, last: bool) {
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

    fn jump(&mut self, text: &str) {
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

    fn find_infinite(&mut self, forward: bool) {
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
                let name = m.name.clone();
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

    fn switch_module(&mut self, dir: isize) {
        let n = self.doc.modules.len() as isize;
        if n == 0 {
            return;
        }
        self.select_module(((self.view.current as isize + dir).rem_euclid(n)) as usize);
    }

    /// Shows a module type, scanning it if it was never (fully) scanned.
    fn select_module(&mut self, mi: usize) {
        if mi >= self.doc.modules.len() {
            return;
        }
        self.view.current = mi;
        if matches!(
            self.doc.modules[mi].state,
            ScanState::NotStarted | ScanState::Cancelled
        ) {
            self.scans.request(&mut self.doc, mi);
        }
        self.keep_cursor_visible();
    }

    fn click(&mut self, x: u16, y: u16) {
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

    // ---- the choice ----

    /// New values for the driving module: the rule's part of the choice follows them.
    fn refresh_choice(&mut self) {
        let snr = self.drive_module().snr();
        self.choice.refresh(&snr);
    }

    fn adjust_rule(&mut self, up: bool) {
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

    fn drive_here(&mut self) {
        let target = if self.view.current != self.choice.drive {
            self.view.current
        } else {
            self.doc.default_module
        };
        if target == self.choice.drive {
            self.set_status(
                format!(
                    "{} drives the choice already (Tab to another module, then d)",
                    self.drive_module().name
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
            self.scans.request(&mut self.doc, target);
        }
        self.set_status(
            format!("the choice now follows {}", self.drive_module().name),
            StatusKind::Info,
        );
    }

    fn undo(&mut self, back: bool) {
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

    // ---- writing ----

    /// The file or folder name a dialog suggests first.
    pub fn default_name(&self, kind: DialogKind) -> String {
        let base = sanitize(&self.doc.name);
        match kind {
            DialogKind::Yaml => format!("{base}-pruned.yml"),
            DialogKind::Model => format!("{base}-pruned"),
            DialogKind::ScanJson => format!("{base}-snr.json"),
            DialogKind::Unfrozen => format!("{base}-unfrozen.yml"),
        }
    }

    fn open_dialog(&mut self, kind: DialogKind, then_quit: bool) {
        let path = self
            .last_paths
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| self.default_name(kind));
        let mut d = Dialog::new(kind, path);
        match kind {
            DialogKind::Yaml => {
                let hint = if self.is_scan_file() {
                    "required: the model's Hugging Face repo id or folder (a scan file is not a model)"
                } else {
                    "mergekit's model: (a repo id, or the folder; a relative path reads as a repo id)"
                };
                d = d.with_field("model", self.model_name.clone(), Some(hint.into()));
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
    fn export_requested(&mut self) {
        if self.is_scan_file() {
            self.set_status(
                "cannot export a model from a scan file: open the model folder instead",
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
                self.drive_module().name
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

    /// Where a dialog's path points: `~` expanded; a folder means the default name in it
    /// (for the model export: only when written with a trailing `/`).
    fn resolve_path(&self, kind: DialogKind, text: &str) -> PathBuf {
        let text = text.trim();
        let expanded = match (text.strip_prefix('~'), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
                PathBuf::from(home).join(rest.trim_start_matches('/'))
            }
            _ => PathBuf::from(text),
        };
        let into_folder = match kind {
            DialogKind::Model => text.ends_with('/') && expanded.is_dir(),
            _ => expanded.is_dir(),
        };
        if into_folder {
            expanded.join(self.default_name(kind))
        } else {
            expanded
        }
    }

    /// Writes what a dialog asks for; `replace` once the user said yes to replacing. Every
    /// failure keeps the dialog open with its text and one sentence saying why.
    fn submit(&mut self, mut d: Dialog, replace: bool) {
        d.error = None;
        d.replace = None;
        if d.path().trim().is_empty() {
            d.error = Some("give a path to write to".into());
            self.overlay = Overlay::Dialog(d);
            return;
        }
        // Remembered even when this attempt fails or is not confirmed: the next dialog of the
        // kind starts from what the user typed, never silently from the default again.
        self.last_paths.insert(d.kind, d.path().to_string());
        let path = self.resolve_path(d.kind, d.path());
        let inputs = self.inputs();
        if let Err(e) = inputs.check(&path) {
            d.error = Some(e.to_string());
            self.overlay = Overlay::Dialog(d);
            return;
        }
        if d.kind == DialogKind::Yaml {
            let name = d.field("model").unwrap_or_default().trim().to_string();
            if name.is_empty() {
                d.error =
                    Some("give the model name mergekit should load (its repo id or folder)".into());
                d.focus = 1;
                self.overlay = Overlay::Dialog(d);
                return;
            }
            self.model_name = name;
        }
        if !replace && path.symlink_metadata().is_ok() {
            d.replace = Some(path);
            self.overlay = Overlay::Dialog(d);
            return;
        }
        let result = match d.kind {
            DialogKind::Yaml => {
                let plan = self.plan();
                export::write_mergekit_yaml(&plan, &path, &inputs, replace).map(|()| {
                    format!(
                        "wrote {} (keep {}; model: {})",
                        path.display(),
                        plan::format_ranges(&plan.kept_ranges()),
                        plan.model_ref
                    )
                })
            }
            DialogKind::ScanJson => {
                let entries = self.scan_entries();
                let text = scanfile::to_json(&entries);
                export::write_file_atomically(&path, text.as_bytes(), &inputs, replace)
                    .map(|()| format!("wrote {} scan entries to {}", entries.len(), path.display()))
            }
            DialogKind::Unfrozen => {
                let top: f64 = match d.field("top %").unwrap_or("50").trim().parse() {
                    Ok(t) if (0.0..=100.0).contains(&t) => t,
                    _ => {
                        d.error = Some("top % must be a number from 0 to 100".into());
                        d.focus = 1;
                        self.overlay = Overlay::Dialog(d);
                        return;
                    }
                };
                let groups = self.unfrozen_groups();
                export::write_unfrozen_yaml(&groups, top, &path, &inputs, replace).map(|()| {
                    format!(
                        "wrote {} (top {top}% of {} module type(s) scanned so far)",
                        path.display(),
                        groups.len()
                    )
                })
            }
            DialogKind::Model => {
                self.start_export(path, replace);
                return;
            }
        };
        match result {
            Ok(text) => {
                if d.kind == DialogKind::Yaml {
                    self.choice.mark_saved();
                }
                self.set_status(text, StatusKind::Ok);
                if d.then_quit {
                    self.shutdown();
                }
            }
            Err(e) => {
                d.error = Some(e.to_string());
                self.overlay = Overlay::Dialog(d);
            }
        }
    }

    /// Spectrum's groups from every module type with values.
    fn unfrozen_groups(&self) -> Vec<export::UnfrozenGroup> {
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

    fn start_export(&mut self, out: PathBuf, force: bool) {
        let Some(model) = self.model().cloned() else {
            return;
        };
        let mut options = ExportOptions::new(out.clone());
        options.force = force;
        match ExportJob::start(model, self.plan(), options, self.tx.clone()) {
            Ok(job) => {
                self.export = Some(job);
                self.set_status(format!("exporting to {}…", out.display()), StatusKind::Info);
            }
            Err(e) => self.set_status(
                format!(
                    "cannot start the export: {}",
                    snrscope::util::text::io_reason(&e)
                ),
                StatusKind::Error,
            ),
        }
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
