//! Eigenvalues of a dense symmetric matrix by a two-stage tridiagonal reduction, the scheme of
//! LAPACK's `dsytrd_2stage` (Haidar, Ltaief and Dongarra's bulge chasing):
//!
//! 1. dense → band of half-width `b` by blocked Householder: each panel of `b` columns is
//!    QR-factored and the trailing matrix updated as `A − V·Wᵀ − W·Vᵀ`, all in matrix
//!    products (faer's, parallel), so the n³ part runs at the speed of the arithmetic instead
//!    of the memory bus (a one-stage reduction does half its work in matrix-vector products);
//! 2. band → tridiagonal by chasing bulges with reflectors of length `b`, O(n²·b) work on a
//!    band of (2b+1)·n values that stays in cache;
//! 3. eigenvalues of the tridiagonal by faer's QR algorithm.
//!
//! Both stages are orthogonal similarity transformations, so the method is backward stable
//! like the one-stage reduction: the eigenvalues it returns are those of A + E with
//! ‖E‖ = O(ε·‖A‖).
//!
//! Pure math on faer matrices; no I/O, and nothing from the rest of the crate.

use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{
    Accum, Mat, MatMut, Par,
    diag::Diag,
    dyn_stack::{MemBuffer, MemStack},
    linalg::{
        evd,
        matmul::{
            matmul as gemm,
            triangular::{BlockStructure, matmul as trmm},
        },
    },
};

/// The band's half-width: wide enough that the panel products run near peak (inner dimension
/// 2b in the trailing update), narrow enough that the bulge chasing (∝ b·n²) stays small.
pub const DEFAULT_BAND: usize = 48;

/// Reusable buffers of the reduction, kept between matrices of the same size.
pub struct Workspace {
    n: usize,
    b: usize,
    /// Householder vectors of one panel, explicitly (unit diagonal, zeros above): h × b.
    v: Mat<f64>,
    /// `A22·V`, then `X = A22·V·T`, then `W`: h × b.
    x: Mat<f64>,
    /// `[V | W]` and `[W | V]` for the rank-2b update.
    vw: Mat<f64>,
    wv: Mat<f64>,
    /// The panel, copied out contiguous: h × b.
    panel: Vec<f64>,
    t: Mat<f64>,
    small: Mat<f64>,
    small2: Mat<f64>,
    /// The band in LAPACK's lower band layout with room for the bulge: `(p, q)` at
    /// `q·ld + (p − q)`, `ld = 2b + 1`.
    band: Vec<f64>,
}

/// Bytes the reduction allocates for an n×n matrix with band half-width `b` (beyond the
/// matrix itself).
pub fn workspace_bytes(n: usize, b: usize) -> usize {
    let b = b.max(1);
    8 * (n * b * 6 + 3 * b * b + n * (2 * b + 1) + 4 * n)
}

impl Default for Workspace {
    fn default() -> Workspace {
        Workspace {
            n: 0,
            b: 0,
            v: Mat::new(),
            x: Mat::new(),
            vw: Mat::new(),
            wv: Mat::new(),
            panel: Vec::new(),
            t: Mat::new(),
            small: Mat::new(),
            small2: Mat::new(),
            band: Vec::new(),
        }
    }
}

impl Workspace {
    fn size_for(&mut self, n: usize, b: usize) {
        if (self.n, self.b) != (n, b) {
            // Free the old buffers before allocating the new ones.
            *self = Workspace::default();
            self.n = n;
            self.b = b;
            self.v = Mat::zeros(n, b);
            self.x = Mat::zeros(n, b);
            self.vw = Mat::zeros(n, 2 * b);
            self.wv = Mat::zeros(n, 2 * b);
            self.panel = vec![0.0; n * b];
            self.t = Mat::zeros(b, b);
            self.small = Mat::zeros(b, b);
            self.small2 = Mat::zeros(b, b);
            self.band = vec![0.0; n * (2 * b + 1)];
        }
    }
}

