//! A small llama checkpoint converted to GGUF the way llama.cpp's `convert_hf_to_gguf.py` does
//! it: its tensor names, its metadata keys, its `permute` of `q_proj`/`k_proj` rows (written out
//! below from the converter's code, not from snrscope's), in F32 or with the matrices in Q8_0
//! (ggml's reference quantizer, written out below), optionally with a character-level
//! SentencePiece vocabulary (`<unk>`, `<s>`, `</s>`, `▁`, `a`..`z`: ids 0..30, so a text of
//! lowercase words tokenizes by hand: `▁` is 3, `a` is 4, ..., `z` is 29).

use std::path::Path;

use crate::{
    eval_models::{Arch, ArchSpec},
    gguf_builder::{self as builder, Builder},
};

/// A 3-layer llama checkpoint (width 64, 4 heads, 2 key/value heads) in F32.
pub fn small_llama() -> ArchSpec {
    ArchSpec {
        name: "llama-gguf".into(),
        arch: Arch::Llama,
        layers: 3,
        hidden: 64,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        intermediate: 96,
        vocab: 128,
        max_positions: 64,
        dtype: safetensors::Dtype::F32,
        tied: false,
        seed: 18,
        extra_config: Default::default(),
    }
}

/// The vocabulary's tokens, in id order.
pub fn char_tokens() -> Vec<String> {
    let mut t: Vec<String> = ["<unk>", "<s>", "</s>", "\u{2581}"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    t.extend((b'a'..=b'z').map(|c| (c as char).to_string()));
    t
}

fn char_tokenizer(b: Builder) -> Builder {
    let tokens = char_tokens();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut b = b
        .kv_str("tokenizer.ggml.model", "llama")
        .kv_strs("tokenizer.ggml.tokens", &refs)
        .kv_u32("tokenizer.ggml.unknown_token_id", 0)
        .kv_u32("tokenizer.ggml.bos_token_id", 1)
        .kv_u32("tokenizer.ggml.eos_token_id", 2);
    let scores: Vec<Vec<u8>> = (0..tokens.len())
        .map(|i| (-(i as f32)).to_le_bytes().to_vec())
        .collect();
    b = b.kv_array("tokenizer.ggml.scores", builder::F32, &scores);
    b
}

/// convert_hf_to_gguf.py's `LlamaModel.permute`: rows viewed as (heads, 2, head_dim/2),
/// axes 1 and 2 swapped.
fn permute(data: &[f64], rows: usize, cols: usize, heads: usize) -> Vec<f64> {
    let hd = rows / heads;
    let mut out = vec![0.0; data.len()];
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..hd / 2 {
                let from = h * hd + j * (hd / 2) + i;
                let to = h * hd + i * 2 + j;
                out[to * cols..(to + 1) * cols]
                    .copy_from_slice(&data[from * cols..(from + 1) * cols]);
            }
        }
    }
    out
}

/// ggml's reference Q8_0 (`quantize_row_q8_0_ref`): per 32 values, d = max|x| / 127 (stored as
/// f16), q = round(x / d).
fn q8_0(data: &[f64]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in data.chunks(32) {
        let amax = block.iter().fold(0f32, |m, &x| m.max((x as f32).abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend(half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|&x| ((x as f32) * id).round() as i8 as u8));
    }
    out
}

fn f32_kv(key: &str, v: f32, b: Builder) -> Builder {
    let mut bytes = builder::F32.to_le_bytes().to_vec();
    bytes.extend(v.to_le_bytes());
    b.kv_raw(key, bytes)
}

fn gguf_name(hf: &str) -> String {
    let map = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = map.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (n, module) = rest.split_once('.').unwrap();
    let g = match module {
        "input_layernorm.weight" => "attn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        other => panic!("no GGUF name for {other}"),
    };
    format!("blk.{n}.{g}")
}

pub fn convert_llama(spec: &ArchSpec, out: &Path, quantize: bool, tokenizer: bool) {
    let mut b = Builder::new()
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", spec.layers as u32)
        .kv_u32("llama.context_length", spec.max_positions as u32)
        .kv_u32("llama.embedding_length", spec.hidden as u32)
        .kv_u32("llama.feed_forward_length", spec.intermediate as u32)
        .kv_u32("llama.attention.head_count", spec.heads as u32)
        .kv_u32("llama.attention.head_count_kv", spec.kv_heads as u32)
        .kv_u32("llama.rope.dimension_count", spec.head_dim as u32);
    b = f32_kv("llama.attention.layer_norm_rms_epsilon", 1e-5, b);
    b = f32_kv("llama.rope.freq_base", 10000.0, b);
    if tokenizer {
        b = char_tokenizer(b);
    }
    for (name, shape, data) in spec.tensors() {
        let data = if name.ends_with("q_proj.weight") {
            permute(&data, shape[0], shape[1], spec.heads)
        } else if name.ends_with("k_proj.weight") {
            permute(&data, shape[0], shape[1], spec.kv_heads)
        } else {
            data
        };
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        let (ty, bytes) = if quantize && shape.len() == 2 {
            (8, q8_0(&data))
        } else {
            (
                0,
                data.iter()
                    .flat_map(|&x| (x as f32).to_le_bytes())
                    .collect(),
            )
        };
        b = b.tensor(&gguf_name(&name), &dims, ty, bytes);
    }
    b.write(out);
}
