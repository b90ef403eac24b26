//! What the explorer shows: one row of cells (one per layer) for every module type of the
//! main layer stack, built from an opened model or from a scan file. Scan results land here;
//! nothing in this module starts work or draws.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use color_eyre::eyre::eyre;

use snrscope::{
    checkpoint::{self, Model, layers::Stack},
    probe::ProbeDoc,
    scanfile::{self, ScanEntry},
    spectrum::{
        scan::{self, Progress, ScanJob},
        snr::{Method, SnrStats},
    },
};

/// One layer's value for one module type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// The layer has no tensor of this module type.
    Missing,
    Pending,
    Stats(Box<SnrStats>),
    Failed(String),
    /// A layer metric read from a probe file (`snrscope probe`); NaN where it has none.
    Metric(f64),
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
    /// Read from the scan cache rather than computed in this session.
    pub cached: bool,
    /// What produced the singular values (SVD, or the Gram route).
    pub method: Option<Method>,
}

impl Cell {
    fn missing() -> Cell {
        Cell {
            name: String::new(),
            shape: Vec::new(),
            dtype: String::new(),
            value: Value::Missing,
            elapsed: None,
            cached: false,
            method: None,
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
            // A metric without a value (a layer the probe could not measure) has no bar.
            Value::Metric(v) if v.is_nan() => Kind::Missing,
            Value::Metric(v) => kind_of(*v),
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

    #[cfg(test)]
    pub fn stats(&self) -> Option<&SnrStats> {
        match &self.value {
            Value::Stats(s) => Some(s),
            _ => None,
        }
    }

    /// Has a result (computed or read from a file): nothing to scan.
    pub fn is_known(&self) -> bool {
        matches!(
            self.value,
            Value::Stats(_) | Value::File { .. } | Value::Metric(_)
        )
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
    /// The values came from a scan file.
    Loaded,
}

/// A layer metric from a probe file, shown as a tab beside the SNR modules. Low values are
/// the layers (or blocks) to drop first, as for the SNR rules' `lowest` and `below`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric's name in sentences and titles ("Block Influence").
    pub name: String,
    /// Each value stands for the `block` consecutive layers from its own (an angular distance
    /// of blocks of n); 1 for per-layer metrics.
    pub block: usize,
    /// Its definition and what it was measured on (the details pane, the model card).
    pub definition: String,
}

/// What the rule reads from the driving module: a value per entry, each standing for
/// `block` layers from its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub values: Vec<Option<f64>>,
    pub block: usize,
}

/// One module type's bars, and the bookkeeping of its scan.
#[derive(Debug, Clone)]
pub struct ModuleView {
    /// The module type, as the model lists it (`self_attn.v_proj`): the key of scans and plans.
    pub name: String,
    /// What the screen calls it: the name, or llama.cpp's for a GGUF model (`attn_v`).
    pub label: String,
    pub cells: Vec<Cell>,
    pub jobs: Vec<ScanJob>,
    /// Job index -> layer.
    pub job_layer: Vec<usize>,
    /// Indices into `jobs` of the running scan's jobs (a resumed scan skips finished ones).
    pub scan_jobs: Vec<usize>,
    pub state: ScanState,
    pub progress: Progress,
    pub scan_id: u64,
    /// A probe's metric rather than an SNR (nothing to scan).
    pub metric: Option<Metric>,
}

impl ModuleView {
    pub fn snr(&self) -> Vec<Option<f64>> {
        self.cells.iter().map(Cell::snr).collect()
    }

    /// What the rule reads when this module drives it.
    pub fn reading(&self) -> Reading {
        Reading {
            values: self.snr(),
            block: self.metric.as_ref().map_or(1, |m| m.block),
        }
    }

    /// The value's name in sentences: "self_attn.v_proj SNR", or the metric's.
    pub fn value_name(&self) -> String {
        match &self.metric {
            Some(m) => m.name.clone(),
            None => format!("{} SNR", self.name),
        }
    }

    pub fn count(&self, pred: impl Fn(Kind) -> bool) -> usize {
        self.cells.iter().filter(|c| pred(c.kind())).count()
    }

    /// The module's tab: its name, a mark for a running, queued or cancelled scan, and
    /// brackets for the one on screen (visible without colour).
    pub fn tab_label(&self, current: bool) -> String {
        let mark = match self.state {
            ScanState::Running => "⟳",
            ScanState::Queued => "…",
            ScanState::Cancelled => "×",
            _ => "",
        };
        if current {
            format!("[{}{mark}]", self.label)
        } else {
            format!(" {}{mark} ", self.label)
        }
    }

