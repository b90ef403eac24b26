//! One probe pass: the samples through the streamed forward pass with the collector watching
//! the original model's lane, and (on request) the model without each single layer in the same
//! pass (the lanes share every layer before the removed one, computed once).

use std::sync::Arc;

use super::{
    collect::{Collector, ORIGINAL, SampleStats},
    samples::Samples,
    summary::PplSums,
};
use crate::{
    checkpoint::Model,
    forward::{self, EvalError, EvalEvent, EvalOptions, Hooks},
    util::cancel::CancelToken,
};

/// What a probe computes, beside the samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Largest block of the angular distances (1..=layers; larger is capped).
    pub max_block: usize,
    /// Also the perplexity without each single layer (Shortened LLaMA's PPL criterion).
    pub ppl: bool,
    /// Threads of the forward pass; 0 = one per core.
    pub threads: usize,
    /// Refuse before reading weights when the memory estimate exceeds the available memory.
    pub check_memory: bool,
}

/// What a pass yields for its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Collected {
    pub stats: Vec<SampleStats>,
    pub ppl: Option<PplSums>,
}

/// Runs the probe of `samples` on `model` (`layers` layers); `Ok(None)` when cancelled. Every
/// event of the pass goes to `sink`.
pub fn run_pass(
    model: &Arc<Model>,
    layers: usize,
    samples: &Samples,
    options: &ProbeOptions,
    cancel: &CancelToken,
    sink: impl Fn(EvalEvent) + Send + Sync + 'static,
) -> Result<Option<Collected>, EvalError> {
    let mut choices: Vec<Vec<usize>> = vec![Vec::new()];
    if options.ppl {
        choices.extend((0..layers).map(|l| vec![l]));
    }
    let mut collector = Collector::new(layers, options.max_block, &samples.lengths());
    let eval = EvalOptions {
        threads: options.threads,
        window: None,
        max_tokens: None,
        check_memory: options.check_memory,
    };
    let results = forward::evaluate_samples(
        model,
        &samples.ids,
        &samples.ranges,
        &choices,
        &eval,
        cancel,
        sink,
        Hooks {
            logits: None,
            hidden: Some(&mut collector),
        },
    );
    let mut results = results.into_iter();
    match results.next().flatten() {
        None => Ok(None),
        Some(Err(e)) => Err(e),
        Some(Ok(_)) if cancel.is_cancelled() => Ok(None),
        Some(Ok(original)) => {
            let sums = |p: &forward::Perplexity| (p.mean_nll * p.tokens as f64, p.tokens);
            let ppl = options.ppl.then(|| PplSums {
                original: sums(&original),
                // A removal that cannot be evaluated (e.g. the only layer) is NaN, not an
                // error for the whole probe.
                without_layer: results
                    .map(|r| match r {
                        Some(Ok(p)) => sums(&p),
                        _ => (f64::NAN, 0),
                    })
                    .collect(),
            });
            let stats = collector
                .finish()
                .map_err(|e| EvalError::Compute(format!("probe: {e}")))?;
            debug_assert_eq!(ORIGINAL, 0);
            Ok(Some(Collected { stats, ppl }))
        }
    }
}
