//! The streamed forward pass: every choice of a job walks the checkpoint's layers together,
//! one source layer at a time, and inside a layer one weight matrix (in bands of rows) at a
//! time, applied to every token of every window before the next is read. Memory is then a
//! weight band plus the activations, whatever the layer count.
//!
//! Choices that have run the same layers so far share one *lane* (one set of hidden states):
//! the original and a pruned choice share everything before the first dropped layer, which
//! is computed once. Where their histories part, the lane splits; a layer both still run is
//! read once and applied to both lanes' tokens in one product.

use std::{collections::HashMap, ops::Range};

use super::{
    arch::{ArchConfig, LayerKind, Mlp},
    head,
    layer::{self, LaneStep},
    observe::{HiddenObserver, Site},
    reader::{Reader, Res},
};

/// One choice, checked and ready to run.
#[derive(Debug, Clone)]
pub struct ChoicePlan {
    pub arch: ArchConfig,
    /// The model's tensor names (served) -> the checkpoint's.
    pub names: HashMap<String, String>,
    /// Layer-stack prefix, e.g. `model.layers`.
    pub prefix: String,
    /// Embedding, final norm and output head (served names).
    pub embed: String,
    pub norm: String,
    pub head: String,
    /// The checkpoint layer each of its layers reads.
    pub layers: Vec<usize>,
    /// Global token ranges of its windows.
    pub windows: Vec<Range<usize>>,
}

impl ChoicePlan {
    fn source(&self, served: &str) -> String {
        self.names
            .get(served)
            .cloned()
            .unwrap_or_else(|| served.to_string())
    }

    fn layer_name(&self, layer: usize, suffix: &str) -> String {
        self.source(&format!("{}.{layer}.{suffix}", self.prefix))
    }

    fn tokens(&self) -> usize {
        self.windows.iter().map(|w| w.len()).sum()
    }
}

/// Sees every window's logits: choice index, global token range, len × vocab row-major.
pub type LogitsHook<'h> = &'h mut (dyn FnMut(usize, Range<usize>, &[f32]) + Send);

/// What a caller may watch.
#[derive(Default)]
pub struct Hooks<'h> {
    pub logits: Option<LogitsHook<'h>>,
    pub hidden: Option<&'h mut dyn HiddenObserver>,
}

/// Per choice: Σ NLL and tokens scored.
pub type Outcome = Vec<(f64, usize)>;

struct Lane {
    choices: Vec<usize>,
    /// Index of the next layer its choices run.
    next: usize,
    h: Vec<f32>,
}

/// Choices of one lane grouped by what they do at source layer `l`: run it (with which
/// behaviour) or not.
fn split(
    choices: &[usize],
    next: usize,
    l: usize,
    plans: &[ChoicePlan],
) -> Vec<(Vec<usize>, Option<LayerKind>)> {
    let mut groups: Vec<(Vec<usize>, Option<LayerKind>)> = Vec::new();
    for &c in choices {
        let p = &plans[c];
        let key = (p.layers.get(next) == Some(&l)).then(|| p.arch.kinds[next].clone());
        match groups.iter_mut().find(|g| g.1 == key) {
            Some(g) => g.0.push(c),
            None => groups.push((vec![c], key)),
        }
    }
    groups
}

/// Initial lanes: choices with the same windows.
fn initial_groups(plans: &[ChoicePlan]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (c, p) in plans.iter().enumerate() {
        match groups.iter_mut().find(|g| plans[g[0]].windows == p.windows) {
            Some(g) => g.push(c),
            None => groups.push(vec![c]),
        }
    }
    groups
}

/// Multiply-adds per token of one layer (MoE experts at their routed share).
fn layer_work(arch: &ArchConfig, kind: &LayerKind) -> u64 {
    let mut dense = 0u64;
    let mut experts = 0u64;
    for (name, shape) in arch.layer_tensors(kind) {
        if shape.len() != 2 {
            continue;
        }
        let n = (shape[0] * shape[1]) as u64;
        if name.contains(".experts.") {
            experts += n;
        } else {
            dense += n;
        }
    }
    if let Mlp::Moe(m) = &kind.mlp {
        dense += experts * m.top_k as u64 / m.experts as u64;
    }
    dense
}

