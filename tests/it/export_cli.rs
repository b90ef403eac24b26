//! `snrscope export` end to end: the binary on generated models and scan files.

use snrscope_testkit::models as support;

use std::{path::Path, process::Command};

use snrscope::demo::ModelSpec;
use support::{check_pruned, gen_model, names_in};

fn ranges(yaml_path: &Path) -> (String, Vec<[u64; 2]>, String) {
    let v: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(yaml_path).unwrap()).unwrap();
    let slices = v["slices"].as_sequence().unwrap();
    let model = slices[0]["sources"][0]["model"]
        .as_str()
        .unwrap()
        .to_string();
    let r = slices
        .iter()
        .map(|s| {
            let r = &s["sources"][0]["layer_range"];
            [r[0].as_u64().unwrap(), r[1].as_u64().unwrap()]
        })
        .collect();
    (model, r, v["dtype"].as_str().unwrap().to_string())
}

/// The seed's rule on a model whose layers 2 and 5 have infinite v_proj SNR.
#[test]
fn yaml_and_model_from_a_model() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(8, &[2, 5]));
    let (code, stdout, stderr) = crate::snrscope()
        .args([
            "export",
            "src",
            "--model-out",
            "pruned",
            "--yaml",
            "prune.yml",
            "--shard-size",
            "100K",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("kept: [0,2) [3,5) [6,8)"), "{stdout}");
    assert!(
        stdout.contains("layer   2  inf") && stdout.contains("layer   5  inf"),
        "{stdout}"
    );
    let (model, r, dtype) = ranges(&tmp.path().join("prune.yml"));
    // The folder's absolute path, as the explorer writes it (mergekit reads `src` as a repo id).
    let abs = std::fs::canonicalize(&src).unwrap();
    assert_eq!(
        (model.as_str(), dtype.as_str()),
        (abs.to_str().unwrap(), "bfloat16")
    );
    assert_eq!(r, vec![[0, 2], [3, 5], [6, 8]]);
    check_pruned(&src, &tmp.path().join("pruned"), 8, &[2, 5], 100_000);
    assert_eq!(names_in(tmp.path()), vec!["prune.yml", "pruned", "src"]);
}

