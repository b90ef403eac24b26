//! The value projection inside fused attention weights (Phi-3 `qkv_proj`, GPT-2 `c_attn`,
//! GPT-NeoX / Bloom / Falcon `query_key_value`, MPT / DBRX `Wqkv`, ...).
//!
//! Such models have no `v_proj` tensor: the V weights are some of the rows (or, for GPT-2's
//! Conv1D, columns) of one fused tensor, placed as the architecture's attention code splits its
//! output. For each fused tensor this module derives a module type named after where it comes
//! from, e.g. `self_attn.v_proj ⊂ qkv_proj`, whose matrix is exactly the V part; the whole
//! fused tensor stays available as its own module type.
//!
//! Every layout below was read from transformers 5's modeling code (the function that splits
//! the fused output into q, k and v) and is proven in the tests by zeroing the slice (the
//! attention output then no longer depends on the values). The layout is derived from
//! config.json only; a config that lacks a field the layout depends on refuses the derived
//! module with a message naming the field — never a guess from defaults.

#![allow(clippy::single_range_in_vec_init)] // one range is the usual V part

use serde_json::Value;

use super::{
    layers::{LayerLayout, Stack},
    slice::{Axis, Derived, SUBSET_MARK, TensorSlice},
};

/// How an architecture's attention splits the fused projection's output into q, k and v.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `nn.Linear` rows `[Q (q rows); K (kv rows); V (kv rows)]` (Phi-3, MPT, DBRX, GPT-BigCode
    /// and Falcon multi-query).
    Concatenated { q: usize, kv: usize, hidden: usize },
    /// GPT-2's `Conv1D`: stored transposed (`hidden x 3·hidden`), columns `[Q | K | V]`.
    Conv1dColumns { hidden: usize },
    /// Rows interleaved per head `[q_h; k_h; v_h]` (GPT-NeoX, Bloom, Persimmon, Falcon without
    /// multi-query, GPT-BigCode without multi-query).
    PerHead {
        heads: usize,
        head_dim: usize,
        hidden: usize,
    },
    /// Rows grouped per KV head `[q × G; k; v]`, G = heads / kv_heads (Falcon's new decoder
    /// architecture).
    PerKvGroup {
        kv_heads: usize,
        group: usize,
        head_dim: usize,
        hidden: usize,
    },
}

impl Layout {
    /// The stored shape the fused tensor must have.
    pub(crate) fn stored_shape(&self) -> (usize, usize) {
        match *self {
            Layout::Concatenated { q, kv, hidden } => (q + 2 * kv, hidden),
            Layout::Conv1dColumns { hidden } => (hidden, 3 * hidden),
            Layout::PerHead {
                heads,
                head_dim,
                hidden,
            } => (3 * heads * head_dim, hidden),
            Layout::PerKvGroup {
                kv_heads,
                group,
                head_dim,
                hidden,
            } => (kv_heads * (group + 2) * head_dim, hidden),
        }
    }

    /// Where V sits in the stored tensor.
    pub(crate) fn v_slice(&self) -> TensorSlice {
        match *self {
            Layout::Concatenated { q, kv, .. } => TensorSlice {
                axis: Axis::Rows,
                ranges: vec![q + kv..q + 2 * kv],
            },
            Layout::Conv1dColumns { hidden } => TensorSlice {
                axis: Axis::Cols,
                ranges: vec![2 * hidden..3 * hidden],
            },
            Layout::PerHead {
                heads, head_dim, ..
            } => TensorSlice {
                axis: Axis::Rows,
                ranges: (0..heads)
                    .map(|h| (3 * h + 2) * head_dim..(3 * h + 3) * head_dim)
                    .collect(),
            },
            Layout::PerKvGroup {
                kv_heads,
                group,
                head_dim,
                ..
            } => TensorSlice {
                axis: Axis::Rows,
                ranges: (0..kv_heads)
                    .map(|g| {
                        let v = g * (group + 2) + group + 1;
                        v * head_dim..(v + 1) * head_dim
                    })
                    .collect(),
            },
        }
    }

    /// One line for messages and the README: "rows [96, 128) of [Q; K; V]".
    pub fn describe(&self) -> String {
        match *self {
            Layout::Concatenated { q, kv, .. } => {
                format!("rows [{}, {}) of [Q; K; V]", q + kv, q + 2 * kv)
            }
            Layout::Conv1dColumns { hidden } => {
                format!(
                    "columns [{}, {}) of Conv1D [Q | K | V]",
                    2 * hidden,
                    3 * hidden
                )
            }
            Layout::PerHead {
                heads, head_dim, ..
            } => format!("the v rows of each of {heads} [q; k; v] head blocks of {head_dim}"),
            Layout::PerKvGroup {
                kv_heads, group, ..
            } => format!("the v rows of each of {kv_heads} [{group}×q; k; v] KV-head groups"),
        }
    }
}

