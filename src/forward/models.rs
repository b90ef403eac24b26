//! Which architectures are evaluated, with which candle-transformers model, and how each gives
//! the logits of every position of a window.
//!
//! candle's causal-LM wrappers return the last position's logits only. Per family:
//! - `llama`, `mistral` with plain rotary embeddings: `qwen2::Model`, whose public base returns
//!   every position; Qwen2's block is Llama's plus q/k/v biases, served here as zeros.
//!   Mistral is Llama plus a sliding window, which changes nothing while windows are no longer
//!   than it.
//! - `llama` with `llama3` rope scaling (Llama 3.1+): `llama2_c::Llama`, candle's Llama block
//!   whose forward returns every position. It pairs rotary dimensions interleaved and reads its
//!   rotary tables from the checkpoint, so the weight source regroups the query/key rows (see
//!   [`Transform::InterleaveRotary`]) and serves the tables computed from `rope_theta` and
//!   `rope_scaling`. (Qwen2's block computes its own plain tables.)
//! - `qwen2`, `qwen3`: the public base `Model` (hidden states of every position) and the
//!   output head applied here as a `candle_nn::Linear` (the embedding when tied).
//! - `gemma2`, `phi3`: no public piece returns every position, so the window is stepped through
//!   one token at a time with the model's own KV cache (windows batched), the logits of each
//!   step being that position's. Same numbers, but every step reads all weights: slower than
//!   one pass for large models.
//!
//! Windows are capped where candle and transformers would disagree: at the sliding window
//! (candle masks it on every layer, transformers on some or none).

use std::path::Path;

use candle_core::{IndexOp, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use candle_transformers::models::{gemma2, llama2_c, phi3, qwen2, qwen3};
use serde_json::{Value, json};

use super::{
    EvalError,
    weights::{Transform, WeightSource},
};
use crate::util::cancel::CancelToken;

/// `model_type` values that can be evaluated.
pub const SUPPORTED: &[&str] = &["llama", "mistral", "qwen2", "qwen3", "gemma2", "phi3"];

/// Decode-path windows stepped together (each step is then a matrix product, not a vector one).
const DECODE_BATCH: usize = 16;

#[derive(Debug, Clone)]
enum Family {
    /// Llama with scaled rotary embeddings: `llama2_c` with tables served.
    Llama {
        rope: Rope,
    },
    /// Llama with plain rotary embeddings: Qwen2's block with zero q/k/v biases.
    LlamaAsQwen2(qwen2::Config),
    Qwen2(qwen2::Config),
    Qwen3(qwen3::Config),
    Gemma2(gemma2::Config),
    Phi3(phi3::Config),
}

/// Rotary frequencies of the Llama family, as transformers computes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rope {
    Default {
        theta: f64,
    },
    Llama3 {
        theta: f64,
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_positions: f64,
    },
}

impl Rope {
    /// `inv_freq`, in f32 like transformers' `_compute_*_rope_parameters`.
    pub(crate) fn inv_freq(&self, head_dim: usize) -> Vec<f32> {
        let theta = match self {
            Rope::Default { theta } | Rope::Llama3 { theta, .. } => *theta as f32,
        };
        let base: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / theta.powf(i as f32 / head_dim as f32))
            .collect();
        let Rope::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_positions,
            ..
        } = *self
        else {
            return base;
        };
        let (factor, low, high, old) = (
            factor as f32,
            low_freq_factor as f32,
            high_freq_factor as f32,
            original_max_positions as f32,
        );
        let (low_wavelen, high_wavelen) = (old / low, old / high);
        base.into_iter()
            .map(|f| {
                let wavelen = 2.0 * std::f32::consts::PI / f;
                if wavelen < high_wavelen {
                    f
                } else if wavelen > low_wavelen {
                    f / factor
                } else {
                    let smooth = (old / wavelen - low) / (high - low);
                    (1.0 - smooth) * f / factor + smooth * f
                }
            })
            .collect()
    }
}

