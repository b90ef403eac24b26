//! PyTorch `.bin` checkpoints: the committed fixtures (torch.save'd by
//! tests/torch_bin/make_fixtures.py from models snrscope's generator wrote) open with the same
//! tensors, bytes, layers and SNR as their safetensors twins and export to the same
//! safetensors model; hostile pickles, legacy and corrupt files are refused with messages that
//! name the file and the problem. No Python at test time.

use snrscope_testkit::torch_bin::{self as support, cases};

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use snrscope::{
    checkpoint::{Model, OpenError, WeightFormat},
    export::{self, ExportOptions},
    plan::Plan,
    spectrum::scan::{self, ScanOptions},
    util::cancel::CancelToken,
};
use support::{pair, state_dict_pickle, torch_zip, write};

fn open_err(path: &Path) -> String {
    match Model::open(path) {
        Ok(_) => panic!("{} must not open", path.display()),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "the message names the file: {msg}"
            );
            msg
        }
    }
}

#[test]
fn every_fixture_opens_with_its_twins_tensors_bytes_and_layers() {
    for case in cases::BIN_CASES {
        let p = pair(case.name);
        let st = Model::open(&p.st).unwrap();
        let bin = Model::open(&p.bin).unwrap();
        assert_eq!(st.format, WeightFormat::Safetensors);
        assert_eq!(bin.format, WeightFormat::PytorchBin, "{}", case.name);
        assert_eq!(bin.warnings, st.warnings, "{}", case.name);
        let names = |m: &Model| m.tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&bin), names(&st), "{}", case.name);
        for (a, b) in st.tensors.iter().zip(&bin.tensors) {
            assert_eq!((a.dtype, &a.shape), (b.dtype, &b.shape), "{}", a.name);
            assert_eq!(
                &*st.bytes(a).unwrap(),
                &*bin.bytes(b).unwrap(),
                "{}: {}",
                case.name,
                a.name
            );
        }
        assert_eq!(bin.total_bytes(), st.total_bytes());
        assert_eq!(bin.total_params(), st.total_params());
        assert_eq!(bin.dominant_dtype(), st.dominant_dtype());
        assert_eq!(format!("{:?}", bin.layout), format!("{:?}", st.layout));
    }
}

#[test]
fn dtypes_styles_and_views_are_what_the_fixtures_claim() {
    use safetensors::Dtype;
    let expect = [
        ("bf16_state_dict", Dtype::BF16),
        ("f16_sharded", Dtype::F16),
        ("f32_parameters_proto4", Dtype::F32),
        ("f64_fused_views", Dtype::F64),
    ];
    for (name, dtype) in expect {
        let p = pair(name);
        let m = Model::open(&p.bin).unwrap();
        assert_eq!(m.dominant_dtype(), Some(dtype.into()), "{name}");
    }
    // q, k and v of a layer share one storage: consecutive ranges of one zip entry.
    let p = pair("f64_fused_views");
    let m = Model::open(&p.bin).unwrap();
    let r = |n: &str| {
        m.tensor(&format!("model.layers.1.self_attn.{n}_proj.weight"))
            .unwrap()
            .range
            .clone()
    };
    assert_eq!(r("q").end, r("k").start);
    assert_eq!(r("k").end, r("v").start);
}

