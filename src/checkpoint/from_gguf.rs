//! A GGUF file (or split set, or a folder holding one) opened as a [`Model`]: the same lazy
//! opening (only the header is read), its tensors listed under their **Hugging Face names and
//! shapes** — `blk.3.attn_v.weight` is `model.layers.3.self_attn.v_proj.weight`, a 1024×4096
//! matrix — so layer discovery, the seed's rule, `--modules`, the fused-V layout, scans, the
//! scan cache, plans and the forward pass work on it as on a safetensors model. Each tensor is
//! a byte range of its part file with its own type (quantized types are `Dtype::Ggml`, read
//! through the dequantizers). Expert tensors (3-D, `ffn_*_exps`) are listed as one matrix per
//! expert (`...experts.E...`), each a byte range of the stacked tensor.
//!
//! What the name change hides is kept in [`GgufSide`]: the file itself (for the pruned GGUF
//! and the tokenizer), each tensor's GGUF name (for messages and scan-file keys), and what
//! the converter did to the values that the forward pass must undo ([`Fixup`]).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::{
    Dtype, Model, OpenError, Shard, TensorEntry, WeightFormat,
    gguf::{
        GgmlType, GgufModel, hf_config,
        names::{self, Attention, QkPermutation},
    },
};

/// What the converter did to a tensor's values, undone when the forward pass reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fixup {
    /// llama's Q/K rows reordered inside each head ([`QkPermutation`]).
    Permuted(QkPermutation),
    /// Gemma's norms stored as `1 + w`.
    PlusOne,
}

/// The GGUF behind a [`Model`] opened from one.
#[derive(Debug)]
pub struct GgufSide {
    pub file: GgufModel,
    /// `general.architecture`.
    pub arch: String,
    /// Hugging Face tensor name → (GGUF tensor name, expert index of a stacked tensor).
    gguf_names: HashMap<String, (String, Option<usize>)>,
    /// GGUF module (scan-file key, `blk.3.attn_v`) → Hugging Face module.
    hf_modules: HashMap<String, String>,
    fixups: HashMap<String, Fixup>,
}

impl GgufSide {
    /// The GGUF name of a tensor listed under `hf_name`, with `.E` for expert E of a stacked
    /// tensor (`blk.2.ffn_gate_exps.weight.3`).
    pub fn gguf_name(&self, hf_name: &str) -> Option<String> {
        let (name, expert) = self.gguf_names.get(hf_name)?;
        Some(match expert {
            Some(e) => format!("{name}.{e}"),
            None => name.clone(),
        })
    }

    /// The GGUF module of a Hugging Face module (a tensor name without `.weight`): the key a
    /// scan file gives it, e.g. `model.layers.3.self_attn.v_proj` → `blk.3.attn_v`, expert 5
    /// of a stacked tensor → `blk.3.ffn_gate_exps.5`. A derived module (the V part of a fused
    /// tensor) keeps its mark: `blk.3.attn_v ⊂ attn_qkv`.
    pub fn gguf_module(&self, hf_module: &str) -> Option<String> {
        use super::slice::SUBSET_MARK;
        if let Some(fused) = super::fused::fused_of(hf_module) {
            let whole = self.gguf_module(&fused)?;
            let (base, leaf) = whole.rsplit_once('.')?;
            return Some(format!("{base}.attn_v{SUBSET_MARK}{leaf}"));
        }
        let (name, expert) = self.gguf_names.get(&format!("{hf_module}.weight"))?;
        let base = name.strip_suffix(".weight")?;
        Some(match expert {
            Some(e) => format!("{base}.{e}"),
            None => base.to_string(),
        })
    }

    /// The Hugging Face module of a GGUF module (the inverse of [`GgufSide::gguf_module`]),
    /// for reading a scan file written with GGUF keys against the model.
    pub fn hf_module(&self, gguf_module: &str) -> Option<String> {
        use super::slice::SUBSET_MARK;
        if let Some((head, leaf)) = gguf_module.split_once(SUBSET_MARK) {
            let base = head.strip_suffix("attn_v")?;
            let whole = self.hf_modules.get(&format!("{base}{leaf}"))?;
            let (parent, fused_leaf) = whole.rsplit_once('.')?;
            return Some(format!("{parent}.v_proj{SUBSET_MARK}{fused_leaf}"));
        }
        self.hf_modules.get(gguf_module).cloned()
    }

    pub fn fixup(&self, hf_name: &str) -> Option<Fixup> {
        self.fixups.get(hf_name).copied()
    }
}

/// Whether `path` names a GGUF file (by its extension).
pub(crate) fn is_gguf_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// Whether a folder holds a `.gguf` file (and so may be a GGUF model's folder).
pub(crate) fn holds_gguf(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let p = e.path();
            is_gguf_name(&p) && !e.file_name().to_string_lossy().starts_with('.')
        })
    })
}

/// The plain types are the same little-endian bytes as safetensors'.
fn dtype_of(t: GgmlType) -> Dtype {
    use safetensors::Dtype as S;
    Dtype::Plain(match t.0 {
        0 => S::F32,
        1 => S::F16,
        24 => S::I8,
        25 => S::I16,
        26 => S::I32,
        27 => S::I64,
        28 => S::F64,
        30 => S::BF16,
        _ => return Dtype::Ggml(t),
    })
}

