//! The explorer's state and the one place it changes: [`App::handle`] for messages,
//! [`App::update`] for user intents; both return the [`Effect`]s the runtime must carry out
//! (start or stop a scan, the perplexity or the export, write a file). Each concern lives in a
//! sub-state (`state::*`) with its own fields; this module routes between them, and its fields
//! are private: screens and tests read through the accessors below.
//!
//! `update.rs` holds the match from actions, `navigation.rs` the cursor, `choosing.rs` the
//! rule and undo, `writing.rs` the dialogs and write requests, `background.rs` what starts and
//! ends background work, `reports.rs` the wording of what finished.

mod background;
mod choosing;
mod navigation;
mod reports;
mod update;
mod writing;

use std::{collections::HashMap, path::Path, sync::Arc};

use crossterm::event::{MouseButton, MouseEventKind};

use super::{
    action::Action,
    effect::Effect,
    eval_text::EvalSetup,
    format,
    keys::{self, Mode},
    layout::{self, Flags},
    msg::{EvalMsg, ExportMsg, Msg, ProbeMsg},
    state::{
        choice::{self, Choice},
        document::{Cell, Document, Kind, ModuleView, Reading, ScanState, Source},
        eval_job::Evals,
        export_job::ExportJob,
        overlay::{Dialog, DialogKind, LineEdit, Overlay, Question, Status, StatusKind},
        probe_job::Probes,
        scans::Scans,
        view::View,
    },
};
use snrscope::{
    checkpoint::Model,
    export::{self, Inputs},
    forward::EvalEvent,
    plan::{self, Mark, Plan, Rule},
    scanfile::{self, ScanEntry},
    spectrum::{
        cache::Cache,
        scan::ScanOptions,
        snr::{Method, SnrStats},
    },
    util::bytes::human_bytes,
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
    doc: Document,
    scans: Scans,
    choice: Choice,
    view: View,
    overlay: Overlay,
    status: Option<Status>,
    export: Option<ExportJob>,
    evals: Evals,
    probes: Probes,
    options: AppOptions,
    /// What the user last wrote per kind this session (the dialogs start from it).
    last_paths: HashMap<DialogKind, String>,
    /// The export dialog's "copy" field as last accepted.
    last_copy: String,
    /// mergekit's `model:` as last entered.
    model_name: String,
    quit: bool,
    tick: u64,
    /// What the runtime must do, collected while a message or action is applied.
    outbox: Vec<Effect>,
}

