//! llama.cpp's tensor names ↔ Hugging Face's, for the architectures llama.cpp's
//! `convert_hf_to_gguf.py` writes for llama (and mistral, mixtral: arch `llama`), qwen2, qwen3,
//! qwen2moe / qwen3moe, gemma2, gemma3 and phi3; shapes as Hugging Face writes them; and what
//! the converter did to the weights on the way.
//!
//! **The llama Q/K permutation.** For arch `llama`, `convert_hf_to_gguf.py` reorders the rows of
//! `attn_q` and `attn_k` (weights and biases) inside every head, from Hugging Face's rotary
//! layout (first half of the head, then second half) to llama.cpp's interleaved pairs: GGUF row
//! `h*d + 2*i + j` is Hugging Face row `h*d + j*d/2 + i` (head `h`, head size `d`, `i < d/2`,
//! `j < 2`; for `attn_k` the heads are the key/value heads). A row permutation is an orthogonal
//! map applied on the left, so it leaves the singular values — and the SNR — unchanged; the
//! forward pass must undo it ([`QkPermutation::to_hf_rows`]) before using Hugging Face's rotary
//! code. qwen2/qwen3/gemma/phi3 are not permuted (llama.cpp runs them with NEOX rotary).
//!
//! **Gemma's norms** are stored as `1 + w` (the converter adds one, llama.cpp multiplies by the
//! stored value): vectors, not scanned, but the forward pass must subtract one to get
//! Hugging Face's weights back.

use std::ops::Range;

use super::{GgufError, error::shown, metadata::Value, open::GgufModel};

/// `blk.N.rest` → `(N, rest)`.
pub fn layer_of(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (n, rest) = rest.split_once('.')?;
    if n.is_empty() || n.len() > 5 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if n.len() > 1 && n.starts_with('0') {
        return None;
    }
    Some((n.parse().ok()?, rest))
}

/// The Hugging Face module (under `model.layers.N.`) of a per-layer GGUF module, e.g.
/// `attn_v` → `self_attn.v_proj`. Expert tensors give the per-expert module with `{E}` for the
/// expert number. `None`: no Hugging Face counterpart known for this architecture.
pub fn hf_layer_module(arch: &str, module: &str) -> Option<&'static str> {
    let gemma = arch.starts_with("gemma");
    let mixtral = arch == "llama";
    Some(match module {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_qkv" => "self_attn.qkv_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" if arch == "phi3" => "mlp.gate_up_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "ffn_norm" if gemma => "pre_feedforward_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "post_attention_norm" if gemma => "post_attention_layernorm",
        "post_ffw_norm" if gemma => "post_feedforward_layernorm",
        "ffn_gate_inp" if mixtral => "block_sparse_moe.gate",
        "ffn_gate_exps" if mixtral => "block_sparse_moe.experts.{E}.w1",
        "ffn_down_exps" if mixtral => "block_sparse_moe.experts.{E}.w2",
        "ffn_up_exps" if mixtral => "block_sparse_moe.experts.{E}.w3",
        "ffn_gate_inp" => "mlp.gate",
        "ffn_gate_exps" => "mlp.experts.{E}.gate_proj",
        "ffn_down_exps" => "mlp.experts.{E}.down_proj",
        "ffn_up_exps" => "mlp.experts.{E}.up_proj",
        "ffn_gate_shexp" => "mlp.shared_expert.gate_proj",
        "ffn_up_shexp" => "mlp.shared_expert.up_proj",
        "ffn_down_shexp" => "mlp.shared_expert.down_proj",
        "ffn_gate_inp_shexp" => "mlp.shared_expert_gate",
        _ => return None,
    })
}

