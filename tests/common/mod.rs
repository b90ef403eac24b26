//! Helpers shared by the core integration tests: the oracle's committed golden values.
#![allow(dead_code)]

#[path = "../golden/cases.rs"]
pub mod cases;

use std::path::{Path, PathBuf};

use snrscope::scanfile::pyjson::PyJson;

pub fn golden_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"))
}

/// A golden case's model, built into `dir`, with the oracle's results for it. Fails (with the
/// command that fixes it) when the model's bytes are not the ones the oracle was run on.
pub struct Golden {
    pub case: &'static cases::Case,
    /// The case's folder.
    pub dir: PathBuf,
    /// The oracle's output: `{"model.layers.0.self_attn.v_proj": {"snr": …, …}, …}`.
    pub results: PyJson,
}

impl Golden {
    /// What the oracle was pointed at: the folder or a file in it.
    pub fn target(&self) -> PathBuf {
        if self.case.target.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(self.case.target)
        }
    }
}

pub fn golden(name: &str, dir: &Path) -> Golden {
    let case = cases::case(name);
    case.build(dir);
    let path = golden_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run tests/golden/regenerate.py", path.display()));
    // Python writes Infinity / NaN bare; PyJson reads them.
    let file =
        PyJson::parse(&text).unwrap_or_else(|e| panic!("{}: does not parse: {e}", path.display()));
    let recorded: std::collections::BTreeMap<String, String> = file
        .get("weights")
        .and_then(PyJson::as_object)
        .expect("golden file has \"weights\"")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("hash string").to_string()))
        .collect();
    assert_eq!(
        cases::weight_hashes(dir),
        recorded,
        "{name}: the generated model is not the one {} was computed from; the generator \
         changed: run `python3 tests/golden/regenerate.py` (needs numpy) and commit the result",
        path.display()
    );
    Golden {
        case,
        dir: dir.to_path_buf(),
        results: file
            .get("results")
            .expect("golden file has \"results\"")
            .clone(),
    }
}
