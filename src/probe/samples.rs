//! The calibration samples a probe runs on: a text cut into N samples of T tokens, or token ids
//! given as a JSON array of arrays (one sample each) or as one flat list (cut like a text).

use std::{ops::Range, path::Path};

use sha2::{Digest as _, Sha256};

use crate::forward::{EvalError, tokens};

/// Samples back to back: `ids` and each sample's range of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Samples {
    pub ids: Vec<u32>,
    pub ranges: Vec<Range<usize>>,
}

impl Samples {
    pub fn lengths(&self) -> Vec<usize> {
        self.ranges.iter().map(|r| r.len()).collect()
    }

    pub fn tokens(&self) -> usize {
        self.ranges.iter().map(|r| r.len()).sum()
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The samples `which` (indices, in order), as samples of their own.
    pub fn subset(&self, which: &[usize]) -> Samples {
        let mut ids = Vec::new();
        let mut ranges = Vec::new();
        for &i in which {
            let r = &self.ranges[i];
            ranges.push(ids.len()..ids.len() + r.len());
            ids.extend_from_slice(&self.ids[r.clone()]);
        }
        Samples { ids, ranges }
    }

    /// SHA-256 of the samples' ids and boundaries: what identifies them in cache keys and part
    /// files.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for r in &self.ranges {
            h.update((r.len() as u64).to_le_bytes());
            for id in &self.ids[r.clone()] {
                h.update(id.to_le_bytes());
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Samples from lists of ids, each cut to `max_tokens`, at most `count` of them.
    pub fn from_lists(lists: Vec<Vec<u32>>, count: usize, max_tokens: usize) -> Samples {
        let mut ids = Vec::new();
        let mut ranges = Vec::new();
        for list in lists.into_iter().take(count) {
            let n = list.len().min(max_tokens);
            ranges.push(ids.len()..ids.len() + n);
            ids.extend_from_slice(&list[..n]);
        }
        Samples { ids, ranges }
    }

    /// A token stream cut into back-to-back samples of `max_tokens`, at most `count` of them.
    /// Only whole samples are taken, unless the stream is shorter than one sample (then it is
    /// the one sample): samples of equal length weigh equally in the means.
    pub fn from_stream(ids: &[u32], count: usize, max_tokens: usize) -> Samples {
        let t = max_tokens.max(2);
        let whole = (ids.len() / t).min(count);
        if whole == 0 {
            return Samples {
                ids: ids.to_vec(),
                ranges: std::iter::once(0..ids.len()).collect(),
            };
        }
        Samples {
            ids: ids[..whole * t].to_vec(),
            ranges: (0..whole).map(|i| i * t..(i + 1) * t).collect(),
        }
    }
}

/// Token ids from a file: a JSON array of arrays (one sample each), or what
/// [`tokens::read_token_ids`] reads (whole numbers separated by spaces or commas, or a flat
/// JSON array), which is one stream. `Ok((lists, true))` for samples, `(vec![stream], false)`
/// for a stream.
pub fn read_ids(path: &Path) -> Result<(Vec<Vec<u32>>, bool), EvalError> {
    let bad = |problem: String| EvalError::Text {
        path: path.to_path_buf(),
        problem,
    };
    let text = crate::util::files::read_string_bounded(
        path,
        crate::util::files::limit::TEXT,
        "a file of token ids",
    )
    .map_err(|e| bad(format!("cannot read: {}", crate::util::text::io_reason(&e))))?;
    let body = text.trim_start();
    let nested = body
        .strip_prefix('[')
        .is_some_and(|b| b.trim_start().starts_with('['));
    if !nested {
        return Ok((vec![tokens::read_token_ids(path)?], false));
    }
    let lists: Vec<Vec<serde_json::Value>> = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a JSON array of arrays of token ids: {e}")))?;
    let mut out = Vec::with_capacity(lists.len());
    for (i, list) in lists.iter().enumerate() {
        let ids = list
            .iter()
            .enumerate()
            .map(|(j, v)| {
                v.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "sample {}, entry {} ({v}) is not a token id",
                            i + 1,
                            j + 1
                        ))
                    })
            })
            .collect::<Result<Vec<u32>, _>>()?;
        out.push(ids);
    }
    if out.is_empty() {
        return Err(bad("holds no samples".into()));
    }
    Ok((out, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_cut_into_whole_samples() {
        let ids: Vec<u32> = (0..10).collect();
        let s = Samples::from_stream(&ids, 4, 3);
        assert_eq!(s.ranges, vec![0..3, 3..6, 6..9]);
        let s = Samples::from_stream(&ids, 2, 3);
        assert_eq!(s.ranges, vec![0..3, 3..6]);
        assert_eq!(s.ids, (0..6).collect::<Vec<u32>>());
        // Shorter than one sample: the whole stream.
        let s = Samples::from_stream(&ids[..2], 4, 3);
        assert_eq!(s.ranges, vec![0..2]);
    }

    #[test]
    fn lists_are_cut_and_counted() {
        let s = Samples::from_lists(vec![vec![1, 2, 3], vec![4, 5], vec![6, 7]], 2, 2);
        assert_eq!(s.ids, vec![1, 2, 4, 5]);
        assert_eq!(s.ranges, vec![0..2, 2..4]);
        assert_eq!(s.subset(&[1]).ids, vec![4, 5]);
        assert_ne!(s.digest(), s.subset(&[1]).digest());
        // The boundaries are part of the digest.
        let joined = Samples::from_lists(vec![vec![1, 2, 4, 5]], 1, 9);
        assert_ne!(s.digest(), joined.digest());
    }

    #[test]
    fn id_files_nested_or_flat() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ids.json");
        std::fs::write(&p, " [[1, 2, 3], [4,5]]\n").unwrap();
        assert_eq!(
            read_ids(&p).unwrap(),
            (vec![vec![1, 2, 3], vec![4, 5]], true)
        );
        std::fs::write(&p, "[1, 2, 3]").unwrap();
        assert_eq!(read_ids(&p).unwrap(), (vec![vec![1, 2, 3]], false));
        std::fs::write(&p, "[[1, -2]]").unwrap();
        let e = read_ids(&p).unwrap_err().to_string();
        assert!(
            e.contains("ids.json") && e.contains("sample 1, entry 2"),
            "{e}"
        );
        std::fs::write(&p, "[[1, 2]").unwrap();
        let e = read_ids(&p).unwrap_err().to_string();
        assert!(
            e.contains("ids.json") && e.contains("array of arrays"),
            "{e}"
        );
    }
}
