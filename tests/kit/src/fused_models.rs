//! Deterministic tiny models of other architectures, for tests: fused q/k/v layouts (Phi-3,
//! GPT-2, GPT-NeoX, Falcon's new decoder, DBRX) and a multimodal model (Qwen2-VL) whose text
//! stack sits under a prefix. Tensor names and config.json fields are the ones transformers 5
//! writes and reads for each architecture.
//!
//! The value part of chosen layers' attention is built with a clustered spectrum (infinite
//! SNR), every other matrix with a power-law one (finite SNR), as in [`snrscope::demo`]. For fused
//! layouts the q, k and v matrices are generated separately (`out x in`, as `nn.Linear` stores
//! them) and then placed into the fused tensor the way the architecture's attention code splits
//! it (written here from transformers' modeling code, independently of [`snrscope::checkpoint::fused`]).

use std::{io, path::Path};

use safetensors::{Dtype, tensor::TensorView};
use serde_json::{Value, json};

use snrscope::demo::{
    Generated, Rng, clustered_spectrum, encode, gaussian, ones_jitter, power_law, tokenizer_json,
    write_json,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `model.layers.N.self_attn.qkv_proj`: rows [Q; K; V], grouped-query.
    Phi3,
    /// `transformer.h.N.attn.c_attn`: Conv1D, columns [Q | K | V].
    Gpt2,
    /// `gpt_neox.layers.N.attention.query_key_value`: rows per head [q; k; v].
    GptNeox,
    /// `transformer.h.N.self_attention.query_key_value`, new decoder architecture: rows per KV
    /// group [q × G; k; v].
    FalconNew,
    /// `transformer.blocks.N.norm_attn_norm.attn.Wqkv`: rows [Q; K; V], grouped-query, KV heads
    /// in a nested `attn_config`.
    Dbrx,
    /// `model.language_model.layers.N.self_attn.{q,k,v}_proj` plus a vision tower
    /// (`model.visual.blocks.N`) and its projector (`model.visual.merger`).
    Qwen2Vl,
}

