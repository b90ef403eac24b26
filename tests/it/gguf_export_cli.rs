//! `snrscope export X.gguf --drop 0,5 --gguf-out P.gguf`: the seed's rule and the hand choice
//! decide, the pruned GGUF holds the kept layers byte for byte; --force, the input never an
//! output, the wrong output kind refused; `--yaml` of a GGUF needs the Hugging Face model,
//! prefilled from `general.source.repo_url`.

use std::path::{Path, PathBuf};

use snrscope::checkpoint::gguf::GgufModel;
use snrscope_testkit::gguf_builder::llama;

fn fixture_copy(dir: &Path) -> PathBuf {
    let p = dir.join("m.gguf");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gguf/snr-llama.gguf"),
        &p,
    )
    .unwrap();
    p
}

fn raw(m: &GgufModel, name: &str) -> (u32, Vec<u8>) {
    let t = m.tensor(name).unwrap();
    (t.info.ggml_type.0, t.read_raw(0..t.info.n_rows()).unwrap())
}

#[test]
fn drop_writes_the_kept_layers_renumbered() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture_copy(tmp.path());
    let out = tmp.path().join("p.gguf");
    let (code, stdout, stderr) = crate::snrscope()
        .args(["export", "m.gguf", "--drop", "0,5", "--gguf-out", "p.gguf"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    // The seed's rule drops the infinite layers 13 and 14 too.
    assert!(stdout.contains("kept: [1,5) [6,13)"), "{stdout}");
    let a = GgufModel::open(&src).unwrap();
    let b = GgufModel::open(&out).unwrap();
    assert_eq!(b.block_count(), Some(11));
    let kept = [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12];
    assert_eq!(b.len(), 11);
    for (new, old) in kept.iter().enumerate() {
        assert_eq!(
            raw(&b, &format!("blk.{new}.attn_v.weight")),
            raw(&a, &format!("blk.{old}.attn_v.weight")),
            "new layer {new} is old layer {old}"
        );
    }
    // The input is untouched (it is opened read-only; its bytes are the fixture's).
    assert_eq!(
        std::fs::read(&src).unwrap(),
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gguf/snr-llama.gguf"))
            .unwrap()
    );

    // Again: refused without --force, replaced with it.
    std::fs::write(&out, "old").unwrap();
    let (code, _, stderr) = crate::snrscope()
        .args(["export", "m.gguf", "--drop", "0", "--gguf-out", "p.gguf"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_ne!(code, 0);
    assert!(
        stderr.contains("p.gguf") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"old");
    let (code, _, stderr) = crate::snrscope()
        .args([
            "export",
            "m.gguf",
            "--drop",
            "0",
            "--gguf-out",
            "p.gguf",
            "--force",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(GgufModel::open(&out).unwrap().block_count(), Some(12));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_input_is_never_the_output_and_the_kinds_must_match() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture_copy(tmp.path());
    std::fs::hard_link(&src, tmp.path().join("link.gguf")).unwrap();
    for target in ["m.gguf", "link.gguf"] {
        let (code, _, stderr) = crate::snrscope()
            .args([
                "export",
                "m.gguf",
                "--drop",
                "0",
                "--gguf-out",
                target,
                "--force",
            ])
            .cwd(tmp.path())
            .run()
            .parts();
        assert_ne!(code, 0, "{target}");
        assert!(stderr.contains(target), "{stderr}");
    }
    let (code, _, stderr) = crate::snrscope()
        .args(["export", "m.gguf", "--drop", "0", "--model-out", "out"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_ne!(code, 0);
    assert!(
        stderr.contains("is a GGUF") && stderr.contains("--gguf-out"),
        "{stderr}"
    );
    assert!(!tmp.path().join("out").exists());
    let st = tmp.path().join("st");
    snrscope::demo::write_model(&st, &snrscope::demo::ModelSpec::tiny(4, &[])).unwrap();
    let (code, _, stderr) = crate::snrscope()
        .args(["export", "st", "--drop", "0", "--gguf-out", "x.gguf"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_ne!(code, 0);
    assert!(stderr.contains("is not a GGUF"), "{stderr}");
    assert!(!tmp.path().join("x.gguf").exists());
}

#[test]
fn yaml_of_a_gguf_names_its_hugging_face_model() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_copy(tmp.path());
    let (code, _, stderr) = crate::snrscope()
        .args(["export", "m.gguf", "--yaml", "p.yml"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_ne!(code, 0);
    assert!(stderr.contains("--model-name"), "{stderr}");
    assert!(!tmp.path().join("p.yml").exists());

    let (code, _, stderr) = crate::snrscope()
        .args([
            "export",
            "m.gguf",
            "--yaml",
            "p.yml",
            "--model-name",
            "org/base",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    let y: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(tmp.path().join("p.yml")).unwrap()).unwrap();
    let s = &y["slices"][0]["sources"][0];
    assert_eq!(s["model"].as_str(), Some("org/base"));
    // Layers 13 and 14 (infinite SNR) dropped: the HF model's layer numbers.
    assert_eq!(s["layer_range"][0].as_u64(), Some(0));
    assert_eq!(s["layer_range"][1].as_u64(), Some(13));

    // Prefilled from the metadata.
    llama(4)
        .kv_str(
            "general.source.repo_url",
            "https://huggingface.co/meta-llama/Llama-3.2-1B",
        )
        .write(&tmp.path().join("src.gguf"));
    let (code, _, stderr) = crate::snrscope()
        .args(["export", "src.gguf", "--drop", "1", "--yaml", "q.yml"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(tmp.path().join("q.yml")).unwrap();
    assert!(text.contains("model: meta-llama/Llama-3.2-1B"), "{text}");
}

#[test]
fn a_saved_scan_with_gguf_names_drives_the_export() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_copy(tmp.path());
    let (code, _, stderr) = crate::snrscope()
        .args(["scan", "m.gguf", "--out", "s.json"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = crate::snrscope()
        .args([
            "export",
            "m.gguf",
            "--scan",
            "s.json",
            "--gguf-out",
            "p.gguf",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("kept: [0,13)"), "{stdout}");
    let b = GgufModel::open(&tmp.path().join("p.gguf")).unwrap();
    assert_eq!(b.block_count(), Some(13));
}

#[test]
fn module_by_its_llama_cpp_name() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_copy(tmp.path());
    let (code, stdout, stderr) = crate::snrscope()
        .args([
            "export",
            "m.gguf",
            "--module",
            "attn_v",
            "--rule",
            "lowest:2",
            "--yaml",
            "p.yml",
            "--model-name",
            "org/base",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    // The two lowest finite attn_v SNR of the fixture (tests/gguf/snr.oracle.json): the random
    // K-quant layers 12 and 11.
    assert!(stdout.contains("kept: [0,11) [13,15)"), "{stdout}");
    let (code, _, stderr) = crate::snrscope()
        .args(["export", "m.gguf", "--module", "attn_q", "--yaml", "q.yml"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_ne!(code, 0);
    assert!(stderr.contains("attn_q"), "{stderr}");
}
