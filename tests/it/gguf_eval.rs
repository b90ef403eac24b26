//! `snrscope eval X.gguf`: the perplexity of a GGUF through the streamed forward pass, its
//! config rebuilt from the metadata and its Q/K rows put back in Hugging Face's order.
//!
//! The GGUF is converted here from a small llama checkpoint the way llama.cpp's
//! `convert_hf_to_gguf.py` does it (its tensor names, its metadata keys, its `permute` of
//! `q_proj`/`k_proj` rows written out below from the converter's code, not from snrscope's),
//! once in F32 — whose perplexity must equal the safetensors checkpoint's on the same token ids —
//! and once with the matrices in Q8_0 (quantized by ggml's reference rule, written out below):
//! finite, and close.

use std::path::Path;

use snrscope_testkit::{
    eval_models::{Arch, ArchSpec},
    gguf_builder::{self as builder, Builder},
};

fn spec() -> ArchSpec {
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

fn convert(spec: &ArchSpec, out: &Path, quantize: bool) {
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

fn perplexities(target: &Path, ids: &Path, drop: Option<&str>) -> (f64, Option<f64>) {
    let mut args = vec![
        "eval".to_string(),
        target.display().to_string(),
        "--token-ids".into(),
        ids.display().to_string(),
        "--json".into(),
        "--threads".into(),
        "2".into(),
    ];
    if let Some(d) = drop {
        args.extend(["--drop".into(), d.into()]);
    }
    let (code, stdout, stderr) = crate::snrscope().args(args).run().parts();
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    (
        v["original"]["perplexity"].as_f64().unwrap(),
        v["pruned"]["perplexity"].as_f64(),
    )
}

#[test]
fn f32_gguf_equals_its_checkpoint_and_q8_0_is_close() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec();
    let st = tmp.path().join("st");
    snrscope_testkit::eval_models::write_model(&st, &spec).unwrap();
    let f32_gguf = tmp.path().join("m-f32.gguf");
    let q8_gguf = tmp.path().join("m-q8_0.gguf");
    convert(&spec, &f32_gguf, false);
    convert(&spec, &q8_gguf, true);
    let ids = tmp.path().join("ids.txt");
    let text: Vec<String> = (0..60u32)
        .map(|i| ((i * 37 + 11) % 128).to_string())
        .collect();
    std::fs::write(&ids, text.join(" ")).unwrap();

    let (st_full, st_pruned) = perplexities(&st, &ids, Some("1"));
    let (g_full, g_pruned) = perplexities(&f32_gguf, &ids, Some("1"));
    let (st_pruned, g_pruned) = (st_pruned.unwrap(), g_pruned.unwrap());
    assert!(st_full.is_finite() && st_full > 1.0);
    let rel = |a: f64, b: f64| (a - b).abs() / b;
    assert!(
        rel(g_full, st_full) < 1e-5,
        "F32 GGUF {g_full} vs safetensors {st_full}"
    );
    assert!(
        rel(g_pruned, st_pruned) < 1e-5,
        "pruned: F32 GGUF {g_pruned} vs safetensors {st_pruned}"
    );
    assert!(rel(st_pruned, st_full) > 1e-3, "dropping a layer shows");

    let (q_full, _) = perplexities(&q8_gguf, &ids, None);
    assert!(q_full.is_finite());
    assert!(
        rel(q_full, st_full) < 0.02 && q_full != g_full,
        "Q8_0 {q_full} vs F32 {st_full}"
    );
}
