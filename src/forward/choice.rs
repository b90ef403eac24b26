//! The layers a mergekit passthrough config keeps, read back as a pruning choice.

use std::path::Path;

use serde::Deserialize;

use super::error::EvalError;

#[derive(Debug, Deserialize)]
struct Config {
    slices: Vec<Slice>,
    merge_method: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Slice {
    sources: Vec<Source>,
}

#[derive(Debug, Deserialize)]
struct Source {
    layer_range: [usize; 2],
}

/// The layers of a `num_layers` model that `yaml` (a passthrough config of one model, as
/// `snrscope export --yaml` or mergekit users write them) drops. Refuses configs that are not a
/// pruning: other merge methods, several sources per slice, layers repeated or reordered.
pub fn dropped_from_yaml(path: &Path, num_layers: usize) -> Result<Vec<usize>, EvalError> {
    let bad = |problem: String| EvalError::Choice(format!("{}: {problem}", path.display()));
    let text = crate::util::files::read_string_bounded(
        path,
        crate::util::files::limit::YAML,
        "a mergekit config",
    )
    .map_err(|e| bad(format!("cannot read: {}", crate::util::text::io_reason(&e))))?;
    let config: Config =
        serde_yaml::from_str(&text).map_err(|e| bad(format!("not a mergekit config: {e}")))?;
    if let Some(m) = config
        .merge_method
        .as_deref()
        .filter(|m| *m != "passthrough")
    {
        return Err(bad(format!(
            "merge_method is {m:?}; only passthrough slices describe a pruning"
        )));
    }
    let mut kept: Vec<usize> = Vec::new();
    for (i, slice) in config.slices.iter().enumerate() {
        let [source] = slice.sources.as_slice() else {
            return Err(bad(format!(
                "slice {} has {} sources; a pruning takes each slice from one model",
                i + 1,
                slice.sources.len()
            )));
        };
        let [start, end] = source.layer_range;
        if start >= end || end > num_layers {
            return Err(bad(format!(
                "slice {}: layer_range [{start}, {end}] is not within the model's {num_layers} \
                 layers",
                i + 1
            )));
        }
        if kept.last().is_some_and(|&last| start <= last) {
            return Err(bad(format!(
                "slice {}: layer_range [{start}, {end}] repeats or reorders layers; only a \
                 pruning (ascending, disjoint ranges) can be evaluated",
                i + 1
            )));
        }
        kept.extend(start..end);
    }
    if kept.is_empty() {
        return Err(bad("keeps no layer".into()));
    }
    Ok((0..num_layers).filter(|l| !kept.contains(l)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, n: usize) -> Result<Vec<usize>, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prune.yml");
        std::fs::write(&p, text).unwrap();
        dropped_from_yaml(&p, n).map_err(|e| e.to_string())
    }

    #[test]
    fn passthrough_slices_give_the_dropped_layers() {
        let y = "slices:\n  - sources:\n      - model: m\n        layer_range: [0, 5]\n  \
                 - sources:\n      - model: m\n        layer_range: [7, 10]\n\
                 merge_method: passthrough\ndtype: bfloat16\n";
        assert_eq!(read(y, 12), Ok(vec![5, 6, 10, 11]));
    }

    #[test]
    fn refuses_what_is_not_a_pruning() {
        let dup = "slices:\n  - sources:\n      - model: m\n        layer_range: [0, 5]\n  \
                   - sources:\n      - model: m\n        layer_range: [3, 8]\n";
        assert!(read(dup, 8).unwrap_err().contains("repeats or reorders"));
        let out = "slices:\n  - sources:\n      - model: m\n        layer_range: [0, 9]\n";
        assert!(read(out, 8).unwrap_err().contains("not within"));
        let slerp = "slices:\n  - sources:\n      - model: m\n        layer_range: [0, 8]\n\
                     merge_method: slerp\n";
        assert!(read(slerp, 8).unwrap_err().contains("slerp"));
    }
}
