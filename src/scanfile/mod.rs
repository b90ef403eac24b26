//! Scan results on disk, in the JSON layouts laserRMT and Spectrum read and write.
//!
//! Python's `json` writes infinity and NaN as the bare tokens `Infinity` and `NaN`; their
//! readers expect them, so the writer emits them and the reader accepts them.

mod keys;
pub mod pyjson;

use std::{fmt::Write as _, path::Path};

pub use keys::{to_file_keys, to_model_names};

use crate::scanfile::pyjson::PyJson as Value;

use crate::{
    checkpoint::layers,
    spectrum::{
        scan::{MatrixResult, ScanJob},
        snr::{Method, SnrStats},
    },
};

/// The statistics a scan writes after `snr`, `type` and `method`, in the oracle's order.
pub(crate) const STATS_KEYS: [&str; 6] = [
    "raw_snr",
    "max_singular_value",
    "threshold",
    "sigma",
    "n_signal",
    "n_noise",
];

/// One module's SNR as a scan file records it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanEntry {
    /// e.g. `model.layers.3.self_attn.v_proj` (no `.weight`).
    pub module: String,
    /// e.g. `self_attn.v_proj`.
    pub module_type: String,
    /// `snr_ratio`: what laserRMT and Spectrum call "snr".
    pub snr: f64,
    /// Further numeric fields (`raw_snr`, `max_singular_value`, ...) when the file has them.
    pub extra: Vec<(String, f64)>,
    /// Why this matrix has no SNR (written as `"error"`; `snr` is then NaN).
    pub error: Option<String>,
    /// How the singular values were computed (`"method"`: `svd` or `gram`), when known.
    pub method: Option<Method>,
}

impl ScanEntry {
    /// The scan-file record for one job (failed matrices carry their error and a NaN SNR).
    pub fn from_result(job: &ScanJob, result: Option<&Result<SnrStats, String>>) -> ScanEntry {
        let mut e = ScanEntry {
            module: job.module.clone(),
            module_type: job.module_type.clone(),
            snr: f64::NAN,
            extra: Vec::new(),
            error: None,
            method: None,
        };
        match result {
            Some(Ok(s)) => {
                e.snr = s.snr_ratio;
                let values = [
                    s.raw_snr,
                    s.max_singular_value,
                    s.threshold,
                    s.sigma,
                    s.n_signal as f64,
                    s.n_noise as f64,
                ];
                e.extra = STATS_KEYS
                    .iter()
                    .zip(values)
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
            }
            Some(Err(msg)) => e.error = Some(msg.clone()),
            None => e.error = Some("not scanned (cancelled)".into()),
        }
        e
    }

    /// The record for one job of a scan, with the method that produced its values.
    pub fn from_matrix_result(job: &ScanJob, result: Option<&MatrixResult>) -> ScanEntry {
        let mut e = ScanEntry::from_result(job, result.map(|r| &r.outcome));
        if let Some(r) = result.filter(|r| r.outcome.is_ok()) {
            e.method = Some(r.method);
        }
        e
    }

    /// `(stack, layer index)` when the module belongs to a numbered layer.
    pub fn layer(&self) -> Option<(&str, usize)> {
        layers::parse_layer_name(&self.module).map(|p| (p.stack, p.index))
    }

    /// Puts the extra fields in the order a scan writes them ([`STATS_KEYS`], then others by
    /// name): a parsed file's fields come back sorted by name.
    pub(crate) fn order_extra(&mut self) {
        let rank = |k: &str| {
            STATS_KEYS
                .iter()
                .position(|s| *s == k)
                .unwrap_or(usize::MAX)
        };
        self.extra
            .sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    }

    pub fn extra(&self, key: &str) -> Option<f64> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// Which layout a file was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanLayout {
    /// Spectrum's `{"name": {"snr": x, "type": t}}` (also what `snrscope scan` writes).
    SpectrumByModule,
    /// Spectrum's `{"type": {"name": x}}`.
    SpectrumByType,
    /// laserQlora's `{"name": {"snr": x, "module": name}}`.
    LaserQlora,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanFileError {
    #[error("{path}: cannot read: {}", crate::util::text::io_reason(source))]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not JSON: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: not a scan file: {problem}")]
    Layout { path: String, problem: String },
}

/// Formats a float the way Python's `json.dumps` does, so files round-trip through both.
pub(crate) fn python_float(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x == f64::INFINITY {
        "Infinity".into()
    } else if x == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        // Shortest round-trip digits, as Python's repr (exponent spelling may differ: both are
        // valid JSON and parse to the same f64).
        format!("{x:?}")
    }
}

