//! Which architectures are evaluated, and what each layer of one does, read from config.json
//! exactly as transformers' config classes complete it (their defaults per model type, the
//! per-layer `layer_types`, `max_window_layers`, `use_sliding_window`, rope parameters).
//! Anything that would make this forward pass compute another function than transformers'
//! is refused here, with the reason, before a weight is read.

use std::path::Path;

use serde_json::Value;

use super::{
    error::EvalError,
    kernels::{Activation, NormKind},
    rope::Rope,
    supported::SUPPORTED,
};

/// How a layer's feed-forward part is laid out.
#[derive(Debug, Clone, PartialEq)]
pub enum Mlp {
    /// `gate_proj`, `up_proj`, `down_proj` (Phi-3: one fused `gate_up_proj`).
    Dense,
    /// A router over experts, top-k, weights renormalised or not.
    Moe(Moe),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Moe {
    pub experts: usize,
    pub top_k: usize,
    /// Divide the top-k probabilities by their sum (Mixtral always; Qwen3-MoE per config).
    pub normalize: bool,
    pub intermediate: usize,
    /// Router name and expert name pattern (`{e}` = expert index) with the three projections.
    pub router: &'static str,
    pub expert: &'static str,
    pub gate_up_down: [&'static str; 3],
}

/// What one layer of the evaluated model does beyond its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerKind {
    /// Keys a query sees: those less than this many positions back (its own included).
    pub sliding_window: Option<usize>,
    /// Index into [`ArchConfig::ropes`].
    pub rope: usize,
    pub mlp: Mlp,
}

/// A model's architecture as the forward pass needs it.
#[derive(Debug, Clone)]
pub struct ArchConfig {
    pub model_type: String,
    pub layers: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub tied: bool,
    pub rms_norm_eps: f64,
    /// `max_position_embeddings`: the longest window evaluated.
    pub context: usize,
    pub norm: NormKind,
    pub act: Activation,
    /// Biases of q/k/v, of o, of the MLP projections.
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// Per-head RMS norms of queries and keys before the rotation (Qwen3, Gemma 3).
    pub qk_norm: bool,
    /// Phi-3's fused `qkv_proj` and `gate_up_proj`.
    pub fused: bool,
    /// Gemma's extra norms: after attention, before and after the MLP.
    pub sandwich: bool,
    /// Embeddings multiplied by sqrt(hidden) (Gemma).
    pub embed_scale: Option<f32>,
    /// Scores multiplied by this before the softmax.
    pub attn_scale: f32,
    pub attn_softcap: Option<f32>,
    pub final_softcap: Option<f32>,
    pub ropes: Vec<Rope>,
    pub kinds: Vec<LayerKind>,
}

fn bad(path: &Path, problem: impl Into<String>) -> EvalError {
    EvalError::BadConfig {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Reads one config.json, with the defaults of the model type's config class.
struct Reader<'a> {
    c: &'a Value,
    path: &'a Path,
}

impl Reader<'_> {
    /// The key's value; `None` when absent. An explicit `null` is `Some(Null)`.
    fn raw(&self, key: &str) -> Option<&Value> {
        self.c.get(key)
    }

    fn value(&self, key: &str) -> Option<&Value> {
        self.raw(key).filter(|v| !v.is_null())
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

    fn opt_f64(&self, key: &str, default: Option<f64>) -> Result<Option<f64>, EvalError> {
        match self.raw(key) {
            None => Ok(default),
            Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| bad(self.path, format!("`{key}` is not a number"))),
        }
    }

    /// A window length: absent -> the class default, `null` -> none.
    fn opt_usize(&self, key: &str, default: Option<usize>) -> Result<Option<usize>, EvalError> {
        match self.raw(key) {
            None => Ok(default),
            Some(Value::Null) => Ok(None),
            Some(_) => self.usize(key).map(Some),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> bool {
        self.value(key).and_then(Value::as_bool).unwrap_or(default)
    }

    fn str_or<'s>(&'s self, key: &str, default: &'s str) -> &'s str {
        self.value(key).and_then(Value::as_str).unwrap_or(default)
    }

    /// The rope block as `standardize_rope_params` leaves it: `rope_scaling` over
    /// `rope_parameters`, completed with `rope_theta` and `partial_rotary_factor`.
    fn rope_block(&self, default_theta: f64) -> Result<Value, EvalError> {
        let mut block = self
            .value("rope_scaling")
            .or_else(|| self.value("rope_parameters"))
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let obj = block
            .as_object_mut()
            .ok_or_else(|| bad(self.path, "`rope_scaling` is not an object"))?;
        if !obj.contains_key("rope_theta") {
            let theta = self.f64_or("rope_theta", default_theta)?;
            obj.insert("rope_theta".into(), theta.into());
        }
        if let Some(p) = self.value("partial_rotary_factor") {
            obj.entry("partial_rotary_factor").or_insert(p.clone());
        }
        Ok(block)
    }

    fn rope(&self, block: &Value, head_dim: usize) -> Result<Rope, EvalError> {
        let partial = block
            .get("partial_rotary_factor")
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        let dim = (head_dim as f64 * partial) as usize;
        if dim == 0 || !dim.is_multiple_of(2) || dim > head_dim {
            return Err(bad(
                self.path,
                format!("a rotary dimension of {dim} (head_dim × partial_rotary_factor)"),
            ));
        }
        Rope::parse(block, self.c, dim).map_err(|e| bad(self.path, e))
    }

    /// `layer_types` when given (checked), else `computed`.
    fn layer_types(
        &self,
        layers: usize,
        computed: impl Fn(usize) -> bool,
    ) -> Result<Vec<bool>, EvalError> {
        let Some(list) = self.value("layer_types") else {
            return Ok((0..layers).map(computed).collect());
        };
        let list = list
            .as_array()
            .ok_or_else(|| bad(self.path, "`layer_types` is not a list"))?;
        if list.len() != layers {
            return Err(bad(
                self.path,
                format!(
                    "`layer_types` has {} entries for {layers} layers",
                    list.len()
                ),
            ));
        }
        list.iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                other => Err(bad(
                    self.path,
                    format!("layer type {other:?} is not supported"),
                )),
            })
            .collect()
    }
}

impl ArchConfig {
    /// The architecture of an opened model, or why it cannot be evaluated: checked before any
    /// work (a scan, tokenizing) that would be wasted on a model the pass refuses.
    pub fn of_model(model: &crate::checkpoint::Model) -> Result<ArchConfig, EvalError> {
        let config = model.config.as_ref().ok_or_else(|| EvalError::BadConfig {
            path: model.source.clone(),
            problem: "no config.json beside the weights: the architecture is unknown".into(),
        })?;
        let path = model.config_path.as_deref().unwrap_or(&model.source);
        ArchConfig::parse(config, path)
    }

