//! From SNR values to a [`Plan`]: per-layer SNR tables (from a model's scan or a saved scan
//! file), the rule plus `--drop`/`--keep` overrides, and the dtype mergekit should write.

use std::collections::BTreeMap;

use safetensors::Dtype;

use super::{ExportError, Plan, UnfrozenGroup, mergekit::join_layers};
use crate::{
    layers,
    model::Model,
    plan::{Mark, Rule, Selection},
    scanfile::ScanEntry,
};

/// SNR per layer of every module type of one layer stack.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SnrTable {
    pub stack_prefix: String,
    pub num_layers: usize,
    /// Module type -> SNR by layer (`None`: not scanned, failed, or NaN).
    pub modules: BTreeMap<String, Vec<Option<f64>>>,
    /// The module the seed's rule reads (value projection or closest equivalent).
    pub default_module: Option<String>,
}

impl SnrTable {
    /// An empty table shaped like a model's stack (fill it from scan results with
    /// [`SnrTable::set`]).
    pub fn for_stack(stack: &layers::Stack) -> SnrTable {
        SnrTable {
            stack_prefix: stack.prefix.clone(),
            num_layers: stack.num_layers,
            modules: BTreeMap::new(),
            default_module: stack.default_module().map(str::to_string),
        }
    }

    pub fn set(&mut self, module_type: &str, layer: usize, snr: f64) {
        let n = self.num_layers;
        let v = self
            .modules
            .entry(module_type.to_string())
            .or_insert_with(|| vec![None; n]);
        if layer < v.len() {
            v[layer] = Some(snr).filter(|x| !x.is_nan());
        }
    }

    /// The main stack of a scan file: the stack with the most layers (as for a model), layer
    /// count = its highest index + 1. Failed entries and NaN count as unknown.
    pub fn from_scan(entries: &[ScanEntry], path: &str) -> Result<SnrTable, ExportError> {
        let stack =
            crate::scanfile::main_stack(entries, path).map_err(|e| ExportError::BadModel {
                path: path.into(),
                problem: match e {
                    crate::scanfile::ScanFileError::Layout { problem, .. } => problem,
                    other => other.to_string(),
                },
            })?;
        let mut table = SnrTable::for_stack(&stack);
        for e in entries {
            if let Some((s, layer)) = e.layer()
                && s == stack.prefix
            {
                let snr = if e.error.is_some() { f64::NAN } else { e.snr };
                table.set(&crate::scanfile::type_of(&e.module), layer, snr);
            }
        }
        Ok(table)
    }

