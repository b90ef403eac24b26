//! How much work a matrix is, which matrices go first, and how a scan splits into parts of
//! equal work. Pure arithmetic, so the scan, its progress and `--part` agree.

use crate::spectrum::snr::Method;

/// Floating-point operations to get the singular values of a `rows x cols` matrix, by
/// `method`: the usual leading terms (n = the smaller side, m = the larger). Only their ratios
/// matter (progress, ETA, balancing parts); they track measured times within ~20 %.
pub fn work(rows: usize, cols: usize, method: Method) -> f64 {
    let (n, m) = (rows.min(cols) as f64, rows.max(cols) as f64);
    match method {
        // Bidiagonalisation, after a QR step when the matrix is far from square.
        Method::Svd if m >= 5.0 * n / 3.0 => 2.0 * n * n * m + 2.0 * n * n * n,
        Method::Svd => 4.0 * n * n * m - 4.0 * n * n * n / 3.0,
        // The lower half of W·Wᵀ, then the tridiagonal reduction.
        Method::Gram => n * n * m + 4.0 * n * n * n / 3.0,
    }
}

/// Indices of `work` from the largest to the smallest (ties in index order): the big matrices
/// start first so that no large one is left running alone at the end.
pub(crate) fn largest_first(work: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..work.len()).collect();
    order.sort_by(|&a, &b| work[b].total_cmp(&work[a]).then(a.cmp(&b)));
    order
}

/// Should a matrix taken with `left` matrices still untaken get all `threads` inside it? Yes
/// once fewer remain than the other threads: some of those threads are about to run out of
/// matrices, and would otherwise idle until this one ends.
pub(crate) fn use_all_threads(left: usize, threads: usize) -> bool {
    left + 1 < threads
}

/// Splits jobs into `parts` shares of nearly equal total work, deterministically: largest
/// first, each to the share with the least work so far (the lowest-numbered on a tie). Returns,
/// for each share, its job indices in ascending order. Identical inputs give identical shares on
/// every machine, which is what lets `--part K/N` runs on different machines fit together.
pub fn split(work: &[f64], parts: usize) -> Vec<Vec<usize>> {
    assert!(parts > 0, "at least one part");
    let mut shares: Vec<Vec<usize>> = vec![Vec::new(); parts];
    let mut load = vec![0.0f64; parts];
    for i in largest_first(work) {
        let p = (0..parts)
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .expect("parts > 0");
        load[p] += work[i];
        shares[p].push(i);
    }
    for s in &mut shares {
        s.sort_unstable();
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_by_hand() {
        // 2x2 square SVD: 4*4*2 - 4*8/3 = 32 - 10.67; Gram: 4*2 + 4*8/3 = 8 + 10.67.
        assert!((work(2, 2, Method::Svd) - (32.0 - 32.0 / 3.0)).abs() < 1e-12);
        assert!((work(2, 2, Method::Gram) - (8.0 + 32.0 / 3.0)).abs() < 1e-12);
        // Orientation does not matter; a wide 1x4: QR path 2*1*4 + 2 = 10.
        assert_eq!(work(1, 4, Method::Svd), 10.0);
        assert_eq!(work(4, 1, Method::Svd), 10.0);
    }

    #[test]
    fn largest_first_is_stable_on_ties() {
        assert_eq!(largest_first(&[1.0, 5.0, 1.0, 9.0]), vec![3, 1, 0, 2]);
    }

    #[test]
    fn only_the_tail_is_parallel_inside() {
        // Two threads: only the last matrix; four: the last three; one: never.
        assert!(!use_all_threads(1, 2) && use_all_threads(0, 2));
        assert!(!use_all_threads(3, 4) && use_all_threads(2, 4) && use_all_threads(0, 4));
        assert!(!use_all_threads(0, 1));
    }

    #[test]
    fn split_balances_by_hand() {
        // LPT by hand: 9 -> p0, 5 -> p1, 4 -> p1 (5 < 9), 3 -> p1? loads 9, 9: tie -> p0.
        let shares = split(&[4.0, 9.0, 3.0, 5.0], 2);
        assert_eq!(shares, vec![vec![1, 2], vec![0, 3]]);
    }

    #[test]
    fn split_covers_every_job_once() {
        let work: Vec<f64> = (0..50).map(|i| ((i * 37) % 11) as f64 + 1.0).collect();
        for parts in 1..7 {
            let shares = split(&work, parts);
            let mut all: Vec<usize> = shares.concat();
            all.sort_unstable();
            assert_eq!(all, (0..50).collect::<Vec<_>>());
            let loads: Vec<f64> = shares
                .iter()
                .map(|s| s.iter().map(|&i| work[i]).sum())
                .collect();
            let (lo, hi) = (
                loads.iter().copied().fold(f64::INFINITY, f64::min),
                loads.iter().copied().fold(0.0, f64::max),
            );
            // LPT: no share exceeds another by more than the largest job.
            assert!(hi - lo <= 11.0, "{loads:?}");
        }
    }

    #[test]
    fn more_parts_than_jobs_leaves_empty_parts() {
        assert_eq!(split(&[1.0, 2.0], 3), vec![vec![1], vec![0], vec![]]);
    }
}
