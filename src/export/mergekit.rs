//! mergekit's `passthrough` config: one slice per contiguous run of kept layers.

use std::fmt::Write as _;

use serde::Deserialize;

use super::{ExportError, Plan};

/// What the YAML must parse back to; checked after formatting so a model name that needs
/// quoting can never produce a config mergekit would read differently.
#[derive(Debug, Deserialize, PartialEq)]
struct Config {
    slices: Vec<Slice>,
    merge_method: String,
    dtype: String,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Slice {
    sources: Vec<Source>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Source {
    model: String,
    layer_range: [usize; 2],
}

/// A YAML plain or quoted scalar for `s`, as serde_yaml spells it.
fn scalar(s: &str) -> Result<String, ExportError> {
    let text = serde_yaml::to_string(s)
        .map_err(|e| ExportError::InvalidPlan(format!("cannot write {s:?} as YAML: {e}")))?;
    Ok(text.trim_end_matches('\n').to_string())
}

/// `12, 20, 21`.
pub fn join_layers(layers: &[usize]) -> String {
    layers
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one-line summary at the top of the YAML.
pub fn header_comment(plan: &Plan) -> String {
    let what = match plan.dropped.len() {
        0 => "dropped no layer".to_string(),
        1 => format!("dropped layer {}", plan.dropped[0]),
        _ => format!("dropped layers {}", join_layers(&plan.dropped)),
    };
    let reason = plan.reason.replace(['\n', '\r'], " ");
    if reason.trim().is_empty() {
        format!("# written by snrscope: {what} of {}", plan.num_layers)
    } else {
        format!(
            "# written by snrscope: {what} ({reason}) of {}",
            plan.num_layers
        )
    }
}

pub fn yaml(plan: &Plan) -> Result<String, ExportError> {
    plan.validate()?;
    for (what, v) in [("model name", &plan.model_ref), ("dtype", &plan.dtype)] {
        if crate::text::has_controls(v) {
            return Err(ExportError::InvalidPlan(format!(
                "the {what} {} contains control characters; not writing it into YAML",
                crate::text::escape_controls(v)
            )));
        }
    }
    let model = scalar(&plan.model_ref)?;
    let dtype = scalar(&plan.dtype)?;
    let ranges = plan.kept_ranges();
    let mut out = header_comment(plan);
    out.push_str("\nslices:\n");
    for r in &ranges {
        let _ = write!(
            out,
            "  - sources:\n      - model: {model}\n        layer_range: [{}, {}]\n",
            r.start, r.end
        );
    }
    let _ = writeln!(out, "merge_method: passthrough\ndtype: {dtype}");

    let expected = Config {
        slices: ranges
            .iter()
            .map(|r| Slice {
                sources: vec![Source {
                    model: plan.model_ref.clone(),
                    layer_range: [r.start, r.end],
                }],
            })
            .collect(),
        merge_method: "passthrough".into(),
        dtype: plan.dtype.clone(),
    };
    let parsed: Config = serde_yaml::from_str(&out)
        .map_err(|e| ExportError::InvalidPlan(format!("the YAML would not parse back: {e}")))?;
    if parsed != expected {
        return Err(ExportError::InvalidPlan(
            "the YAML would not parse back to the plan (model name or dtype needs quoting \
             snrscope does not handle)"
                .into(),
        ));
    }
    Ok(out)
}
