//! How much memory an evaluation needs, how much the machine has, and how much was used.
//!
//! The streamed pass holds one band of one weight matrix at a time (in f32, plus the raw
//! source bytes it was read from) and the activations: the hidden states of each lane and one
//! layer's temporaries for all tokens at once. Neither grows with the layer count.

use super::{
    arch::{ArchConfig, Mlp},
    attention::TILE,
};

pub use super::estimate::MemoryEstimate;

/// Largest f32 band of a weight matrix converted at once (64 MiB).
pub const BAND_ELEMS: usize = 16 << 20;

/// The largest band the pass converts for `arch`, in elements.
pub fn largest_band(arch: &ArchConfig) -> usize {
    let (h, ff) = (arch.hidden, arch.intermediate);
    let moe_ff = arch
        .kinds
        .iter()
        .filter_map(|k| match &k.mlp {
            Mlp::Moe(m) => Some(m.intermediate),
            Mlp::Dense => None,
        })
        .max()
        .unwrap_or(0);
    let largest = [
        (arch.q_dim() + 2 * arch.kv_dim()) * h,
        2 * ff * h,
        2 * moe_ff * h,
        arch.vocab * h,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    largest.min(BAND_ELEMS)
}

/// The streamed pass over `tokens` tokens per lane (windows back to back, the longest
/// `window`), with at most `lanes` lanes alive, on `threads` threads; `logits`: every window's
/// logits are kept for a caller.
pub fn streamed(
    arch: &ArchConfig,
    tokens: usize,
    window: usize,
    lanes: usize,
    threads: usize,
    logits: bool,
) -> MemoryEstimate {
    let f = 4u64;
    let band = largest_band(arch) as u64;
    let (h, n) = (arch.hidden as u64, (tokens * lanes) as u64);
    let (qd, kvd) = (arch.q_dim() as u64, arch.kv_dim() as u64);
    let ff = arch
        .kinds
        .iter()
        .map(|k| match &k.mlp {
            Mlp::Moe(m) => m.intermediate.max(m.experts) as u64,
            Mlp::Dense => arch.intermediate as u64,
        })
        .max()
        .unwrap_or(arch.intermediate as u64);
    let states = n * h * f;
    // One layer: normed input, q|k|v, attention output, projection, gate and up.
    let layer = n * (2 * h + qd + 2 * kvd + qd + 2 * ff) * f;
    let tiles = threads.max(1) as u64 * 2 * TILE as u64 * window as u64 * f;
    let head_band = (band).min(n * arch.vocab as u64) * f + n * h * f;
    let kept = if logits { n * arch.vocab as u64 * f } else { 0 };
    MemoryEstimate {
        weights: band * (f + 4),
        activations: states + layer.max(head_band) + tiles + kept,
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
