//! The pruning decision as every writer takes it: which layers of which stack go, why, and
//! what mergekit needs to know to write the same model.

use std::ops::Range;

use super::ranges::kept_ranges;

/// A plan no writer can honour. Every message says what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("the plan drops all {num_layers} layers; keep at least one")]
    EmptyPlan { num_layers: usize },
    #[error("invalid plan: {0}")]
    Invalid(String),
    /// A scan file whose layers cannot be planned from.
    #[error("{path}: {problem}")]
    BadScan { path: String, problem: String },
}

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
    /// Human description of how the layers were chosen (rule, manual overrides), e.g.
    /// `self_attn.v_proj SNR infinite`; see [`super::table::describe_choice`].
    pub reason: String,
    /// That module's SNR (`snr_ratio`) per layer; `None` where unknown.
    pub snr: Vec<Option<f64>>,
    /// mergekit dtype, e.g. `bfloat16`.
    pub dtype: String,
    /// For a model mergekit sees as several modules (a multimodal model: text decoder, vision
    /// tower, projector), the module names for its `modules:` syntax; `None`: one module,
    /// plain `slices:`. See [`super::model_facts::mergekit_modules`].
    pub mergekit_modules: Option<MergekitModules>,
    /// When the choice followed an activation metric (`snrscope probe`) rather than an SNR:
    /// what it is and what it was measured on, for the model card; `module_type` then names
    /// the metric and `snr` holds its values.
    pub metric: Option<String>,
}

/// mergekit's modules of a multimodal model: the text decoder gets the kept layers' slices,
/// every other module is copied whole.
#[derive(Debug, Clone, PartialEq)]
pub struct MergekitModules {
    /// e.g. `text_decoder`.
    pub text: String,
    /// e.g. `vision_tower`, `multi_modal_projector`.
    pub whole: Vec<String>,
}

impl Plan {
    pub fn kept_ranges(&self) -> Vec<Range<usize>> {
        kept_ranges(self.num_layers, &self.dropped)
    }

    /// Kept layer indices of the source, in order (new layer `i` is old layer `kept()[i]`).
    pub fn kept(&self) -> Vec<usize> {
        (0..self.num_layers)
            .filter(|i| self.dropped.binary_search(i).is_err())
            .collect()
    }

    /// Refuses plans no writer can honour: nothing kept, layers out of range, unsorted or
    /// repeated drops.
    pub(crate) fn validate(&self) -> Result<(), PlanError> {
        if let Some(&bad) = self.dropped.iter().find(|&&l| l >= self.num_layers) {
            return Err(PlanError::Invalid(format!(
                "layer {bad} is dropped but {} has only {} layers (0-{})",
                self.stack_prefix,
                self.num_layers,
                self.num_layers.saturating_sub(1)
            )));
        }
        if self.dropped.windows(2).any(|w| w[0] >= w[1]) {
            return Err(PlanError::Invalid(
                "dropped layers must be ascending and distinct".into(),
            ));
        }
        if self.kept().is_empty() {
            return Err(PlanError::EmptyPlan {
                num_layers: self.num_layers,
            });
        }
        Ok(())
    }
}
