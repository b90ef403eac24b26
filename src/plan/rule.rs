//! Rules that choose layers from their SNR, and the selection: the rule's choice plus the
//! user's hand choices, which survive every rule change.

use std::{collections::BTreeMap, fmt, ops::Range, str::FromStr};

use super::ranges::{ParseError, kept_ranges};

/// How layers are chosen for dropping from their SNR (`snr_ratio`) values.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Rule {
    /// The seed's rule: drop every layer whose SNR is infinite.
    #[default]
    Infinite,
    /// Drop the K layers with the smallest finite SNR.
    Lowest(usize),
    /// Drop every layer whose SNR is below X.
    Below(f64),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Infinite => write!(f, "infinite"),
            Rule::Lowest(k) => write!(f, "lowest:{k}"),
            Rule::Below(x) => write!(f, "below:{x}"),
        }
    }
}

/// Does `v` print as `x` where snrscope prints SNR values (7 significant digits in `scan`'s
/// table and the details pane, 5 in `export`'s plan)? Then it counts as equal to `x`, not below
/// it: `below:3.242294`, copied from the table, must not drop the layer shown as 3.242294 whose
/// exact value is 3.2422937…
fn printed_as(v: f64, x: f64) -> bool {
    [format!("{v:.6e}"), format!("{v:.4e}")]
        .iter()
        .any(|p| p.parse::<f64>() == Ok(x))
}

impl Rule {
    /// A sentence for screens and file headers.
    pub fn describe(&self, module: &str) -> String {
        self.describe_reading(&format!("{module} SNR"), 1)
    }

    /// The sentence for any per-layer value (`what`: "self_attn.v_proj SNR", "Block
    /// Influence"); with `block` > 1 each value stands for the `block` layers from its own.
    pub fn describe_reading(&self, what: &str, block: usize) -> String {
        if block <= 1 {
            return match self {
                Rule::Infinite => format!("drop layers whose {what} is infinite"),
                Rule::Lowest(1) => format!("drop the layer with the lowest {what}"),
                Rule::Lowest(k) => format!("drop the {k} layers with the lowest {what}"),
                Rule::Below(x) => format!("drop layers whose {what} is below {x}"),
            };
        }
        match self {
            Rule::Infinite => format!("drop the blocks of {block} layers whose {what} is infinite"),
            Rule::Lowest(1) => format!("drop the block of {block} layers with the lowest {what}"),
            Rule::Lowest(k) => {
                format!("drop the {k} disjoint blocks of {block} layers with the lowest {what}")
            }
            Rule::Below(x) => {
                format!("drop every block of {block} layers whose {what} is below {x}")
            }
        }
    }

    /// The layers this rule drops when entry `i` of `values` stands for the `block`
    /// consecutive layers `i..i+block` (an angular distance of blocks of n): `lowest:K` takes
    /// the K lowest blocks that do not overlap one taken before (lowest first), the other
    /// rules every block they select; the union of their layers, within `num_layers`.
    pub fn drops_blocks(
        &self,
        values: &[Option<f64>],
        block: usize,
        num_layers: usize,
    ) -> Vec<usize> {
        if block <= 1 {
            return self.drops(values);
        }
        let mut taken = vec![false; num_layers];
        let take = |start: usize, taken: &mut Vec<bool>| {
            let end = (start + block).min(num_layers);
            taken[start.min(end)..end].fill(true);
        };
        match *self {
            Rule::Lowest(k) => {
                let mut order: Vec<(usize, f64)> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.filter(|v| v.is_finite()).map(|v| (i, v)))
                    .collect();
                order.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                let mut n = 0;
                for (start, _) in order {
                    if n == k {
                        break;
                    }
                    let end = (start + block).min(num_layers);
                    if (start..end).any(|l| taken[l]) {
                        continue;
                    }
                    take(start, &mut taken);
                    n += 1;
                }
            }
            rule => {
                for start in rule.drops(values) {
                    take(start, &mut taken);
                }
            }
        }
        (0..num_layers).filter(|&l| taken[l]).collect()
    }

    /// The layers this rule drops, given each layer's SNR (`None`: not scanned or failed;
    /// NaN counts as not scanned).
    pub fn drops(&self, snr: &[Option<f64>]) -> Vec<usize> {
        let known = snr
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.filter(|v| !v.is_nan()).map(|v| (i, v)));
        match *self {
            Rule::Infinite => known
                .filter(|(_, v)| *v == f64::INFINITY)
                .map(|(i, _)| i)
                .collect(),
            Rule::Below(x) => known
                .filter(|(_, v)| *v < x && !printed_as(*v, x))
                .map(|(i, _)| i)
                .collect(),
            Rule::Lowest(k) => {
                let mut finite: Vec<(usize, f64)> = known.filter(|(_, v)| v.is_finite()).collect();
                finite.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                let mut out: Vec<usize> = finite.into_iter().take(k).map(|(i, _)| i).collect();
                out.sort_unstable();
                out
            }
        }
    }
}

