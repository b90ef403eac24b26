//! The explorer's whole state and the one place it changes: [`App::handle`] for messages,
//! [`App::update`] for user intents. Rendering only reads it.

use std::{
    collections::{BTreeMap, VecDeque},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use crossbeam_channel::Sender;
use crossterm::event::{KeyEvent, MouseButton, MouseEvent, MouseEventKind};

use crate::{
    export::{self, ExportOptions, ExportProgress, Plan, planning},
    layers::Stack,
    model::{self, Model},
    plan::{self, Mark, Rule, Selection, human_bytes},
    scan::{self, CancelToken, Progress, ScanEvent, ScanHandle, ScanJob, ScanOptions},
    scanfile::{self, ScanEntry},
    snr::SnrStats,
};

use super::{keys, layout};

/// Everything that can wake the UI thread. Workers and the input thread all send these on one
/// channel, so the loop has a single place to wait.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    Scan {
        /// Generation of the scan, so events of a cancelled-and-restarted scan cannot be
        /// mistaken for the new one's.
        scan_id: u64,
        event: ScanEvent,
    },
    Export(ExportMsg),
    Tick,
    /// SIGTERM / SIGINT / SIGHUP.
    Terminate,
}

#[derive(Debug)]
pub enum ExportMsg {
    Progress(ExportProgress),
    Done(Result<export::ExportSummary, String>),
}

/// What the user means, independent of which key expressed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Left,
    Right,
    Home,
    End,
    PageLeft,
    PageRight,
    NextModule,
    PrevModule,
    Toggle,
    ApplyRule,
    Clear,
    Invert,
    CycleRule,
    RuleUp,
    RuleDown,
    ToggleScale,
    ToggleSpectrum,
    Help,
    ExportYaml,
    ExportModel,
    WriteScan,
    Cancel,
    Quit,
    /// Ctrl-C: leave now, no questions.
    ForceQuit,
    /// Mouse click at a terminal cell.
    Click(u16, u16),
    DialogEdit(Edit),
    DialogSubmit,
    /// Answer to the quit confirmation.
    Confirm(bool),
}

/// One layer's value for one module type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// The layer has no tensor of this module type.
    Missing,
    Pending,
    Stats(Box<SnrStats>),
    Failed(String),
    /// Read from a scan file: only the numbers the file holds.
    File {
        snr: f64,
        extra: Vec<(String, f64)>,
        error: Option<String>,
    },
}

/// How a bar is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Missing,
    Pending,
    Infinite,
    Finite(f64),
    /// NaN ratio: an all-zero matrix (S[0] = 0).
    NaN,
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Tensor name (model) or module name (scan file).
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: String,
    pub value: Value,
    pub elapsed: Option<Duration>,
}

impl Cell {
    fn missing() -> Cell {
        Cell {
            name: String::new(),
            shape: Vec::new(),
            dtype: String::new(),
            value: Value::Missing,
            elapsed: None,
        }
    }

    pub fn kind(&self) -> Kind {
        match &self.value {
            Value::Missing => Kind::Missing,
            Value::Pending => Kind::Pending,
            Value::Failed(_) => Kind::Failed,
            Value::File { error: Some(_), .. } => Kind::Failed,
            Value::Stats(s) => kind_of(s.snr_ratio),
            Value::File { snr, .. } => kind_of(*snr),
        }
    }

    /// What the pruning rules read (`None` for anything without a number).
    pub fn snr(&self) -> Option<f64> {
        match self.kind() {
            Kind::Infinite => Some(f64::INFINITY),
            Kind::Finite(v) => Some(v),
            _ => None,
        }
    }

    pub fn stats(&self) -> Option<&SnrStats> {
        match &self.value {
            Value::Stats(s) => Some(s),
            _ => None,
        }
    }
}

