//! Refusals and failures: nothing half-written under the final name, no temporary folder left,
//! the input untouched.

use snrscope_testkit::models as support;

use std::path::Path;

use snrscope::{
    checkpoint::Model,
    demo::ModelSpec,
    export::{self, ExportError, ExportOptions},
    plan::{Plan, PlanError},
    util::cancel::CancelToken,
};
use support::{check_pruned, gen_model, names_in, plan, snapshot};

const BIG: u64 = 5_000_000_000;

fn opts(out: &Path, force: bool) -> ExportOptions {
    ExportOptions {
        shard_size: BIG,
        force,
        ..ExportOptions::new(out)
    }
}

fn run(model: &Model, p: &Plan, o: &ExportOptions) -> Result<export::ExportSummary, ExportError> {
    export::export_model(model, p, o, &mut |_| {}, &CancelToken::default())
}

#[test]
fn existing_target_is_refused_and_force_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(4, &[]));
    let model = Model::open(&src).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("precious.txt"), "keep me").unwrap();
    let err = run(&model, &plan(4, &[1]), &opts(&out, false)).unwrap_err();
    assert!(matches!(err, ExportError::TargetExists { .. }), "{err}");
    assert!(err.to_string().contains("out"), "{err}");
    assert_eq!(names_in(&out), vec!["precious.txt"]);
    run(&model, &plan(4, &[1]), &opts(&out, true)).unwrap();
    assert!(!out.join("precious.txt").exists());
    check_pruned(&src, &out, 4, &[1], BIG);
    assert_eq!(
        names_in(tmp.path()),
        vec!["out", "src"],
        "no temporary folder left"
    );
}

#[test]
fn output_inside_or_containing_the_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(4, &[]));
    let model = Model::open(&src).unwrap();
    let before = snapshot(tmp.path());
    for (out, force) in [
        (src.join("pruned"), false),
        (src.join("pruned"), true),
        (src.clone(), true),
        (src.join("."), true),
        (tmp.path().to_path_buf(), true),
        (src.join("sub").join(".."), true),
    ] {
        let err = run(&model, &plan(4, &[1]), &opts(&out, force));
        assert!(err.is_err(), "{} accepted", out.display());
    }
    let err = run(&model, &plan(4, &[1]), &opts(&src.join("pruned"), false)).unwrap_err();
    assert!(err.to_string().contains("inside the input"), "{err}");
    assert_eq!(
        snapshot(tmp.path()),
        before,
        "input and its folder untouched"
    );
}

#[test]
fn unwritable_target_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(3, &[]));
    let model = Model::open(&src).unwrap();
    // /proc refuses new folders even to root; a missing parent is refused up front.
    for out in [
        Path::new("/proc/snrscope-export-test").to_path_buf(),
        tmp.path().join("missing").join("out"),
        tmp.path().join("src").join("config.json").join("out"),
    ] {
        let err = run(&model, &plan(3, &[0]), &opts(&out, false)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&out.display().to_string()) || msg.contains("snrscope"),
            "{msg}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn empty_or_mismatched_plans_are_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(3, &[]));
    let model = Model::open(&src).unwrap();
    let out = tmp.path().join("out");
    let err = run(&model, &plan(3, &[0, 1, 2]), &opts(&out, false)).unwrap_err();
    assert!(matches!(
        err,
        ExportError::Plan(PlanError::EmptyPlan { num_layers: 3 })
    ));
    let err = run(&model, &plan(5, &[0]), &opts(&out, false)).unwrap_err();
    assert!(err.to_string().contains("5 layers"), "{err}");
    let mut p = plan(3, &[0]);
    p.stack_prefix = "transformer.h".into();
    assert!(run(&model, &p, &opts(&out, false)).is_err());
    assert_eq!(names_in(tmp.path()), vec!["src"]);
}

/// A write failure half way (as a full disk would cause) leaves no final folder, no temporary
/// folder, and the input exactly as it was — also when replacing an existing folder.
#[test]
fn simulated_write_failure_mid_export_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(6, &[]);
    spec.shards = 3;
    let src = gen_model(tmp.path(), "src", &spec);
    let before = snapshot(&src);
    let model = Model::open(&src).unwrap();
    let total: u64 = model.total_bytes();
    let out = tmp.path().join("out");
    for force in [false, true] {
        if force {
            std::fs::create_dir(&out).unwrap();
            std::fs::write(out.join("old.txt"), "old").unwrap();
        }
        let mut o = opts(&out, force);
        o.shard_size = 50_000; // several shards: the failure lands after some were completed
        let mut seen = 0;
        let err = export::export_model_with_hooks(
            &model,
            &plan(6, &[2]),
            &o,
            &mut |p| seen = p.bytes_done,
            &CancelToken::default(),
            export::Hooks {
                fail_after_bytes: Some(total / 2),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("simulated write failure"), "{err}");
        assert!(seen >= total / 2 && seen < total, "{seen} of {total}");
        if force {
            assert_eq!(
                names_in(&out),
                vec!["old.txt"],
                "old folder kept on failure"
            );
            std::fs::remove_dir_all(&out).unwrap();
        }
        assert_eq!(
            names_in(tmp.path()),
            vec!["src"],
            "no final or temporary folder"
        );
    }
    assert_eq!(snapshot(&src), before, "input untouched");
}

