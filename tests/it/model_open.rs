//! Bad input: each case yields one clear error naming the file and the problem, never a panic,
//! and the input is never written to.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use snrscope::{
    checkpoint::{Model, OpenError},
    demo::{ModelSpec, write_model},
};

fn tiny_model(dir: &Path, shards: usize) {
    let mut spec = ModelSpec::tiny(4, &[1]);
    spec.shards = shards;
    write_model(dir, &spec).unwrap();
}

fn err(path: &Path) -> (OpenError, String) {
    let e = Model::open(path).expect_err("must not open");
    let msg = e.to_string();
    (e, msg)
}

/// Every file's bytes and mtime, to prove opening never writes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = fs::metadata(&p).unwrap().modified().unwrap();
            (p.clone(), fs::read(&p).unwrap(), m)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn missing_path() {
    let (e, msg) = err(Path::new("/nonexistent/model"));
    assert!(matches!(e, OpenError::NotFound { .. }));
    assert!(msg.contains("/nonexistent/model"), "{msg}");
}

#[test]
fn missing_config() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), 1);
    fs::remove_file(dir.path().join("config.json")).unwrap();
    let (e, msg) = err(dir.path());
    assert!(matches!(e, OpenError::MissingConfig { .. }));
    assert!(msg.contains("config.json"), "{msg}");
}

#[test]
fn config_with_invalid_json() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), 1);
    fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let (e, msg) = err(dir.path());
    assert!(matches!(e, OpenError::InvalidJson { .. }));
    assert!(
        msg.contains("config.json") && msg.contains("invalid JSON"),
        "{msg}"
    );
}

#[test]
fn folder_without_weights() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("config.json"), "{}").unwrap();
    // Other .bin files (a Trainer's training_args.bin) are not weights and are never read.
    fs::write(dir.path().join("training_args.bin"), b"x").unwrap();
    let (e, msg) = err(dir.path());
    assert!(matches!(e, OpenError::NoSafetensors { .. }));
    assert!(
        msg.contains("no .safetensors") && msg.contains("pytorch_model.bin"),
        "{msg}"
    );
    // A pytorch_model.bin that is not a torch.save zip is refused, naming it (tests/torch_bin.rs
    // has the rest).
    fs::write(dir.path().join("pytorch_model.bin"), b"x").unwrap();
    let (e, msg) = err(dir.path());
    assert!(matches!(e, OpenError::BadBin { .. }), "{e:?}");
    assert!(
        msg.contains("pytorch_model.bin") && msg.contains("not a PyTorch .bin checkpoint"),
        "{msg}"
    );
}

#[test]
fn truncated_shard() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), 2);
    let shard = dir.path().join("model-00002-of-00002.safetensors");
    let len = fs::metadata(&shard).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let (e, msg) = err(dir.path());
    match e {
        OpenError::Truncated {
            path,
            expected,
            actual,
        } => {
            assert_eq!(path, shard);
            assert_eq!((expected, actual), (len, len - 100));
        }
        other => panic!("{other:?}"),
    }
    assert!(msg.contains("model-00002-of-00002.safetensors") && msg.contains("truncated"));
}

#[test]
fn file_cut_inside_its_header() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), 1);
    let f = dir.path().join("model.safetensors");
    let bytes = fs::read(&f).unwrap();
    fs::write(&f, &bytes[..40]).unwrap();
    let (e, msg) = err(&f);
    assert!(matches!(e, OpenError::Truncated { .. }), "{e:?}");
    assert!(msg.contains("model.safetensors"), "{msg}");
    fs::write(&f, &bytes[..5]).unwrap();
    let (e, _) = err(&f);
    assert!(matches!(e, OpenError::BadHeader { .. }), "{e:?}");
}

/// Writes a safetensors file with a hand-made header and `data_len` zero bytes of data.
fn raw_safetensors(path: &Path, header: &str, data_len: usize) {
    raw_safetensors_with(path, header, &vec![0u8; data_len]);
}

fn raw_safetensors_with(path: &Path, header: &str, data: &[u8]) {
    let mut h = header.as_bytes().to_vec();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend(h);
    bytes.extend(data);
    fs::write(path, bytes).unwrap();
}

#[test]
fn header_with_invalid_json() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("model.safetensors");
    raw_safetensors(&f, "{\"a\": [1,", 0);
    let (e, msg) = err(&f);
    assert!(matches!(e, OpenError::BadHeader { .. }));
    assert!(
        msg.contains("model.safetensors") && msg.contains("JSON"),
        "{msg}"
    );
}

#[test]
fn offsets_past_the_file_or_overlapping() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("model.safetensors");
    // Offsets promise 32 bytes, the file holds 16.
    raw_safetensors(
        &f,
        r#"{"a":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]}}"#,
        16,
    );
    let (e, msg) = err(&f);
    assert!(matches!(e, OpenError::Truncated { .. }), "{e:?}");
    assert!(msg.contains("model.safetensors"), "{msg}");
    // Two tensors sharing bytes.
    raw_safetensors(
        &f,
        r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}}"#,
        24,
    );
    let (e, msg) = err(&f);
    assert!(matches!(e, OpenError::BadHeader { .. }), "{e:?}");
    assert!(msg.contains("overlap"), "{msg}");
    // Offsets that disagree with shape x dtype.
    raw_safetensors(
        &f,
        r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}"#,
        8,
    );
    let (e, _) = err(&f);
    assert!(matches!(e, OpenError::BadHeader { .. }), "{e:?}");
}

