//! Smaller rough edges of issue 19: `snrscope demo` without a folder, the demo's file
//! permissions, eval's JSON naming the threads it used, `export --copy` of a folder.

use snrscope::demo::ModelSpec;
use snrscope_testkit::models::gen_model;

/// `snrscope demo` alone writes ./snrscope-demo (it was a clap error), says how to open a
/// folder named `demo`, and its shards are as readable as its config (they were 0600).
#[cfg(unix)]
#[test]
fn demo_without_a_folder_writes_one_readable_like_the_rest() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("demo")).unwrap();
    let (code, _, err) = crate::snrscope()
        .args(["demo"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("snrscope ./demo"), "{err}");
    let dir = tmp.path().join("snrscope-demo");
    let mode = |n: &str| std::fs::metadata(dir.join(n)).unwrap().permissions().mode() & 0o777;
    let config = mode("config.json");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let n = e.file_name().into_string().unwrap();
        if n.ends_with(".safetensors") {
            assert_eq!(mode(&n), config, "{n}");
        }
    }
}

/// eval --json names the threads it used, not 0 for "one per core".
#[test]
fn eval_json_names_the_threads_used() {
    let tmp = tempfile::tempdir().unwrap();
    gen_model(tmp.path(), "m", &ModelSpec::tiny(4, &[1]));
    std::fs::write(tmp.path().join("ids.json"), "[1, 2, 3, 4, 5, 6]").unwrap();
    let (code, out, err) = crate::snrscope()
        .args([
            "eval",
            "m",
            "--drop",
            "1",
            "--token-ids",
            "ids.json",
            "--json",
        ])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["threads"].as_u64().unwrap() >= 1, "{v}");
}

/// `export --copy FOLDER` copies a folder of the model (sentence-transformers' 1_Pooling) with
/// its regular files, never a hidden one; without --copy the folder is listed as not copied.
#[test]
fn export_copies_a_folder_asked_for_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    gen_model(tmp.path(), "m", &ModelSpec::tiny(4, &[1]));
    let pooling = tmp.path().join("m/1_Pooling");
    std::fs::create_dir(&pooling).unwrap();
    std::fs::write(
        pooling.join("config.json"),
        "{\"pooling_mode_mean_tokens\": true}\n",
    )
    .unwrap();
    std::fs::write(pooling.join(".secret"), "x").unwrap();
    let run = |out: &str, copy: bool| {
        let mut args = vec!["export", "m", "--drop", "1", "--model-out", out];
        if copy {
            args.extend(["--copy", "1_Pooling"]);
        }
        crate::snrscope()
            .args(args)
            .cwd(tmp.path())
            .xdg_cache()
            .run()
            .parts()
    };
    let (code, _, err) = run("plain", false);
    assert_eq!(code, 0, "{err}");
    assert!(!tmp.path().join("plain/1_Pooling").exists());
    assert!(err.contains("1_Pooling"), "listed as not copied: {err}");
    let (code, _, err) = run("pooled", true);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("pooled/1_Pooling/config.json")).unwrap(),
        "{\"pooling_mode_mean_tokens\": true}\n"
    );
    assert!(!tmp.path().join("pooled/1_Pooling/.secret").exists());
}
