//! Causal self-attention of one window, as transformers' eager attention computes it:
//! scores = q·kᵀ × scale, optionally soft-capped, masked (causal, and the sliding window: a
//! query at position i sees keys j with i − window < j ≤ i), softmax in f32, times v.
//! Computed per (head, tile of query rows), so the scores held at once are a tile × keys per
//! thread, never heads × window².

use rayon::prelude::*;

use super::{
    kernels::{matmul_nn, matmul_nt, softcap},
    vmath,
};

/// Query rows per tile.
pub const TILE: usize = 128;

/// The attention of one window: its shape and rules.
#[derive(Debug, Clone, Copy)]
pub struct Attention {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub scale: f32,
    pub softcap: Option<f32>,
    pub sliding_window: Option<usize>,
}

impl Attention {
    /// `q` (heads·hd wide), `k`, `v` (kv_heads·hd wide): rows at positions 0..len of one
    /// window, each `ld` apart (q, k and v may be column bands of one buffer); writes
    /// len × heads·hd into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn window(&self, q: &[f32], k: &[f32], v: &[f32], ld: usize, len: usize, out: &mut [f32]) {
        let (hd, qd) = (self.head_dim, self.heads * self.head_dim);
        let kvd = ld;
        let group = self.heads / self.kv_heads;
        let tiles: Vec<(usize, usize)> = (0..self.heads)
            .flat_map(|h| (0..len).step_by(TILE).map(move |a| (h, a)))
            .collect();
        let results: Vec<(usize, usize, Vec<f32>)> = tiles
            .into_par_iter()
            .map(|(h, a)| {
                let b = (a + TILE).min(len);
                let kvh = h / group;
                let lo = match self.sliding_window {
                    Some(w) => (a + 1).saturating_sub(w),
                    None => 0,
                };
                let keys = b - lo;
                let rows = b - a;
                let mut scores = vec![0f32; rows * keys];
                matmul_nt(
                    &q[a * ld + h * hd..],
                    rows,
                    hd,
                    ld,
                    &k[lo * kvd + kvh * hd..],
                    keys,
                    kvd,
                    &mut scores,
                );
                for (r, row) in scores.chunks_mut(keys).enumerate() {
                    let i = a + r;
                    // Keys lo + j this query sees: first..=i.
                    let first = match self.sliding_window {
                        Some(w) => (i + 1).saturating_sub(w).max(lo),
                        None => 0,
                    };
                    let (from, to) = (first - lo, i + 1 - lo);
                    softmax(&mut row[from..to], self.scale, self.softcap);
                    row[..from].fill(0.0);
                    row[to..].fill(0.0);
                }
                let mut o = vec![0f32; rows * hd];
                matmul_nn(
                    &scores,
                    rows,
                    keys,
                    keys,
                    &v[lo * kvd + kvh * hd..],
                    hd,
                    kvd,
                    &mut o,
                );
                (h, a, o)
            })
            .collect();
        for (h, a, o) in results {
            for (r, row) in o.chunks(hd).enumerate() {
                let at = (a + r) * qd + h * hd;
                out[at..at + hd].copy_from_slice(row);
            }
        }
    }
}

/// Lanes of the max and sum reductions (so they vectorise; fixed, so results do not depend
/// on the machine).
const LANES: usize = 8;

/// `row = softmax(cap(row × scale))` in place, as eager attention computes it in f32.
fn softmax(row: &mut [f32], scale: f32, cap: Option<f32>) {
    vmath::wide(
        #[inline(always)]
        || {
            match cap {
                Some(c) => row.iter_mut().for_each(|s| *s = softcap(*s * scale, c)),
                None => row.iter_mut().for_each(|s| *s *= scale),
            }
            let mut max = [f32::NEG_INFINITY; LANES];
            let mut chunks = row.chunks_exact(LANES);
            for c in &mut chunks {
                for (m, &v) in max.iter_mut().zip(c) {
                    *m = m.max(v);
                }
            }
            let max = chunks
                .remainder()
                .iter()
                .chain(&max)
                .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            row.iter_mut().for_each(|s| *s = vmath::exp(*s - max));
            let mut sum = [0f32; LANES];
            let mut chunks = row.chunks_exact(LANES);
            for c in &mut chunks {
                for (t, &v) in sum.iter_mut().zip(c) {
                    *t += v;
                }
            }
            let sum = chunks.remainder().iter().sum::<f32>() + sum.iter().sum::<f32>();
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|s| *s *= inv);
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Softmax over the visible keys, by definition, for one head of dim 1.
    fn naive(q: &[f32], k: &[f32], v: &[f32], w: Option<usize>) -> Vec<f32> {
        let n = q.len();
        (0..n)
            .map(|i| {
                let vis: Vec<usize> = (0..=i).filter(|&j| w.is_none_or(|w| j + w > i)).collect();
                let s: Vec<f32> = vis.iter().map(|&j| q[i] * k[j]).collect();
                let m = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f32 = e.iter().sum();
                vis.iter().zip(&e).map(|(&j, e)| e / z * v[j]).sum()
            })
            .collect()
    }

    #[test]
    fn matches_the_definition_across_tiles_and_windows() {
        let n = 300;
        let q: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
        let k: Vec<f32> = (0..n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
        let v: Vec<f32> = (0..n).map(|i| (i % 17) as f32).collect();
        for w in [None, Some(1), Some(5), Some(200)] {
            let a = Attention {
                heads: 1,
                kv_heads: 1,
                head_dim: 1,
                scale: 1.0,
                softcap: None,
                sliding_window: w,
            };
            let mut out = vec![0f32; n];
            a.window(&q, &k, &v, 1, n, &mut out);
            let want = naive(&q, &k, &v, w);
            for (x, y) in out.iter().zip(&want) {
                assert!((x - y).abs() < 1e-4 * (1.0 + y.abs()), "{w:?}: {x} vs {y}");
            }
        }
    }
}
