//! The perplexity evaluation against transformers: tiny checkpoints of every supported
//! architecture, regenerated here by `snrscope_testkit::eval_models`, evaluated original and pruned (the
//! pruned model built in memory), compared with `tests/reference/eval/reference.json`
//! (transformers on the same checkpoints and on snrscope's pruned export; see
//! `make_reference.py` beside it). f32: logits within 1e-4 absolute, perplexity within 1e-4
//! relative, token ids equal.

use std::{
    ops::Range,
    path::Path,
    sync::{Arc, Mutex},
};

use serde_json::Value;
use snrscope::{
    checkpoint::Model,
    forward::{self, EvalOptions, tokens},
    util::cancel::CancelToken,
};
use snrscope_testkit::eval_models::{self, ArchSpec, FIXTURE_DROPPED};

const LOGIT_TOL: f64 = 1e-4;
const PPL_REL_TOL: f64 = 1e-4;

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/eval/reference.json"
    );
    let text = std::fs::read_to_string(path).expect("reference.json is committed");
    serde_json::from_str(&text).expect("reference.json parses")
}

/// Logit rows the reference kept, by global position.
type Rows = Vec<(usize, Vec<f32>)>;

fn run_choice(
    model: &Arc<Model>,
    ids: &[u32],
    dropped: &[usize],
    keep: &[usize],
) -> (forward::Perplexity, Rows) {
    let rows: Arc<Mutex<Rows>> = Default::default();
    let sink = rows.clone();
    let keep = keep.to_vec();
    let mut inspect = move |_: usize, r: Range<usize>, logits: &[f32]| {
        let vocab = logits.len() / r.len();
        for &p in keep.iter().filter(|p| r.contains(p)) {
            let row = logits[(p - r.start) * vocab..(p - r.start + 1) * vocab].to_vec();
            sink.lock().unwrap().push((p, row));
        }
    };
    let options = EvalOptions {
        threads: 2,
        check_memory: true,
        ..Default::default()
    };
    let mut results = forward::evaluate(
        model,
        ids,
        &[dropped.to_vec()],
        &options,
        &CancelToken::default(),
        |_| {},
        Some(&mut inspect),
    );
    let p = results
        .remove(0)
        .expect("not cancelled")
        .expect("evaluates");
    let rows = std::mem::take(&mut *rows.lock().unwrap());
    (p, rows)
}

fn check_fixture(name: &str) {
    let reference = reference();
    let r = &reference["fixtures"][name];
    assert!(r.is_object(), "no reference for {name}");
    let spec = ArchSpec::fixtures()
        .into_iter()
        .find(|s| s.name == name)
        .expect("fixture exists");
    let dir = tempfile::tempdir().unwrap();
    eval_models::write_model(dir.path(), &spec).unwrap();
    let weights = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    assert_eq!(
        format!("{:016x}", eval_models::fnv1a64(&weights)),
        r["weights_fnv1a64"].as_str().unwrap(),
        "{name}: the generator no longer writes the checkpoint the reference was computed on; \
         regenerate it (see tests/reference/eval/make_reference.py)"
    );
    assert_eq!(
        eval_models::fixture_text(&spec),
        r["text"].as_str().unwrap()
    );

    let ids = tokens::tokenize(
        &dir.path().join("tokenizer.json"),
        r["text"].as_str().unwrap(),
    )
    .unwrap();
    let expected_ids: Vec<u32> = serde_json::from_value(r["token_ids"].clone()).unwrap();
    assert_eq!(
        ids, expected_ids,
        "{name}: token ids differ from transformers'"
    );

    let model = Arc::new(Model::open(dir.path()).unwrap());
    for (key, dropped) in [("original", &[][..]), ("pruned", FIXTURE_DROPPED)] {
        let want = &r[key];
        let keep: Vec<usize> = want["logits"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse().unwrap())
            .collect();
        let (got, rows) = run_choice(&model, &ids, dropped, &keep);
        assert_eq!(
            got.window as u64,
            r["window"].as_u64().unwrap(),
            "{name} {key}"
        );
        assert_eq!(
            got.tokens as u64,
            want["tokens"].as_u64().unwrap(),
            "{name} {key}"
        );
        assert_eq!(
            got.layers as u64,
            want["layers"].as_u64().unwrap(),
            "{name} {key}"
        );
        assert_eq!(rows.len(), keep.len(), "{name} {key}: every kept row seen");
        let mut max_delta = 0f64;
        for (p, row) in &rows {
            let w: Vec<f64> =
                serde_json::from_value(want["logits"][p.to_string()].clone()).unwrap();
            assert_eq!(row.len(), w.len());
            for (a, b) in row.iter().zip(&w) {
                max_delta = max_delta.max((*a as f64 - b).abs());
            }
        }
        let ppl = want["perplexity"].as_f64().unwrap();
        let rel = (got.perplexity - ppl).abs() / ppl;
        // One line per comparison, for the record (cargo test -- --nocapture).
        println!(
            "{name:<12} {key:<8} ppl {:>10.4} (transformers {ppl:>10.4}) rel Δ {rel:.1e}  max |Δlogit| {max_delta:.1e}",
            got.perplexity
        );
        assert!(
            max_delta <= LOGIT_TOL,
            "{name} {key}: max |Δlogit| {max_delta:e} > {LOGIT_TOL:e}"
        );
        assert!(
            rel <= PPL_REL_TOL,
            "{name} {key}: perplexity {} vs transformers {ppl} (relative {rel:e})",
            got.perplexity
        );
    }
}

fixture_tests! {
    llama_matches_transformers => "llama",
    llama3_bf16_tied_rope_scaling_matches_transformers => "llama3-bf16",
    llama_yarn_with_biases_matches_transformers => "llama-yarn-bias",
    llama_linear_rope_matches_transformers => "llama-linear",
    mistral_sliding_window_matches_transformers => "mistral",
    mixtral_experts_and_sliding_window_match_transformers => "mixtral",
    qwen2_f16_tied_bias_matches_transformers => "qwen2-f16",
    qwen2_sliding_window_by_max_window_layers_matches_transformers => "qwen2-swa",
    qwen3_matches_transformers => "qwen3",
    qwen3_moe_matches_transformers => "qwen3-moe",
    gemma2_alternating_window_softcaps_match_transformers => "gemma2",
    gemma3_local_global_rope_matches_transformers => "gemma3",
    phi3_sliding_window_matches_transformers => "phi3",
    phi3_longrope_partial_rotary_matches_transformers => "phi3-longrope",
}

#[test]
fn reference_states_its_versions() {
    let r = reference();
    for k in ["torch", "transformers", "tokenizers"] {
        assert!(r["versions"][k].is_string(), "version of {k} missing");
    }
    assert!(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/reference/eval/make_reference.py"
        ))
        .is_file()
    );
}
