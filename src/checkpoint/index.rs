//! A sharded model's index (`model.safetensors.index.json`, `pytorch_model.bin.index.json`):
//! which shard holds which tensor, checked against what the shards really hold.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Component, Path},
};

use super::{error::OpenError, layers, shard::Shard, tensor::TensorEntry};

pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value, OpenError> {
    let text = crate::util::files::read_string_bounded(
        path,
        crate::util::files::limit::JSON,
        "a JSON file of a model",
    )
    .map_err(|source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| OpenError::InvalidJson {
        path: path.to_path_buf(),
        source,
    })
}

/// An index's `weight_map`: tensor name -> shard file name.
pub(crate) type WeightMap = BTreeMap<String, String>;

pub(crate) fn read_weight_map(index: &Path) -> Result<WeightMap, OpenError> {
    let v = read_json(index)?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| OpenError::BadIndex {
            path: index.to_path_buf(),
            problem: "no \"weight_map\" object".into(),
        })?;
    map.iter()
        .map(|(tensor, shard)| match shard.as_str() {
            Some(s) => Ok((tensor.clone(), s.to_string())),
            None => Err(OpenError::BadIndex {
                path: index.to_path_buf(),
                problem: format!("weight_map entry for {tensor} is not a file name"),
            }),
        })
        .collect()
}

pub(crate) fn shard_names(
    dir: &Path,
    index: &Path,
    weight_map: &WeightMap,
) -> Result<Vec<String>, OpenError> {
    // An index is data from the internet: its file names must stay inside the model folder.
    for (tensor, shard) in weight_map {
        let inside = Path::new(shard)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside || shard.is_empty() {
            return Err(OpenError::BadIndex {
                path: index.to_path_buf(),
                problem: format!(
                    "weight_map entry for {tensor} names {shard:?}, which is outside the model \
                     folder; refusing to read it"
                ),
            });
        }
    }
    let mut names: Vec<String> = weight_map.values().cloned().collect();
    names.sort_by(|a, b| layers::natural_cmp(a, b));
    names.dedup();
    if names.is_empty() {
        return Err(OpenError::BadIndex {
            path: index.to_path_buf(),
            problem: "weight_map is empty".into(),
        });
    }
    for n in &names {
        if !dir.join(n).is_file() {
            return Err(OpenError::MissingShard {
                index: index.to_path_buf(),
                shard: n.clone(),
            });
        }
    }
    Ok(names)
}

pub(crate) fn check_index_matches(
    index: &Path,
    weight_map: &WeightMap,
    shards: &[Shard],
    tensors: &[TensorEntry],
    warnings: &mut Vec<String>,
) -> Result<(), OpenError> {
    let actual: HashMap<&str, &str> = tensors
        .iter()
        .map(|t| (t.name.as_str(), shards[t.shard].file_name.as_str()))
        .collect();
    for (name, shard) in weight_map {
        match actual.get(name.as_str()) {
            None => {
                return Err(OpenError::BadIndex {
                    path: index.to_path_buf(),
                    problem: format!("lists tensor {name} in {shard}, which does not hold it"),
                });
            }
            Some(found) if found != shard => {
                return Err(OpenError::BadIndex {
                    path: index.to_path_buf(),
                    problem: format!("lists tensor {name} in {shard}, but it is in {found}"),
                });
            }
            _ => {}
        }
    }
    let unlisted = tensors
        .iter()
        .filter(|t| !weight_map.contains_key(&t.name))
        .count();
    if unlisted > 0 {
        warnings.push(format!(
            "{}: {unlisted} tensor(s) in the shards are not in its weight_map",
            index.display()
        ));
    }
    Ok(())
}