/// The Hugging Face name of a GGUF tensor name, e.g. `blk.3.attn_v.weight` →
/// `model.layers.3.self_attn.v_proj.weight`; expert tensors keep `{E}` for the expert.
/// `None` for names with no Hugging Face counterpart (`rope_freqs`, unknown modules).
pub fn hf_name(arch: &str, gguf_name: &str) -> Option<String> {
    let (base, suffix) = match gguf_name.rsplit_once('.') {
        Some((b, s @ ("weight" | "bias"))) => (b, s),
        _ => return None,
    };
    if let Some((n, module)) = layer_of(base) {
        let hf = hf_layer_module(arch, module)?;
        return Some(format!("model.layers.{n}.{hf}.{suffix}"));
    }
    let hf = match base {
        "token_embd" => "model.embed_tokens",
        "output_norm" => "model.norm",
        "output" => "lm_head",
        _ => return None,
    };
    Some(format!("{hf}.{suffix}"))
}

/// Whether the converter reordered this module's rows (see [`QkPermutation`]).
pub fn is_permuted(arch: &str, module: &str) -> bool {
    arch == "llama" && matches!(module, "attn_q" | "attn_k")
}

/// How `attn_q` / `attn_k` rows of an arch-`llama` GGUF are reordered (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QkPermutation {
    pub n_heads: usize,
    pub head_dim: usize,
}

impl QkPermutation {
    /// The Hugging Face row that GGUF row `r` holds.
    pub fn hf_row(&self, r: usize) -> usize {
        let d = self.head_dim;
        let (h, within) = (r / d, r % d);
        let (i, j) = (within / 2, within % 2);
        h * d + j * (d / 2) + i
    }

    /// The GGUF row that holds Hugging Face row `r` (the inverse of [`QkPermutation::hf_row`]).
    pub fn gguf_row(&self, r: usize) -> usize {
        let d = self.head_dim;
        let (h, within) = (r / d, r % d);
        let (j, i) = (within / (d / 2).max(1), within % (d / 2).max(1));
        h * d + 2 * i + j
    }

    /// Reorders a row-major `rows × cols` GGUF matrix (or bias, `cols` = 1) into Hugging Face's
    /// row order.
    pub fn to_hf_rows<T: Copy>(&self, gguf: &[T], cols: usize) -> Vec<T> {
        let rows = self.n_heads * self.head_dim;
        assert_eq!(gguf.len(), rows * cols, "matrix of the permutation's size");
        let mut out = gguf.to_vec();
        for r in 0..rows {
            let hf = self.hf_row(r);
            out[hf * cols..(hf + 1) * cols].copy_from_slice(&gguf[r * cols..(r + 1) * cols]);
        }
        out
    }
}

/// Attention geometry from the metadata: heads, key/value heads, head size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attention {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub value_dim: usize,
}

impl Attention {
    /// Reads `{arch}.attention.head_count` (and `_kv`, `key_length`, `value_length`, falling
    /// back to embedding_length / head_count as llama.cpp does). Per-layer head counts (arrays)
    /// give layer `layer`'s value.
    pub fn of(model: &GgufModel, layer: usize) -> Result<Attention, GgufError> {
        let path = &model.main().path;
        let get = |key: &str| -> Option<usize> {
            match model.arch_value(key)? {
                Value::Array(a) => usize::try_from(a.int(layer)?).ok(),
                v => v.as_usize(),
            }
        };
        let n_heads = get("attention.head_count")
            .filter(|&n| n > 0)
            .ok_or_else(|| GgufError::tensor(path, "has no {arch}.attention.head_count"))?;
        let n_kv_heads = get("attention.head_count_kv").unwrap_or(n_heads);
        let embd = get("embedding_length").unwrap_or(0);
        let head_dim = get("attention.key_length").unwrap_or(embd / n_heads);
        let value_dim = get("attention.value_length").unwrap_or(head_dim);
        if head_dim == 0 || n_kv_heads == 0 {
            return Err(GgufError::tensor(
                path,
                "its attention metadata give a head size or key/value head count of 0",
            ));
        }
        Ok(Attention {
            n_heads,
            n_kv_heads,
            head_dim,
            value_dim,
        })
    }

