//! Deterministic Llama-style models, for the built-in demo and for tests.
//!
//! The value projections of chosen layers are built as `U diag(s) Vᵀ` with orthonormal U, V and
//! a clustered spectrum, so the IQR noise estimate is tiny and no singular value falls under the
//! threshold: their SNR is infinite. Every other matrix gets a power-law spectrum, as trained
//! weights have: many small singular values fall under the threshold, so their SNR is finite.
//! (A plain Gaussian matrix would not do: for a wide shape its Marchenko–Pastur bulk is narrow
//! and the IQR rule calls all of it signal.)

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use faer::Mat;
use safetensors::{Dtype, tensor::TensorView};
use serde_json::json;

/// Name, shape, values.
pub type Generated = (String, Vec<usize>, Vec<f64>);

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub dtype: Dtype,
    /// Layers whose v_proj is built to have an infinite SNR.
    pub infinite_layers: Vec<usize>,
    pub tied_embeddings: bool,
    /// 1 writes `model.safetensors`; more write `model-0000i-of-0000n` shards and an index.
    pub shards: usize,
    pub seed: u64,
    /// Merged into config.json (e.g. a per-layer `layer_types` list).
    pub extra_config: serde_json::Map<String, serde_json::Value>,
    /// The tokenizer knows the words of the built-in English sample (the demo: `p` scores real
    /// tokens, not `<unk>`); else its words are `t3`, `t4`, ….
    pub english_vocab: bool,
}

impl ModelSpec {
    /// The model `snrscope` opens when started without arguments.
    pub fn demo() -> ModelSpec {
        ModelSpec {
            layers: 24,
            hidden: 256,
            heads: 8,
            kv_heads: 2,
            intermediate: 688,
            vocab: 1024,
            dtype: Dtype::BF16,
            infinite_layers: vec![5, 11, 12, 19],
            tied_embeddings: false,
            shards: 2,
            seed: 0x5eed_0002,
            extra_config: Default::default(),
            english_vocab: true,
        }
    }

    /// A small model for fast tests.
    pub fn tiny(layers: usize, infinite_layers: &[usize]) -> ModelSpec {
        ModelSpec {
            layers,
            hidden: 64,
            heads: 4,
            kv_heads: 2,
            intermediate: 96,
            vocab: 128,
            dtype: Dtype::BF16,
            infinite_layers: infinite_layers.to_vec(),
            tied_embeddings: false,
            shards: 1,
            seed: 7,
            extra_config: Default::default(),
            english_vocab: false,
        }
    }