/// The tridiagonal (diagonal, subdiagonal) similar to the symmetric matrix whose lower
/// triangle is `a` (the upper triangle is never read; `a` is overwritten). `b` is the band
/// half-width of the first stage (clamped to `1..n`); `par` parallelises its matrix products.
pub fn tridiagonalize(
    mut a: MatMut<'_, f64>,
    b: usize,
    par: Par,
    ws: &mut Workspace,
) -> (Vec<f64>, Vec<f64>) {
    let n = a.nrows();
    assert_eq!(n, a.ncols(), "a square matrix");
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    let b = b.clamp(1, n.saturating_sub(1).max(1));
    ws.size_for(n, b);
    reduce_to_band(a.rb_mut(), b, par, ws);
    let ld = 2 * b + 1;
    let band = &mut ws.band;
    band.iter_mut().for_each(|x| *x = 0.0);
    for q in 0..n {
        for d in 0..=b.min(n - 1 - q) {
            band[q * ld + d] = a[(q + d, q)];
        }
    }
    chase_bulges(band, n, b);
    let diag = (0..n).map(|q| band[q * ld]).collect();
    let sub = (0..n.saturating_sub(1)).map(|q| band[q * ld + 1]).collect();
    (diag, sub)
}

/// Eigenvalues (ascending) of a symmetric tridiagonal matrix, by faer's QR algorithm.
pub fn tridiagonal_eigenvalues(diag: &[f64], sub: &[f64]) -> Option<Vec<f64>> {
    let n = diag.len();
    let mut d = Diag::<f64>::zeros(n);
    let mut e = Diag::<f64>::zeros(n);
    for i in 0..n {
        d[i] = diag[i];
        if i < sub.len() {
            e[i] = sub[i];
        }
    }
    let mut eig = Diag::<f64>::zeros(n);
    let mut mem = MemBuffer::new(faer::linalg::temp_mat_scratch::<f64>(n, 1).array(2));
    evd::tridiagonal_self_adjoint_evd(
        d.as_ref(),
        e.as_ref(),
        eig.as_mut(),
        None,
        Par::Seq,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .ok()?;
    let mut out: Vec<f64> = eig.column_vector().iter().copied().collect();
    out.sort_by(f64::total_cmp);
    Some(out)
}

/// Stage 1: the lower triangle of `a` becomes a symmetric band of half-width `b` (entries
/// more than `b` below the diagonal are left as garbage and never read again).
fn reduce_to_band(mut a: MatMut<'_, f64>, b: usize, par: Par, ws: &mut Workspace) {
    let n = a.nrows();
    let mut k = 0;
    // A panel with fewer than two rows below the band has nothing to annihilate.
    while k + b + 2 <= n {
        let r0 = k + b;
        let h = n - r0;
        let nb = b.min(h);
        factor_panel(a.rb_mut().submatrix_mut(r0, k, h, b), nb, ws);
        let v = ws.v.as_ref().submatrix(0, 0, h, nb);
        let t = ws.t.as_ref().submatrix(0, 0, nb, nb);
        let mut a22 = a.rb_mut().submatrix_mut(r0, r0, h, h);
        let mut x = ws.x.as_mut().submatrix_mut(0, 0, h, nb);
        // Y = A22·V from the lower triangle alone: tril(A22)·V + strict_tril(A22)ᵀ·V.
        trmm(
            x.rb_mut(),
            BlockStructure::Rectangular,
            Accum::Replace,
            a22.rb(),
            BlockStructure::TriangularLower,
            v,
            BlockStructure::Rectangular,
            1.0,
            par,
        );
        trmm(
            x.rb_mut(),
            BlockStructure::Rectangular,
            Accum::Add,
            a22.rb().transpose(),
            BlockStructure::StrictTriangularUpper,
            v,
            BlockStructure::Rectangular,
            1.0,
            par,
        );
        // X = Y·T, in the VW buffer's right half (as W), to be corrected below.
        let (mut vw_v, mut vw_w) = ws
            .vw
            .as_mut()
            .submatrix_mut(0, 0, h, 2 * nb)
            .split_at_col_mut(nb);
        vw_v.copy_from(v);
        trmm(
            vw_w.rb_mut(),
            BlockStructure::Rectangular,
            Accum::Replace,
            x.rb(),
            BlockStructure::Rectangular,
            t,
            BlockStructure::TriangularUpper,
            1.0,
            par,
        );
        // S = Tᵀ·(Vᵀ·X); W = X − ½·V·S.
        let mut m = ws.small.as_mut().submatrix_mut(0, 0, nb, nb);
        gemm(
            m.rb_mut(),
            Accum::Replace,
            v.transpose(),
            vw_w.rb(),
            1.0,
            par,
        );
        let mut s = ws.small2.as_mut().submatrix_mut(0, 0, nb, nb);
        trmm(
            s.rb_mut(),
            BlockStructure::Rectangular,
            Accum::Replace,
            t.transpose(),
            BlockStructure::TriangularLower,
            m.rb(),
            BlockStructure::Rectangular,
            1.0,
            par,
        );
        gemm(vw_w.rb_mut(), Accum::Add, v, s.rb(), -0.5, par);
        let (mut wv_w, mut wv_v) = ws
            .wv
            .as_mut()
            .submatrix_mut(0, 0, h, 2 * nb)
            .split_at_col_mut(nb);
        wv_w.copy_from(vw_w.rb());
        wv_v.copy_from(v);
        // A22 ← A22 − V·Wᵀ − W·Vᵀ, lower triangle only: one product of inner dimension 2b.
        trmm(
            a22.rb_mut(),
            BlockStructure::TriangularLower,
            Accum::Add,
            ws.vw.as_ref().submatrix(0, 0, h, 2 * nb),
            BlockStructure::Rectangular,
            ws.wv.as_ref().submatrix(0, 0, h, 2 * nb).transpose(),
            BlockStructure::Rectangular,
            -1.0,
            par,
        );
        k += b;
    }
}

/// Householder QR of the h×b panel `p` (nb = min(b, h) reflectors): R replaces the panel
/// (zeros below), the reflectors go to `ws.v` (explicit) and `ws.t` (compact WY, Q = I − V·T·Vᵀ,
/// LAPACK's forward column-wise `dlarft`).
fn factor_panel(mut p: MatMut<'_, f64>, nb: usize, ws: &mut Workspace) {
    let (h, b) = (p.nrows(), p.ncols());
    let buf = &mut ws.panel[..h * b];
    for c in 0..b {
        for r in 0..h {
            buf[c * h + r] = p[(r, c)];
        }
    }
    let mut taus = [0.0f64; 256];
    let mut taus_vec;
    let taus: &mut [f64] = if nb <= taus.len() {
        &mut taus[..nb]
    } else {
        taus_vec = vec![0.0; nb];
        &mut taus_vec
    };
    for j in 0..nb {
        let (head, rest) = buf.split_at_mut((j + 1) * h);
        let col = &mut head[j * h + j..];
        let (beta, tau) = make_reflector(col);
        taus[j] = tau;
        if tau != 0.0 {
            // col now holds [beta, v_tail]; apply H = I − τ·v·vᵀ (v₀ = 1) to the columns right of it.
            let v_tail = &col[1..];
            for c in 0..(b - j - 1) {
                let y = &mut rest[c * h + j..c * h + h];
                let d = y[0] + dot(v_tail, &y[1..]);
                let s = tau * d;
                y[0] -= s;
                axpy(-s, v_tail, &mut y[1..]);
            }
        }
        col[0] = beta;
    }
    // V explicit, R back into the panel.
    let mut v = ws.v.as_mut().submatrix_mut(0, 0, h, nb);
    for c in 0..nb {
        for r in 0..h {
            v[(r, c)] = if r < c {
                0.0
            } else if r == c {
                1.0
            } else {
                buf[c * h + r]
            };
        }
    }
    for c in 0..b {
        for r in 0..h {
            p[(r, c)] = if r <= c { buf[c * h + r] } else { 0.0 };
        }
    }
    // T: T[j,j] = τ_j, T[0..j, j] = −τ_j · T[0..j, 0..j] · (V[:, 0..j]ᵀ · v_j).
    let v = ws.v.as_ref().submatrix(0, 0, h, nb);
    let mut vtv = ws.small.as_mut().submatrix_mut(0, 0, nb, nb);
    gemm(
        vtv.rb_mut(),
        Accum::Replace,
        v.transpose(),
        v,
        1.0,
        Par::Seq,
    );
    let mut t = ws.t.as_mut().submatrix_mut(0, 0, nb, nb);
    for j in 0..nb {
        for i in 0..nb {
            t[(i, j)] = 0.0;
        }
        t[(j, j)] = taus[j];
        for i in 0..j {
            let mut s = 0.0;
            for l in i..j {
                s += t[(i, l)] * vtv[(l, j)];
            }
            t[(i, j)] = -taus[j] * s;
        }
    }
}

/// LAPACK's `dlarfg` on `x`: returns (β, τ) with (I − τ·v·vᵀ)·x = β·e₀, v = [1, x[1..]] after
/// the call (x[1..] is overwritten with v's tail; x[0] is left for the caller). τ = 0 when
/// there is nothing to annihilate.
fn make_reflector(x: &mut [f64]) -> (f64, f64) {
    let alpha = x[0];
    let tail = &mut x[1..];
    let xnorm = norm(tail);
    if xnorm == 0.0 {
        return (alpha, 0.0);
    }
    let beta = -alpha.signum() * alpha.hypot(xnorm);
    let tau = (beta - alpha) / beta;
    let scale = 1.0 / (alpha - beta);
    tail.iter_mut().for_each(|t| *t *= scale);
    (beta, tau)
}

/// Euclidean norm, scaled so that neither tiny nor huge entries under- or overflow.
fn norm(x: &[f64]) -> f64 {
    let m = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if m == 0.0 || !m.is_finite() {
        return m;
    }
    let inv = 1.0 / m;
    let mut acc = [0.0f64; 4];
    let mut chunks = x.chunks_exact(4);
    for c in &mut chunks {
        for k in 0..4 {
            let t = c[k] * inv;
            acc[k] += t * t;
        }
    }
    let mut s = acc.iter().sum::<f64>();
    for v in chunks.remainder() {
        let t = v * inv;
        s += t * t;
    }
    m * s.sqrt()
}

/// Dot product with independent partial sums, which the compiler can keep in vector lanes.
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

#[inline(always)]
fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// Stage 2: the band (half-width `b`, in `band` as laid out by [`tridiagonalize`]) becomes
/// tridiagonal. Sweep i annihilates column i below its subdiagonal with one reflector; the
/// bulge that reflector creates below the band is pushed down and off the matrix by a chain
/// of reflectors of length ≤ b, each killing only the first column of its bulge (the rest is
/// taken by the following sweeps), as in LAPACK's `dsb2st_kernels`.
fn chase_bulges(band: &mut [f64], n: usize, b: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features are present on this CPU.
            unsafe { chase_bulges_avx2(band, n, b) };
            return;
        }
    }
    chase_bulges_generic(band, n, b);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn chase_bulges_avx2(band: &mut [f64], n: usize, b: usize) {
    chase_bulges_generic(band, n, b);
}

