//! A GGUF model as the user names it: one file, one part of a split set
//! (`NAME-0000K-of-0000N.gguf`, each part a complete GGUF carrying `split.*` metadata), or a
//! folder holding exactly one of those. Parts are found from any one of them; the set must be
//! complete, its parts must agree on their count and number, and no tensor may be in two parts.

use std::{
    collections::HashMap,
    ops::Range,
    path::{Path, PathBuf},
};

use super::{
    GgufError,
    error::shown,
    header::{GgufFile, TensorInfo},
    metadata::Value,
};

pub(crate) const SPLIT_NO: &str = "split.no";
pub(crate) const SPLIT_COUNT: &str = "split.count";
pub(crate) const SPLIT_TENSORS: &str = "split.tensors.count";

/// An opened GGUF model: its parts (one for a single file), metadata from the first part (the
/// one llama.cpp's `gguf-split` writes it to), and every tensor by name.
#[derive(Debug)]
pub struct GgufModel {
    /// What the user gave (file or folder).
    pub source: PathBuf,
    pub parts: Vec<GgufFile>,
    /// Tensors in file order across parts: (part, index in that part's `tensors`).
    order: Vec<(usize, usize)>,
    by_name: HashMap<String, usize>,
}

/// One tensor of a model and the part it lives in.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub info: &'a TensorInfo,
    pub part: &'a GgufFile,
}

impl<'a> TensorRef<'a> {
    /// Absolute byte range of the tensor's data in `part.path`.
    pub fn byte_range(&self) -> Range<u64> {
        self.part.data_range(self.info)
    }
}

impl GgufModel {
    /// Opens a `.gguf` file, any part of a split set, or a folder holding one model.
    pub fn open(path: &Path) -> Result<GgufModel, GgufError> {
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                GgufError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                GgufError::io(path, e)
            }
        })?;
        let file = if meta.is_dir() {
            the_model_in(path)?
        } else {
            path.to_path_buf()
        };
        let parts = match split_name(&file) {
            Some((_, _, n)) => open_split(&file, n)?,
            None => {
                let f = GgufFile::open(&file)?;
                if let Some(n) = f.get(SPLIT_COUNT).and_then(Value::as_usize)
                    && n > 1
                {
                    return Err(GgufError::layout(
                        &file,
                        format!(
                            "is part {} of a split set of {n} (split.count), but its name is not \
                             NAME-0000K-of-0000N.gguf, so the other parts cannot be found; \
                             give them their split names",
                            f.get(SPLIT_NO)
                                .and_then(Value::as_usize)
                                .map_or("?".into(), |k| (k + 1).to_string())
                        ),
                    ));
                }
                vec![f]
            }
        };
        let mut order: Vec<(usize, usize)> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (p, part) in parts.iter().enumerate() {
            for (i, t) in part.tensors.iter().enumerate() {
                if let Some(&first) = by_name.get(&t.name) {
                    let (fp, _) = order[first];
                    let first_path: &Path = &parts[fp].path;
                    return Err(GgufError::layout(
                        &part.path,
                        format!(
                            "tensor {} is also in {}; a split set holds each tensor once",
                            shown(&t.name),
                            first_path.display()
                        ),
                    ));
                }
                by_name.insert(t.name.clone(), order.len());
                order.push((p, i));
            }
        }
        if let Some(expected) = parts[0].get(SPLIT_TENSORS).and_then(Value::as_usize)
            && parts.len() > 1
            && expected != order.len()
        {
            return Err(GgufError::layout(
                &parts[0].path,
                format!(
                    "split.tensors.count says the set holds {expected} tensors, its {} parts \
                     hold {}",
                    parts.len(),
                    order.len()
                ),
            ));
        }
        Ok(GgufModel {
            source: path.to_path_buf(),
            parts,
            order,
            by_name,
        })
    }

    /// The first part: where the model's metadata is.
    pub fn main(&self) -> &GgufFile {
        &self.parts[0]
    }

    /// A metadata value (from the first part).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.main().get(key)
    }

    /// `general.architecture`, e.g. `llama`.
    pub fn arch(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    /// An architecture key: `{arch}.{suffix}`, e.g. `block_count`.
    pub fn arch_value(&self, suffix: &str) -> Option<&Value> {
        self.get(&format!("{}.{suffix}", self.arch()?))
    }

    /// `{arch}.block_count`.
    pub fn block_count(&self) -> Option<usize> {
        self.arch_value("block_count").and_then(Value::as_usize)
    }

    /// Every tensor, in file order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorRef<'_>> {
        self.order.iter().map(|&(p, i)| TensorRef {
            info: &self.parts[p].tensors[i],
            part: &self.parts[p],
        })
    }

    pub fn tensor(&self, name: &str) -> Option<TensorRef<'_>> {
        let &(p, i) = self.order.get(*self.by_name.get(name)?)?;
        Some(TensorRef {
            info: &self.parts[p].tensors[i],
            part: &self.parts[p],
        })
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The Hugging Face repository the model was converted from, for mergekit's `model:`:
    /// `general.source.repo_url`, else the first `general.base_model.N.repo_url`, when it is a
    /// `https://huggingface.co/ORG/NAME` address (`ORG/NAME` is returned).
    pub fn source_repo(&self) -> Option<String> {
        let from_url = |key: &str| {
            let url = self.get(key)?.as_str()?;
            let rest = url
                .strip_prefix("https://huggingface.co/")
                .or_else(|| url.strip_prefix("http://huggingface.co/"))?;
            let mut it = rest.trim_end_matches('/').split('/');
            let (org, name) = (it.next()?, it.next()?);
            let ok = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            };
            (ok(org) && ok(name)).then(|| format!("{org}/{name}"))
        };
        from_url("general.source.repo_url").or_else(|| from_url("general.base_model.0.repo_url"))
    }

    /// Total bytes of the files.
    pub fn file_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.file_len).sum()
    }
}

