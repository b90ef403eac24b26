//! Helpers for the export tests (included with `#[path]`; this file's own test crate is empty).
//! The checks here read outputs with the `safetensors` crate and plain string handling, not
//! with the code under test, and derive expectations from the source model.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use safetensors::SafeTensors;
use snrscope::{
    demo::{ModelSpec, write_model},
    plan::Plan,
};

pub fn gen_model(root: &Path, name: &str, spec: &ModelSpec) -> PathBuf {
    let dir = root.join(name);
    write_model(&dir, spec).expect("write the generated model");
    dir
}

/// A hand-made plan for the generated models (their stack is `model.layers`).
pub fn plan(num_layers: usize, dropped: &[usize]) -> Plan {
    Plan {
        model_ref: "test/source".into(),
        stack_prefix: "model.layers".into(),
        num_layers,
        dropped: dropped.to_vec(),
        module_type: "self_attn.v_proj".into(),
        reason: "self_attn.v_proj SNR infinite".into(),
        snr: vec![Some(1.0); num_layers],
        dtype: "bfloat16".into(),
        mergekit_modules: None,
        metric: None,
    }
}

/// Every file of a folder (recursively) with its bytes: a before/after snapshot.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Names in a folder (not recursive), sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// (dtype, shape, bytes) by tensor name, read from every .safetensors file of `dir` with the
/// safetensors crate; plus which file each tensor is in and each file's data size.
pub struct Tensors {
    pub by_name: BTreeMap<String, (String, Vec<usize>, Vec<u8>)>,
    pub file_of: BTreeMap<String, String>,
    pub data_bytes_of_file: BTreeMap<String, u64>,
    pub format_pt: bool,
}

pub fn read_tensors(dir: &Path) -> Tensors {
    let mut t = Tensors {
        by_name: BTreeMap::new(),
        file_of: BTreeMap::new(),
        data_bytes_of_file: BTreeMap::new(),
        format_pt: true,
    };
    for name in names_in(dir)
        .into_iter()
        .filter(|n| n.ends_with(".safetensors"))
    {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let fmt = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("format").cloned());
        t.format_pt &= fmt.as_deref() == Some("pt");
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut data = 0;
        for (tn, view) in st.tensors() {
            data += view.data().len() as u64;
            assert!(
                t.by_name
                    .insert(
                        tn.clone(),
                        (
                            format!("{:?}", view.dtype()),
                            view.shape().to_vec(),
                            view.data().to_vec()
                        )
                    )
                    .is_none(),
                "{tn} stored twice"
            );
            t.file_of.insert(tn, name.clone());
        }
        t.data_bytes_of_file.insert(name, data);
    }
    t
}

/// `model.layers.12.self_attn.v_proj.weight` -> Some((12, "self_attn.v_proj.weight")).
pub fn split_layer(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("model.layers.")?;
    let (n, tail) = rest.split_once('.')?;
    Some((n.parse().ok()?, tail))
}