impl FromStr for Rule {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Rule, ParseError> {
        let bad = || {
            ParseError(format!(
                "unknown rule {s:?}: use `infinite`, `lowest:K` or `below:X`"
            ))
        };
        match s.split_once(':') {
            None if s == "infinite" => Ok(Rule::Infinite),
            Some(("lowest", k)) => k.trim().parse().map(Rule::Lowest).map_err(|_| bad()),
            Some(("below", x)) => x
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| !x.is_nan())
                .map(Rule::Below)
                .ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

/// Where a layer's fate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Keep,
    DropByRule,
    /// Dropped by hand, against the rule.
    DropManual,
    /// Kept by hand, against the rule.
    KeepManual,
    /// Dropped by hand where the rule drops it too: recorded, so it holds when the rule
    /// changes.
    DropManualAgrees,
    /// Kept by hand where the rule keeps it too.
    KeepManualAgrees,
}

impl Mark {
    pub fn is_dropped(self) -> bool {
        matches!(
            self,
            Mark::DropByRule | Mark::DropManual | Mark::DropManualAgrees
        )
    }

    /// A hand choice the rule disagrees with: what makes the choice differ from the rule's.
    pub(crate) fn is_manual(self) -> bool {
        matches!(self, Mark::DropManual | Mark::KeepManual)
    }

    /// Any hand choice, agreeing with the rule or not.
    pub fn is_override(self) -> bool {
        !matches!(self, Mark::Keep | Mark::DropByRule)
    }
}

/// Which layers of an `n`-layer stack are dropped: the rule's choice with the user's hand
/// choices on top. A hand choice is kept even where the rule happens to agree, so changing or
/// cycling the rule never loses it; only [`Selection::apply_rule`] and
/// [`Selection::forget`] remove hand choices.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selection {
    num_layers: usize,
    by_rule: Vec<bool>,
    /// layer -> dropped, chosen by hand.
    manual: BTreeMap<usize, bool>,
}

impl Selection {
    pub fn new(num_layers: usize) -> Selection {
        Selection {
            num_layers,
            by_rule: vec![false; num_layers],
            manual: BTreeMap::new(),
        }
    }

    pub fn num_layers(&self) -> usize {
        self.num_layers
    }

    /// Replaces the rule's choice and forgets manual overrides (`a` in the explorer).
    pub fn apply_rule(&mut self, rule: &Rule, snr: &[Option<f64>]) {
        self.apply_rule_blocks(rule, snr, 1);
    }

    /// [`Selection::apply_rule`] on values that each stand for `block` layers (see
    /// [`Rule::drops_blocks`]).
    pub fn apply_rule_blocks(&mut self, rule: &Rule, values: &[Option<f64>], block: usize) {
        self.by_rule = vec![false; self.num_layers];
        for i in rule.drops_blocks(values, block, self.num_layers) {
            if i < self.num_layers {
                self.by_rule[i] = true;
            }
        }
        self.manual.clear();
    }

    /// Recomputes the rule's choice but keeps manual overrides (new scan results arriving).
    pub fn refresh_rule(&mut self, rule: &Rule, snr: &[Option<f64>]) {
        self.refresh_rule_blocks(rule, snr, 1);
    }

    /// [`Selection::refresh_rule`] on values that each stand for `block` layers.
    pub fn refresh_rule_blocks(&mut self, rule: &Rule, values: &[Option<f64>], block: usize) {
        let manual = std::mem::take(&mut self.manual);
        self.apply_rule_blocks(rule, values, block);
        for (i, d) in manual {
            self.set(i, d);
        }
    }

    pub fn mark(&self, layer: usize) -> Mark {
        let rule = self.by_rule.get(layer).copied().unwrap_or(false);
        match (self.manual.get(&layer), rule) {
            (Some(true), true) => Mark::DropManualAgrees,
            (Some(true), false) => Mark::DropManual,
            (Some(false), true) => Mark::KeepManual,
            (Some(false), false) => Mark::KeepManualAgrees,
            (None, true) => Mark::DropByRule,
            (None, false) => Mark::Keep,
        }
    }