    /// The permutation of `attn_q` (`kv = false`) or `attn_k` rows.
    pub fn permutation(&self, kv: bool) -> QkPermutation {
        QkPermutation {
            n_heads: if kv { self.n_kv_heads } else { self.n_heads },
            head_dim: self.head_dim,
        }
    }

    /// The rows of a fused `attn_qkv` (Q, then K, then V) that hold V — what the seed's rule
    /// reads, as the safetensors path reads V out of a fused `qkv_proj`.
    pub fn v_rows_of_qkv(&self) -> Range<u64> {
        let q = (self.n_heads * self.head_dim) as u64;
        let k = (self.n_kv_heads * self.head_dim) as u64;
        q + k..q + k + (self.n_kv_heads * self.value_dim) as u64
    }
}

/// The V rows of layer `layer`'s `blk.N.attn_qkv.weight`, checked against its row count.
pub fn qkv_v_rows(model: &GgufModel, layer: usize) -> Result<Range<u64>, GgufError> {
    let name = format!("blk.{layer}.attn_qkv.weight");
    let t = model.require(&name)?;
    let rows = Attention::of(model, layer)?.v_rows_of_qkv();
    if rows.end != t.info.n_rows() {
        return Err(GgufError::tensor(
            &t.part.path,
            format!(
                "tensor {} has {} rows, but the attention metadata put Q+K+V at {}",
                shown(&name),
                t.info.n_rows(),
                rows.end
            ),
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_as_convert_hf_to_gguf_writes_them() {
        let m = |a, n| hf_name(a, n);
        assert_eq!(
            m("llama", "blk.3.attn_v.weight").as_deref(),
            Some("model.layers.3.self_attn.v_proj.weight")
        );
        assert_eq!(
            m("qwen2", "blk.0.attn_q.bias").as_deref(),
            Some("model.layers.0.self_attn.q_proj.bias")
        );
        assert_eq!(
            m("gemma2", "blk.1.ffn_norm.weight").as_deref(),
            Some("model.layers.1.pre_feedforward_layernorm.weight")
        );
        assert_eq!(
            m("gemma3", "blk.1.post_ffw_norm.weight").as_deref(),
            Some("model.layers.1.post_feedforward_layernorm.weight")
        );
        assert_eq!(
            m("phi3", "blk.2.ffn_up.weight").as_deref(),
            Some("model.layers.2.mlp.gate_up_proj.weight")
        );
        assert_eq!(
            m("llama", "blk.2.ffn_down_exps.weight").as_deref(),
            Some("model.layers.2.block_sparse_moe.experts.{E}.w2.weight")
        );
        assert_eq!(
            m("qwen3moe", "blk.2.ffn_gate_exps.weight").as_deref(),
            Some("model.layers.2.mlp.experts.{E}.gate_proj.weight")
        );
        assert_eq!(
            m("llama", "output.weight").as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(m("llama", "rope_freqs.weight"), None);
        assert_eq!(layer_of("blk.01.attn_v.weight"), None);
        assert_eq!(
            layer_of("blk.12.attn_v.weight"),
            Some((12, "attn_v.weight"))
        );
    }

    /// convert_hf_to_gguf.py's LlamaModel.permute, done by hand for 2 heads of size 4:
    /// reshape(n_head, 2, d/2, cols).swapaxes(1, 2): HF rows [0 1 2 3 | 4 5 6 7] become GGUF
    /// rows [0 2 1 3 | 4 6 5 7].
    #[test]
    fn undoes_the_llama_permutation() {
        let p = QkPermutation {
            n_heads: 2,
            head_dim: 4,
        };
        let gguf_holds = [0, 2, 1, 3, 4, 6, 5, 7];
        let hf: Vec<usize> = (0..8).map(|r| p.hf_row(r)).collect();
        assert_eq!(hf, gguf_holds);
        assert_eq!(p.to_hf_rows(&gguf_holds, 1), (0..8).collect::<Vec<_>>());
    }
}