/// Every matrix (and the V part of each fused projection) of the `.bin` and of its twin, both
/// scanned: the results are identical, bit for bit.
#[test]
fn scans_to_exactly_the_twins_snr() {
    let every = regex::Regex::new(".").unwrap();
    for case in cases::BIN_CASES {
        let p = pair(case.name);
        let scan_all = |dir: &Path| {
            let model = Arc::new(Model::open(dir).unwrap());
            let jobs = scan::jobs_matching(&model, &every);
            let results = scan::scan_blocking(
                model,
                jobs.clone(),
                ScanOptions {
                    threads: 2,
                    ..Default::default()
                },
            );
            (jobs, results)
        };
        let (st_jobs, st) = scan_all(&p.st);
        let (bin_jobs, bin) = scan_all(&p.bin);
        assert_eq!(bin_jobs, st_jobs, "{}", case.name);
        assert_eq!(bin.len(), st.len());
        let mut infinite = 0;
        for ((a, b), job) in st.iter().zip(&bin).zip(&st_jobs) {
            let (a, b) = (a.outcome.as_ref().unwrap(), b.outcome.as_ref().unwrap());
            // Debug prints every f64 exactly (shortest round-trip form), NaN included.
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{}", job.module);
            assert_eq!(a.snr_ratio.to_bits(), b.snr_ratio.to_bits());
            infinite += a.is_infinite() as usize;
        }
        assert!(infinite > 0, "{}: planted infinite layers found", case.name);
        if case.name.starts_with("phi3") || case.name.starts_with("gpt2") {
            assert!(
                st_jobs.iter().any(|j| matches!(j.slice, Some(Ok(_)))),
                "{}: the V part of the fused projection is scanned",
                case.name
            );
        }
    }
}

/// Integer buffers and views torch writes for them: an `expand`ed `position_ids` (stride 0 on a
/// dimension of size 1) and a tensor at an offset in a larger storage.
#[test]
fn integer_buffers_and_offset_views_read_exactly() {
    use safetensors::Dtype;
    use support::View;
    let longs: Vec<u8> = (0i64..6).flat_map(|x| x.to_le_bytes()).collect();
    let floats: Vec<u8> = (0..8).flat_map(|x| (x as f32).to_le_bytes()).collect();
    let pkl = support::views_pickle(&[
        View {
            name: "embeddings.position_ids",
            storage: "LongStorage",
            key: "0",
            shape: &[1, 6],
            stride: Some(&[0, 1]),
            offset: 0,
            storage_numel: 6,
        },
        View {
            name: "model.layers.0.self_attn.v_proj.weight",
            storage: "FloatStorage",
            key: "1",
            shape: &[2, 2],
            stride: None,
            offset: 4,
            storage_numel: 8,
        },
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        "buffers.bin",
        &torch_zip(&pkl, &[("0", &longs), ("1", &floats)]),
    );
    let m = Model::open(&path).unwrap();
    let ids = m.tensor("embeddings.position_ids").unwrap();
    assert_eq!((ids.dtype, &ids.shape), (Dtype::I64.into(), &vec![1, 6]));
    assert_eq!(&*m.bytes(ids).unwrap(), &longs[..]);
    let v = m.tensor("model.layers.0.self_attn.v_proj.weight").unwrap();
    assert_eq!(&*m.bytes(v).unwrap(), &floats[16..]);
    let mut out = Vec::new();
    assert_eq!(m.read_matrix(v, &mut out).unwrap(), (2, 2));
    assert_eq!(out, vec![4.0, 5.0, 6.0, 7.0]);
}

#[test]
fn sharded_bin_reads_its_index() {
    let p = pair("f16_sharded");
    let m = Model::open(&p.bin).unwrap();
    assert_eq!(m.shards.len(), 3);
    assert!(
        m.index_path
            .as_ref()
            .unwrap()
            .ends_with("pytorch_model.bin.index.json")
    );
    assert!(m.shards[0].file_name.starts_with("pytorch_model-00001"));

    // The index is checked as a safetensors index is: a misplaced tensor, a missing shard.
    let idx = p.bin.join("pytorch_model.bin.index.json");
    let text = std::fs::read_to_string(&idx).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["weight_map"]["model.embed_tokens.weight"] = "pytorch_model-00003-of-00003.bin".into();
    std::fs::write(&idx, v.to_string()).unwrap();
    let e = Model::open(&p.bin).unwrap_err();
    assert!(matches!(e, OpenError::BadIndex { .. }), "{e:?}");
    assert!(e.to_string().contains("model.embed_tokens.weight"), "{e}");
    std::fs::write(&idx, &text).unwrap();
    std::fs::remove_file(p.bin.join("pytorch_model-00002-of-00003.bin")).unwrap();
    let e = Model::open(&p.bin).unwrap_err();
    assert!(matches!(e, OpenError::MissingShard { .. }), "{e:?}");
    assert!(e.to_string().contains("pytorch_model-00002-of-00003.bin"));
}

#[test]
fn a_single_bin_file_opens_too() {
    let p = pair("bf16_state_dict");
    let m = Model::open(p.bin.join("pytorch_model.bin")).unwrap();
    assert_eq!(m.format, WeightFormat::PytorchBin);
    assert!(m.config.is_some(), "the folder's config.json is used");
    assert_eq!(m.main_stack().unwrap().num_layers, 4);
}

#[test]
fn safetensors_win_and_other_bin_files_are_never_read() {
    let p = pair("bf16_state_dict");
    // A Trainer's training_args.bin is an arbitrary pickle: a folder with pytorch_model.bin
    // never reads it, however hostile.
    let hostile = torch_zip(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsR.", &[]);
    write(&p.bin, "training_args.bin", &hostile);
    write(&p.bin, "optimizer.bin", &hostile);
    assert_eq!(
        Model::open(&p.bin).unwrap().format,
        WeightFormat::PytorchBin
    );
    // Both formats present: the safetensors are read.
    for e in std::fs::read_dir(&p.st).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "safetensors") {
            std::fs::copy(&path, p.bin.join(path.file_name().unwrap())).unwrap();
        }
    }
    assert_eq!(
        Model::open(&p.bin).unwrap().format,
        WeightFormat::Safetensors
    );
}