#[inline(always)]
fn chase_bulges_generic(band: &mut [f64], n: usize, b: usize) {
    if b < 2 || n < 3 {
        return;
    }
    let ld = 2 * b + 1;
    let mut v = vec![0.0f64; b];
    let mut v2 = vec![0.0f64; b];
    let mut y = vec![0.0f64; b];
    for i in 0..n - 2 {
        let mut st = i + 1;
        let mut ed = (i + b).min(n - 1);
        let lm = ed - st + 1;
        // Column i, rows st..=ed: band offsets 1..=lm.
        let col = &mut band[i * ld + 1..i * ld + 1 + lm];
        let (beta, mut tau) = make_reflector(col);
        v[0] = 1.0;
        v[1..lm].copy_from_slice(&col[1..]);
        col[0] = beta;
        col[1..].iter_mut().for_each(|x| *x = 0.0);
        if tau != 0.0 {
            two_sided(band, ld, st, &v[..lm], tau, &mut y);
        }
        loop {
            let j1 = ed + 1;
            if j1 >= n {
                break;
            }
            let j2 = (ed + b).min(n - 1);
            let (lm, ln) = (j2 - j1 + 1, ed - st + 1);
            if tau != 0.0 {
                right_apply(band, ld, j1, lm, st, &v[..ln], tau, &mut y);
            }
            // The bulge's first column: column st, rows j1..=j2.
            let off = st * ld + (j1 - st);
            let col = &mut band[off..off + lm];
            let (beta, tau2) = make_reflector(col);
            v2[0] = 1.0;
            v2[1..lm].copy_from_slice(&col[1..]);
            col[0] = beta;
            col[1..].iter_mut().for_each(|x| *x = 0.0);
            if tau2 != 0.0 {
                left_apply(band, ld, j1, &v2[..lm], st + 1, ln - 1, tau2);
                two_sided(band, ld, j1, &v2[..lm], tau2, &mut y);
            }
            std::mem::swap(&mut v, &mut v2);
            tau = tau2;
            st = j1;
            ed = j2;
        }
    }
}

