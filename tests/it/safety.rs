//! Nothing the user owns is lost, nothing private leaks, hostile files stay bounded: one test
//! (or a few) per defect class a careful user and an attacker found (issue 12).

use snrscope_testkit::models as support;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use snrscope::{
    checkpoint::Model,
    demo::ModelSpec,
    export::{self, ExportError, ExportOptions, Hooks},
    util::cancel::CancelToken,
};
use support::{gen_model, names_in, plan, snapshot};

/// A sharded 6-layer model `src` in a fresh folder, with a snapshot of its bytes.
fn model_folder() -> (
    tempfile::TempDir,
    PathBuf,
    std::collections::BTreeMap<PathBuf, Vec<u8>>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(6, &[2]);
    spec.shards = 2;
    let src = gen_model(tmp.path(), "src", &spec);
    let before = snapshot(&src);
    (tmp, src, before)
}

fn assert_refused(code: i32, stderr: &str, words: &str) {
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(words), "expected {words:?} in: {stderr}");
}

// ---- 1. the input model cannot be destroyed ----

/// An alias of the model folder — a bind mount where this test may mount (root), and always a
/// symlink — given as the input, with the real folder as `--model-out --force`.
#[test]
fn export_through_an_alias_onto_the_model_is_refused() {
    let (tmp, src, before) = model_folder();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&src, &link).unwrap();
    let mut aliases = vec![("link", link.clone())];
    let bind = tmp.path().join("bind");
    std::fs::create_dir(&bind).unwrap();
    let mounted = Command::new("mount")
        .args(["--bind"])
        .arg(&src)
        .arg(&bind)
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        aliases.push(("bind", bind.clone()));
    }
    for (alias, _) in &aliases {
        let (code, _, err) = crate::snrscope()
            .args(["export", alias, "--model-out", "src", "--force"])
            .cwd(tmp.path())
            .xdg_cache()
            .run()
            .parts();
        assert_refused(code, &err, "is the input");
        // And the other way round: the real folder in, the alias out.
        let (code, _, err) = crate::snrscope()
            .args(["export", "src", "--model-out", alias, "--force"])
            .cwd(tmp.path())
            .xdg_cache()
            .run()
            .parts();
        assert_refused(code, &err, "is the input");
    }
    if mounted {
        let _ = Command::new("umount").arg(&bind).status();
    }
    assert_eq!(snapshot(&src), before, "the model is untouched");
}