    /// Reads a config.json (`path` is named in errors).
    pub fn parse(config: &Value, path: &Path) -> Result<ArchConfig, EvalError> {
        let r = Reader { c: config, path };
        let model_type = r.str_or("model_type", "").to_string();
        let t_owned = model_type.clone();
        let t = t_owned.as_str();
        if !SUPPORTED.contains(&t) {
            return Err(EvalError::Unsupported {
                path: path.to_path_buf(),
                model_type,
            });
        }
        let gemma = matches!(t, "gemma2" | "gemma3_text");
        let hidden = r.usize("hidden_size")?;
        let heads = r.usize("num_attention_heads")?;
        let layers = r.usize("num_hidden_layers")?;
        let intermediate = r.usize("intermediate_size")?;
        let vocab = r.usize("vocab_size")?;
        if heads == 0 || hidden == 0 || layers == 0 || vocab == 0 {
            return Err(bad(path, "a zero size in the config"));
        }
        let kv_heads = r.usize_or("num_key_value_heads", heads)?;
        if kv_heads == 0 || heads % kv_heads != 0 {
            return Err(bad(
                path,
                "`num_key_value_heads` does not divide `num_attention_heads`",
            ));
        }
        let head_dim_default = match t {
            "qwen3" => 128,
            "gemma2" | "gemma3_text" => 256,
            _ => hidden / heads,
        };
        let head_dim = match t {
            "phi3" => hidden / heads,
            _ => r.usize_or("head_dim", head_dim_default)?,
        };
        if head_dim == 0 {
            return Err(bad(path, "head_dim is 0"));
        }
        let context = r.usize_or(
            "max_position_embeddings",
            match t {
                "llama" => 2048,
                "mistral" | "mixtral" => 131072,
                "qwen2" | "qwen3" | "qwen3_moe" => 32768,
                "gemma2" => 8192,
                "gemma3_text" => 131072,
                _ => 4096,
            },
        )?;
        let rms_norm_eps = r.f64_or(
            "rms_norm_eps",
            if matches!(t, "phi3" | "mixtral") {
                1e-5
            } else {
                1e-6
            },
        )?;
        let act_name = if gemma {
            r.str_or("hidden_activation", "gelu_pytorch_tanh")
        } else {
            r.str_or("hidden_act", "silu")
        };
        let act = Activation::parse(act_name)
            .ok_or_else(|| bad(path, format!("activation {act_name:?} is not supported")))?;
        let attention_bias = r.bool_or("attention_bias", false);
        let (qkv_bias, o_bias) = match t {
            "qwen2" => (true, false),
            "llama" | "qwen3" | "qwen3_moe" | "gemma2" | "gemma3_text" => {
                (attention_bias, attention_bias)
            }
            _ => (false, false),
        };
        let mlp_bias = t == "llama" && r.bool_or("mlp_bias", false);

        // Rotary embeddings: one for every layer, Gemma 3 a second for its sliding layers.
        let ropes = if t == "gemma3_text" {
            let nested = r.value("rope_parameters").filter(|p| {
                p.get("full_attention").is_some() || p.get("sliding_attention").is_some()
            });
            let mut full = nested
                .and_then(|p| p.get("full_attention"))
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"rope_type": "default"}));
            let mut local = nested
                .and_then(|p| p.get("sliding_attention"))
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"rope_type": "default"}));
            if let (Some(s), Some(f)) = (r.value("rope_scaling"), full.as_object_mut()) {
                for (k, v) in s.as_object().into_iter().flatten() {
                    f.insert(k.clone(), v.clone());
                }
            }
            for (block, key, default) in [
                (&mut full, "rope_theta", 1_000_000.0),
                (&mut local, "rope_local_base_freq", 10_000.0),
            ] {
                if let Some(o) = block.as_object_mut()
                    && !o.contains_key("rope_theta")
                {
                    o.insert("rope_theta".into(), r.f64_or(key, default)?.into());
                }
            }
            vec![r.rope(&full, head_dim)?, r.rope(&local, head_dim)?]
        } else {
            let theta = if t == "mixtral" {
                1_000_000.0
            } else {
                10_000.0
            };
            let block = r.rope_block(theta)?;
            let kind = block
                .get("rope_type")
                .or_else(|| block.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("default");
            if t == "phi3" && !matches!(kind, "default" | "longrope" | "su" | "yarn") {
                return Err(bad(
                    path,
                    format!("rope scaling {kind:?} is not one phi3 accepts"),
                ));
            }
            // Phi-3 calls its su/yarn scaling longrope.
            let block = if t == "phi3" && matches!(kind, "su" | "yarn") {
                let mut b = block.clone();
                b["rope_type"] = "longrope".into();
                b
            } else {
                block
            };
            vec![r.rope(&block, head_dim)?]
        };

        // Which layers slide, and by how much, as each class decides it.
        let sliding: Option<usize>;
        let slides: Vec<bool> = match t {
            "llama" => {
                sliding = None;
                vec![false; layers]
            }
            "mistral" | "mixtral" | "phi3" => {
                let default = if t == "mistral" { Some(4096) } else { None };
                sliding = r.opt_usize("sliding_window", default)?;
                vec![sliding.is_some(); layers]
            }
            "qwen3_moe" => {
                sliding = if r.bool_or("use_sliding_window", false) {
                    r.opt_usize("sliding_window", Some(4096))?
                } else {
                    None
                };
                vec![sliding.is_some(); layers]
            }
            "qwen2" | "qwen3" => {
                sliding = if r.bool_or("use_sliding_window", false) {
                    r.opt_usize("sliding_window", Some(4096))?
                } else {
                    None
                };
                let max_window_layers = r.usize_or("max_window_layers", 28)?;
                r.layer_types(layers, |i| sliding.is_some() && i >= max_window_layers)?
            }
            _ => {
                // gemma2, gemma3_text
                sliding = r.opt_usize("sliding_window", Some(4096))?;
                let pattern = if t == "gemma2" {
                    2
                } else {
                    r.usize_or("sliding_window_pattern", 6)?.max(1)
                };
                r.layer_types(layers, |i| (i + 1) % pattern != 0)?
            }
        };
        if slides.iter().any(|&s| s) && sliding.is_none() {
            return Err(bad(
                path,
                "`layer_types` names sliding layers but there is no `sliding_window`",
            ));
        }
        if sliding == Some(0) {
            return Err(bad(path, "`sliding_window` is 0"));
        }

        // Feed-forward: dense, or experts.
        let moe = match t {
            "mixtral" => Some(Moe {
                experts: r.usize_or("num_local_experts", 8)?,
                top_k: r.usize_or("num_experts_per_tok", 2)?,
                normalize: true,
                intermediate,
                router: "block_sparse_moe.gate",
                expert: "block_sparse_moe.experts.{e}",
                gate_up_down: ["w1", "w3", "w2"],
            }),
            "qwen3_moe" => Some(Moe {
                experts: r.usize_or("num_experts", 128)?,
                top_k: r.usize_or("num_experts_per_tok", 8)?,
                normalize: r.bool_or("norm_topk_prob", false),
                intermediate: r.usize_or("moe_intermediate_size", 768)?,
                router: "mlp.gate",
                expert: "mlp.experts.{e}",
                gate_up_down: ["gate_proj", "up_proj", "down_proj"],
            }),
            _ => None,
        };
        if let Some(m) = &moe
            && (m.top_k == 0 || m.top_k > m.experts)
        {
            return Err(bad(
                path,
                format!("num_experts_per_tok {} with {} experts", m.top_k, m.experts),
            ));
        }
        let mlp_only: Vec<usize> = r
            .value("mlp_only_layers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64().map(|v| v as usize))
                    .collect()
            })
            .unwrap_or_default();
        let step = r.usize_or("decoder_sparse_step", 1)?.max(1);
        let kinds = (0..layers)
            .map(|i| LayerKind {
                sliding_window: if slides[i] { sliding } else { None },
                rope: if t == "gemma3_text" && slides[i] {
                    1
                } else {
                    0
                },
                mlp: match &moe {
                    Some(m)
                        if t == "mixtral"
                            || (!mlp_only.contains(&i) && m.experts > 0 && (i + 1) % step == 0) =>
                    {
                        Mlp::Moe(m.clone())
                    }
                    _ => Mlp::Dense,
                },
            })
            .collect();

        let attn_scale = if gemma {
            let s = r.f64_or("query_pre_attn_scalar", 256.0)?;
            if s <= 0.0 {
                return Err(bad(path, "`query_pre_attn_scalar` must be positive"));
            }
            s.powf(-0.5) as f32
        } else {
            (head_dim as f64).powf(-0.5) as f32
        };
        let (attn_softcap, final_softcap) = if t == "gemma2" {
            (
                r.opt_f64("attn_logit_softcapping", Some(50.0))?,
                r.opt_f64("final_logit_softcapping", Some(30.0))?,
            )
        } else if t == "gemma3_text" {
            (
                r.opt_f64("attn_logit_softcapping", None)?,
                r.opt_f64("final_logit_softcapping", None)?,
            )
        } else {
            (None, None)
        };
        if t == "gemma3_text" && r.bool_or("use_bidirectional_attention", false) {
            return Err(bad(path, "`use_bidirectional_attention` is not supported"));
        }
        Ok(ArchConfig {
            model_type,
            layers,
            hidden,
            intermediate,
            heads,
            kv_heads,
            head_dim,
            vocab,
            tied: r.bool_or("tie_word_embeddings", gemma),
            rms_norm_eps,
            context,
            norm: if gemma {
                NormKind::RmsOnePlus
            } else {
                NormKind::Rms
            },
            act,
            qkv_bias,
            o_bias,
            mlp_bias,
            qk_norm: matches!(t, "qwen3" | "qwen3_moe" | "gemma3_text"),
            fused: t == "phi3",
            sandwich: gemma,
            embed_scale: gemma.then(|| (hidden as f64).sqrt() as f32),
            attn_scale,
            attn_softcap: attn_softcap.map(|v| v as f32),
            final_softcap: final_softcap.map(|v| v as f32),
            ropes,
            kinds,
        })
    }

    /// Query and key/value widths.
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Every tensor a layer reads, with its shape (names relative to the layer).
    pub fn layer_tensors(&self, kind: &LayerKind) -> Vec<(String, Vec<usize>)> {
        let (h, q, kv, hd) = (self.hidden, self.q_dim(), self.kv_dim(), self.head_dim);
        let mut out: Vec<(String, Vec<usize>)> = vec![("input_layernorm.weight".into(), vec![h])];
        let mut push = |n: &str, s: Vec<usize>| out.push((n.to_string(), s));
        if self.fused {
            push("self_attn.qkv_proj.weight", vec![q + 2 * kv, h]);
        } else {
            for (p, n) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                push(&format!("self_attn.{p}.weight"), vec![n, h]);
                if self.qkv_bias {
                    push(&format!("self_attn.{p}.bias"), vec![n]);
                }
            }
        }
        if self.qk_norm {
            push("self_attn.q_norm.weight", vec![hd]);
            push("self_attn.k_norm.weight", vec![hd]);
        }
        push("self_attn.o_proj.weight", vec![h, q]);
        if self.o_bias {
            push("self_attn.o_proj.bias", vec![h]);
        }
        push("post_attention_layernorm.weight", vec![h]);
        if self.sandwich {
            push("pre_feedforward_layernorm.weight", vec![h]);
            push("post_feedforward_layernorm.weight", vec![h]);
        }
        match &kind.mlp {
            Mlp::Dense if self.fused => {
                push("mlp.gate_up_proj.weight", vec![2 * self.intermediate, h]);
                push("mlp.down_proj.weight", vec![h, self.intermediate]);
            }
            Mlp::Dense => {
                let ff = self.intermediate;
                for (p, s) in [
                    ("gate_proj", vec![ff, h]),
                    ("up_proj", vec![ff, h]),
                    ("down_proj", vec![h, ff]),
                ] {
                    push(&format!("mlp.{p}.weight"), s);
                    if self.mlp_bias {
                        let n = if p == "down_proj" { h } else { ff };
                        push(&format!("mlp.{p}.bias"), vec![n]);
                    }
                }
            }
            Mlp::Moe(m) => {
                push(&format!("{}.weight", m.router), vec![m.experts, h]);
                for e in 0..m.experts {
                    let base = m.expert.replace("{e}", &e.to_string());
                    let ff = m.intermediate;
                    push(&format!("{base}.{}.weight", m.gate_up_down[0]), vec![ff, h]);
                    push(&format!("{base}.{}.weight", m.gate_up_down[1]), vec![ff, h]);
                    push(&format!("{base}.{}.weight", m.gate_up_down[2]), vec![h, ff]);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(c: Value) -> Result<ArchConfig, String> {
        ArchConfig::parse(&c, Path::new("config.json")).map_err(|e| e.to_string())
    }

    fn base(t: &str) -> Value {
        json!({"model_type": t, "hidden_size": 64, "num_attention_heads": 4,
               "num_hidden_layers": 6, "intermediate_size": 96, "vocab_size": 100})
    }

    #[test]
    fn sliding_layers_as_each_class_decides() {
        let mut q = base("qwen2");
        q["use_sliding_window"] = json!(true);
        q["sliding_window"] = json!(8);
        q["max_window_layers"] = json!(4);
        let a = parse(q).unwrap();
        let w: Vec<_> = a.kinds.iter().map(|k| k.sliding_window).collect();
        assert_eq!(w, [None, None, None, None, Some(8), Some(8)]);
        // Mistral slides by 4096 when the key is absent, not at all when it is null.
        assert_eq!(
            parse(base("mistral")).unwrap().kinds[0].sliding_window,
            Some(4096)
        );
        let mut m = base("mistral");
        m["sliding_window"] = Value::Null;
        assert_eq!(parse(m).unwrap().kinds[0].sliding_window, None);
        let mut g = base("gemma2");
        g["head_dim"] = json!(16);
        g["sliding_window"] = json!(5);
        let w: Vec<_> = parse(g)
            .unwrap()
            .kinds
            .iter()
            .map(|k| k.sliding_window)
            .collect();
        assert_eq!(w, [Some(5), None, Some(5), None, Some(5), None]);
    }

    #[test]
    fn refusals_name_the_problem() {
        let e = parse(base("falcon")).unwrap_err();
        assert!(e.contains("falcon") && e.contains("config.json"), "{e}");
        let mut c = base("llama");
        c.as_object_mut().unwrap().remove("vocab_size");
        assert!(parse(c).unwrap_err().contains("vocab_size"));
        let mut c = base("llama");
        c["rope_scaling"] = json!({"rope_type": "mrope"});
        assert!(parse(c).unwrap_err().contains("mrope"));
        let mut c = base("llama");
        c["hidden_act"] = json!("gelu_10");
        assert!(parse(c).unwrap_err().contains("gelu_10"));
    }
}
