//! Outputs and requests that cannot succeed are refused before the scan, not after it: the
//! scan cache (a folder of this test's own) stays empty, so nothing was scanned.

use std::path::Path;

use snrscope::demo::ModelSpec;
use snrscope_testkit::models::gen_model;

/// Scan-cache entries written (one per matrix scanned).
fn cache_entries(dir: &Path) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else if p.extension().is_some_and(|x| x == "snr") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

/// `scan --out` and `export --yaml / --unfrozen-yaml / --model-out` into a folder that does not
/// exist: refused at once (it scanned for minutes, then failed with "cannot create: No such
/// file or directory: No such file or directory (os error 2)"), the reason said once.
#[test]
fn outputs_in_a_missing_folder_are_refused_before_scanning() {
    let tmp = tempfile::tempdir().unwrap();
    gen_model(tmp.path(), "m", &ModelSpec::tiny(4, &[1]));
    let cache = tmp.path().join("cache");
    for args in [
        vec!["scan", "m", "--out", "missing/x.json"],
        vec!["scan", "m", "--part", "1/2", "--out", "missing/x.json"],
        vec!["export", "m", "--yaml", "missing/p.yml"],
        vec!["export", "m", "--unfrozen-yaml", "missing/u.yml"],
        vec!["export", "m", "--model-out", "missing/out"],
        vec![
            "export",
            "m",
            "--model-out",
            "out",
            "--yaml",
            "missing/p.yml",
        ],
    ] {
        let (code, _, err) = crate::snrscope()
            .args(&args)
            .cwd(tmp.path())
            .cache(&cache)
            .run()
            .parts();
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            err.contains("missing") && err.contains("does not exist"),
            "{args:?}: {err}"
        );
        assert_eq!(cache_entries(&cache), 0, "{args:?} scanned first: {err}");
        assert!(!tmp.path().join("out").exists());
    }
}

/// An I/O error's reason appears once, not again as its "cause".
#[test]
fn an_io_reason_is_said_once() {
    let tmp = tempfile::tempdir().unwrap();
    gen_model(tmp.path(), "m", &ModelSpec::tiny(4, &[1]));
    let (code, _, err) = crate::snrscope()
        .args(["export", "m", "--scan", "nowhere.json", "--yaml", "p.yml"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("nowhere.json"), "{err}");
}

/// `eval` of a model type the forward pass does not run: refused before the scan its rule
/// needs (it scanned, then refused).
#[test]
fn eval_of_an_unsupported_type_is_refused_before_scanning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = gen_model(tmp.path(), "m", &ModelSpec::tiny(4, &[1]));
    let config = dir.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["model_type"] = "falcon".into();
    std::fs::write(&config, v.to_string()).unwrap();
    std::fs::write(tmp.path().join("ids.json"), "[1, 2, 3, 4, 5]").unwrap();
    let cache = tmp.path().join("cache");
    let (code, _, err) = crate::snrscope()
        .args(["eval", "m", "--token-ids", "ids.json"])
        .cwd(tmp.path())
        .cache(&cache)
        .run()
        .parts();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("falcon") && err.contains("config.json"),
        "{err}"
    );
    assert_eq!(cache_entries(&cache), 0, "scanned first: {err}");
}

/// `export SCAN.json --yaml` without --model-name: refused, as the explorer refuses it (it
/// wrote `model: /path/to/SCAN.json` with only a note).
#[test]
fn a_yaml_from_a_scan_file_needs_a_model_name() {
    let tmp = tempfile::tempdir().unwrap();
    gen_model(tmp.path(), "m", &ModelSpec::tiny(4, &[1]));
    let (code, _, err) = crate::snrscope()
        .args(["scan", "m", "--out", "scan.json"])
        .cwd(tmp.path())
        .cache(tmp.path().join("cache"))
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = crate::snrscope()
        .args(["export", "scan.json", "--yaml", "p.yml"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--model-name") && err.contains("scan.json"),
        "{err}"
    );
    assert!(!tmp.path().join("p.yml").exists());
    // Without --yaml there is no `model:` to name: a Spectrum selection is still written.
    let (code, _, err) = crate::snrscope()
        .args(["export", "scan.json", "--unfrozen-yaml", "u.yml"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
}

/// `export ./m --yaml` writes the folder's absolute path, the explorer's rule (it wrote
/// `model: ./m`, which mergekit reads as a Hugging Face repo id).
#[test]
fn a_relative_model_path_becomes_the_absolute_folder_in_the_yaml() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = gen_model(tmp.path(), "m", &ModelSpec::tiny(4, &[1]));
    let abs = std::fs::canonicalize(&dir).unwrap();
    for (model, yaml) in [("./m", "a.yml"), ("m/", "b.yml")] {
        let (code, _, err) = crate::snrscope()
            .args(["export", model, "--yaml", yaml])
            .cwd(tmp.path())
            .cache(tmp.path().join("cache"))
            .run()
            .parts();
        assert_eq!(code, 0, "{err}");
        let text = std::fs::read_to_string(tmp.path().join(yaml)).unwrap();
        assert!(
            text.contains(&format!("model: {}\n", abs.display())),
            "{model}: {text}"
        );
    }
}

/// Module names with terminal escape sequences (from a scan file's keys, or a model's tensor
/// names) are printed escaped in export's `plan:` and `dropped` lines, not executed.
#[test]
fn escape_sequences_in_module_names_are_printed_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let ty = r"self_attn.v\u001b]0;pwned\u0007_proj";
    let entry = |l: usize, snr: &str| {
        format!(r#""model\u001b[2J.layers.{l}.{ty}": {{"snr": {snr}, "type": "{ty}"}}"#)
    };
    let scan = format!(
        "{{{}, {}, {}}}",
        entry(0, "1.0"),
        entry(1, "Infinity"),
        entry(2, "2.0")
    );
    std::fs::write(tmp.path().join("scan.json"), scan).unwrap();
    let (code, out, err) = crate::snrscope()
        .args(["export", "scan.json"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("plan: 2 of 3 layers"), "{out}");
    assert!(out.contains("dropped (self_attn.v"), "{out}");
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
}