fn plan_for(model: &Model, dropped: &[usize]) -> Plan {
    let stack = model.main_stack().unwrap();
    Plan {
        model_ref: "test/source".into(),
        stack_prefix: stack.prefix.clone(),
        num_layers: stack.num_layers,
        dropped: dropped.to_vec(),
        module_type: "self_attn.v_proj".into(),
        reason: "by hand".into(),
        snr: vec![Some(1.0); stack.num_layers],
        dtype: "bfloat16".into(),
        mergekit_modules: None,
        metric: None,
    }
}

/// Every file of a folder, by name.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn export_from_bin_equals_export_from_the_twin() {
    for (name, dropped, shard_size) in [
        ("bf16_state_dict", &[1usize][..], 5_000_000_000u64),
        ("f16_sharded", &[0, 3][..], 1_000),
        ("f64_fused_views", &[1][..], 5_000_000_000),
        ("phi3_plain", &[1][..], 3_000),
    ] {
        let p = pair(name);
        let mut outs = Vec::new();
        for (src, tag) in [(&p.st, "st"), (&p.bin, "bin")] {
            let before = support_snapshot(src);
            let model = Model::open(src).unwrap();
            let out = p.tmp.path().join(format!("out-{tag}"));
            let mut options = ExportOptions::new(&out);
            options.shard_size = shard_size;
            let summary = export::export_model(
                &model,
                &plan_for(&model, dropped),
                &options,
                &mut |_| {},
                &CancelToken::default(),
            )
            .unwrap();
            let says = summary
                .notes
                .iter()
                .any(|n| n.contains("PyTorch .bin") && n.contains("written as safetensors"));
            assert_eq!(says, tag == "bin", "{name}: {:?}", summary.notes);
            assert_eq!(
                before,
                support_snapshot(src),
                "{name}: the input is untouched"
            );
            outs.push(out);
        }
        let (a, b) = (files(&outs[0]), files(&outs[1]));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (file, bytes) in &a {
            assert!(bytes == &b[file], "{name}: {file} differs");
        }
        assert!(
            a.keys().any(|f| f.ends_with(".safetensors"))
                && !a.keys().any(|f| f.starts_with("pytorch_model")),
            "{name}: {:?}",
            a.keys()
        );
        if shard_size < 10_000 {
            assert!(a.contains_key("model.safetensors.index.json"), "{name}");
        }
        // The pruned model reopens as safetensors.
        let m = Model::open(&outs[1]).unwrap();
        assert_eq!(m.format, WeightFormat::Safetensors);
    }
}