/// A model's architecture as the evaluation needs it.
#[derive(Debug, Clone)]
pub struct ArchConfig {
    pub model_type: String,
    family: Family,
    pub layers: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub tied: bool,
    rms_norm_eps: f64,
    /// The longest window evaluated as transformers would (context, sliding window).
    pub context: usize,
}

fn bad(path: &Path, problem: impl Into<String>) -> EvalError {
    EvalError::BadConfig {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Reads one config.json (checked for what candle's model of its family implements).
struct Reader<'a> {
    c: &'a Value,
    path: &'a Path,
}

impl Reader<'_> {
    fn value(&self, key: &str) -> Option<&Value> {
        self.c.get(key).filter(|v| !v.is_null())
    }

    fn usize(&self, key: &str) -> Result<usize, EvalError> {
        self.value(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| {
                bad(
                    self.path,
                    format!("`{key}` is missing or not a whole number"),
                )
            })
    }

    fn usize_or(&self, key: &str, default: usize) -> Result<usize, EvalError> {
        match self.value(key) {
            None => Ok(default),
            Some(_) => self.usize(key),
        }
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64, EvalError> {
        match self.value(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| bad(self.path, format!("`{key}` is not a number"))),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> bool {
        self.value(key).and_then(Value::as_bool).unwrap_or(default)
    }

    fn str_or<'s>(&'s self, key: &str, default: &'s str) -> &'s str {
        self.value(key).and_then(Value::as_str).unwrap_or(default)
    }

    /// `rope_theta`, also where transformers 5 writes it (`rope_parameters`).
    fn rope_theta(&self, default: f64) -> Result<f64, EvalError> {
        match self.value("rope_theta") {
            Some(_) => self.f64_or("rope_theta", default),
            None => Ok(self
                .value("rope_parameters")
                .and_then(|p| p.get("rope_theta"))
                .and_then(Value::as_f64)
                .unwrap_or(default)),
        }
    }

    /// The rope scaling block, `None` for plain rotary embeddings.
    fn rope_scaling(&self) -> Option<&Value> {
        let block = self
            .value("rope_scaling")
            .or_else(|| self.value("rope_parameters"))?;
        (scaling_kind(block) != "default").then_some(block)
    }

    fn rope_scaling_error(&self, family: &str) -> EvalError {
        let kind = self.rope_scaling().map(scaling_kind).unwrap_or("default");
        bad(
            self.path,
            format!("rope scaling {kind:?} is not supported for {family}"),
        )
    }

    fn refuse_rope_scaling(&self, family: &str) -> Result<(), EvalError> {
        match self.rope_scaling() {
            None => Ok(()),
            Some(_) => Err(self.rope_scaling_error(family)),
        }
    }
}

impl ArchConfig {
    /// Reads a config.json (`path` is named in errors). Refuses, with the reason, what candle's
    /// model of the family would compute differently from transformers.
    pub fn parse(config: &Value, path: &Path) -> Result<ArchConfig, EvalError> {
        let r = Reader { c: config, path };
        let model_type = r.str_or("model_type", "").to_string();
        if !SUPPORTED.contains(&model_type.as_str()) {
            return Err(EvalError::Unsupported {
                path: path.to_path_buf(),
                model_type,
            });
        }
        let hidden = r.usize("hidden_size")?;
        let heads = r.usize("num_attention_heads")?;
        if heads == 0 || hidden % heads != 0 && r.value("head_dim").is_none() {
            return Err(bad(
                path,
                "`num_attention_heads` does not divide `hidden_size`",
            ));
        }
        let kv_heads = r.usize_or("num_key_value_heads", heads)?;
        if kv_heads == 0 || heads % kv_heads != 0 {
            return Err(bad(
                path,
                "`num_key_value_heads` does not divide `num_attention_heads`",
            ));
        }
        let head_dim = r.usize_or("head_dim", hidden / heads)?;
        let layers = r.usize("num_hidden_layers")?;
        let intermediate = r.usize("intermediate_size")?;
        let vocab = r.usize("vocab_size")?;
        let max_positions = r.usize_or("max_position_embeddings", 4096)?;
        let rms_norm_eps = r.f64_or("rms_norm_eps", 1e-6)?;
        let sliding = r.usize_or("sliding_window", usize::MAX)?;
        let act = r.str_or("hidden_act", "silu").to_string();
        let mut arch = ArchConfig {
            model_type: model_type.clone(),
            family: Family::Llama {
                rope: Rope::Default { theta: 10000.0 },
            },
            layers,
            hidden,
            intermediate,
            heads,
            kv_heads,
            head_dim,
            vocab,
            tied: r.bool_or("tie_word_embeddings", false),
            rms_norm_eps,
            context: max_positions,
        };
        match model_type.as_str() {
            "llama" | "mistral" => {
                if head_dim * heads != hidden {
                    return Err(bad(
                        path,
                        format!(
                            "head_dim {head_dim} × {heads} heads ≠ hidden_size {hidden}: not \
                             supported for {model_type}"
                        ),
                    ));
                }
                for flag in ["attention_bias", "mlp_bias"] {
                    if r.bool_or(flag, false) {
                        return Err(bad(path, format!("`{flag}: true` is not supported")));
                    }
                }
                if act != "silu" {
                    return Err(bad(path, format!("hidden_act {act:?} is not supported")));
                }
                let theta = r.rope_theta(10000.0)?;
                let rope = match r.rope_scaling() {
                    None => Rope::Default { theta },
                    Some(b) if scaling_kind(b) == "llama3" => {
                        let f = |k: &str| {
                            b.get(k).and_then(Value::as_f64).ok_or_else(|| {
                                bad(path, format!("rope_scaling: `{k}` missing or not a number"))
                            })
                        };
                        Rope::Llama3 {
                            theta,
                            factor: f("factor")?,
                            low_freq_factor: f("low_freq_factor")?,
                            high_freq_factor: f("high_freq_factor")?,
                            original_max_positions: f("original_max_position_embeddings")?,
                        }
                    }
                    Some(_) => return Err(r.rope_scaling_error(&model_type)),
                };
                if model_type == "mistral" {
                    arch.context = arch.context.min(sliding);
                }
                arch.family = match rope {
                    Rope::Default { theta } => Family::LlamaAsQwen2(from_json(
                        json!({
                            "vocab_size": vocab, "hidden_size": hidden,
                            "intermediate_size": intermediate, "num_hidden_layers": layers,
                            "num_attention_heads": heads, "num_key_value_heads": kv_heads,
                            "max_position_embeddings": max_positions,
                            "sliding_window": max_positions, "max_window_layers": layers,
                            "tie_word_embeddings": arch.tied, "rope_theta": theta,
                            "rms_norm_eps": rms_norm_eps, "use_sliding_window": false,
                            "hidden_act": act,
                        }),
                        path,
                    )?),
                    rope => Family::Llama { rope },
                };
            }
            "qwen2" => {
                r.refuse_rope_scaling("qwen2")?;
                let cfg = json!({
                    "vocab_size": vocab, "hidden_size": hidden,
                    "intermediate_size": intermediate, "num_hidden_layers": layers,
                    "num_attention_heads": heads, "num_key_value_heads": kv_heads,
                    "max_position_embeddings": max_positions,
                    "sliding_window": sliding.min(max_positions),
                    "max_window_layers": r.usize_or("max_window_layers", layers)?,
                    "tie_word_embeddings": arch.tied, "rope_theta": r.rope_theta(10000.0)?,
                    "rms_norm_eps": rms_norm_eps, "use_sliding_window": false,
                    "hidden_act": act,
                });
                arch.family = Family::Qwen2(from_json(cfg, path)?);
                arch.context = arch.context.min(sliding);
            }
            "qwen3" => {
                r.refuse_rope_scaling("qwen3")?;
                if r.bool_or("use_sliding_window", false) {
                    return Err(bad(path, "`use_sliding_window: true` is not supported"));
                }
                let cfg = json!({
                    "vocab_size": vocab, "hidden_size": hidden,
                    "intermediate_size": intermediate, "num_hidden_layers": layers,
                    "num_attention_heads": heads, "head_dim": head_dim,
                    "attention_bias": r.bool_or("attention_bias", false),
                    "num_key_value_heads": kv_heads,
                    "max_position_embeddings": max_positions, "sliding_window": null,
                    "max_window_layers": r.usize_or("max_window_layers", layers)?,
                    "tie_word_embeddings": arch.tied, "rope_theta": r.rope_theta(10000.0)?,
                    "rms_norm_eps": rms_norm_eps, "use_sliding_window": false,
                    "hidden_act": act,
                });
                arch.family = Family::Qwen3(from_json(cfg, path)?);
            }
            "gemma2" => {
                r.refuse_rope_scaling("gemma2")?;
                let scalar = r.usize_or("query_pre_attn_scalar", head_dim)?;
                if scalar != head_dim {
                    return Err(bad(
                        path,
                        format!(
                            "query_pre_attn_scalar {scalar} ≠ head_dim {head_dim} (e.g. Gemma 2 \
                             27B): candle's Gemma 2 scales attention by head_dim and would \
                             compute another model"
                        ),
                    ));
                }
                let activation = r
                    .value("hidden_activation")
                    .cloned()
                    .unwrap_or_else(|| json!("gelu_pytorch_tanh"));
                let cfg = json!({
                    "attention_bias": r.bool_or("attention_bias", false),
                    "head_dim": head_dim, "hidden_activation": activation,
                    "hidden_size": hidden, "intermediate_size": intermediate,
                    "num_attention_heads": heads, "num_hidden_layers": layers,
                    "num_key_value_heads": kv_heads, "rms_norm_eps": rms_norm_eps,
                    "rope_theta": r.rope_theta(10000.0)?, "vocab_size": vocab,
                    "final_logit_softcapping": r.value("final_logit_softcapping"),
                    "attn_logit_softcapping": r.value("attn_logit_softcapping"),
                    "query_pre_attn_scalar": scalar, "sliding_window": null,
                    "max_position_embeddings": max_positions,
                });
                arch.family = Family::Gemma2(from_json(cfg, path)?);
                // Gemma always ties its output head to the embedding.
                arch.tied = true;
                arch.context = arch.context.min(sliding);
            }
            _ => {
                // phi3
                if r.rope_scaling().is_some() {
                    return Err(bad(
                        path,
                        "rope_scaling (longrope, e.g. the 128k Phi-3 models) is not supported: \
                         candle's Phi-3 leaves out transformers' attention factor",
                    ));
                }
                if r.f64_or("partial_rotary_factor", 1.0)? != 1.0 {
                    return Err(bad(
                        path,
                        "`partial_rotary_factor` below 1 is not supported",
                    ));
                }
                if head_dim * heads != hidden {
                    return Err(bad(path, "head_dim × heads ≠ hidden_size is not supported"));
                }
                let cfg = json!({
                    "vocab_size": vocab, "hidden_act": act, "hidden_size": hidden,
                    "intermediate_size": intermediate, "num_hidden_layers": layers,
                    "num_attention_heads": heads, "num_key_value_heads": kv_heads,
                    "rms_norm_eps": rms_norm_eps, "rope_theta": r.rope_theta(10000.0)?,
                    "bos_token_id": null, "eos_token_id": null, "rope_scaling": null,
                    "max_position_embeddings": max_positions,
                    "original_max_position_embeddings": null, "partial_rotary_factor": null,
                    "tie_word_embeddings": arch.tied,
                });
                arch.family = Family::Phi3(from_json(cfg, path)?);
                arch.context = arch.context.min(sliding);
            }
        }
        Ok(arch)
    }

    /// Stepped one token at a time (no candle piece gives every position in one pass).
    pub(crate) fn steps_tokens(&self) -> bool {
        matches!(self.family, Family::Gemma2(_) | Family::Phi3(_))
    }

    /// Windows stepped together on the decode path.
    pub fn batch(&self, windows: usize) -> usize {
        if self.steps_tokens() {
            windows.clamp(1, DECODE_BATCH)
        } else {
            1
        }
    }

    /// Adds what the family's candle model reads beyond the checkpoint: regrouped query/key
    /// rows and rotary tables (Llama family), the tied output head.
    pub(crate) fn prepare(
        &self,
        source: &mut WeightSource,
        window: usize,
    ) -> Result<(), EvalError> {
        if self.tied {
            source.alias("lm_head.weight", "model.embed_tokens.weight");
        }
        if let Family::LlamaAsQwen2(_) = self.family {
            let dev = candle_core::Device::Cpu;
            let zeros = |n: usize| {
                Tensor::zeros(n, candle_core::DType::F32, &dev)
                    .map_err(|e| EvalError::Compute(e.to_string()))
            };
            let (q, kv) = (self.heads * self.head_dim, self.kv_heads * self.head_dim);
            for l in 0..self.layers {
                for (p, n) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                    source.add_made(&format!("model.layers.{l}.self_attn.{p}.bias"), zeros(n)?);
                }
            }
            return Ok(());
        }
        let Family::Llama { rope } = &self.family else {
            return Ok(());
        };
        for l in 0..self.layers {
            for p in ["q_proj", "k_proj"] {
                source.set_transform(
                    &format!("model.layers.{l}.self_attn.{p}.weight"),
                    Transform::InterleaveRotary {
                        head_dim: self.head_dim,
                    },
                );
            }
        }
        let inv_freq = rope.inv_freq(self.head_dim);
        let n = inv_freq.len();
        let (mut cos, mut sin) = (
            Vec::with_capacity(window * n),
            Vec::with_capacity(window * n),
        );
        for pos in 0..window {
            for &f in &inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let table = |v: Vec<f32>| {
            Tensor::from_vec(v, (window, n), &candle_core::Device::Cpu)
                .map_err(|e| EvalError::Compute(e.to_string()))
        };
        source.add_made("freq_cis_real", table(cos)?);
        source.add_made("freq_cis_imag", table(sin)?);
        Ok(())
    }

    /// Builds candle's model over `vb` for windows of at most `window` tokens.
    pub fn build(&self, vb: VarBuilder<'static>, window: usize) -> candle_core::Result<Net> {
        Ok(match &self.family {
            Family::Llama { .. } => {
                let cfg = llama2_c::Config {
                    dim: self.hidden,
                    hidden_dim: self.intermediate,
                    n_layers: self.layers,
                    n_heads: self.heads,
                    n_kv_heads: self.kv_heads,
                    vocab_size: self.vocab,
                    seq_len: window,
                    norm_eps: self.rms_norm_eps,
                };
                let cache = llama2_c::Cache::new(false, &cfg, vb.clone())?;
                Net::Llama {
                    model: Box::new(llama2_c::Llama::load(vb, cfg)?),
                    cache: Box::new(cache),
                }
            }
            Family::Qwen2(cfg) | Family::LlamaAsQwen2(cfg) => Net::Qwen2 {
                base: Box::new(qwen2::Model::new(cfg, vb.clone())?),
                head: self.head(&vb)?,
            },
            Family::Qwen3(cfg) => Net::Qwen3 {
                base: Box::new(qwen3::Model::new(cfg, vb.clone())?),
                head: self.head(&vb)?,
            },
            Family::Gemma2(cfg) => Net::Gemma2(Box::new(gemma2::Model::new(false, cfg, vb)?)),
            Family::Phi3(cfg) => Net::Phi3(Box::new(phi3::Model::new(cfg, vb)?)),
        })
    }

    /// transformers ties by the config; the served `lm_head.weight` is the embedding then.
    fn head(&self, vb: &VarBuilder<'static>) -> candle_core::Result<Linear> {
        let w = vb.get((self.vocab, self.hidden), "lm_head.weight")?;
        Ok(Linear::new(w, None))
    }
}

fn scaling_kind(block: &Value) -> &str {
    block
        .get("rope_type")
        .or_else(|| block.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default")
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value, path: &Path) -> Result<T, EvalError> {
    serde_json::from_value(v).map_err(|e| bad(path, e.to_string()))
}

/// One decode step: the batch's tokens at a position -> their logits.
type StepFn = Box<dyn FnMut(&Tensor, usize) -> candle_core::Result<Tensor>>;

/// A built model, ready to score windows.
#[derive(Debug, Clone)]
pub enum Net {
    Llama {
        model: Box<llama2_c::Llama>,
        cache: Box<llama2_c::Cache>,
    },
    Qwen2 {
        base: Box<qwen2::Model>,
        head: Linear,
    },
    Qwen3 {
        base: Box<qwen3::Model>,
        head: Linear,
    },
    Gemma2(Box<gemma2::Model>),
    Phi3(Box<phi3::Model>),
}

impl Net {
    /// Logits of every position of each window (`windows` of equal length when stepped),
    /// row-major `len × vocab`, handed to `on_window` with the window's index in `windows`.
    /// Returns `Ok(false)` when cancelled.
    pub fn run(
        &self,
        windows: &[&[u32]],
        cancel: &CancelToken,
        on_window: &mut dyn FnMut(usize, Vec<f32>),
    ) -> candle_core::Result<bool> {
        let dev = candle_core::Device::Cpu;
        let ids = |w: &[u32]| Tensor::new(w, &dev)?.unsqueeze(0);
        let flat = |t: Tensor| t.squeeze(0)?.flatten_all()?.to_vec1::<f32>();
        // The models keep KV caches inside: each window starts from a fresh copy (the tensors
        // are shared, only the empty caches are new).
        match self {
            Net::Llama { model, cache } => {
                let mut cache = (**cache).clone();
                for (i, w) in windows.iter().enumerate() {
                    if cancel.is_cancelled() {
                        return Ok(false);
                    }
                    on_window(i, flat(model.forward(&ids(w)?, 0, &mut cache)?)?);
                }
            }
            Net::Qwen2 { base, head } => {
                for (i, w) in windows.iter().enumerate() {
                    if cancel.is_cancelled() {
                        return Ok(false);
                    }
                    let hidden = (**base).clone().forward(&ids(w)?, 0, None)?;
                    on_window(i, flat(head.forward(&hidden)?)?);
                }
            }
            Net::Qwen3 { base, head } => {
                for (i, w) in windows.iter().enumerate() {
                    if cancel.is_cancelled() {
                        return Ok(false);
                    }
                    let hidden = (**base).clone().forward(&ids(w)?, 0)?;
                    on_window(i, flat(head.forward(&hidden)?)?);
                }
            }
            Net::Gemma2(_) | Net::Phi3(_) => return self.step(windows, cancel, on_window),
        }
        Ok(true)
    }

    /// The decode path: `windows` (equal lengths) as one batch, one position per forward.
    fn step(
        &self,
        windows: &[&[u32]],
        cancel: &CancelToken,
        on_window: &mut dyn FnMut(usize, Vec<f32>),
    ) -> candle_core::Result<bool> {
        let Some(len) = windows.first().map(|w| w.len()) else {
            return Ok(true);
        };
        if windows.iter().any(|w| w.len() != len) {
            candle_core::bail!("stepped windows must have equal lengths");
        }
        let dev = candle_core::Device::Cpu;
        let batch: Vec<u32> = windows.iter().flat_map(|w| w.iter().copied()).collect();
        let batch = Tensor::from_vec(batch, (windows.len(), len), &dev)?;
        let mut forward: StepFn = match self {
            Net::Gemma2(m) => {
                let mut m = (**m).clone();
                Box::new(move |x, pos| m.forward(x, pos))
            }
            Net::Phi3(m) => {
                let mut m = (**m).clone();
                Box::new(move |x, pos| m.forward(x, pos))
            }
            _ => candle_core::bail!("not a stepped model"),
        };
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); windows.len()];
        for pos in 0..len {
            if cancel.is_cancelled() {
                return Ok(false);
            }
            let logits = forward(&batch.i((.., pos..pos + 1))?.contiguous()?, pos)?;
            for (b, rows) in out.iter_mut().enumerate() {
                rows.extend(logits.i((b, 0))?.to_vec1::<f32>()?);
            }
        }
        for (i, rows) in out.into_iter().enumerate() {
            on_window(i, rows);
        }
        Ok(true)
    }
}
