//! The signal-to-noise ratio of one weight matrix, exactly as laserRMT's `laserQlora.ipynb`
//! computes it (and `shared/tools/snr_oracle.py` restates it with numpy).
//!
//! Pure math: no I/O, no threads. Callers hand in a row-major f64 buffer.

use faer::{
    MatRef, Par,
    diag::Diag,
    dyn_stack::{MemBuffer, MemStack},
    linalg::svd::{ComputeSvdVectors, svd, svd_scratch},
};

pub use super::error::SnrError;
use crate::spectrum::{
    deflate,
    gram::{self, GramSpectrum, GramWorkspace},
};

/// Everything the method derives from one matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct SnrStats {
    /// `raw_snr / max_singular_value`: what laserRMT and Spectrum store as "snr".
    pub snr_ratio: f64,
    /// signal / noise, `+inf` when the noise sum is zero.
    pub raw_snr: f64,
    pub max_singular_value: f64,
    /// IQR estimate of the noise level: `(q75 - q25) / 1.349`.
    pub sigma: f64,
    /// Marchenko–Pastur edge: `sigma * (1 + sqrt(beta))`.
    pub threshold: f64,
    pub n_signal: usize,
    pub n_noise: usize,
    pub rows: usize,
    pub cols: usize,
    /// Largest first.
    pub singular_values: Vec<f64>,
}

impl SnrStats {
    /// The seed's pruning criterion.
    pub fn is_infinite(&self) -> bool {
        self.snr_ratio.is_infinite()
    }
}

/// Quantile with linear interpolation over an ascending slice, written the way numpy's
/// default method evaluates it (virtual index, then a two-sided lerp) so the results agree to
/// the last bit rather than merely within rounding.
pub(crate) fn quantile_linear(sorted_asc: &[f64], q: f64) -> f64 {
    let n = sorted_asc.len();
    assert!(n > 0, "quantile of an empty slice");
    // numpy: virtual_index = n*q + (alpha + q*(1 - alpha - beta)) - 1 with alpha = beta = 1.
    let (alpha, beta) = (1.0f64, 1.0f64);
    let virtual_index = (n as f64) * q + (alpha + q * (1.0 - alpha - beta)) - 1.0;
    let last = (n - 1) as f64;
    let virtual_index = virtual_index.clamp(0.0, last);
    let previous = virtual_index.floor();
    let gamma = virtual_index - previous;
    let lo = sorted_asc[previous as usize];
    let hi = sorted_asc[((previous as usize) + 1).min(n - 1)];
    let diff = hi - lo;
    if gamma >= 0.5 {
        hi - diff * (1.0 - gamma)
    } else {
        lo + diff * gamma
    }
}

/// `1 + sqrt(beta)`, beta = min/max of the sides: the Marchenko–Pastur edge in units of sigma.
fn mp_edge(rows: usize, cols: usize) -> f64 {
    let beta = if rows < cols {
        rows as f64 / cols as f64
    } else {
        cols as f64 / rows as f64
    };
    // The notebook writes sqrt((1 + sqrt(beta))^2); keeping its exact form keeps the last bit.
    ((1.0 + beta.sqrt()).powi(2)).sqrt()
}

/// The statistics from singular values already computed (largest first) for an `rows x cols`
/// matrix.
///
/// Degenerate cases follow the oracle rather than special-casing them:
/// - all singular values zero (an all-zero matrix): sigma = threshold = 0, nothing is signal
///   and the noise sum is 0, so `raw_snr = +inf`, but `snr_ratio = NaN` because it divides by
///   `S[0] = 0`. Such a layer is *not* counted as infinite.
/// - a single singular value (a 1xm or nx1 matrix): q25 = q75, sigma = 0, so every non-zero
///   value is signal and the SNR is infinite by construction.
pub fn stats_from_singular_values(singular_values: Vec<f64>, rows: usize, cols: usize) -> SnrStats {
    let mut ascending = singular_values.clone();
    ascending.sort_by(f64::total_cmp);
    let q75 = quantile_linear(&ascending, 0.75);
    let q25 = quantile_linear(&ascending, 0.25);
    let sigma = (q75 - q25) / 1.349;
    let threshold = sigma * mp_edge(rows, cols);
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    let (mut n_signal, mut n_noise) = (0usize, 0usize);
    for &s in &singular_values {
        if s > threshold {
            signal += s;
            n_signal += 1;
        } else {
            noise += s;
            n_noise += 1;
        }
    }
    let raw_snr = if noise != 0.0 {
        signal / noise
    } else {
        f64::INFINITY
    };
    let max_singular_value = singular_values.first().copied().unwrap_or(0.0);
    let snr_ratio = if max_singular_value != 0.0 {
        raw_snr / max_singular_value
    } else {
        f64::NAN
    };
    SnrStats {
        snr_ratio,
        raw_snr,
        max_singular_value,
        sigma,
        threshold,
        n_signal,
        n_noise,
        rows,
        cols,
        singular_values,
    }
}

