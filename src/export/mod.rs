//! Writers: the mergekit slice YAML, the pruned model folder, Spectrum's unfrozen-parameters
//! YAML.
//!
//! API contract used by the explorer (src/ui) and the CLI (src/cli/export.rs). The bodies are
//! being written; until then every writer returns `ExportError::Unavailable`.

use std::{ops::Range, path::PathBuf};

use crate::{model::Model, scan::CancelToken};

/// Everything a writer needs to know about the pruning decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// mergekit's `model:` value: `--model-name`, else the path the user gave.
    pub model_ref: String,
    /// The layer stack being pruned, e.g. `model.layers`.
    pub stack_prefix: String,
    pub num_layers: usize,
    /// Ascending layer indices to drop.
    pub dropped: Vec<usize>,
    /// The module type whose SNR drove the choice, e.g. `self_attn.v_proj`.
    pub module_type: String,
    /// Human description of how the layers were chosen (rule, manual overrides).
    pub reason: String,
    /// That module's SNR (`snr_ratio`) per layer; `None` where unknown.
    pub snr: Vec<Option<f64>>,
    /// mergekit dtype, e.g. `bfloat16`.
    pub dtype: String,
}

impl Plan {
    pub fn kept_ranges(&self) -> Vec<Range<usize>> {
        crate::plan::kept_ranges(self.num_layers, &self.dropped)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("export is not available yet")]
    Unavailable,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    pub out: PathBuf,
    pub shards: usize,
    pub tensors: usize,
    pub bytes: u64,
}

/// The mergekit passthrough YAML for the plan (refuses a plan that keeps no layer).
pub fn mergekit_yaml(plan: &Plan) -> Result<String, ExportError> {
    let _ = plan;
    Err(ExportError::Unavailable)
}

/// Writes `mergekit_yaml(plan)` to `path` atomically.
pub fn write_mergekit_yaml(plan: &Plan, path: &std::path::Path) -> Result<(), ExportError> {
    let _ = (plan, path);
    Err(ExportError::Unavailable)
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
    let _ = (model, plan, options, progress, cancel);
    Err(ExportError::Unavailable)
}
