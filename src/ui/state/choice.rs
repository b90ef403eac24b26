//! The pruning choice: a rule on one module's SNR (the driving module) with the user's hand
//! choices on top, and an undo history of every change. Hand choices are never lost to a rule
//! change; only "back to the rule" (`a`, which asks first) and `x` (one layer) remove them.

use std::collections::BTreeMap;

use snrscope::plan::{Mark, Rule, Selection};

use super::document::Reading;

/// How far undo reaches.
const HISTORY: usize = 1000;

/// Everything a choice consists of; the rule's own drops follow from it and the SNR.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    rule: Rule,
    lowest_k: usize,
    below_x: f64,
    drive: usize,
    overrides: BTreeMap<usize, bool>,
}

#[derive(Debug, Clone)]
pub struct Choice {
    pub rule: Rule,
    /// The `lowest K` and `below X` parameters, kept while another rule is active.
    pub lowest_k: usize,
    pub below_x: f64,
    /// Index of the module type whose SNR the rule reads.
    pub drive: usize,
    selection: Selection,
    undo: Vec<Snapshot>,
    redo: Vec<Snapshot>,
    /// The choice as last written out (or as it started): it is "changed" when it differs,
    /// so undoing back to what was written is not a change.
    saved: Option<Snapshot>,
}

impl Choice {
    pub fn new(num_layers: usize, drive: usize) -> Choice {
        Choice {
            rule: Rule::Infinite,
            lowest_k: (num_layers / 8).max(1),
            below_x: 0.0,
            drive,
            selection: Selection::new(num_layers),
            undo: Vec::new(),
            redo: Vec::new(),
            saved: None,
        }
        .with_saved()
    }

    fn with_saved(mut self) -> Choice {
        self.mark_saved();
        self
    }

    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    pub fn mark(&self, layer: usize) -> Mark {
        self.selection.mark(layer)
    }

    pub fn is_dirty(&self) -> bool {
        self.saved.as_ref() != Some(&self.snapshot())
    }

    pub fn mark_saved(&mut self) {
        self.saved = Some(self.snapshot());
    }

    /// Hand choices recorded (agreeing with the rule or not).
    pub fn overrides(&self) -> usize {
        self.selection.overrides().len()
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            rule: self.rule,
            lowest_k: self.lowest_k,
            below_x: self.below_x,
            drive: self.drive,
            overrides: self.selection.overrides().clone(),
        }
    }

    fn restore(&mut self, s: Snapshot, snr: &dyn Fn(usize) -> Reading) {
        self.rule = s.rule;
        self.lowest_k = s.lowest_k;
        self.below_x = s.below_x;
        self.drive = s.drive;
        self.selection.set_overrides(s.overrides);
        let r = snr(self.drive);
        self.selection
            .refresh_rule_blocks(&self.rule, &r.values, r.block);
    }

    /// Runs a change of the choice as one undoable step (none if nothing changed).
    fn step(&mut self, snr: &Reading, change: impl FnOnce(&mut Choice)) {
        let before = self.snapshot();
        change(self);
        self.selection
            .refresh_rule_blocks(&self.rule, &snr.values, snr.block);
        if self.snapshot() != before {
            self.undo.push(before);
            if self.undo.len() > HISTORY {
                self.undo.remove(0);
            }
            self.redo.clear();
        }
    }

    /// New scan results for the driving module: the rule's part follows them; not a step.
    pub fn refresh(&mut self, snr: &Reading) {
        self.selection
            .refresh_rule_blocks(&self.rule, &snr.values, snr.block);
    }

    pub fn toggle(&mut self, layer: usize, snr: &Reading) {
        self.step(snr, |c| c.selection.toggle(layer));
    }

    pub fn forget(&mut self, layer: usize, snr: &Reading) {
        self.step(snr, |c| {
            c.selection.forget(layer);
        });
    }

    /// Back to the rule alone: every hand choice goes.
    pub fn apply_rule(&mut self, snr: &Reading) {
        self.step(snr, |c| c.selection.set_overrides(BTreeMap::new()));
    }

    /// Every layer by hand: those in `kept` kept, the others dropped (a saved YAML carried
    /// on); one undoable step.
    pub fn set_kept(&mut self, kept: &[usize], snr: &Reading) {
        let n = self.selection.num_layers();
        let hand = (0..n)
            .map(|l| (l, kept.binary_search(&l).is_err()))
            .collect();
        self.step(snr, |c| c.selection.set_overrides(hand));
    }

    pub fn keep_all(&mut self, snr: &Reading) {
        self.step(snr, |c| c.selection.clear());
    }

    pub fn invert(&mut self, snr: &Reading) {
        self.step(snr, |c| c.selection.invert());
    }

    pub fn set_rule(&mut self, rule: Rule, snr: &Reading) {
        self.step(snr, |c| {
            match rule {
                Rule::Lowest(k) => c.lowest_k = k,
                Rule::Below(x) => c.below_x = x,
                Rule::Infinite => {}
            }
            c.rule = rule;
        });
    }

    /// Another module drives the rule (with another rule when given); `snr` is that
    /// module's. One undoable step.
    pub fn set_drive(&mut self, module: usize, rule: Option<Rule>, snr: &Reading) {
        self.step(snr, |c| {
            c.drive = module;
            if let Some(r) = rule {
                if let Rule::Lowest(k) = r {
                    c.lowest_k = k;
                }
                c.rule = r;
            }
        });
    }

    pub fn undo(&mut self, snr: &dyn Fn(usize) -> Reading) -> bool {
        let Some(s) = self.undo.pop() else {
            return false;
        };
        self.redo.push(self.snapshot());
        self.restore(s, snr);
        true
    }

    pub fn redo(&mut self, snr: &dyn Fn(usize) -> Reading) -> bool {
        let Some(s) = self.redo.pop() else {
            return false;
        };
        self.undo.push(self.snapshot());
        self.restore(s, snr);
        true
    }
}