    /// Parameters of every tensor the spec generates.
    pub(crate) fn num_params(&self) -> u64 {
        let (h, kv, ff, v) = (
            self.hidden as u64,
            self.kv_dim() as u64,
            self.intermediate as u64,
            self.vocab as u64,
        );
        let layer = 2 * h + 2 * h * h + 2 * kv * h + 3 * ff * h;
        let heads = if self.tied_embeddings { 1 } else { 2 };
        self.layers as u64 * layer + heads * v * h + h
    }

    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    pub(crate) fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim()
    }

    fn torch_dtype(&self) -> &'static str {
        match self.dtype {
            Dtype::BF16 => "bfloat16",
            Dtype::F16 => "float16",
            Dtype::F64 => "float64",
            _ => "float32",
        }
    }

    pub fn config(&self) -> serde_json::Value {
        let mut c = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_act": "silu",
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "num_hidden_layers": self.layers,
            "vocab_size": self.vocab,
            "max_position_embeddings": 2048,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "tie_word_embeddings": self.tied_embeddings,
            "torch_dtype": self.torch_dtype(),
            "bos_token_id": 1,
            "eos_token_id": 2
        });
        let obj = c.as_object_mut().expect("object");
        for (k, v) in &self.extra_config {
            obj.insert(k.clone(), v.clone());
        }
        c
    }

    /// Every tensor as (name, shape, f64 values), in the order a checkpoint stores them.
    pub fn tensors(&self) -> Vec<Generated> {
        use rayon::prelude::*;
        let mut rng = Rng::new(self.seed);
        let (h, v) = (self.hidden, self.vocab);
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            vec![v, h],
            gaussian(&mut rng, v * h, 0.02),
        )];
        // Each layer draws from its own seed, so layers can be generated in parallel and the
        // bytes still do not depend on the number of threads.
        let layers: Vec<Vec<Generated>> = (0..self.layers)
            .into_par_iter()
            .map(|l| self.layer_tensors(l))
            .collect();
        out.extend(layers.into_iter().flatten());
        out.push((
            "model.norm.weight".into(),
            vec![h],
            ones_jitter(&mut rng, h),
        ));
        if !self.tied_embeddings {
            out.push((
                "lm_head.weight".into(),
                vec![v, h],
                gaussian(&mut rng, v * h, 0.02),
            ));
        }
        out
    }

    fn layer_tensors(&self, l: usize) -> Vec<Generated> {
        let mut rng = Rng::new(self.seed ^ (l as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
        let (h, kv, ff) = (self.hidden, self.kv_dim(), self.intermediate);
        // (module, rows, cols): cols 0 marks a 1-D norm weight. Checkpoint order; the index is
        // also what varies each matrix's power-law decay.
        let modules = [
            ("input_layernorm", h, 0),
            ("self_attn.q_proj", h, h),
            ("self_attn.k_proj", kv, h),
            ("self_attn.v_proj", kv, h),
            ("self_attn.o_proj", h, h),
            ("post_attention_layernorm", h, 0),
            ("mlp.gate_proj", ff, h),
            ("mlp.up_proj", ff, h),
            ("mlp.down_proj", h, ff),
        ];
        let mut k = 0;
        modules
            .into_iter()
            .map(|(name, rows, cols)| {
                let (shape, data) = if cols == 0 {
                    (vec![rows], ones_jitter(&mut rng, rows))
                } else {
                    // A different decay per layer and module, so the finite SNRs differ.
                    let alpha = 0.6 + 0.1 * ((l * 7 + k * 3) % 9) as f64;
                    k += 1;
                    let data = if name == "self_attn.v_proj" && self.infinite_layers.contains(&l) {
                        clustered_spectrum(&mut rng, rows, cols, 0.05 + 0.01 * l as f64)
                    } else {
                        power_law(&mut rng, rows, cols, alpha)
                    };
                    (vec![rows, cols], data)
                };
                (format!("model.layers.{l}.{name}.weight"), shape, data)
            })
            .collect()
    }
}

/// Name, shape, little-endian bytes.
type Encoded = (String, Vec<usize>, Vec<u8>);

/// Writes the model as an ordinary Hugging Face folder (created if missing).
pub fn write_model(dir: &Path, spec: &ModelSpec) -> io::Result<()> {
    write_model_reporting(dir, spec, &mut |_| {})
}

/// [`write_model`], telling `report` each step as it starts (the demo's first run takes a
/// while on a slow machine).
pub(crate) fn write_model_reporting(
    dir: &Path,
    spec: &ModelSpec,
    report: &mut dyn FnMut(&str),
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    report(&format!(
        "computing {} layers of weights ({} parameters)",
        spec.layers,
        crate::util::bytes::human_count(spec.num_params())
    ));
    let tensors: Vec<Encoded> = spec
        .tensors()
        .into_iter()
        .map(|(n, s, d)| (n, s, encode(spec.dtype, &d)))
        .collect();
    let shards = spec.shards.max(1).min(tensors.len().max(1));
    let total: usize = tensors.iter().map(|t| t.2.len()).sum();
    // Contiguous groups of roughly equal size, like transformers' save_pretrained.
    let per = total.div_ceil(shards);
    let mut groups: Vec<Vec<&Encoded>> = vec![Vec::new()];
    let mut acc = 0;
    for t in &tensors {
        if acc >= per && groups.len() < shards {
            groups.push(Vec::new());
            acc = 0;
        }
        acc += t.2.len();
        groups.last_mut().expect("non-empty").push(t);
    }
    let n = groups.len();
    let mut weight_map = BTreeMap::new();
    for (i, group) in groups.iter().enumerate() {
        let file = if n == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", i + 1, n)
        };
        let views: Vec<(String, TensorView<'_>)> = group
            .iter()
            .map(|(name, shape, bytes)| {
                let view = TensorView::new(spec.dtype, shape.clone(), bytes)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                Ok((name.clone(), view))
            })
            .collect::<io::Result<_>>()?;
        for (name, _) in &views {
            weight_map.insert(name.clone(), file.clone());
        }
        report(&format!("writing {file}"));
        let metadata = Some(std::collections::HashMap::from([(
            "format".to_string(),
            "pt".to_string(),
        )]));
        // Written with fs::write, so the shards get the umask's permissions like every other
        // file (serialize_to_file made them 0600).
        safetensors::serialize(views, metadata)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|bytes| std::fs::write(dir.join(&file), bytes))?;
    }
    if n > 1 {
        let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        write_json(&dir.join("model.safetensors.index.json"), &index)?;
    }
    report("writing config.json and the tokenizer");
    write_json(&dir.join("config.json"), &spec.config())?;
    write_json(
        &dir.join("generation_config.json"),
        &json!({"bos_token_id": 1, "eos_token_id": 2, "do_sample": false}),
    )?;
    let tokenizer = if spec.english_vocab {
        english_tokenizer_json(spec.vocab)
    } else {
        tokenizer_json(spec.vocab)
    };
    write_json(&dir.join("tokenizer.json"), &tokenizer)?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": 2048,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>"
        }),
    )?;
    Ok(())
}