fn support_snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p.clone(), std::fs::read(&p).unwrap(), m)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn cli_scans_and_exports_a_bin_model_and_never_writes_it() {
    let p = pair("f16_sharded");
    let cache = tempfile::tempdir().unwrap();
    let before = support_snapshot(&p.bin);
    let mut scans = Vec::new();
    for (dir, tag) in [(&p.st, "st"), (&p.bin, "bin")] {
        let out = p.tmp.path().join(format!("{tag}.json"));
        let o = crate::snrscope()
            .args([
                "scan".as_ref(),
                dir.as_os_str(),
                "--modules".as_ref(),
                "_proj$".as_ref(),
                "--out".as_ref(),
                out.as_os_str(),
            ])
            .cache(cache.path())
            .run();
        assert_eq!(o.code, 0, "{}", o.stderr);
        scans.push(std::fs::read_to_string(&out).unwrap());
    }
    assert_eq!(scans[0], scans[1], "the scan files are identical");
    assert!(scans[1].contains("Infinity"));

    let out = p.tmp.path().join("pruned");
    let yaml = p.tmp.path().join("prune.yml");
    let o = crate::snrscope()
        .args([
            "export".as_ref(),
            p.bin.as_os_str(),
            "--model-out".as_ref(),
            out.as_os_str(),
            "--yaml".as_ref(),
            yaml.as_os_str(),
        ])
        .cache(cache.path())
        .run();
    let stderr = &o.stderr;
    assert_eq!(o.code, 0, "{stderr}");
    assert!(stderr.contains("written as safetensors"), "{stderr}");
    assert!(out.join("model.safetensors").is_file());
    assert!(
        std::fs::read_to_string(&yaml)
            .unwrap()
            .contains("passthrough")
    );
    assert_eq!(before, support_snapshot(&p.bin), "the input is untouched");
}

// ---- refusals ----

#[test]
fn legacy_and_noncontiguous_files_are_refused_clearly() {
    let dir = support::fixtures().join("refused");
    let msg = open_err(&dir.join("legacy.bin"));
    assert!(msg.contains("legacy format of torch < 1.6"), "{msg}");
    let msg = open_err(&dir.join("noncontiguous.bin"));
    assert!(
        msg.contains("model.layers.0.self_attn.v_proj.weight") && msg.contains("non-contiguous"),
        "{msg}"
    );
}

