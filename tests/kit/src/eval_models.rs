//! Tiny checkpoints of each architecture the perplexity evaluation supports, with random
//! weights and the demo's word-level tokenizer: what the evaluation tests compare against
//! transformers. Deterministic (the demo's SplitMix64), so the reference script and the tests
//! see the same bytes; [`fnv1a64`] of the weight file detects a generator change.
//!
//! `cargo run --release --example eval_fixtures -- DIR` writes every fixture (and its pruned
//! export) for `tests/reference/eval/make_reference.py`.

use std::{collections::HashMap, io, path::Path};

use safetensors::{Dtype, tensor::TensorView};
use serde_json::{Map, Value, json};

use snrscope::demo::{Generated, Rng, encode, gaussian, tokenizer_json};

/// The model families of [`snrscope::forward`]'s supported `model_type`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Gemma2,
    Gemma3,
    Phi3,
    Mixtral,
    Qwen3Moe,
}

impl Arch {
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Mistral => "mistral",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3_text",
            Arch::Phi3 => "phi3",
            Arch::Mixtral => "mixtral",
            Arch::Qwen3Moe => "qwen3_moe",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Arch::Llama => "LlamaForCausalLM",
            Arch::Mistral => "MistralForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
            Arch::Qwen3 => "Qwen3ForCausalLM",
            Arch::Gemma2 => "Gemma2ForCausalLM",
            Arch::Gemma3 => "Gemma3ForCausalLM",
            Arch::Phi3 => "Phi3ForCausalLM",
            Arch::Mixtral => "MixtralForCausalLM",
            Arch::Qwen3Moe => "Qwen3MoeForCausalLM",
        }
    }

    fn is_gemma(self) -> bool {
        matches!(self, Arch::Gemma2 | Arch::Gemma3)
    }
}

/// One tiny checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchSpec {
    /// Folder name of the fixture, e.g. `llama3-bf16`.
    pub name: String,
    pub arch: Arch,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub dtype: Dtype,
    pub tied: bool,
    pub seed: u64,
    /// Merged into config.json last (rope scaling, sliding window, ...).
    pub extra_config: Map<String, Value>,
}

impl ArchSpec {
    fn base(name: &str, arch: Arch, seed: u64) -> ArchSpec {
        ArchSpec {
            name: name.into(),
            arch,
            layers: 4,
            hidden: 64,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            intermediate: 96,
            vocab: 128,
            max_positions: 64,
            dtype: Dtype::F32,
            tied: false,
            seed,
            extra_config: Map::new(),
        }
    }

    fn with(mut self, key: &str, v: Value) -> ArchSpec {
        self.extra_config.insert(key.into(), v);
        self
    }

    /// The reference set: every supported family, the weight dtypes the loader converts, tied
    /// and untied heads, every rope scaling these types use, sliding windows shorter than the
    /// windows scored (on every layer, on some by `max_window_layers`, alternating), biases,
    /// experts.
    pub fn fixtures() -> Vec<ArchSpec> {
        let llama3 = ArchSpec {
            dtype: Dtype::BF16,
            tied: true,
            ..ArchSpec::base("llama3-bf16", Arch::Llama, 0x11a3)
        }
        .with("rope_theta", json!(500000.0))
        .with(
            "rope_scaling",
            json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
        );
        let llama_yarn = ArchSpec::base("llama-yarn-bias", Arch::Llama, 0x11a5)
            .with(
                "rope_scaling",
                json!({"rope_type": "yarn", "factor": 4.0,
                       "original_max_position_embeddings": 16}),
            )
            .with("attention_bias", json!(true))
            .with("mlp_bias", json!(true));
        let llama_linear = ArchSpec::base("llama-linear", Arch::Llama, 0x11a6)
            .with("rope_scaling", json!({"type": "linear", "factor": 2.0}));
        let qwen2 = ArchSpec {
            dtype: Dtype::F16,
            tied: true,
            ..ArchSpec::base("qwen2-f16", Arch::Qwen2, 0x0e2)
        };
        let qwen2_swa = ArchSpec::base("qwen2-swa", Arch::Qwen2, 0x0e4)
            .with("use_sliding_window", json!(true))
            .with("sliding_window", json!(16))
            .with("max_window_layers", json!(2));
        let phi3_long = ArchSpec::base("phi3-longrope", Arch::Phi3, 0xf15)
            .with("original_max_position_embeddings", json!(16))
            .with("partial_rotary_factor", json!(0.5))
            .with(
                "rope_scaling",
                json!({"type": "longrope", "short_factor": [1.0, 1.1, 1.3, 1.6],
                       "long_factor": [1.5, 2.5, 4.0, 6.0]}),
            );
        let gemma3 = ArchSpec::base("gemma3", Arch::Gemma3, 0x9e3)
            .with("sliding_window", json!(16))
            .with(
                "layer_types",
                json!([
                    "sliding_attention",
                    "sliding_attention",
                    "full_attention",
                    "sliding_attention"
                ]),
            )
            .with(
                "rope_scaling",
                json!({"rope_type": "linear", "factor": 2.0}),
            );
        vec![
            ArchSpec::base("llama", Arch::Llama, 0x11a),
            llama3,
            llama_yarn,
            llama_linear,
            ArchSpec::base("mistral", Arch::Mistral, 0x315).with("sliding_window", json!(32)),
            ArchSpec::base("mixtral", Arch::Mixtral, 0x313).with("sliding_window", json!(24)),
            qwen2,
            qwen2_swa,
            ArchSpec::base("qwen3", Arch::Qwen3, 0x0e3),
            ArchSpec::base("qwen3-moe", Arch::Qwen3Moe, 0x0e5).with("mlp_only_layers", json!([2])),
            ArchSpec::base("gemma2", Arch::Gemma2, 0x9e2).with("sliding_window", json!(16)),
            gemma3,
            ArchSpec::base("phi3", Arch::Phi3, 0xf13).with("sliding_window", json!(40)),
            phi3_long,
        ]
    }

