//! Scans split across machines: `--part K/N` scans a deterministic share of the matrices and
//! writes a part file; merging checks that the parts belong together and fit without gaps or
//! overlaps, and gives one ordinary scan file.
//!
//! A part file wraps an ordinary scan file's entries (`"results"`) with what the merge checks
//! (`"snrscope_part"`): the part number, the method, the model's fingerprint and the full list
//! of matrices of the whole scan. It is deliberately not a Spectrum file: a part alone is not a
//! scan of the model.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

use crate::{
    checkpoint::{Model, dtype_name, layers},
    scanfile::{self, ScanEntry, pyjson::PyJson},
    spectrum::{scan::ScanJob, schedule, snr::Method},
};

/// `K/N`: the K-th of N parts, K from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Part {
    type Err = String;
    fn from_str(s: &str) -> Result<Part, String> {
        let bad = || format!("{s:?}: expected K/N with 1 <= K <= N, e.g. 2/3");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            k.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Part { index, count })
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The jobs of part `part` (in their original order), balanced by work for `method`.
pub fn share(jobs: &[ScanJob], method: Method, part: Part) -> Vec<ScanJob> {
    let work: Vec<f64> = jobs
        .iter()
        .map(|j| match j.shape.as_slice() {
            &[r, c] => schedule::work(r, c, method),
            _ => 0.0,
        })
        .collect();
    schedule::split(&work, part.count)[part.index - 1]
        .iter()
        .map(|&i| jobs[i].clone())
        .collect()
}