#[test]
fn scan_out_never_writes_over_a_shard_and_needs_force_for_other_files() {
    let (tmp, src, before) = model_folder();
    let shard = "src/model-00002-of-00002.safetensors";
    let (code, _, err) = crate::snrscope()
        .args(["scan", "src", "--out", shard, "--force"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_refused(code, &err, "is the input");
    // A hard link to a shard, outside the folder, is the same file.
    let hard = tmp.path().join("hard.json");
    std::fs::hard_link(tmp.path().join(shard), &hard).unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["scan", "src", "--out", "hard.json", "--force"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_refused(code, &err, "is the input");
    // Any other existing file: only with --force.
    std::fs::write(tmp.path().join("old.json"), "mine").unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["scan", "src", "--out", "old.json"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_refused(code, &err, "already exists (pass --force");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("old.json")).unwrap(),
        "mine"
    );
    let (code, _, err) = crate::snrscope()
        .args(["scan", "src", "--out", "old.json", "--force"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::read_to_string(tmp.path().join("old.json"))
            .unwrap()
            .contains("snr")
    );
    assert_eq!(snapshot(&src), before);
}

#[test]
fn yaml_outputs_onto_or_into_the_model_are_refused_even_with_force() {
    let (tmp, src, before) = model_folder();
    for args in [
        &["export", "src", "--yaml", "src/config.json", "--force"][..],
        &[
            "export",
            "src",
            "--unfrozen-yaml",
            "src/model.safetensors.index.json",
            "--force",
        ],
        &["export", "src", "--yaml", "src/new.yml"],
        &["export", "src", "--model-out", "src/pruned"],
        &[
            "export",
            "src",
            "--model-out",
            "src/../src/pruned",
            "--force",
        ],
    ] {
        let (code, _, err) = crate::snrscope()
            .args(args)
            .cwd(tmp.path())
            .xdg_cache()
            .run()
            .parts();
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            err.contains("is the input")
                || err.contains("inside the input")
                || err.contains("contains the input"),
            "{args:?}: {err}"
        );
    }
    // The folder that holds the model, by its absolute name.
    let parent = tmp.path().to_str().unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["export", "src", "--model-out", parent, "--force"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_refused(code, &err, "contains the input");
    assert_eq!(snapshot(&src), before);
    assert_eq!(names_in(tmp.path()), vec!["src"]);
}

// ---- 2. the final rename is the moment that counts ----

fn export_with_hook(
    model: &Model,
    out: &Path,
    force: bool,
    hook: &mut dyn FnMut(),
) -> Result<export::ExportSummary, ExportError> {
    let mut o = ExportOptions::new(out);
    o.force = force;
    export::export_model_with_hooks(
        model,
        &plan(6, &[2]),
        &o,
        &mut |_| {},
        &CancelToken::default(),
        Hooks {
            before_commit: Some(hook),
            ..Default::default()
        },
    )
}

#[test]
fn a_folder_that_appears_during_the_export_is_left_alone() {
    let (tmp, src, _) = model_folder();
    let model = Model::open(&src).unwrap();
    let out = tmp.path().join("out");
    let err = export_with_hook(&model, &out, false, &mut || {
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("user.txt"), "mine").unwrap();
    })
    .unwrap_err();
    assert!(matches!(err, ExportError::TargetChanged { .. }), "{err}");
    assert!(err.to_string().contains("appeared"), "{err}");
    assert_eq!(names_in(&out), vec!["user.txt"]);
    assert_eq!(
        names_in(tmp.path()),
        vec!["out", "src"],
        "no temporary folder left"
    );
}

#[test]
fn force_replaces_only_the_folder_it_was_told_to_replace() {
    let (tmp, src, _) = model_folder();
    let model = Model::open(&src).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("old.txt"), "old").unwrap();
    // Someone swaps another folder in while the export runs: it is not deleted.
    let err = export_with_hook(&model, &out, true, &mut || {
        std::fs::rename(&out, tmp.path().join("moved")).unwrap();
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("user.txt"), "mine").unwrap();
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("replaced by something else"),
        "{err}"
    );
    assert_eq!(names_in(&out), vec!["user.txt"]);
    // Undisturbed, --force swaps atomically: the target name never goes missing.
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::rename(tmp.path().join("moved"), &out).unwrap();
    let target = out.clone();
    export_with_hook(&model, &out, true, &mut || assert!(target.is_dir())).unwrap();
    assert!(out.join("config.json").is_file() && !out.join("old.txt").exists());
    assert_eq!(names_in(tmp.path()), vec!["out", "src"]);
}

#[test]
fn a_second_export_to_the_same_target_fails_clearly_while_the_first_runs() {
    let (tmp, src, _) = model_folder();
    let model = Model::open(&src).unwrap();
    let out = tmp.path().join("out");
    let mut second = None;
    export_with_hook(&model, &out, false, &mut || {
        second = Some(export_with_hook(&model, &out, true, &mut || {}));
    })
    .unwrap();
    let err = second.unwrap().unwrap_err();
    assert!(matches!(err, ExportError::Busy { .. }), "{err}");
    assert!(
        err.to_string().contains(&std::process::id().to_string()),
        "{err}"
    );
    assert!(out.join("config.json").is_file());
    assert_eq!(
        names_in(tmp.path()),
        vec!["out", "src"],
        "lock file removed"
    );
}

// ---- 3. leftovers of interrupted runs ----

/// The id of a process that has ended.
fn dead_pid() -> u32 {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn leftovers_of_dead_runs_are_removed_and_an_interrupted_replace_is_put_back() {
    let (tmp, _src, _) = model_folder();
    let pid = dead_pid();
    // The target exists: a dead run's hidden copies of it are removed, the space reported.
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for what in ["old", "tmp"] {
        let d = tmp.path().join(format!(".out.snrscope-{what}-{pid}"));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("model.safetensors"), vec![0u8; 50_000]).unwrap();
    }
    let (code, _, err) = crate::snrscope()
        .args(["export", "src", "--model-out", "out", "--force"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("removed 2 leftover(s)") && err.contains("100.0 kB freed"),
        "{err}"
    );
    assert_eq!(names_in(tmp.path()), vec!["out", "src"]);
    // The target is missing but a dead run's -old- copy exists: that is the user's folder, put
    // back before anything else happens.
    std::fs::rename(&out, tmp.path().join(format!(".out.snrscope-old-{pid}"))).unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["export", "src", "--model-out", "out"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert!(out.join("config.json").is_file(), "put back");
    assert_eq!(names_in(tmp.path()), vec!["out", "src"]);
}

#[test]
fn a_live_runs_temporary_folder_is_not_touched() {
    let (tmp, _src, _) = model_folder();
    let live = tmp
        .path()
        .join(format!(".out.snrscope-tmp-{}", std::process::id()));
    // Our own pid stands for a live process.
    std::fs::create_dir(&live).unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["export", "src", "--model-out", "out"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(live.is_dir());
}

// ---- 4. private files do not leak ----

#[test]
fn only_model_files_are_copied_and_no_link_leads_out() {
    let (tmp, src, _) = model_folder();
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, "TOKEN=abc").unwrap();
    for f in [".env", "id_rsa", ".huggingface_token", "notes.txt"] {
        std::fs::write(src.join(f), "private").unwrap();
    }
    std::fs::remove_file(src.join("tokenizer.json")).unwrap();
    std::os::unix::fs::symlink(&secret, src.join("tokenizer.json")).unwrap();
    std::fs::write(src.join("LICENSE"), "Apache-2.0").unwrap();
    let before = snapshot(&src);
    let (code, _, err) = crate::snrscope()
        .args(["export", "src", "--model-out", "out"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    let out = tmp.path().join("out");
    let copied = names_in(&out);
    for f in [
        ".env",
        "id_rsa",
        ".huggingface_token",
        "notes.txt",
        "tokenizer.json",
    ] {
        assert!(!copied.contains(&f.to_string()), "{f} leaked: {copied:?}");
        assert!(err.contains(f), "the summary lists {f} as skipped: {err}");
    }
    assert!(err.contains("outside the model folder"), "{err}");
    assert!(
        copied.contains(&"LICENSE".to_string())
            && copied.contains(&"tokenizer_config.json".to_string())
    );
    // --copy adds a file by name.
    let (code, _, err) = crate::snrscope()
        .args([
            "export",
            "src",
            "--model-out",
            "out2",
            "--copy",
            "notes.txt",
        ])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(names_in(&tmp.path().join("out2")).contains(&"notes.txt".to_string()));
    let (code, _, err) = crate::snrscope()
        .args([
            "export",
            "src",
            "--model-out",
            "out3",
            "--copy",
            "../secret.txt",
        ])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_refused(code, &err, "no such file or folder in the model folder");
    assert_eq!(snapshot(&src), before);
}

/// A Hugging Face cache snapshot: every file is a link into the repository's blobs, which is
/// where model files are allowed to lead.
#[test]
fn links_into_a_hugging_face_cache_blob_store_are_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("models--org--tiny");
    let built = gen_model(tmp.path(), "built", &ModelSpec::tiny(3, &[]));
    let (blobs, snap) = (repo.join("blobs"), repo.join("snapshots").join("abc123"));
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&snap).unwrap();
    for (i, e) in std::fs::read_dir(&built).unwrap().enumerate() {
        let e = e.unwrap();
        let blob = blobs.join(format!("blob{i}"));
        std::fs::rename(e.path(), &blob).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/blob{i}"), snap.join(e.file_name()))
            .unwrap();
    }
    let out = tmp.path().join("out");
    let (code, _, err) = crate::snrscope()
        .args([
            "export",
            snap.to_str().unwrap(),
            "--model-out",
            out.to_str().unwrap(),
        ])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(out.join("tokenizer.json").is_file(), "{:?}", names_in(&out));
    assert!(!out.join("tokenizer.json").is_symlink());
}

// ---- 5. hostile scan files ----

#[test]
fn a_deeply_nested_scan_file_is_an_error_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    std::fs::write(tmp.path().join("deep.json"), deep).unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["export", "deep.json", "--yaml", "p.yml"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_refused(code, &err, "nested more than");
    assert!(err.contains("deep.json"), "{err}");
}

#[test]
fn a_huge_layer_number_is_refused_before_anything_is_allocated() {
    let tmp = tempfile::tempdir().unwrap();
    // A number no model has is not a layer number at all; a plausible one with nothing around
    // it is not a scan of a real model. Neither lays out a table of that size.
    for (layer, words) in [
        ("1000000000000", "no entry names a numbered layer"),
        ("90000", "not a scan of a real model"),
    ] {
        let text = format!(
            r#"{{"model.layers.{layer}.self_attn.v_proj": {{"snr": 1.0, "type": "self_attn.v_proj"}}}}"#
        );
        assert!(text.len() < 200);
        let file = tmp.path().join("huge.json");
        std::fs::write(&file, text).unwrap();
        let (code, _, err) = crate::snrscope()
            .args([
                "export",
                "huge.json",
                "--yaml",
                "p.yml",
                "--model-name",
                "org/m",
            ])
            .cwd(tmp.path())
            .xdg_cache()
            .run()
            .parts();
        assert_refused(code, &err, words);
        // The explorer reads scan files with the same layout code (src/ui/tests/state.rs).
    }
}

// ---- 6. the smaller ones ----

#[test]
fn index_entries_outside_the_model_folder_are_refused() {
    let (tmp, src, _) = model_folder();
    let index = src.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    let outside = tmp.path().join("elsewhere.safetensors");
    std::fs::copy(src.join("model-00002-of-00002.safetensors"), &outside).unwrap();
    for evil in ["../elsewhere.safetensors", outside.to_str().unwrap()] {
        let bad = text.replace("model-00002-of-00002.safetensors", evil);
        std::fs::write(&index, &bad).unwrap();
        let (code, _, err) = crate::snrscope()
            .args(["scan", "src"])
            .cwd(tmp.path())
            .xdg_cache()
            .run()
            .parts();
        assert_refused(code, &err, "outside the model folder");
        assert!(
            err.contains("model.safetensors.index.json") && err.contains(evil),
            "{err}"
        );
    }
}

/// A tensor name with a terminal escape sequence: escaped on screen, refused in YAML.
#[test]
fn control_characters_are_escaped_when_printed_and_refused_in_yaml() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(3, &[]));
    let evil = "model.layers.1.self_attn.v_proj\x1b[2J\x1b]0;pwned\x07.weight";
    // Rename one tensor in the single-file model by rewriting its header (same length).
    let path = src.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(header).unwrap();
    let obj = v.as_object_mut().unwrap();
    let t = obj.remove("model.layers.2.mlp.down_proj.weight").unwrap();
    obj.insert(
        evil.replace("layers.1.self_attn.v_proj", "layers.2.mlp.down_proj"),
        t,
    );
    let mut h = serde_json::to_vec(&v).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&path, out).unwrap();

    let (code, stdout, err) = crate::snrscope()
        .args(["scan", "src", "--modules", "down_proj"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        !stdout.contains('\x1b') && !err.contains('\x1b'),
        "{stdout:?}"
    );
    assert!(stdout.contains("\\u{1b}[2J"), "{stdout}");
    let (code, _, err) = crate::snrscope()
        .args([
            "export",
            "src",
            "--unfrozen-yaml",
            "u.yml",
            "--top-percent",
            "100",
        ])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_refused(code, &err, "control characters");
    assert!(!err.contains('\x1b'));
    assert!(!tmp.path().join("u.yml").exists());
}

#[test]
fn a_per_layer_list_of_the_wrong_length_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(4, &[1]);
    spec.extra_config.insert(
        "layer_types".into(),
        serde_json::json!(["full", "sliding", "full"]),
    );
    gen_model(tmp.path(), "src", &spec);
    let (code, _, err) = crate::snrscope()
        .args(["export", "src", "--model-out", "out"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("layer_types has 3 entries for 4 layers"),
        "{err}"
    );
}

#[test]
fn a_saved_scan_missing_a_layer_needs_allow_partial() {
    let (tmp, _src, _) = model_folder();
    let (code, _, err) = crate::snrscope()
        .args(["scan", "src", "--out", "scan.json"])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    let (_, mut entries) = snrscope::scanfile::read(&tmp.path().join("scan.json")).unwrap();
    entries.retain(|e| e.module != "model.layers.4.self_attn.v_proj");
    std::fs::write(
        tmp.path().join("partial.json"),
        snrscope::scanfile::to_json(&entries),
    )
    .unwrap();
    let args = ["export", "src", "--scan", "partial.json", "--yaml", "p.yml"];
    let (code, _, err) = crate::snrscope()
        .args(args)
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_refused(code, &err, "layer(s) 4");
    assert!(err.contains("--allow-partial"), "{err}");
    let mut with = args.to_vec();
    with.push("--allow-partial");
    let (code, _, err) = crate::snrscope()
        .args(&with)
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn no_yaml_is_written_when_the_model_export_fails() {
    let tmp = tempfile::tempdir().unwrap();
    gen_model(tmp.path(), "src", &ModelSpec::tiny(4, &[1]));
    // The export fails after the scan and the plan (a --copy file that is not there): the YAML
    // that would describe it is not written either.
    let (code, _, err) = crate::snrscope()
        .args([
            "export",
            "src",
            "--model-out",
            "out",
            "--yaml",
            "p.yml",
            "--copy",
            "nope.txt",
        ])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_refused(code, &err, "--copy nope.txt");
    assert_eq!(names_in(tmp.path()), vec!["src"]);
}

/// Under an address-space limit smaller than the whole model (and than one shard), a scan
/// reads the matrices that fit; one that does not fit gets a message that names the limit.
#[test]
fn a_scan_fits_an_address_space_limit_smaller_than_the_model() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    // Three 600 MB shards, sparse (instant); 1.8 GB in all.
    let src = tmp.path().join("big");
    std::fs::create_dir(&src).unwrap();
    let mut weight_map = serde_json::Map::new();
    for s in 0..3 {
        let name = format!("model-{:05}-of-00003.safetensors", s + 1);
        let mut header = serde_json::Map::new();
        let small = 64 * 64 * 4;
        header.insert(
            format!("model.layers.{s}.self_attn.v_proj.weight"),
            serde_json::json!({"dtype": "F32", "shape": [64, 64], "data_offsets": [0, small]}),
        );
        let big: u64 = 600_000_000 / 4 / 1000 * 1000 * 4;
        header.insert(
            format!("model.layers.{s}.mlp.up_proj.weight"),
            serde_json::json!({"dtype": "F32", "shape": [big / 4 / 1000, 1000], "data_offsets": [small, small + big]}),
        );
        for k in header.keys() {
            weight_map.insert(k.clone(), name.clone().into());
        }
        let mut h = serde_json::to_vec(&header).unwrap();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let f = std::fs::File::create(src.join(&name)).unwrap();
        use std::io::Write;
        let mut w = std::io::BufWriter::new(&f);
        w.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
        w.write_all(&h).unwrap();
        drop(w);
        f.set_len(8 + h.len() as u64 + small + big).unwrap();
    }
    std::fs::write(
        src.join("model.safetensors.index.json"),
        serde_json::json!({"weight_map": weight_map}).to_string(),
    )
    .unwrap();
    std::fs::write(src.join("config.json"), r#"{"num_hidden_layers": 3}"#).unwrap();
    let run = |limit: u64, modules: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_snrscope"));
        cmd.args(["scan", "big", "--threads", "1", "--modules", modules])
            .current_dir(tmp.path())
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            .env_remove("SNRSCOPE_CACHE_DIR")
            .env("MALLOC_ARENA_MAX", "1");
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let l = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &l) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // 400 MB: less than one shard (and far less than the 1.8 GB model), enough for the small
    // matrices of every shard.
    let (code, err) = run(400_000_000, "v_proj");
    assert_eq!(code, 0, "{err}");
    // A 600 MB matrix does not fit: that matrix fails, with the reason.
    let (code, err) = run(400_000_000, "up_proj");
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("ulimit -v") && err.contains("address space"),
        "{err}"
    );
}