#[test]
fn cancel_mid_export_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(6, &[]));
    let model = Model::open(&src).unwrap();
    let out = tmp.path().join("out");
    let cancel = CancelToken::default();
    let c = cancel.clone();
    let err = export::export_model(
        &model,
        &plan(6, &[1]),
        &opts(&out, false),
        &mut |p| {
            if p.bytes_done > 0 {
                c.cancel();
            }
        },
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::Cancelled { .. }), "{err}");
    assert_eq!(names_in(tmp.path()), vec!["src"]);
}

#[test]
fn lone_safetensors_file_exports_without_copying_its_neighbours() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(3, &[]));
    // Move the weights away from their config: a bare file.
    let lone = tmp.path().join("lone.safetensors");
    std::fs::rename(src.join("model.safetensors"), &lone).unwrap();
    std::fs::write(tmp.path().join("unrelated.txt"), "x").unwrap();
    let model = Model::open(&lone).unwrap();
    let out = tmp.path().join("out");
    let s = run(&model, &plan(3, &[1]), &opts(&out, false)).unwrap();
    assert!(s.copied.is_empty(), "{:?}", s.copied);
    assert_eq!(
        names_in(&out),
        vec!["README.md", "mergekit_config.yml", "model.safetensors"]
    );
}

/// A checkpoint missing layer 2: exporting it as is would leave a hole, so it is refused;
/// dropping layer 2 makes a complete model.
#[test]
fn a_stack_with_a_hole_must_drop_it() {
    use safetensors::{Dtype, tensor::TensorView};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let data: Vec<Vec<u8>> = (0..4u8).map(|l| vec![l; 32]).collect();
    let views: Vec<(String, TensorView<'_>)> = [0usize, 1, 3]
        .iter()
        .map(|&l| {
            (
                format!("model.layers.{l}.self_attn.v_proj.weight"),
                TensorView::new(Dtype::F32, vec![2, 4], &data[l]).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &src.join("model.safetensors")).unwrap();
    std::fs::write(src.join("config.json"), r#"{"num_hidden_layers": 4}"#).unwrap();
    let model = Model::open(&src).unwrap();
    let err = run(&model, &plan(4, &[]), &opts(&tmp.path().join("a"), false)).unwrap_err();
    assert!(err.to_string().contains("[2]"), "{err}");
    run(&model, &plan(4, &[2]), &opts(&tmp.path().join("b"), false)).unwrap();
    let t = support::read_tensors(&tmp.path().join("b"));
    let names: Vec<&String> = t.by_name.keys().collect();
    assert_eq!(
        names,
        [
            "model.layers.0.self_attn.v_proj.weight",
            "model.layers.1.self_attn.v_proj.weight",
            "model.layers.2.self_attn.v_proj.weight"
        ]
    );
    assert_eq!(
        t.by_name["model.layers.2.self_attn.v_proj.weight"].2,
        vec![3u8; 32]
    );
}

/// A run killed with SIGKILL leaves its temporary folder; the next export to the same target
/// removes it when its process is gone, and leaves a live process's folder alone.
#[cfg(target_os = "linux")]
#[test]
fn stale_temporary_folders_of_dead_runs_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let src = gen_model(tmp.path(), "src", &ModelSpec::tiny(3, &[]));
    let model = Model::open(&src).unwrap();
    let dead = tmp.path().join(".out.snrscope-tmp-999999999");
    let live = tmp.path().join(".out.snrscope-tmp-1");
    let other = tmp.path().join(".other.snrscope-tmp-999999999");
    for d in [&dead, &live, &other] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("model.safetensors"), "partial").unwrap();
    }
    run(
        &model,
        &plan(3, &[1]),
        &opts(&tmp.path().join("out"), false),
    )
    .unwrap();
    assert!(!dead.exists());
    assert!(live.exists() && other.exists());
}