/// What identifies a model across machines (paths and inodes differ there): every tensor's
/// name, dtype and shape, and a sample of its bytes (the first, middle and last 64), so two
/// fine-tunes of one architecture differ. Reads a few pages per tensor, not the weights.
pub fn fingerprint(model: &Model) -> String {
    let mut h = Sha256::new();
    for t in &model.tensors {
        let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        h.update(format!("{}\n{}\n{}\n", t.name, dtype_name(t.dtype), shape.join("x")).as_bytes());
        let len = t.num_bytes() as usize;
        let w = 64.min(len);
        let mid = (len - w) / 2;
        for at in [0, mid, len - w] {
            // A tensor that cannot be read still has a name, dtype and shape to go by.
            if let Ok(piece) = model.bytes_within(t, at..at + w) {
                h.update(&*piece);
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a part file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PartInfo {
    pub part: Part,
    pub method: Method,
    pub model_fingerprint: String,
    /// The model as given on the command line (information only: paths differ by machine).
    pub model: String,
    /// Every matrix (module name) of the whole scan, in natural order.
    pub all_modules: Vec<String>,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The part file's text: `{"snrscope_part": {...}, "results": {<scan file entries>}}`.
pub fn to_json(info: &PartInfo, entries: &[ScanEntry]) -> String {
    let mut out = String::from("{\n  \"snrscope_part\": {\n");
    let _ = writeln!(out, "    \"format\": 1,");
    let _ = writeln!(out, "    \"part\": {},", info.part.index);
    let _ = writeln!(out, "    \"parts\": {},", info.part.count);
    let _ = writeln!(out, "    \"method\": {},", json_str(info.method.name()));
    let _ = writeln!(
        out,
        "    \"model_fingerprint\": {},",
        json_str(&info.model_fingerprint)
    );
    let _ = writeln!(out, "    \"model\": {},", json_str(&info.model));
    let names: Vec<String> = info.all_modules.iter().map(|m| json_str(m)).collect();
    let _ = writeln!(out, "    \"all_modules\": [{}]", names.join(", "));
    out.push_str("  },\n  \"results\": ");
    let results = if entries.is_empty() {
        "{}".to_string()
    } else {
        scanfile::to_json(entries).trim_end().replace('\n', "\n  ")
    };
    out.push_str(&results);
    out.push_str("\n}\n");
    out
}

#[derive(Debug, thiserror::Error)]
pub enum PartError {
    #[error("{path}: cannot read: {}", crate::util::text::io_reason(source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a part file: {problem}")]
    NotAPart { path: PathBuf, problem: String },
    #[error("{first} and {second} are parts of different models (model fingerprints differ)")]
    OtherModel { first: PathBuf, second: PathBuf },
    #[error("{first} and {second} {problem}")]
    Mismatch {
        first: PathBuf,
        second: PathBuf,
        problem: String,
    },
    #[error("{module} is in both {first} and {second}")]
    Overlap {
        module: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "{missing} of {total} matrices are in no part (e.g. {example}){absent}; pass \
         --allow-partial to merge anyway"
    )]
    Missing {
        missing: usize,
        total: usize,
        example: String,
        absent: String,
    },
}

/// Reads a part file.
pub fn read(path: &Path) -> Result<(PartInfo, Vec<ScanEntry>), PartError> {
    let text = crate::util::files::read_string_bounded(
        path,
        crate::util::files::limit::SCAN,
        "a part file",
    )
    .map_err(|source| PartError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let not = |problem: String| PartError::NotAPart {
        path: path.to_path_buf(),
        problem,
    };
    let doc = PyJson::parse(&text).map_err(|e| not(format!("not JSON: {e}")))?;
    let meta =
        doc.get("snrscope_part").ok_or_else(|| {
            not("no \"snrscope_part\" header (write parts with snrscope scan --part K/N --out FILE)"
            .into())
        })?;
    let num = |k: &str| {
        meta.get(k)
            .and_then(PyJson::as_f64)
            .filter(|x| x.fract() == 0.0 && *x >= 0.0)
            .map(|x| x as usize)
            .ok_or_else(|| not(format!("\"snrscope_part\" has no whole number {k:?}")))
    };
    let text_of = |k: &str| {
        meta.get(k)
            .and_then(PyJson::as_str)
            .map(str::to_string)
            .ok_or_else(|| not(format!("\"snrscope_part\" has no string {k:?}")))
    };
    if num("format")? != 1 {
        return Err(not(
            "written by another snrscope version (format is not 1)".into()
        ));
    }
    let part = format!("{}/{}", num("part")?, num("parts")?)
        .parse::<Part>()
        .map_err(not)?;
    let method = Method::parse(&text_of("method")?)
        .ok_or_else(|| not("\"method\" is neither svd nor gram".into()))?;
    let all_modules = match meta.get("all_modules") {
        Some(PyJson::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| not("\"all_modules\" holds something other than names".into()))?,
        _ => return Err(not("no \"all_modules\" list".into())),
    };
    let entries = match doc.get("results") {
        Some(PyJson::Object(o)) if o.is_empty() => Vec::new(),
        Some(v) => {
            scanfile::parse_value(v, &path.display().to_string())
                .map_err(|e| not(e.to_string()))?
                .1
        }
        None => return Err(not("no \"results\"".into())),
    };
    Ok((
        PartInfo {
            part,
            method,
            model_fingerprint: text_of("model_fingerprint")?,
            model: text_of("model")?,
            all_modules,
        },
        entries,
    ))
}

/// The merged scan: entries in natural order, and the matrices no part had.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub entries: Vec<ScanEntry>,
    pub missing: Vec<String>,
    pub method: Method,
}

/// Combines parts read from their files: refuses parts of different models, methods or
/// matrix sets, a matrix in two parts, and (unless `allow_partial`) matrices in none.
pub fn merge(
    parts: Vec<(PathBuf, PartInfo, Vec<ScanEntry>)>,
    allow_partial: bool,
) -> Result<Merged, PartError> {
    let Some((first_path, first, _)) = parts.first().cloned() else {
        return Err(PartError::NotAPart {
            path: PathBuf::new(),
            problem: "no part files given".into(),
        });
    };
    let mismatch = |second: &Path, problem: &str| PartError::Mismatch {
        first: first_path.clone(),
        second: second.to_path_buf(),
        problem: problem.to_string(),
    };
    for (path, info, _) in &parts[1..] {
        if info.model_fingerprint != first.model_fingerprint {
            return Err(PartError::OtherModel {
                first: first_path.clone(),
                second: path.clone(),
            });
        }
        if info.method != first.method {
            return Err(mismatch(
                path,
                &format!(
                    "were scanned with different methods ({} and {})",
                    first.method, info.method
                ),
            ));
        }
        if info.all_modules != first.all_modules {
            return Err(mismatch(
                path,
                "are parts of scans of different matrices (another --modules?)",
            ));
        }
        if info.part.count != first.part.count {
            return Err(mismatch(
                path,
                &format!(
                    "split the scan differently ({} and {} parts)",
                    first.part.count, info.part.count
                ),
            ));
        }
    }
    let expected: BTreeSet<&str> = first.all_modules.iter().map(String::as_str).collect();
    let mut owner: BTreeMap<String, (PathBuf, ScanEntry)> = BTreeMap::new();
    for (path, _, entries) in &parts {
        for e in entries {
            if !expected.contains(e.module.as_str()) {
                return Err(PartError::NotAPart {
                    path: path.clone(),
                    problem: format!("{} is not among the matrices it lists", e.module),
                });
            }
            if let Some((other, _)) = owner.get(&e.module) {
                return Err(PartError::Overlap {
                    module: e.module.clone(),
                    first: other.clone(),
                    second: path.clone(),
                });
            }
            owner.insert(e.module.clone(), (path.clone(), e.clone()));
        }
    }
    let missing: Vec<String> = first
        .all_modules
        .iter()
        .filter(|m| !owner.contains_key(*m))
        .cloned()
        .collect();
    if !missing.is_empty() && !allow_partial {
        let present: BTreeSet<usize> = parts.iter().map(|(_, i, _)| i.part.index).collect();
        let absent: Vec<String> = (1..=first.part.count)
            .filter(|k| !present.contains(k))
            .map(|k| format!("{k}/{}", first.part.count))
            .collect();
        return Err(PartError::Missing {
            missing: missing.len(),
            total: first.all_modules.len(),
            example: missing[0].clone(),
            absent: if absent.is_empty() {
                String::new()
            } else {
                format!("; no file for part {}", absent.join(", "))
            },
        });
    }
    let mut entries: Vec<ScanEntry> = owner.into_values().map(|(_, e)| e).collect();
    entries.iter_mut().for_each(ScanEntry::order_extra);
    entries.sort_by(|a, b| layers::natural_cmp(&a.module, &b.module));
    Ok(Merged {
        entries,
        missing,
        method: first.method,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_syntax() {
        assert_eq!("2/3".parse::<Part>(), Ok(Part { index: 2, count: 3 }));
        assert_eq!("1/1".parse::<Part>(), Ok(Part { index: 1, count: 1 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "/3"] {
            assert!(bad.parse::<Part>().is_err(), "{bad}");
        }
    }

    fn entry(module: &str) -> ScanEntry {
        ScanEntry {
            module: module.into(),
            module_type: "v".into(),
            snr: 0.5,
            extra: vec![("raw_snr".into(), 1.0)],
            error: None,
            method: Some(Method::Svd),
        }
    }

    fn info(k: usize, n: usize, all: &[&str]) -> PartInfo {
        PartInfo {
            part: Part { index: k, count: n },
            method: Method::Svd,
            model_fingerprint: "abc".into(),
            model: "m".into(),
            all_modules: all.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn part_file_round_trips() {
        let i = info(2, 3, &["a.1", "a.2"]);
        let e = vec![entry("a.2")];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        std::fs::write(&p, to_json(&i, &e)).unwrap();
        assert_eq!(read(&p).unwrap(), (i.clone(), e));
        // A part that got no matrix (more parts than matrices) is still a part.
        std::fs::write(&p, to_json(&i, &[])).unwrap();
        assert_eq!(read(&p).unwrap(), (i, vec![]));
        // An ordinary scan file is not a part.
        std::fs::write(&p, scanfile::to_json(&[entry("a.1")])).unwrap();
        assert!(matches!(read(&p), Err(PartError::NotAPart { .. })));
    }

    #[test]
    fn merge_refusals() {
        let all = ["l.0", "l.1", "l.2"];
        let p = |k, mods: &[&str]| {
            (
                PathBuf::from(format!("part-{k}.json")),
                info(k, 3, &all),
                mods.iter().map(|m| entry(m)).collect::<Vec<_>>(),
            )
        };
        let ok = merge(vec![p(1, &["l.2"]), p(2, &["l.0"]), p(3, &["l.1"])], false).unwrap();
        let names: Vec<&str> = ok.entries.iter().map(|e| e.module.as_str()).collect();
        assert_eq!(names, all);
        assert!(ok.missing.is_empty());

        let overlap = merge(vec![p(1, &["l.0", "l.1"]), p(2, &["l.1", "l.2"])], false);
        assert!(
            matches!(&overlap, Err(PartError::Overlap { module, .. }) if module == "l.1"),
            "{overlap:?}"
        );

        let missing = merge(vec![p(1, &["l.0"]), p(3, &["l.2"])], false).unwrap_err();
        let text = missing.to_string();
        assert!(
            text.contains("1 of 3") && text.contains("l.1") && text.contains("2/3"),
            "{text}"
        );
        let partial = merge(vec![p(1, &["l.0"]), p(3, &["l.2"])], true).unwrap();
        assert_eq!(partial.missing, vec!["l.1".to_string()]);

        let mut other = p(2, &["l.1"]);
        other.1.model_fingerprint = "xyz".into();
        assert!(matches!(
            merge(vec![p(1, &["l.0"]), other], false),
            Err(PartError::OtherModel { .. })
        ));
        let mut gram = p(2, &["l.1"]);
        gram.1.method = Method::Gram;
        assert!(matches!(
            merge(vec![p(1, &["l.0"]), gram], false),
            Err(PartError::Mismatch { .. })
        ));
        let mut foreign = p(2, &["l.9"]);
        foreign.1.all_modules = all.iter().map(|s| s.to_string()).collect();
        assert!(matches!(
            merge(vec![p(1, &["l.0"]), foreign], false),
            Err(PartError::NotAPart { .. })
        ));
    }
}