#[test]
fn index_naming_a_missing_shard() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), 2);
    fs::remove_file(dir.path().join("model-00001-of-00002.safetensors")).unwrap();
    let (e, msg) = err(dir.path());
    assert!(matches!(e, OpenError::MissingShard { .. }));
    assert!(
        msg.contains("model.safetensors.index.json") && msg.contains("model-00001-of-00002"),
        "{msg}"
    );
}

#[test]
fn tensor_stored_in_two_shards() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), 1);
    // A second file holding a tensor of the same name, without an index: both are read.
    let mut spec = ModelSpec::tiny(1, &[]);
    spec.vocab = 16;
    let other = tempfile::tempdir().unwrap();
    write_model(other.path(), &spec).unwrap();
    fs::copy(
        other.path().join("model.safetensors"),
        dir.path().join("extra.safetensors"),
    )
    .unwrap();
    let (e, msg) = err(dir.path());
    assert!(matches!(e, OpenError::DuplicateTensor { .. }), "{e:?}");
    assert!(
        msg.contains("stored twice") && msg.contains("extra.safetensors"),
        "{msg}"
    );
}

#[test]
fn index_that_misplaces_a_tensor() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), 2);
    let idx = dir.path().join("model.safetensors.index.json");
    let text = fs::read_to_string(&idx).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["weight_map"]["model.embed_tokens.weight"] = "model-00002-of-00002.safetensors".into();
    fs::write(&idx, v.to_string()).unwrap();
    let (e, msg) = err(dir.path());
    assert!(matches!(e, OpenError::BadIndex { .. }), "{e:?}");
    assert!(msg.contains("model.embed_tokens.weight"), "{msg}");
}

#[test]
fn a_scan_json_is_not_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("scan.json");
    fs::write(&f, "{}").unwrap();
    let (e, _) = err(&f);
    assert!(matches!(e, OpenError::NotSafetensors { .. }));
}

#[test]
fn opening_and_scanning_never_write_the_input() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), 2);
    let before = snapshot(dir.path());
    // Its own scan cache: never the user's, never another test's.
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .env("SNRSCOPE_CACHE_DIR", cache.path())
        .args(["scan"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(before, snapshot(dir.path()));
}

#[test]
fn cli_reports_bad_input_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), 2);
    let shard = dir.path().join("model-00002-of-00002.safetensors");
    let bytes = fs::read(&shard).unwrap();
    fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    // Its own scan cache: never the user's, never another test's.
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .env("SNRSCOPE_CACHE_DIR", cache.path())
        .arg("scan")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("model-00002-of-00002.safetensors"),
        "{stderr}"
    );
    assert!(stderr.contains("truncated"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unsupported_dtype_is_listed_not_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("model.safetensors");
    raw_safetensors(
        &f,
        r#"{"model.layers.0.self_attn.v_proj.weight":{"dtype":"I8","shape":[2,4],"data_offsets":[0,8]},"model.layers.1.self_attn.v_proj.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}}"#,
        24,
    );
    let model = Model::open(&f).unwrap();
    let t = model
        .tensor("model.layers.0.self_attn.v_proj.weight")
        .unwrap();
    assert!(!t.is_scannable_dtype());
    // Its own scan cache: never the user's, never another test's.
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .env("SNRSCOPE_CACHE_DIR", cache.path())
        .arg("scan")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "finished, but one matrix failed"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("I8"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be scanned"), "{stderr}");
}

#[test]
fn nan_matrix_reports_an_error_and_the_scan_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("model.safetensors");
    let mut data = Vec::new();
    for x in [1.0f32, f32::NAN, 0.5, 2.0] {
        data.extend(x.to_le_bytes());
    }
    for x in [1.0f32, 0.0, 0.0, 2.0] {
        data.extend(x.to_le_bytes());
    }
    let header = r#"{"model.layers.0.self_attn.v_proj.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"model.layers.1.self_attn.v_proj.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]}}"#;
    raw_safetensors_with(&f, header, &data);
    let json = dir.path().join("out.json");
    // Its own scan cache: never the user's, never another test's.
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .env("SNRSCOPE_CACHE_DIR", cache.path())
        .arg("scan")
        .arg(&f)
        .arg("--out")
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let (_, entries) = snrscope::scanfile::read(&json).unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries[0].snr.is_nan());
    assert!(entries[0].error.as_deref().unwrap().contains("NaN"));
    // diag(1, 2): S = [2, 1], q25 = 1.25, q75 = 1.75, sigma = 0.5/1.349, threshold = 2 sigma
    // = 0.741 < 1: no noise, infinite.
    assert_eq!(entries[1].snr, f64::INFINITY);
    assert!(entries[1].error.is_none());
}