    /// The module to plan with: `requested`, else the default.
    pub fn module<'a>(&'a self, requested: Option<&'a str>) -> Result<&'a str, ExportError> {
        let m = requested
            .or(self.default_module.as_deref())
            .ok_or_else(|| ExportError::InvalidPlan("no module type has SNR values".into()))?;
        if !self.modules.contains_key(m) {
            return Err(ExportError::InvalidPlan(format!(
                "no SNR for module type {m:?} in `{}`; available: {}",
                self.stack_prefix,
                self.modules.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(m)
    }

    /// Spectrum's groups: per module type, `(module name, SNR)` by layer (unknown left out).
    pub fn unfrozen_groups(&self) -> Vec<UnfrozenGroup> {
        self.modules
            .iter()
            .map(|(ty, snr)| UnfrozenGroup {
                module_type: ty.clone(),
                modules: snr
                    .iter()
                    .enumerate()
                    .filter_map(|(l, s)| s.map(|s| (format!("{}.{l}.{ty}", self.stack_prefix), s)))
                    .collect(),
            })
            .collect()
    }
}

/// Spectrum's groups straight from a scan file: every entry, grouped by its type in order of
/// first appearance (as spectrum.py does), NaN and failed entries left out.
pub fn unfrozen_groups_from_scan(entries: &[ScanEntry]) -> Vec<UnfrozenGroup> {
    let mut groups: Vec<UnfrozenGroup> = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.error.is_none() && !e.snr.is_nan())
    {
        let i = match groups.iter().position(|g| g.module_type == e.module_type) {
            Some(i) => i,
            None => {
                groups.push(UnfrozenGroup {
                    module_type: e.module_type.clone(),
                    modules: Vec::new(),
                });
                groups.len() - 1
            }
        };
        groups[i].modules.push((e.module.clone(), e.snr));
    }
    groups
}

/// How the layers were chosen, for the YAML header and the model card:
/// `self_attn.v_proj SNR infinite; dropped by hand: 7; kept by hand: 20`.
pub fn describe_choice(
    rule: &Rule,
    module: &str,
    by_hand_dropped: &[usize],
    by_hand_kept: &[usize],
) -> String {
    let mut s = match rule {
        Rule::Infinite => format!("{module} SNR infinite"),
        Rule::Lowest(k) => format!("the {k} lowest finite {module} SNR"),
        Rule::Below(x) => format!("{module} SNR below {x}"),
    };
    if !by_hand_dropped.is_empty() {
        s.push_str(&format!(
            "; dropped by hand: {}",
            join_layers(by_hand_dropped)
        ));
    }
    if !by_hand_kept.is_empty() {
        s.push_str(&format!("; kept by hand: {}", join_layers(by_hand_kept)));
    }
    s
}

/// What to drop: the rule on one module's SNR, then manual overrides.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Choice {
    pub module: Option<String>,
    pub rule: Rule,
    pub drop: Vec<usize>,
    pub keep: Vec<usize>,
}

/// Builds the plan; refuses layers out of range, a layer both dropped and kept, and a plan
/// that keeps nothing.
pub fn make_plan(
    table: &SnrTable,
    choice: &Choice,
    model_ref: &str,
    dtype: &str,
) -> Result<Plan, ExportError> {
    let module = table.module(choice.module.as_deref())?;
    let n = table.num_layers;
    for (flag, list) in [("--drop", &choice.drop), ("--keep", &choice.keep)] {
        if let Some(bad) = list.iter().find(|&&l| l >= n) {
            return Err(ExportError::InvalidPlan(format!(
                "{flag} {bad}: `{}` has only {n} layers (0-{})",
                table.stack_prefix,
                n.saturating_sub(1)
            )));
        }
    }
    if let Some(both) = choice.drop.iter().find(|l| choice.keep.contains(l)) {
        return Err(ExportError::InvalidPlan(format!(
            "layer {both} is both in --drop and in --keep"
        )));
    }
    let snr = table.modules[module].clone();
    let mut sel = Selection::new(n);
    sel.apply_rule(&choice.rule, &snr);
    for &l in &choice.drop {
        sel.set(l, true);
    }
    for &l in &choice.keep {
        sel.set(l, false);
    }
    let marked = |m: Mark| (0..n).filter(|&l| sel.mark(l) == m).collect::<Vec<_>>();
    let plan = Plan {
        model_ref: model_ref.to_string(),
        stack_prefix: table.stack_prefix.clone(),
        num_layers: n,
        dropped: sel.dropped(),
        module_type: module.to_string(),
        reason: describe_choice(
            &choice.rule,
            module,
            &marked(Mark::DropManual),
            &marked(Mark::KeepManual),
        ),
        snr,
        dtype: dtype.to_string(),
        mergekit_modules: None,
    };
    plan.validate()?;
    Ok(plan)
}

/// mergekit 0.1.5's modular architectures (`mergekit/_data/architectures/*.json` with
/// `"kind": "modular"`, decoder-only ones): architecture name -> (text module, other modules).
const MERGEKIT_MODULAR: &[(&str, &str, &[&str])] = &[
    (
        "Gemma3ForConditionalGeneration",
        "text_decoder",
        &["multi_modal_projector", "vision_tower"],
    ),
    (
        "Llama4ForConditionalGeneration",
        "text_decoder",
        &["multi_modal_projector", "vision_model"],
    ),
    (
        "Mistral3ForConditionalGeneration",
        "text_decoder",
        &["multi_modal_projector", "vision_tower"],
    ),
    (
        "Qwen2VLForConditionalGeneration",
        "text_decoder",
        &["multi_modal_projector", "vision_tower"],
    ),
    (
        "Qwen2_5_VLForConditionalGeneration",
        "text_decoder",
        &["multi_modal_projector", "vision_tower"],
    ),
    (
        "Qwen3VLForConditionalGeneration",
        "text_decoder",
        &["multi_modal_projector", "vision_tower"],
    ),
    (
        "Qwen3VLMoeForConditionalGeneration",
        "text_decoder",
        &["multi_modal_projector", "vision_tower"],
    ),
];

/// The `modules:` names mergekit 0.1.5 gives a multimodal model, or `None` for a model it
/// treats as one module (plain `slices:`). Architectures with a mergekit definition use its
/// module names; any other model with a `text_config` / `vision_config` and more than one
/// numbered stack gets the names mergekit infers (`architecture/auto.py`): each stack's prefix
/// (the tensor name before its first `.N.`), plus `default` for the tensors outside every stack.
pub fn mergekit_modules(model: &Model) -> Option<super::MergekitModules> {
    let config = model.config.as_ref()?;
    let arch = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    if let Some((_, text, whole)) = MERGEKIT_MODULAR.iter().find(|(a, ..)| *a == arch) {
        return Some(super::MergekitModules {
            text: text.to_string(),
            whole: whole.iter().map(|s| s.to_string()).collect(),
        });
    }
    let multimodal = [
        "text_config",
        "vision_config",
        "language_config",
        "llm_config",
    ]
    .iter()
    .any(|k| config.get(*k).is_some_and(serde_json::Value::is_object));
    let main = model.layout.main_stack()?;
    if !multimodal || model.layout.stacks.len() < 2 {
        return None;
    }
    let mut whole: Vec<String> = model
        .layout
        .stacks
        .iter()
        .filter(|s| s.prefix != main.prefix)
        .map(|s| s.prefix.clone())
        .collect();
    if model
        .tensors
        .iter()
        .any(|t| layers::parse_layer_name(&t.name).is_none())
    {
        whole.push("default".into());
    }
    Some(super::MergekitModules {
        text: main.prefix.clone(),
        whole,
    })
}

/// mergekit's dtype for a model: config.json's `torch_dtype` (or `dtype`, also under
/// `text_config`), else the dtype most weight bytes are stored in.
pub fn model_dtype(model: &Model) -> String {
    let from_config = model.config.as_ref().and_then(|c| {
        let find = |v: &serde_json::Value| {
            ["torch_dtype", "dtype"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|d| d.as_str()).map(str::to_string))
        };
        find(c).or_else(|| c.get("text_config").and_then(find))
    });
    if let Some(d) = from_config {
        return d.strip_prefix("torch.").unwrap_or(&d).to_string();
    }
    match model.dominant_dtype() {
        Some(Dtype::F16) => "float16",
        Some(Dtype::F32 | Dtype::F64) => "float32",
        _ => "bfloat16",
    }
    .to_string()
}
