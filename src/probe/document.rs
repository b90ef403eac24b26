//! The probe file (`snrscope probe --out P.json`): the metrics, what they were computed on, and
//! their definitions; and reading it back (the explorer shows it like a scan file).

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::summary::Metrics;

/// The marker a probe file starts with (so it can be told from a scan file by its first bytes).
pub const MARKER: &str = "snrscope_probe";
const FORMAT: u64 = 1;

/// What a probe was computed on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeMeta {
    /// The model as given on the command line (information only: paths differ by machine).
    pub model: String,
    pub model_type: String,
    /// Tensor names, dtypes, shapes and sampled bytes (`snrscope scan`'s part fingerprint).
    pub model_fingerprint: String,
    pub stack_prefix: String,
    pub layers: usize,
    pub hidden: usize,
    /// Where the tokens came from.
    pub text: String,
    /// Tokens of every sample, in order.
    pub sample_tokens: Vec<usize>,
    pub samples_sha256: String,
    pub max_block: usize,
    pub ppl: bool,
}

/// How the file is written.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Include PruneMe's rows, averaged over batches of `pruneme_batch` samples.
    pub pruneme: Option<usize>,
    /// Anything else worth keeping (timings, threads, peak memory), appended as given.
    pub run: Map<String, Value>,
}

/// The layers of the lowest values, lowest first (ties by layer).
pub fn lowest_first(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).filter(|&i| !values[i].is_nan()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]).then(a.cmp(&b)));
    order
}

/// The probe file's text.
pub fn to_json(meta: &ProbeMeta, m: &Metrics, extras: &Extras) -> String {
    let blocks = |rows: &[Vec<f64>]| -> Value {
        let mut o = Map::new();
        for (i, r) in rows.iter().enumerate() {
            o.insert((i + 1).to_string(), json!(r));
        }
        Value::Object(o)
    };
    let mut best = Map::new();
    for (i, r) in m.angular.iter().enumerate() {
        if let Some(&l) = lowest_first(r).first() {
            best.insert(
                (i + 1).to_string(),
                json!({"layers": (l..l + i + 1).collect::<Vec<_>>(), "distance": r[l]}),
            );
        }
    }
    let mut v = json!({
        MARKER: {"format": FORMAT, "written_by": concat!("snrscope ", env!("CARGO_PKG_VERSION"))},
        "model": meta.model,
        "model_type": meta.model_type,
        "model_fingerprint": meta.model_fingerprint,
        "stack_prefix": meta.stack_prefix,
        "layers": meta.layers,
        "hidden": meta.hidden,
        "text": meta.text,
        "samples": meta.sample_tokens.len(),
        "tokens": meta.sample_tokens.iter().sum::<usize>(),
        "sample_tokens": meta.sample_tokens,
        "samples_sha256": meta.samples_sha256,
        "max_block": meta.max_block,
        "block_influence": m.block_influence,
        "angular_distance": blocks(&m.angular),
    });
    let o = v.as_object_mut().expect("an object");
    if let Some(batch) = extras.pruneme {
        o.insert("pruneme".into(), blocks(&m.pruneme));
        o.insert("pruneme_batch".into(), json!(batch));
    }
    if let (Some(orig), Some(without)) = (m.ppl_original, &m.ppl_without_layer) {
        o.insert(
            "perplexity".into(),
            json!({"original": orig, "without_layer": without}),
        );
    }
    let mut proposals = json!({
        "lowest_block_influence": lowest_first(&m.block_influence),
        "best_block": best,
    });
    if let Some(w) = &m.ppl_without_layer {
        proposals["lowest_perplexity_without_layer"] = json!(lowest_first(w));
    }
    o.insert("proposals".into(), proposals);
    o.insert("definitions".into(), definitions());
    for (k, val) in &extras.run {
        o.insert(k.clone(), val.clone());
    }
    serde_json::to_string_pretty(&v).expect("JSON values serialize") + "\n"
}

