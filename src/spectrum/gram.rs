//! Singular values through the Gram matrix: for an n×m matrix W with n ≤ m, the eigenvalues of
//! the n×n matrix W·Wᵀ are the squared singular values. A symmetric rank-k product and a
//! tridiagonal eigensolver are 2–3× cheaper than faer's SVD on the shapes of LLM weights, at
//! the price of resolving small singular values less well: an eigenvalue carries an absolute
//! error of about ε·λ_max, so a singular value s is only known to about ε·s_max²/s.
//! [`GramSpectrum::resolves`] says when that matters (see `snr::matrix_snr_with`); steep
//! spectra the plain route cannot guarantee take the deflated route ([`crate::spectrum::deflate`]).
//!
//! The n×n eigenvalue problem goes through a two-stage tridiagonal reduction
//! ([`crate::spectrum::tridiag`]) from [`TWO_STAGE_FROM`] on, faer's one-stage reduction below.
//!
//! Pure math: no I/O, no threads of our own.

use faer::{
    Accum, Mat, MatRef, Par,
    diag::Diag,
    dyn_stack::{MemBuffer, MemStack, StackReq},
    linalg::{
        evd::{self, tridiag},
        matmul::triangular::{BlockStructure, matmul},
    },
};

use super::error::SnrError;
use super::tridiag as two_stage;

/// From this size of the Gram matrix on, the two-stage reduction ([`crate::spectrum::tridiag`]) replaces
/// faer's one-stage `tridiag_in_place`. Up to n = 1024 the n×n matrix (8 MB) stays in cache,
/// the one-stage reduction is not memory-bound and is as fast or faster (measured on one
/// thread: equal at 1024, and the v_proj shapes 1024×4096 and 1024×7168 lost 0–40 % in the
/// Gram route with the two-stage); from 1536 on it falls out of cache and the two-stage wins
/// (1.6–2× at 1536, 2.7–3.4× at 2048, 3–3.7× at 4096; `benches/scan_speed.rs`).
pub const TWO_STAGE_FROM: usize = 1280;

/// A worker's reusable Gram buffers (the n×n product and the reduction's buffers), kept
/// between matrices of the same smaller dimension.
#[derive(Default)]
pub struct GramWorkspace {
    buffers: Option<Buffers>,
    /// `Some(n0)`: use the two-stage reduction from n0 on instead of [`TWO_STAGE_FROM`].
    two_stage_from: Option<usize>,
}

impl GramWorkspace {
    /// A workspace that takes the two-stage reduction from `n0` on (`usize::MAX`: never,
    /// `0`: always), for benchmarks and tests comparing the two.
    pub fn with_two_stage_from(n0: usize) -> GramWorkspace {
        GramWorkspace {
            buffers: None,
            two_stage_from: Some(n0),
        }
    }

    fn two_stage(&self, n: usize) -> bool {
        n >= self.two_stage_from.unwrap_or(TWO_STAGE_FROM)
    }
}

struct Buffers {
    /// The dimension and parallelism degree the buffers were sized for.
    n: (usize, usize),
    gram: Mat<f64>,
    reduction: Reduction,
}

enum Reduction {
    OneStage {
        householder: Mat<f64>,
        mem: MemBuffer,
    },
    TwoStage(Box<two_stage::Workspace>),
}

/// Bytes the Gram route allocates for a matrix whose smaller side is `n`.
pub fn workspace_bytes(n: usize, par: Par) -> usize {
    let reduction = if n >= TWO_STAGE_FROM {
        two_stage::workspace_bytes(n, two_stage::DEFAULT_BAND)
    } else {
        let bs = faer::linalg::qr::no_pivoting::factor::recommended_block_size::<f64>(n, n);
        8 * bs * n.saturating_sub(1) + scratch(n, par).unaligned_bytes_required()
    };
    // The n×n matrix, and the tridiagonal solver's copies (diagonal, subdiagonal, eigenvalues).
    8 * (n * n + 6 * n) + reduction
}

fn scratch(n: usize, par: Par) -> StackReq {
    StackReq::any_of(&[
        tridiag::tridiag_in_place_scratch::<f64>(n, par, Default::default()),
        // The tridiagonal solver's own diagonal and off-diagonal copies.
        faer::linalg::temp_mat_scratch::<f64>(n, 1).array(2),
    ])
}