/// Hostile pickles: each refused with the file and the offending global named, nothing run.
#[test]
fn hostile_pickles_are_refused_naming_file_and_global() {
    let tmp = tempfile::tempdir().unwrap();
    let canary = tmp.path().join("canary");
    let cmd = format!("touch {}", canary.display());
    let mut system = b"\x80\x02cos\nsystem\n".to_vec();
    support::unicode(&mut system, &cmd);
    system.extend(b"\x85R.");
    let mut posix = b"\x80\x02cposix\nsystem\n".to_vec();
    support::unicode(&mut posix, &cmd);
    posix.extend(b"\x85R.");
    // Protocol 4: STACK_GLOBAL builtins.eval inside an otherwise valid state dict value.
    let mut eval = b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00}(".to_vec();
    support::unicode(&mut eval, "w");
    eval.extend(b"\x8c\x08builtins\x8c\x04eval\x93");
    support::unicode(&mut eval, "print(1)");
    eval.extend(b"\x85Ru.");
    let mut getattr = b"\x80\x02}(".to_vec();
    support::unicode(&mut getattr, "w");
    getattr.extend(b"c__builtin__\ngetattr\n");
    getattr.extend(b")Ru.");
    // REDUCE of an allowed global that is not a tensor rebuild.
    let mut storage_call = b"\x80\x02}(".to_vec();
    support::unicode(&mut storage_call, "w");
    storage_call.extend(b"ctorch\nFloatStorage\n)Ru.");
    // NEWOBJ of an allowed class.
    let newobj = b"\x80\x02ccollections\nOrderedDict\n)\x81.".to_vec();
    // An INST of a foreign class.
    let inst = b"\x80\x02(isubprocess\nPopen\n.".to_vec();
    // BUILD on a tensor (setting its state needs its own code).
    let valid = state_dict_pickle(&[("w", "FloatStorage", "0", &[2, 2])]);
    let mut build = valid[..valid.len() - 2].to_vec();
    build.extend(b"}b");
    build.extend(b"u.");

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("os_system.bin", system, "os.system"),
        ("posix_system.bin", posix, "posix.system"),
        ("eval.bin", eval, "builtins.eval"),
        ("getattr.bin", getattr, "__builtin__.getattr"),
        ("storage_call.bin", storage_call, "torch.FloatStorage"),
        ("newobj.bin", newobj, "collections.OrderedDict"),
        ("inst.bin", inst, "subprocess.Popen"),
    ];
    for (file, pkl, global) in cases {
        let path = write(tmp.path(), file, &torch_zip(&pkl, &[("0", &[0u8; 16])]));
        let e = Model::open(&path).unwrap_err();
        assert!(matches!(e, OpenError::BadBin { .. }), "{file}: {e:?}");
        let msg = open_err(&path);
        assert!(
            msg.contains(global) && msg.contains("refused") && msg.contains("never runs"),
            "{file}: {msg}"
        );
        assert!(msg.contains("archive/data.pkl"), "{file}: {msg}");
    }
    // The BUILD on a tensor is refused as malformed (no global to name).
    let path = write(
        tmp.path(),
        "build.bin",
        &torch_zip(&build, &[("0", &[0u8; 16])]),
    );
    let msg = open_err(&path);
    assert!(msg.contains("sets the state of a tensor"), "{msg}");
    assert!(!canary.exists(), "nothing was run");

    // The CLI: exit code 1, the file and the global named, no panic.
    let cache = tempfile::tempdir().unwrap();
    let path = tmp.path().join("os_system.bin");
    let o = crate::snrscope()
        .args(["scan".as_ref(), path.as_os_str()])
        .cache(cache.path())
        .run();
    assert_eq!(o.code, 1);
    let stderr = &o.stderr;
    assert!(
        stderr.contains("os_system.bin") && stderr.contains("os.system"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!canary.exists(), "nothing was run");
}

