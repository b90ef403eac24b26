//! What an evaluation expects to hold at its peak (computed by `memory`).

/// Bytes an evaluation is expected to hold at its peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Weights held at once: the largest band of a matrix in f32, plus its source bytes.
    pub weights: u64,
    /// Hidden states, one layer's temporaries, attention tiles, the head's logits band.
    pub activations: u64,
}

impl MemoryEstimate {
    /// Weights and activations, plus a tenth for what the estimate leaves out (allocator
    /// slack, temporaries).
    pub fn total(&self) -> u64 {
        let sum = self.weights + self.activations;
        sum + sum / 10
    }
}
