//! Shared by the `.bin` tests: the committed fixtures beside their safetensors twins, and
//! hand-made torch-style zips for hostile pickles.

use std::{
    io::{Cursor, Write},
    path::{Path, PathBuf},
};

pub mod cases;

pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../torch_bin"))
}

pub fn manifest() -> serde_json::Value {
    let path = fixtures().join("manifest.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A case's safetensors twin (`st`) and the same model with the committed `.bin` weights
/// (`bin`: the twin's config, tokenizer, ... and the fixture's files), in a fresh folder.
pub struct Pair {
    pub tmp: tempfile::TempDir,
    pub st: PathBuf,
    pub bin: PathBuf,
}

pub fn pair(name: &str) -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("st");
    cases::case(name).build(&st);
    let manifest = manifest();
    let m = &manifest["cases"][name];
    let recorded: std::collections::BTreeMap<String, String> =
        serde_json::from_value(m["inputs"].clone()).unwrap();
    assert_eq!(
        cases::safetensors_hashes(&st),
        recorded,
        "{name}: the generator no longer writes the model the .bin fixture was saved from; run \
         `python3 tests/torch_bin/make_fixtures.py` (torch 2.15.0) and commit the fixtures"
    );
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for e in std::fs::read_dir(&st).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        if !n.ends_with(".safetensors") && n != "model.safetensors.index.json" {
            std::fs::copy(&p, bin.join(&n)).unwrap();
        }
    }
    let outputs: std::collections::BTreeMap<String, String> =
        serde_json::from_value(m["outputs"].clone()).unwrap();
    for (file, hash) in outputs {
        let from = fixtures().join(name).join(&file);
        assert_eq!(
            cases::sha256_file(&from),
            hash,
            "{}: differs from what make_fixtures.py wrote",
            from.display()
        );
        std::fs::copy(&from, bin.join(&file)).unwrap();
    }
    Pair { tmp, st, bin }
}

/// A zip as torch.save lays it out (`archive/data.pkl`, `archive/byteorder`,
/// `archive/data/<key>`), every entry stored.
pub fn torch_zip(pkl: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("archive/data.pkl", opts).unwrap();
    w.write_all(pkl).unwrap();
    w.start_file("archive/byteorder", opts).unwrap();
    w.write_all(b"little").unwrap();
    for (key, bytes) in storages {
        w.start_file(format!("archive/data/{key}"), opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.start_file("archive/version", opts).unwrap();
    w.write_all(b"3\n").unwrap();
    w.finish().unwrap().into_inner()
}

/// The entries of a zip as (name, bytes), in order.
pub fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (f.name().unwrap().to_string(), b)
        })
        .collect()
}

/// A zip of the given entries, stored.
pub fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Pickle opcodes for a protocol-2 state dict, one tensor per `(name, storage class, key,
/// shape)`, contiguous and at offset 0, as torch.save writes it.
pub fn state_dict_pickle(tensors: &[(&str, &str, &str, &[usize])]) -> Vec<u8> {
    let views: Vec<View<'_>> = tensors
        .iter()
        .map(|&(name, storage, key, shape)| View {
            name,
            storage,
            key,
            shape,
            stride: None,
            offset: 0,
            storage_numel: shape.iter().product(),
        })
        .collect();
    views_pickle(&views)
}

/// A tensor for [`views_pickle`]: any strides, offset and storage size.
pub struct View<'a> {
    pub name: &'a str,
    pub storage: &'a str,
    pub key: &'a str,
    pub shape: &'a [usize],
    /// `None`: contiguous.
    pub stride: Option<&'a [usize]>,
    pub offset: usize,
    pub storage_numel: usize,
}

/// Pickle opcodes for a protocol-2 state dict of views, as torch.save writes it.
pub fn views_pickle(tensors: &[View<'_>]) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    for v in tensors {
        let (name, storage, key, shape) = (v.name, v.storage, v.key, v.shape);
        unicode(&mut p, name);
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.push(b'(');
        unicode(&mut p, "storage");
        p.extend(format!("ctorch\n{storage}\n").as_bytes());
        unicode(&mut p, key);
        unicode(&mut p, "cpu");
        int(&mut p, v.storage_numel);
        p.extend(b"tQ");
        int(&mut p, v.offset);
        p.push(b'(');
        for &d in shape {
            int(&mut p, d);
        }
        p.push(b't');
        p.push(b'(');
        for i in 0..shape.len() {
            let s = match v.stride {
                Some(s) => s[i],
                None => shape[i + 1..].iter().product(),
            };
            int(&mut p, s);
        }
        p.push(b't');
        p.push(0x89);
        p.extend(b"ccollections\nOrderedDict\n)R");
        p.extend(b"tR");
    }
    p.extend(b"u.");
    p
}

pub fn unicode(p: &mut Vec<u8>, s: &str) {
    p.push(b'X');
    p.extend((s.len() as u32).to_le_bytes());
    p.extend(s.as_bytes());
}

pub fn int(p: &mut Vec<u8>, v: usize) {
    p.push(b'J');
    p.extend((v as i32).to_le_bytes());
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}