/// The full check of a pruned model `out` made from `src` by dropping `dropped` of `n` layers.
/// Expectations come from the source files only.
pub fn check_pruned(src: &Path, out: &Path, n: usize, dropped: &[usize], shard_limit: u64) {
    let kept: Vec<usize> = (0..n).filter(|l| !dropped.contains(l)).collect();
    let source = read_tensors(src);
    let result = read_tensors(out);
    // Expected: each source tensor under its new name, dropped layers absent.
    let mut expected = BTreeMap::new();
    for (name, v) in &source.by_name {
        let new = match split_layer(name) {
            Some((l, tail)) => match kept.iter().position(|&k| k == l) {
                Some(i) => format!("model.layers.{i}.{tail}"),
                None => continue,
            },
            None => name.clone(),
        };
        expected.insert(new, v.clone());
    }
    assert_eq!(
        result.by_name.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "tensor names"
    );
    for (name, (dtype, shape, bytes)) in &expected {
        let got = &result.by_name[name];
        assert_eq!(&got.0, dtype, "{name} dtype");
        assert_eq!(&got.1, shape, "{name} shape");
        assert!(
            got.2 == *bytes,
            "{name}: bytes differ from the source tensor"
        );
    }
    // Layer indices contiguous from 0.
    let mut layers: Vec<usize> = result
        .by_name
        .keys()
        .filter_map(|k| split_layer(k).map(|x| x.0))
        .collect();
    layers.dedup();
    layers.sort();
    layers.dedup();
    assert_eq!(layers, (0..kept.len()).collect::<Vec<_>>());
    assert!(result.format_pt, "every shard has __metadata__.format = pt");

    // Shards and index.
    let total: u64 = expected.values().map(|v| v.2.len() as u64).sum();
    let shard_files: Vec<&String> = result.data_bytes_of_file.keys().collect();
    let index_path = out.join("model.safetensors.index.json");
    if shard_files.len() == 1 {
        assert_eq!(shard_files[0], "model.safetensors");
        assert!(!index_path.exists(), "one shard needs no index");
    } else {
        let k = shard_files.len();
        let want: Vec<String> = (1..=k)
            .map(|i| format!("model-{i:05}-of-{k:05}.safetensors"))
            .collect();
        assert_eq!(shard_files, want.iter().collect::<Vec<_>>());
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
        assert_eq!(index["metadata"]["total_size"].as_u64(), Some(total));
        let map = index["weight_map"].as_object().unwrap();
        assert_eq!(map.len(), result.file_of.len());
        for (t, f) in &result.file_of {
            assert_eq!(map[t].as_str(), Some(f.as_str()), "weight_map[{t}]");
        }
    }
    for (f, size) in &result.data_bytes_of_file {
        let biggest = result
            .file_of
            .iter()
            .filter(|(_, g)| *g == f)
            .map(|(t, _)| result.by_name[t].2.len() as u64)
            .max()
            .unwrap();
        assert!(
            *size <= shard_limit || biggest > shard_limit,
            "{f}: {size} data bytes over the {shard_limit} limit"
        );
    }

    // config.json: layer count lowered, everything else as in the source.
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let (c0, c1) = (read(src.join("config.json")), read(out.join("config.json")));
    assert_eq!(c1["num_hidden_layers"].as_u64(), Some(kept.len() as u64));
    for (k, v) in c0.as_object().unwrap() {
        if !["num_hidden_layers", "layer_types", "text_config"].contains(&k.as_str()) {
            assert_eq!(&c1[k], v, "config key {k}");
        }
    }
    // Other files byte for byte; mergekit config and card present.
    for f in ["generation_config.json", "tokenizer_config.json"] {
        assert_eq!(
            std::fs::read(src.join(f)).unwrap(),
            std::fs::read(out.join(f)).unwrap(),
            "{f} copied unchanged"
        );
    }
    assert!(out.join("mergekit_config.yml").is_file());
    assert!(out.join("README.md").is_file());
}

/// A model of `layers` x 75 MiB written as sparse files (instant to create, real bytes to
/// copy): big enough to interrupt mid-write or to measure memory use.
pub fn sparse_model(dir: &Path, layers: usize) {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let big = [9600usize, 2048]; // F32: 75 MiB per layer
    let mut header = serde_json::Map::new();
    let mut off = 0u64;
    for l in 0..layers {
        for (name, shape) in [
            ("self_attn.v_proj.weight", [64usize, 64]),
            ("mlp.up_proj.weight", big),
        ] {
            let n = (shape[0] * shape[1] * 4) as u64;
            header.insert(
                format!("model.layers.{l}.{name}"),
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}),
            );
            off += n;
        }
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut f = std::fs::File::create(dir.join("model.safetensors")).unwrap();
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    f.set_len(8 + h.len() as u64 + off).unwrap();
    std::fs::write(
        dir.join("config.json"),
        format!("{{\"num_hidden_layers\": {layers}, \"torch_dtype\": \"float32\"}}"),
    )
    .unwrap();
}
