//! `snrscope scan X.gguf --out S.json`: the SNR of quantized matrices equals the oracle's on
//! gguf-py's dequantization of the same matrix (to 1e-9, the same infinite set), under
//! llama.cpp's names (`blk.3.attn_v`, the V part of a fused `attn_qkv`); a folder holding the
//! GGUF and a split set of it give the same scan. Fixtures and oracle values:
//! tests/gguf/make_snr_fixtures.py.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use snrscope::{
    checkpoint::{Model, gguf::GgufModel},
    scanfile::{self, ScanEntry},
};
use snrscope_testkit::gguf_builder::{self as builder, Builder};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/gguf")
        .join(name)
}

/// The oracle's entries for one file (its keys carry the file's arch as a prefix), after
/// checking that the fixture is the one the oracle saw.
fn oracle(file: &str, prefix: &str) -> Vec<ScanEntry> {
    let sums = std::fs::read_to_string(fixture("snr.oracle.sha256")).unwrap();
    let want = sums
        .lines()
        .find_map(|l| l.strip_suffix(&format!("  {file}")))
        .unwrap();
    let have: String = Sha256::digest(std::fs::read(fixture(file)).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        have, want,
        "{file} changed: run tests/gguf/make_snr_fixtures.py"
    );
    let (_, entries) = scanfile::read(&fixture("snr.oracle.json")).unwrap();
    entries
        .into_iter()
        .filter_map(|mut e| {
            e.module = e.module.strip_prefix(prefix)?.to_string();
            Some(e)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Every oracle entry has a scanned entry of the same key with the same values.
fn assert_matches(scanned: &[ScanEntry], oracle: &[ScanEntry], derived_suffix: &str) {
    assert_eq!(scanned.len(), oracle.len());
    for o in oracle {
        let key = format!("{}{derived_suffix}", o.module);
        let s = scanned
            .iter()
            .find(|s| s.module == key)
            .unwrap_or_else(|| panic!("no {key} in the scan: {scanned:?}"));
        assert!(s.error.is_none(), "{key}: {:?}", s.error);
        assert_eq!(s.snr.is_infinite(), o.snr.is_infinite(), "{key}");
        assert!(close(s.snr, o.snr), "{key}: {} vs oracle {}", s.snr, o.snr);
        for (k, v) in &o.extra {
            let mine = s.extra(k).unwrap_or_else(|| panic!("{key}: no {k}"));
            assert!(close(mine, *v), "{key}.{k}: {mine} vs oracle {v}");
        }
    }
}

fn scan(target: &Path, out: &Path, extra: &[&str]) -> Vec<ScanEntry> {
    let mut args = vec![
        "scan".to_string(),
        target.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let (code, _, stderr) = crate::snrscope().args(args).run().parts();
    assert_eq!(code, 0, "{stderr}");
    scanfile::read(out).unwrap().1
}

#[test]
fn quantized_attn_v_equals_the_oracle_under_gguf_names() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = scan(&fixture("snr-llama.gguf"), &tmp.path().join("s.json"), &[]);
    let o = oracle("snr-llama.gguf", "llama.");
    assert_eq!(o.len(), 15);
    assert_eq!(o.iter().filter(|e| e.snr.is_infinite()).count(), 2);
    assert_matches(&entries, &o, "");
    assert_eq!(entries[3].module, "blk.3.attn_v");
    assert_eq!(entries[3].module_type, "attn_v");
}

#[test]
fn fused_attn_qkv_gives_its_v_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = scan(&fixture("snr-phi3.gguf"), &tmp.path().join("s.json"), &[]);
    let o = oracle("snr-phi3.gguf", "phi3.");
    assert_eq!(o.len(), 2);
    assert_matches(&entries, &o, " ⊂ attn_qkv");
}

#[test]
fn every_module_by_gguf_name_with_modules() {
    // --modules matches the Hugging Face names the model lists (as for safetensors), and the
    // file still says blk.N.attn_v.
    let tmp = tempfile::tempdir().unwrap();
    let entries = scan(
        &fixture("snr-llama.gguf"),
        &tmp.path().join("s.json"),
        &["--modules", r"layers\.1[0-4]\.self_attn\.v_proj$"],
    );
    let keys: Vec<&str> = entries.iter().map(|e| e.module.as_str()).collect();
    assert_eq!(
        keys,
        [
            "blk.10.attn_v",
            "blk.11.attn_v",
            "blk.12.attn_v",
            "blk.13.attn_v",
            "blk.14.attn_v"
        ]
    );
}

/// The llama fixture's metadata and tensors, rewritten as `n` split parts (layers spread over
/// the parts; metadata in part 1 only, as gguf-split writes it).
fn split_of_llama_fixture(dir: &Path, n: usize) {
    let m = GgufModel::open(&fixture("snr-llama.gguf")).unwrap();
    let tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)> = m
        .tensors()
        .map(|t| {
            let raw = t.read_raw(0..t.info.n_rows()).unwrap();
            (
                t.info.name.clone(),
                t.info.dims.clone(),
                t.info.ggml_type.0,
                raw,
            )
        })
        .collect();
    let u16_kv = |v: u16| {
        let mut b = 2u32.to_le_bytes().to_vec();
        b.extend(v.to_le_bytes());
        b
    };
    for k in 0..n {
        let mut b = Builder::new();
        if k == 0 {
            let mut eps = builder::F32.to_le_bytes().to_vec();
            eps.extend(1e-5f32.to_le_bytes());
            b = b
                .kv_str("general.architecture", "llama")
                .kv_u32("llama.block_count", 15)
                .kv_u32("llama.embedding_length", 256)
                .kv_u32("llama.context_length", 64)
                .kv_u32("llama.attention.head_count", 8)
                .kv_u32("llama.attention.head_count_kv", 1)
                .kv_raw("llama.attention.layer_norm_rms_epsilon", eps);
        }
        let mut count = builder::I32.to_le_bytes().to_vec();
        count.extend((tensors.len() as i32).to_le_bytes());
        b = b
            .kv_raw("split.no", u16_kv(k as u16))
            .kv_raw("split.count", u16_kv(n as u16))
            .kv_raw("split.tensors.count", count);
        for (i, t) in tensors.iter().enumerate() {
            if i % n == k {
                b.tensors.push(t.clone());
            }
        }
        b.write(&dir.join(format!("snr-0000{}-of-0000{n}.gguf", k + 1)));
    }
}

#[test]
fn a_folder_and_a_split_set_scan_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let o = oracle("snr-llama.gguf", "llama.");
    let folder = tmp.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(fixture("snr-llama.gguf"), folder.join("model.gguf")).unwrap();
    assert_matches(&scan(&folder, &tmp.path().join("a.json"), &[]), &o, "");

    let split = tmp.path().join("split");
    std::fs::create_dir(&split).unwrap();
    split_of_llama_fixture(&split, 3);
    let model = Model::open(split.join("snr-00002-of-00003.gguf")).unwrap();
    assert_eq!(model.shards.len(), 3);
    assert_eq!(model.name(), "snr");
    let part2 = split.join("snr-00002-of-00003.gguf");
    assert_matches(&scan(&part2, &tmp.path().join("b.json"), &[]), &o, "");
    assert_matches(&scan(&split, &tmp.path().join("c.json"), &[]), &o, "");
}

