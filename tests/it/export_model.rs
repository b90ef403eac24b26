//! Pruned-model export of generated models: every kept tensor byte-identical under its new
//! name, dropped layers gone, config and index consistent, shards under the limit.

use snrscope_testkit::models as support;

use std::sync::Arc;

use safetensors::Dtype;
use serde_json::json;
use snrscope::{
    checkpoint::Model,
    demo::ModelSpec,
    export::{self, ExportOptions},
    plan::{Request, Rule, SnrTable, make_plan},
    spectrum::scan::{self, ScanOptions},
    util::cancel::CancelToken,
};
use support::{check_pruned, gen_model, plan, read_tensors};

const BIG: u64 = 5_000_000_000;

fn export(src: &std::path::Path, out: &std::path::Path, n: usize, dropped: &[usize], shard: u64) {
    let model = Model::open(src).unwrap();
    let mut options = ExportOptions::new(out);
    options.shard_size = shard;
    let mut last = None;
    let summary = export::export_model(
        &model,
        &plan(n, dropped),
        &options,
        &mut |p| last = Some(p),
        &CancelToken::default(),
    )
    .unwrap();
    let last = last.expect("progress reported");
    assert_eq!(last.bytes_done, last.bytes_total);
    assert_eq!(summary.bytes, last.bytes_total);
    // Reopens with the library's own loader too.
    let reopened = Model::open(out).unwrap();
    assert_eq!(
        reopened.layout.main_stack().unwrap().num_layers,
        n - dropped.len()
    );
    assert!(reopened.warnings.is_empty(), "{:?}", reopened.warnings);
}

#[test]
fn drops_at_start_middle_end_and_adjacent_bf16() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(8, &[]));
    let cases: &[&[usize]] = &[&[0], &[3], &[7], &[3, 4], &[0, 1, 6, 7], &[0, 2, 4, 6], &[]];
    for (i, dropped) in cases.iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        export(&src, &out, 8, dropped, BIG);
        check_pruned(&src, &out, 8, dropped, BIG);
    }
}

#[test]
fn sharded_f32_source_to_many_small_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(6, &[]);
    spec.dtype = Dtype::F32;
    spec.shards = 3;
    let src = gen_model(tmp.path(), "src", &spec);
    let limit = 60_000;
    let out = tmp.path().join("out");
    export(&src, &out, 6, &[1, 2, 5], limit);
    check_pruned(&src, &out, 6, &[1, 2, 5], limit);
    let shards = read_tensors(&out).data_bytes_of_file.len();
    assert!(shards > 3, "{shards} shards for a 60 kB limit");
}

#[test]
fn sharded_source_to_one_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(5, &[]);
    spec.shards = 3;
    let src = gen_model(tmp.path(), "src", &spec);
    let out = tmp.path().join("out");
    export(&src, &out, 5, &[2], BIG);
    check_pruned(&src, &out, 5, &[2], BIG);
    assert!(out.join("model.safetensors").is_file());
}

#[test]
fn tied_embeddings_stay_tied() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(4, &[]);
    spec.tied_embeddings = true;
    let src = gen_model(tmp.path(), "src", &spec);
    let out = tmp.path().join("out");
    export(&src, &out, 4, &[1], BIG);
    check_pruned(&src, &out, 4, &[1], BIG);
    let t = read_tensors(&out);
    assert!(!t.by_name.contains_key("lm_head.weight"));
    assert!(t.by_name.contains_key("model.embed_tokens.weight"));
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(c["tie_word_embeddings"], json!(true));
}

#[test]
fn per_layer_config_lists_are_shortened() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(6, &[]);
    let types = ["s0", "f1", "s2", "f3", "s4", "f5"];
    spec.extra_config.insert("layer_types".into(), json!(types));
    spec.extra_config.insert(
        "text_config".into(),
        json!({"num_hidden_layers": 6, "layer_types": types}),
    );
    let src = gen_model(tmp.path(), "src", &spec);
    let out = tmp.path().join("out");
    export(&src, &out, 6, &[1, 4], BIG);
    check_pruned(&src, &out, 6, &[1, 4], BIG);
    let text = std::fs::read_to_string(out.join("config.json")).unwrap();
    let c: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(c["layer_types"], json!(["s0", "s2", "f3", "f5"]));
    assert_eq!(
        c["text_config"]["layer_types"],
        json!(["s0", "s2", "f3", "f5"])
    );
    assert_eq!(c["text_config"]["num_hidden_layers"], json!(4));
    // Key order and 2-space formatting kept: the source's keys appear in the same order.
    let src_text = std::fs::read_to_string(src.join("config.json")).unwrap();
    let order = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("  \""))
            .map(|l| l.trim().split('"').nth(1).unwrap().to_string())
            .collect()
    };
    assert_eq!(order(&text), order(&src_text));
}

