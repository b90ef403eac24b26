//! Writers: the mergekit slice YAML, the pruned model folder, Spectrum's unfrozen-parameters
//! YAML — and the planning that feeds them (from a model's scan or a saved scan file).
//!
//! API contract used by the explorer (src/ui) and the CLI (src/cli/export.rs).
//!
//! Modules:
//! - [`planning`]: SNR tables from scans or scan files, and the [`Plan`] built from them;
//! - `mergekit`: the passthrough slice YAML;
//! - `pruned_model`: the pruned model folder, as mergekit would write it;
//! - `safetensors_out`: streaming shard writer; `config_edit`: config.json layer edits;
//! - `atomic_dir` / `atomic_file`: nothing half-written under a final name;
//! - `unfrozen`: Spectrum's training selection; `model_card`: README.md of the pruned model.

mod atomic_dir;
mod atomic_file;
mod config_edit;
mod gguf_out;
mod guard;
mod leftovers;
mod lock;
mod mergekit;
mod mergekit_read;
mod model_card;
mod model_files;
mod pruned_model;
mod rename;
mod safetensors_out;
mod unfrozen;

use std::path::{Path, PathBuf};

use crate::{
    checkpoint::Model,
    plan::{Plan, PlanError},
    util::cancel::CancelToken,
};

pub use atomic_file::{check_output_file, write_file_atomically};
pub(crate) use config_edit::prune_config;
pub use gguf_out::{
    OutTensor as GgufOutTensor, PruneOptions, PruneSummary, PrunedLayout,
    check_target as check_gguf_target, pruned_layout, write_pruned,
};
pub use guard::Inputs;
pub use mergekit_read::{KeptLayers, kept_layers};
pub use model_card::format_snr;
pub(crate) use model_card::model_card;
pub(crate) use pruned_model::pruned_tensors;
pub use pruned_model::{Hooks, check_output_folder, export_model_with_hooks};
pub use safetensors_out::OutTensor;
pub use unfrozen::{
    UnfrozenGroup, groups_from_table, unfrozen_groups_from_scan, unfrozen_yaml, write_unfrozen_yaml,
};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    #[error("{}: {problem}", path.display())]
    BadModel { path: PathBuf, problem: String },
    #[error("{}: already exists (pass --force to replace it)", path.display())]
    TargetExists { path: PathBuf },
    #[error("{}: {what}; it was left untouched and nothing was written", path.display())]
    TargetChanged { path: PathBuf, what: String },
    #[error(
        "{}: another snrscope run is writing it{}; wait for it to finish or choose another name",
        out.display(),
        if holder.is_empty() { String::new() } else { format!(" (process {holder})") }
    )]
    Busy { out: PathBuf, holder: String },
    #[error("{}: {problem}", out.display())]
    BadTarget { out: PathBuf, problem: String },
    #[error("{}: {action}: {}", path.display(), crate::util::text::io_reason(source))]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("cancelled; nothing was written under {}", out.display())]
    Cancelled { out: PathBuf },
    /// The GGUF being pruned could not be read.
    #[error(transparent)]
    Gguf(#[from] crate::checkpoint::gguf::GgufError),
}

impl ExportError {
    pub(crate) fn io(path: impl AsRef<Path>, action: &'static str, source: std::io::Error) -> Self {
        ExportError::Io {
            path: path.as_ref().to_path_buf(),
            action,
            source,
        }
    }
}

/// Bytes written so far, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportProgress {
    pub bytes_done: u64,
    pub bytes_total: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// The final folder; written under a temporary name beside it, renamed when complete.
    pub out: PathBuf,
    /// Greedy shard split limit in bytes.
    pub shard_size: u64,
    /// Replace an existing `out`.
    pub force: bool,
    /// Files of the model folder to copy besides the model files snrscope recognises (by
    /// name, `--copy`).
    pub extra_files: Vec<String>,
    /// Inputs besides the model's own files that the output must not touch (a scan file).
    pub inputs: Inputs,
}

