//! Reading back a mergekit passthrough config (as `snrscope export --yaml` and the explorer's
//! `y` write it) to carry a session on: which layers it keeps, and of which model.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Config {
    slices: Option<Vec<Slice>>,
    modules: Option<BTreeMap<String, Module>>,
    merge_method: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Module {
    slices: Option<Vec<Slice>>,
}

#[derive(Debug, Deserialize)]
struct Slice {
    sources: Vec<Source>,
}

#[derive(Debug, Deserialize)]
struct Source {
    model: String,
    layer_range: [usize; 2],
}

/// What a passthrough config keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptLayers {
    /// In order, each once.
    pub kept: Vec<usize>,
    /// The `model:` every slice names.
    pub model: String,
}

/// The layers a passthrough slice config of a model with `num_layers` layers keeps. Refused
/// (with the reason) when it is not such a config: another merge method, several models in
/// one slice or across slices, a layer range beyond the model, or layers repeated or out of
/// order (a layer-stacking merge, not a pruning).
pub fn kept_layers(text: &str, num_layers: usize) -> Result<KeptLayers, String> {
    let c: Config =
        serde_yaml::from_str(text).map_err(|e| format!("not a mergekit config: {e}"))?;
    match c.merge_method.as_deref() {
        Some("passthrough") => {}
        Some(m) => {
            return Err(format!(
                "merge_method is {m}, not passthrough: not a pruning snrscope can carry on"
            ));
        }
        None => return Err("no merge_method: not a mergekit passthrough config".into()),
    }
    let slices = match (c.slices, c.modules) {
        (Some(s), None) => s,
        (None, Some(modules)) => {
            // A model of several modules: the text decoder's slices, the rest copied whole.
            let mut with_slices: Vec<Vec<Slice>> =
                modules.into_values().filter_map(|m| m.slices).collect();
            if with_slices.len() != 1 {
                return Err(format!(
                    "{} modules have slices: expected one (the text decoder's)",
                    with_slices.len()
                ));
            }
            with_slices.remove(0)
        }
        (Some(_), Some(_)) => return Err("has both slices: and modules:".into()),
        (None, None) => return Err("has no slices:".into()),
    };
    if slices.is_empty() {
        return Err("its slices: list is empty".into());
    }
    let mut kept = Vec::new();
    let mut model: Option<String> = None;
    for s in &slices {
        let [src] = s.sources.as_slice() else {
            return Err(format!(
                "a slice has {} sources: a pruning takes each slice from one model",
                s.sources.len()
            ));
        };
        match &model {
            None => model = Some(src.model.clone()),
            Some(m) if *m != src.model => {
                return Err(format!(
                    "its slices come from two models ({m} and {}): not a pruning of one model",
                    src.model
                ));
            }
            Some(_) => {}
        }
        let [a, b] = src.layer_range;
        if a >= b {
            return Err(format!("layer_range [{a}, {b}] is empty or reversed"));
        }
        if b > num_layers {
            return Err(format!(
                "layer_range [{a}, {b}] goes beyond the model's {num_layers} layers \
                 (is it a config of another model?)"
            ));
        }
        if kept.last().is_some_and(|&l| l >= a) {
            return Err(format!(
                "layer_range [{a}, {b}] repeats or reorders layers: a layer-stacking merge, \
                 not a pruning"
            ));
        }
        kept.extend(a..b);
    }
    Ok(KeptLayers {
        kept,
        model: model.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by hand in the layout `export --yaml` writes.
    const PRUNED: &str = "# written by snrscope: dropped layers 2, 5 of 8\n\nslices:\n  - sources:\n      - model: org/m\n        layer_range: [0, 2]\n  - sources:\n      - model: org/m\n        layer_range: [3, 5]\n  - sources:\n      - model: org/m\n        layer_range: [6, 8]\nmerge_method: passthrough\ndtype: bfloat16\n";

    #[test]
    fn reads_the_kept_ranges() {
        let k = kept_layers(PRUNED, 8).unwrap();
        assert_eq!(k.kept, vec![0, 1, 3, 4, 6, 7]);
        assert_eq!(k.model, "org/m");
    }

    #[test]
    fn reads_the_text_decoder_of_a_multimodal_config() {
        let y = "modules:\n  text_decoder:\n    slices:\n      - sources:\n          - model: m\n            layer_range: [1, 3]\n  vision_tower:\n    models:\n      - model: m\nmerge_method: passthrough\ndtype: bfloat16\n";
        assert_eq!(kept_layers(y, 4).unwrap().kept, vec![1, 2]);
    }

    #[test]
    fn refuses_what_is_not_a_pruning_of_this_model() {
        let e = kept_layers(PRUNED, 7).unwrap_err();
        assert!(e.contains("[6, 8] goes beyond the model's 7 layers"), "{e}");
        let e = kept_layers(&PRUNED.replace("passthrough", "slerp"), 8).unwrap_err();
        assert!(e.contains("merge_method is slerp"), "{e}");
        let e = kept_layers(&PRUNED.replace("[3, 5]", "[1, 5]"), 8).unwrap_err();
        assert!(e.contains("repeats or reorders"), "{e}");
        let e = kept_layers(&PRUNED.replacen("org/m", "org/other", 1), 8).unwrap_err();
        assert!(e.contains("two models"), "{e}");
        let e = kept_layers("models:\n  - model: a\nmerge_method: passthrough\n", 8).unwrap_err();
        assert!(e.contains("no slices"), "{e}");
        let e = kept_layers("{[", 8).unwrap_err();
        assert!(e.starts_with("not a mergekit config"), "{e}");
    }
}