fn definitions() -> Value {
    json!({
        "x_k": "the input of layer k (0-based) for k < layers; x_layers is the last layer's \
                output before the final norm",
        "block_influence": "entry i: 1 - mean over every token of every sample of \
                cos(x_i, x_i+1) (ShortGPT, arXiv 2403.03853); in [0, 2], in practice [0, 1]; \
                low = the layer changes its input little: drop first",
        "angular_distance": "entry l of \"n\": arccos(cos(x_l, x_l+n))/pi at each sample's \
                last token, mean over samples (Gromov et al., arXiv 2403.17887); in [0, 1]; \
                low = dropping layers l..l+n-1 changes the last token little",
        "pruneme": "arcee-ai/PruneMe's rows: entry j of \"n\" compares hidden_states[1:][j] \
                and [j+n] (transformers' output_hidden_states), i.e. x_j+1 with x_j+1+n, except \
                that the last entry is the final norm's output; CSV block_start = j+1, \
                block_end = j+1+n; the layers the row's distance skips are 0-based j+1..j+n",
        "perplexity": "exp(mean negative log-likelihood of each sample's tokens but its \
                first), original and without each single layer (Shortened LLaMA's PPL \
                criterion, arXiv 2402.02834); low = removing the layer costs least",
    })
}

/// A probe file as the explorer shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeDoc {
    pub model: String,
    pub model_type: String,
    pub model_fingerprint: String,
    pub stack_prefix: String,
    pub layers: usize,
    pub samples: usize,
    pub tokens: usize,
    pub text: String,
    pub block_influence: Vec<f64>,
    /// `angular[n-1]`: blocks of n, L−n+1 entries.
    pub angular: Vec<Vec<f64>>,
    pub ppl_original: Option<f64>,
    pub ppl_without_layer: Option<Vec<f64>>,
}

impl ProbeDoc {
    /// A probe computed here (the explorer's `P`), as if read back from its file.
    pub fn from_metrics(meta: &ProbeMeta, m: &Metrics) -> ProbeDoc {
        ProbeDoc {
            model: meta.model.clone(),
            model_type: meta.model_type.clone(),
            model_fingerprint: meta.model_fingerprint.clone(),
            stack_prefix: meta.stack_prefix.clone(),
            layers: meta.layers,
            samples: meta.sample_tokens.len(),
            tokens: meta.sample_tokens.iter().sum(),
            text: meta.text.clone(),
            block_influence: m.block_influence.clone(),
            angular: m.angular.clone(),
            ppl_original: m.ppl_original,
            ppl_without_layer: m.ppl_without_layer.clone(),
        }
    }
}

/// Does `path` look like a probe file (its first bytes name the marker)?
pub fn looks_like_probe_file(path: &Path) -> bool {
    use std::io::Read as _;
    // Never blocks on a FIFO: the explorer asks this of any path it is given.
    let Ok((f, _)) = crate::util::files::open_regular(path) else {
        return false;
    };
    let mut head = Vec::new();
    if f.take(256).read_to_end(&mut head).is_err() {
        return false;
    }
    String::from_utf8_lossy(&head).contains(&format!("\"{MARKER}\""))
}

/// Reads a probe file; every problem names the file.
pub fn read(path: &Path) -> Result<ProbeDoc, String> {
    let bad = |p: String| format!("{}: {p}", path.display());
    let text = crate::util::files::read_string_bounded(
        path,
        crate::util::files::limit::SCAN,
        "a probe file",
    )
    .map_err(|e| bad(format!("cannot read: {}", crate::util::text::io_reason(&e))))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    parse(&v).map_err(bad)
}