/// `(stem, k, n)` of `STEM-0000K-of-0000N.gguf` (k and n 1-based, five digits as llama.cpp's
/// `gguf-split` writes them).
pub(crate) fn split_name(path: &Path) -> Option<(String, usize, usize)> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_suffix(".gguf")?;
    let (rest, n) = rest.rsplit_once("-of-")?;
    let (stem, k) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(k) || !digits(n) || stem.is_empty() {
        return None;
    }
    let (k, n): (usize, usize) = (k.parse().ok()?, n.parse().ok()?);
    (1..=n).contains(&k).then(|| (stem.to_string(), k, n))
}

pub(crate) fn split_path(dir: &Path, stem: &str, k: usize, n: usize) -> PathBuf {
    dir.join(format!("{stem}-{k:05}-of-{n:05}.gguf"))
}

fn open_split(any_part: &Path, n: usize) -> Result<Vec<GgufFile>, GgufError> {
    let (stem, _, _) = split_name(any_part).expect("called for split names");
    let dir = any_part.parent().unwrap_or(Path::new(""));
    let paths: Vec<PathBuf> = (1..=n).map(|k| split_path(dir, &stem, k, n)).collect();
    let missing: Vec<String> = paths
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(GgufError::layout(
            any_part,
            format!(
                "is part of a split set of {n}, but {} of its parts {} missing: {}",
                missing.len(),
                if missing.len() == 1 { "is" } else { "are" },
                missing.join(", ")
            ),
        ));
    }
    let mut parts = Vec::with_capacity(n);
    for (k, p) in paths.iter().enumerate() {
        let f = GgufFile::open(p)?;
        let count = f.get(SPLIT_COUNT).and_then(Value::as_usize);
        let no = f.get(SPLIT_NO).and_then(Value::as_usize);
        if count != Some(n) || no != Some(k) {
            return Err(GgufError::layout(
                p,
                format!(
                    "its name says part {} of {n}, its metadata says split.no = {} (0-based) of \
                     split.count = {}",
                    k + 1,
                    no.map_or("missing".into(), |v| v.to_string()),
                    count.map_or("missing".into(), |v| v.to_string())
                ),
            ));
        }
        parts.push(f);
    }
    if parts[0].get("general.architecture").is_none() {
        return Err(GgufError::layout(
            &parts[0].path,
            "the first part of a split set has no general.architecture; the model's metadata \
             belongs there",
        ));
    }
    Ok(parts)
}

/// The one model in a folder: a single `.gguf` or one complete split set. Anything else is
/// ambiguous and refused with the names (the user then names the file).
fn the_model_in(dir: &Path) -> Result<PathBuf, GgufError> {
    let rd = std::fs::read_dir(dir).map_err(|e| GgufError::io(dir, e))?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".gguf") && !n.starts_with('.'))
                && p.is_file()
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(GgufError::layout(dir, "holds no .gguf file"));
    }
    let models: Vec<String> = {
        let mut seen = Vec::new();
        for f in &files {
            let id = match split_name(f) {
                Some((stem, _, n)) => format!("{stem}-*-of-{n:05}.gguf"),
                None => f.file_name().unwrap().to_string_lossy().into_owned(),
            };
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        seen
    };
    if models.len() > 1 {
        return Err(GgufError::layout(
            dir,
            format!(
                "holds more than one GGUF model ({}); name the file to open",
                models
                    .iter()
                    .map(|m| shown(m))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(files.swap_remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names() {
        assert_eq!(
            split_name(Path::new("/m/Qwen-7B-Q4_K_M-00002-of-00003.gguf")),
            Some(("Qwen-7B-Q4_K_M".into(), 2, 3))
        );
        assert_eq!(split_name(Path::new("a-00004-of-00003.gguf")), None);
        assert_eq!(split_name(Path::new("a-0001-of-0003.gguf")), None);
        assert_eq!(split_name(Path::new("a.gguf")), None);
        assert_eq!(
            split_path(Path::new("/m"), "a", 1, 12),
            Path::new("/m/a-00001-of-00012.gguf")
        );
    }
}