/// The pass's total work and the most lanes alive at once (for progress and memory).
pub fn survey(plans: &[ChoicePlan], source_layers: usize) -> (u64, usize) {
    let mut lanes: Vec<(Vec<usize>, usize)> =
        initial_groups(plans).into_iter().map(|g| (g, 0)).collect();
    let mut work = 0u64;
    let mut most = lanes.len();
    for l in 0..source_layers {
        let mut next_lanes = Vec::new();
        for (choices, next) in lanes {
            for (group, kind) in split(&choices, next, l, plans) {
                let p = &plans[group[0]];
                match kind {
                    Some(k) => {
                        work += layer_work(&p.arch, &k) * p.tokens() as u64;
                        next_lanes.push((group, next + 1));
                    }
                    None => next_lanes.push((group, next)),
                }
            }
        }
        lanes = next_lanes;
        most = most.max(lanes.len());
    }
    for (choices, _) in &lanes {
        let p = &plans[choices[0]];
        work += (p.arch.vocab * p.arch.hidden * p.tokens()) as u64;
    }
    (work, most)
}

/// Runs `plans` over `tokens` from `src`. `source_layers`: the checkpoint's layer count.
pub fn run(
    rd: &Reader,
    plans: &[ChoicePlan],
    tokens: &[u32],
    source_layers: usize,
    hooks: &mut Hooks,
) -> Res<Outcome> {
    let mut lanes: Vec<Lane> = Vec::new();
    for group in initial_groups(plans) {
        let p = &plans[group[0]];
        let ids: Vec<u32> = p
            .windows
            .iter()
            .flat_map(|w| tokens[w.clone()].iter().copied())
            .collect();
        let mut h = rd.embed(&p.source(&p.embed), &ids, p.arch.hidden)?;
        if let Some(s) = p.arch.embed_scale {
            h.iter_mut().for_each(|v| *v *= s);
        }
        lanes.push(Lane {
            choices: group,
            next: 0,
            h,
        });
    }
    for l in 0..source_layers {
        let mut next_lanes: Vec<(Lane, Option<LayerKind>)> = Vec::new();
        for lane in lanes {
            let mut groups = split(&lane.choices, lane.next, l, plans);
            let (last_choices, last_kind) = groups.pop().expect("a lane has choices");
            for (choices, kind) in groups {
                next_lanes.push((
                    Lane {
                        choices,
                        next: lane.next,
                        h: lane.h.clone(),
                    },
                    kind,
                ));
            }
            next_lanes.push((
                Lane {
                    choices: last_choices,
                    next: lane.next,
                    h: lane.h,
                },
                last_kind,
            ));
        }
        run_layer(rd, plans, l, &mut next_lanes, hooks)?;
        lanes = next_lanes
            .into_iter()
            .map(|(mut lane, kind)| {
                if kind.is_some() {
                    lane.next += 1;
                }
                lane
            })
            .collect();
    }
    finish(rd, plans, tokens, &lanes, hooks)
}