    /// Experts of the MoE fixtures, chosen per token, and their width.
    const EXPERTS: usize = 4;
    const TOP_K: usize = 2;
    const MOE_FF: usize = 48;

    fn flag(&self, key: &str) -> bool {
        self.extra_config
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn mlp_only(&self, layer: usize) -> bool {
        self.extra_config
            .get("mlp_only_layers")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_u64() == Some(layer as u64)))
    }

    fn torch_dtype(&self) -> &'static str {
        match self.dtype {
            Dtype::BF16 => "bfloat16",
            Dtype::F16 => "float16",
            _ => "float32",
        }
    }

    pub fn config(&self) -> Value {
        let mut c = json!({
            "architectures": [self.arch.class()],
            "model_type": self.arch.model_type(),
            "hidden_act": "silu",
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "num_hidden_layers": self.layers,
            "vocab_size": self.vocab,
            "max_position_embeddings": self.max_positions,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "tie_word_embeddings": self.tied,
            "torch_dtype": self.torch_dtype(),
            "bos_token_id": 1,
            "eos_token_id": 2,
        });
        let obj = c.as_object_mut().expect("object");
        let mut set = |k: &str, v: Value| {
            obj.insert(k.into(), v);
        };
        match self.arch {
            Arch::Llama | Arch::Mistral => {}
            Arch::Qwen2 => {
                set("sliding_window", json!(self.max_positions));
                set("max_window_layers", json!(self.layers));
                set("use_sliding_window", json!(false));
            }
            Arch::Qwen3 => {
                set("head_dim", json!(self.head_dim));
                set("attention_bias", json!(false));
                set("sliding_window", Value::Null);
                set("max_window_layers", json!(self.layers));
                set("use_sliding_window", json!(false));
            }
            Arch::Gemma2 | Arch::Gemma3 => {
                set("head_dim", json!(self.head_dim));
                set("hidden_act", json!("gelu_pytorch_tanh"));
                set("hidden_activation", json!("gelu_pytorch_tanh"));
                set("attention_bias", json!(false));
                set("pad_token_id", json!(0));
                set("tie_word_embeddings", json!(true));
                if self.arch == Arch::Gemma2 {
                    set("query_pre_attn_scalar", json!(self.head_dim));
                    set("final_logit_softcapping", json!(30.0));
                    set("attn_logit_softcapping", json!(50.0));
                } else {
                    // Not head_dim, as in Gemma 3 27B (and Gemma 2 27B).
                    set("query_pre_attn_scalar", json!(2 * self.head_dim));
                    set("rope_theta", json!(1_000_000.0));
                    set("rope_local_base_freq", json!(10_000.0));
                    set("final_logit_softcapping", Value::Null);
                    set("attn_logit_softcapping", Value::Null);
                }
            }
            Arch::Mixtral => {
                set("num_local_experts", json!(Self::EXPERTS));
                set("num_experts_per_tok", json!(Self::TOP_K));
                set("rope_theta", json!(1_000_000.0));
            }
            Arch::Qwen3Moe => {
                set("head_dim", json!(self.head_dim));
                set("num_experts", json!(Self::EXPERTS));
                set("num_experts_per_tok", json!(Self::TOP_K));
                set("moe_intermediate_size", json!(Self::MOE_FF));
                set("norm_topk_prob", json!(false));
                set("decoder_sparse_step", json!(1));
                set("use_sliding_window", json!(false));
            }
            Arch::Phi3 => {
                set("rope_scaling", Value::Null);
                set(
                    "original_max_position_embeddings",
                    json!(self.max_positions),
                );
                // transformers' default (32000) is outside a tiny vocabulary.
                set("pad_token_id", json!(0));
            }
        }
        for (k, v) in &self.extra_config {
            obj.insert(k.clone(), v.clone());
        }
        c
    }

    /// Every tensor as (name, shape, values), in checkpoint order.
    pub fn tensors(&self) -> Vec<Generated> {
        let mut rng = Rng::new(self.seed);
        let (h, v) = (self.hidden, self.vocab);
        let mut out = Vec::new();
        let mut push = |name: String, shape: Vec<usize>, data: Vec<f64>| {
            out.push((name, shape, data));
        };
        // Embeddings and output head of std 2/sqrt(hidden) and 1/sqrt(fan_in) projections keep
        // logits of order one (tied or not), so a dropped layer moves the perplexity visibly.
        let std = 2.0 / (h as f64).sqrt();
        push(
            "model.embed_tokens.weight".into(),
            vec![v, h],
            gaussian(&mut rng, v * h, std),
        );
        for l in 0..self.layers {
            for (module, shape, data) in self.layer_tensors(&mut rng, l) {
                push(format!("model.layers.{l}.{module}"), shape, data);
            }
        }
        push("model.norm.weight".into(), vec![h], self.norm(&mut rng, h));
        if !self.tied && !self.arch.is_gemma() {
            push(
                "lm_head.weight".into(),
                vec![v, h],
                gaussian(&mut rng, v * h, std),
            );
        }
        out
    }

    /// Gemma scales by `1 + w`, everyone else by `w`.
    fn norm(&self, rng: &mut Rng, n: usize) -> Vec<f64> {
        let centre = if self.arch.is_gemma() { 0.0 } else { 1.0 };
        (0..n).map(|_| centre + 0.1 * rng.normal()).collect()
    }

    fn layer_tensors(&self, rng: &mut Rng, layer: usize) -> Vec<Generated> {
        let (h, ff, hd) = (self.hidden, self.intermediate, self.head_dim);
        let (q, kv) = (self.heads * hd, self.kv_heads * hd);
        let matrix = |rng: &mut Rng, rows: usize, cols: usize| {
            gaussian(rng, rows * cols, 1.0 / (cols as f64).sqrt())
        };
        let mut out: Vec<Generated> = Vec::new();
        let norm = |out: &mut Vec<Generated>, rng: &mut Rng, name: &str, n: usize| {
            out.push((format!("{name}.weight"), vec![n], self.norm(rng, n)));
        };
        let lin = |out: &mut Vec<Generated>, rng: &mut Rng, name: &str, r: usize, c: usize| {
            out.push((format!("{name}.weight"), vec![r, c], matrix(rng, r, c)));
        };
        norm(&mut out, rng, "input_layernorm", h);
        match self.arch {
            Arch::Phi3 => {
                lin(&mut out, rng, "self_attn.qkv_proj", q + 2 * kv, h);
            }
            _ => {
                lin(&mut out, rng, "self_attn.q_proj", q, h);
                lin(&mut out, rng, "self_attn.k_proj", kv, h);
                lin(&mut out, rng, "self_attn.v_proj", kv, h);
            }
        }
        if self.arch == Arch::Qwen2 || self.flag("attention_bias") {
            for (name, n) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                out.push((
                    format!("self_attn.{name}.bias"),
                    vec![n],
                    gaussian(rng, n, 0.1),
                ));
            }
        }
        if matches!(self.arch, Arch::Qwen3 | Arch::Qwen3Moe | Arch::Gemma3) {
            norm(&mut out, rng, "self_attn.q_norm", hd);
            norm(&mut out, rng, "self_attn.k_norm", hd);
        }
        lin(&mut out, rng, "self_attn.o_proj", h, q);
        if self.flag("attention_bias") {
            out.push((
                "self_attn.o_proj.bias".into(),
                vec![h],
                gaussian(rng, h, 0.1),
            ));
        }
        norm(&mut out, rng, "post_attention_layernorm", h);
        if self.arch.is_gemma() {
            norm(&mut out, rng, "pre_feedforward_layernorm", h);
            norm(&mut out, rng, "post_feedforward_layernorm", h);
        }
        let experts = |out: &mut Vec<Generated>, rng: &mut Rng, base: &str, p: [&str; 3], f| {
            lin(out, rng, &format!("{base}.gate"), Self::EXPERTS, h);
            for e in 0..Self::EXPERTS {
                lin(out, rng, &format!("{base}.experts.{e}.{}", p[0]), f, h);
                lin(out, rng, &format!("{base}.experts.{e}.{}", p[1]), f, h);
                lin(out, rng, &format!("{base}.experts.{e}.{}", p[2]), h, f);
            }
        };
        match self.arch {
            Arch::Phi3 => {
                lin(&mut out, rng, "mlp.gate_up_proj", 2 * ff, h);
                lin(&mut out, rng, "mlp.down_proj", h, ff);
            }
            Arch::Mixtral => {
                experts(&mut out, rng, "block_sparse_moe", ["w1", "w3", "w2"], ff);
            }
            Arch::Qwen3Moe if !self.mlp_only(layer) => {
                let p = ["gate_proj", "up_proj", "down_proj"];
                experts(&mut out, rng, "mlp", p, Self::MOE_FF);
            }
            _ => {
                for (p, r, c) in [
                    ("gate_proj", ff, h),
                    ("up_proj", ff, h),
                    ("down_proj", h, ff),
                ] {
                    lin(&mut out, rng, &format!("mlp.{p}"), r, c);
                    if self.flag("mlp_bias") {
                        out.push((format!("mlp.{p}.bias"), vec![r], gaussian(rng, r, 0.1)));
                    }
                }
            }
        }
        out
    }
}