#[test]
fn overrides_module_and_model_name() {
    let tmp = tempfile::tempdir().unwrap();
    gen_model(tmp.path(), "src", &ModelSpec::tiny(8, &[2, 5]));
    let (code, _, stderr) = crate::snrscope()
        .args([
            "export",
            "src",
            "--drop",
            "0,6-7",
            "--keep",
            "5",
            "--module",
            "self_attn.v_proj",
            "--model-name",
            "org/Model-8L",
            "--dtype",
            "float16",
            "--yaml",
            "p.yml",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    let (model, r, dtype) = ranges(&tmp.path().join("p.yml"));
    assert_eq!(
        (model.as_str(), dtype.as_str()),
        ("org/Model-8L", "float16")
    );
    assert_eq!(r, vec![[1, 2], [3, 6]]);
    let text = std::fs::read_to_string(tmp.path().join("p.yml")).unwrap();
    assert!(
        text.starts_with("# written by snrscope: dropped layers 0, 2, 6, 7 (self_attn.v_proj SNR infinite; dropped by hand: 0, 6, 7; kept by hand: 5) of 8\n"),
        "{text}"
    );
}

const SCAN: &str = r#"{
    "model.layers.0.self_attn.v_proj": {"snr": 1.5, "type": "self_attn.v_proj"},
    "model.layers.1.self_attn.v_proj": {"snr": Infinity, "type": "self_attn.v_proj"},
    "model.layers.2.self_attn.v_proj": {"snr": 0.25, "type": "self_attn.v_proj"},
    "model.layers.3.self_attn.v_proj": {"snr": 3.0, "type": "self_attn.v_proj"},
    "model.layers.0.mlp.up_proj": {"snr": 0.1, "type": "mlp.up_proj"},
    "model.layers.1.mlp.up_proj": {"snr": 0.4, "type": "mlp.up_proj"},
    "model.layers.2.mlp.up_proj": {"snr": 0.3, "type": "mlp.up_proj"},
    "model.layers.3.mlp.up_proj": {"snr": 0.2, "type": "mlp.up_proj"}
}"#;

#[test]
fn plans_from_a_scan_file_without_weights() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("scan.json"), SCAN).unwrap();
    let (code, _, stderr) = crate::snrscope()
        .args([
            "export",
            "scan.json",
            "--yaml",
            "p.yml",
            "--model-name",
            "org/m",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ranges(&tmp.path().join("p.yml")).1, vec![[0, 1], [2, 4]]);
    let (code, _, stderr) = crate::snrscope()
        .args([
            "export",
            "scan.json",
            "--rule",
            "lowest:1",
            "--yaml",
            "q.yml",
            "--model-name",
            "org/m",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    let (model, r, dtype) = ranges(&tmp.path().join("q.yml"));
    assert_eq!((model.as_str(), dtype.as_str()), ("org/m", "bfloat16"));
    assert_eq!(r, vec![[0, 2], [3, 4]]);
    let (code, _, stderr) = crate::snrscope()
        .args([
            "export",
            "scan.json",
            "--unfrozen-yaml",
            "u.yml",
            "--top-percent",
            "50",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    let u = std::fs::read_to_string(tmp.path().join("u.yml")).unwrap();
    let body: Vec<&str> = u.lines().skip(1).collect();
    assert_eq!(
        body,
        [
            "unfrozen_parameters:",
            "- ^lm_head.weight$",
            "- ^model.embed_tokens.weight$",
            "# mlp.up_proj layers",
            "- model.layers.1.mlp.up_proj",
            "- model.layers.2.mlp.up_proj",
            "# self_attn.v_proj layers",
            "- model.layers.1.self_attn.v_proj",
            "- model.layers.3.self_attn.v_proj",
        ]
    );
}

#[test]
fn unfrozen_yaml_from_a_model_scans_every_module_type() {
    let tmp = tempfile::tempdir().unwrap();
    gen_model(tmp.path(), "src", &ModelSpec::tiny(4, &[1]));
    let (code, _, stderr) = crate::snrscope()
        .args([
            "export",
            "src",
            "--unfrozen-yaml",
            "u.yml",
            "--top-percent",
            "25",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    let u = std::fs::read_to_string(tmp.path().join("u.yml")).unwrap();
    // 7 scannable module types of 4 layers each; 25% of 4 = 1 per type.
    assert_eq!(
        u.lines()
            .filter(|l| l.starts_with("# ") && l.ends_with(" layers"))
            .count(),
        7
    );
    assert_eq!(
        u.lines()
            .filter(|l| l.starts_with("- model.layers."))
            .count(),
        7
    );
    assert!(u.contains("- model.layers.1.self_attn.v_proj\n"), "{u}");
}

#[test]
fn errors_name_the_file_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("scan.json"), SCAN).unwrap();
    let (code, _, stderr) = crate::snrscope()
        .args(["export", "scan.json", "--model-out", "out"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(
        stderr.contains("scan.json") && stderr.contains("needs the model's weights"),
        "{stderr}"
    );

    let (code, _, stderr) = crate::snrscope()
        .args(["export", "nowhere", "--yaml", "p.yml"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(stderr.contains("nowhere"), "{stderr}");

    std::fs::write(tmp.path().join("bad.json"), "{ not json").unwrap();
    let (code, _, stderr) = crate::snrscope()
        .args(["export", "bad.json", "--yaml", "p.yml"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(stderr.contains("bad.json"), "{stderr}");

    std::fs::write(tmp.path().join("p.yml"), "mine").unwrap();
    let (code, _, stderr) = crate::snrscope()
        .args([
            "export",
            "scan.json",
            "--yaml",
            "p.yml",
            "--model-name",
            "org/m",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(
        stderr.contains("p.yml") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("p.yml")).unwrap(),
        "mine"
    );

    let (code, _, stderr) = crate::snrscope()
        .args([
            "export",
            "scan.json",
            "--drop",
            "0-3",
            "--yaml",
            "q.yml",
            "--model-name",
            "org/m",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(stderr.contains("keep at least one"), "{stderr}");
    assert!(!tmp.path().join("q.yml").exists());

    let (code, _, stderr) = crate::snrscope()
        .args(["export", "scan.json", "--shard-size", "5XB"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 2, "usage error: {stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn help_lists_the_flags() {
    let (code, stdout, _) = crate::snrscope()
        .args(["export", "--help"])
        .cwd(Path::new("."))
        .run()
        .parts();
    assert_eq!(code, 0);
    for flag in [
        "--yaml",
        "--model-out",
        "--unfrozen-yaml",
        "--top-percent",
        "--rule",
        "--drop",
        "--keep",
        "--module",
        "--model-name",
        "--shard-size",
        "--force",
        "--threads",
    ] {
        assert!(stdout.contains(flag), "{flag} missing from:\n{stdout}");
    }
}

/// Ctrl-C, SIGTERM or SIGHUP (an SSH disconnect) while the shards are being written: exit
/// 128 + the signal, no final or temporary folder.
#[cfg(unix)]
fn interrupt_mid_export(signal: libc::c_int) {
    let tmp = tempfile::tempdir().unwrap();
    support::sparse_model(&tmp.path().join("src"), 8);
    // Its own scan cache: never the user's, never another test's.
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .env("SNRSCOPE_CACHE_DIR", cache.path())
        .args([
            "export",
            "src",
            "--model-out",
            "out",
            "--shard-size",
            "100MB",
        ])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let tmp_name = format!(".out.snrscope-tmp-{}", child.id());
    let started = std::time::Instant::now();
    // Wait until the second shard exists: writing has begun and is not finished.
    while !tmp
        .path()
        .join(&tmp_name)
        .join("model-00002-of-00008.safetensors")
        .exists()
    {
        assert!(
            started.elapsed().as_secs() < 60,
            "export never started writing"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("export finished before it could be interrupted");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // SAFETY: plain kill(2) on our own child's pid.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(sent, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + signal), "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");
    assert_eq!(names_in(tmp.path()), vec!["src"], "{stderr}");
}

#[cfg(unix)]
#[test]
fn ctrl_c_mid_export_leaves_nothing() {
    interrupt_mid_export(libc::SIGINT);
}

#[cfg(unix)]
#[test]
fn sigterm_mid_export_leaves_nothing() {
    interrupt_mid_export(libc::SIGTERM);
}

#[cfg(unix)]
#[test]
fn sighup_mid_export_leaves_nothing() {
    interrupt_mid_export(libc::SIGHUP);
}

#[test]
fn output_inside_the_model_is_refused_before_scanning() {
    let tmp = tempfile::tempdir().unwrap();
    gen_model(tmp.path(), "src", &ModelSpec::tiny(3, &[]));
    let (code, stdout, stderr) = crate::snrscope()
        .args(["export", "src", "--model-out", "src/pruned"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(
        stderr.contains("src/pruned") && stderr.contains("inside the input"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("plan:"),
        "refused before planning: {stdout}"
    );
    assert!(!tmp.path().join("src/pruned").exists());
}

/// Every v_proj infinite: no pruning plan exists, but Spectrum's selection still does.
#[test]
fn unfrozen_yaml_needs_no_pruning_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let scan = r#"{"self_attn.v_proj": {"model.layers.0.self_attn.v_proj": Infinity,
                                        "model.layers.1.self_attn.v_proj": Infinity}}"#;
    std::fs::write(tmp.path().join("scan.json"), scan).unwrap();
    let (code, _, stderr) = crate::snrscope()
        .args([
            "export",
            "scan.json",
            "--unfrozen-yaml",
            "u.yml",
            "--top-percent",
            "50",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("no pruning plan"), "{stderr}");
    let u = std::fs::read_to_string(tmp.path().join("u.yml")).unwrap();
    assert!(
        u.ends_with("# self_attn.v_proj layers\n- model.layers.0.self_attn.v_proj\n"),
        "{u}"
    );
    let (code, _, stderr) = crate::snrscope()
        .args([
            "export",
            "scan.json",
            "--yaml",
            "p.yml",
            "--model-name",
            "org/m",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1);
    assert!(stderr.contains("keep at least one"), "{stderr}");
}

/// `--scan` takes the SNR from a saved scan instead of scanning: a hand-written scan that calls
/// only layer 7 infinite (the model's own ∞ layers are 2 and 5) must drop exactly layer 7.
#[test]
fn a_saved_scan_replaces_the_scan_and_must_match_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(8, &[2, 5]));
    let entry = |l: usize, snr: &str| {
        format!(
            "\"model.layers.{l}.self_attn.v_proj\": {{\"snr\": {snr}, \"type\": \"self_attn.v_proj\"}}"
        )
    };
    let body: Vec<String> = (0..8)
        .map(|l| entry(l, if l == 7 { "Infinity" } else { "1.5" }))
        .collect();
    std::fs::write(
        tmp.path().join("saved.json"),
        format!("{{{}}}", body.join(",\n")),
    )
    .unwrap();
    let (code, stdout, stderr) = crate::snrscope()
        .args([
            "export",
            "src",
            "--scan",
            "saved.json",
            "--yaml",
            "p.yml",
            "--model-out",
            "out",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("kept: [0,7)"), "{stdout}");
    assert_eq!(ranges(&tmp.path().join("p.yml")).1, vec![[0, 7]]);
    check_pruned(&src, &tmp.path().join("out"), 8, &[7], 5_000_000_000);

    // A scan of a 4-layer model does not fit an 8-layer one.
    let short: Vec<String> = (0..4).map(|l| entry(l, "1.5")).collect();
    std::fs::write(
        tmp.path().join("short.json"),
        format!("{{{}}}", short.join(",")),
    )
    .unwrap();
    let (code, _, stderr) = crate::snrscope()
        .args(["export", "src", "--scan", "short.json", "--yaml", "q.yml"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("short.json") && stderr.contains("4 layers") && stderr.contains("8 layers"),
        "{stderr}"
    );
    assert!(!tmp.path().join("q.yml").exists());
}
