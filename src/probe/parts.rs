//! A probe split across machines: `--part K/N` probes a contiguous share of the samples and
//! writes a part file (each sample's own numbers, not means); merging checks that the parts
//! belong together (same model fingerprint, samples, options) and cover every sample exactly
//! once, then computes the metrics over all samples as one run would.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{collect::SampleStats, document::ProbeMeta, summary::PplSums};
use crate::spectrum::parts::Part;

const MARKER: &str = "snrscope_probe_part";
const FORMAT: u64 = 1;

/// The samples of part `part` of `count` samples: a contiguous range, sizes differing by at
/// most one.
pub fn share(count: usize, part: Part) -> std::ops::Range<usize> {
    let at = |k: usize| k * count / part.count;
    at(part.index - 1)..at(part.index)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    format: u64,
    part: usize,
    parts: usize,
}

/// One sample's numbers and its index among all the probe's samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedSample {
    pub index: usize,
    #[serde(flatten)]
    pub stats: SampleStats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct File {
    snrscope_probe_part: Header,
    meta: ProbeMeta,
    samples: Vec<IndexedSample>,
    ppl: Option<PplSums>,
}

/// The part file's text.
pub fn to_json(
    part: Part,
    meta: &ProbeMeta,
    samples: Vec<IndexedSample>,
    ppl: Option<PplSums>,
) -> String {
    let f = File {
        snrscope_probe_part: Header {
            format: FORMAT,
            part: part.index,
            parts: part.count,
        },
        meta: meta.clone(),
        samples,
        ppl,
    };
    serde_json::to_string(&f).expect("part files serialize") + "\n"
}

/// A part read from its file.
#[derive(Debug, Clone, PartialEq)]
pub struct PartFile {
    pub path: PathBuf,
    pub part: Part,
    pub meta: ProbeMeta,
    pub samples: Vec<IndexedSample>,
    pub ppl: Option<PplSums>,
}

pub fn read(path: &Path) -> Result<PartFile, String> {
    let bad = |p: String| format!("{}: {p}", path.display());
    let text = crate::util::files::read_string_bounded(
        path,
        crate::util::files::limit::SCAN,
        "a probe part file",
    )
    .map_err(|e| bad(format!("cannot read: {}", crate::util::text::io_reason(&e))))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if v.get(MARKER).is_none() {
        return Err(bad(format!(
            "not a probe part file (no \"{MARKER}\" header; write parts with snrscope probe \
             --part K/N --out FILE)"
        )));
    }
    let f: File = serde_json::from_value(v).map_err(|e| bad(format!("not a probe part: {e}")))?;
    if f.snrscope_probe_part.format != FORMAT {
        return Err(bad("written by another snrscope version".into()));
    }
    let part = format!(
        "{}/{}",
        f.snrscope_probe_part.part, f.snrscope_probe_part.parts
    )
    .parse::<Part>()
    .map_err(bad)?;
    let n = f.meta.sample_tokens.len();
    let l = f.meta.layers;
    // The lengths the summary indexes by: a part that lies about them is refused here.
    let blocks = f.meta.max_block.min(l);
    for s in &f.samples {
        let fits = s.index < n
            && s.stats.tokens == f.meta.sample_tokens[s.index]
            && s.stats.cos_sum.len() == l
            && s.stats.angular.len() == blocks
            && s.stats.pruneme_tail.len() == blocks.min(l.saturating_sub(1))
            && s.stats
                .angular
                .iter()
                .enumerate()
                .all(|(b, r)| r.len() + b == l);
        if !fits {
            return Err(bad(format!(
                "sample {} does not fit the probe it names ({n} samples, {l} layers)",
                s.index
            )));
        }
    }
    // The perplexity sums go with --ppl and a layer count's removals; a part without samples
    // has none to add.
    let ppl_fits = match &f.ppl {
        None => !f.meta.ppl || f.samples.is_empty(),
        Some(p) => f.meta.ppl && p.without_layer.len() == l,
    };
    if !ppl_fits {
        return Err(bad(format!(
            "its perplexity sums do not fit the probe it names (--ppl {}, {l} layers)",
            f.meta.ppl
        )));
    }
    Ok(PartFile {
        path: path.to_path_buf(),
        part,
        meta: f.meta,
        samples: f.samples,
        ppl: f.ppl,
    })
}

/// Every sample's numbers in order, and the perplexity sums over all parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub meta: ProbeMeta,
    pub stats: Vec<SampleStats>,
    pub ppl: Option<PplSums>,
}

