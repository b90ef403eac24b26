//! How much memory an evaluation needs, how much the machine has, and how much was used.

use super::models::ArchConfig;

/// Bytes an evaluation is expected to hold at its peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Every weight the models read, as f32.
    pub weights: u64,
    /// The largest window's working set (attention scores, hidden states, logits; KV caches
    /// on the stepped path).
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

/// The working set of one forward over `batch` windows of `window` tokens, in bytes.
/// Rule of thumb (f32): attention scores heads·T² (three live copies: scores, masked,
/// softmax), hidden states and MLP T·(6·hidden + 3·intermediate), logits T·vocab (twice:
/// the model's and the copy scored). The stepped path keeps per-layer K and V caches
/// (concatenation briefly doubles them) and all logits of the batch.
pub(crate) fn activations(arch: &ArchConfig, window: usize, batch: usize) -> u64 {
    let (t, b) = (window as u64, batch as u64);
    let f = 4u64;
    let hidden = t * (6 * arch.hidden as u64 + 3 * arch.intermediate as u64) * f;
    let logits = 2 * t * arch.vocab as u64 * f;
    if arch.steps_tokens() {
        let kv = arch.layers as u64 * 2 * t * (arch.kv_heads * arch.head_dim) as u64 * f;
        let repeated = 2 * t * (arch.heads * arch.head_dim) as u64 * f;
        b * (2 * kv + repeated + logits / 2) + b * hidden / t.max(1)
    } else {
        let scores = 3 * arch.heads as u64 * t * t * f;
        scores + hidden + logits
    }
}

fn meminfo_field(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Memory the kernel could give this process now without swapping (`MemAvailable`); `None`
/// where unknown (non-Linux), in which case nothing is refused.
/// `SNRSCOPE_MEMORY_AVAILABLE=BYTES` overrides it (tests of the refusal).
pub fn available() -> Option<u64> {
    if let Some(v) = std::env::var("SNRSCOPE_MEMORY_AVAILABLE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return Some(v);
    }
    meminfo_field("MemAvailable:")
}

/// This process's peak resident set so far (`VmHWM`); `None` where unknown.
pub fn peak_rss() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