impl GramWorkspace {
    fn for_dim(&mut self, n: usize, par: Par) -> &mut Buffers {
        if self.buffers.as_ref().map(|b| b.n) != Some((n, par.degree())) {
            // Release the old n×n before allocating the new one: two large Gram matrices at
            // once would double this worker's peak.
            self.buffers = None;
            let reduction = if self.two_stage(n) {
                Reduction::TwoStage(Box::default())
            } else {
                let bs = faer::linalg::qr::no_pivoting::factor::recommended_block_size::<f64>(n, n);
                Reduction::OneStage {
                    householder: Mat::zeros(bs, n.saturating_sub(1)),
                    mem: MemBuffer::new(scratch(n, par)),
                }
            };
            self.buffers = Some(Buffers {
                n: (n, par.degree()),
                gram: Mat::zeros(n, n),
                reduction,
            });
        }
        self.buffers.as_mut().expect("just set")
    }
}

/// The singular values the Gram route found, largest first, with what it cannot resolve.
#[derive(Debug, Clone, PartialEq)]
pub struct GramSpectrum {
    /// `sqrt(max(λ, 0))`, largest first.
    pub singular_values: Vec<f64>,
    /// Bound on the absolute error of every eigenvalue λ = s² (see [`eigenvalue_error`]); on
    /// the deflated route ([`crate::spectrum::deflate`]), of the deflated Gram matrix's.
    pub eigenvalue_error: f64,
    /// The interval each singular value certainly lies in, when the route worked them out
    /// one by one (the deflated route); `None`: from `eigenvalue_error` ([`Self::interval`]).
    pub intervals: Option<Vec<(f64, f64)>>,
}

impl GramSpectrum {
    /// Is `s` (one of the values) known to a relative `rel`? Its square is known to
    /// ±eigenvalue_error, so s to about eigenvalue_error / (2 s).
    pub fn resolves(&self, s: f64, rel: f64) -> bool {
        s > 0.0 && self.eigenvalue_error <= 2.0 * rel * s * s
    }

    /// The interval `s` certainly lies in, given the eigenvalue error.
    pub(crate) fn interval(&self, s: f64) -> (f64, f64) {
        let l = s * s;
        (
            (l - self.eigenvalue_error).max(0.0).sqrt(),
            (l + self.eigenvalue_error).sqrt(),
        )
    }

    /// The interval of every value, in the order of `singular_values`.
    pub fn intervals(&self) -> Vec<(f64, f64)> {
        match &self.intervals {
            Some(v) => v.clone(),
            None => self
                .singular_values
                .iter()
                .map(|&s| self.interval(s))
                .collect(),
        }
    }
}

/// The absolute error allowed for every eigenvalue of the Gram route for an n×m matrix
/// (n ≤ m), from its computed eigenvalues `lambdas` (any order).
///
/// The error of an eigenvalue λᵢ is, to first order, uᵢᵀ·ΔG·uᵢ for the backward error ΔG of
/// the whole computation, and ΔG has two parts of different size:
/// - forming G = W·Wᵀ: entry (j, k) is a sum of m products, whose rounding is about
///   ε·√m·G_jj on the diagonal (positive terms) and ε·√(G_jj·G_kk) off it (terms of either
///   sign). Seen from a unit vector that is about ε·(1 + √(m/n))·τ, τ = trace(G)/n;
/// - the orthogonal reduction and the tridiagonal solver: a backward error of about
///   ε·√n·‖G‖_F in Frobenius norm, about ε·φ, φ = ‖G‖_F/√n, seen from a unit vector.
///
/// Both are statistical sizes, not worst cases: a worst-case bound (Weyl, ε·m·‖G‖) exceeds
/// the measured errors by 10⁴–10⁶ on the heavy-tailed spectra of real weights and would send
/// every such matrix to the SVD. The factors below (100 and 300, plus 8·ε·λ_max for the
/// largest eigenvalues' own rounding) keep the estimate at least 4.7× above every difference
/// measured against the SVD (on Gaussian matrices, where all three terms are of the size of
/// λ_max and the SVD's own error is part of the difference) and 240× or more above it on the
/// values below s_max/100, which carry the SNR's error (`tests/gram.rs`: square, wide, tall,
/// power-law, BF16, six-decade, spiked and row-scaled matrices, both reductions).
pub fn eigenvalue_error(n: usize, m: usize, lambdas: &[f64]) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let nf = n as f64;
    let (mut trace, mut squares, mut lambda_max) = (0.0f64, 0.0f64, 0.0f64);
    for &l in lambdas {
        let l = l.max(0.0);
        trace += l;
        squares += l * l;
        lambda_max = lambda_max.max(l);
    }
    let tau = trace / nf;
    let phi = (squares / nf).sqrt();
    let formation = 100.0 * (1.0 + (m as f64 / nf).sqrt()) * tau;
    let reduction = 300.0 * phi;
    f64::EPSILON * (formation + reduction + 8.0 * lambda_max)
}