/// A word-level tokenizer with exactly `vocab` entries, so the demo is a complete model that
/// transformers loads and mergekit copies (mergekit fails on a tokenizer config without a
/// tokenizer).
pub fn tokenizer_json(vocab: usize) -> serde_json::Value {
    word_tokenizer_json(vocab, Vec::new())
}

/// [`tokenizer_json`] whose first words are the built-in English sample's, in order of first
/// appearance, split as the tokenizer's `Whitespace` pre-tokenizer splits (`\w+|[^\w\s]+`).
pub fn english_tokenizer_json(vocab: usize) -> serde_json::Value {
    let mut seen = std::collections::HashSet::new();
    let words = whitespace_words(crate::forward::tokens::SAMPLE_TEXT)
        .into_iter()
        .filter(|w| seen.insert(w.clone()))
        .collect();
    word_tokenizer_json(vocab, words)
}

/// Runs of word characters, and runs of other non-space characters.
fn whitespace_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut last_word: Option<bool> = None;
    for c in text.chars() {
        if c.is_whitespace() {
            last_word = None;
            continue;
        }
        let word = c.is_alphanumeric() || c == '_';
        match out.last_mut() {
            Some(w) if last_word == Some(word) => w.push(c),
            _ => out.push(c.to_string()),
        }
        last_word = Some(word);
    }
    out
}

fn word_tokenizer_json(vocab: usize, first: Vec<String>) -> serde_json::Value {
    let specials = ["<unk>", "<s>", "</s>"];
    let mut words = serde_json::Map::new();
    for (i, w) in specials.iter().enumerate() {
        words.insert(w.to_string(), i.into());
    }
    for w in first {
        let i = words.len();
        if i == vocab {
            break;
        }
        words.insert(w, i.into());
    }
    for i in words.len()..vocab {
        words.insert(format!("t{i}"), i.into());
    }
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(id, content)| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": words, "unk_token": "<unk>"}
    })
}

/// Where the built-in demo lives: written once per version into the user's cache folder.
pub fn demo_dir() -> io::Result<PathBuf> {
    demo_dir_reporting(&mut |_| {})
}

