//! From SNR values to a [`Plan`]: per-layer SNR tables (from a model's scan or a saved scan
//! file), the rule plus `--drop`/`--keep` overrides, and the dtype mergekit should write.

use std::collections::BTreeMap;

use super::{
    decision::{Plan, PlanError},
    ranges::join_layers,
    rule::{Mark, Rule, Selection},
};
use crate::{checkpoint::layers, scanfile::ScanEntry};

/// SNR per layer of every module type of one layer stack.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SnrTable {
    pub stack_prefix: String,
    pub num_layers: usize,
    /// Module type -> SNR by layer (`None`: not scanned, failed, or NaN).
    pub modules: BTreeMap<String, Vec<Option<f64>>>,
    /// The module the seed's rule reads (value projection or closest equivalent).
    pub default_module: Option<String>,
}

impl SnrTable {
    /// An empty table shaped like a model's stack (fill it from scan results with
    /// [`SnrTable::set`]).
    pub fn for_stack(stack: &layers::Stack) -> SnrTable {
        SnrTable {
            stack_prefix: stack.prefix.clone(),
            num_layers: stack.num_layers,
            modules: BTreeMap::new(),
            default_module: stack.default_module().map(str::to_string),
        }
    }

    pub fn set(&mut self, module_type: &str, layer: usize, snr: f64) {
        let n = self.num_layers;
        let v = self
            .modules
            .entry(module_type.to_string())
            .or_insert_with(|| vec![None; n]);
        if layer < v.len() {
            v[layer] = Some(snr).filter(|x| !x.is_nan());
        }
    }

    /// The main stack of a scan file: the stack with the most layers (as for a model), layer
    /// count = its highest index + 1. Failed entries and NaN count as unknown.
    pub fn from_scan(entries: &[ScanEntry], path: &str) -> Result<SnrTable, PlanError> {
        let stack = crate::scanfile::main_stack(entries, path).map_err(|e| PlanError::BadScan {
            path: path.into(),
            problem: match e {
                crate::scanfile::ScanFileError::Layout { problem, .. } => problem,
                other => other.to_string(),
            },
        })?;
        let mut table = SnrTable::for_stack(&stack);
        for e in entries {
            if let Some((s, layer)) = e.layer()
                && s == stack.prefix
            {
                let snr = if e.error.is_some() { f64::NAN } else { e.snr };
                table.set(&crate::scanfile::type_of(&e.module), layer, snr);
            }
        }
        Ok(table)
    }

