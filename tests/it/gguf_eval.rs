//! `snrscope eval X.gguf`: the perplexity of a GGUF through the streamed forward pass, its
//! config rebuilt from the metadata and its Q/K rows put back in Hugging Face's order.
//!
//! The GGUF is converted from a small llama checkpoint the way llama.cpp's
//! `convert_hf_to_gguf.py` does it (`snrscope_testkit::gguf_convert`: its tensor names, its
//! metadata keys, its `permute` of `q_proj`/`k_proj` rows written from the converter's code,
//! not from snrscope's), once in F32 — whose perplexity must equal the safetensors
//! checkpoint's on the same token ids — and once with the matrices in Q8_0 (quantized by ggml's reference rule):
//! finite, and close.

use std::path::Path;

use snrscope_testkit::gguf_convert::{convert_llama, small_llama};

fn perplexities(target: &Path, ids: &Path, drop: Option<&str>) -> (f64, Option<f64>) {
    let mut args = vec![
        "eval".to_string(),
        target.display().to_string(),
        "--token-ids".into(),
        ids.display().to_string(),
        "--json".into(),
        "--threads".into(),
        "2".into(),
    ];
    if let Some(d) = drop {
        args.extend(["--drop".into(), d.into()]);
    }
    let (code, stdout, stderr) = crate::snrscope().args(args).run().parts();
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    (
        v["original"]["perplexity"].as_f64().unwrap(),
        v["pruned"]["perplexity"].as_f64(),
    )
}

#[test]
fn f32_gguf_equals_its_checkpoint_and_q8_0_is_close() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = small_llama();
    let st = tmp.path().join("st");
    snrscope_testkit::eval_models::write_model(&st, &spec).unwrap();
    let f32_gguf = tmp.path().join("m-f32.gguf");
    let q8_gguf = tmp.path().join("m-q8_0.gguf");
    convert_llama(&spec, &f32_gguf, false, false);
    convert_llama(&spec, &q8_gguf, true, false);
    let ids = tmp.path().join("ids.txt");
    let text: Vec<String> = (0..60u32)
        .map(|i| ((i * 37 + 11) % 128).to_string())
        .collect();
    std::fs::write(&ids, text.join(" ")).unwrap();

    let (st_full, st_pruned) = perplexities(&st, &ids, Some("1"));
    let (g_full, g_pruned) = perplexities(&f32_gguf, &ids, Some("1"));
    let (st_pruned, g_pruned) = (st_pruned.unwrap(), g_pruned.unwrap());
    assert!(st_full.is_finite() && st_full > 1.0);
    let rel = |a: f64, b: f64| (a - b).abs() / b;
    assert!(
        rel(g_full, st_full) < 1e-5,
        "F32 GGUF {g_full} vs safetensors {st_full}"
    );
    assert!(
        rel(g_pruned, st_pruned) < 1e-5,
        "pruned: F32 GGUF {g_pruned} vs safetensors {st_pruned}"
    );
    assert!(rel(st_pruned, st_full) > 1e-3, "dropping a layer shows");

    // Without a vocabulary in the file, the text cannot be tokenized: said once, with the way out.
    let (code, _, stderr) = crate::snrscope()
        .args(["eval".to_string(), f32_gguf.display().to_string()])
        .run()
        .parts();
    assert_ne!(code, 0);
    assert_eq!(stderr.matches("m-f32.gguf").count(), 1, "{stderr}");
    assert!(
        stderr.contains("no tokenizer") && stderr.contains("--token-ids"),
        "{stderr}"
    );

    let (q_full, _) = perplexities(&q8_gguf, &ids, None);
    assert!(q_full.is_finite());
    assert!(
        rel(q_full, st_full) < 0.02 && q_full != g_full,
        "Q8_0 {q_full} vs F32 {st_full}"
    );
}

/// A band of rows that starts and ends inside a head (as bands of a large `attn_q` do) reads
/// the checkpoint's own rows: only the heads it covers are read and put back in order.
#[test]
fn a_band_inside_heads_reads_the_checkpoints_rows() {
    use std::sync::Arc;

    use snrscope::{
        checkpoint::Model,
        forward::source::{MappedModel, WeightSource},
    };
    let tmp = tempfile::tempdir().unwrap();
    let spec = small_llama();
    let st = tmp.path().join("st");
    snrscope_testkit::eval_models::write_model(&st, &spec).unwrap();
    let gguf = tmp.path().join("m-f32.gguf");
    convert_llama(&spec, &gguf, false, false);
    let st = MappedModel::new(Arc::new(Model::open(&st).unwrap()));
    let gguf = MappedModel::new(Arc::new(Model::open(&gguf).unwrap()));
    // head_dim 16: q rows 21..45 start inside head 1 and end inside head 2; k rows 20..30 lie
    // inside head 1 (of 2).
    for name in [
        "model.layers.1.self_attn.q_proj.weight",
        "model.layers.1.self_attn.k_proj.weight",
    ] {
        let rows = if name.contains("k_proj") {
            20..30
        } else {
            21..45
        };
        let (mut want, mut got) = (Vec::new(), Vec::new());
        st.read_rows(name, rows.clone(), &mut want).unwrap();
        gguf.read_rows(name, rows, &mut got).unwrap();
        assert_eq!(got, want, "{name}");
    }
}
