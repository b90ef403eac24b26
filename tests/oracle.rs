//! Our SNR against the numpy oracle (`shared/tools/snr_oracle.py`) on models the tests
//! generate: relative 1e-9 on every statistic, and the same set of infinite layers.

mod common;

use std::{collections::BTreeSet, path::Path, sync::Arc};

use safetensors::Dtype;
use snrscope::{
    demo::{ModelSpec, write_model},
    model::Model,
    scan::{self, ScanOptions},
};

const REL: f64 = 1e-9;

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= REL * a.abs().max(b.abs()) || (a - b).abs() < 1e-300
}

/// Scans `path` with snrscope and compares every matrix `pattern` selects with the oracle.
/// Returns the modules both call infinite.
fn compare(path: &Path, pattern: &str) -> BTreeSet<String> {
    let oracle = common::run_oracle(path, pattern);
    let oracle = oracle.as_object().expect("object");
    let model = Arc::new(Model::open(path).expect("opens"));
    let jobs = scan::jobs_matching(&model, &regex::Regex::new(pattern).unwrap());
    let results = scan::scan_blocking(model, jobs.clone(), ScanOptions { threads: 2 });
    assert_eq!(results.len(), jobs.len());
    let ours: Vec<(&str, _)> = jobs
        .iter()
        .zip(&results)
        .map(|(j, r)| (j.module.as_str(), r.outcome.as_ref().expect("scans")))
        .collect();
    let our_names: BTreeSet<&str> = ours.iter().map(|(n, _)| *n).collect();
    let their_names: BTreeSet<&str> = oracle.keys().map(String::as_str).collect();
    assert_eq!(our_names, their_names, "same matrices scanned");
    assert!(!ours.is_empty());

    let mut ours_inf = BTreeSet::new();
    let mut theirs_inf = BTreeSet::new();
    for (name, s) in ours {
        let o = &oracle[name];
        let f = |k: &str| {
            o.get(k)
                .and_then(|v| v.as_f64())
                .unwrap_or_else(|| panic!("{name}.{k}"))
        };
        for (field, mine, theirs) in [
            ("snr", s.snr_ratio, f("snr")),
            ("raw_snr", s.raw_snr, f("raw_snr")),
            (
                "max_singular_value",
                s.max_singular_value,
                f("max_singular_value"),
            ),
            ("sigma", s.sigma, f("sigma")),
            ("threshold", s.threshold, f("threshold")),
        ] {
            assert!(
                close(mine, theirs),
                "{name} {field}: snrscope {mine:e} vs oracle {theirs:e}"
            );
        }
        assert_eq!(s.n_signal as f64, f("n_signal"), "{name} n_signal");
        assert_eq!(s.n_noise as f64, f("n_noise"), "{name} n_noise");
        assert_eq!(
            o.get("type").and_then(|t| t.as_str()),
            Some(&*snrscope::scanfile::type_of(name))
        );
        if s.is_infinite() {
            ours_inf.insert(name.to_string());
        }
        if f("snr").is_infinite() {
            theirs_inf.insert(name.to_string());
        }
    }
    assert_eq!(ours_inf, theirs_inf, "same infinite set");
    ours_inf
}

fn v_proj_set(layers: &[usize]) -> BTreeSet<String> {
    layers
        .iter()
        .map(|l| format!("model.layers.{l}.self_attn.v_proj"))
        .collect()
}

#[test]
fn bf16_gqa_sharded_with_planted_infinite_layers() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(12, &[0, 4, 5, 11]);
    spec.shards = 3;
    write_model(dir.path(), &spec).unwrap();
    assert!(dir.path().join("model.safetensors.index.json").is_file());
    let inf = compare(dir.path(), "v_proj");
    assert_eq!(inf, v_proj_set(&[0, 4, 5, 11]));
}

#[test]
fn every_matrix_of_a_bf16_model() {
    // q/k/o/mlp, embeddings and lm_head too: rectangular both ways and square.
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), &ModelSpec::tiny(3, &[1])).unwrap();
    compare(dir.path(), ".");
}

#[test]
fn f16_single_file_given_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(6, &[2, 3]);
    spec.dtype = Dtype::F16;
    spec.seed = 11;
    write_model(dir.path(), &spec).unwrap();
    let inf = compare(&dir.path().join("model.safetensors"), "v_proj");
    assert_eq!(inf, v_proj_set(&[2, 3]));
}

#[test]
fn f32_square_value_projections() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(5, &[4]);
    spec.dtype = Dtype::F32;
    spec.kv_heads = spec.heads; // no GQA: v_proj is square
    spec.seed = 12;
    write_model(dir.path(), &spec).unwrap();
    let model = Model::open(dir.path()).unwrap();
    let v = model
        .tensor("model.layers.0.self_attn.v_proj.weight")
        .unwrap();
    assert_eq!(v.shape, vec![64, 64]);
    let inf = compare(dir.path(), "self_attn");
    assert_eq!(inf, v_proj_set(&[4]));
}

#[test]
fn f64_sharded() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(4, &[0, 3]);
    spec.dtype = Dtype::F64;
    spec.shards = 2;
    spec.seed = 13;
    write_model(dir.path(), &spec).unwrap();
    let inf = compare(dir.path(), "v_proj|down_proj");
    assert_eq!(inf, v_proj_set(&[0, 3]));
}

#[test]
fn larger_shapes_take_faers_blocked_paths() {
    // Tiny models keep every SVD on faer's small-matrix path; these shapes go through its
    // QR pre-reduction (tall and wide) and divide-and-conquer bidiagonal solver.
    use snrscope::demo::{Rng, encode, power_law};
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(99);
    let shapes = [(384usize, 1536usize), (1536, 384), (600, 600)];
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(r, c))| {
            let w = power_law(&mut rng, r, c, 0.7 + 0.2 * i as f64);
            (
                format!("model.layers.{i}.self_attn.v_proj.weight"),
                vec![r, c],
                encode(Dtype::BF16, &w),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(Dtype::BF16, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let file = dir.path().join("model.safetensors");
    safetensors::serialize_to_file(views, None, &file).unwrap();
    compare(&file, "v_proj");
}
