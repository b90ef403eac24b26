//! Opening GGUF files: metadata and tensor infos, shapes, split sets and folders, and the
//! refusals (each naming the file and the problem). Files are made by tests/gguf/builder.rs,
//! written from the format's specification.

use snrscope_testkit::gguf_builder as builder;

use builder::{Builder, llama};
use snrscope::checkpoint::gguf::{GgmlType, GgufError, GgufModel, Value, names};

fn open_bytes(dir: &std::path::Path, name: &str, bytes: &[u8]) -> Result<GgufModel, GgufError> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    GgufModel::open(&p)
}

fn err(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
    let e = open_bytes(dir, name, bytes)
        .expect_err("refused")
        .to_string();
    assert!(e.contains(name), "the message names the file: {e}");
    e
}

#[test]
fn opens_metadata_tensors_and_shapes() {
    let d = tempfile::tempdir().unwrap();
    let m = open_bytes(d.path(), "m.gguf", &llama(3).bytes()).unwrap();
    assert_eq!(m.arch(), Some("llama"));
    assert_eq!(m.block_count(), Some(3));
    assert_eq!(m.len(), 2 + 3 * 5 + 1);
    let t = m.tensor("blk.1.attn_k.weight").unwrap();
    // GGUF dims [8, 4] (innermost first) = a 4x8 matrix.
    assert_eq!(t.info.shape(), vec![4, 8]);
    assert_eq!(t.info.ggml_type, GgmlType::F32);
    assert_eq!(t.info.n_bytes, 4 * 8 * 4);
    let r = t.byte_range();
    assert_eq!(r.start % 32, 0);
    let v = t.to_f64().unwrap();
    assert_eq!(v[0], 2200.0);
    assert_eq!(v[31], 2231.0);
    let rows = t.dequantize_rows::<f32>(2..3).unwrap();
    assert_eq!(
        rows,
        (16..24).map(|i| 2200.0 + i as f32).collect::<Vec<_>>()
    );
    assert_eq!(
        names::hf_name("llama", &t.info.name).as_deref(),
        Some("model.layers.1.self_attn.k_proj.weight")
    );
    match m.get("llama.attention.head_count") {
        Some(Value::Array(a)) => assert_eq!(a.len(), 3),
        other => panic!("{other:?}"),
    }
    let e = t.dequantize_rows::<f64>(3..5).unwrap_err().to_string();
    assert!(e.contains("m.gguf") && e.contains("4 rows"), "{e}");
}

#[test]
fn honours_the_alignment() {
    let d = tempfile::tempdir().unwrap();
    let mut b = llama(1).kv_u32("general.alignment", 64);
    b.alignment = 64;
    let m = open_bytes(d.path(), "a.gguf", &b.bytes()).unwrap();
    for t in m.tensors() {
        assert_eq!(t.byte_range().start % 64, 0, "{}", t.info.name);
    }
    assert_eq!(m.tensor("output.weight").unwrap().to_f64().unwrap()[0], 7.0);
}

fn split_parts(n: usize) -> Vec<Builder> {
    // Layer k's tensors in part k; metadata in part 1 only, as gguf-split writes it.
    let full = llama(n as u32);
    (0..n)
        .map(|k| {
            let mut b = if k == 0 {
                let mut b = full.clone();
                b.tensors.clear();
                b
            } else {
                Builder::new()
            };
            b = b
                .kv_raw("split.no", {
                    let mut v = 2u32.to_le_bytes().to_vec(); // uint16
                    v.extend((k as u16).to_le_bytes());
                    v
                })
                .kv_raw("split.count", {
                    let mut v = 2u32.to_le_bytes().to_vec();
                    v.extend((n as u16).to_le_bytes());
                    v
                })
                .kv_raw("split.tensors.count", {
                    let mut v = 5u32.to_le_bytes().to_vec(); // int32
                    v.extend((full.tensors.len() as i32).to_le_bytes());
                    v
                });
            for t in &full.tensors {
                let mine = match t.0.strip_prefix("blk.") {
                    Some(r) => r.starts_with(&format!("{k}.")),
                    None => k == 0,
                };
                if mine {
                    b.tensors.push(t.clone());
                }
            }
            b
        })
        .collect()
}

