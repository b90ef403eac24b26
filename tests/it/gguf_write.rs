//! The pruned GGUF writer. The expected output of each prune is built independently with
//! tests/gguf/builder.rs (from the format's specification): the same metadata with
//! `block_count` and the per-layer arrays edited by hand, the kept tensors renamed. The
//! writer's file must equal it byte for byte.

use snrscope_testkit::gguf_builder as builder;

use std::path::{Path, PathBuf};

use builder::{Builder, llama};
use snrscope::{
    checkpoint::gguf::{GgufModel, Value},
    export::{Inputs, PruneOptions, write_pruned},
    util::cancel::CancelToken,
};

fn prune(model: &Path, kept: &[usize], out: &Path) -> Result<(), String> {
    let m = GgufModel::open(model).map_err(|e| e.to_string())?;
    let opts = PruneOptions {
        kept: kept.to_vec(),
        out: out.to_path_buf(),
        replace: false,
        inputs: Inputs::new(),
    };
    write_pruned(&m, &opts, &mut |_, _| {}, &CancelToken::default())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `b` with layers renamed to `kept`'s positions and the others removed.
fn keep_tensors(b: &Builder, kept: &[usize]) -> Vec<(String, Vec<u64>, u32, Vec<u8>)> {
    b.tensors
        .iter()
        .filter_map(|t| match t.0.strip_prefix("blk.") {
            Some(rest) => {
                let (n, module) = rest.split_once('.').unwrap();
                let n: usize = n.parse().unwrap();
                let i = kept.iter().position(|&k| k == n)?;
                let mut t = t.clone();
                t.0 = format!("blk.{i}.{module}");
                Some(t)
            }
            None => Some(t.clone()),
        })
        .collect()
}

fn dir_names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn pruned_file_equals_the_hand_built_one() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("m.gguf");
    let b = llama(4);
    b.write(&src);
    let out = d.path().join("p.gguf");
    prune(&src, &[0, 2, 3], &out).unwrap();

    // Expected: block_count 3, head_count shortened, rope.dimension_sections (4 long, like the
    // 4 layers, but not per layer) untouched, layers 2 and 3 renamed 1 and 2.
    let mut want = Builder::new()
        .kv_str("general.architecture", "llama")
        .kv_str("general.name", "tiny")
        .kv_u32("llama.block_count", 3)
        .kv_u32("llama.embedding_length", 8)
        .kv_u32("llama.context_length", 64)
        .kv_u32s("llama.attention.head_count", &[2, 2, 2])
        .kv_u32("llama.attention.head_count_kv", 1)
        .kv_u32s("llama.rope.dimension_sections", &[1, 2, 3, 4]);
    want.tensors = keep_tensors(&b, &[0, 2, 3]);
    assert_eq!(std::fs::read(&out).unwrap(), want.bytes());
    assert_eq!(
        dir_names(d.path()),
        ["m.gguf", "p.gguf"],
        "no temporary or lock left"
    );

    let p = GgufModel::open(&out).unwrap();
    assert_eq!(
        p.tensor("blk.1.attn_v.weight").unwrap().to_f64().unwrap()[0],
        3300.0,
        "new layer 1 is old layer 2"
    );
}

#[test]
fn a_split_input_gives_one_file_without_split_keys() {
    let d = tempfile::tempdir().unwrap();
    let full = llama(2).kv_u32("general.alignment", 64);
    let mut full = full;
    full.alignment = 64;
    let mut p1 = full.clone();
    p1.tensors.retain(|t| !t.0.starts_with("blk.1."));
    let split = |b: Builder, k: u16| {
        let kv16 = |v: u16| {
            let mut x = 2u32.to_le_bytes().to_vec();
            x.extend(v.to_le_bytes());
            x
        };
        b.kv_raw("split.no", kv16(k))
            .kv_raw("split.count", kv16(2))
            .kv_raw("split.tensors.count", kv16(full.tensors.len() as u16))
    };
    let p1 = split(p1, 0);
    let mut p2 = split(Builder::new(), 1);
    p2.alignment = 64;
    p2 = p2.kv_u32("general.alignment", 64);
    p2.tensors = full
        .tensors
        .iter()
        .filter(|t| t.0.starts_with("blk.1."))
        .cloned()
        .collect();
    p1.write(&d.path().join("s-00001-of-00002.gguf"));
    p2.write(&d.path().join("s-00002-of-00002.gguf"));
    let out = d.path().join("out.gguf");
    prune(&d.path().join("s-00002-of-00002.gguf"), &[1], &out).unwrap();

    let mut want = Builder::new()
        .kv_str("general.architecture", "llama")
        .kv_str("general.name", "tiny")
        .kv_u32("llama.block_count", 1)
        .kv_u32("llama.embedding_length", 8)
        .kv_u32("llama.context_length", 64)
        .kv_u32s("llama.attention.head_count", &[2])
        .kv_u32("llama.attention.head_count_kv", 1)
        .kv_u32s("llama.rope.dimension_sections", &[1, 2, 3, 4])
        .kv_u32("general.alignment", 64);
    want.alignment = 64;
    // Tensors in the set's order: part 1's (non-layer), then part 2's (layer 1 -> 0).
    let mut tensors = keep_tensors(&p1, &[1]);
    tensors.extend(keep_tensors(&p2, &[1]));
    want.tensors = tensors;
    assert_eq!(std::fs::read(&out).unwrap(), want.bytes());
}