    /// Layers that have this module but no value yet.
    pub fn unknown(&self) -> usize {
        self.cells
            .iter()
            .filter(|c| !matches!(c.value, Value::Missing) && c.snr().is_none())
            .count()
    }

    fn new(name: String, cells: Vec<Cell>, state: ScanState) -> ModuleView {
        ModuleView {
            label: name.clone(),
            name,
            cells,
            jobs: Vec::new(),
            job_layer: Vec::new(),
            scan_jobs: Vec::new(),
            state,
            progress: Progress::default(),
            scan_id: 0,
            metric: None,
        }
    }

    fn metric(label: &str, metric: Metric, values: &[f64], num_layers: usize) -> ModuleView {
        let cells = (0..num_layers)
            .map(|l| match values.get(l) {
                Some(&v) => Cell {
                    name: format!("{} · {}", metric.name, block_name(l, metric.block)),
                    value: Value::Metric(v),
                    ..Cell::missing()
                },
                None => Cell::missing(),
            })
            .collect();
        let mut m = ModuleView::new(label.to_string(), cells, ScanState::Loaded);
        m.metric = Some(metric);
        m
    }
}

/// "layer 3", or "layers 3–5" for a block of 3.
fn block_name(start: usize, block: usize) -> String {
    if block <= 1 {
        format!("layer {start}")
    } else {
        format!("layers {start}–{}", start + block - 1)
    }
}

/// The tabs of a probe's metrics: Block Influence, the angular distance of each block size,
/// and the perplexity without each layer when the probe measured it.
fn probe_modules(p: &ProbeDoc) -> Vec<ModuleView> {
    snrscope::probe::columns(p)
        .into_iter()
        .map(|c| {
            let values: Vec<f64> = c.values.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
            ModuleView::metric(
                &c.label,
                Metric {
                    name: c.name,
                    block: c.block,
                    definition: c.definition,
                },
                &values,
                p.layers,
            )
        })
        .collect()
}

pub enum Source {
    Model(Arc<Model>),
    ScanFile(PathBuf),
    /// A probe file alone: metrics, nothing to scan or evaluate.
    ProbeFile(PathBuf),
}

/// The document: where it came from, its main stack, and every module type's cells.
pub struct Document {
    pub source: Source,
    /// Display name (folder or file name).
    pub name: String,
    /// The path the user gave.
    pub source_path: PathBuf,
    pub stack: Stack,
    pub num_layers: usize,
    pub modules: Vec<ModuleView>,
    /// The module the seed's rule reads by default (value projection or its equivalent).
    pub default_module: usize,
    pub warnings: Vec<String>,
}

impl Document {
    /// Every 2-D module type of the model's main stack, all pending (nothing is read yet).
    pub fn for_model(model: Arc<Model>) -> color_eyre::Result<Document> {
        let stack = model.main_stack()?.clone();
        let default = stack
            .default_module()
            .map(str::to_string)
            .ok_or_else(|| eyre!("{}: layers have no 2-D weights", model.source.display()))?;
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
                            .map(|t| checkpoint::dtype_name(t.dtype))
                            .unwrap_or_default(),
                        value: Value::Pending,
                        elapsed: None,
                        cached: false,
                        method: None,
                    };
                }
                let mut m = ModuleView::new(name.clone(), cells, ScanState::NotStarted);
                if let Some(j) = jobs.first().filter(|_| model.gguf.is_some()) {
                    m.label = scanfile::type_of(&model.scan_key(&j.module));
                }
                m.jobs = jobs;
                m.job_layer = job_layer;
                m
            })
            .collect();
        let default_module = modules.iter().position(|m| m.name == default).unwrap_or(0);
        Ok(Document {
            name: model.name(),
            source_path: model.source.clone(),
            warnings: model.warnings.clone(),
            source: Source::Model(model),
            num_layers: n,
            stack,
            modules,
            default_module,
        })
    }

    /// A scan file: bars from the file, nothing to compute.
    pub fn for_scan_file(path: &Path, entries: &[ScanEntry]) -> color_eyre::Result<Document> {
        let stack = scanfile::main_stack(entries, &path.display().to_string())?;
        let n = stack.num_layers;
        let modules: Vec<ModuleView> = stack
            .modules
            .keys()
            .map(|name| {
                let mut m =
                    ModuleView::new(name.clone(), vec![Cell::missing(); n], ScanState::Loaded);
                fill_from_entries(&mut m, &stack.prefix, entries);
                m
            })
            .collect();
        let default = stack.default_module().unwrap_or_default().to_string();
        let default_module = modules.iter().position(|m| m.name == default).unwrap_or(0);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Document {
            source: Source::ScanFile(path.to_path_buf()),
            name,
            source_path: path.to_path_buf(),
            num_layers: n,
            stack,
            modules,
            default_module,
            warnings: Vec::new(),
        })
    }

    /// Values from a saved scan for a model (`snrscope MODEL --scan FILE`): the module types it
    /// holds are shown from it and not scanned again. Its stack must be the model's.
    pub fn load_saved_scan(
        &mut self,
        path: &Path,
        entries: &[ScanEntry],
    ) -> color_eyre::Result<()> {
        let saved = scanfile::main_stack(entries, &path.display().to_string())?;
        if saved.prefix != self.stack.prefix || saved.num_layers != self.num_layers {
            return Err(eyre!(
                "{}: scans `{}` with {} layers, but {} has `{}` with {} layers",
                path.display(),
                saved.prefix,
                saved.num_layers,
                self.source_path.display(),
                self.stack.prefix,
                self.num_layers
            ));
        }
        let mut loaded = 0;
        for m in &mut self.modules {
            if saved.modules.contains_key(&m.name) {
                fill_from_entries(m, &saved.prefix, entries);
                m.state = ScanState::Loaded;
                loaded += 1;
            }
        }
        if loaded == 0 {
            return Err(eyre!(
                "{}: none of its module types is in {}",
                path.display(),
                self.source_path.display()
            ));
        }
        Ok(())
    }

    /// A probe file alone (`snrscope P.json`): its metrics are the tabs, Block Influence
    /// drives.
    pub fn for_probe_file(path: &Path, probe: &ProbeDoc) -> Document {
        let modules = probe_modules(probe);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Document {
            source: Source::ProbeFile(path.to_path_buf()),
            name,
            source_path: path.to_path_buf(),
            num_layers: probe.layers,
            stack: Stack {
                prefix: probe.stack_prefix.clone(),
                num_layers: probe.layers,
                ..Stack::default()
            },
            modules,
            default_module: 0,
            warnings: Vec::new(),
        }
    }

    /// A probe's metrics beside the SNR modules (`--probe FILE`): its stack must be this
    /// document's.
    pub fn add_probe(&mut self, path: &Path, probe: &ProbeDoc) -> color_eyre::Result<()> {
        if probe.stack_prefix != self.stack.prefix || probe.layers != self.num_layers {
            return Err(eyre!(
                "{}: probes `{}` with {} layers, but {} has `{}` with {} layers",
                path.display(),
                probe.stack_prefix,
                probe.layers,
                self.source_path.display(),
                self.stack.prefix,
                self.num_layers
            ));
        }
        if self.modules.iter().any(|m| m.metric.is_some()) {
            return Err(eyre!("{}: one probe file at a time", path.display()));
        }
        self.modules.extend(probe_modules(probe));
        Ok(())
    }

    pub fn model(&self) -> Option<&Arc<Model>> {
        match &self.source {
            Source::Model(m) => Some(m),
            Source::ScanFile(_) | Source::ProbeFile(_) => None,
        }
    }

    /// "scan file", "probe file" or "model": what was opened, in messages.
    pub fn kind_word(&self) -> &'static str {
        match self.source {
            Source::Model(_) => "model",
            Source::ScanFile(_) => "scan file",
            Source::ProbeFile(_) => "probe file",
        }
    }

    /// Opened from a file of values (a scan or a probe), not a model: nothing to compute.
    pub fn is_scan_file(&self) -> bool {
        matches!(self.source, Source::ScanFile(_) | Source::ProbeFile(_))
    }

    /// Each module tab's width in columns as drawn (with its gap), `current` on screen.
    pub fn tab_widths(&self, current: usize) -> Vec<usize> {
        self.modules
            .iter()
            .enumerate()
            .map(|(i, m)| ratatui::text::Span::raw(m.tab_label(i == current)).width() + 1)
            .collect()
    }
}

fn fill_from_entries(m: &mut ModuleView, prefix: &str, entries: &[ScanEntry]) {
    let by_layer: BTreeMap<usize, &ScanEntry> = entries
        .iter()
        .filter(|e| e.module_type == m.name)
        .filter_map(|e| e.layer().filter(|(s, _)| *s == prefix).map(|(_, i)| (i, e)))
        .collect();
    for (i, e) in by_layer {
        if let Some(cell) = m.cells.get_mut(i) {
            if cell.name.is_empty() {
                cell.name = e.module.clone();
            }
            cell.value = Value::File {
                snr: e.snr,
                extra: e.extra.clone(),
                error: e.error.clone(),
            };
            cell.method = e.method;
        }
    }
}
