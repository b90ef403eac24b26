//! The arithmetic of the forward pass on plain row-major f32 slices: products with a weight
//! band (faer's f32 GEMM on the rayon pool), norms, activations. Everything is f32 like
//! transformers' float32 path; only the reductions of a norm are summed in f64, which moves
//! results by far less than the reference tests' tolerance.

use faer::{Accum, MatMut, MatRef, Par, linalg::matmul::matmul};
use rayon::prelude::*;

use super::vmath;

/// `out[i, j] = Σ_k x[i, k] · w[j, k]` (x: m×k, w: n×k, both row-major) written into the
/// columns `col..col + n` of `out`, whose rows are `ld` long: `x · wᵀ`, as `nn.Linear` applies
/// a weight. `parallel` spreads it over the current rayon pool.
#[allow(clippy::too_many_arguments)]
pub fn matmul_t(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    out: &mut [f32],
    ld: usize,
    col: usize,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(x.len() >= m * k && w.len() >= n * k && col + n <= ld);
    let lhs = MatRef::from_row_major_slice(&x[..m * k], m, k);
    let rhs = MatRef::from_row_major_slice(&w[..n * k], n, k).transpose();
    // On a pool of one thread faer's parallel driver only adds its synchronisation.
    let par = if parallel && rayon::current_num_threads() > 1 {
        Par::rayon(0)
    } else {
        Par::Seq
    };
    // faer's x86 kernel can write past the last column of a strided destination (seen under
    // valgrind with row stride > columns), so products land in a contiguous block first.
    if ld == n && col == 0 {
        let dst = MatMut::from_row_major_slice_mut(&mut out[..m * n], m, n);
        matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
        return;
    }
    let mut tmp = vec![0f32; m * n];
    let dst = MatMut::from_row_major_slice_mut(&mut tmp, m, n);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
    out.par_chunks_mut(ld)
        .zip(tmp.par_chunks(n))
        .for_each(|(o, t)| o[col..col + n].copy_from_slice(t));
}

/// `out = a · b` (a: m×k row-major with row stride `lda`, b: k×n row-major with row stride
/// `ldb`, out: m×n contiguous), single-threaded: the attention's products per head.
#[allow(clippy::too_many_arguments)]
pub fn matmul_nn(
    a: &[f32],
    m: usize,
    k: usize,
    lda: usize,
    b: &[f32],
    n: usize,
    ldb: usize,
    out: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    let lhs = MatRef::from_row_major_slice_with_stride(&a[..(m - 1) * lda + k], m, k, lda);
    let rhs = MatRef::from_row_major_slice_with_stride(&b[..(k - 1) * ldb + n], k, n, ldb);
    let dst = MatMut::from_row_major_slice_mut(&mut out[..m * n], m, n);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
}

/// `out = a · bᵀ` (a: m×k with row stride `lda`, b: n×k with row stride `ldb`), single-threaded.
#[allow(clippy::too_many_arguments)]
pub fn matmul_nt(
    a: &[f32],
    m: usize,
    k: usize,
    lda: usize,
    b: &[f32],
    n: usize,
    ldb: usize,
    out: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    let lhs = MatRef::from_row_major_slice_with_stride(&a[..(m - 1) * lda + k], m, k, lda);
    let rhs =
        MatRef::from_row_major_slice_with_stride(&b[..(n - 1) * ldb + k], n, k, ldb).transpose();
    let dst = MatMut::from_row_major_slice_mut(&mut out[..m * n], m, n);
    matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
}

/// How a norm applies its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// Llama's RMSNorm: `w · x / rms(x)`.
    Rms,
    /// Gemma's: `x / rms(x) · (1 + w)`.
    RmsOnePlus,
}

/// RMS-normalises every row of `x` (rows of `w.len()`), into `out`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f64, kind: NormKind, out: &mut [f32]) {
    let n = w.len();
    let scale: Vec<f32> = match kind {
        NormKind::Rms => w.to_vec(),
        NormKind::RmsOnePlus => w.iter().map(|v| 1.0 + v).collect(),
    };
    out.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .for_each(|(o, row)| norm_row(row, &scale, eps, o));
}

/// Normalises one row (also used per head by q/k norms).
pub fn norm_row(row: &[f32], scale: &[f32], eps: f64, out: &mut [f32]) {
    let ms = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / row.len() as f64;
    let inv = (1.0 / ((ms as f32 + eps as f32) as f64).sqrt()) as f32;
    for ((o, &v), &s) in out.iter_mut().zip(row).zip(scale) {
        *o = (v * inv) * s;
    }
}

/// MLP activations transformers' `ACT2FN` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    GeluTanh,
    Relu,
}

impl Activation {
    pub fn parse(name: &str) -> Option<Activation> {
        match name {
            "silu" | "swish" => Some(Activation::Silu),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Silu => x / (1.0 + vmath::exp(-x)),
            Activation::GeluTanh => {
                const C: f32 = 0.797_884_6; // sqrt(2/pi)
                0.5 * x * (1.0 + vmath::tanh(C * (x + 0.044715 * x * x * x)))
            }
            Activation::Relu => x.max(0.0),
        }
    }
}