    pub fn is_dropped(&self, layer: usize) -> bool {
        self.mark(layer).is_dropped()
    }

    /// Sets a layer's fate by hand (recorded even where the rule agrees).
    pub fn set(&mut self, layer: usize, dropped: bool) {
        if layer < self.num_layers {
            self.manual.insert(layer, dropped);
        }
    }

    /// Hands a layer back to the rule.
    pub fn forget(&mut self, layer: usize) -> bool {
        self.manual.remove(&layer).is_some()
    }

    /// The hand choices: layer -> dropped.
    pub fn overrides(&self) -> &BTreeMap<usize, bool> {
        &self.manual
    }

    /// Replaces the hand choices (undo and redo restore them this way).
    pub fn set_overrides(&mut self, manual: BTreeMap<usize, bool>) {
        self.manual = manual
            .into_iter()
            .filter(|(l, _)| *l < self.num_layers)
            .collect();
    }

    pub fn toggle(&mut self, layer: usize) {
        let d = self.is_dropped(layer);
        self.set(layer, !d);
    }

    /// Keeps every layer (`c`).
    pub fn clear(&mut self) {
        for i in 0..self.num_layers {
            self.set(i, false);
        }
    }

    /// Drops what was kept and keeps what was dropped (`i`).
    pub fn invert(&mut self) {
        for i in 0..self.num_layers {
            self.toggle(i);
        }
    }

    pub fn dropped(&self) -> Vec<usize> {
        (0..self.num_layers)
            .filter(|&i| self.is_dropped(i))
            .collect()
    }

    pub fn kept(&self) -> Vec<usize> {
        (0..self.num_layers)
            .filter(|&i| !self.is_dropped(i))
            .collect()
    }

    /// Whether any hand choice is recorded (agreeing with the rule or not).
    pub fn has_manual(&self) -> bool {
        !self.manual.is_empty()
    }

    /// How many layers' fate differs from the rule's.
    pub fn against_rule(&self) -> usize {
        (0..self.num_layers)
            .filter(|&i| self.mark(i).is_manual())
            .count()
    }

    pub fn kept_ranges(&self) -> Vec<Range<usize>> {
        kept_ranges(self.num_layers, &self.dropped())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let inf = f64::INFINITY;
        let snr = [
            Some(3.0),
            Some(inf),
            None,
            Some(1.0),
            Some(f64::NAN),
            Some(2.0),
            Some(inf),
        ];
        assert_eq!(Rule::Infinite.drops(&snr), vec![1, 6]);
        assert_eq!(Rule::Lowest(2).drops(&snr), vec![3, 5]);
        assert_eq!(Rule::Below(2.5).drops(&snr), vec![3, 5]);
        // Strictly below: a value printed as X (7 or 5 significant digits) is not below X.
        let shown = [Some(3.242_293_78), Some(3.0), Some(3.242_2)];
        assert_eq!(Rule::Below(3.242_294).drops(&shown), vec![1, 2]);
        assert_eq!(Rule::Below(3.242_3).drops(&shown), vec![1, 2]);
        assert_eq!(Rule::Below(3.242_2).drops(&shown), vec![1]);
        assert_eq!(Rule::Below(3.25).drops(&shown), vec![0, 1, 2]);
        assert_eq!("lowest:3".parse::<Rule>(), Ok(Rule::Lowest(3)));
        assert_eq!("below:0.5".parse::<Rule>(), Ok(Rule::Below(0.5)));
        assert!("lowest:x".parse::<Rule>().is_err());
        assert!("fancy".parse::<Rule>().is_err());
    }

    #[test]
    fn manual_overrides_and_marks() {
        let inf = f64::INFINITY;
        let snr = [Some(1.0), Some(inf), Some(2.0), Some(inf)];
        let mut s = Selection::new(4);
        s.apply_rule(&Rule::Infinite, &snr);
        assert_eq!(s.dropped(), vec![1, 3]);
        assert_eq!(s.mark(1), Mark::DropByRule);
        s.toggle(1);
        assert_eq!(s.mark(1), Mark::KeepManual);
        s.toggle(0);
        assert_eq!(s.mark(0), Mark::DropManual);
        assert_eq!(s.dropped(), vec![0, 3]);
        s.toggle(1); // back to what the rule says, still recorded as a hand choice
        assert_eq!(s.mark(1), Mark::DropManualAgrees);
        assert!(s.forget(1));
        assert_eq!(s.mark(1), Mark::DropByRule);
        s.invert();
        assert_eq!(s.dropped(), vec![2]);
        s.clear();
        assert!(s.dropped().is_empty());
        s.apply_rule(&Rule::Infinite, &snr);
        assert_eq!(s.dropped(), vec![1, 3]);
        assert!(!s.has_manual());
    }

