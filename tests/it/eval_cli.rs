//! `snrscope eval` end to end: the binary on generated checkpoints, against the committed
//! transformers reference, and its refusals.

use std::{path::Path, time::Instant};

use serde_json::Value;
use snrscope::demo::ModelSpec;
use snrscope_testkit::eval_models::{self, ArchSpec};

fn reference(name: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/eval/reference.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["fixtures"][name].clone()
}

/// Writes fixture `name` into `dir/name` with its text in `dir/text.txt`.
fn fixture(dir: &Path, name: &str) -> ArchSpec {
    let spec = ArchSpec::fixtures()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap();
    eval_models::write_model(&dir.join(name), &spec).unwrap();
    std::fs::write(dir.join("text.txt"), eval_models::fixture_text(&spec)).unwrap();
    spec
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * b.abs()
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn json_report_matches_transformers_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), "qwen3");
    let before = listing(&tmp.path().join("qwen3"));
    let (code, out, err) = crate::snrscope()
        .args([
            "eval", "qwen3", "--drop", "1,2", "--text", "text.txt", "--json",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object");
    let r = reference("qwen3");
    for side in ["original", "pruned"] {
        let got = v[side]["perplexity"].as_f64().unwrap();
        let want = r[side]["perplexity"].as_f64().unwrap();
        assert!(close(got, want), "{side}: {got} vs transformers {want}");
        assert_eq!(v[side]["tokens"], r[side]["tokens"]);
    }
    assert_eq!(v["pruned"]["dropped"], serde_json::json!([1, 2]));
    assert_eq!(v["original"]["dropped"], serde_json::json!([]));
    let change = v["relative_change"].as_f64().unwrap();
    let ratio =
        v["pruned"]["perplexity"].as_f64().unwrap() / v["original"]["perplexity"].as_f64().unwrap();
    assert!((change - (ratio - 1.0)).abs() < 1e-12);
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        listing(&tmp.path().join("qwen3")),
        before,
        "the input was written to"
    );
}

#[test]
fn a_mergekit_yaml_gives_the_same_choice() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), "llama");
    std::fs::write(
        tmp.path().join("prune.yml"),
        "slices:\n  - sources:\n      - model: llama\n        layer_range: [0, 1]\n  \
         - sources:\n      - model: llama\n        layer_range: [3, 4]\n\
         merge_method: passthrough\ndtype: float32\n",
    )
    .unwrap();
    let (code, out, err) = crate::snrscope()
        .args([
            "eval",
            "llama",
            "--yaml",
            "prune.yml",
            "--text",
            "text.txt",
            "--json",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pruned"]["dropped"], serde_json::json!([1, 2]));
    let want = reference("llama")["pruned"]["perplexity"].as_f64().unwrap();
    assert!(close(v["pruned"]["perplexity"].as_f64().unwrap(), want));
}

#[test]
fn token_ids_stand_in_for_a_missing_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), "mistral");
    std::fs::remove_file(tmp.path().join("mistral/tokenizer.json")).unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["eval", "mistral", "--drop", "1,2"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(
        err.contains("tokenizer.json") && err.contains("--token-ids"),
        "{err}"
    );
    let ids = reference("mistral")["token_ids"].clone();
    std::fs::write(tmp.path().join("ids.json"), ids.to_string()).unwrap();
    let (code, out, err) = crate::snrscope()
        .args([
            "eval",
            "mistral",
            "--drop",
            "1,2",
            "--token-ids",
            "ids.json",
            "--json",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let want = reference("mistral")["original"]["perplexity"]
        .as_f64()
        .unwrap();
    assert!(close(v["original"]["perplexity"].as_f64().unwrap(), want));
}

#[test]
fn refusals_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), "llama");
    // Not enough memory: the numbers and the way out.
    let (code, _, err) = crate::snrscope()
        .args(["eval", "llama", "--drop", "1"])
        .cwd(tmp.path())
        .envs(&[("SNRSCOPE_MEMORY_AVAILABLE", "1000")])
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(
        err.contains("not enough memory") && err.contains("--max-tokens"),
        "{err}"
    );
    // An architecture candle does not cover.
    let cfg = tmp.path().join("llama/config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("\"llama\"", "\"gpt_neox\"")).unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["eval", "llama", "--drop", "1"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(
        err.contains("config.json") && err.contains("gpt_neox") && err.contains("qwen3"),
        "{err}"
    );
    std::fs::write(&cfg, &text).unwrap();
    // A layer the model does not have; a text that is not UTF-8.
    let (code, _, err) = crate::snrscope()
        .args(["eval", "llama", "--drop", "9"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(err.contains("--drop 9"), "{err}");
    std::fs::write(tmp.path().join("bad.txt"), b"ab\xffcd").unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["eval", "llama", "--text", "bad.txt"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(err.contains("bad.txt") && err.contains("UTF-8"), "{err}");
    // A weight whose shape does not fit the config.
    std::fs::write(
        &cfg,
        text.replace("\"intermediate_size\": 96", "\"intermediate_size\": 97"),
    )
    .unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["eval", "llama", "--drop", "1"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(err.contains("mlp.gate_proj") && err.contains("97"), "{err}");
}

/// The demo model with the seed's rule and the built-in sample: what the explorer evaluates.
#[test]
fn the_demo_model_evaluates() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["demo", "demo"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    let started = Instant::now();
    // An interactive budget (the whole sample takes minutes on a loaded 2-core machine).
    let (code, out, err) = crate::snrscope()
        .args([
            "eval",
            "demo",
            "--max-tokens",
            "1024",
            "--window",
            "512",
            "--json",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    // The demo's word-level vocabulary holds the sample's words: no token is <unk>.
    assert!(!err.contains("unknown token"), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["pruned"]["dropped"],
        serde_json::json!(ModelSpec::demo().infinite_layers)
    );
    for side in ["original", "pruned"] {
        let p = v[side]["perplexity"].as_f64().unwrap();
        assert!(p.is_finite() && p > 1.0, "{side}: {p}");
    }
    // For the record only (no timed assertion): cargo test -- --nocapture.
    println!(
        "demo eval (scan + original + pruned, {} tokens): {:.1} s",
        v["tokens"],
        started.elapsed().as_secs_f64()
    );
}

/// English scored by a tokenizer that knows none of its words: the number is given, with a
/// note that it says little about the text.
#[test]
fn a_text_outside_the_vocabulary_gets_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    snrscope::demo::write_model(&tmp.path().join("tiny"), &ModelSpec::tiny(4, &[1])).unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["eval", "tiny", "--drop", "1", "--max-tokens", "64"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("tokens are the tokenizer's unknown token"),
        "{err}"
    );
}