/// A fused attention projection snrscope knows, as it appears in a layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownArchitecture {
    /// config.json's `model_type`.
    pub model_type: &'static str,
    /// Human name for messages and the README.
    pub name: &'static str,
    /// The fused tensor's module type (tensor name after the layer number, without
    /// `.weight`).
    pub fused: &'static str,
    layout: fn(&Value) -> Result<Layout, String>,
}

/// Every fused layout snrscope derives V for, by `model_type`.
pub(crate) const KNOWN: &[KnownArchitecture] = &[
    KnownArchitecture {
        model_type: "phi3",
        name: "Phi-3 / Phi-3.5 / Phi-4-mini",
        fused: "self_attn.qkv_proj",
        layout: phi3,
    },
    KnownArchitecture {
        model_type: "gpt2",
        name: "GPT-2",
        fused: "attn.c_attn",
        layout: gpt2,
    },
    KnownArchitecture {
        model_type: "gpt_neox",
        name: "GPT-NeoX / Pythia",
        fused: "attention.query_key_value",
        layout: per_head_std,
    },
    KnownArchitecture {
        model_type: "bloom",
        name: "Bloom",
        fused: "self_attention.query_key_value",
        layout: bloom,
    },
    KnownArchitecture {
        model_type: "persimmon",
        name: "Persimmon",
        fused: "self_attn.query_key_value",
        layout: per_head_std,
    },
    KnownArchitecture {
        model_type: "falcon",
        name: "Falcon",
        fused: "self_attention.query_key_value",
        layout: falcon,
    },
    KnownArchitecture {
        model_type: "mpt",
        name: "MPT",
        fused: "attn.Wqkv",
        layout: mpt,
    },
    KnownArchitecture {
        model_type: "dbrx",
        name: "DBRX",
        fused: "norm_attn_norm.attn.Wqkv",
        layout: dbrx,
    },
    KnownArchitecture {
        model_type: "gpt_bigcode",
        name: "GPT-BigCode / StarCoder 1",
        fused: "attn.c_attn",
        layout: gpt_bigcode,
    },
];

/// Module types that look like fused q/k/v projections (for architectures snrscope does not
/// know: their V part is refused rather than guessed).
pub(crate) fn looks_fused(module_type: &str) -> bool {
    let leaf = module_type.rsplit('.').next().unwrap_or(module_type);
    let l = leaf.to_ascii_lowercase();
    l.contains("qkv") || l == "query_key_value" || l == "c_attn" || l == "in_proj"
}

/// `self_attn.qkv_proj` -> `self_attn.v_proj ⊂ qkv_proj`.
pub(crate) fn derived_name(fused_type: &str) -> String {
    let (parent, leaf) = match fused_type.rsplit_once('.') {
        Some((p, l)) => (format!("{p}."), l),
        None => (String::new(), fused_type),
    };
    format!("{parent}v_proj{SUBSET_MARK}{leaf}")
}

/// `self_attn.v_proj ⊂ qkv_proj` -> `self_attn.qkv_proj`; `None` for an ordinary module type.
pub fn fused_of(derived: &str) -> Option<String> {
    let (head, leaf) = derived.split_once(SUBSET_MARK)?;
    let parent = head.strip_suffix("v_proj")?;
    Some(format!("{parent}{leaf}"))
}