/// Singular values of a row-major `rows x cols` matrix via its Gram matrix. Input checks are
/// the caller's (`snr::check_matrix`).
pub fn gram_singular_values(
    data: &[f64],
    rows: usize,
    cols: usize,
    par: Par,
    workspace: &mut GramWorkspace,
) -> Result<GramSpectrum, SnrError> {
    let a = MatRef::from_row_major_slice(data, rows, cols);
    // The smaller side: W·Wᵀ for a wide matrix, Wᵀ·W for a tall one.
    let (lhs, n, m) = smaller_side(a);
    let lambdas = gram_eigenvalues(workspace, n, par, |gram| {
        // Only the lower triangle: it is all the tridiagonal reduction reads, and half the flops.
        matmul(
            gram,
            BlockStructure::TriangularLower,
            Accum::Replace,
            lhs,
            BlockStructure::Rectangular,
            lhs.transpose(),
            BlockStructure::Rectangular,
            1.0,
            par,
        );
    });
    // W·Wᵀ can overflow for entries near f64's limit (squares, sums of m of them), and the
    // tridiagonal solver can fail to converge: then the SVD, which scales, has to decide.
    let Some(lambdas) = lambdas else {
        return Ok(GramSpectrum {
            singular_values: vec![f64::NAN; n],
            eigenvalue_error: f64::INFINITY,
            intervals: None,
        });
    };
    Ok(GramSpectrum {
        // Rounding can push an eigenvalue of a (numerically) singular Gram matrix below zero.
        singular_values: lambdas.iter().map(|&l| l.max(0.0).sqrt()).collect(),
        eigenvalue_error: eigenvalue_error(n, m, &lambdas),
        intervals: None,
    })
}

/// `(W, n, m)` for a wide matrix, `(Wᵀ, n, m)` for a tall one: the n×m side (n ≤ m) whose
/// n×n Gram matrix the route reduces.
pub(crate) fn smaller_side(a: MatRef<'_, f64>) -> (MatRef<'_, f64>, usize, usize) {
    if a.nrows() <= a.ncols() {
        (a, a.nrows(), a.ncols())
    } else {
        (a.transpose(), a.ncols(), a.nrows())
    }
}

/// The eigenvalues, largest first, of the symmetric n×n matrix whose lower triangle `fill`
/// writes into the workspace's buffer; `None` when they cannot be trusted at all (a
/// non-finite diagonal, e.g. an overflowing product, or a solver that did not converge).
pub(crate) fn gram_eigenvalues(
    workspace: &mut GramWorkspace,
    n: usize,
    par: Par,
    fill: impl FnOnce(faer::MatMut<'_, f64>),
) -> Option<Vec<f64>> {
    let b = workspace.for_dim(n, par);
    fill(b.gram.as_mut());
    if !(0..n).all(|j| b.gram[(j, j)].is_finite()) {
        return None;
    }
    let lambdas = match &mut b.reduction {
        Reduction::TwoStage(ws) => {
            let (diag, sub) =
                two_stage::tridiagonalize(b.gram.as_mut(), two_stage::DEFAULT_BAND, par, ws);
            two_stage::tridiagonal_eigenvalues(&diag, &sub)
        }
        Reduction::OneStage { householder, mem } => {
            tridiag::tridiag_in_place(
                b.gram.as_mut(),
                householder.as_mut(),
                par,
                MemStack::new(mem),
                Default::default(),
            );
            let mut diag = Diag::<f64>::zeros(n);
            let mut sub = Diag::<f64>::zeros(n);
            for i in 0..n {
                diag[i] = b.gram[(i, i)];
                if i + 1 < n {
                    sub[i] = b.gram[(i + 1, i)];
                }
            }
            let mut eig = Diag::<f64>::zeros(n);
            evd::tridiagonal_self_adjoint_evd(
                diag.as_ref(),
                sub.as_ref(),
                eig.as_mut(),
                None,
                par,
                MemStack::new(mem),
                Default::default(),
            )
            .ok()
            .map(|()| eig.column_vector().iter().copied().collect::<Vec<f64>>())
        }
    };
    let mut lambdas = lambdas?;
    if !lambdas.iter().all(|l| l.is_finite()) {
        return None;
    }
    // Largest first, as the SVD returns them.
    lambdas.sort_by(|x, y| y.total_cmp(x));
    Some(lambdas)
}