    /// The module to plan with: `requested`, else the default.
    pub fn module<'a>(&'a self, requested: Option<&'a str>) -> Result<&'a str, PlanError> {
        let m = requested
            .or(self.default_module.as_deref())
            .ok_or_else(|| PlanError::Invalid("no module type has SNR values".into()))?;
        if !self.modules.contains_key(m) {
            return Err(PlanError::Invalid(format!(
                "no SNR for module type {m:?} in `{}`; available: {}",
                self.stack_prefix,
                self.modules.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(m)
    }
}

/// How the layers were chosen, for the YAML header and the model card:
/// `self_attn.v_proj SNR infinite; dropped by hand: 7; kept by hand: 20`.
pub fn describe_choice(
    rule: &Rule,
    module: &str,
    by_hand_dropped: &[usize],
    by_hand_kept: &[usize],
) -> String {
    describe_choice_of(
        rule,
        &format!("{module} SNR"),
        1,
        by_hand_dropped,
        by_hand_kept,
    )
}

/// [`describe_choice`] for any per-layer value (`what`: "Block Influence"); with `block` > 1
/// each value stands for the `block` layers from its own (an angular distance of blocks).
pub fn describe_choice_of(
    rule: &Rule,
    what: &str,
    block: usize,
    by_hand_dropped: &[usize],
    by_hand_kept: &[usize],
) -> String {
    let mut s = match (rule, block) {
        (Rule::Infinite, _) => format!("{what} infinite"),
        (Rule::Lowest(k), 0 | 1) => format!("the {k} lowest finite {what}"),
        (Rule::Below(x), 0 | 1) => format!("{what} below {x}"),
        (Rule::Lowest(1), n) => format!("the block of {n} layers with the lowest {what}"),
        (Rule::Lowest(k), n) => {
            format!("the {k} disjoint blocks of {n} layers with the lowest {what}")
        }
        (Rule::Below(x), n) => format!("the blocks of {n} layers with {what} below {x}"),
    };
    if !by_hand_dropped.is_empty() {
        s.push_str(&format!(
            "; dropped by hand: {}",
            join_layers(by_hand_dropped)
        ));
    }
    if !by_hand_kept.is_empty() {
        s.push_str(&format!("; kept by hand: {}", join_layers(by_hand_kept)));
    }
    s
}

/// What the user asked to drop: the rule on one module's SNR, then `--drop` / `--keep`
/// overrides (the command line's counterpart of the explorer's choice).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub module: Option<String>,
    pub rule: Rule,
    pub drop: Vec<usize>,
    pub keep: Vec<usize>,
}

/// Builds the plan; refuses layers out of range, a layer both dropped and kept, and a plan
/// that keeps nothing.
pub fn make_plan(
    table: &SnrTable,
    choice: &Request,
    model_ref: &str,
    dtype: &str,
) -> Result<Plan, PlanError> {
    let module = table.module(choice.module.as_deref())?;
    let n = table.num_layers;
    for (flag, list) in [("--drop", &choice.drop), ("--keep", &choice.keep)] {
        if let Some(bad) = list.iter().find(|&&l| l >= n) {
            return Err(PlanError::Invalid(format!(
                "{flag} {bad}: `{}` has only {n} layers (0-{})",
                table.stack_prefix,
                n.saturating_sub(1)
            )));
        }
    }
    if let Some(both) = choice.drop.iter().find(|l| choice.keep.contains(l)) {
        return Err(PlanError::Invalid(format!(
            "layer {both} is both in --drop and in --keep"
        )));
    }
    let snr = table.modules[module].clone();
    let what = format!("{module} SNR");
    let reading = Reading {
        module_type: module,
        what: &what,
        values: &snr,
        block: 1,
        definition: None,
    };
    plan_from(&reading, &table.stack_prefix, n, choice, model_ref, dtype)
}

/// What a rule reads, for [`make_plan_from`]: any per-layer value (an SNR, a probe's metric).
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    /// The plan's `module_type` (the model card's column).
    pub module_type: &'a str,
    /// The value's name in sentences ("Block Influence").
    pub what: &'a str,
    pub values: &'a [Option<f64>],
    /// Entry `i` stands for layers `i..i+block`.
    pub block: usize,
    /// A metric's definition, for the model card (`None` for an SNR).
    pub definition: Option<&'a str>,
}

/// [`make_plan`] on any reading of an `n`-layer stack: a probe's metric as the explorer's
/// `d` lets it drive (`--metric` on the command line).
pub fn make_plan_from(
    reading: &Reading,
    stack_prefix: &str,
    n: usize,
    choice: &Request,
    model_ref: &str,
    dtype: &str,
) -> Result<Plan, PlanError> {
    for (flag, list) in [("--drop", &choice.drop), ("--keep", &choice.keep)] {
        if let Some(bad) = list.iter().find(|&&l| l >= n) {
            return Err(PlanError::Invalid(format!(
                "{flag} {bad}: `{stack_prefix}` has only {n} layers (0-{})",
                n.saturating_sub(1)
            )));
        }
    }
    if let Some(both) = choice.drop.iter().find(|l| choice.keep.contains(l)) {
        return Err(PlanError::Invalid(format!(
            "layer {both} is both in --drop and in --keep"
        )));
    }
    plan_from(reading, stack_prefix, n, choice, model_ref, dtype)
}

fn plan_from(
    r: &Reading,
    stack_prefix: &str,
    n: usize,
    choice: &Request,
    model_ref: &str,
    dtype: &str,
) -> Result<Plan, PlanError> {
    let mut sel = Selection::new(n);
    sel.apply_rule_blocks(&choice.rule, r.values, r.block);
    for &l in &choice.drop {
        sel.set(l, true);
    }
    for &l in &choice.keep {
        sel.set(l, false);
    }
    let marked = |m: Mark| (0..n).filter(|&l| sel.mark(l) == m).collect::<Vec<_>>();
    let plan = Plan {
        model_ref: model_ref.to_string(),
        stack_prefix: stack_prefix.to_string(),
        num_layers: n,
        dropped: sel.dropped(),
        module_type: r.module_type.to_string(),
        reason: describe_choice_of(
            &choice.rule,
            r.what,
            r.block,
            &marked(Mark::DropManual),
            &marked(Mark::KeepManual),
        ),
        snr: r.values.to_vec(),
        dtype: dtype.to_string(),
        mergekit_modules: None,
        metric: r.definition.map(str::to_string),
    };
    plan.validate()?;
    Ok(plan)
}
