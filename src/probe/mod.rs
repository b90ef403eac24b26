//! Layer metrics from activations, computed on the CPU in the streamed forward pass
//! (`snrscope probe`): ShortGPT's Block Influence, the angular distance of every block of n
//! consecutive layers (Gromov et al.), PruneMe's rows of it, and optionally the perplexity
//! without each single layer (Shortened LLaMA). Memory is the pass's (one weight band plus the
//! samples' activations) plus the last token's state of `max_block + 1` layers per sample.
//!
//! Modules: `samples` (calibration samples from a text or token ids), `collect` (the
//! hidden-state observer: each sample's numbers), `summary` (the means, PruneMe's rows and
//! CSV), `job` (one pass), `document` (the probe file, written and read), `parts` (`--part`
//! and `--merge`), `cache` (results kept for reuse).

mod cache;
mod collect;
mod columns;
mod document;
mod job;
mod parts;
mod samples;
mod summary;

pub use cache::{Key, ProbeCache};
pub use collect::SampleStats;
pub use columns::{Column, column, columns};
pub use document::{
    Extras, MARKER, ProbeDoc, ProbeMeta, looks_like_probe_file, lowest_first, read, to_json,
};
pub use job::{Collected, ProbeOptions, run_pass};
pub use parts::{
    IndexedSample, Merged, PartFile, merge, read as read_part, share, to_json as part_to_json,
};
pub use samples::{Samples, read_ids};
pub use summary::{Metrics, PplSums, metrics, pruneme_csv};

use std::sync::Arc;

use crate::{
    checkpoint::Model,
    forward::{EvalError, EvalEvent},
    util::cancel::CancelToken,
};

/// A probe, read from `cache` when it holds one for the same weight files, samples and
/// options, else computed (and stored). `Ok(None)` when cancelled; the flag says it came from
/// the cache.
pub fn probe(
    model: &Arc<Model>,
    layers: usize,
    samples: &Samples,
    options: &ProbeOptions,
    mut cache: Option<&mut ProbeCache>,
    cancel: &CancelToken,
    sink: impl Fn(EvalEvent) + Send + Sync + 'static,
) -> Result<Option<(Collected, bool)>, EvalError> {
    let max_block = options.max_block.clamp(1, layers.max(1));
    let key = cache
        .as_ref()
        .and_then(|_| Key::new(model, samples, max_block, options.ppl));
    if let (Some(c), Some(k)) = (cache.as_mut(), key.as_ref())
        && let Some(hit) = c.get(k)
        && hit.stats.len() == samples.len()
    {
        return Ok(Some((hit, true)));
    }
    let options = ProbeOptions {
        max_block,
        ..options.clone()
    };
    let Some(collected) = run_pass(model, layers, samples, &options, cancel, sink)? else {
        return Ok(None);
    };
    if let (Some(c), Some(k)) = (cache, key.as_ref()) {
        c.put(k, &collected);
    }
    Ok(Some((collected, false)))
}