impl Arch {
    pub const ALL: [Arch; 6] = [
        Arch::Phi3,
        Arch::Gpt2,
        Arch::GptNeox,
        Arch::FalconNew,
        Arch::Dbrx,
        Arch::Qwen2Vl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Phi3 => "phi3",
            Arch::Gpt2 => "gpt2",
            Arch::GptNeox => "gpt_neox",
            Arch::FalconNew => "falcon_new_decoder",
            Arch::Dbrx => "dbrx",
            Arch::Qwen2Vl => "qwen2_vl",
        }
    }

    /// The main layer stack's prefix.
    pub fn stack(self) -> &'static str {
        match self {
            Arch::Phi3 => "model.layers",
            Arch::Gpt2 | Arch::FalconNew => "transformer.h",
            Arch::GptNeox => "gpt_neox.layers",
            Arch::Dbrx => "transformer.blocks",
            Arch::Qwen2Vl => "model.language_model.layers",
        }
    }

    /// The fused q/k/v module type (`None`: separate projections).
    pub fn fused(self) -> Option<&'static str> {
        match self {
            Arch::Phi3 => Some("self_attn.qkv_proj"),
            Arch::Gpt2 => Some("attn.c_attn"),
            Arch::GptNeox => Some("attention.query_key_value"),
            Arch::FalconNew => Some("self_attention.query_key_value"),
            Arch::Dbrx => Some("norm_attn_norm.attn.Wqkv"),
            Arch::Qwen2Vl => None,
        }
    }

    /// Whether the fused projection has a bias (`<fused>.bias`).
    pub fn fused_bias(self) -> bool {
        matches!(self, Arch::Gpt2 | Arch::GptNeox)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArchSpec {
    pub arch: Arch,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    /// Equal to `heads` for architectures without grouped-query attention here (GPT-2,
    /// GPT-NeoX).
    pub kv_heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub dtype: Dtype,
    /// Layers whose value part is built to have an infinite SNR.
    pub infinite_layers: Vec<usize>,
    pub seed: u64,
}

impl ArchSpec {
    /// A small model for fast tests: 4 heads of 16 (2 KV heads where the architecture has
    /// grouped-query attention).
    pub fn tiny(arch: Arch, layers: usize, infinite_layers: &[usize]) -> ArchSpec {
        let kv_heads = match arch {
            Arch::Gpt2 | Arch::GptNeox => 4,
            _ => 2,
        };
        ArchSpec {
            arch,
            layers,
            hidden: 64,
            heads: 4,
            kv_heads,
            intermediate: 96,
            vocab: 128,
            dtype: Dtype::BF16,
            infinite_layers: infinite_layers.to_vec(),
            seed: 0xA5C4 + arch as u64,
        }
    }

    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    fn torch_dtype(&self) -> &'static str {
        match self.dtype {
            Dtype::BF16 => "bfloat16",
            Dtype::F16 => "float16",
            Dtype::F64 => "float64",
            _ => "float32",
        }
    }

    pub fn config(&self) -> Value {
        let (h, n, heads, kv, ff, v) = (
            self.hidden,
            self.layers,
            self.heads,
            self.kv_heads,
            self.intermediate,
            self.vocab,
        );
        let dt = self.torch_dtype();
        match self.arch {
            Arch::Phi3 => json!({
                "architectures": ["Phi3ForCausalLM"], "model_type": "phi3",
                "hidden_size": h, "intermediate_size": ff, "num_hidden_layers": n,
                "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": v,
                "hidden_act": "silu", "max_position_embeddings": 256,
                "original_max_position_embeddings": 256, "rms_norm_eps": 1e-05,
                "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": dt,
                "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0
            }),
            Arch::Gpt2 => json!({
                "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
                "n_embd": h, "n_head": heads, "n_layer": n, "n_positions": 256,
                "n_inner": null, "vocab_size": v, "activation_function": "gelu_new",
                "layer_norm_epsilon": 1e-05, "tie_word_embeddings": true, "torch_dtype": dt,
                "bos_token_id": 1, "eos_token_id": 2
            }),
            Arch::GptNeox => json!({
                "architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
                "hidden_size": h, "num_attention_heads": heads, "num_hidden_layers": n,
                "intermediate_size": ff, "vocab_size": v, "hidden_act": "gelu",
                "rotary_pct": 0.25, "max_position_embeddings": 256, "layer_norm_eps": 1e-05,
                "use_parallel_residual": true, "attention_bias": true,
                "tie_word_embeddings": false, "torch_dtype": dt,
                "bos_token_id": 1, "eos_token_id": 2
            }),
            Arch::FalconNew => json!({
                "architectures": ["FalconForCausalLM"], "model_type": "falcon",
                "hidden_size": h, "num_attention_heads": heads, "num_kv_heads": kv,
                "num_hidden_layers": n, "vocab_size": v, "new_decoder_architecture": true,
                "multi_query": true, "parallel_attn": true, "bias": false, "alibi": false,
                "num_ln_in_parallel_attn": 2, "ffn_hidden_size": ff,
                "layer_norm_epsilon": 1e-05, "max_position_embeddings": 256,
                "tie_word_embeddings": false, "torch_dtype": dt,
                "bos_token_id": 1, "eos_token_id": 2
            }),
            Arch::Dbrx => json!({
                "architectures": ["DbrxForCausalLM"], "model_type": "dbrx",
                "d_model": h, "n_heads": heads, "n_layers": n, "max_seq_len": 256,
                "vocab_size": v,
                "attn_config": {"kv_n_heads": kv, "clip_qkv": 8, "rope_theta": 500000},
                "ffn_config": {"ffn_hidden_size": ff, "moe_num_experts": 2, "moe_top_k": 1},
                "tie_word_embeddings": false, "torch_dtype": dt
            }),
            Arch::Qwen2Vl => json!({
                "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
                "image_token_id": 120, "video_token_id": 121, "vision_start_token_id": 122,
                "vision_end_token_id": 123, "tie_word_embeddings": false, "torch_dtype": dt,
                "text_config": {
                    "model_type": "qwen2_vl_text", "hidden_size": h, "intermediate_size": ff,
                    "num_hidden_layers": n, "num_attention_heads": heads,
                    "num_key_value_heads": kv, "vocab_size": v, "rms_norm_eps": 1e-06,
                    "rope_theta": 1000000.0, "max_position_embeddings": 256,
                    "hidden_act": "silu",
                    "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
                    "bos_token_id": 1, "eos_token_id": 2
                },
                "vision_config": {
                    "depth": 2, "embed_dim": 32, "hidden_size": h, "num_heads": 2,
                    "mlp_ratio": 2, "in_channels": 3, "patch_size": 14,
                    "spatial_merge_size": 2, "temporal_patch_size": 2
                }
            }),
        }
    }

    /// Every tensor as (name, shape, f64 values).
    pub fn tensors(&self) -> Vec<Generated> {
        let mut rng = Rng::new(self.seed);
        let (h, v) = (self.hidden, self.vocab);
        let emb =
            |rng: &mut Rng, name: &str| (name.to_string(), vec![v, h], gaussian(rng, v * h, 0.02));
        let norm = |rng: &mut Rng, name: &str| (name.to_string(), vec![h], ones_jitter(rng, h));
        let mut out = Vec::new();
        match self.arch {
            Arch::Phi3 => out.push(emb(&mut rng, "model.embed_tokens.weight")),
            Arch::Gpt2 => {
                out.push(emb(&mut rng, "transformer.wte.weight"));
                out.push((
                    "transformer.wpe.weight".into(),
                    vec![256, h],
                    gaussian(&mut rng, 256 * h, 0.01),
                ));
            }
            Arch::GptNeox => out.push(emb(&mut rng, "gpt_neox.embed_in.weight")),
            Arch::FalconNew => out.push(emb(&mut rng, "transformer.word_embeddings.weight")),
            Arch::Dbrx => out.push(emb(&mut rng, "transformer.wte.weight")),
            Arch::Qwen2Vl => {
                out.push(emb(&mut rng, "model.language_model.embed_tokens.weight"));
                out.extend(self.vision_tensors(&mut rng));
            }
        }
        for l in 0..self.layers {
            out.extend(self.layer_tensors(l));
        }
        match self.arch {
            Arch::Phi3 => {
                out.push(norm(&mut rng, "model.norm.weight"));
                out.push(emb(&mut rng, "lm_head.weight"));
            }
            Arch::Gpt2 => {
                out.push(norm(&mut rng, "transformer.ln_f.weight"));
                out.push(norm(&mut rng, "transformer.ln_f.bias"));
            }
            Arch::GptNeox => {
                out.push(norm(&mut rng, "gpt_neox.final_layer_norm.weight"));
                out.push(norm(&mut rng, "gpt_neox.final_layer_norm.bias"));
                out.push(emb(&mut rng, "embed_out.weight"));
            }
            Arch::FalconNew => {
                out.push(norm(&mut rng, "transformer.ln_f.weight"));
                out.push(norm(&mut rng, "transformer.ln_f.bias"));
                out.push(emb(&mut rng, "lm_head.weight"));
            }
            Arch::Dbrx => {
                out.push(norm(&mut rng, "transformer.norm_f.weight"));
                out.push(emb(&mut rng, "lm_head.weight"));
            }
            Arch::Qwen2Vl => {
                out.push(norm(&mut rng, "model.language_model.norm.weight"));
                out.push(emb(&mut rng, "lm_head.weight"));
            }
        }
        out
    }

    /// Qwen2-VL's vision tower (2 blocks) and projector, small.
    fn vision_tensors(&self, rng: &mut Rng) -> Vec<Generated> {
        let (e, h) = (32, self.hidden);
        let mut out = vec![(
            "model.visual.patch_embed.proj.weight".to_string(),
            vec![e, 3, 2, 14, 14],
            gaussian(rng, e * 3 * 2 * 14 * 14, 0.02),
        )];
        for b in 0..2 {
            let p = format!("model.visual.blocks.{b}");
            out.push((format!("{p}.norm1.weight"), vec![e], ones_jitter(rng, e)));
            out.push((format!("{p}.norm1.bias"), vec![e], gaussian(rng, e, 0.01)));
            out.push((format!("{p}.norm2.weight"), vec![e], ones_jitter(rng, e)));
            out.push((format!("{p}.norm2.bias"), vec![e], gaussian(rng, e, 0.01)));
            out.push((
                format!("{p}.attn.qkv.weight"),
                vec![3 * e, e],
                power_law(rng, 3 * e, e, 0.8),
            ));
            out.push((
                format!("{p}.attn.qkv.bias"),
                vec![3 * e],
                gaussian(rng, 3 * e, 0.01),
            ));
            out.push((
                format!("{p}.attn.proj.weight"),
                vec![e, e],
                power_law(rng, e, e, 0.9),
            ));
            out.push((
                format!("{p}.attn.proj.bias"),
                vec![e],
                gaussian(rng, e, 0.01),
            ));
            out.push((
                format!("{p}.mlp.fc1.weight"),
                vec![2 * e, e],
                power_law(rng, 2 * e, e, 0.7),
            ));
            out.push((
                format!("{p}.mlp.fc1.bias"),
                vec![2 * e],
                gaussian(rng, 2 * e, 0.01),
            ));
            out.push((
                format!("{p}.mlp.fc2.weight"),
                vec![e, 2 * e],
                power_law(rng, e, 2 * e, 0.7),
            ));
            out.push((format!("{p}.mlp.fc2.bias"), vec![e], gaussian(rng, e, 0.01)));
        }
        let m = 4 * e;
        out.push((
            "model.visual.merger.ln_q.weight".into(),
            vec![e],
            ones_jitter(rng, e),
        ));
        out.push((
            "model.visual.merger.ln_q.bias".into(),
            vec![e],
            gaussian(rng, e, 0.01),
        ));
        out.push((
            "model.visual.merger.mlp.0.weight".into(),
            vec![m, m],
            power_law(rng, m, m, 0.8),
        ));
        out.push((
            "model.visual.merger.mlp.0.bias".into(),
            vec![m],
            gaussian(rng, m, 0.01),
        ));
        out.push((
            "model.visual.merger.mlp.2.weight".into(),
            vec![h, m],
            power_law(rng, h, m, 0.8),
        ));
        out.push((
            "model.visual.merger.mlp.2.bias".into(),
            vec![h],
            gaussian(rng, h, 0.01),
        ));
        out
    }

    /// The q, k and v matrices of layer `l` (each `out x in`), v planted where asked.
    pub fn qkv(&self, l: usize) -> [Vec<f64>; 3] {
        let mut rng = Rng::new(self.seed ^ (l as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (h, hd) = (self.hidden, self.head_dim());
        let (q_rows, kv_rows) = (self.heads * hd, self.kv_heads * hd);
        let q = power_law(&mut rng, q_rows, h, 0.7 + 0.05 * (l % 5) as f64);
        let k = power_law(&mut rng, kv_rows, h, 0.9 + 0.05 * (l % 3) as f64);
        let v = if self.infinite_layers.contains(&l) {
            clustered_spectrum(&mut rng, kv_rows, h, 0.05 + 0.01 * l as f64)
        } else {
            power_law(&mut rng, kv_rows, h, 0.6 + 0.1 * (l % 7) as f64)
        };
        [q, k, v]
    }

    /// The fused tensor's stored shape and values, placed as the architecture's attention
    /// splits its output (see the module comment).
    pub fn fused_tensor(&self, l: usize) -> (Vec<usize>, Vec<f64>) {
        let [q, k, v] = self.qkv(l);
        let (h, hd) = (self.hidden, self.head_dim());
        // Row r of an `out x in` matrix.
        let row = |m: &[f64], r: usize| m[r * h..(r + 1) * h].to_vec();
        let rows_of = |m: &[f64], head: usize| -> Vec<f64> {
            (head * hd..(head + 1) * hd)
                .flat_map(|r| row(m, r))
                .collect()
        };
        match self.arch {
            // Phi3Attention / DbrxAttention: qkv[..., :H·hd], next KV·hd, the rest.
            Arch::Phi3 | Arch::Dbrx => {
                let rows = q.len() / h + 2 * (k.len() / h);
                (vec![rows, h], [q, k, v].concat())
            }
            // GPT2Attention: Conv1D weight (in x 3·out), y = x @ W, split(embed_dim, dim=2):
            // column j < h is q's output j, so W[i][j] = q[j][i].
            Arch::Gpt2 => {
                let mut w = vec![0.0; h * 3 * h];
                for i in 0..h {
                    for j in 0..h {
                        w[i * 3 * h + j] = q[j * h + i];
                        w[i * 3 * h + h + j] = k[j * h + i];
                        w[i * 3 * h + 2 * h + j] = v[j * h + i];
                    }
                }
                (vec![h, 3 * h], w)
            }
            // GPTNeoXAttention: view(..., heads, 3 * head_size).chunk(3): head by head q, k, v.
            Arch::GptNeox => {
                let mut w = Vec::new();
                for head in 0..self.heads {
                    w.extend(rows_of(&q, head));
                    w.extend(rows_of(&k, head));
                    w.extend(rows_of(&v, head));
                }
                (vec![3 * self.heads * hd, h], w)
            }
            // FalconAttention._split_heads (new decoder): view(..., kv, G + 2, hd): the group's
            // G query heads, then its key head, then its value head.
            Arch::FalconNew => {
                let g = self.heads / self.kv_heads;
                let mut w = Vec::new();
                for group in 0..self.kv_heads {
                    for j in 0..g {
                        w.extend(rows_of(&q, group * g + j));
                    }
                    w.extend(rows_of(&k, group));
                    w.extend(rows_of(&v, group));
                }
                (vec![self.kv_heads * (g + 2) * hd, h], w)
            }
            Arch::Qwen2Vl => unreachable!("separate projections"),
        }
    }

    /// The fused projection's bias (when the architecture has one).
    pub fn fused_bias_values(&self, l: usize) -> Vec<f64> {
        let mut rng = Rng::new(self.seed ^ 0xB1A5 ^ ((l as u64) << 8));
        let n = 3 * self.hidden;
        (0..n).map(|_| 0.1 + 0.2 * rng.normal()).collect()
    }

    fn layer_tensors(&self, l: usize) -> Vec<Generated> {
        let mut rng = Rng::new(self.seed ^ (l as u64 + 7).wrapping_mul(0xA24B_AED4_963E_E407));
        let (h, ff) = (self.hidden, self.intermediate);
        let p = format!("{}.{l}", self.arch.stack());
        let mut out: Vec<Generated> = Vec::new();
        let mut k = 0;
        let mut mat = |rng: &mut Rng, name: String, rows: usize, cols: usize| {
            k += 1;
            let alpha = 0.6 + 0.1 * ((l * 7 + k * 3) % 9) as f64;
            (name, vec![rows, cols], power_law(rng, rows, cols, alpha))
        };
        let norm = |rng: &mut Rng, name: String| (name, vec![h], ones_jitter(rng, h));
        let bias = |rng: &mut Rng, name: String, n: usize| (name, vec![n], gaussian(rng, n, 0.02));
        if let Some(fused) = self.arch.fused() {
            let (shape, data) = self.fused_tensor(l);
            out.push((format!("{p}.{fused}.weight"), shape, data));
            if self.arch.fused_bias() {
                out.push((
                    format!("{p}.{fused}.bias"),
                    vec![3 * h],
                    self.fused_bias_values(l),
                ));
            }
        }
        match self.arch {
            Arch::Phi3 => {
                out.push(norm(&mut rng, format!("{p}.input_layernorm.weight")));
                out.push(mat(&mut rng, format!("{p}.self_attn.o_proj.weight"), h, h));
                out.push(norm(
                    &mut rng,
                    format!("{p}.post_attention_layernorm.weight"),
                ));
                out.push(mat(
                    &mut rng,
                    format!("{p}.mlp.gate_up_proj.weight"),
                    2 * ff,
                    h,
                ));
                out.push(mat(&mut rng, format!("{p}.mlp.down_proj.weight"), h, ff));
            }
            Arch::Gpt2 => {
                // Conv1D weights are stored in x out.
                out.push(norm(&mut rng, format!("{p}.ln_1.weight")));
                out.push(bias(&mut rng, format!("{p}.ln_1.bias"), h));
                out.push(mat(&mut rng, format!("{p}.attn.c_proj.weight"), h, h));
                out.push(bias(&mut rng, format!("{p}.attn.c_proj.bias"), h));
                out.push(norm(&mut rng, format!("{p}.ln_2.weight")));
                out.push(bias(&mut rng, format!("{p}.ln_2.bias"), h));
                out.push(mat(&mut rng, format!("{p}.mlp.c_fc.weight"), h, 4 * h));
                out.push(bias(&mut rng, format!("{p}.mlp.c_fc.bias"), 4 * h));
                out.push(mat(&mut rng, format!("{p}.mlp.c_proj.weight"), 4 * h, h));
                out.push(bias(&mut rng, format!("{p}.mlp.c_proj.bias"), h));
            }
            Arch::GptNeox => {
                out.push(norm(&mut rng, format!("{p}.input_layernorm.weight")));
                out.push(bias(&mut rng, format!("{p}.input_layernorm.bias"), h));
                out.push(mat(&mut rng, format!("{p}.attention.dense.weight"), h, h));
                out.push(bias(&mut rng, format!("{p}.attention.dense.bias"), h));
                out.push(norm(
                    &mut rng,
                    format!("{p}.post_attention_layernorm.weight"),
                ));
                out.push(bias(
                    &mut rng,
                    format!("{p}.post_attention_layernorm.bias"),
                    h,
                ));
                out.push(mat(
                    &mut rng,
                    format!("{p}.mlp.dense_h_to_4h.weight"),
                    ff,
                    h,
                ));
                out.push(bias(&mut rng, format!("{p}.mlp.dense_h_to_4h.bias"), ff));
                out.push(mat(
                    &mut rng,
                    format!("{p}.mlp.dense_4h_to_h.weight"),
                    h,
                    ff,
                ));
                out.push(bias(&mut rng, format!("{p}.mlp.dense_4h_to_h.bias"), h));
            }
            Arch::FalconNew => {
                out.push(norm(&mut rng, format!("{p}.ln_attn.weight")));
                out.push(bias(&mut rng, format!("{p}.ln_attn.bias"), h));
                out.push(norm(&mut rng, format!("{p}.ln_mlp.weight")));
                out.push(bias(&mut rng, format!("{p}.ln_mlp.bias"), h));
                out.push(mat(
                    &mut rng,
                    format!("{p}.self_attention.dense.weight"),
                    h,
                    h,
                ));
                out.push(mat(
                    &mut rng,
                    format!("{p}.mlp.dense_h_to_4h.weight"),
                    ff,
                    h,
                ));
                out.push(mat(
                    &mut rng,
                    format!("{p}.mlp.dense_4h_to_h.weight"),
                    h,
                    ff,
                ));
            }
            Arch::Dbrx => {
                out.push(norm(&mut rng, format!("{p}.norm_attn_norm.norm_1.weight")));
                out.push(mat(
                    &mut rng,
                    format!("{p}.norm_attn_norm.attn.out_proj.weight"),
                    h,
                    h,
                ));
                out.push(norm(&mut rng, format!("{p}.norm_attn_norm.norm_2.weight")));
                out.push(mat(&mut rng, format!("{p}.ffn.router.layer.weight"), 2, h));
                for w in ["w1", "v1", "w2"] {
                    out.push(mat(&mut rng, format!("{p}.ffn.experts.mlp.{w}"), 2 * ff, h));
                }
            }
            Arch::Qwen2Vl => {
                let [q, k, v] = self.qkv(l);
                let kv = self.kv_heads * self.head_dim();
                out.push(norm(&mut rng, format!("{p}.input_layernorm.weight")));
                out.push((format!("{p}.self_attn.q_proj.weight"), vec![h, h], q));
                out.push(bias(&mut rng, format!("{p}.self_attn.q_proj.bias"), h));
                out.push((format!("{p}.self_attn.k_proj.weight"), vec![kv, h], k));
                out.push(bias(&mut rng, format!("{p}.self_attn.k_proj.bias"), kv));
                out.push((format!("{p}.self_attn.v_proj.weight"), vec![kv, h], v));
                out.push(bias(&mut rng, format!("{p}.self_attn.v_proj.bias"), kv));
                out.push(mat(&mut rng, format!("{p}.self_attn.o_proj.weight"), h, h));
                out.push(norm(
                    &mut rng,
                    format!("{p}.post_attention_layernorm.weight"),
                ));
                out.push(mat(&mut rng, format!("{p}.mlp.gate_proj.weight"), ff, h));
                out.push(mat(&mut rng, format!("{p}.mlp.up_proj.weight"), ff, h));
                out.push(mat(&mut rng, format!("{p}.mlp.down_proj.weight"), h, ff));
            }
        }
        out
    }
}

/// Writes the model as a Hugging Face folder (created if missing): `model.safetensors`,
/// config.json, a tokenizer.
pub fn write_arch_model(dir: &Path, spec: &ArchSpec) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = spec
        .tensors()
        .into_iter()
        .map(|(n, s, d)| (n, s, encode(spec.dtype, &d)))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(spec.dtype, shape.clone(), bytes)
                .map_err(|e| io::Error::other(e.to_string()))?;
            Ok((name.clone(), view))
        })
        .collect::<io::Result<_>>()?;
    let metadata = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    safetensors::serialize_to_file(views, metadata, &dir.join("model.safetensors"))
        .map_err(|e| io::Error::other(e.to_string()))?;
    write_json(&dir.join("config.json"), &spec.config())?;
    write_json(&dir.join("tokenizer.json"), &tokenizer_json(spec.vocab))?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": 256,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>"
        }),
    )?;
    Ok(())
}