/// D ← H·D·H for the symmetric diagonal block D = A[st.., st..] of size v.len(), H = I − τ·v·vᵀ
/// (LAPACK's `dlarfy`): y = τ·D·v, y −= ½·τ·(yᵀv)·v, D −= v·yᵀ + y·vᵀ.
#[inline(always)]
fn two_sided(band: &mut [f64], ld: usize, st: usize, v: &[f64], tau: f64, y: &mut [f64]) {
    let len = v.len();
    let y = &mut y[..len];
    y.iter_mut().for_each(|x| *x = 0.0);
    for q in 0..len {
        let col = &band[(st + q) * ld..(st + q) * ld + (len - q)];
        // Column q of D from the diagonal down: contributes D[q.., q]·v[q] to y[q..], and its
        // mirror (the upper triangle) D[q+1.., q]ᵀ·v[q+1..] to y[q].
        let vq = v[q];
        y[q] += col[0] * vq + dot(&col[1..], &v[q + 1..]);
        axpy(vq, &col[1..], &mut y[q + 1..]);
    }
    y.iter_mut().for_each(|x| *x *= tau);
    let alpha = -0.5 * tau * dot(y, v);
    axpy(alpha, v, y);
    for q in 0..len {
        let col = &mut band[(st + q) * ld..(st + q) * ld + (len - q)];
        let (vq, yq) = (v[q], y[q]);
        for ((c, vi), yi) in col.iter_mut().zip(&v[q..]).zip(&y[q..]) {
            *c -= vi * yq + yi * vq;
        }
    }
}