impl App {
    /// An explorer on an opened model. Asks for the default module's scan when `autoscan`
    /// ([`App::take_effects`] hands the request over).
    pub fn for_model(model: Arc<Model>, options: AppOptions) -> color_eyre::Result<App> {
        let doc = Document::for_model(model)?;
        let mut app = App::with_document(doc, options);
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
            app.scans
                .request(&mut app.doc, app.choice.drive, &mut app.outbox);
        }
        Ok(app)
    }

    /// An explorer on a model with a saved scan (`snrscope MODEL --scan FILE`): the module
    /// types the file holds are not scanned again.
    pub fn for_model_with_scan(
        model: Arc<Model>,
        scan: &Path,
        entries: &[ScanEntry],
        options: AppOptions,
    ) -> color_eyre::Result<App> {
        let autoscan = options.autoscan;
        let mut app = App::for_model(
            model,
            AppOptions {
                autoscan: false,
                ..options
            },
        )?;
        app.doc.load_saved_scan(scan, entries)?;
        app.refresh_choice();
        app.options.autoscan = autoscan;
        if autoscan {
            app.scans
                .request(&mut app.doc, app.choice.drive, &mut app.outbox);
        }
        Ok(app)
    }

    /// An explorer on a scan file: bars from the file, nothing to compute.
    pub fn for_scan_file(path: &Path, entries: Vec<ScanEntry>) -> color_eyre::Result<App> {
        let doc = Document::for_scan_file(path, &entries)?;
        let mut app = App::with_document(doc, AppOptions::default());
        app.refresh_choice();
        Ok(app)
    }

    /// An explorer on a probe file alone: its metrics, Block Influence driving `lowest K`
    /// (the infinite rule drops nothing on a metric).
    pub fn for_probe_file(path: &Path, probe: &snrscope::probe::ProbeDoc) -> App {
        let doc = Document::for_probe_file(path, probe);
        let mut app = App::with_document(doc, AppOptions::default());
        let reading = app.drive_module().reading();
        app.choice
            .set_rule(Rule::Lowest(app.choice.lowest_k), &reading);
        app.choice.mark_saved();
        app
    }

    /// A probe's metrics as tabs beside the SNR (`--probe FILE`); the SNR still drives.
    pub fn add_probe(
        &mut self,
        path: &Path,
        probe: &snrscope::probe::ProbeDoc,
    ) -> color_eyre::Result<()> {
        self.doc.add_probe(path, probe)
    }

    fn with_document(doc: Document, options: AppOptions) -> App {
        let drive = doc.default_module;
        let model_name = match (&options.model_name, &doc.source) {
            (Some(n), _) => n.clone(),
            // mergekit reads the Hugging Face model a GGUF was converted from: its repo when
            // the metadata name it, else the user must say.
            (None, Source::Model(m)) if m.gguf.is_some() => m
                .gguf
                .as_ref()
                .and_then(|g| g.file.source_repo())
                .unwrap_or_default(),
            // mergekit reads a relative path as a Hugging Face repo id: give it the folder.
            (None, Source::Model(_)) => snrscope::export::model_reference(&doc.source_path),
            // A scan or probe file is not a model: the user must say which model it describes.
            (None, Source::ScanFile(_) | Source::ProbeFile(_)) => String::new(),
        };
        App {
            choice: Choice::new(doc.num_layers, drive),
            view: View::new(drive),
            scans: Scans::new(ScanOptions {
                threads: options.threads,
                method: options.method,
                cache: options.cache.clone(),
            }),
            doc,
            overlay: Overlay::None,
            status: None,
            export: None,
            evals: Evals::new(options.eval.clone()),
            probes: Probes::default(),
            options,
            last_paths: HashMap::new(),
            last_copy: String::new(),
            model_name,
            quit: false,
            tick: 0,
            outbox: Vec::new(),
        }
    }

    /// What the runtime must do and has not been handed yet (the first scan of a new app).
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.outbox)
    }

    /// Presets mergekit's `model:` (`--model-name`).
    pub fn with_model_name(mut self, name: &str) -> App {
        self.model_name = name.to_string();
        self
    }

    // ---- reading ----

    pub fn doc(&self) -> &Document {
        &self.doc
    }

    pub fn choice(&self) -> &Choice {
        &self.choice
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    pub fn export(&self) -> Option<&ExportJob> {
        self.export.as_ref()
    }

    pub fn evals(&self) -> &Evals {
        &self.evals
    }

    pub fn probes(&self) -> &Probes {
        &self.probes
    }

    /// The user asked to leave.
    pub fn quit(&self) -> bool {
        self.quit
    }

    /// Frames drawn while work runs (the spinner's phase).
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Background work runs: the screen redraws on a timer to show its progress.
    pub fn busy(&self) -> bool {
        self.scans.busy()
            || self.export.is_some()
            || self.evals.running()
            || self.probes.running().is_some()
    }

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
    /// A metric's layers go lowest first: the order its rules drop them in.
    pub fn sorted_layers(&self) -> Vec<usize> {
        let m = self.module();
        let ascending = m.metric.is_some();
        let mut v: Vec<usize> = (0..self.num_layers()).collect();
        v.sort_by(|&a, &b| {
            let key = |i: usize| m.cells[i].snr().filter(|x| !x.is_nan());
            match (key(a), key(b)) {
                (Some(x), Some(y)) if ascending => x.total_cmp(&y).then(a.cmp(&b)),
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
        let drive = self.drive_module();
        let what = drive.value_name();
        let block = drive.reading().block;
        let mut s = match self.choice.rule {
            Rule::Below(x) => Rule::Below(x)
                .describe_reading(&what, block)
                .replace(&x.to_string(), &format::exact(x)),
            rule => rule.describe_reading(&what, block),
        };
        let sel = self.choice.selection();
        let against = sel.against_rule();
        let agreeing = sel.overrides().len() - against;
        match (against, agreeing) {
            (0, 0) => {}
            (a, 0) => s.push_str(&format!(", {a} changed by hand")),
            (0, g) => s.push_str(&format!(", {g} hand choice(s) the rule agrees with")),
            // Short enough for 80 columns: the long form was cut mid-sentence.
            (a, g) => s.push_str(&format!(", {a} changed by hand, {g} agreeing")),
        }
        s
    }

    /// What the explorer reads: no write may touch it.
    pub fn inputs(&self) -> Inputs {
        match &self.doc.source {
            Source::Model(m) => Inputs::of_model(m),
            Source::ScanFile(p) | Source::ProbeFile(p) => Inputs::of_path(p),
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
        let drive = self.drive_module();
        let module = match &drive.metric {
            Some(m) if m.block > 1 => format!("{} (the block from this layer)", m.name),
            Some(m) => m.name.clone(),
            None => drive.name.clone(),
        };
        Plan {
            model_ref: self.model_name.clone(),
            stack_prefix: self.doc.stack.prefix.clone(),
            num_layers: n,
            dropped: self.choice.selection().dropped(),
            reason: plan::describe_choice_of(
                &self.choice.rule,
                &drive.value_name(),
                drive.reading().block,
                &marked(Mark::DropManual),
                &marked(Mark::KeepManual),
            ),
            metric: drive.metric.as_ref().map(|m| m.definition.clone()),
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
        // A GGUF model's scan names modules as llama.cpp does (`blk.3.attn_v`).
        match self.model() {
            Some(model) => scanfile::to_file_keys(model, out),
            None => out,
        }
    }

    // ---- messages ----

    /// Applies one message (keys become actions through the key table of the current mode);
    /// returns what the runtime must do.
    pub fn handle(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(key) => {
                if let Some(action) = keys::action_for(self.mode(), key) {
                    // A message stays until the user does something else; then the key hints
                    // come back.
                    if self.overlay == Overlay::None {
                        self.status = None;
                    }
                    self.apply(action);
                }
            }
            Msg::Mouse(m) => {
                if self.overlay == Overlay::None {
                    match m.kind {
                        MouseEventKind::Down(MouseButton::Left) => {
                            self.apply(Action::Click(m.column, m.row))
                        }
                        MouseEventKind::ScrollUp => self.apply(Action::Left),
                        MouseEventKind::ScrollDown => self.apply(Action::Right),
                        _ => {}
                    }
                }
            }
            Msg::Resize(w, h) => {
                self.view.size = (w, h);
                self.keep_cursor_visible();
            }
            Msg::Scan { scan_id, event } => self.on_scan(scan_id, event),
            Msg::Export(e) => self.on_export(e),
            Msg::Eval { id, msg } => self.on_eval(id, msg),
            Msg::Probe { id, msg } => self.on_probe(id, msg),
            Msg::Written { job, outcome } => self.on_written(job, outcome),
            Msg::Tick => self.tick = self.tick.wrapping_add(1),
            Msg::Terminate => self.shutdown(),
        }
        self.take_effects()
    }

    /// Applies one user intent; returns what the runtime must do. (The runtime sends keys
    /// through [`App::handle`]; tests state intents directly.)
    #[cfg(test)]
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        self.apply(action);
        self.take_effects()
    }

    pub(super) fn set_status(&mut self, text: impl Into<String>, kind: StatusKind) {
        self.status = Some(Status {
            text: text.into(),
            kind,
        });
    }
}