impl ExportOptions {
    /// Options for `out` with the defaults: 5 GB shards, no replacing, no extra files.
    pub fn new(out: impl Into<PathBuf>) -> ExportOptions {
        ExportOptions {
            out: out.into(),
            shard_size: DEFAULT_SHARD_SIZE,
            force: false,
            extra_files: Vec::new(),
            inputs: Inputs::new(),
        }
    }
}

/// mergekit's and transformers' default shard limit, 5 GB.
pub const DEFAULT_SHARD_SIZE: u64 = 5_000_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    pub out: PathBuf,
    pub shards: usize,
    pub tensors: usize,
    /// Tensor data bytes written (the index's `total_size`).
    pub bytes: u64,
    /// Other files copied unchanged (tokenizer, generation config, ...), by name.
    pub copied: Vec<String>,
    /// Files of the model folder not copied, with the reason (private, not a model file, a
    /// link out of the folder...).
    pub skipped: Vec<(String, String)>,
    /// Things the user should know (files skipped, no config.json, ...).
    pub notes: Vec<String>,
}

/// mergekit's `model:` for a model opened from `source` when the user names none: the model
/// folder's absolute path (a single weight file's folder). mergekit reads a relative path as
/// a Hugging Face repo id, so `./demo` would not be found; the CLI and the explorer both use
/// this. Falls back to the path as given when it cannot be resolved.
pub fn model_reference(source: &std::path::Path) -> String {
    std::fs::canonicalize(source)
        .map(|p| {
            if p.is_file() {
                p.parent().map(std::path::Path::to_path_buf).unwrap_or(p)
            } else {
                p
            }
        })
        .unwrap_or_else(|_| source.to_path_buf())
        .display()
        .to_string()
}

/// The mergekit passthrough YAML for the plan (refuses a plan that keeps no layer).
pub fn mergekit_yaml(plan: &Plan) -> Result<String, ExportError> {
    mergekit::yaml(plan)
}

/// Writes `mergekit_yaml(plan)` to `path` atomically (see [`write_file_atomically`]).
pub fn write_mergekit_yaml(
    plan: &Plan,
    path: &std::path::Path,
    inputs: &Inputs,
    replace: bool,
) -> Result<(), ExportError> {
    let text = mergekit_yaml(plan)?;
    write_file_atomically(path, text.as_bytes(), inputs, replace)
}

/// Writes the pruned model. Calls `progress` from the calling thread as bytes are written and
/// stops (cleaning up) when `cancel` is set.
pub fn export_model(
    model: &Model,
    plan: &Plan,
    options: &ExportOptions,
    progress: &mut dyn FnMut(ExportProgress),
    cancel: &CancelToken,
) -> Result<ExportSummary, ExportError> {
    // For the race tests: a second process acts while this one is paused where it matters.
    let mut pause = pause_before_commit_from_env();
    export_model_with_hooks(
        model,
        plan,
        options,
        progress,
        cancel,
        Hooks {
            before_commit: pause.as_mut().map(|f| f as &mut dyn FnMut()),
            ..Hooks::default()
        },
    )
}

/// `SNRSCOPE_TEST_PAUSE_BEFORE_COMMIT=DIR`: when everything is written, just before the final
/// rename, create `DIR/paused` and wait (up to a minute) until `DIR/go` exists. Lets a test run
/// another export, or create the target, from a second process at the one moment that counts.
fn pause_before_commit_from_env() -> Option<impl FnMut()> {
    let dir = PathBuf::from(std::env::var_os("SNRSCOPE_TEST_PAUSE_BEFORE_COMMIT")?);
    Some(move || {
        let _ = std::fs::write(dir.join("paused"), b"");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !dir.join("go").exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    })
}

/// `.NAME.snrscope-WHAT` beside `target`.
pub(crate) fn sibling(target: &Path, what: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let parent = target.parent().unwrap_or(Path::new("."));
    parent.join(format!(".{name}.snrscope-{what}"))
}

/// `.NAME.snrscope-WHAT-PID` beside `target`: the process id tells later runs whether its
/// owner still runs (see `leftovers`).
pub(crate) fn sibling_of_this_process(target: &Path, what: &str) -> PathBuf {
    sibling(target, &format!("{what}-{}", std::process::id()))
}