/// B ← B·H for B = A[j1..j1+lm, st..st+v.len()] (below the diagonal block, so every column's
/// rows are contiguous in the band).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn right_apply(
    band: &mut [f64],
    ld: usize,
    j1: usize,
    lm: usize,
    st: usize,
    v: &[f64],
    tau: f64,
    y: &mut [f64],
) {
    let y = &mut y[..lm];
    y.iter_mut().for_each(|x| *x = 0.0);
    for (c, &vc) in v.iter().enumerate() {
        let q = st + c;
        let off = q * ld + (j1 - q);
        axpy(vc, &band[off..off + lm], y);
    }
    for (c, &vc) in v.iter().enumerate() {
        let q = st + c;
        let off = q * ld + (j1 - q);
        axpy(-tau * vc, y, &mut band[off..off + lm]);
    }
}

/// B ← H·B for B = A[j1..j1+v.len(), c0..c0+ncols].
#[inline(always)]
fn left_apply(
    band: &mut [f64],
    ld: usize,
    j1: usize,
    v: &[f64],
    c0: usize,
    ncols: usize,
    tau: f64,
) {
    let lm = v.len();
    for q in c0..c0 + ncols {
        let off = q * ld + (j1 - q);
        let col = &mut band[off..off + lm];
        let s = tau * dot(v, col);
        axpy(-s, v, col);
    }
}
