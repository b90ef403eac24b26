//! A window onto the hidden states as the streamed pass computes them, for metrics computed
//! in the same pass without storing every layer (Block Influence, angular distances,
//! PruneMe's distances): each layer's input and output, per token, and the final norm's
//! output. Rows are tokens (the windows of [`Site::windows`] back to back), `hidden` wide.

use std::ops::Range;

/// Where a layer ran.
pub struct Site<'a> {
    /// The job's choices whose model this is (they share these hidden states).
    pub choices: &'a [usize],
    /// The layer's index in the evaluated model, and the checkpoint layer it reads.
    pub layer: usize,
    pub source_layer: usize,
    pub hidden: usize,
    /// Global token ranges of the rows' windows, in order.
    pub windows: &'a [Range<usize>],
}

/// Sees the hidden states of a pass. Called on the pass's thread, in layer order.
pub trait HiddenObserver: Send {
    /// `input` and `output` of one layer (tokens × hidden, row-major).
    fn layer(&mut self, site: &Site, input: &[f32], output: &[f32]);
    /// The final norm's output (what the head reads), tokens × hidden.
    fn final_norm(&mut self, choices: &[usize], windows: &[Range<usize>], normed: &[f32]);
}