    #[test]
    fn hand_choices_survive_rule_changes() {
        let inf = f64::INFINITY;
        let snr = [Some(1.0), Some(inf), Some(2.0), Some(3.0)];
        let mut s = Selection::new(4);
        s.apply_rule(&Rule::Infinite, &snr);
        s.toggle(1); // keep the infinite layer by hand
        for rule in [Rule::Lowest(1), Rule::Below(2.5), Rule::Infinite] {
            s.refresh_rule(&rule, &snr);
            assert!(!s.is_dropped(1), "{rule}");
        }
        // Under `lowest:1` the rule keeps layer 1 anyway: the choice is recorded, agreeing.
        s.refresh_rule(&Rule::Lowest(1), &snr);
        assert_eq!(s.mark(1), Mark::KeepManualAgrees);
        assert_eq!(s.against_rule(), 0);
        s.refresh_rule(&Rule::Infinite, &snr);
        assert_eq!(s.mark(1), Mark::KeepManual);
        assert_eq!(s.against_rule(), 1);
    }

    /// Hand-worked: blocks of 3 over 8 layers, entry i = layers i..i+3.
    #[test]
    fn rules_on_blocks() {
        let d = [
            Some(0.30),
            Some(0.12),
            Some(0.10),
            Some(0.11),
            Some(0.40),
            Some(0.05),
        ];
        // The best block starts at 5: layers 5, 6, 7.
        assert_eq!(Rule::Lowest(1).drops_blocks(&d, 3, 8), vec![5, 6, 7]);
        // Next lowest, 0.10 at 2 (layers 2-4), does not overlap 5-7; 0.11 at 3 would.
        assert_eq!(
            Rule::Lowest(2).drops_blocks(&d, 3, 8),
            vec![2, 3, 4, 5, 6, 7]
        );
        // A third block must avoid 2-7: only 0 would fit, but it overlaps 2; 1 overlaps too.
        assert_eq!(
            Rule::Lowest(3).drops_blocks(&d, 3, 8),
            vec![2, 3, 4, 5, 6, 7]
        );
        // below: every block under the line, their union.
        assert_eq!(
            Rule::Below(0.115).drops_blocks(&d, 3, 8),
            vec![2, 3, 4, 5, 6, 7]
        );
        assert_eq!(Rule::Below(0.06).drops_blocks(&d, 3, 8), vec![5, 6, 7]);
        assert_eq!(Rule::Infinite.drops_blocks(&d, 3, 8), Vec::<usize>::new());
        // The second lowest block (1: layers 1-2) overlaps the lowest (0: 0-1): the next
        // disjoint one (3: 3-4) is taken instead.
        let e = [Some(0.10), Some(0.11), Some(0.50), Some(0.20)];
        assert_eq!(Rule::Lowest(2).drops_blocks(&e, 2, 5), vec![0, 1, 3, 4]);
        // Blocks of 1 are the per-layer rules.
        assert_eq!(Rule::Lowest(2).drops_blocks(&d, 1, 6), vec![2, 5]);
        let mut s = Selection::new(8);
        s.set(0, true);
        s.refresh_rule_blocks(&Rule::Lowest(1), &d, 3);
        assert_eq!(s.dropped(), vec![0, 5, 6, 7]);
        assert_eq!(
            Rule::Lowest(1).describe_reading("angular distance", 3),
            "drop the block of 3 layers with the lowest angular distance"
        );
        assert_eq!(
            Rule::Lowest(2).describe("self_attn.v_proj"),
            "drop the 2 layers with the lowest self_attn.v_proj SNR"
        );
    }

    #[test]
    fn refresh_keeps_manual_choices() {
        let mut s = Selection::new(3);
        s.apply_rule(&Rule::Infinite, &[None, None, None]);
        s.toggle(0);
        s.refresh_rule(&Rule::Infinite, &[Some(1.0), Some(f64::INFINITY), None]);
        assert_eq!(s.dropped(), vec![0, 1]);
        assert_eq!(s.mark(0), Mark::DropManual);
    }
}
