//! The Hugging Face `config.json` a GGUF was converted from, rebuilt from its metadata: what
//! layer discovery, the fused-V layout and the forward pass read (`model_type`, sizes, heads,
//! rope, sliding windows, experts, soft-capping).
//!
//! The keys are the ones llama.cpp's `convert_hf_to_gguf.py` writes for each architecture
//! (`{arch}.embedding_length` → `hidden_size`, `{arch}.rope.freq_base` → `rope_theta`, ...).
//! Where the metadata does not hold a value transformers needs, the value llama.cpp itself
//! uses for the file is taken, so the forward pass computes what llama.cpp would:
//! - Gemma 2/3's `query_pre_attn_scalar` is not stored: llama.cpp scales queries by
//!   1/√head_dim, or 1/√(hidden/heads) for the 27B models (46 and 62 layers);
//! - llama 3's rope scaling is stored as the per-frequency divisors it produces
//!   (`rope_freqs.weight`), Phi-3's long-context rope as its two factor lists
//!   (`rope_factors_short/long.weight`): these few floats are read here and written as a
//!   `longrope` block, whose frequencies are exactly base^(-2i/d) / factor_i as llama.cpp
//!   computes them;
//! - Qwen3-MoE renormalises its top-k router weights unless `{arch}.expert_weights_norm`
//!   says otherwise (llama.cpp's qwen3moe graph always does).

use serde_json::{Map, Value as Json, json};

use super::{GgmlType, GgufModel, metadata::Value};

/// `general.architecture` → transformers' `model_type` (the dense/MoE split of arch `llama`
/// is made by `{arch}.expert_count`).
fn model_type(arch: &str, experts: usize) -> String {
    match arch {
        "llama" if experts > 0 => "mixtral",
        "qwen3moe" => "qwen3_moe",
        "qwen2moe" => "qwen2_moe",
        "gemma3" => "gemma3_text",
        other => other,
    }
    .to_string()
}

