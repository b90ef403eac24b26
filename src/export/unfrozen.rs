//! Spectrum's training selection: per module type, the top `top_percent` of modules by SNR,
//! in the `unfrozen_parameters:` YAML layout axolotl and spectrum.py use.

use std::{fmt::Write as _, path::Path};

use super::{ExportError, Inputs, write_file_atomically};
use crate::{plan::SnrTable, scanfile::ScanEntry};

/// One module type's modules with their SNR, in file/layer order.
#[derive(Debug, Clone, PartialEq)]
pub struct UnfrozenGroup {
    pub module_type: String,
    /// `(module name without .weight, SNR)`.
    pub modules: Vec<(String, f64)>,
}

/// spectrum.py's choice: sort by SNR descending (infinite first; a stable sort, so ties keep
/// layer order), take `int(len * top_percent / 100)` of them.
pub(crate) fn top_layers(group: &UnfrozenGroup, top_percent: f64) -> Vec<String> {
    let mut sorted: Vec<&(String, f64)> =
        group.modules.iter().filter(|(_, s)| !s.is_nan()).collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    let n = (group.modules.len() as f64 * top_percent / 100.0).floor() as usize;
    sorted.into_iter().take(n).map(|(m, _)| m.clone()).collect()
}

pub fn unfrozen_yaml(groups: &[UnfrozenGroup], top_percent: f64) -> Result<String, ExportError> {
    if !(0.0..=100.0).contains(&top_percent) {
        return Err(ExportError::InvalidPlan(format!(
            "--top-percent {top_percent}: must be between 0 and 100"
        )));
    }
    if groups.is_empty() {
        return Err(ExportError::InvalidPlan(
            "no SNR values to select from".into(),
        ));
    }
    let mut s = format!(
        "# written by snrscope: top {top_percent}% of layers by SNR per module type (Spectrum)\n\
         unfrozen_parameters:\n- ^lm_head.weight$\n- ^model.embed_tokens.weight$\n"
    );
    for g in groups {
        // Names come from tensor names or scan-file keys: a control character would break the
        // YAML or hide in it.
        if let Some((bad, _)) = std::iter::once((&g.module_type, 0.0))
            .chain(g.modules.iter().map(|(m, s)| (m, *s)))
            .find(|(m, _)| crate::util::text::has_controls(m))
        {
            return Err(ExportError::InvalidPlan(format!(
                "the module name {} contains control characters; not writing it into YAML",
                crate::util::text::escape_controls(bad)
            )));
        }
        let _ = writeln!(s, "# {} layers", g.module_type);
        for m in top_layers(g, top_percent) {
            let _ = writeln!(s, "- {m}");
        }
    }
    Ok(s)
}

pub fn write_unfrozen_yaml(
    groups: &[UnfrozenGroup],
    top_percent: f64,
    path: &Path,
    inputs: &Inputs,
    replace: bool,
) -> Result<(), ExportError> {
    let text = unfrozen_yaml(groups, top_percent)?;
    write_file_atomically(path, text.as_bytes(), inputs, replace)
}

/// Spectrum's groups from an SNR table: per module type, `(module name, SNR)` by layer (unknown
/// left out).
pub fn groups_from_table(table: &SnrTable) -> Vec<UnfrozenGroup> {
    table
        .modules
        .iter()
        .map(|(ty, snr)| UnfrozenGroup {
            module_type: ty.clone(),
            modules: snr
                .iter()
                .enumerate()
                .filter_map(|(l, s)| s.map(|s| (format!("{}.{l}.{ty}", table.stack_prefix), s)))
                .collect(),
        })
        .collect()
}

/// Spectrum's groups straight from a scan file: every entry, grouped by its type in order of
/// first appearance (as spectrum.py does), NaN and failed entries left out.
pub fn unfrozen_groups_from_scan(entries: &[ScanEntry]) -> Vec<UnfrozenGroup> {
    let mut groups: Vec<UnfrozenGroup> = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.error.is_none() && !e.snr.is_nan())
    {
        let i = match groups.iter().position(|g| g.module_type == e.module_type) {
            Some(i) => i,
            None => {
                groups.push(UnfrozenGroup {
                    module_type: e.module_type.clone(),
                    modules: Vec::new(),
                });
                groups.len() - 1
            }
        };
        groups[i].modules.push((e.module.clone(), e.snr));
    }
    groups
}