#[test]
fn split_sets_open_from_any_part_and_from_their_folder() {
    let d = tempfile::tempdir().unwrap();
    let parts = split_parts(3);
    for (k, b) in parts.iter().enumerate() {
        b.write(&d.path().join(format!("tiny-{:05}-of-00003.gguf", k + 1)));
    }
    for name in ["tiny-00002-of-00003.gguf", "tiny-00003-of-00003.gguf"] {
        let m = GgufModel::open(&d.path().join(name)).unwrap();
        assert_eq!(m.parts.len(), 3);
        assert_eq!(m.len(), 18);
        assert_eq!(m.block_count(), Some(3));
        let t = m.tensor("blk.2.attn_v.weight").unwrap();
        assert!(t.part.path.ends_with("tiny-00003-of-00003.gguf"));
        assert_eq!(t.to_f64().unwrap()[0], 3300.0);
    }
    let m = GgufModel::open(d.path()).unwrap();
    assert_eq!(m.parts.len(), 3);

    // A missing part is named.
    std::fs::remove_file(d.path().join("tiny-00002-of-00003.gguf")).unwrap();
    let e = GgufModel::open(&d.path().join("tiny-00001-of-00003.gguf"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tiny-00002-of-00003.gguf") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn split_sets_must_agree() {
    let d = tempfile::tempdir().unwrap();
    // A tensor in two parts.
    let mut parts = split_parts(2);
    let dup = parts[0].tensors[0].clone();
    parts[1].tensors.push(dup);
    for (k, b) in parts.iter().enumerate() {
        b.write(&d.path().join(format!("x-{:05}-of-00002.gguf", k + 1)));
    }
    let e = GgufModel::open(&d.path().join("x-00001-of-00002.gguf"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("token_embd.weight") && e.contains("also in"),
        "{e}"
    );

    // A part numbered otherwise than its name.
    let d = tempfile::tempdir().unwrap();
    let parts = split_parts(2);
    parts[0].write(&d.path().join("y-00002-of-00002.gguf"));
    parts[1].write(&d.path().join("y-00001-of-00002.gguf"));
    let e = GgufModel::open(&d.path().join("y-00001-of-00002.gguf"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("y-00001-of-00002.gguf") && e.contains("split.no"),
        "{e}"
    );

    // A part of a set under a plain name.
    let d = tempfile::tempdir().unwrap();
    let parts = split_parts(2);
    let e = open_bytes(d.path(), "renamed.gguf", &parts[0].bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("renamed.gguf") && e.contains("split"), "{e}");
}

#[test]
fn a_folder_must_hold_one_model() {
    let d = tempfile::tempdir().unwrap();
    let e = GgufModel::open(d.path()).unwrap_err().to_string();
    assert!(e.contains("no .gguf"), "{e}");
    llama(1).write(&d.path().join("a.gguf"));
    assert!(GgufModel::open(d.path()).is_ok());
    llama(1).write(&d.path().join("mmproj.gguf"));
    let e = GgufModel::open(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("a.gguf") && e.contains("mmproj.gguf") && e.contains("more than one"),
        "{e}"
    );
}

#[test]
fn refusals_name_the_file_and_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let good = llama(1).bytes();

    let e = err(d, "short.gguf", b"GG");
    assert!(e.contains("too short"), "{e}");
    let e = err(d, "st.gguf", b"{\"__metadata__\": {}}");
    assert!(e.contains("not a GGUF"), "{e}");

    let mut be = good.clone();
    be[4..8].copy_from_slice(&3u32.to_be_bytes());
    let e = err(d, "be.gguf", &be);
    assert!(e.contains("big-endian"), "{e}");

    let mut v1 = good.clone();
    v1[4..8].copy_from_slice(&1u32.to_le_bytes());
    let e = err(d, "v1.gguf", &v1);
    assert!(e.contains("version 1"), "{e}");

    let mut b = llama(1);
    b.version = 2;
    assert!(open_bytes(d, "v2.gguf", &b.bytes()).is_ok());

    for (name, a) in [("al0.gguf", 0u32), ("al12.gguf", 12)] {
        let e = err(d, name, &llama(1).kv_u32("general.alignment", a).bytes());
        assert!(e.contains("general.alignment"), "{e}");
    }

    let e = err(d, "trunc.gguf", &good[..good.len() - 40]);
    assert!(
        e.contains("output.weight") && e.contains("truncated"),
        "{e}"
    );

    let huge_count = {
        let mut b = good.clone();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        b
    };
    let e = err(d, "count.gguf", &huge_count);
    assert!(e.contains("tensor count"), "{e}");

    let e = err(
        d,
        "dims.gguf",
        &Builder::new()
            .tensor("t", &[1, 1, 1, 1, 1], 0, vec![0; 4])
            .bytes(),
    );
    assert!(e.contains("5 dimensions"), "{e}");

    let long = "x".repeat(64);
    let e = err(
        d,
        "name.gguf",
        &Builder::new().tensor(&long, &[1], 0, vec![0; 4]).bytes(),
    );
    assert!(e.contains("64 bytes long"), "{e}");

    let e = err(
        d,
        "type.gguf",
        &Builder::new().tensor("t", &[32], 4, vec![0; 32]).bytes(),
    );
    assert!(e.contains("unknown ggml type id 4"), "{e}");

    let e = err(
        d,
        "block.gguf",
        &Builder::new().tensor("t", &[16], 8, vec![0; 34]).bytes(),
    );
    assert!(e.contains("block of 32"), "{e}");

    let e = err(
        d,
        "overflow.gguf",
        &Builder::new()
            .tensor("t", &[1 << 40, 1 << 40], 0, vec![])
            .bytes(),
    );
    assert!(e.contains("overflow"), "{e}");

    let e = err(
        d,
        "dupkey.gguf",
        &Builder::new().kv_u32("a", 1).kv_u32("a", 2).bytes(),
    );
    assert!(e.contains("appears twice"), "{e}");

    let e = err(
        d,
        "vtype.gguf",
        &Builder::new()
            .kv_raw("a", 13u32.to_le_bytes().to_vec())
            .bytes(),
    );
    assert!(e.contains("unknown value type 13"), "{e}");

    let mut arr = builder::ARRAY.to_le_bytes().to_vec();
    arr.extend(builder::STRING.to_le_bytes());
    arr.extend(u64::MAX.to_le_bytes());
    let e = err(d, "arr.gguf", &Builder::new().kv_raw("a", arr).bytes());
    assert!(e.contains("more than the"), "{e}");

    let e = GgufModel::open(&d.join("absent.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.gguf") && e.contains("no such"), "{e}");
}

#[test]
fn fused_qkv_gives_its_v_rows_and_the_source_repo_is_read() {
    let d = tempfile::tempdir().unwrap();
    // phi3-like: 2 heads and 1 key/value head of size 4 over a width of 8: Q 8 rows, K 4, V 4.
    let b = Builder::new()
        .kv_str("general.architecture", "phi3")
        .kv_u32("phi3.block_count", 1)
        .kv_u32("phi3.embedding_length", 8)
        .kv_u32("phi3.attention.head_count", 2)
        .kv_u32("phi3.attention.head_count_kv", 1)
        .kv_str(
            "general.source.repo_url",
            "https://huggingface.co/microsoft/Phi-3-mini-4k-instruct",
        )
        .f32_tensor("blk.0.attn_qkv.weight", &[8, 16], 0.0);
    let m = open_bytes(d.path(), "phi.gguf", &b.bytes()).unwrap();
    assert_eq!(names::qkv_v_rows(&m, 0).unwrap(), 12..16);
    let v = m
        .tensor("blk.0.attn_qkv.weight")
        .unwrap()
        .dequantize_rows::<f64>(12..16)
        .unwrap();
    assert_eq!(v[0], 96.0, "row 12 starts at value 12 * 8");
    assert_eq!(
        m.source_repo().as_deref(),
        Some("microsoft/Phi-3-mini-4k-instruct")
    );
    assert_eq!(
        names::hf_name("phi3", "blk.0.attn_qkv.weight").as_deref(),
        Some("model.layers.0.self_attn.qkv_proj.weight")
    );
    // Metadata that does not add up is refused with the file named.
    let bad = b.clone().kv_u32("phi3.attention.key_length", 8);
    let m = open_bytes(d.path(), "bad.gguf", &bad.bytes()).unwrap();
    let e = names::qkv_v_rows(&m, 0).unwrap_err().to_string();
    assert!(e.contains("bad.gguf") && e.contains("16 rows"), "{e}");
}
