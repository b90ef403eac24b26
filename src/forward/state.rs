//! What a screen shows of evaluations: the original's perplexity (computed once), the last
//! choice's, and whether that choice is still the current one.

use super::events::{EvalEvent, Perplexity, Stage};

/// `ppl 12.31 → 14.08 (+14.4 %)`, for the choice (`dropped`) it was computed for.
#[derive(Debug, Clone, PartialEq)]
pub struct PplSummary {
    pub original: f64,
    pub pruned: f64,
    /// The dropped layers the pruned perplexity belongs to.
    pub dropped: Vec<usize>,
}

impl PplSummary {
    /// Relative change, e.g. 0.144 for +14.4 %.
    pub fn change(&self) -> f64 {
        self.pruned / self.original - 1.0
    }

    /// The choice changed since: show the old value dimmed, offer re-evaluation.
    pub fn is_stale(&self, current_dropped: &[usize]) -> bool {
        self.dropped != current_dropped
    }

    pub fn text(&self) -> String {
        format!(
            "ppl {} → {} ({:+.1} %)",
            format_perplexity(self.original),
            format_perplexity(self.pruned),
            100.0 * self.change()
        )
    }
}

/// Four significant figures at most two decimals: 12.31, 123.4, 1234, 1.23e5.
pub fn format_perplexity(p: f64) -> String {
    match p {
        p if !p.is_finite() => format!("{p}"),
        p if p < 100.0 => format!("{p:.2}"),
        p if p < 1000.0 => format!("{p:.1}"),
        p if p < 100_000.0 => format!("{p:.0}"),
        p => format!("{p:.2e}"),
    }
}

/// Evaluation events folded into a screen's state. Feed it every [`EvalEvent`] of the jobs it
/// started; ask [`EvalState::choices_for`] what a new request must compute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalState {
    /// The original model's perplexity (on this text), once known.
    pub original: Option<Perplexity>,
    /// The last pruned choice evaluated.
    pub pruned: Option<Perplexity>,
    /// The choice being computed and how far it is.
    pub progress: Option<(Vec<usize>, Stage)>,
    /// A job is running (between its start and `Finished`).
    pub running: bool,
    /// The last failure, for the status line.
    pub error: Option<String>,
}

impl EvalState {
    /// What evaluating `current_dropped` needs: the original unless known, then the choice
    /// unless it is the original or already evaluated.
    pub fn choices_for(&self, current_dropped: &[usize]) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        if self.original.is_none() {
            out.push(Vec::new());
        }
        let known = self
            .pruned
            .as_ref()
            .is_some_and(|p| p.dropped == current_dropped);
        if !current_dropped.is_empty() && !known {
            out.push(current_dropped.to_vec());
        }
        out
    }

    /// Call when a job starts.
    pub fn started(&mut self) {
        self.running = true;
        self.error = None;
        self.progress = None;
    }

    pub fn apply(&mut self, event: &EvalEvent) {
        match event {
            EvalEvent::Progress { dropped, stage, .. } => {
                self.running = true;
                self.progress = Some((dropped.clone(), *stage));
            }
            EvalEvent::Result { result: Ok(p), .. } if p.is_original() => {
                self.original = Some(p.clone());
            }
            EvalEvent::Result { result: Ok(p), .. } => self.pruned = Some(p.clone()),
            EvalEvent::Result {
                dropped,
                result: Err(e),
            } => {
                self.error = Some(if dropped.is_empty() {
                    format!("original: {e}")
                } else {
                    e.to_string()
                });
            }
            EvalEvent::Finished { cancelled } => {
                self.running = false;
                self.progress = None;
                if *cancelled && self.error.is_none() {
                    self.error = Some("evaluation cancelled".into());
                }
            }
        }
    }

    /// Original and last pruned perplexity, when both are known.
    pub fn summary(&self) -> Option<PplSummary> {
        let (o, p) = (self.original.as_ref()?, self.pruned.as_ref()?);
        Some(PplSummary {
            original: o.perplexity,
            pruned: p.perplexity,
            dropped: p.dropped.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_text_and_staleness() {
        let s = PplSummary {
            original: 12.31,
            pruned: 14.08,
            dropped: vec![5, 11],
        };
        assert_eq!(s.text(), "ppl 12.31 → 14.08 (+14.4 %)");
        assert!(!s.is_stale(&[5, 11]));
        assert!(s.is_stale(&[5]));
        assert_eq!(format_perplexity(1234.4), "1234");
        assert_eq!(format_perplexity(123.44), "123.4");
    }
}
