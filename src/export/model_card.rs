//! README.md of the pruned model: where it came from, how the layers were chosen, which went.

use std::fmt::Write as _;

use crate::plan::Plan;
use crate::{plan::format_ranges, util::bytes::human_count};

/// `01-ai/Yi-34B` looks like a Hugging Face repo id; `./models/yi` does not.
fn looks_like_repo_id(s: &str) -> bool {
    let mut parts = s.split('/');
    let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    ok(a) && ok(b)
}

/// An SNR for tables: `inf`, `nan`, `-` when unknown, else 4 significant digits.
pub fn format_snr(snr: Option<f64>) -> String {
    match snr {
        None => "-".into(),
        Some(x) if x.is_nan() => "nan".into(),
        Some(x) if x == f64::INFINITY => "inf".into(),
        Some(x) => format!("{x:.4e}"),
    }
}

/// The model card. `params` is (before, after) when the source model is known.
pub(crate) fn model_card(plan: &Plan, yaml: &str, params: Option<(u64, u64)>) -> String {
    let kept = plan.num_layers - plan.dropped.len();
    let mut s = String::from("---\n");
    if looks_like_repo_id(&plan.model_ref) {
        let _ = writeln!(s, "base_model: {}", plan.model_ref);
    }
    s.push_str("library_name: transformers\ntags:\n- mergekit\n- pruned\n- snrscope\n---\n\n");
    let _ = writeln!(
        s,
        "# {} pruned to {kept} of {} layers\n",
        plan.model_ref, plan.num_layers
    );
    let _ = writeln!(
        s,
        "This model is `{}` with {} of its {} layers (`{}`) removed, written by \
         snrscope exactly as mergekit's `passthrough` merge of the \
         config below would write it: every kept tensor is copied byte for byte, layers are \
         renumbered contiguously, and config.json's layer count and per-layer lists are \
         shortened.\n",
        plan.model_ref,
        plan.dropped.len(),
        plan.num_layers,
        plan.stack_prefix
    );
    s.push_str("## Method\n\n");
    if let Some(metric) = &plan.metric {
        let _ = writeln!(
            s,
            "Layers chosen from an activation metric measured with `snrscope probe` (the \
             model run on calibration text; see its README): {metric}\n"
        );
    } else {
        let _ = writeln!(
            s,
            "The approach of Mihaiii/Cluj-Napoca-0.2: compute the signal-to-noise ratio of each \
         layer's `{}` weight as laserRMT's `laserQlora.ipynb` does — singular values above the \
         Marchenko–Pastur edge σ(1 + √β) count as signal, the rest as noise, with σ estimated \
         from the singular values' interquartile range; SNR = sum of signal / sum of noise, \
         divided by the largest singular value — then drop the layers chosen below (with \
         mergekit's `passthrough` slices). An infinite SNR means no singular value fell under \
         the noise threshold.\n",
            plan.module_type
        );
    }
    let _ = writeln!(s, "Selection: {}.\n", plan.reason);
    if let Some((before, after)) = params {
        let _ = writeln!(
            s,
            "Parameters: {} -> {} ({} removed).\n",
            human_count(before),
            human_count(after),
            human_count(before - after)
        );
    }
    s.push_str("## Dropped layers\n\n");
    if plan.dropped.is_empty() {
        s.push_str("None.\n\n");
    } else {
        let column = match &plan.metric {
            Some(_) => plan.module_type.clone(),
            None => format!("`{}` SNR", plan.module_type),
        };
        let _ = writeln!(s, "| layer | {column} |\n|---:|---:|");
        for &l in &plan.dropped {
            let _ = writeln!(
                s,
                "| {l} | {} |",
                format_snr(plan.snr.get(l).copied().flatten())
            );
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "Kept source layers (half-open ranges): {} — the new layers are numbered 0 to {}.\n",
        format_ranges(&plan.kept_ranges()),
        kept.saturating_sub(1)
    );
    let _ = writeln!(s, "## mergekit config\n\n```yaml\n{}```", yaml);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        assert!(looks_like_repo_id("01-ai/Yi-34B"));
        assert!(!looks_like_repo_id("./models/yi"));
        assert!(!looks_like_repo_id("/abs/path"));
        assert!(!looks_like_repo_id("scan.json"));
    }
}