fn kind_of(v: f64) -> Kind {
    if v.is_nan() {
        Kind::NaN
    } else if v == f64::INFINITY {
        Kind::Infinite
    } else {
        Kind::Finite(v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanState {
    NotStarted,
    Queued,
    Running,
    Done,
    Cancelled,
    /// Scan-file mode: the values came from disk.
    Loaded,
}

/// One module type's bars.
#[derive(Debug, Clone)]
pub struct ModuleView {
    pub name: String,
    pub cells: Vec<Cell>,
    pub jobs: Vec<ScanJob>,
    /// Job index -> layer.
    pub job_layer: Vec<usize>,
    /// Indices into `jobs` of the running scan's jobs (a resumed scan skips finished ones);
    /// empty means all of them.
    pub scan_jobs: Vec<usize>,
    pub state: ScanState,
    pub progress: Progress,
    pub scan_id: u64,
}

impl ModuleView {
    pub fn snr(&self) -> Vec<Option<f64>> {
        self.cells.iter().map(Cell::snr).collect()
    }

    pub fn count(&self, pred: impl Fn(Kind) -> bool) -> usize {
        self.cells.iter().filter(|c| pred(c.kind())).count()
    }
}

pub enum Source {
    Model(Arc<Model>),
    ScanFile(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogKind {
    Yaml,
    Model,
    ScanJson,
}

impl DialogKind {
    pub fn title(self) -> &'static str {
        match self {
            DialogKind::Yaml => "Write mergekit YAML",
            DialogKind::Model => "Export pruned model",
            DialogKind::ScanJson => "Write scan JSON",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dialog {
    pub kind: DialogKind,
    pub input: String,
    /// In characters, 0..=input's length.
    pub cursor: usize,
}

/// Line editing in a dialog's path field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Insert(char),
    Backspace,
    Delete,
    Left,
    Right,
    Home,
    End,
    /// Ctrl-U: replace the default path instead of erasing it key by key.
    Clear,
}

impl Dialog {
    pub fn new(kind: DialogKind, input: impl Into<String>) -> Dialog {
        let input = input.into();
        Dialog {
            kind,
            cursor: input.chars().count(),
            input,
        }
    }

    fn byte_at(&self, char_index: usize) -> usize {
        self.input
            .char_indices()
            .nth(char_index)
            .map_or(self.input.len(), |(b, _)| b)
    }

    pub fn edit(&mut self, e: Edit) {
        let len = self.input.chars().count();
        self.cursor = self.cursor.min(len);
        match e {
            Edit::Insert(c) => {
                let b = self.byte_at(self.cursor);
                self.input.insert(b, c);
                self.cursor += 1;
            }
            Edit::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let b = self.byte_at(self.cursor);
                self.input.remove(b);
            }
            Edit::Delete if self.cursor < len => {
                let b = self.byte_at(self.cursor);
                self.input.remove(b);
            }
            Edit::Left => self.cursor = self.cursor.saturating_sub(1),
            Edit::Right => self.cursor = (self.cursor + 1).min(len),
            Edit::Home => self.cursor = 0,
            Edit::End => self.cursor = len,
            Edit::Clear => {
                self.input.clear();
                self.cursor = 0;
            }
            Edit::Backspace | Edit::Delete => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    None,
    Help,
    Dialog(Dialog),
    ConfirmQuit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Info,
    Ok,
    Error,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub text: String,
    pub kind: StatusKind,
}

pub struct ExportJob {
    pub out: PathBuf,
    pub progress: ExportProgress,
    pub cancel: CancelToken,
}

/// Tuning for tests: they drive scans by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppOptions {
    pub autoscan: bool,
    pub threads: usize,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            autoscan: true,
            threads: 0,
        }
    }
}

pub struct App {
    pub source: Source,
    pub name: String,
    /// The path the user gave (mergekit's `model:`).
    pub source_path: PathBuf,
    pub stack: Stack,
    pub num_layers: usize,
    pub modules: Vec<ModuleView>,
    /// Index into `modules` of the type on screen.
    pub current: usize,
    /// Index into `modules` of the type whose SNR drives the pruning choice.
    pub drive: usize,
    pub cursor: usize,
    /// First layer shown when the chart has to scroll.
    pub offset: usize,
    pub log_scale: bool,
    pub spectrum_zoom: bool,
    pub rule: Rule,
    pub lowest_k: usize,
    pub below_x: f64,
    pub selection: Selection,
    /// The user changed the choice by hand since the last export.
    pub dirty: bool,
    pub overlay: Overlay,
    pub status: Option<Status>,
    pub export: Option<ExportJob>,
    pub size: (u16, u16),
    pub quit: bool,
    pub tick: u64,
    pub warnings: Vec<String>,
    pub options: AppOptions,
    tx: Sender<Msg>,
    scans: Vec<(u64, ScanHandle)>,
    queue: VecDeque<usize>,
    next_scan_id: u64,
}

impl App {
    /// An explorer on an opened model. Starts the default module's scan when `autoscan`.
    pub fn for_model(
        model: Arc<Model>,
        tx: Sender<Msg>,
        options: AppOptions,
    ) -> color_eyre::Result<App> {
        let stack = model.main_stack()?.clone();
        let default = stack.default_module().map(str::to_string).ok_or_else(|| {
            color_eyre::eyre::eyre!("{}: layers have no 2-D weights", model.source.display())
        })?;
        let n = stack.num_layers;
        let modules: Vec<ModuleView> = stack
            .modules
            .keys()
            .map(|name| {
                let jobs = scan::jobs_for_module(&model, &stack, name);
                let mut cells = vec![Cell::missing(); n];
                let mut job_layer = Vec::with_capacity(jobs.len());
                for job in &jobs {
                    let layer = job.layer.unwrap_or(0).min(n.saturating_sub(1));
                    job_layer.push(layer);
                    cells[layer] = Cell {
                        name: job.tensor.clone(),
                        shape: job.shape.clone(),
                        dtype: model
                            .tensor(&job.tensor)
                            .map(|t| model::dtype_name(t.dtype))
                            .unwrap_or_default(),
                        value: Value::Pending,
                        elapsed: None,
                    };
                }
                ModuleView {
                    name: name.clone(),
                    cells,
                    jobs,
                    job_layer,
                    scan_jobs: Vec::new(),
                    state: ScanState::NotStarted,
                    progress: Progress::default(),
                    scan_id: 0,
                }
            })
            .collect();
        let drive = modules.iter().position(|m| m.name == default).unwrap_or(0);
        let mut app = App::base(
            Source::Model(model.clone()),
            model.name(),
            model.source.clone(),
            stack,
            modules,
            drive,
            tx,
            options,
        );
        app.warnings = model.warnings.clone();
        if let Some(first) = app.warnings.first() {
            let more = app.warnings.len() - 1;
            let text = if more > 0 {
                format!("warning: {first} (and {more} more)")
            } else {
                format!("warning: {first}")
            };
            app.set_status(text, StatusKind::Error);
        }
        if options.autoscan {
            app.request_scan(drive);
        }
        Ok(app)
    }

    /// An explorer on a scan file: bars from the file, nothing to compute.
    pub fn for_scan_file(
        path: &Path,
        entries: Vec<ScanEntry>,
        tx: Sender<Msg>,
    ) -> color_eyre::Result<App> {
        let stack = scanfile::main_stack(&entries, &path.display().to_string())?;
        let mut by_type: BTreeMap<String, BTreeMap<usize, &ScanEntry>> = BTreeMap::new();
        for e in &entries {
            if let Some((s, i)) = e.layer()
                && s == stack.prefix
            {
                by_type
                    .entry(e.module_type.clone())
                    .or_default()
                    .insert(i, e);
            }
        }
        let n = stack.num_layers;
        let modules: Vec<ModuleView> = by_type
            .iter()
            .map(|(name, by_layer)| {
                let mut cells = vec![Cell::missing(); n];
                for (&i, e) in by_layer {
                    cells[i] = Cell {
                        name: e.module.clone(),
                        shape: Vec::new(),
                        dtype: String::new(),
                        value: Value::File {
                            snr: e.snr,
                            extra: e.extra.clone(),
                            error: e.error.clone(),
                        },
                        elapsed: None,
                    };
                }
                ModuleView {
                    name: name.clone(),
                    cells,
                    jobs: Vec::new(),
                    job_layer: Vec::new(),
                    scan_jobs: Vec::new(),
                    state: ScanState::Loaded,
                    progress: Progress::default(),
                    scan_id: 0,
                }
            })
            .collect();
        let default = stack.default_module().unwrap_or_default().to_string();
        let drive = modules.iter().position(|m| m.name == default).unwrap_or(0);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let mut app = App::base(
            Source::ScanFile(path.to_path_buf()),
            name,
            path.to_path_buf(),
            stack,
            modules,
            drive,
            tx,
            AppOptions::default(),
        );
        app.refresh_selection();
        Ok(app)
    }

    #[allow(clippy::too_many_arguments)]
    fn base(
        source: Source,
        name: String,
        source_path: PathBuf,
        stack: Stack,
        modules: Vec<ModuleView>,
        drive: usize,
        tx: Sender<Msg>,
        options: AppOptions,
    ) -> App {
        let n = stack.num_layers;
        App {
            source,
            name,
            source_path,
            num_layers: n,
            stack,
            modules,
            current: drive,
            drive,
            cursor: 0,
            offset: 0,
            log_scale: true,
            spectrum_zoom: false,
            rule: Rule::Infinite,
            lowest_k: (n / 8).max(1),
            below_x: 0.0,
            selection: Selection::new(n),
            dirty: false,
            overlay: Overlay::None,
            status: None,
            export: None,
            size: (120, 40),
            quit: false,
            tick: 0,
            warnings: Vec::new(),
            options,
            tx,
            scans: Vec::new(),
            queue: VecDeque::new(),
            next_scan_id: 1,
        }
    }

    pub fn model(&self) -> Option<&Arc<Model>> {
        match &self.source {
            Source::Model(m) => Some(m),
            Source::ScanFile(_) => None,
        }
    }

    pub fn is_scan_file(&self) -> bool {
        matches!(self.source, Source::ScanFile(_))
    }

    pub fn module(&self) -> &ModuleView {
        &self.modules[self.current]
    }

    pub fn drive_module(&self) -> &ModuleView {
        &self.modules[self.drive]
    }

    pub fn current_cell(&self) -> Option<&Cell> {
        self.module().cells.get(self.cursor)
    }

    pub fn scanning(&self) -> bool {
        !self.scans.is_empty()
    }

    /// The rule with its parameter as currently set.
    pub fn rule_text(&self) -> String {
        let module = &self.drive_module().name;
        let mut s = match self.rule {
            // The threshold sits a hair above a layer's value; print it the way the axis does.
            Rule::Below(x) => format!(
                "drop layers whose {module} SNR is below {}",
                super::chart::short(x)
            ),
            rule => rule.describe(module),
        };
        let manual = (0..self.num_layers)
            .filter(|&i| self.selection.mark(i).is_manual())
            .count();
        if manual > 0 {
            s.push_str(&format!(", {manual} changed by hand"));
        }
        s
    }

    // ---- messages ----

    /// Applies one message. Keys become actions through the key table first.
    pub fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Key(key) => {
                if let Some(action) = keys::action_for(self, key) {
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
                self.size = (w, h);
                self.keep_cursor_visible();
            }
            Msg::Scan { scan_id, event } => self.on_scan(scan_id, event),
            Msg::Export(e) => self.on_export(e),
            Msg::Tick => self.tick = self.tick.wrapping_add(1),
            Msg::Terminate => self.shutdown(),
        }
    }

    pub fn on_scan(&mut self, scan_id: u64, event: ScanEvent) {
        let Some(mi) = self.modules.iter().position(|m| m.scan_id == scan_id) else {
            return;
        };
        match event {
            ScanEvent::Result { result, progress } => {
                let m = &mut self.modules[mi];
                m.progress = progress;
                let job = if m.scan_jobs.is_empty() {
                    Some(result.job)
                } else {
                    m.scan_jobs.get(result.job).copied()
                };
                if let Some(&layer) = job.and_then(|j| m.job_layer.get(j))
                    && let Some(cell) = m.cells.get_mut(layer)
                {
                    cell.elapsed = Some(result.elapsed);
                    cell.value = match result.outcome {
                        Ok(s) => Value::Stats(Box::new(s)),
                        Err(e) => Value::Failed(e),
                    };
                }
                if mi == self.drive {
                    self.refresh_selection();
                }
            }
            ScanEvent::Finished {
                progress,
                cancelled,
            } => {
                let m = &mut self.modules[mi];
                m.progress = progress;
                m.state = if cancelled {
                    ScanState::Cancelled
                } else {
                    ScanState::Done
                };
                let failed = m.count(|k| matches!(k, Kind::Failed | Kind::NaN));
                let msg = if cancelled {
                    format!(
                        "scan of {} cancelled after {}/{} matrices",
                        m.name, progress.done, progress.total
                    )
                } else {
                    format!(
                        "scanned {} {} matrices in {}{}",
                        progress.total,
                        m.name,
                        super::summary::human_duration(progress.elapsed),
                        if failed > 0 {
                            format!(", {failed} without an SNR")
                        } else {
                            String::new()
                        }
                    )
                };
                // The progress line already tells the quiet case for the module on screen.
                if cancelled || failed > 0 || mi != self.current {
                    let kind = if failed > 0 {
                        StatusKind::Error
                    } else if cancelled {
                        StatusKind::Info
                    } else {
                        StatusKind::Ok
                    };
                    self.set_status(msg, kind);
                }
                if let Some(pos) = self.scans.iter().position(|(id, _)| *id == scan_id) {
                    // The workers are done after Finished; dropping the handle detaches them.
                    self.scans.remove(pos);
                }
                self.start_next_scan();
            }
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
                let out = self.export.take().map(|j| j.out).unwrap_or_default();
                match r {
                    Ok(s) => {
                        self.mark_saved();
                        let mut text = format!(
                            "exported {} tensors ({} shard{}, {}) to {}",
                            s.tensors,
                            s.shards,
                            if s.shards == 1 { "" } else { "s" },
                            human_bytes(s.bytes),
                            s.out.display()
                        );
                        if let Some(note) = s.notes.first() {
                            text.push_str(&format!(" — note: {note}"));
                        }
                        self.set_status(text, StatusKind::Ok);
                    }
                    Err(e) => self.set_status(
                        format!("export to {} failed: {e}", out.display()),
                        StatusKind::Error,
                    ),
                }
            }
        }
    }

    // ---- actions ----

    pub fn update(&mut self, action: Action) {
        match action {
            Action::Left => self.move_cursor(-1),
            Action::Right => self.move_cursor(1),
            Action::Home => self.set_cursor(0),
            Action::End => self.set_cursor(self.num_layers.saturating_sub(1)),
            Action::PageLeft => self.move_cursor(-(self.page() as isize)),
            Action::PageRight => self.move_cursor(self.page() as isize),
            Action::NextModule => self.switch_module(1),
            Action::PrevModule => self.switch_module(-1),
            Action::Toggle => {
                if self.cursor < self.num_layers {
                    self.selection.toggle(self.cursor);
                    self.dirty = true;
                }
            }
            Action::ApplyRule => {
                self.selection
                    .apply_rule(&self.rule, &self.drive_module().snr());
                self.dirty = true;
                self.set_status(
                    format!("rule applied: {}", self.rule_text()),
                    StatusKind::Info,
                );
            }
            Action::Clear => {
                self.selection.clear();
                self.dirty = true;
            }
            Action::Invert => {
                self.selection.invert();
                self.dirty = true;
            }
            Action::CycleRule => {
                self.rule = match self.rule {
                    Rule::Infinite => Rule::Lowest(self.lowest_k),
                    Rule::Lowest(_) => Rule::Below(self.default_below()),
                    Rule::Below(_) => Rule::Infinite,
                };
                self.reapply_rule();
            }
            Action::RuleUp | Action::RuleDown => {
                let up = action == Action::RuleUp;
                match self.rule {
                    Rule::Infinite => {
                        self.set_status(
                            "the infinite rule has no parameter (r cycles rules)",
                            StatusKind::Info,
                        );
                        return;
                    }
                    Rule::Lowest(k) => {
                        let k = if up {
                            (k + 1).min(self.num_layers)
                        } else {
                            k.saturating_sub(1)
                        };
                        self.lowest_k = k;
                        self.rule = Rule::Lowest(k);
                    }
                    Rule::Below(x) => {
                        let x = next_threshold(&self.drive_module().snr(), x, up);
                        self.below_x = x;
                        self.rule = Rule::Below(x);
                    }
                }
                self.reapply_rule();
            }
            Action::ToggleScale => self.log_scale = !self.log_scale,
            Action::ToggleSpectrum => {
                if self.is_scan_file() {
                    self.set_status(
                        "no spectrum: a scan file holds SNR values, not singular values",
                        StatusKind::Info,
                    );
                } else {
                    self.spectrum_zoom = !self.spectrum_zoom;
                    self.keep_cursor_visible();
                }
            }
            Action::Help => {
                self.overlay = if self.overlay == Overlay::Help {
                    Overlay::None
                } else {
                    Overlay::Help
                };
            }
            Action::ExportYaml => self.open_dialog(DialogKind::Yaml),
            Action::ExportModel => {
                if self.is_scan_file() {
                    self.set_status(
                        "cannot export a model from a scan file: open the model folder instead",
                        StatusKind::Error,
                    );
                } else if self.export.is_some() {
                    self.set_status("an export is already running", StatusKind::Info);
                } else {
                    self.open_dialog(DialogKind::Model);
                }
            }
            Action::WriteScan => {
                if self.is_scan_file() {
                    self.set_status(
                        "this is already a scan file; nothing new to write",
                        StatusKind::Info,
                    );
                } else {
                    self.open_dialog(DialogKind::ScanJson);
                }
            }
            Action::Cancel => self.cancel(),
            Action::Quit => {
                if self.overlay != Overlay::None {
                    self.overlay = Overlay::None;
                } else if self.unsaved() || self.export.is_some() {
                    self.overlay = Overlay::ConfirmQuit;
                } else {
                    self.shutdown();
                }
            }
            Action::ForceQuit => self.shutdown(),
            Action::Confirm(yes) => {
                self.overlay = Overlay::None;
                if yes {
                    self.shutdown();
                }
            }
            Action::Click(x, y) => self.click(x, y),
            Action::DialogEdit(e) => {
                if let Overlay::Dialog(d) = &mut self.overlay {
                    d.edit(e);
                }
            }
            Action::DialogSubmit => {
                if let Overlay::Dialog(d) = std::mem::replace(&mut self.overlay, Overlay::None) {
                    self.submit(d);
                }
            }
        }
    }

    fn set_status(&mut self, text: impl Into<String>, kind: StatusKind) {
        self.status = Some(Status {
            text: text.into(),
            kind,
        });
    }

    /// The choice changed by hand and was not written anywhere since.
    pub fn unsaved(&self) -> bool {
        self.dirty
    }

    fn mark_saved(&mut self) {
        self.dirty = false;
    }

    fn shutdown(&mut self) {
        for (_, h) in &self.scans {
            h.cancel();
        }
        if let Some(e) = &self.export {
            e.cancel.cancel();
        }
        self.queue.clear();
        self.quit = true;
    }

    /// Esc: closes what is open, else stops the running work.
    fn cancel(&mut self) {
        if self.overlay != Overlay::None {
            self.overlay = Overlay::None;
            return;
        }
        if self.spectrum_zoom {
            self.spectrum_zoom = false;
            return;
        }
        let mut stopped = false;
        for mi in self.queue.drain(..) {
            self.modules[mi].state = ScanState::NotStarted;
            stopped = true;
        }
        for (_, h) in &self.scans {
            h.cancel();
            stopped = true;
        }
        if let Some(e) = &self.export {
            e.cancel.cancel();
            stopped = true;
        }
        if stopped {
            self.set_status("cancelling…", StatusKind::Info);
        }
    }

    fn page(&self) -> usize {
        layout::visible_layers(self).max(1)
    }

    fn move_cursor(&mut self, delta: isize) {
        let n = self.num_layers as isize;
        if n == 0 {
            return;
        }
        let c = (self.cursor as isize + delta).clamp(0, n - 1);
        self.set_cursor(c as usize);
    }

    pub fn set_cursor(&mut self, c: usize) {
        self.cursor = c.min(self.num_layers.saturating_sub(1));
        self.keep_cursor_visible();
    }

    /// Scrolls the chart just enough to show the cursor, so the view does not jump around.
    pub fn keep_cursor_visible(&mut self) {
        let vis = layout::visible_layers(self).max(1);
        let max_offset = self.num_layers.saturating_sub(vis);
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + vis {
            self.offset = self.cursor + 1 - vis;
        }
        self.offset = self.offset.min(max_offset);
    }

    fn switch_module(&mut self, dir: isize) {
        let n = self.modules.len() as isize;
        if n == 0 {
            return;
        }
        self.select_module(((self.current as isize + dir).rem_euclid(n)) as usize);
    }

    /// Shows a module type, scanning it if it was never (fully) scanned.
    fn select_module(&mut self, mi: usize) {
        if mi >= self.modules.len() {
            return;
        }
        self.current = mi;
        if self.modules[mi].state == ScanState::NotStarted
            || self.modules[mi].state == ScanState::Cancelled
        {
            self.request_scan(mi);
        }
    }

    /// Scans a module type now, or after the running scan: two pools at once would only
    /// share the same cores and delay both.
    pub fn request_scan(&mut self, mi: usize) {
        if self.model().is_none() || self.queue.contains(&mi) {
            return;
        }
        if self.scans.is_empty() {
            self.start_scan(mi);
        } else {
            self.modules[mi].state = ScanState::Queued;
            self.queue.push_back(mi);
        }
    }

    fn start_next_scan(&mut self) {
        if !self.scans.is_empty() {
            return;
        }
        // The module on screen first: that is what the user is waiting for.
        if let Some(pos) = self.queue.iter().position(|&m| m == self.current) {
            self.queue.remove(pos);
            self.start_scan(self.current);
        } else if let Some(mi) = self.queue.pop_front() {
            self.start_scan(mi);
        }
    }

    fn start_scan(&mut self, mi: usize) {
        let Some(model) = self.model().cloned() else {
            return;
        };
        let id = self.next_scan_id;
        self.next_scan_id += 1;
        let m = &mut self.modules[mi];
        m.scan_id = id;
        m.state = ScanState::Running;
        // Resuming after a cancel: only what is not computed yet.
        m.scan_jobs = (0..m.jobs.len())
            .filter(|&j| !matches!(m.cells[m.job_layer[j]].value, Value::Stats(_)))
            .collect();
        let jobs: Vec<ScanJob> = m.scan_jobs.iter().map(|&j| m.jobs[j].clone()).collect();
        m.progress = Progress {
            total: jobs.len(),
            bytes_total: jobs.iter().map(|j| j.bytes).sum(),
            ..Progress::default()
        };
        for &j in &m.scan_jobs {
            let layer = m.job_layer[j];
            m.cells[layer].value = Value::Pending;
        }
        let tx = self.tx.clone();
        let handle = scan::start(
            model,
            jobs,
            ScanOptions {
                threads: self.options.threads,
            },
            move |event| {
                let _ = tx.send(Msg::Scan { scan_id: id, event });
            },
        );
        self.scans.push((id, handle));
    }

    /// New results arrived for the driving module: the rule's choice follows them, hand
    /// changes stay.
    pub fn refresh_selection(&mut self) {
        let snr = self.drive_module().snr();
        self.selection.refresh_rule(&self.rule, &snr);
    }

    fn reapply_rule(&mut self) {
        self.refresh_selection();
        // The rule line shows the new rule; no status message needed.
        self.dirty = true;
    }

    /// A threshold that drops roughly the lower quarter of the finite values: a useful start.
    fn default_below(&self) -> f64 {
        if self.below_x > 0.0 {
            return self.below_x;
        }
        let mut v: Vec<f64> = self
            .drive_module()
            .snr()
            .into_iter()
            .flatten()
            .filter(|x| x.is_finite())
            .collect();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(f64::total_cmp);
        just_above(v[v.len() / 4])
    }

    fn click(&mut self, x: u16, y: u16) {
        if self.overlay != Overlay::None {
            return;
        }
        if let Some(layer) = layout::layer_at(self, x, y) {
            self.set_cursor(layer);
        } else if !layout::too_small(self.size.0, self.size.1)
            && y == layout::areas(self.size.0, self.size.1, self).tabs.y
        {
            let (_, _, tabs) = super::summary::tab_layout(self, self.size.0);
            if let Some(&(mi, _, _)) = tabs.iter().find(|(_, a, b)| (*a..=*b).contains(&x)) {
                self.select_module(mi);
            }
        }
    }

    // ---- exports ----

    pub fn default_path(&self, kind: DialogKind) -> String {
        let base = sanitize(&self.name);
        match kind {
            DialogKind::Yaml => format!("{base}-pruned.yml"),
            DialogKind::Model => format!("{base}-pruned/"),
            DialogKind::ScanJson => format!("{base}-snr.json"),
        }
    }

    fn open_dialog(&mut self, kind: DialogKind) {
        self.overlay = Overlay::Dialog(Dialog::new(kind, self.default_path(kind)));
    }

    /// The choice as the writers take it; the reason is worded as `snrscope export` words it,
    /// so files from the explorer and from the command line read the same.
    pub fn plan(&self) -> Plan {
        let marked = |m: Mark| {
            (0..self.num_layers)
                .filter(|&i| self.selection.mark(i) == m)
                .collect::<Vec<_>>()
        };
        let module = self.drive_module().name.clone();
        Plan {
            model_ref: self.source_path.display().to_string(),
            stack_prefix: self.stack.prefix.clone(),
            num_layers: self.num_layers,
            dropped: self.selection.dropped(),
            reason: planning::describe_choice(
                &self.rule,
                &module,
                &marked(Mark::DropManual),
                &marked(Mark::KeepManual),
            ),
            module_type: module,
            snr: self.drive_module().snr(),
            dtype: self
                .model()
                .map_or_else(|| "bfloat16".to_string(), |m| planning::model_dtype(m)),
            mergekit_modules: self.model().and_then(|m| planning::mergekit_modules(m)),
        }
    }

    fn submit(&mut self, d: Dialog) {
        let path = PathBuf::from(d.input.trim());
        if path.as_os_str().is_empty() {
            self.set_status("no path given; nothing written", StatusKind::Error);
            return;
        }
        match d.kind {
            DialogKind::Yaml => {
                let plan = self.plan();
                match export::write_mergekit_yaml(&plan, &path, &self.inputs(), true) {
                    Ok(()) => {
                        self.mark_saved();
                        self.set_status(
                            format!(
                                "wrote {} (keep {})",
                                path.display(),
                                plan::format_ranges(&plan.kept_ranges())
                            ),
                            StatusKind::Ok,
                        );
                    }
                    Err(e) => self.set_status(
                        format!("cannot write {}: {e}", path.display()),
                        StatusKind::Error,
                    ),
                }
            }
            DialogKind::ScanJson => {
                let entries = self.scan_entries();
                let text = scanfile::to_json(&entries);
                match export::write_file_atomically(&path, text.as_bytes(), &self.inputs(), true) {
                    Ok(()) => self.set_status(
                        format!("wrote {} scan entries to {}", entries.len(), path.display()),
                        StatusKind::Ok,
                    ),
                    Err(e) => self.set_status(e.to_string(), StatusKind::Error),
                }
            }
            DialogKind::Model => self.start_export(path),
        }
    }

    /// What the explorer reads: no write may touch it.
    pub fn inputs(&self) -> export::Inputs {
        match &self.source {
            Source::Model(m) => export::Inputs::of_model(m),
            Source::ScanFile(p) => export::Inputs::of_path(p),
        }
    }

    /// Every scanned module type, in the layout `snrscope scan --out` writes.
    pub fn scan_entries(&self) -> Vec<ScanEntry> {
        let mut out = Vec::new();
        for m in &self.modules {
            if m.state == ScanState::NotStarted {
                continue;
            }
            for (job, &layer) in m.jobs.iter().zip(&m.job_layer) {
                let r: Option<Result<SnrStats, String>> = match &m.cells[layer].value {
                    Value::Stats(s) => Some(Ok((**s).clone())),
                    Value::Failed(e) => Some(Err(e.clone())),
                    _ => None,
                };
                out.push(ScanEntry::from_result(job, r.as_ref()));
            }
        }
        out
    }

    fn start_export(&mut self, out: PathBuf) {
        let Some(model) = self.model().cloned() else {
            return;
        };
        let plan = self.plan();
        let cancel = CancelToken::default();
        let token = cancel.clone();
        let tx = self.tx.clone();
        let options = ExportOptions::new(out.clone());
        let spawned = std::thread::Builder::new()
            .name("snr-export".into())
            .spawn(move || {
                let progress_tx = tx.clone();
                let mut progress = move |p: ExportProgress| {
                    let _ = progress_tx.send(Msg::Export(ExportMsg::Progress(p)));
                };
                let r = export::export_model(&model, &plan, &options, &mut progress, &token)
                    .map_err(|e| e.to_string());
                let _ = tx.send(Msg::Export(ExportMsg::Done(r)));
            });
        match spawned {
            Ok(_) => {
                self.export = Some(ExportJob {
                    out: out.clone(),
                    progress: ExportProgress::default(),
                    cancel,
                });
                self.set_status(format!("exporting to {}…", out.display()), StatusKind::Info);
            }
            Err(e) => self.set_status(format!("cannot start export: {e}"), StatusKind::Error),
        }
    }
}

/// The next threshold up or down: the next distinct finite SNR, so each press moves exactly
/// one more (or one fewer) layer across the line.
fn next_threshold(snr: &[Option<f64>], x: f64, up: bool) -> f64 {
    let mut v: Vec<f64> = snr
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    if up {
        v.iter()
            .copied()
            .find(|&s| s >= x)
            .map(just_above)
            .unwrap_or(x)
    } else {
        let covered: Vec<f64> = v.iter().copied().filter(|&s| s < x).collect();
        match covered.len() {
            0 => x,
            // Below the smallest value: the rule drops nothing.
            1 => covered[0] * (1.0 - 1e-9),
            n => just_above(covered[n - 2]),
        }
    }
}

/// A threshold a hair above `x`, so `below` (strictly less than) takes the layer at `x`.
fn just_above(x: f64) -> f64 {
    x * (1.0 + 1e-9) + f64::MIN_POSITIVE
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