/// `gate[i] = act(gate[i]) · up[i]`, in place.
pub fn gated(gate: &mut [f32], up: &[f32], act: Activation) {
    gate.par_chunks_mut(4096)
        .zip(up.par_chunks(4096))
        .for_each(|(g, u)| {
            // One loop per activation, so each vectorises.
            vmath::wide(
                #[inline(always)]
                || match act {
                    Activation::Silu => gate_with(g, u, |x| Activation::Silu.apply(x)),
                    Activation::GeluTanh => gate_with(g, u, |x| Activation::GeluTanh.apply(x)),
                    Activation::Relu => gate_with(g, u, |x| Activation::Relu.apply(x)),
                },
            )
        });
}

#[inline(always)]
fn gate_with(gate: &mut [f32], up: &[f32], act: impl Fn(f32) -> f32) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = act(*g) * u;
    }
}

/// The largest value of `row` and Σ exp(v − max) over it (terms in f32, summed in f64):
/// one band of a running log-sum-exp.
pub fn max_and_sum_exp(row: &[f32]) -> (f32, f64) {
    const LANES: usize = 8;
    vmath::wide(
        #[inline(always)]
        || {
            let mut max = [f32::NEG_INFINITY; LANES];
            let mut chunks = row.chunks_exact(LANES);
            for c in &mut chunks {
                for (m, &v) in max.iter_mut().zip(c) {
                    *m = m.max(v);
                }
            }
            let m = chunks
                .remainder()
                .iter()
                .chain(&max)
                .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut sum = [0f64; LANES];
            let mut chunks = row.chunks_exact(LANES);
            for c in &mut chunks {
                for (s, &v) in sum.iter_mut().zip(c) {
                    *s += vmath::exp(v - m) as f64;
                }
            }
            let tail: f64 = chunks
                .remainder()
                .iter()
                .map(|&v| vmath::exp(v - m) as f64)
                .sum();
            (m, tail + sum.iter().sum::<f64>())
        },
    )
}

/// `x += y`.
pub fn add(x: &mut [f32], y: &[f32]) {
    x.par_chunks_mut(4096)
        .zip(y.par_chunks(4096))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}

/// Adds `bias` to every row of `x` (rows of `ld`, the bias at column `col`).
pub fn add_bias(x: &mut [f32], ld: usize, col: usize, bias: &[f32]) {
    x.par_chunks_mut(ld).for_each(|row| {
        for (a, b) in row[col..col + bias.len()].iter_mut().zip(bias) {
            *a += b;
        }
    });
}

/// `cap · tanh(x / cap)` (Gemma 2's soft-capping).
#[inline(always)]
pub fn softcap(x: f32, cap: f32) -> f32 {
    vmath::tanh(x / cap) * cap
}

/// Soft-caps every value of `x` in place.
pub fn softcap_all(x: &mut [f32], cap: f32) {
    x.par_chunks_mut(4096).for_each(|c| {
        vmath::wide(
            #[inline(always)]
            || c.iter_mut().for_each(|v| *v = softcap(*v, cap)),
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_t_writes_a_column_band() {
        // x: 2×3, w: 2×3 -> columns 1..3 of a 2×4 output.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        let mut out = vec![-1.0; 8];
        matmul_t(&x, 2, 3, &w, 2, &mut out, 4, 1, false);
        assert_eq!(out, vec![-1.0, 1.0, 5.0, -1.0, -1.0, 4.0, 11.0, -1.0]);
    }

    #[test]
    fn strided_products() {
        let a = [1.0, 2.0, 9.0, 3.0, 4.0, 9.0]; // 2×2, stride 3
        let b = [1.0, 0.0, 0.0, 1.0]; // 2×2
        let mut out = vec![0.0; 4];
        matmul_nn(&a, 2, 2, 3, &b, 2, 2, &mut out);
        assert_eq!(out, vec![1.0, 2.0, 3.0, 4.0]);
        matmul_nt(&a, 2, 2, 3, &a, 2, 3, &mut out);
        assert_eq!(out, vec![5.0, 11.0, 11.0, 25.0]);
    }

    #[test]
    fn norms() {
        let mut out = vec![0.0; 2];
        rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0, NormKind::Rms, &mut out);
        let r = (12.5f32).sqrt();
        assert!((out[0] - 3.0 / r).abs() < 1e-6 && (out[1] - 8.0 / r).abs() < 1e-6);
        rms_norm(
            &[3.0, 4.0],
            &[0.0, 1.0],
            0.0,
            NormKind::RmsOnePlus,
            &mut out,
        );
        assert!((out[1] - 8.0 / r).abs() < 1e-6);
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;

    #[test]
    fn products_match_naive_sums() {
        for (m, k, n, ld, col) in [
            (5, 64, 64, 128, 0),
            (5, 64, 32, 128, 64),
            (300, 16, 17, 40, 3),
            (1, 7, 300, 300, 0),
        ] {
            let x: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 - 2.0).collect();
            let mut out = vec![0f32; (m - 1) * ld + col + n];
            matmul_t(&x, m, k, &w, n, &mut out, ld, col, true);
            for i in 0..m {
                for j in 0..n {
                    let s: f32 = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum();
                    assert_eq!(out[i * ld + col + j], s, "{m} {k} {n} at {i},{j}");
                }
            }
        }
    }
}