/// Reusable SVD workspace, so a worker scanning many same-shaped matrices allocates once.
#[derive(Default)]
pub struct SvdWorkspace {
    /// Shape and parallelism degree the scratch was sized for, and the scratch.
    mem: Option<((usize, usize, usize), MemBuffer)>,
    gram: GramWorkspace,
}

/// How the singular values are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    /// faer's SVD: the reference, what the product promises (matches numpy to 1e-9).
    #[default]
    Svd,
    /// Eigenvalues of the Gram matrix W·Wᵀ: 2–3× faster on large matrices. A matrix whose SNR
    /// the Gram route cannot pin down (see [`gram_is_conclusive`]) is recomputed by SVD.
    Gram,
}

impl Method {
    /// As written in scan files and on the command line: `svd`, `gram`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Svd => "svd",
            Method::Gram => "gram",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "svd" => Some(Method::Svd),
            "gram" => Some(Method::Gram),
            _ => None,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        Method::parse(s).ok_or_else(|| format!("{s:?}: the method is `svd` or `gram`"))
    }
}

/// Bytes one worker may hold for a `rows x cols` matrix by `method`: the matrix in f64 and the
/// method's workspace (the SVD's scratch; the Gram matrix, its Householder factors and
/// scratch, or the SVD's scratch for a matrix the Gram route leaves to the SVD). A scan holds
/// at most this for its largest matrix, once per thread.
pub fn memory_bytes(rows: usize, cols: usize, method: Method, par: Par) -> usize {
    let svd = svd_scratch::<f64>(
        rows,
        cols,
        ComputeSvdVectors::No,
        ComputeSvdVectors::No,
        par,
        Default::default(),
    )
    .unaligned_bytes_required();
    let workspace = match method {
        Method::Svd => svd,
        // Never both at once (see `matrix_snr_with`).
        Method::Gram => svd.max(
            gram::workspace_bytes(rows.min(cols), par)
                + deflate::workspace_bytes(rows.min(cols), rows.max(cols)),
        ),
    };
    8 * rows * cols + workspace
}

/// Refuses what no method can take: empty, wrongly sized, or non-finite input.
pub(crate) fn check_matrix(data: &[f64], rows: usize, cols: usize) -> Result<(), SnrError> {
    if rows == 0 || cols == 0 {
        return Err(SnrError::Empty { rows, cols });
    }
    if data.len() != rows * cols {
        return Err(SnrError::ShapeMismatch {
            rows,
            cols,
            len: data.len(),
        });
    }
    let non_finite = data.iter().filter(|v| !v.is_finite()).count();
    if non_finite > 0 {
        return Err(SnrError::NonFinite { count: non_finite });
    }
    Ok(())
}

/// Singular values, largest first, of a row-major `rows x cols` matrix.
pub fn singular_values(
    data: &[f64],
    rows: usize,
    cols: usize,
    par: Par,
    workspace: &mut SvdWorkspace,
) -> Result<Vec<f64>, SnrError> {
    check_matrix(data, rows, cols)?;
    // A row-major slice is a zero-copy faer view; its transpose has the same singular values.
    let a = MatRef::from_row_major_slice(data, rows, cols);
    let need = (rows, cols, par.degree());
    if workspace.mem.as_ref().map(|(k, _)| *k) != Some(need) {
        // Free the old scratch first: holding two at once would double the worker's peak.
        workspace.mem = None;
        let req = svd_scratch::<f64>(
            rows,
            cols,
            ComputeSvdVectors::No,
            ComputeSvdVectors::No,
            par,
            Default::default(),
        );
        workspace.mem = Some((need, MemBuffer::new(req)));
    }
    let (_, mem) = workspace.mem.as_mut().expect("workspace just set");
    let mut s = Diag::<f64>::zeros(rows.min(cols));
    svd(
        a,
        s.as_mut(),
        None,
        None,
        par,
        MemStack::new(mem),
        Default::default(),
    )
    .map_err(|_| SnrError::NoConvergence)?;
    Ok(s.column_vector().iter().copied().collect())
}