#[test]
fn opened_as_a_model_with_hugging_face_names_and_shapes() {
    let m = Model::open(fixture("snr-llama.gguf")).unwrap();
    let stack = m.main_stack().unwrap();
    assert_eq!(stack.prefix, "model.layers");
    assert_eq!(stack.num_layers, 15);
    assert_eq!(stack.default_module(), Some("self_attn.v_proj"));
    let t = m.tensor("model.layers.3.self_attn.v_proj.weight").unwrap();
    assert_eq!(t.shape, vec![32, 256]);
    assert_eq!(
        m.file_name_of("model.layers.3.self_attn.v_proj.weight"),
        "blk.3.attn_v.weight"
    );
    assert_eq!(
        m.scan_key("model.layers.3.self_attn.v_proj"),
        "blk.3.attn_v"
    );
    assert_eq!(
        m.module_of_key("blk.3.attn_v"),
        "model.layers.3.self_attn.v_proj"
    );
    let config = m.config.as_ref().unwrap();
    assert_eq!(config["model_type"], "llama");
    assert_eq!(config["hidden_size"], 256);
    assert_eq!(config["num_key_value_heads"], 1);
    assert_eq!(config["rms_norm_eps"], 1e-5);

    let phi = Model::open(fixture("snr-phi3.gguf")).unwrap();
    let stack = phi.main_stack().unwrap();
    let derived = stack.default_module().unwrap();
    assert_eq!(derived, "self_attn.v_proj ⊂ qkv_proj");
    assert_eq!(
        phi.scan_key(&format!("model.layers.1.{derived}")),
        "blk.1.attn_v ⊂ attn_qkv"
    );
    assert_eq!(
        phi.module_of_key("blk.1.attn_v ⊂ attn_qkv"),
        format!("model.layers.1.{derived}")
    );
}

#[test]
fn the_table_names_modules_as_llama_cpp_does() {
    let (code, stdout, stderr) = crate::snrscope()
        .args([
            "scan".to_string(),
            fixture("snr-phi3.gguf").display().to_string(),
        ])
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows[0].contains("attn_v ⊂ attn_qkv") && rows[0].contains("128x256"),
        "{stdout}"
    );
}