#[test]
fn mergekit_config_and_model_card_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(6, &[]));
    let out = tmp.path().join("out");
    export(&src, &out, 6, &[2, 3], BIG);
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.join("mergekit_config.yml")).unwrap())
            .unwrap();
    let ranges: Vec<Vec<u64>> = yaml["slices"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| {
            s["sources"][0]["layer_range"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(ranges, vec![vec![0, 2], vec![4, 6]]);
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.contains("test/source"));
    assert!(card.contains("laserQlora"));
    assert!(card.contains("Cluj-Napoca-0.2"));
    assert!(card.contains("| 2 |") && card.contains("| 3 |"), "{card}");
}

/// The full path: scan the v_proj matrices, plan with the seed's rule, export. The generator
/// built layers 1 and 4 with infinite SNR, so those must go.
#[test]
fn scan_plan_export_drops_the_generated_infinite_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(6, &[1, 4]));
    let model = Arc::new(Model::open(&src).unwrap());
    let stack = model.layout.main_stack().unwrap();
    let jobs = scan::jobs_for_module(&model, stack, "self_attn.v_proj");
    let results = scan::scan_blocking(model.clone(), jobs.clone(), ScanOptions::default());
    let mut table = SnrTable::for_stack(stack);
    for (job, r) in jobs.iter().zip(&results) {
        table.set(
            &job.module_type,
            job.layer.unwrap(),
            r.outcome.as_ref().unwrap().snr_ratio,
        );
    }
    let p = make_plan(&table, &Request::default(), "src", "bfloat16").unwrap();
    assert_eq!(p.dropped, vec![1, 4]);
    assert_eq!(p.reason, "self_attn.v_proj SNR infinite");
    let out = tmp.path().join("out");
    let summary = export::export_model(
        &model,
        &p,
        &ExportOptions {
            shard_size: BIG,
            ..ExportOptions::new(out.clone())
        },
        &mut |_| {},
        &CancelToken::default(),
    )
    .unwrap();
    assert_eq!(summary.shards, 1);
    check_pruned(&src, &out, 6, &[1, 4], BIG);
    // Rule variants and manual overrides on the same table.
    let c = Request {
        rule: Rule::Infinite,
        drop: vec![0],
        keep: vec![4],
        ..Request::default()
    };
    let p = make_plan(&table, &c, "src", "bfloat16").unwrap();
    assert_eq!(p.dropped, vec![0, 1]);
    assert_eq!(
        p.reason,
        "self_attn.v_proj SNR infinite; dropped by hand: 0; kept by hand: 4"
    );
}

/// mergekit's dtype: config.json's `torch_dtype`, else `dtype` (also in `text_config`), else
/// the dtype holding most weight bytes.
#[test]
fn dtype_from_config_then_from_the_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(2, &[]);
    spec.dtype = Dtype::F32;
    let src = gen_model(tmp.path(), "src", &spec);
    let dtype_with = |config: serde_json::Value| {
        std::fs::write(src.join("config.json"), config.to_string()).unwrap();
        snrscope::plan::model_dtype(&Model::open(&src).unwrap())
    };
    let n = json!(2);
    assert_eq!(
        dtype_with(json!({"num_hidden_layers": n, "torch_dtype": "bfloat16"})),
        "bfloat16"
    );
    assert_eq!(
        dtype_with(json!({"num_hidden_layers": n, "dtype": "float16"})),
        "float16"
    );
    assert_eq!(
        dtype_with(json!({"num_hidden_layers": n, "text_config": {"torch_dtype": "float16"}})),
        "float16"
    );
    // The weights are F32.
    assert_eq!(dtype_with(json!({"num_hidden_layers": n})), "float32");
}

/// Only the planned stack is renumbered: a second stack (say a vision tower) and the
/// non-layer tensors keep their names and bytes.
#[test]
fn other_stacks_are_copied_unchanged() {
    use safetensors::tensor::TensorView;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mut named: Vec<(String, Vec<u8>)> = Vec::new();
    for l in 0..4u8 {
        named.push((format!("model.layers.{l}.mlp.up_proj.weight"), vec![l; 16]));
    }
    for b in 0..2u8 {
        named.push((format!("vision.blocks.{b}.attn.weight"), vec![100 + b; 16]));
    }
    named.push(("model.embed_tokens.weight".into(), vec![7; 16]));
    let views: Vec<(String, TensorView<'_>)> = named
        .iter()
        .map(|(n, d)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, vec![2, 2], d).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &src.join("model.safetensors")).unwrap();
    std::fs::write(
        src.join("config.json"),
        r#"{"num_hidden_layers": 4, "vision_config": {"num_hidden_layers": 2}}"#,
    )
    .unwrap();
    let model = Model::open(&src).unwrap();
    let out = tmp.path().join("out");
    export::export_model(
        &model,
        &plan(4, &[1]),
        &ExportOptions {
            shard_size: BIG,
            ..ExportOptions::new(out.clone())
        },
        &mut |_| {},
        &CancelToken::default(),
    )
    .unwrap();
    let t = read_tensors(&out);
    let got: Vec<(&str, u8)> = t
        .by_name
        .iter()
        .map(|(n, v)| (n.as_str(), v.2[0]))
        .collect();
    assert_eq!(
        got,
        [
            ("model.embed_tokens.weight", 7),
            ("model.layers.0.mlp.up_proj.weight", 0),
            ("model.layers.1.mlp.up_proj.weight", 2),
            ("model.layers.2.mlp.up_proj.weight", 3),
            ("vision.blocks.0.attn.weight", 100),
            ("vision.blocks.1.attn.weight", 101),
        ]
    );
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        c,
        json!({"num_hidden_layers": 3, "vision_config": {"num_hidden_layers": 2}})
    );
}