/// Writes entries in the Spectrum by-module layout, in the given order.
pub fn to_json(entries: &[ScanEntry]) -> String {
    let mut out = String::from("{\n");
    for (i, e) in entries.iter().enumerate() {
        let _ = write!(
            out,
            "  {}: {{\n    \"snr\": {},\n    \"type\": {}",
            json_str(&e.module),
            python_float(e.snr),
            json_str(&e.module_type)
        );
        if let Some(m) = e.method {
            let _ = write!(out, ",\n    \"method\": {}", json_str(m.name()));
        }
        for (k, v) in &e.extra {
            // Counts (`n_signal`, `n_noise`) are ints in the oracle's output; keep them so.
            let value = if k.starts_with("n_") && v.fract() == 0.0 && v.abs() < 9e15 {
                format!("{}", *v as i64)
            } else {
                python_float(*v)
            };
            let _ = write!(out, ",\n    {}: {value}", json_str(k));
        }
        if let Some(err) = &e.error {
            let _ = write!(out, ",\n    \"error\": {}", json_str(err));
        }
        out.push_str("\n  }");
        if i + 1 < entries.len() {
            out.push(',');
        }
        out.push('\n');
    }
    out.push_str("}\n");
    out
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// Parses any of the three layouts, detected from the shape of the data.
pub fn parse(text: &str, path: &str) -> Result<(ScanLayout, Vec<ScanEntry>), ScanFileError> {
    let value = Value::parse(text).map_err(|e| ScanFileError::Syntax {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    parse_value(&value, path)
}

/// [`parse`] of an already parsed document (e.g. the results inside a part file).
pub(crate) fn parse_value(
    value: &Value,
    path: &str,
) -> Result<(ScanLayout, Vec<ScanEntry>), ScanFileError> {
    let layout_err = |problem: String| ScanFileError::Layout {
        path: path.to_string(),
        problem,
    };
    let top = value
        .as_object()
        .ok_or_else(|| layout_err("the top level is not an object".into()))?;
    if top.is_empty() {
        return Err(layout_err("it holds no entries".into()));
    }
    let number = |v: &Value| -> Option<f64> { v.as_f64() };
    let all_objects = top.values().all(|v| v.as_object().is_some());
    if !all_objects {
        return Err(layout_err(
            "expected every top-level value to be an object".into(),
        ));
    }
    // By-module layouts: each inner object has a numeric "snr".
    let by_module = top
        .values()
        .all(|v| v.get("snr").is_some_and(|s| number(s).is_some()));
    let mut entries = Vec::new();
    if by_module {
        let laser = top
            .values()
            .all(|v| v.get("type").is_none() && v.get("module").is_some());
        for (name, v) in top {
            let module = name.strip_suffix(".weight").unwrap_or(name).to_string();
            let module_type = v
                .get("type")
                .and_then(|t| t.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| type_of(&module));
            let extra = v
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !matches!(k.as_str(), "snr" | "type" | "module"))
                .filter_map(|(k, x)| number(x).map(|x| (k.clone(), x)))
                .collect();
            let error = v.get("error").and_then(|e| e.as_str()).map(str::to_string);
            let method = v
                .get("method")
                .and_then(|m| m.as_str())
                .and_then(Method::parse);
            entries.push(ScanEntry {
                snr: v.get("snr").and_then(number).expect("checked above"),
                module,
                module_type,
                extra,
                error,
                method,
            });
        }
        sort_natural(&mut entries);
        let layout = if laser {
            ScanLayout::LaserQlora
        } else {
            ScanLayout::SpectrumByModule
        };
        return Ok((layout, entries));
    }
    // By-type layout: every inner value is a number keyed by module name.
    let by_type = top.values().all(|v| {
        v.as_object()
            .is_some_and(|o| o.values().all(|x| number(x).is_some()))
    });
    if !by_type {
        return Err(layout_err(
            "neither {\"name\": {\"snr\": x, ...}} nor {\"type\": {\"name\": x}}".into(),
        ));
    }
    for (module_type, inner) in top {
        for (name, x) in inner.as_object().expect("checked above") {
            let module = name.strip_suffix(".weight").unwrap_or(name).to_string();
            entries.push(ScanEntry {
                module,
                module_type: module_type.clone(),
                snr: number(x).expect("checked above"),
                extra: Vec::new(),
                error: None,
                method: None,
            });
        }
    }
    sort_natural(&mut entries);
    Ok((ScanLayout::SpectrumByType, entries))
}

pub fn read(path: &Path) -> Result<(ScanLayout, Vec<ScanEntry>), ScanFileError> {
    let p = path.display().to_string();
    let text = crate::util::files::read_string_bounded(
        path,
        crate::util::files::limit::SCAN,
        "a scan file",
    )
    .map_err(|source| ScanFileError::Io {
        path: p.clone(),
        source,
    })?;
    parse(&text, &p)
}

/// Laying out a scan file's layers costs memory per (module type, layer) cell; a file may claim
/// any layer index, so the cells allowed grow with the entries it really holds (a real scan has
/// about one entry per cell; a partial one fewer) and never with the numbers it states.
const CELLS_PER_ENTRY: usize = 64;
const CELLS_FREE: usize = 65_536;

/// The main layer stack of a scan file, as the explorer and `snrscope export` both lay it out:
/// the numbered stack with the most entries (the transformer's; a vision tower's is smaller),
/// its layer count the highest index + 1, `modules[type][layer]` the entry's module name.
/// Refuses layer numbers the entries cannot justify (see `CELLS_PER_ENTRY`).
pub fn main_stack(entries: &[ScanEntry], path: &str) -> Result<layers::Stack, ScanFileError> {
    let layout_err = |problem: String| ScanFileError::Layout {
        path: path.to_string(),
        problem,
    };
    let mut counts: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for e in entries {
        if let Some((s, i)) = e.layer() {
            let c = counts.entry(s).or_default();
            c.0 += 1;
            c.1 = c.1.max(i);
        }
    }
    let (prefix, &(n_entries, max_index)) = counts
        .iter()
        .max_by_key(|(_, (n, max))| (*n, *max))
        .ok_or_else(|| {
            layout_err(
                "no entry names a numbered layer (like model.layers.3.self_attn.v_proj)".into(),
            )
        })?;
    let types: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.layer().is_some_and(|(s, _)| s == *prefix))
        .map(|e| e.module_type.as_str())
        .collect();
    let num_layers = max_index.saturating_add(1);
    let cells = num_layers.saturating_mul(types.len());
    if cells
        > n_entries
            .saturating_mul(CELLS_PER_ENTRY)
            .saturating_add(CELLS_FREE)
    {
        return Err(layout_err(format!(
            "`{}` has {n_entries} entries but a layer number as high as {max_index}: not a scan \
             of a real model (refusing to lay out {num_layers} layers)",
            crate::util::text::escape_controls(prefix)
        )));
    }
    let mut stack = layers::Stack {
        prefix: prefix.to_string(),
        num_layers,
        ..layers::Stack::default()
    };
    for e in entries {
        if let Some((s, i)) = e.layer()
            && s == *prefix
        {
            stack
                .modules
                .entry(e.module_type.clone())
                .or_default()
                .insert(i, e.module.clone());
            stack.tensors.entry(i).or_default().push(e.module.clone());
        }
    }
    Ok(stack)
}

/// `model.layers.3.self_attn.v_proj` -> `self_attn.v_proj`.
pub fn type_of(module: &str) -> String {
    layers::parse_layer_name(module)
        .map(|p| p.rest.to_string())
        .unwrap_or_else(|| module.to_string())
}

fn sort_natural(entries: &mut [ScanEntry]) {
    entries.sort_by(|a, b| layers::natural_cmp(&a.module, &b.module));
}

/// Does this path look like a scan file rather than a model? (A `.json` file that is not an
/// index or config; not only a regular one: a FIFO or a device by that name is then refused by
/// name when it is read, rather than taken for a model.)
pub fn looks_like_scan_file(path: &Path) -> bool {
    path.exists()
        && !path.is_dir()
        && path.extension().is_some_and(|e| e == "json")
        && !path.file_name().is_some_and(|n| {
            n == "config.json"
                || n == "model.safetensors.index.json"
                || n == "pytorch_model.bin.index.json"
        })
}
