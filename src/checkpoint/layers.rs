//! Finding the numbered layer stacks in a list of tensor names, for any architecture
//! (`model.layers.N.`, `encoder.layer.N.`, `transformer.h.N.`, `h.N.`, ...).

use super::slice::{Derived, SUBSET_MARK};
use std::collections::BTreeMap;

/// A tensor name split at its first numeric path component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerName<'a> {
    /// Everything before the layer number, e.g. `model.layers`.
    pub stack: &'a str,
    pub index: usize,
    /// Everything after it, e.g. `self_attn.v_proj.weight`.
    pub rest: &'a str,
}

/// Layer numbers above this are not layers: no model has a hundred thousand, and names (from
/// headers and scan files anyone can write) must not size the per-layer tables.
pub(crate) const MAX_LAYER_INDEX: usize = 99_999;

/// Splits `model.layers.12.self_attn.v_proj.weight` into (`model.layers`, 12,
/// `self_attn.v_proj.weight`). The *first* numeric component is the layer: in
/// `model.layers.0.mlp.experts.3.down_proj.weight` the expert number belongs to the module.
pub fn parse_layer_name(name: &str) -> Option<LayerName<'_>> {
    let mut start = 0;
    for part in name.split('.') {
        let end = start + part.len();
        if start > 0
            && !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && end < name.len()
        {
            let index = part.parse().ok().filter(|&i| i <= MAX_LAYER_INDEX)?;
            return Some(LayerName {
                stack: &name[..start - 1],
                index,
                rest: &name[end + 1..],
            });
        }
        start = end + 1;
    }
    None
}

/// `self_attn.v_proj.weight` -> `self_attn.v_proj`: the module type that SNR scans group by.
pub(crate) fn module_type_of(rest: &str) -> Option<&str> {
    rest.strip_suffix(".weight")
}

/// One numbered stack of layers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stack {
    pub prefix: String,
    /// Highest index + 1 (gaps are reported as warnings).
    pub num_layers: usize,
    /// Every tensor of each layer, by layer index.
    pub tensors: BTreeMap<usize, Vec<String>>,
    /// 2-D `.weight` tensors by module type, then layer index: what can be scanned. A derived
    /// module type (the V part of a fused projection, `self_attn.v_proj ⊂ qkv_proj`) maps to
    /// the fused tensors it is cut from; see [`Stack::derived`].
    pub modules: BTreeMap<String, BTreeMap<usize, String>>,
    /// Derived module types (see [`super::fused`]): where their part of the tensor sits.
    pub derived: BTreeMap<String, Derived>,
}

impl Stack {
    /// The module the seed's rule reads: the value projection, or the closest equivalent.
    pub fn default_module(&self) -> Option<&str> {
        const PREFERRED: &[&str] = &[
            "self_attn.v_proj",
            "attention.self.value",
            "attn.v_proj",
            "self_attention.v_proj",
            "attention.v_proj",
            "attention.wv",
            "attn.attention.v_proj",
            // llama.cpp's name, in a scan file of a GGUF model.
            "attn_v",
        ];
        for p in PREFERRED {
            if self.modules.contains_key(*p) {
                return Some(p);
            }
        }
        // The V part of a fused projection (even one whose layout is refused: its scan then
        // says why, rather than the rule silently reading another matrix).
        if let Some(k) = self.modules.keys().find(|k| k.contains(SUBSET_MARK)) {
            return Some(k);
        }
        let by = |pred: &dyn Fn(&str) -> bool| {
            self.modules
                .keys()
                .find(|k| pred(k.as_str()))
                .map(String::as_str)
        };
        by(&|k| k.ends_with("v_proj") || k.ends_with(".value"))
            // Fused q/k/v projections (GPT-2 `attn.c_attn`, NeoX `attention.query_key_value`).
            .or_else(|| {
                by(&|k| k.contains("qkv") || k.contains("query_key_value") || k.contains("c_attn"))
            })
            .or_else(|| self.modules.keys().next().map(String::as_str))
    }

    pub(crate) fn missing_layers(&self) -> Vec<usize> {
        (0..self.num_layers)
            .filter(|i| !self.tensors.contains_key(i))
            .collect()
    }
}

/// All stacks of a model and which one is the transformer's main stack.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerLayout {
    pub stacks: Vec<Stack>,
    pub main: Option<usize>,
    pub config_layers: Option<usize>,
    pub warnings: Vec<String>,
}

impl LayerLayout {
    pub fn main_stack(&self) -> Option<&Stack> {
        self.main.map(|i| &self.stacks[i])
    }

    pub fn stack(&self, prefix: &str) -> Option<&Stack> {
        self.stacks.iter().find(|s| s.prefix == prefix)
    }
}