/// [`demo_dir`], telling `report` what it does when it has to write the demo first.
pub fn demo_dir_reporting(report: &mut dyn FnMut(&str)) -> io::Result<PathBuf> {
    // Beside the scan cache, wherever it is (SNRSCOPE_CACHE_DIR included).
    let root = crate::spectrum::cache::default_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("snrscope"));
    let dir = root.join("demo-model-v3");
    if !dir.join("config.json").is_file() {
        // Written under a temporary name first so an interrupted write is never mistaken for a
        // complete demo.
        let tmp = root.join(format!(".demo-tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        report(&format!(
            "writing the demo model once into {} (it is reused from there)",
            dir.display()
        ));
        write_model_reporting(&tmp, &ModelSpec::demo(), report)?;
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.join("config.json").is_file() {
                return Err(e);
            }
        }
    }
    Ok(dir)
}

pub fn write_json(path: &Path, v: &serde_json::Value) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(v).map_err(io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

/// Little-endian bytes of `data` in `dtype` (F64, F32, F16, BF16).
pub fn encode(dtype: Dtype, data: &[f64]) -> Vec<u8> {
    match dtype {
        Dtype::F64 => data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => data
            .iter()
            .flat_map(|&x| half::f16::from_f64(x).to_le_bytes())
            .collect(),
        Dtype::BF16 => data
            .iter()
            .flat_map(|&x| half::bf16::from_f64(x).to_le_bytes())
            .collect(),
        _ => data
            .iter()
            .flat_map(|&x| (x as f32).to_le_bytes())
            .collect(),
    }
}

/// SplitMix64: tiny, and its output never changes between crate versions, so the demo model is
/// the same bytes on every machine and release.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

pub fn gaussian(rng: &mut Rng, n: usize, std: f64) -> Vec<f64> {
    (0..n).map(|_| rng.normal() * std).collect()
}

pub fn ones_jitter(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| 1.0 + 0.05 * rng.normal()).collect()
}

/// `U diag(s) Vᵀ` with `s_i = (i + 1)^-alpha`, plus faint noise.
pub fn power_law(rng: &mut Rng, rows: usize, cols: usize, alpha: f64) -> Vec<f64> {
    let k = rows.min(cols);
    let s: Vec<f64> = (0..k).map(|i| ((i + 1) as f64).powf(-alpha)).collect();
    let mut w = with_spectrum(rng, rows, cols, &s);
    w.iter_mut().for_each(|x| *x += 1e-4 * rng.normal());
    w
}

/// `U diag(s) Vᵀ` with singular values spread evenly over `[scale, 1.5 scale]`: the IQR is a
/// quarter of the smallest value, far too small for any value to count as noise.
pub fn clustered_spectrum(rng: &mut Rng, rows: usize, cols: usize, scale: f64) -> Vec<f64> {
    let k = rows.min(cols);
    let s: Vec<f64> = (0..k)
        .map(|i| scale * (1.0 + 0.5 * (k - 1 - i) as f64 / (k.max(2) - 1) as f64))
        .collect();
    with_spectrum(rng, rows, cols, &s)
}

/// A row-major `rows x cols` matrix with exactly the singular values `s` (before rounding).
pub fn with_spectrum(rng: &mut Rng, rows: usize, cols: usize, s: &[f64]) -> Vec<f64> {
    let k = s.len();
    let u = orthonormal_columns(rng, rows, k);
    let v = orthonormal_columns(rng, cols, k);
    let us = Mat::from_fn(rows, k, |i, c| u[(i, c)] * s[c]);
    let w = &us * v.transpose();
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        out.extend((0..cols).map(|j| w[(i, j)]));
    }
    out
}

/// `k` orthonormal columns of length `n`: the Q factor of a Gaussian matrix, which is uniformly
/// distributed (up to signs) over such frames.
fn orthonormal_columns(rng: &mut Rng, n: usize, k: usize) -> Mat<f64> {
    let g = Mat::from_fn(n, k, |_, _| rng.normal());
    g.qr().compute_thin_Q()
}