/// The supported architectures, for messages: "phi3 (Phi-3 …), gpt2 (GPT-2), …".
pub(crate) fn supported_list() -> String {
    KNOWN
        .iter()
        .map(|k| format!("{} ({})", k.model_type, k.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The config object the text model's fields live in (top level, or `text_config`).
fn model_type_of(config: &Value) -> Option<&str> {
    config.get("model_type").and_then(Value::as_str)
}

/// Adds a derived V module for every fused projection of `layout`'s stacks. Returns warnings
/// (one per refused derived module, naming the missing field or unknown architecture).
pub fn derive(
    config: Option<&Value>,
    layout: &mut LayerLayout,
    shape_of: &dyn Fn(&str) -> Option<Vec<usize>>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for stack in &mut layout.stacks {
        let fused: Vec<String> = stack
            .modules
            .keys()
            .filter(|k| looks_fused(k))
            .cloned()
            .collect();
        // Only where the stack has no separate value projection (a model with both is not
        // fused; its `v_proj` is the value projection).
        if fused.is_empty() || has_value_projection(stack) {
            continue;
        }
        for fused_type in fused {
            let slice = slice_for(config, &fused_type, stack, shape_of);
            if let Err(e) = &slice {
                warnings.push(format!(
                    "`{}.N.{}`: {e}",
                    stack.prefix,
                    derived_name(&fused_type)
                ));
            }
            add_derived(stack, &fused_type, slice);
        }
    }
    warnings
}

fn has_value_projection(stack: &Stack) -> bool {
    stack.modules.keys().any(|k| {
        let leaf = k.rsplit('.').next().unwrap_or(k);
        matches!(leaf, "v_proj" | "value" | "wv" | "v")
    })
}

fn add_derived(stack: &mut Stack, fused_type: &str, slice: Result<TensorSlice, String>) {
    let name = derived_name(fused_type);
    let by_layer = stack.modules.get(fused_type).cloned().unwrap_or_default();
    stack.modules.insert(name.clone(), by_layer);
    stack.derived.insert(
        name,
        Derived {
            fused_type: fused_type.to_string(),
            slice,
        },
    );
}

/// The V slice of `fused_type` per the config, checked against the tensors' shape.
fn slice_for(
    config: Option<&Value>,
    fused_type: &str,
    stack: &Stack,
    shape_of: &dyn Fn(&str) -> Option<Vec<usize>>,
) -> Result<TensorSlice, String> {
    let Some(config) = config else {
        return Err(format!(
            "no config.json beside the weights: the V part of the fused `{fused_type}` \
             depends on the head counts it declares; scan the whole tensor with --modules \
             '{}'",
            regex_escape(fused_type)
        ));
    };
    let model_type = model_type_of(config).unwrap_or("");
    let known = KNOWN
        .iter()
        .find(|k| k.model_type == model_type && k.fused == fused_type)
        .ok_or_else(|| {
            let what = if model_type.is_empty() {
                "config.json has no \"model_type\"".to_string()
            } else {
                format!("architecture {model_type:?} is not one whose fused layout snrscope knows")
            };
            format!(
                "{what}, so where V sits inside `{fused_type}` is unknown (refusing to guess). \
                 Supported fused layouts: {}. You can still scan the whole fused tensor \
                 (--modules '{}') or any weight by name with --modules REGEX",
                supported_list(),
                regex_escape(fused_type)
            )
        })?;
    let layout = (known.layout)(config).map_err(|e| {
        format!(
            "config.json: {e}; the V part of {}'s `{fused_type}` cannot be derived without it",
            known.name
        )
    })?;
    let (rows, cols) = layout.stored_shape();
    let tensors = stack
        .modules
        .get(fused_type)
        .into_iter()
        .flat_map(|m| m.values());
    for name in tensors {
        let shape = shape_of(name).unwrap_or_default();
        if shape != [rows, cols] {
            return Err(format!(
                "config.json describes a {rows}x{cols} `{fused_type}` ({}) but {name} is \
                 {shape:?}; refusing to guess where V sits",
                layout.describe()
            ));
        }
    }
    Ok(layout.v_slice())
}

fn regex_escape(s: &str) -> String {
    regex::escape(s)
}

fn field<'a>(config: &'a Value, keys: &[&str]) -> Result<&'a Value, String> {
    keys.iter()
        .find_map(|k| config.get(*k).filter(|v| !v.is_null()))
        .ok_or_else(|| {
            let names = keys
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(" or ");
            format!("missing field {names}")
        })
}

fn count(config: &Value, keys: &[&str]) -> Result<usize, String> {
    let v = field(config, keys)?;
    v.as_u64()
        .filter(|&n| n > 0 && n < 1 << 24)
        .map(|n| n as usize)
        .ok_or_else(|| format!("\"{}\" is {v}, not a positive count", keys[0]))
}

fn flag(config: &Value, key: &str) -> Result<bool, String> {
    let v = field(config, &[key])?;
    v.as_bool()
        .ok_or_else(|| format!("\"{key}\" is {v}, not true or false"))
}

fn divide(hidden: usize, heads: usize, hidden_key: &str, heads_key: &str) -> Result<usize, String> {
    if !hidden.is_multiple_of(heads) {
        return Err(format!(
            "\"{hidden_key}\" ({hidden}) is not a multiple of \"{heads_key}\" ({heads})"
        ));
    }
    Ok(hidden / heads)
}

/// modeling_phi3.py, Phi3Attention: `head_dim = getattr(config, "head_dim", hidden_size //
/// num_attention_heads)`; `qkv[..., :H·hd]`, `[H·hd : H·hd + KV·hd]`, `[H·hd + KV·hd :]`.
fn phi3(c: &Value) -> Result<Layout, String> {
    let hidden = count(c, &["hidden_size"])?;
    let heads = count(c, &["num_attention_heads"])?;
    let kv = count(c, &["num_key_value_heads"])?;
    let hd = match c.get("head_dim").filter(|v| !v.is_null()) {
        Some(_) => count(c, &["head_dim"])?,
        None => divide(hidden, heads, "hidden_size", "num_attention_heads")?,
    };
    Ok(Layout::Concatenated {
        q: heads * hd,
        kv: kv * hd,
        hidden,
    })
}

/// modeling_gpt2.py, GPT2Attention: `c_attn = Conv1D(3 * embed_dim, embed_dim)` (weight stored
/// `embed_dim x 3·embed_dim`, `y = x @ W`); `c_attn(h).split(embed_dim, dim=2)` -> q, k, v.
fn gpt2(c: &Value) -> Result<Layout, String> {
    let hidden = count(c, &["n_embd", "hidden_size"])?;
    count(c, &["n_head", "num_attention_heads"])?;
    Ok(Layout::Conv1dColumns { hidden })
}

/// modeling_gpt_neox.py / modeling_persimmon.py: `view(..., heads, 3 * head_size)` then
/// `chunk(3)`: per head `[q; k; v]`, head_size = hidden_size // num_attention_heads.
fn per_head_std(c: &Value) -> Result<Layout, String> {
    let hidden = count(c, &["hidden_size"])?;
    let heads = count(c, &["num_attention_heads"])?;
    let head_dim = divide(hidden, heads, "hidden_size", "num_attention_heads")?;
    Ok(Layout::PerHead {
        heads,
        head_dim,
        hidden,
    })
}

/// modeling_bloom.py, BloomAttention._reshape: `view(batch, seq, num_heads, 3, head_dim)`.
fn bloom(c: &Value) -> Result<Layout, String> {
    let hidden = count(c, &["hidden_size", "n_embed"])?;
    let heads = count(c, &["n_head", "num_attention_heads"])?;
    let head_dim = divide(hidden, heads, "hidden_size", "n_head")?;
    Ok(Layout::PerHead {
        heads,
        head_dim,
        hidden,
    })
}

/// modeling_falcon.py, FalconAttention._split_heads: new decoder architecture
/// `view(..., -1, num_heads // num_kv_heads + 2, head_dim)` with q = `[:, :, :, :-2]`,
/// k = `[-2]`, v = `[-1]`; otherwise multi-query `view(..., num_heads + 2, head_dim)` (q heads,
/// then one k, one v), else `view(..., num_heads, 3, head_dim)`.
fn falcon(c: &Value) -> Result<Layout, String> {
    let hidden = count(c, &["hidden_size", "n_embed"])?;
    let heads = count(c, &["num_attention_heads", "n_head"])?;
    let head_dim = divide(hidden, heads, "hidden_size", "num_attention_heads")?;
    if flag(c, "new_decoder_architecture")? {
        let kv_heads = count(c, &["num_kv_heads"])?;
        if !heads.is_multiple_of(kv_heads) {
            return Err(format!(
                "\"num_attention_heads\" ({heads}) is not a multiple of \"num_kv_heads\" \
                 ({kv_heads})"
            ));
        }
        return Ok(Layout::PerKvGroup {
            kv_heads,
            group: heads / kv_heads,
            head_dim,
            hidden,
        });
    }
    if flag(c, "multi_query")? {
        return Ok(Layout::Concatenated {
            q: hidden,
            kv: head_dim,
            hidden,
        });
    }
    Ok(Layout::PerHead {
        heads,
        head_dim,
        hidden,
    })
}

/// modeling_mpt.py, MptAttention: `Wqkv = Linear(hidden, 3 * hidden)`; `chunk(3, dim=2)`.
fn mpt(c: &Value) -> Result<Layout, String> {
    let hidden = count(c, &["d_model", "hidden_size"])?;
    count(c, &["n_heads", "num_attention_heads"])?;
    Ok(Layout::Concatenated {
        q: hidden,
        kv: hidden,
        hidden,
    })
}

/// modeling_dbrx.py, DbrxAttention: `split([hidden, kv_n_heads·hd, kv_n_heads·hd])`,
/// hd = d_model // n_heads.
fn dbrx(c: &Value) -> Result<Layout, String> {
    let hidden = count(c, &["d_model", "hidden_size"])?;
    let heads = count(c, &["n_heads", "num_attention_heads"])?;
    let hd = divide(hidden, heads, "d_model", "n_heads")?;
    let attn = c
        .get("attn_config")
        .ok_or_else(|| "missing field \"attn_config\"".to_string())?;
    let kv = count(attn, &["kv_n_heads"]).map_err(|e| format!("attn_config: {e}"))?;
    Ok(Layout::Concatenated {
        q: hidden,
        kv: kv * hd,
        hidden,
    })
}

/// modeling_gpt_bigcode.py, GPTBigCodeAttention: an `nn.Linear` (not Conv1D); multi-query
/// `split((embed_dim, kv_dim, kv_dim))` with kv_dim = head_dim, else
/// `view(..., num_heads, 3 * head_dim)` then `split(3 * [head_dim])`.
fn gpt_bigcode(c: &Value) -> Result<Layout, String> {
    let hidden = count(c, &["n_embd", "hidden_size"])?;
    let heads = count(c, &["n_head", "num_attention_heads"])?;
    let head_dim = divide(hidden, heads, "n_embd", "n_head")?;
    if flag(c, "multi_query")? {
        Ok(Layout::Concatenated {
            q: hidden,
            kv: head_dim,
            hidden,
        })
    } else {
        Ok(Layout::PerHead {
            heads,
            head_dim,
            hidden,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert_eq!(
            derived_name("self_attn.qkv_proj"),
            "self_attn.v_proj ⊂ qkv_proj"
        );
        assert_eq!(derived_name("attn.c_attn"), "attn.v_proj ⊂ c_attn");
        assert_eq!(
            fused_of("norm_attn_norm.attn.v_proj ⊂ Wqkv").as_deref(),
            Some("norm_attn_norm.attn.Wqkv")
        );
        assert_eq!(fused_of("self_attn.v_proj"), None);
        assert!(looks_fused("attention.query_key_value"));
        assert!(looks_fused("attn.Wqkv"));
        assert!(!looks_fused("self_attn.v_proj"));
    }

    #[test]
    fn slices_of_each_layout() {
        // Hand-computed for heads 4, kv heads 2, head dim 16, hidden 64.
        let s = phi3(&json!({"hidden_size": 64, "num_attention_heads": 4,
                             "num_key_value_heads": 2}))
        .unwrap()
        .v_slice();
        assert_eq!(s.ranges, vec![96..128]);
        let s = per_head_std(&json!({"hidden_size": 64, "num_attention_heads": 4}))
            .unwrap()
            .v_slice();
        assert_eq!(s.ranges, vec![32..48, 80..96, 128..144, 176..192]);
        let s = falcon(
            &json!({"hidden_size": 64, "num_attention_heads": 4, "num_kv_heads": 2,
                               "new_decoder_architecture": true}),
        )
        .unwrap()
        .v_slice();
        // Groups of [q q k v] x 16 rows: v at rows 48..64 and 112..128.
        assert_eq!(s.ranges, vec![48..64, 112..128]);
        let s = gpt2(&json!({"n_embd": 64, "n_head": 4})).unwrap().v_slice();
        assert_eq!((s.axis, s.ranges), (Axis::Cols, vec![128..192]));
    }

    #[test]
    fn missing_fields_are_named() {
        let e = falcon(&json!({"hidden_size": 64, "num_attention_heads": 4})).unwrap_err();
        assert!(e.contains("\"new_decoder_architecture\""), "{e}");
        let e = phi3(&json!({"hidden_size": 64, "num_attention_heads": 4})).unwrap_err();
        assert!(e.contains("\"num_key_value_heads\""), "{e}");
        let e = dbrx(&json!({"d_model": 64, "n_heads": 4, "attn_config": {}})).unwrap_err();
        assert!(e.contains("kv_n_heads"), "{e}");
    }

    #[test]
    fn extract_rows_and_columns() {
        let data: Vec<f64> = (0..12).map(f64::from).collect(); // 3 x 4
        let rows = TensorSlice {
            axis: Axis::Rows,
            ranges: vec![2..3, 0..1],
        };
        assert_eq!(
            rows.extract(&data, 3, 4),
            [8., 9., 10., 11., 0., 1., 2., 3.]
        );
        let cols = TensorSlice {
            axis: Axis::Cols,
            ranges: vec![1..3],
        };
        assert_eq!(cols.extract(&data, 3, 4), [1., 2., 5., 6., 9., 10.]);
        assert_eq!(cols.shape(3, 4), (3, 2));
    }
}