/// The next threshold up or down: the next distinct finite SNR, so each press moves exactly
/// one more (or one fewer) layer across the line.
pub fn next_threshold(snr: &[Option<f64>], x: f64, up: bool) -> f64 {
    let mut v: Vec<f64> = snr
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    if up {
        v.iter()
            .copied()
            .find(|&s| s >= x)
            .map(just_above)
            .unwrap_or(x)
    } else {
        let covered: Vec<f64> = v.iter().copied().filter(|&s| s < x).collect();
        match covered.len() {
            0 => x,
            // Below the smallest value: the rule drops nothing.
            1 => covered[0] * (1.0 - 1e-9),
            n => just_above(covered[n - 2]),
        }
    }
}

/// A threshold a hair above `x`, so `below` (strictly less than) takes the layer at `x`.
pub fn just_above(x: f64) -> f64 {
    x * (1.0 + 1e-9) + f64::MIN_POSITIVE
}

/// A threshold that drops roughly the lower quarter of the finite values: a useful start.
pub fn default_below(snr: &[Option<f64>]) -> f64 {
    let mut v: Vec<f64> = snr
        .iter()
        .flatten()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    just_above(v[v.len() / 4])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(values: Vec<Option<f64>>) -> Reading {
        Reading { values, block: 1 }
    }

    /// Undo (or redo) back to the written choice is no change: the quit prompt said "changed
    /// since last written" after undo/redo returned to it.
    #[test]
    fn back_to_the_written_choice_is_not_a_change() {
        let snr = r(vec![Some(1.0), Some(f64::INFINITY), Some(2.0)]);
        let s = snr.clone();
        let of = move |_| s.clone();
        let mut c = Choice::new(3, 0);
        c.refresh(&snr);
        assert!(!c.is_dirty());
        c.toggle(0, &snr);
        assert!(c.is_dirty());
        c.mark_saved();
        assert!(!c.is_dirty());
        c.toggle(2, &snr);
        assert!(c.is_dirty());
        assert!(c.undo(&of));
        assert!(!c.is_dirty(), "undone back to the written choice");
        assert!(c.undo(&of));
        assert!(c.is_dirty(), "before the written choice");
        assert!(c.redo(&of));
        assert!(!c.is_dirty(), "redone back to the written choice");
    }

    #[test]
    fn undo_and_redo_walk_the_history() {
        let inf = f64::INFINITY;
        let snr = r(vec![Some(1.0), Some(inf), Some(2.0)]);
        let s = snr.clone();
        let of = move |_| s.clone();
        let mut c = Choice::new(3, 0);
        c.refresh(&snr);
        assert_eq!(c.selection().dropped(), vec![1]);
        c.toggle(1, &snr);
        c.set_rule(Rule::Lowest(1), &snr);
        assert_eq!(c.selection().dropped(), vec![0]);
        assert!(c.undo(&of));
        assert_eq!(c.rule, Rule::Infinite);
        assert_eq!(c.selection().dropped(), Vec::<usize>::new());
        assert!(c.undo(&of));
        assert_eq!(c.selection().dropped(), vec![1]);
        assert!(!c.undo(&of));
        assert!(c.redo(&of) && c.redo(&of));
        assert_eq!(c.rule, Rule::Lowest(1));
        assert!(!c.redo(&of));
        // A new change after undo forgets what could be redone.
        c.undo(&of);
        c.invert(&snr);
        assert!(!c.redo(&of), "nothing left to redo");
    }

    #[test]
    fn a_hundred_steps_and_more_can_be_undone() {
        let snr = r(vec![Some(1.0); 4]);
        let s = snr.clone();
        let of = move |_| s.clone();
        let mut c = Choice::new(4, 0);
        for i in 0..150 {
            c.toggle(i % 4, &snr);
        }
        let mut n = 0;
        while c.undo(&of) {
            n += 1;
        }
        assert_eq!(n, 150);
        assert_eq!(c.overrides(), 0);
    }
}