/// Combines parts: refuses parts of different models, samples or options, a sample in two
/// parts, and samples in none.
pub fn merge(mut parts: Vec<PartFile>) -> Result<Merged, String> {
    parts.sort_by_key(|p| p.part.index);
    let Some(first) = parts.first().cloned() else {
        return Err("no part files given".into());
    };
    for p in &parts[1..] {
        let between = format!("{} and {}", first.path.display(), p.path.display());
        let (a, b) = (&first.meta, &p.meta);
        if a.model_fingerprint != b.model_fingerprint {
            return Err(format!(
                "{between} are parts of different models (model fingerprints differ)"
            ));
        }
        if a.samples_sha256 != b.samples_sha256 || a.sample_tokens != b.sample_tokens {
            return Err(format!(
                "{between} are parts of probes of different samples"
            ));
        }
        if (a.max_block, a.ppl) != (b.max_block, b.ppl) {
            return Err(format!(
                "{between} were probed with different options (--max-block {} and {}, --ppl \
                 {} and {})",
                a.max_block, b.max_block, a.ppl, b.ppl
            ));
        }
        if p.part.count != first.part.count {
            return Err(format!(
                "{between} split the probe differently ({} and {} parts)",
                first.part.count, p.part.count
            ));
        }
    }
    let mut by_index: BTreeMap<usize, (&Path, &SampleStats)> = BTreeMap::new();
    for p in &parts {
        for s in &p.samples {
            if let Some((other, _)) = by_index.insert(s.index, (&p.path, &s.stats)) {
                return Err(format!(
                    "sample {} is in both {} and {}",
                    s.index + 1,
                    other.display(),
                    p.path.display()
                ));
            }
        }
    }
    let total = first.meta.sample_tokens.len();
    if by_index.len() != total {
        let present: Vec<usize> = parts.iter().map(|p| p.part.index).collect();
        let absent: Vec<String> = (1..=first.part.count)
            .filter(|k| !present.contains(k))
            .map(|k| format!("{k}/{}", first.part.count))
            .collect();
        return Err(format!(
            "{} of {total} samples are in no part{}",
            total - by_index.len(),
            if absent.is_empty() {
                String::new()
            } else {
                format!(" (no file for part {})", absent.join(", "))
            }
        ));
    }
    let mut ppl: Option<PplSums> = None;
    for p in &parts {
        match (&mut ppl, &p.ppl) {
            (Some(sum), Some(x)) => sum.add(x),
            (None, Some(x)) => ppl = Some(x.clone()),
            _ => {}
        }
    }
    Ok(Merged {
        stats: by_index.into_values().map(|(_, s)| s.clone()).collect(),
        meta: first.meta,
        ppl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_sample_once() {
        for count in 0..12 {
            for parts in 1..6 {
                let mut next = 0;
                for k in 1..=parts {
                    let r = share(
                        count,
                        Part {
                            index: k,
                            count: parts,
                        },
                    );
                    assert_eq!(r.start, next);
                    assert!(r.len() <= count / parts + 1);
                    next = r.end;
                }
                assert_eq!(next, count);
            }
        }
    }

    fn meta() -> ProbeMeta {
        ProbeMeta {
            model: "m".into(),
            model_type: "llama".into(),
            model_fingerprint: "f".into(),
            stack_prefix: "model.layers".into(),
            layers: 2,
            hidden: 4,
            text: "t".into(),
            sample_tokens: vec![3, 3, 3],
            samples_sha256: "s".into(),
            max_block: 1,
            ppl: false,
        }
    }

    fn sample(index: usize) -> IndexedSample {
        IndexedSample {
            index,
            stats: SampleStats {
                tokens: 3,
                cos_sum: vec![index as f64, 1.0],
                angular: vec![vec![0.1, 0.2]],
                pruneme_tail: vec![0.4],
            },
        }
    }

    fn write(dir: &Path, k: usize, idx: &[usize], meta: &ProbeMeta) -> PathBuf {
        let p = dir.join(format!("part{k}.json"));
        let text = to_json(
            Part { index: k, count: 2 },
            meta,
            idx.iter().map(|&i| sample(i)).collect(),
            meta.ppl.then(|| PplSums {
                original: (1.0, 2),
                without_layer: vec![(1.0, 2); meta.layers],
            }),
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn merges_and_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let a = read(&write(dir.path(), 2, &[2], &meta())).unwrap();
        let b = read(&write(dir.path(), 1, &[0, 1], &meta())).unwrap();
        let m = merge(vec![a.clone(), b.clone()]).unwrap();
        let firsts: Vec<f64> = m.stats.iter().map(|s| s.cos_sum[0]).collect();
        assert_eq!(firsts, vec![0.0, 1.0, 2.0]);

        let e = merge(vec![a.clone()]).unwrap_err();
        assert!(e.contains("2 of 3 samples") && e.contains("1/2"), "{e}");
        let dup = read(&write(dir.path(), 1, &[0, 2], &meta())).unwrap();
        assert!(
            merge(vec![a.clone(), dup])
                .unwrap_err()
                .contains("sample 3 is in both")
        );
        let mut other = meta();
        other.model_fingerprint = "g".into();
        let c = read(&write(dir.path(), 1, &[0, 1], &other)).unwrap();
        assert!(
            merge(vec![a.clone(), c])
                .unwrap_err()
                .contains("different models")
        );
        let mut opts = meta();
        opts.ppl = true;
        let c = read(&write(dir.path(), 1, &[0, 1], &opts)).unwrap();
        assert!(merge(vec![a, c]).unwrap_err().contains("different options"));

        let p = dir.path().join("x.json");
        std::fs::write(&p, "{\"results\": {}}").unwrap();
        assert!(read(&p).unwrap_err().contains("not a probe part file"));
        let mut bad = meta();
        bad.layers = 5;
        let q = write(dir.path(), 1, &[0], &bad);
        assert!(read(&q).unwrap_err().contains("does not fit"));
        // Perplexity sums without --ppl, or none with it, do not fit either.
        let q = write(dir.path(), 1, &[0], &opts);
        let text = std::fs::read_to_string(&q).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["ppl"] = serde_json::Value::Null;
        std::fs::write(&q, v.to_string()).unwrap();
        assert!(read(&q).unwrap_err().contains("perplexity sums do not fit"));
    }
}