fn parse(v: &Value) -> Result<ProbeDoc, String> {
    let format = v
        .get(MARKER)
        .and_then(|m| m.get("format"))
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("not a probe file (no \"{MARKER}\" header)"))?;
    if format != FORMAT {
        return Err(format!(
            "written by another snrscope version (format {format}, not {FORMAT})"
        ));
    }
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("no string {k:?}"))
    };
    let count = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .map(|x| x as usize)
            .ok_or_else(|| format!("no whole number {k:?}"))
    };
    let numbers = |v: &Value, what: &str| -> Result<Vec<f64>, String> {
        v.as_array()
            .ok_or_else(|| format!("{what} is not a list"))?
            .iter()
            .map(|x| match x {
                Value::Null => Ok(f64::NAN),
                x => x
                    .as_f64()
                    .ok_or_else(|| format!("{what} holds {x}, not a number")),
            })
            .collect()
    };
    let layers = count("layers")?;
    if layers == 0 || layers > 99_999 {
        return Err(format!("\"layers\" is {layers}"));
    }
    let block_influence = numbers(
        v.get("block_influence").unwrap_or(&Value::Null),
        "\"block_influence\"",
    )?;
    if block_influence.len() != layers {
        return Err(format!(
            "\"block_influence\" has {} entries for {layers} layers",
            block_influence.len()
        ));
    }
    let blocks = v
        .get("angular_distance")
        .and_then(Value::as_object)
        .ok_or("no \"angular_distance\" object")?;
    let mut by_n = BTreeMap::new();
    for (k, rows) in blocks {
        let n: usize = k
            .parse()
            .ok()
            .filter(|n| (1..=layers).contains(n))
            .ok_or_else(|| format!("\"angular_distance\" has a key {k:?}, not a block size"))?;
        let rows = numbers(rows, &format!("\"angular_distance\"[{k:?}]"))?;
        if rows.len() != layers + 1 - n {
            return Err(format!(
                "\"angular_distance\"[{k:?}] has {} entries; blocks of {n} in {layers} layers \
                 have {}",
                rows.len(),
                layers + 1 - n
            ));
        }
        by_n.insert(n, rows);
    }
    if by_n.keys().copied().ne(1..=by_n.len()) {
        return Err("\"angular_distance\" must hold blocks 1, 2, … without gaps".into());
    }
    let (ppl_original, ppl_without_layer) = match v.get("perplexity") {
        None | Some(Value::Null) => (None, None),
        Some(p) => {
            let w = numbers(
                p.get("without_layer").unwrap_or(&Value::Null),
                "\"perplexity\".\"without_layer\"",
            )?;
            if w.len() != layers {
                return Err(format!(
                    "\"perplexity\".\"without_layer\" has {} entries for {layers} layers",
                    w.len()
                ));
            }
            (
                Some(
                    p.get("original")
                        .and_then(Value::as_f64)
                        .unwrap_or(f64::NAN),
                ),
                Some(w),
            )
        }
    };
    Ok(ProbeDoc {
        model: text("model")?,
        model_type: text("model_type").unwrap_or_default(),
        model_fingerprint: text("model_fingerprint")?,
        stack_prefix: text("stack_prefix")?,
        layers,
        samples: count("samples")?,
        tokens: count("tokens")?,
        text: text("text").unwrap_or_default(),
        block_influence,
        angular: by_n.into_values().collect(),
        ppl_original,
        ppl_without_layer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ProbeMeta {
        ProbeMeta {
            model: "m".into(),
            model_type: "llama".into(),
            model_fingerprint: "f".into(),
            stack_prefix: "model.layers".into(),
            layers: 3,
            hidden: 8,
            text: "t".into(),
            sample_tokens: vec![4, 4],
            samples_sha256: "s".into(),
            max_block: 2,
            ppl: true,
        }
    }

    fn metrics() -> Metrics {
        Metrics {
            block_influence: vec![0.3, 0.1, f64::NAN],
            angular: vec![vec![0.4, 0.2, 0.3], vec![0.5, 0.25]],
            pruneme: vec![vec![0.2, 0.7], vec![0.8]],
            ppl_original: Some(10.0),
            ppl_without_layer: Some(vec![50.0, 11.0, 12.0]),
        }
    }

    #[test]
    fn writes_and_reads_back() {
        let text = to_json(
            &meta(),
            &metrics(),
            &Extras {
                pruneme: Some(1),
                run: Map::new(),
            },
        );
        assert!(text.starts_with("{\n  \"snrscope_probe\""), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["angular_distance"]["2"], json!([0.5, 0.25]));
        assert_eq!(v["pruneme"]["1"], json!([0.2, 0.7]));
        assert_eq!(v["block_influence"][2], Value::Null);
        assert_eq!(v["proposals"]["lowest_block_influence"], json!([1, 0]));
        assert_eq!(v["proposals"]["best_block"]["2"]["layers"], json!([1, 2]));
        assert_eq!(
            v["proposals"]["lowest_perplexity_without_layer"],
            json!([1, 2, 0])
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        std::fs::write(&p, &text).unwrap();
        assert!(looks_like_probe_file(&p));
        let d = read(&p).unwrap();
        assert_eq!(d.angular, metrics().angular);
        assert_eq!(d.ppl_without_layer, Some(vec![50.0, 11.0, 12.0]));
        assert!(d.block_influence[2].is_nan());
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let text = to_json(&meta(), &metrics(), &Extras::default());
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v["angular_distance"]["2"] = json!([0.1]);
        let e = parse(&v).unwrap_err();
        assert!(e.contains("blocks of 2 in 3 layers have 2"), "{e}");
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v["angular_distance"].as_object_mut().unwrap().remove("1");
        assert!(parse(&v).unwrap_err().contains("without gaps"));
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v["block_influence"] = json!([0.1]);
        assert!(parse(&v).unwrap_err().contains("1 entries for 3 layers"));
        let e = parse(&json!({"results": {}})).unwrap_err();
        assert!(e.contains("not a probe file"), "{e}");
    }
}
