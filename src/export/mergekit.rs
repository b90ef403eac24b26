//! mergekit's `passthrough` config: one slice per contiguous run of kept layers.

use std::fmt::Write as _;

use serde::Deserialize;

use super::ExportError;
use crate::plan::Plan;
use crate::plan::join_layers;

/// What the YAML must parse back to; checked after formatting so a model name that needs
/// quoting can never produce a config mergekit would read differently.
#[derive(Debug, Deserialize, PartialEq)]
struct Config {
    slices: Option<Vec<Slice>>,
    modules: Option<indexmap_free::Modules>,
    merge_method: String,
    dtype: String,
}

/// `modules:` as mergekit reads it (`OutputModuleDefinition`: `slices` or `models`).
mod indexmap_free {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    pub(crate) type Modules = BTreeMap<String, Module>;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    pub struct Module {
        pub slices: Option<Vec<super::Slice>>,
        pub models: Option<Vec<Model>>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    pub struct Model {
        pub model: String,
    }
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

/// The one-line summary at the top of the YAML.
pub(crate) fn header_comment(plan: &Plan) -> String {
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
        if crate::util::text::has_controls(v) {
            return Err(ExportError::InvalidPlan(format!(
                "the {what} {} contains control characters; not writing it into YAML",
                crate::util::text::escape_controls(v)
            )));
        }
    }
    let model = scalar(&plan.model_ref)?;
    let dtype = scalar(&plan.dtype)?;
    let ranges = plan.kept_ranges();
    let slices_yaml = |indent: &str| {
        let mut out = String::new();
        for r in &ranges {
            let _ = write!(
                out,
                "{indent}  - sources:\n{indent}      - model: {model}\n{indent}        \
                 layer_range: [{}, {}]\n",
                r.start, r.end
            );
        }
        out
    };
    let mut out = header_comment(plan);
    let expected_slices: Vec<Slice> = ranges
        .iter()
        .map(|r| Slice {
            sources: vec![Source {
                model: plan.model_ref.clone(),
                layer_range: [r.start, r.end],
            }],
        })
        .collect();
    let mut expected = Config {
        slices: None,
        modules: None,
        merge_method: "passthrough".into(),
        dtype: plan.dtype.clone(),
    };
    match &plan.mergekit_modules {
        None => {
            out.push_str("\nslices:\n");
            out.push_str(&slices_yaml(""));
            expected.slices = Some(expected_slices);
        }
        Some(m) => {
            // mergekit refuses plain slices for a model of several modules; the text decoder
            // gets the slices, every other module (vision tower, projector) is copied whole.
            out.push_str("\nmodules:\n");
            let _ = write!(out, "  {}:\n    slices:\n", scalar(&m.text)?);
            out.push_str(&slices_yaml("    "));
            let mut modules = indexmap_free::Modules::new();
            modules.insert(
                m.text.clone(),
                indexmap_free::Module {
                    slices: Some(expected_slices),
                    models: None,
                },
            );
            for w in &m.whole {
                let _ = write!(
                    out,
                    "  {}:\n    models:\n      - model: {model}\n",
                    scalar(w)?
                );
                modules.insert(
                    w.clone(),
                    indexmap_free::Module {
                        slices: None,
                        models: Some(vec![indexmap_free::Model {
                            model: plan.model_ref.clone(),
                        }]),
                    },
                );
            }
            expected.modules = Some(modules);
        }
    }
    let _ = writeln!(out, "merge_method: passthrough\ndtype: {dtype}");

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