/// The config.json equivalent of `model`'s metadata, and notes on what could not be rebuilt.
pub fn hf_config(model: &GgufModel) -> (Json, Vec<String>) {
    let mut notes = Vec::new();
    let arch = model.arch().unwrap_or_default().to_string();
    // A scalar, or a per-layer array's first value (noted when the layers differ).
    let num = |key: &str, notes: &mut Vec<String>| -> Option<f64> {
        match model.arch_value(key)? {
            Value::Array(a) => {
                let first = a.float(0)?;
                if (0..a.len()).any(|i| a.float(i) != Some(first)) {
                    notes.push(format!(
                        "{arch}.{key} differs between layers; the rebuilt config takes layer 0's \
                         value"
                    ));
                }
                Some(first)
            }
            v => v.as_float(),
        }
    };
    let int = |key: &str, notes: &mut Vec<String>| num(key, notes).map(|v| v as u64);
    let experts = int("expert_count", &mut notes).unwrap_or(0) as usize;
    let t = model_type(&arch, experts);
    let mut c = Map::new();
    let mut put = |k: &str, v: Json| {
        c.insert(k.to_string(), v);
    };
    put("model_type", json!(t));
    put("architectures", json!([]));
    let hidden = int("embedding_length", &mut notes);
    let heads = int("attention.head_count", &mut notes);
    let layers = model.block_count();
    if let Some(v) = hidden {
        put("hidden_size", json!(v));
    }
    if let Some(v) = layers {
        put("num_hidden_layers", json!(v));
    }
    if let Some(v) = int("feed_forward_length", &mut notes) {
        put("intermediate_size", json!(v));
    }
    if let Some(v) = heads {
        put("num_attention_heads", json!(v));
    }
    put(
        "num_key_value_heads",
        json!(int("attention.head_count_kv", &mut notes).or(heads)),
    );
    let head_dim = int("attention.key_length", &mut notes);
    if let Some(v) = head_dim {
        put("head_dim", json!(v));
    }
    if let Some(v) = int("context_length", &mut notes) {
        put("max_position_embeddings", json!(v));
    }
    if let Some(v) = num("attention.layer_norm_rms_epsilon", &mut notes) {
        put("rms_norm_eps", json!(f32_exact(v)));
    }
    let theta = num("rope.freq_base", &mut notes);
    if let Some(v) = theta {
        put("rope_theta", json!(f32_exact(v)));
    }
    if let Some(embd) = model.tensor("token_embd.weight") {
        put("vocab_size", json!(embd.info.shape()[0]));
    }
    put(
        "tie_word_embeddings",
        json!(model.tensor("output.weight").is_none()),
    );
    if model.tensor("blk.0.attn_q.bias").is_some() && t != "qwen2" {
        put("attention_bias", json!(true));
    }
    if model.tensor("blk.0.ffn_up.bias").is_some() {
        put("mlp_bias", json!(true));
    }
    if let Some(d) = dense_dtype(model) {
        put("torch_dtype", json!(d));
    }
    // Partial rotary embeddings: fewer rotated features than the head has.
    let hd = head_dim.or_else(|| Some(hidden? / heads.filter(|&h| h > 0)?));
    if let (Some(rot), Some(hd)) = (int("rope.dimension_count", &mut notes), hd)
        && rot > 0
        && rot < hd
    {
        put("partial_rotary_factor", json!(rot as f64 / hd as f64));
    }

    // Experts.
    if experts > 0 {
        let key = if t == "mixtral" {
            "num_local_experts"
        } else {
            "num_experts"
        };
        put(key, json!(experts));
        if let Some(k) = int("expert_used_count", &mut notes) {
            put("num_experts_per_tok", json!(k));
        }
        if let Some(v) = int("expert_feed_forward_length", &mut notes) {
            put("moe_intermediate_size", json!(v));
        }
        let norm = model
            .arch_value("expert_weights_norm")
            .and_then(|v| match v {
                Value::Bool(b) => Some(*b),
                _ => None,
            })
            .unwrap_or(true);
        put("norm_topk_prob", json!(norm));
    }

    // Sliding windows.
    let mut window = int("attention.sliding_window", &mut notes).filter(|&w| w > 0);
    if t == "gemma2" && model.arch_value("attention.sliding_window").is_none() {
        // llama.cpp's default for gemma2, as transformers'.
        window = Some(4096);
    }
    match t.as_str() {
        "gemma2" | "gemma3_text" | "phi3" | "mistral" | "mixtral" => {
            put("sliding_window", json!(window));
        }
        _ => {}
    }
    if let Some(Value::Array(a)) = model.arch_value("attention.sliding_window_pattern") {
        let types: Vec<&str> = (0..a.len())
            .map(|i| match a.int(i) {
                Some(0) => "full_attention",
                _ => "sliding_attention",
            })
            .collect();
        put("layer_types", json!(types));
    } else if let Some(n) = int("attention.sliding_window_pattern", &mut notes) {
        put("sliding_window_pattern", json!(n));
    }

    // Gemma: soft-capping and the query scale llama.cpp uses.
    if t.starts_with("gemma") {
        for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
            let v = num(key, &mut notes).filter(|&v| v != 0.0).map(f32_exact);
            put(key, json!(v));
        }
        let big = matches!(
            (t.as_str(), layers),
            ("gemma2", Some(46)) | ("gemma3_text", Some(62))
        );
        let scalar = match (big, hidden, heads, head_dim) {
            (true, Some(h), Some(n), _) if n > 0 => Some(h / n),
            (false, _, _, Some(d)) => Some(d),
            _ => None,
        };
        if let Some(s) = scalar {
            put("query_pre_attn_scalar", json!(s));
        }
        put("hidden_activation", json!("gelu_pytorch_tanh"));
        if t == "gemma3_text" {
            let local = num("rope.freq_base_swa", &mut notes).unwrap_or(10_000.0);
            put("rope_local_base_freq", json!(f32_exact(local)));
        }
    }

    // Rope scaling.
    let kind = model
        .arch_value("rope.scaling.type")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_string();
    let factor = num("rope.scaling.factor", &mut notes).map(f32_exact);
    let original = int("rope.scaling.original_context_length", &mut notes);
    let factors = |name: &str, notes: &mut Vec<String>| -> Option<Vec<f64>> {
        let t = model.tensor(name)?;
        match t.to_f64() {
            Ok(v) => Some(v),
            Err(e) => {
                notes.push(format!("{name}: {e}"));
                None
            }
        }
    };
    match kind.as_str() {
        "linear" => put(
            "rope_scaling",
            json!({"rope_type": "linear", "factor": factor}),
        ),
        "yarn" => {
            let mut b = json!({"rope_type": "yarn", "factor": factor,
                               "original_max_position_embeddings": original});
            for (key, hf) in [
                ("rope.scaling.yarn_beta_fast", "beta_fast"),
                ("rope.scaling.yarn_beta_slow", "beta_slow"),
                ("rope.scaling.yarn_attn_factor", "attention_factor"),
            ] {
                if let Some(v) = num(key, &mut notes) {
                    b[hf] = json!(f32_exact(v));
                }
            }
            put("rope_scaling", b);
        }
        "longrope" | "su" => {
            let short = factors("rope_factors_short.weight", &mut notes);
            let long = factors("rope_factors_long.weight", &mut notes);
            let attn = num("rope.scaling.attn_factor", &mut notes).map(f32_exact);
            if let (Some(short), Some(long)) = (short, long) {
                put(
                    "rope_scaling",
                    json!({"rope_type": "longrope", "short_factor": short, "long_factor": long,
                           "attention_factor": attn}),
                );
            }
            if let Some(o) = original {
                put("original_max_position_embeddings", json!(o));
            }
        }
        "none" | "" => {
            // llama 3's scaling, stored as the per-frequency divisors it produces.
            if let Some(f) = factors("rope_freqs.weight", &mut notes) {
                put(
                    "rope_scaling",
                    json!({"rope_type": "longrope", "short_factor": f, "long_factor": f,
                           "attention_factor": 1.0}),
                );
            }
        }
        other => {
            notes.push(format!("rope scaling {other:?} is not rebuilt"));
            put("rope_scaling", json!({"rope_type": other}));
        }
    }
    (Json::Object(c), notes)
}

/// GGUF stores these as f32: written as the shortest decimal of that f32 (1e-5, not
/// 9.999999747378752e-6), as config.json has them.
fn f32_exact(v: f64) -> f64 {
    let s = format!("{}", v as f32);
    s.parse().unwrap_or(v)
}

/// `torch_dtype` when the matrices are stored unquantized: F16, BF16 or F32.
fn dense_dtype(model: &GgufModel) -> Option<&'static str> {
    let mut bytes = [0u64; 3];
    let mut other = 0u64;
    for t in model.tensors().filter(|t| t.info.dims.len() >= 2) {
        match t.info.ggml_type {
            GgmlType::F16 => bytes[0] += t.info.n_bytes,
            GgmlType::BF16 => bytes[1] += t.info.n_bytes,
            GgmlType::F32 => bytes[2] += t.info.n_bytes,
            _ => other += t.info.n_bytes,
        }
    }
    let (i, &most) = bytes.iter().enumerate().max_by_key(|(_, b)| **b)?;
    (most > other).then_some(["float16", "bfloat16", "float32"][i])
}
