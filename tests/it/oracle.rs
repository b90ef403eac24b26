//! Our SNR against the numpy oracle (`shared/tools/snr_oracle.py`) on models the tests
//! generate: relative 1e-9 on every statistic, and the same set of infinite layers.
//!
//! The oracle's values are committed under tests/golden/ (produced only by
//! tests/golden/regenerate.py, which `.ci/run` re-runs against the live oracle), so this needs
//! no Python.

use snrscope_testkit::golden;

use std::{collections::BTreeSet, sync::Arc};

use snrscope::{
    checkpoint::Model,
    spectrum::scan::{self, ScanOptions},
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

/// Builds the golden case's model, scans every matrix its pattern selects with snrscope and
/// compares with the oracle's values. Returns the modules both call infinite.
fn compare(case: &str) -> BTreeSet<String> {
    let tmp = tempfile::tempdir().unwrap();
    let g = golden::golden(case, tmp.path());
    let model = Arc::new(Model::open(g.target()).expect("opens"));
    let jobs: Vec<_> = scan::jobs_matching(&model, &regex::Regex::new(g.case.pattern).unwrap())
        .into_iter()
        .filter(|j| j.slice.is_none())
        .collect();
    let keys = jobs.iter().map(|j| j.module.clone()).collect();
    compare_jobs(&g, model, jobs, keys)
}

/// For a case whose oracle ran on hand-extracted V parts of fused tensors: snrscope's derived
/// module (`… ⊂ …`, sliced by src/fused.rs) against the oracle's value for the hand-extracted
/// part of the same layer's tensor. Returns the layers both call infinite.
fn compare_fused(case: &str, derived: &str) -> BTreeSet<usize> {
    let tmp = tempfile::tempdir().unwrap();
    let g = golden::golden(case, tmp.path());
    assert!(g.case.extract.is_some(), "{case} extracts by hand");
    let model = Arc::new(Model::open(g.target()).expect("opens"));
    let stack = model.main_stack().unwrap();
    assert_eq!(
        stack.default_module(),
        Some(derived),
        "{case}: default module"
    );
    let fused = snrscope::checkpoint::fused::fused_of(derived).unwrap();
    let jobs = scan::jobs_for_module(&model, stack, derived);
    assert_eq!(jobs.len(), golden::ARCH_LAYERS);
    // The oracle keyed the hand-extracted part by its tensor's module name.
    let keys = jobs
        .iter()
        .map(|j| format!("{}.{}.{fused}", stack.prefix, j.layer.unwrap()))
        .collect();
    compare_jobs(&g, model, jobs, keys)
        .iter()
        .map(|m| {
            snrscope::checkpoint::layers::parse_layer_name(m)
                .unwrap()
                .index
        })
        .collect()
}

/// Scans `jobs` and compares each with the oracle's entry `keys[i]`.
fn compare_jobs(
    g: &golden::Golden,
    model: Arc<Model>,
    jobs: Vec<scan::ScanJob>,
    keys: Vec<String>,
) -> BTreeSet<String> {
    let oracle = g.results.as_object().expect("object");
    let results = scan::scan_blocking(
        model,
        jobs.clone(),
        ScanOptions {
            threads: 2,
            ..Default::default()
        },
    );
    assert_eq!(results.len(), jobs.len());
    let ours: Vec<(&str, _)> = keys
        .iter()
        .zip(&results)
        .map(|(k, r)| (k.as_str(), r.outcome.as_ref().expect("scans")))
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
    assert_eq!(compare("bf16_gqa_sharded"), v_proj_set(&[0, 4, 5, 11]));
}

#[test]
fn every_matrix_of_a_bf16_model() {
    assert_eq!(compare("bf16_every_matrix"), v_proj_set(&[1]));
}

#[test]
fn f16_single_file_given_as_a_file() {
    assert_eq!(compare("f16_single_file"), v_proj_set(&[2, 3]));
}

#[test]
fn f32_square_value_projections() {
    let tmp = tempfile::tempdir().unwrap();
    golden::golden("f32_square", tmp.path());
    let model = Model::open(tmp.path()).unwrap();
    let v = model
        .tensor("model.layers.0.self_attn.v_proj.weight")
        .unwrap();
    assert_eq!(v.shape, vec![64, 64], "no GQA: square value projections");
    assert_eq!(compare("f32_square"), v_proj_set(&[4]));
}

#[test]
fn f64_sharded() {
    assert_eq!(compare("f64_sharded"), v_proj_set(&[0, 3]));
}

#[test]
fn two_bf16_shards() {
    assert_eq!(compare("bf16_two_shards"), v_proj_set(&[2, 10, 11]));
}

#[test]
fn larger_shapes_take_faers_blocked_paths() {
    compare("bf16_larger_shapes");
}

/// The cases that stress the Gram method are held to the same 1e-9 by the SVD. The spiked
/// Gaussian (layer 4) is infinite: its bulk is narrow next to its IQR-based threshold.
#[test]
fn gram_stress_shapes_by_svd() {
    assert_eq!(compare("gram_stress"), v_proj_set(&[4]));
}

#[test]
fn phi3_value_part_of_qkv_proj() {
    let inf = compare_fused("phi3_fused_v", "self_attn.v_proj ⊂ qkv_proj");
    assert_eq!(inf, BTreeSet::from([1, 3]), "the planted layers");
}

#[test]
fn gpt2_value_columns_of_c_attn() {
    let inf = compare_fused("gpt2_fused_v", "attn.v_proj ⊂ c_attn");
    assert_eq!(inf, BTreeSet::from([0, 2]), "the planted layers");
}

#[test]
fn gpt_neox_value_rows_of_each_head() {
    let inf = compare_fused("gpt_neox_fused_v", "attention.v_proj ⊂ query_key_value");
    assert_eq!(inf, BTreeSet::from([2, 3]), "the planted layers");
}

#[test]
fn falcon_new_decoder_value_rows_of_each_group() {
    let inf = compare_fused(
        "falcon_new_decoder_fused_v",
        "self_attention.v_proj ⊂ query_key_value",
    );
    assert_eq!(inf, BTreeSet::from([1, 2]), "the planted layers");
}

#[test]
fn dbrx_value_rows_of_wqkv() {
    let inf = compare_fused("dbrx_fused_v", "norm_attn_norm.attn.v_proj ⊂ Wqkv");
    assert_eq!(inf, BTreeSet::from([0, 3]), "the planted layers");
}

#[test]
fn qwen2_vl_text_stack_under_a_prefix() {
    let inf = compare("qwen2_vl_text_stack");
    let want: BTreeSet<String> = [1, 4]
        .iter()
        .map(|l| format!("model.language_model.layers.{l}.self_attn.v_proj"))
        .collect();
    assert_eq!(inf, want);
}

/// Every committed golden file belongs to a case (a stale file would check nothing).
#[test]
fn every_golden_file_has_a_case() {
    for entry in std::fs::read_dir(golden::golden_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(case) = name.strip_suffix(".json") {
            assert!(
                golden::CASES.iter().any(|c| c.name == case),
                "tests/golden/{name} has no case in tests/golden/cases.rs"
            );
        }
    }
}