fn gemma2(layers: u32) -> Builder {
    let mut b = Builder::new()
        .kv_str("general.architecture", "gemma2")
        .kv_u32("gemma2.block_count", layers)
        .kv_u32("gemma2.attention.sliding_window", 16)
        .kv_u32("gemma2.attention.head_count", 2);
    for l in 0..layers {
        b = b.f32_tensor(&format!("blk.{l}.attn_v.weight"), &[4, 4], l as f32);
    }
    b
}

fn swa(path: &Path) -> Option<Vec<bool>> {
    let m = GgufModel::open(path).unwrap();
    match m.get("gemma2.attention.sliding_window_pattern")? {
        Value::Array(snrscope::checkpoint::gguf::Array::Bool(v)) => Some(v.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sliding_window_layers_keep_their_type() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("g.gguf");
    gemma2(4).write(&src);
    // llama.cpp's gemma2: even layers slide. Dropping layer 1 would turn old layer 2 into a
    // global layer 1; the writer spells the kept layers' own flags out.
    prune(&src, &[0, 2, 3], &d.path().join("a.gguf")).unwrap();
    assert_eq!(swa(&d.path().join("a.gguf")), Some(vec![true, true, false]));
    // Dropping a pair keeps every parity: the metadata stays as it was.
    prune(&src, &[0, 3], &d.path().join("b.gguf")).unwrap();
    assert_eq!(swa(&d.path().join("b.gguf")), None);
    // A bool array already there is shortened like any per-layer array.
    let src2 = d.path().join("g2.gguf");
    gemma2(4)
        .kv_array(
            "gemma2.attention.sliding_window_pattern",
            builder::BOOL,
            &[vec![1], vec![0], vec![0], vec![1]],
        )
        .write(&src2);
    prune(&src2, &[1, 3], &d.path().join("c.gguf")).unwrap();
    assert_eq!(swa(&d.path().join("c.gguf")), Some(vec![false, true]));
}

fn opts(out: PathBuf, kept: &[usize], replace: bool) -> PruneOptions {
    PruneOptions {
        kept: kept.to_vec(),
        out,
        replace,
        inputs: Inputs::new(),
    }
}

#[test]
fn refuses_what_would_lose_data_or_make_no_model() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("m.gguf");
    llama(3).write(&src);
    let original = std::fs::read(&src).unwrap();
    let m = GgufModel::open(&src).unwrap();
    let run = |o: PruneOptions| {
        write_pruned(&m, &o, &mut |_, _| {}, &CancelToken::default())
            .unwrap_err()
            .to_string()
    };
    let e = run(opts(src.clone(), &[0], true));
    assert!(e.contains("is the input"), "{e}");
    let link = d.path().join("link.gguf");
    std::os::unix::fs::symlink(&src, &link).unwrap();
    let e = run(opts(link.clone(), &[0], true));
    assert!(e.contains("is the input"), "{e}");
    std::fs::write(d.path().join("taken.gguf"), "user's").unwrap();
    let e = run(opts(d.path().join("taken.gguf"), &[0], false));
    assert!(e.contains("already exists"), "{e}");
    let e = run(opts(d.path().join("x.gguf"), &[], false));
    assert!(
        e.contains("keep at least one") && e.contains("m.gguf"),
        "{e}"
    );
    let e = run(opts(d.path().join("x.gguf"), &[0, 3], false));
    assert!(e.contains("layer 3") && e.contains("3 layers"), "{e}");
    let e = run(opts(d.path().join("x.gguf"), &[1, 0], false));
    assert!(e.contains("ascending"), "{e}");
    let e = run(opts(d.path().join("no/x.gguf"), &[0], false));
    assert!(e.contains("does not exist"), "{e}");
    let e = run(opts(d.path().to_path_buf(), &[0], false));
    assert!(e.contains("contains the input"), "{e}");

    let cancel = CancelToken::default();
    cancel.cancel();
    let e = write_pruned(
        &m,
        &opts(d.path().join("c.gguf"), &[0], false),
        &mut |_, _| {},
        &cancel,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("cancelled"), "{e}");

    assert_eq!(
        std::fs::read(&src).unwrap(),
        original,
        "the input is untouched"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("taken.gguf")).unwrap(),
        "user's"
    );
    assert_eq!(
        dir_names(d.path()),
        ["link.gguf", "m.gguf", "taken.gguf"],
        "nothing left behind"
    );

    // With replace, an existing file (not an input) is replaced.
    write_pruned(
        &m,
        &opts(d.path().join("taken.gguf"), &[2], true),
        &mut |_, _| {},
        &CancelToken::default(),
    )
    .unwrap();
    assert_eq!(
        GgufModel::open(&d.path().join("taken.gguf"))
            .unwrap()
            .block_count(),
        Some(1)
    );
}

#[test]
fn progress_reaches_the_file_size() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("m.gguf");
    llama(2).write(&src);
    let m = GgufModel::open(&src).unwrap();
    let mut last = (0, 1);
    let s = write_pruned(
        &m,
        &opts(d.path().join("o.gguf"), &[1], false),
        &mut |done, total| last = (done, total),
        &CancelToken::default(),
    )
    .unwrap();
    assert_eq!(last, (s.bytes, s.bytes));
    assert_eq!(
        std::fs::metadata(d.path().join("o.gguf")).unwrap().len(),
        s.bytes
    );
    assert!(
        s.edited
            .iter()
            .any(|e| e.contains("llama.block_count: 2 -> 1")),
        "{:?}",
        s.edited
    );
}
