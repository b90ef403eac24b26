//! config.json of the pruned model: the source config with the layer count lowered and every
//! per-layer list shortened to the kept layers, key order and everything else unchanged.

use serde_json::Value;

/// Keys that hold the number of layers of the main stack (as in `layers::config_layer_count`).
pub const LAYER_COUNT_KEYS: &[&str] = &["num_hidden_layers", "n_layer", "num_layers", "n_layers"];

/// Arrays that are never per-layer even when their length happens to equal the layer count.
const NOT_PER_LAYER: &[&str] = &[
    "architectures",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "suppress_tokens",
    "begin_suppress_tokens",
    "bad_words_ids",
];

/// Arrays that hold layer *indices* (not one value per layer): renumbered, dropped ones removed.
const LAYER_INDEX_LISTS: &[&str] = &["mlp_only_layers"];

/// Lists that hold one entry per layer by definition: a different length is a broken config
/// (the export cannot know which entry belongs to which layer) and is reported.
const PER_LAYER_LISTS: &[&str] = &["layer_types", "layers_block_type", "block_types"];

/// Sub-configs that describe the language model itself in multimodal configs. Other nested
/// configs (vision towers, audio encoders) keep their own layer counts even when they happen to
/// equal the text model's.
const TEXT_CONFIGS: &[&str] = &["text_config", "llm_config", "language_config"];

/// The config for a model that keeps the source layers `kept` (ascending) of `old_layers`.
/// Edited objects: the top level and the text model's sub-config (`text_config`, ...). In each:
/// the layer-count keys equal to `old_layers` become `kept.len()`; every array of length
/// `old_layers` keeps the kept layers' entries, in order; lists of layer indices
/// (`mlp_only_layers`) are renumbered. Returns the new config and one line per edit.
pub fn prune_config(config: &Value, old_layers: usize, kept: &[usize]) -> (Value, Vec<String>) {
    let mut out = config.clone();
    let mut edits = Vec::new();
    let Some(top) = out.as_object_mut() else {
        return (out, edits);
    };
    edit_object(top, "", old_layers, kept, &mut edits);
    for (key, v) in top.iter_mut() {
        if let Some(obj) = v.as_object_mut()
            && TEXT_CONFIGS.contains(&key.as_str())
        {
            let path = format!("{key}.");
            edit_object(obj, &path, old_layers, kept, &mut edits);
        }
    }
    (out, edits)
}

/// Warnings for per-layer lists whose length is not the layer count: they are copied unchanged.
pub fn per_layer_list_warnings(config: &Value, old_layers: usize) -> Vec<String> {
    let mut out = Vec::new();
    let Some(top) = config.as_object() else {
        return out;
    };
    let nested = TEXT_CONFIGS.iter().filter_map(|k| {
        top.get(*k)
            .and_then(Value::as_object)
            .map(|o| (format!("{k}."), o))
    });
    for (path, obj) in std::iter::once((String::new(), top)).chain(nested) {
        for key in PER_LAYER_LISTS {
            if let Some(list) = obj.get(*key).and_then(Value::as_array)
                && list.len() != old_layers
            {
                out.push(format!(
                    "config.json: {path}{key} has {} entries for {old_layers} layers; it was \
                     copied unchanged (check it by hand)",
                    list.len()
                ));
            }
        }
    }
    out
}

fn edit_object(
    obj: &mut serde_json::Map<String, Value>,
    path: &str,
    old_layers: usize,
    kept: &[usize],
    edits: &mut Vec<String>,
) {
    let new_layers = kept.len();
    for (key, v) in obj.iter_mut() {
        if LAYER_COUNT_KEYS.contains(&key.as_str()) && v.as_u64() == Some(old_layers as u64) {
            *v = Value::from(new_layers);
            edits.push(format!("{path}{key}: {old_layers} -> {new_layers}"));
            continue;
        }
        let Some(arr) = v.as_array_mut() else {
            continue;
        };
        if LAYER_INDEX_LISTS.contains(&key.as_str()) {
            let renumbered: Vec<Value> = arr
                .iter()
                .filter_map(|x| x.as_u64())
                .filter_map(|old| kept.iter().position(|&k| k as u64 == old))
                .map(Value::from)
                .collect();
            if arr.iter().all(|x| x.as_u64().is_some()) {
                edits.push(format!("{path}{key}: layer indices renumbered"));
                *arr = renumbered;
            }
            continue;
        }
        if arr.len() == old_layers && !NOT_PER_LAYER.contains(&key.as_str()) {
            let shortened: Vec<Value> = kept.iter().map(|&i| arr[i].clone()).collect();
            *arr = shortened;
            edits.push(format!(
                "{path}{key}: per-layer list shortened from {old_layers} to {new_layers}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shortens_counts_and_lists_in_place() {
        let c = json!({
            "z_first": 1,
            "num_hidden_layers": 4,
            "layer_types": ["a", "b", "c", "d"],
            "eos_token_id": [1, 2, 3, 4],
            "mlp_only_layers": [0, 2, 3],
            "text_config": {"num_hidden_layers": 4, "sliding": [true, false, true, false]},
            "vision_config": {"num_hidden_layers": 4, "x": [1, 2, 3, 4]}
        });
        let (out, edits) = prune_config(&c, 4, &[0, 3]);
        assert_eq!(
            out,
            json!({
                "z_first": 1,
                "num_hidden_layers": 2,
                "layer_types": ["a", "d"],
                "eos_token_id": [1, 2, 3, 4],
                "mlp_only_layers": [0, 1],
                "text_config": {"num_hidden_layers": 2, "sliding": [true, false]},
                "vision_config": {"num_hidden_layers": 4, "x": [1, 2, 3, 4]}
            })
        );
        // Key order survives (serde_json's preserve_order).
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "z_first");
        assert_eq!(edits.len(), 5);
    }
}