/// SVD + statistics in one call.
pub fn matrix_snr(
    data: &[f64],
    rows: usize,
    cols: usize,
    par: Par,
    workspace: &mut SvdWorkspace,
) -> Result<SnrStats, SnrError> {
    let s = singular_values(data, rows, cols, par, workspace)?;
    Ok(stats_from_singular_values(s, rows, cols))
}

/// The statistics by `method`, and the method that produced them: `Gram` falls back to the
/// SVD for a matrix whose result it cannot guarantee (so the answer is the SVD's there).
pub fn matrix_snr_with(
    data: &[f64],
    rows: usize,
    cols: usize,
    method: Method,
    par: Par,
    workspace: &mut SvdWorkspace,
) -> Result<(SnrStats, Method), SnrError> {
    if method == Method::Gram {
        check_matrix(data, rows, cols)?;
        let g = gram::gram_singular_values(data, rows, cols, par, &mut workspace.gram)?;
        let stats = stats_from_singular_values(g.singular_values.clone(), rows, cols);
        if gram_is_conclusive(&g, &stats, GRAM_TOLERANCE) {
            return Ok((stats, Method::Gram));
        }
        // A steep spectrum (four decades and more) whose small values drown in the rounding
        // of W·Wᵀ: deflate its largest directions and try again, still far cheaper than the SVD.
        // Deflating brings the rounding down by about λ_{k+1}/λ_max: aim for 20× inside the
        // tolerance (or 10⁻³ when the plain route could not even say how far it was).
        let target =
            gram_uncertainty(&g, &stats).map_or(1e-3, |u| (0.05 * GRAM_TOLERANCE / u).min(1e-2));
        if let Some(d) = deflate::deflated_singular_values(
            data,
            rows,
            cols,
            &g,
            target,
            par,
            &mut workspace.gram,
        ) {
            let stats = stats_from_singular_values(d.singular_values.clone(), rows, cols);
            if gram_is_conclusive(&d, &stats, GRAM_TOLERANCE) {
                return Ok((stats, Method::Gram));
            }
        }
        // The SVD's scratch comes on top of the matrix: free the Gram buffers first, so a
        // worker never holds both (they are reallocated for the next matrix, in milliseconds).
        workspace.gram = GramWorkspace::default();
    }
    Ok((matrix_snr(data, rows, cols, par, workspace)?, Method::Svd))
}

/// The relative error on `snr_ratio` the Gram route must be able to guarantee (in the worst case
/// of [`gram::eigenvalue_error`]), or the SVD recomputes the matrix.
///
/// 1e-8, not looser: the bound is a worst case (every eigenvalue off by the full estimate, all
/// in the same direction), and the differences measured against the SVD sit 10⁴–10⁵ below it.
/// A bound of 1e-8 therefore keeps the measured agreement within the README's 1e-12; spectra
/// whose plain bound exceeds it (about 3.5 decades and wider) really do lose more than 1e-12 to
/// the rounding of W·Wᵀ (measured up to 1.3e-11 at four decades): they take the deflated route
/// ([`deflate`]), whose bound is held to the same tolerance, or else the SVD.
pub const GRAM_TOLERANCE: f64 = 1e-8;

/// Can the Gram spectrum's statistics be trusted to a relative `tolerance`? See
/// [`gram_uncertainty`].
pub fn gram_is_conclusive(g: &GramSpectrum, stats: &SnrStats, tolerance: f64) -> bool {
    gram_uncertainty(g, stats).is_some_and(|u| u <= tolerance)
}

