//! Invariances of the SNR that hold in exact arithmetic: scaling W by c > 0 leaves the raw SNR
//! unchanged and multiplies S[0] by c; W and its transpose give the same result.

use faer::Par;
use proptest::prelude::*;
use snrscope::spectrum::snr::{SnrStats, SvdWorkspace, matrix_snr};

fn snr(data: &[f64], rows: usize, cols: usize) -> SnrStats {
    matrix_snr(data, rows, cols, Par::Seq, &mut SvdWorkspace::default()).unwrap()
}

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-300)
}

fn matrix() -> impl Strategy<Value = (usize, usize, Vec<f64>)> {
    (1usize..=12, 1usize..=12)
        .prop_flat_map(|(r, c)| (Just(r), Just(c), prop::collection::vec(-1.0f64..1.0, r * c)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn scaling_keeps_raw_snr_and_scales_the_top_singular_value(
        (rows, cols, w) in matrix(),
        c in 0.001f64..1000.0,
    ) {
        let a = snr(&w, rows, cols);
        let scaled: Vec<f64> = w.iter().map(|x| x * c).collect();
        let b = snr(&scaled, rows, cols);
        prop_assert!(rel_close(a.raw_snr, b.raw_snr, 1e-9), "{} vs {}", a.raw_snr, b.raw_snr);
        prop_assert!(rel_close(b.max_singular_value, c * a.max_singular_value, 1e-12));
        prop_assert_eq!((a.n_signal, a.n_noise), (b.n_signal, b.n_noise));
        prop_assert!(rel_close(b.snr_ratio * c, a.snr_ratio, 1e-9));
    }

    #[test]
    fn transpose_gives_the_same_result((rows, cols, w) in matrix()) {
        let mut t = vec![0.0; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                t[j * rows + i] = w[i * cols + j];
            }
        }
        let a = snr(&w, rows, cols);
        let b = snr(&t, cols, rows);
        prop_assert!(rel_close(a.raw_snr, b.raw_snr, 1e-9));
        prop_assert!(rel_close(a.snr_ratio, b.snr_ratio, 1e-9));
        prop_assert!(rel_close(a.threshold, b.threshold, 1e-9));
        prop_assert_eq!((a.n_signal, a.n_noise), (b.n_signal, b.n_noise));
        for (x, y) in a.singular_values.iter().zip(&b.singular_values) {
            prop_assert!((x - y).abs() <= 1e-12 * a.max_singular_value.max(1e-300));
        }
    }
}