/// Groups tensor names (with their shapes) into stacks. `config_layers` is the layer count
/// config.json declares; the stack with that count is the main one, else the largest.
pub fn discover<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize])>,
    config_layers: Option<usize>,
) -> LayerLayout {
    let mut stacks: BTreeMap<String, Stack> = BTreeMap::new();
    for (name, shape) in tensors {
        let Some(parsed) = parse_layer_name(name) else {
            continue;
        };
        let stack = stacks
            .entry(parsed.stack.to_string())
            .or_insert_with(|| Stack {
                prefix: parsed.stack.to_string(),
                ..Stack::default()
            });
        stack.num_layers = stack.num_layers.max(parsed.index + 1);
        stack
            .tensors
            .entry(parsed.index)
            .or_default()
            .push(name.to_string());
        if shape.len() == 2
            && let Some(module) = module_type_of(parsed.rest)
        {
            stack
                .modules
                .entry(module.to_string())
                .or_default()
                .insert(parsed.index, name.to_string());
        }
    }
    let mut stacks: Vec<Stack> = stacks.into_values().collect();
    for s in &mut stacks {
        for names in s.tensors.values_mut() {
            names.sort_by(|a, b| natural_cmp(a, b));
        }
    }
    let main = config_layers
        .and_then(|n| {
            // Prefer a matching stack that has scannable modules over, say, a list of biases.
            stacks
                .iter()
                .enumerate()
                .filter(|(_, s)| s.num_layers == n)
                .max_by_key(|(_, s)| (s.modules.len(), s.tensors.len()))
                .map(|(i, _)| i)
        })
        .or_else(|| {
            stacks
                .iter()
                .enumerate()
                .max_by_key(|(_, s)| (s.num_layers, s.modules.len()))
                .map(|(i, _)| i)
        });
    let mut warnings = Vec::new();
    if let Some(m) = main {
        let s = &stacks[m];
        if let Some(n) = config_layers
            && n != s.num_layers
        {
            warnings.push(format!(
                "config.json declares {n} layers but the largest stack `{}` has {}",
                s.prefix, s.num_layers
            ));
        }
        let missing = s.missing_layers();
        if !missing.is_empty() {
            warnings.push(format!(
                "stack `{}` has no tensors for layer(s) {missing:?}",
                s.prefix
            ));
        }
    } else if let Some(n) = config_layers {
        warnings.push(format!(
            "config.json declares {n} layers but no tensor name has a layer number"
        ));
    }
    LayerLayout {
        stacks,
        main,
        config_layers,
        warnings,
    }
}

/// Layer count from a Hugging Face config (top level, or the text model's for multimodal ones).
pub fn config_layer_count(config: &serde_json::Value) -> Option<usize> {
    const KEYS: &[&str] = &["num_hidden_layers", "n_layer", "num_layers", "n_layers"];
    let find = |v: &serde_json::Value| {
        KEYS.iter()
            .find_map(|k| v.get(*k).and_then(serde_json::Value::as_u64))
            .map(|n| n as usize)
    };
    find(config).or_else(|| config.get("text_config").and_then(find))
}

/// Orders `layers.2` before `layers.10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    natural_key(a).cmp(&natural_key(b))
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Chunk<'a> {
    // Numbers sort before text, as Python's natural key does for mixed positions.
    Num(u128),
    Text(&'a str),
}

fn natural_key(s: &str) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let digit = bytes[i].is_ascii_digit();
        while i < bytes.len() && bytes[i].is_ascii_digit() == digit {
            i += 1;
        }
        let part = &s[start..i];
        out.push(match (digit, part.parse::<u128>()) {
            (true, Ok(n)) => Chunk::Num(n),
            _ => Chunk::Text(part),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_first_numeric_component() {
        let p = parse_layer_name("model.layers.0.mlp.experts.3.down_proj.weight").unwrap();
        assert_eq!(
            (p.stack, p.index, p.rest),
            ("model.layers", 0, "mlp.experts.3.down_proj.weight")
        );
        let p = parse_layer_name("h.11.attn.c_attn.weight").unwrap();
        assert_eq!((p.stack, p.index, p.rest), ("h", 11, "attn.c_attn.weight"));
        assert_eq!(parse_layer_name("model.embed_tokens.weight"), None);
        assert_eq!(parse_layer_name("model.layers.3"), None);
        assert_eq!(parse_layer_name("7.weight"), None);
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["model.layers.10.x", "model.layers.2.x", "model.layers.1.x"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            ["model.layers.1.x", "model.layers.2.x", "model.layers.10.x"]
        );
    }
}