/// Source layer `l` for every lane that runs it.
fn run_layer(
    rd: &Reader,
    plans: &[ChoicePlan],
    l: usize,
    lanes: &mut [(Lane, Option<LayerKind>)],
    hooks: &mut Hooks,
) -> Res<()> {
    let running: Vec<usize> = (0..lanes.len()).filter(|&i| lanes[i].1.is_some()).collect();
    let Some(&first) = running.first() else {
        return Ok(());
    };
    let lead = &plans[lanes[first].0.choices[0]];
    let lead_next = lanes[first].0.next;
    for &i in &running {
        let (lane, kind) = &lanes[i];
        let p = &plans[lane.choices[0]];
        let same = p.layer_name(lane.next, "input_layernorm.weight")
            == lead.layer_name(lead_next, "input_layernorm.weight");
        let mlp_same = kind.as_ref().map(|k| &k.mlp) == lanes[first].1.as_ref().map(|k| &k.mlp);
        if !same || !mlp_same {
            return Err(rd.failed(format!(
                "layer {l} is read under different names or layouts by the choices of one pass"
            )));
        }
    }
    let name = |suffix: &str| lead.layer_name(lead_next, suffix);
    let inputs: Option<Vec<Vec<f32>>> = hooks
        .hidden
        .is_some()
        .then(|| running.iter().map(|&i| lanes[i].0.h.clone()).collect());
    {
        let mut steps: Vec<LaneStep> = Vec::new();
        let mut windows: Vec<Vec<Range<usize>>> = Vec::new();
        for &i in &running {
            windows.push(local_windows(&plans[lanes[i].0.choices[0]].windows));
        }
        let mut refs: Vec<&mut (Lane, Option<LayerKind>)> = lanes
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| running.contains(i))
            .map(|(_, x)| x)
            .collect();
        for ((lane, kind), w) in refs.iter_mut().map(|x| (&mut x.0, &x.1)).zip(&windows) {
            steps.push(LaneStep {
                h: &mut lane.h,
                windows: w,
                kind: kind.as_ref().expect("running"),
            });
        }
        layer::apply(&lead.arch, rd, &name, &mut steps)?;
    }
    if let (Some(obs), Some(inputs)) = (hooks.hidden.as_mut(), inputs) {
        for (&i, input) in running.iter().zip(&inputs) {
            let lane = &lanes[i].0;
            let p = &plans[lane.choices[0]];
            obs.layer(
                &Site {
                    choices: &lane.choices,
                    layer: lane.next,
                    source_layer: l,
                    hidden: p.arch.hidden,
                    windows: &p.windows,
                },
                input,
                &lane.h,
            );
        }
    }
    Ok(())
}

/// Window ranges within a lane's rows.
fn local_windows(windows: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut at = 0;
    windows
        .iter()
        .map(|w| {
            let r = at..at + w.len();
            at += w.len();
            r
        })
        .collect()
}

/// Final norm and head over every lane at once, then the NLL per choice.
fn finish(
    rd: &Reader,
    plans: &[ChoicePlan],
    tokens: &[u32],
    lanes: &[Lane],
    hooks: &mut Hooks,
) -> Res<Outcome> {
    let mut out: Outcome = vec![(0.0, 0); plans.len()];
    let Some(lead_lane) = lanes.first() else {
        return Ok(out);
    };
    let lead = &plans[lead_lane.choices[0]];
    let hidden = lead.arch.hidden;
    let mut h = Vec::new();
    let mut targets = Vec::new();
    for lane in lanes {
        h.extend_from_slice(&lane.h);
        for w in &plans[lane.choices[0]].windows {
            for p in w.clone() {
                targets.push((p + 1 < w.end).then(|| tokens[p + 1]));
            }
        }
    }
    let mut observe = |x: &[f32]| {
        if let Some(obs) = hooks.hidden.as_mut() {
            let mut at = 0;
            for lane in lanes {
                let n = lane.h.len();
                let p = &plans[lane.choices[0]];
                obs.final_norm(&lane.choices, &p.windows, &x[at..at + n]);
                at += n;
            }
        }
    };
    let scored = head::score(
        &lead.arch,
        rd,
        &lead.source(&lead.norm),
        &lead.source(&lead.head),
        &h,
        &targets,
        hooks.logits.is_some(),
        &mut observe,
    )?;
    drop(h);
    let vocab = lead.arch.vocab;
    let mut row = 0;
    for lane in lanes {
        let p = &plans[lane.choices[0]];
        let (mut nll, mut count) = (0f64, 0usize);
        for w in &p.windows {
            for r in row..row + w.len() - 1 {
                nll += scored.nll[r];
                count += 1;
            }
            if let (Some(f), Some(l)) = (hooks.logits.as_mut(), scored.logits.as_ref()) {
                for &c in &lane.choices {
                    f(c, w.clone(), &l[row * vocab..(row + w.len()) * vocab]);
                }
            }
            row += w.len();
        }
        for &c in &lane.choices {
            out[c] = (nll, count);
        }
    }
    let _ = hidden;
    Ok(out)
}
