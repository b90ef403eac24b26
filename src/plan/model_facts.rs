//! What a plan records about the model it prunes: parameter and byte totals before and after,
//! the dtype mergekit should write, and the module names mergekit gives a multimodal model.

use super::decision::MergekitModules;
use crate::checkpoint::{
    Dtype, Model,
    layers::{self, Stack},
};

/// Parameter and byte totals of a model before and after dropping layers of `stack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    pub params_before: u64,
    pub params_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

pub fn sizes(model: &Model, stack: &Stack, dropped: &[usize]) -> Sizes {
    let (mut params, mut bytes) = (0u64, 0u64);
    for layer in dropped {
        for name in stack.tensors.get(layer).into_iter().flatten() {
            if let Some(t) = model.tensor(name) {
                params += t.num_elements();
                bytes += t.num_bytes();
            }
        }
    }
    let (pb, bb) = (model.total_params(), model.total_bytes());
    Sizes {
        params_before: pb,
        params_after: pb - params,
        bytes_before: bb,
        bytes_after: bb - bytes,
    }
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
pub fn mergekit_modules(model: &Model) -> Option<MergekitModules> {
    let config = model.config.as_ref()?;
    let arch = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    if let Some((_, text, whole)) = MERGEKIT_MODULAR.iter().find(|(a, ..)| *a == arch) {
        return Some(MergekitModules {
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
    Some(MergekitModules {
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
        Some(Dtype::Plain(safetensors::Dtype::F16)) => "float16",
        Some(Dtype::Plain(safetensors::Dtype::F32 | safetensors::Dtype::F64)) => "float32",
        _ => "bfloat16",
    }
    .to_string()
}