/// The Hugging Face name a GGUF tensor is listed under: its counterpart where llama.cpp's
/// converter has one, else `model.layers.N.MODULE` for a layer's tensor (so the layer keeps
/// all its tensors in one stack), else the GGUF name.
fn listed_name(arch: &str, gguf_name: &str) -> String {
    if let Some(hf) = names::hf_name(arch, gguf_name) {
        return hf;
    }
    match names::layer_of(gguf_name) {
        Some((n, rest)) => format!("model.layers.{n}.{rest}"),
        None => gguf_name.to_string(),
    }
}

/// A tensor as listed: its name, shape, byte range, and expert index in a stacked tensor.
type Listed = (String, Vec<usize>, std::ops::Range<usize>, Option<usize>);

/// Opens `path` (a `.gguf` file, a split part, or a folder holding one model) as a [`Model`].
pub(crate) fn open(path: &Path) -> Result<Model, OpenError> {
    let file = GgufModel::open(path)?;
    let arch = file.arch().unwrap_or_default().to_string();
    let (config, mut warnings) = hf_config(&file);
    let mut shards = Vec::with_capacity(file.parts.len());
    for part in &file.parts {
        let handle = part.file.try_clone().map_err(|e| OpenError::Io {
            path: part.path.clone(),
            source: e,
        })?;
        shards.push(Shard {
            path: part.path.clone(),
            file_name: part
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file: handle,
            len: part.file_len,
            metadata: None,
        });
    }
    let gemma = arch.starts_with("gemma");
    let mut tensors = Vec::new();
    let mut gguf_names = HashMap::new();
    let mut fixups = HashMap::new();
    let mut attention: HashMap<usize, Option<Attention>> = HashMap::new();
    for t in file.tensors() {
        let shard = file
            .parts
            .iter()
            .position(|p| std::ptr::eq(p, t.part))
            .expect("a tensor lives in one of the model's parts");
        let gguf_name = t.info.name.clone();
        let hf = listed_name(&arch, &gguf_name);
        let range = t.byte_range();
        let (start, end) = (range.start as usize, range.end as usize);
        let shape: Vec<usize> = t.info.shape().iter().map(|&d| d as usize).collect();
        let dtype = dtype_of(t.info.ggml_type);
        let mut entries: Vec<Listed> = Vec::new();
        if hf.contains("{E}") && shape.len() == 3 {
            let per = (end - start) / shape[0].max(1);
            for e in 0..shape[0] {
                entries.push((
                    hf.replace("{E}", &e.to_string()),
                    shape[1..].to_vec(),
                    start + e * per..start + (e + 1) * per,
                    Some(e),
                ));
            }
        } else {
            // A stacked tensor of an unexpected shape keeps its GGUF module name.
            let name = if hf.contains("{E}") {
                match names::layer_of(&gguf_name) {
                    Some((n, rest)) => format!("model.layers.{n}.{rest}"),
                    None => gguf_name.clone(),
                }
            } else {
                hf
            };
            entries.push((name, shape, start..end, None));
        }
        // What the converter did to the values.
        let module = names::layer_of(&gguf_name).map(|(n, rest)| {
            let m = rest.rsplit_once('.').map_or(rest, |(m, _)| m);
            (n, m)
        });
        let fixup = match module {
            Some((n, m)) if names::is_permuted(&arch, m) => {
                let a = *attention
                    .entry(n)
                    .or_insert_with(|| Attention::of(&file, n).ok());
                match a {
                    Some(a) => Some(Fixup::Permuted(a.permutation(m == "attn_k"))),
                    None => {
                        warnings.push(format!(
                            "{}: its attention metadata are incomplete, so the row order of \
                             {} cannot be undone; perplexity is refused",
                            file.main().path.display(),
                            crate::util::text::escape_controls(&gguf_name)
                        ));
                        None
                    }
                }
            }
            _ if gemma && gguf_name.ends_with("norm.weight") => Some(Fixup::PlusOne),
            _ => None,
        };
        for (name, shape, range, expert) in entries {
            if let Some(f) = fixup {
                fixups.insert(name.clone(), f);
            }
            if gguf_names
                .insert(name.clone(), (gguf_name.clone(), expert))
                .is_some()
            {
                return Err(OpenError::Gguf(super::gguf::GgufError::Layout {
                    path: t.part.path.clone(),
                    problem: format!(
                        "two tensors are both {name} in Hugging Face's naming; snrscope cannot \
                         tell them apart"
                    ),
                }));
            }
            tensors.push(TensorEntry {
                name,
                dtype,
                shape,
                shard,
                range,
            });
        }
    }
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    };
    let mut side = GgufSide {
        file,
        arch,
        gguf_names,
        hf_modules: HashMap::new(),
        fixups,
    };
    side.hf_modules = side
        .gguf_names
        .keys()
        .filter_map(|hf| {
            let module = hf.strip_suffix(".weight")?;
            Some((side.gguf_module(module)?, module.to_string()))
        })
        .collect();
    Ok(Model::assemble(
        path.to_path_buf(),
        dir,
        Some(config),
        None,
        None,
        WeightFormat::Gguf,
        shards,
        tensors,
        warnings,
        Some(Box::new(side)),
    ))
}

/// A GGUF model's display name: its file name without `.gguf` (and without the split suffix).
pub(crate) fn display_name(side: &GgufSide) -> String {
    let p: PathBuf = side.file.main().path.clone();
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once("-of-") {
        Some((rest, n)) if n.len() == 5 && n.bytes().all(|b| b.is_ascii_digit()) => rest
            .rsplit_once('-')
            .map_or(stem.clone(), |(s, _)| s.to_string()),
        _ => stem,
    }
}