#[test]
fn pickles_that_are_not_state_dicts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut int_value = b"\x80\x02}(".to_vec();
    support::unicode(&mut int_value, "epoch");
    int_value.extend(b"K\x03u.");
    let valid = state_dict_pickle(&[("w", "FloatStorage", "0", &[2, 2])]);
    let mut nested = b"\x80\x02}(".to_vec();
    support::unicode(&mut nested, "state_dict");
    nested.extend(&valid[2..valid.len() - 1]);
    nested.extend(b"u.");
    type Storages<'a> = &'a [(&'a str, &'a [u8])];
    let cases: Vec<(&str, Vec<u8>, Storages, &str)> = vec![
        (
            "list.bin",
            b"\x80\x02]q\x00.".to_vec(),
            &[],
            "a list, not a dict",
        ),
        ("int.bin", int_value, &[], "epoch is an int, not a tensor"),
        (
            "nested.bin",
            nested,
            &[("0", &[0; 16])],
            "state_dict is a dict",
        ),
        (
            "missing_storage.bin",
            valid.clone(),
            &[],
            "names storage archive/data/0, which the archive lacks",
        ),
        (
            "short_storage.bin",
            valid.clone(),
            &[("0", &[0; 8])],
            "declared 16 bytes but its zip entry holds 8",
        ),
        (
            "unknown_storage.bin",
            state_dict_pickle(&[("w", "ComplexFloatStorage", "0", &[2])]),
            &[("0", &[0; 16])],
            "torch.ComplexFloatStorage",
        ),
        (
            "truncated_pickle.bin",
            valid[..valid.len() / 2].to_vec(),
            &[("0", &[0; 16])],
            "truncated",
        ),
        (
            "duplicate.bin",
            state_dict_pickle(&[
                ("w", "FloatStorage", "0", &[2, 2]),
                ("w", "FloatStorage", "0", &[2, 2]),
            ]),
            &[("0", &[0; 16])],
            "stored twice",
        ),
    ];
    for (file, pkl, storages, expect) in cases {
        let path = write(tmp.path(), file, &torch_zip(&pkl, storages));
        let msg = open_err(&path);
        assert!(msg.contains(expect), "{file}: {msg}");
    }
    // A big-endian archive.
    let mut entries = support::unzip(&torch_zip(&valid, &[("0", &[0; 16])]));
    for (name, bytes) in &mut entries {
        if name.ends_with("byteorder") {
            *bytes = b"big".to_vec();
        }
    }
    let path = write(tmp.path(), "big.bin", &support::rezip(&entries));
    assert!(open_err(&path).contains("little-endian only"));
    // And the valid one opens.
    let path = write(tmp.path(), "ok.bin", &torch_zip(&valid, &[("0", &[0; 16])]));
    let m = Model::open(&path).unwrap();
    assert_eq!(m.tensors[0].shape, vec![2, 2]);
}

#[test]
fn compressed_storages_are_refused() {
    // Mark the storage entry as deflated (method 8) in its local and central headers; torch
    // never compresses, and snrscope reads only stored entries (byte ranges of the file).
    let valid = state_dict_pickle(&[("w", "FloatStorage", "0", &[2, 2])]);
    let mut bytes = torch_zip(&valid, &[("0", &[0; 16])]);
    let name = b"archive/data/0";
    for (sig, method_at, name_at) in [(b"PK\x03\x04", 8, 30), (b"PK\x01\x02", 10, 46)] {
        let at = (0..bytes.len() - name_at - name.len())
            .find(|&i| {
                &bytes[i..i + 4] == sig && &bytes[i + name_at..i + name_at + name.len()] == name
            })
            .unwrap();
        bytes[at + method_at] = 8;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), "deflated.bin", &bytes);
    let msg = open_err(&path);
    assert!(msg.contains("archive/data/0 is compressed"), "{msg}");
}

#[test]
fn truncated_or_corrupt_zips_are_refused_clearly() {
    let p = pair("bf16_state_dict");
    let file = p.bin.join("pytorch_model.bin");
    let bytes = std::fs::read(&file).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for cut in [
        0,
        3,
        100,
        bytes.len() / 2,
        bytes.len() - 30,
        bytes.len() - 1,
    ] {
        let path = write(tmp.path(), &format!("cut-{cut}.bin"), &bytes[..cut]);
        let msg = open_err(&path);
        assert!(
            msg.contains("not a readable zip archive") || msg.contains("truncated"),
            "cut at {cut}: {msg}"
        );
    }
    // Not a zip at all, and an empty zip.
    let path = write(tmp.path(), "text.bin", b"hello, world\n");
    assert!(open_err(&path).contains("not a PyTorch .bin checkpoint"));
    let path = write(tmp.path(), "empty.bin", &support::rezip(&[]));
    assert!(open_err(&path).contains("without data.pkl"));
    // A folder whose pytorch_model.bin is junk: refused, naming it.
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    std::fs::write(dir.join("pytorch_model.bin"), b"x").unwrap();
    let e = Model::open(&dir).unwrap_err();
    assert!(matches!(e, OpenError::BadBin { .. }), "{e:?}");
    assert!(e.to_string().contains("pytorch_model.bin"), "{e}");
}