/// How far `snr_ratio` could be from the Gram route's value, relative, in the worst case of
/// its error estimate ([`gram::eigenvalue_error`]): every singular value is only known within
/// an interval (its square to ± that error). `None` when those intervals could move a value
/// across the threshold (another signal/noise split) or make the noise sum zero (an infinite
/// SNR the SVD might not give, or the reverse): then only the SVD can decide. 0 for an
/// infinite SNR that no value in the intervals can make finite.
pub fn gram_uncertainty(g: &GramSpectrum, stats: &SnrStats) -> Option<f64> {
    let s = &g.singular_values;
    if s.is_empty() || !g.eigenvalue_error.is_finite() {
        return None;
    }
    if g.eigenvalue_error == 0.0 && g.intervals.is_none() {
        // An all-zero matrix: the Gram matrix is exactly zero, and so is every value.
        return Some(0.0);
    }
    let bounds = g.intervals();
    if bounds.len() != s.len() || bounds.iter().any(|&(a, b)| !(a <= b && b.is_finite())) {
        return None;
    }
    let ascending = |pick: fn(&(f64, f64)) -> f64| -> Vec<f64> {
        let mut v: Vec<f64> = bounds.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (lo, hi) = (ascending(|b| b.0), ascending(|b| b.1));
    // Quantiles are monotone in every value, so the bounds' quantiles bound the quantile.
    let sigma_lo = (quantile_linear(&lo, 0.75) - quantile_linear(&hi, 0.25)).max(0.0) / 1.349;
    let sigma_hi = (quantile_linear(&hi, 0.75) - quantile_linear(&lo, 0.25)).max(0.0) / 1.349;
    let edge = mp_edge(stats.rows, stats.cols);
    let (t_lo, t_hi) = (sigma_lo * edge, sigma_hi * edge);
    let (mut signal, mut noise) = ((0.0f64, 0.0f64), (0.0f64, 0.0f64));
    for &(a, b) in &bounds {
        if a > t_hi {
            signal = (signal.0 + a, signal.1 + b);
        } else if b <= t_lo {
            noise = (noise.0 + a, noise.1 + b);
        } else {
            // Could fall on either side of the threshold.
            return None;
        }
    }
    if stats.n_noise == 0 {
        // No value can be noise: infinite for any values in the intervals.
        return Some(0.0);
    }
    if noise.0 == 0.0 {
        // The noise sum could be zero: infinite or not, only the SVD can say.
        return None;
    }
    let (smax_lo, smax_hi) = bounds[0];
    let ratio_lo = signal.0 / noise.1 / smax_hi;
    let ratio_hi = signal.1 / noise.0 / smax_lo;
    Some((ratio_hi - ratio_lo) / stats.snr_ratio.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_hand_computation() {
        // Hand: n = 5, q = 0.25 -> index 1.0 -> 2.0; q = 0.75 -> index 3.0 -> 4.0.
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_linear(&v, 0.25), 2.0);
        assert_eq!(quantile_linear(&v, 0.75), 4.0);
        // n = 4: q = 0.25 -> index 0.75 -> 1 + 0.75*(2-1) = 1.75; q = 0.75 -> index 2.25 -> 3.25.
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((quantile_linear(&v, 0.25) - 1.75).abs() < 1e-15);
        assert!((quantile_linear(&v, 0.75) - 3.25).abs() < 1e-15);
        // n = 2: q = 0.75 -> index 0.75 -> 10 + 0.75*10 = 17.5.
        assert!((quantile_linear(&[10.0, 20.0], 0.75) - 17.5).abs() < 1e-12);
        assert_eq!(quantile_linear(&[7.0], 0.25), 7.0);
    }

    #[test]
    fn finite_case_by_hand() {
        // S = [10, 4, 3, 2, 1] for a 5x5 matrix: q25 = 2, q75 = 4, sigma = 2/1.349,
        // beta = 1, threshold = 2*sigma = 2.9651...; signal = 10 + 4 + 3 = 17, noise = 3.
        let st = stats_from_singular_values(vec![10.0, 4.0, 3.0, 2.0, 1.0], 5, 5);
        let sigma = 2.0 / 1.349;
        assert!((st.sigma - sigma).abs() < 1e-15);
        assert!((st.threshold - 2.0 * sigma).abs() < 1e-14);
        assert_eq!((st.n_signal, st.n_noise), (3, 2));
        assert!((st.raw_snr - 17.0 / 3.0).abs() < 1e-14);
        assert!((st.snr_ratio - 17.0 / 30.0).abs() < 1e-14);
        assert!(!st.is_infinite());
    }

    #[test]
    fn clustered_spectrum_is_infinite() {
        // S = [1.5, 1.4, 1.3, 1.2] for 4x8: q25 = 1.275, q75 = 1.425, sigma = 0.15/1.349,
        // threshold = sigma*(1+sqrt(0.5)) ~= 0.19 < 1.2: no noise at all.
        let st = stats_from_singular_values(vec![1.5, 1.4, 1.3, 1.2], 4, 8);
        assert_eq!(st.n_noise, 0);
        assert_eq!(st.raw_snr, f64::INFINITY);
        assert_eq!(st.snr_ratio, f64::INFINITY);
        assert!(st.is_infinite());
        let expect = 0.15 / 1.349 * (1.0 + 0.5f64.sqrt());
        assert!((st.threshold - expect).abs() < 1e-12);
    }

    #[test]
    fn spectrum_inside_the_bulk_is_all_noise() {
        // S = [2, 2, 0, 0, 0]: q25 = 0, q75 = 2, sigma = 2/1.349, threshold = 2.965 > 2.
        let st = stats_from_singular_values(vec![2.0, 2.0, 0.0, 0.0, 0.0], 5, 5);
        assert_eq!((st.n_signal, st.n_noise), (0, 5));
        assert_eq!(st.raw_snr, 0.0);
        assert_eq!(st.snr_ratio, 0.0);
    }

    #[test]
    fn value_equal_to_threshold_is_noise_and_zero_noise_is_infinite() {
        // Rank one: S = [5, 0, 0, 0, 0]; q25 = q75 = 0 so threshold = 0; the zeros satisfy
        // S <= threshold (noise) but sum to 0, so the SNR is infinite.
        let st = stats_from_singular_values(vec![5.0, 0.0, 0.0, 0.0, 0.0], 5, 5);
        assert_eq!(st.threshold, 0.0);
        assert_eq!((st.n_signal, st.n_noise), (1, 4));
        assert!(st.is_infinite());
    }

    #[test]
    fn all_zero_matrix_gives_nan_ratio_not_infinite() {
        let mut ws = SvdWorkspace::default();
        let st = matrix_snr(&[0.0; 12], 3, 4, Par::Seq, &mut ws).unwrap();
        assert_eq!(st.raw_snr, f64::INFINITY);
        assert!(st.snr_ratio.is_nan());
        assert!(!st.is_infinite());
    }

    #[test]
    fn row_vector_is_infinite() {
        let mut ws = SvdWorkspace::default();
        let st = matrix_snr(&[3.0, 4.0], 1, 2, Par::Seq, &mut ws).unwrap();
        assert!((st.max_singular_value - 5.0).abs() < 1e-14);
        assert!(st.is_infinite());
    }

    #[test]
    fn non_finite_entries_are_an_error() {
        let mut ws = SvdWorkspace::default();
        let err = matrix_snr(
            &[1.0, f64::NAN, f64::INFINITY, 2.0],
            2,
            2,
            Par::Seq,
            &mut ws,
        );
        assert_eq!(err, Err(SnrError::NonFinite { count: 2 }));
    }

    #[test]
    fn diagonal_matrix_singular_values_are_its_entries() {
        // diag(3, -5, 1) padded to 3x4: singular values are |entries| sorted: 5, 3, 1.
        let d = [
            3.0, 0.0, 0.0, 0.0, //
            0.0, -5.0, 0.0, 0.0, //
            0.0, 0.0, 1.0, 0.0,
        ];
        let mut ws = SvdWorkspace::default();
        let s = singular_values(&d, 3, 4, Par::Seq, &mut ws).unwrap();
        for (got, want) in s.iter().zip([5.0, 3.0, 1.0]) {
            assert!((got - want).abs() < 1e-13, "{s:?}");
        }
    }
}