/// A llama of real width (hidden 512, 8 heads, BF16) with `layers` layers: what the memory
/// tests compare at two depths (the pass's memory must not grow with the layer count).
pub fn write_wide_llama(dir: &Path, layers: usize) -> io::Result<()> {
    let spec = ArchSpec {
        layers,
        hidden: 512,
        heads: 8,
        kv_heads: 2,
        head_dim: 64,
        intermediate: 1408,
        vocab: 2048,
        max_positions: 256,
        dtype: Dtype::BF16,
        ..ArchSpec::fixtures()
            .into_iter()
            .find(|s| s.arch == Arch::Llama)
            .expect("a llama fixture")
    };
    write_model(dir, &spec)
}

/// Writes the checkpoint (one `model.safetensors`), config.json and the word-level tokenizer
/// into `dir` (created if missing).
pub fn write_model(dir: &Path, spec: &ArchSpec) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = spec
        .tensors()
        .into_iter()
        .map(|(n, s, d)| (n, s, encode(spec.dtype, &d)))
        .collect();
    let views = encoded
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(spec.dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| io::Error::other(e.to_string()))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(views, metadata, &dir.join("model.safetensors"))
        .map_err(|e| io::Error::other(e.to_string()))?;
    let json = |name: &str, v: &Value| {
        let mut text = serde_json::to_string_pretty(v).map_err(io::Error::other)?;
        text.push('\n');
        std::fs::write(dir.join(name), text)
    };
    json("config.json", &spec.config())?;
    json("tokenizer.json", &tokenizer_json(spec.vocab))?;
    json(
        "tokenizer_config.json",
        &json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": spec.max_positions,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>"
        }),
    )
}

/// `n` words of the word-level vocabulary (`t3` .. `t{vocab-1}`), with an unknown word every
/// 37th, so the tokenizer's `<unk>` path is exercised too.
pub fn sample_text(seed: u64, n: usize, vocab: usize) -> String {
    let mut rng = Rng::new(seed);
    let words: Vec<String> = (0..n)
        .map(|i| {
            if i % 37 == 36 {
                "zebra".to_string()
            } else {
                format!("t{}", 3 + (rng.next_u64() % (vocab as u64 - 3)))
            }
        })
        .collect();
    words.join(" ")
}

/// FNV-1a, 64 bit: a checksum the reference script computes the same way, so a change of the
/// generator fails the tests with a clear message instead of a numeric mismatch.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The pruned choice the reference evaluates for every fixture (keeps layers 0 and 3).
pub const FIXTURE_DROPPED: &[usize] = &[1, 2];

/// Words in each fixture's text: more than two windows of every fixture's context.
pub const FIXTURE_WORDS: usize = 150;

/// The text a fixture is scored on.
pub fn fixture_text(spec: &ArchSpec) -> String {
    sample_text(spec.seed ^ 0x7e57, FIXTURE_WORDS, spec.vocab)
}