// ---- 2b. the same races with real processes ----

/// `snrscope export src --model-out out`, started and left paused just before its final
/// rename (SNRSCOPE_TEST_PAUSE_BEFORE_COMMIT); returns the process and its gate folder.
fn paused_export(dir: &Path, args: &[&str]) -> (std::process::Child, tempfile::TempDir) {
    let gate = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .args(args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", cache.path())
        .env_remove("SNRSCOPE_CACHE_DIR")
        .env("SNRSCOPE_TEST_PAUSE_BEFORE_COMMIT", gate.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !gate.path().join("paused").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the export never reached its final rename"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    (child, gate)
}

fn resume(child: std::process::Child, gate: &tempfile::TempDir) -> (i32, String) {
    std::fs::write(gate.path().join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A user (here: this test process) creates the target folder while another process's export
/// waits at its final rename: that export refuses and the user's folder is untouched.
#[test]
fn a_folder_made_by_another_process_during_an_export_is_left_alone() {
    let (tmp, src, before) = model_folder();
    let (child, gate) = paused_export(tmp.path(), &["export", "src", "--model-out", "out"]);
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("user.txt"), "mine").unwrap();
    let (code, err) = resume(child, &gate);
    assert_refused(code, &err, "appeared");
    assert_eq!(names_in(&out), vec!["user.txt"]);
    assert_eq!(
        std::fs::read_to_string(out.join("user.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        names_in(tmp.path()),
        vec!["out", "src"],
        "nothing left behind"
    );
    assert_eq!(snapshot(&src), before);
}

/// Two exports to one name in two processes: the second is refused at once (naming the
/// first's process), the first completes, and what it wrote is a whole model.
#[test]
fn a_second_export_process_to_the_same_name_waits_its_turn() {
    let (tmp, src, before) = model_folder();
    let (child, gate) = paused_export(
        tmp.path(),
        &["export", "src", "--model-out", "out", "--drop", "1"],
    );
    let (code, _, err) = crate::snrscope()
        .args([
            "export",
            "src",
            "--model-out",
            "out",
            "--drop",
            "3",
            "--force",
        ])
        .cwd(tmp.path())
        .xdg_cache()
        .run()
        .parts();
    assert_refused(code, &err, "another snrscope run is writing it");
    assert!(err.contains(&format!("process {}", child.id())), "{err}");
    let (code, err) = resume(child, &gate);
    assert_eq!(code, 0, "{err}");
    let config = std::fs::read_to_string(tmp.path().join("out/config.json")).unwrap();
    // The seed rule's layer 2 (planted infinite) and the first export's --drop 1.
    assert!(config.contains("\"num_hidden_layers\": 4"), "{config}");
    let yaml = std::fs::read_to_string(tmp.path().join("out/mergekit_config.yml")).unwrap();
    assert!(
        yaml.contains("layer_range: [0, 1]"),
        "the first export's choice: {yaml}"
    );
    assert_eq!(
        names_in(tmp.path()),
        vec!["out", "src"],
        "nothing left behind"
    );
    assert_eq!(snapshot(&src), before);
}
