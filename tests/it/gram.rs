//! `--method gram` against the numpy oracle (`shared/tools/snr_oracle.py`, committed under
//! tests/golden/) on every golden model: the same infinite set, the same signal/noise split, and
//! the largest relative difference of `snr_ratio` per model, printed (run with `--nocapture`)
//! and held to the figure the README states. Plus the Gram route's own guarantees on matrices
//! built by hand.

use snrscope_testkit::golden;

use std::{collections::BTreeSet, sync::Arc};

use faer::{Mat, Par};
use snrscope::{
    checkpoint::Model,
    demo::{Rng, gaussian, power_law, with_spectrum},
    spectrum::{
        deflate,
        gram::{GramSpectrum, GramWorkspace, gram_singular_values},
        scan::{self, ScanOptions},
        snr::{
            self, GRAM_TOLERANCE, Method, SvdWorkspace, gram_uncertainty, matrix_snr,
            matrix_snr_with, stats_from_singular_values,
        },
        tridiag,
    },
};

/// The README's figure: the largest relative difference of `snr_ratio` between the Gram method
/// and the oracle over every golden model (measured ≤ 1e-13 when written), rounded up. A change
/// that loosens the agreement fails here and must update the README.
const README_BOUND: f64 = 1e-12;

struct Report {
    matrices: usize,
    max_rel: f64,
    worst: String,
    left_to_svd: Vec<String>,
    infinite: BTreeSet<String>,
}

fn gram_vs_oracle(case: &str) -> Report {
    let tmp = tempfile::tempdir().unwrap();
    let g = golden::golden(case, tmp.path());
    let oracle = g.results.as_object().expect("object");
    let model = Arc::new(Model::open(g.target()).expect("opens"));
    let jobs = scan::jobs_matching(&model, &regex::Regex::new(g.case.pattern).unwrap());
    let options = ScanOptions {
        threads: 2,
        method: Method::Gram,
        cache: None,
    };
    let results = scan::scan_blocking(model, jobs.clone(), options);
    assert_eq!(results.len(), jobs.len());
    assert_eq!(jobs.len(), oracle.len(), "{case}: same matrices");
    let mut r = Report {
        matrices: jobs.len(),
        max_rel: 0.0,
        worst: String::new(),
        left_to_svd: Vec::new(),
        infinite: BTreeSet::new(),
    };
    let mut theirs_inf = BTreeSet::new();
    for (job, res) in jobs.iter().zip(&results) {
        let name = job.module.as_str();
        let s = res.outcome.as_ref().expect("scans");
        let o = &oracle[name];
        let f = |k: &str| o.get(k).and_then(|v| v.as_f64()).unwrap();
        let theirs = f("snr");
        assert_eq!(
            (s.n_signal as f64, s.n_noise as f64),
            (f("n_signal"), f("n_noise")),
            "{case} {name}: the same signal/noise split"
        );
        if res.method == Method::Svd {
            r.left_to_svd.push(name.to_string());
        }
        if theirs.is_infinite() {
            theirs_inf.insert(name.to_string());
        }
        if s.is_infinite() {
            r.infinite.insert(name.to_string());
        }
        if s.snr_ratio.is_nan() || theirs.is_nan() {
            assert!(s.snr_ratio.is_nan() && theirs.is_nan(), "{case} {name}");
            continue;
        }
        if s.snr_ratio.is_infinite() || theirs.is_infinite() {
            assert_eq!(s.snr_ratio, theirs, "{case} {name}");
            continue;
        }
        let rel = (s.snr_ratio - theirs).abs() / theirs.abs();
        // What the method promises for every matrix, whatever the README's measured figure.
        assert!(
            rel <= GRAM_TOLERANCE,
            "{case} {name}: {} vs {theirs}",
            s.snr_ratio
        );
        if rel > r.max_rel {
            r.max_rel = rel;
            r.worst = name.to_string();
        }
    }
    assert_eq!(r.infinite, theirs_inf, "{case}: the same infinite set");
    println!(
        "{case:>20}: {:>3} matrices, max relative snr_ratio difference {:.1e} ({}), {} infinite, \
         {} left to the SVD",
        r.matrices,
        r.max_rel,
        if r.worst.is_empty() { "-" } else { &r.worst },
        r.infinite.len(),
        r.left_to_svd.len()
    );
    assert!(
        r.max_rel <= README_BOUND,
        "{case}: {:e} at {} exceeds the README's {README_BOUND:e}",
        r.max_rel,
        r.worst
    );
    r
}

fn v_proj_set(layers: &[usize]) -> BTreeSet<String> {
    layers
        .iter()
        .map(|l| format!("model.layers.{l}.self_attn.v_proj"))
        .collect()
}

#[test]
fn bf16_gqa_sharded() {
    let r = gram_vs_oracle("bf16_gqa_sharded");
    assert_eq!(r.infinite, v_proj_set(&[0, 4, 5, 11]));
}

#[test]
fn bf16_every_matrix() {
    let r = gram_vs_oracle("bf16_every_matrix");
    assert_eq!(r.infinite, v_proj_set(&[1]));
}

#[test]
fn f16_single_file() {
    let r = gram_vs_oracle("f16_single_file");
    assert_eq!(r.infinite, v_proj_set(&[2, 3]));
}

#[test]
fn f32_square() {
    let r = gram_vs_oracle("f32_square");
    assert_eq!(r.infinite, v_proj_set(&[4]));
}

#[test]
fn f64_sharded() {
    let r = gram_vs_oracle("f64_sharded");
    assert_eq!(r.infinite, v_proj_set(&[0, 3]));
}

#[test]
fn bf16_two_shards() {
    let r = gram_vs_oracle("bf16_two_shards");
    assert_eq!(r.infinite, v_proj_set(&[2, 10, 11]));
}

#[test]
fn bf16_larger_shapes() {
    let r = gram_vs_oracle("bf16_larger_shapes");
    assert!(r.left_to_svd.is_empty(), "{:?}", r.left_to_svd);
}

#[test]
fn gram_stress() {
    let r = gram_vs_oracle("gram_stress");
    assert_eq!(r.infinite, v_proj_set(&[4]));
    // Six decades of singular values: the smallest are below what the Gram matrix resolves,
    // so the SVD decides that one; the square Gaussians stay with the Gram route.
    assert!(
        r.left_to_svd
            .contains(&"model.layers.1.self_attn.v_proj".to_string()),
        "{:?}",
        r.left_to_svd
    );
    for l in [0, 3, 4] {
        let name = format!("model.layers.{l}.self_attn.v_proj");
        assert!(!r.left_to_svd.contains(&name), "{name} left to the SVD");
    }
}

/// `s` rounded to BF16 and back, as the weights of a real checkpoint are.
fn bf16(w: &[f64]) -> Vec<f64> {
    w.iter()
        .map(|&x| half::bf16::from_f64(x).to_f64())
        .collect()
}

/// `U·diag(k^-alpha)·Vᵀ`, rounded to BF16: the heavy-tailed spectrum of real weights
/// (10^(alpha·log10(min side)) between the largest and smallest value, before rounding).
fn power_law_bf16(rng: &mut Rng, rows: usize, cols: usize, alpha: f64) -> Vec<f64> {
    let s: Vec<f64> = (0..rows.min(cols))
        .map(|k| 0.05 * ((k + 1) as f64).powf(-alpha))
        .collect();
    bf16(&with_spectrum(rng, rows, cols, &s))
}

/// The error estimate the fallback relies on must cover what actually happens: the squared
/// singular values of the Gram route (one-stage and two-stage reductions) and of the SVD differ
/// by less than it, on the kinds of matrices that stress it (square Gaussian, steep and shallow
/// power laws, BF16-rounded, six decades, bulk plus spikes, rows of very different norms, tall
/// and wide).
///
/// The SVD is the reference, but not an exact one: faer's singular values carry a relative
/// error of up to ~5e-14 on the largest values (measured against three eigensolvers on an
/// exactly formed Gram matrix), i.e. an error of 2·s·δ on s² with δ ≈ 1e-13·s_max. That much is
/// allowed on top of the estimate; it is below 1 % of the estimate wherever s ≤ s_max/100,
/// which is where the SNR's error comes from (see `snr::gram_uncertainty`).
#[test]
fn eigenvalue_error_estimate_covers_the_difference_to_the_svd() {
    let mut rng = Rng::new(77);
    let decades: Vec<f64> = (0..200)
        .map(|i| 10f64.powf(-6.0 * i as f64 / 199.0))
        .collect();
    let spiked: Vec<f64> = (0..240)
        .map(|i| {
            if i < 3 {
                40.0 / (i + 1) as f64
            } else {
                1.0 + 0.3 * rng.normal()
            }
        })
        .collect();
    let deflated_tail: Vec<f64> = (0..512)
        .map(|k| {
            if k < 16 {
                0.0
            } else {
                ((k + 1) as f64).powf(-1.476)
            }
        })
        .collect();
    let mut rows_scaled = gaussian(&mut rng, 256 * 512, 1.0);
    for (i, row) in rows_scaled.chunks_mut(512).enumerate() {
        // Row norms over three decades: the Gram matrix's diagonal is far from uniform.
        let f = 10f64.powf(-3.0 * i as f64 / 255.0);
        row.iter_mut().for_each(|x| *x *= f);
    }
    let cases: Vec<(&str, usize, usize, Vec<f64>)> = vec![
        (
            "gaussian 300x300",
            300,
            300,
            gaussian(&mut rng, 300 * 300, 1.0),
        ),
        (
            "gaussian 128x1024",
            128,
            1024,
            gaussian(&mut rng, 128 * 1024, 1.0),
        ),
        (
            "gaussian 1024x128",
            1024,
            128,
            gaussian(&mut rng, 1024 * 128, 1.0),
        ),
        (
            "power 0.5 200x600",
            200,
            600,
            power_law(&mut rng, 200, 600, 0.5),
        ),
        (
            "power 2.0 300x300",
            300,
            300,
            power_law(&mut rng, 300, 300, 2.0),
        ),
        (
            "power 1.1 bf16 400x1200",
            400,
            1200,
            power_law_bf16(&mut rng, 400, 1200, 1.1),
        ),
        (
            "decades 200x400",
            200,
            400,
            with_spectrum(&mut rng, 200, 400, &decades),
        ),
        (
            "spiked 240x480",
            240,
            480,
            with_spectrum(&mut rng, 240, 480, &spiked),
        ),
        ("rows scaled 256x512", 256, 512, rows_scaled),
        // What the deflated route squares: a steep spectrum with its top 16 values removed
        // (`spectrum::deflate`), so λ_max is 17^-2.96 of the original and the smallest values
        // sit 10^-5.5 below it.
        (
            "deflated 4 decades 512x1024",
            512,
            1024,
            with_spectrum(&mut rng, 512, 1024, &deflated_tail),
        ),
    ];
    for (name, r, c, w) in cases {
        let s = snr::singular_values(&w, r, c, Par::Seq, &mut SvdWorkspace::default()).unwrap();
        let smax = s[0];
        let svd_error = 1e-13 * smax;
        for (route, mut ws) in [
            ("one-stage", GramWorkspace::with_two_stage_from(usize::MAX)),
            ("two-stage", GramWorkspace::with_two_stage_from(0)),
        ] {
            let g = gram_singular_values(&w, r, c, Par::Seq, &mut ws).unwrap();
            // The worst ratio of the difference to what is allowed, and the worst among the
            // values below s_max/100, where the SVD's own error is negligible.
            let (mut worst, mut worst_small) = (0.0f64, 0.0f64);
            for (a, b) in s.iter().zip(&g.singular_values) {
                let diff = (a * a - b * b).abs();
                let allowed = g.eigenvalue_error + 2.0 * a * svd_error;
                worst = worst.max(diff / allowed);
                if *a <= smax / 100.0 {
                    worst_small = worst_small.max(diff / g.eigenvalue_error);
                }
            }
            println!(
                "{name:>24} {route}: difference / allowed {worst:.3}, below s_max/100 {worst_small:.1e} (estimate {:.0} ε·λ_max)",
                g.eigenvalue_error / (smax * smax * f64::EPSILON)
            );
            assert!(
                worst < 1.0,
                "{name} {route}: |λ_gram − s_svd²| reaches {worst} × (estimate {:e} + the SVD's own error)",
                g.eigenvalue_error
            );
        }
    }
}

/// A symmetric matrix with a known spectrum, Q·diag(d)·Qᵀ (Q orthonormal, from the QR of a
/// Gaussian matrix): the two-stage reduction's eigenvalues match `d` and faer's own dense
/// eigensolver (an independent one-stage implementation) for every band width, including
/// the edge cases (n ≤ b, n = b + 1, b = 1, a band that does not divide n).
#[test]
fn two_stage_reduction_finds_known_spectra() {
    let mut rng = Rng::new(5);
    for &n in &[1usize, 2, 3, 5, 17, 64, 65, 130, 257] {
        let q = Mat::from_fn(n, n, |_, _| rng.normal())
            .qr()
            .compute_thin_Q();
        // Both signs, a cluster, a zero and a spread of magnitudes.
        let d: Vec<f64> = (0..n)
            .map(|i| match i % 4 {
                0 => 10f64.powf(-(i as f64) / 32.0),
                1 => -(i as f64) / n as f64,
                2 => 0.5,
                _ => 0.0,
            })
            .collect();
        let qd = Mat::from_fn(n, n, |i, k| q[(i, k)] * d[k]);
        let a = &qd * q.transpose();
        let norm = d.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let mut want = d.clone();
        want.sort_by(f64::total_cmp);
        let mut dense: Vec<f64> = a.self_adjoint_eigenvalues(faer::Side::Lower).unwrap();
        dense.sort_by(f64::total_cmp);
        for &b in &[1usize, 2, 3, 8, 16, 48, n.saturating_sub(1), n + 5] {
            for par in [Par::Seq, Par::rayon(2)] {
                let mut lower = a.clone();
                // Garbage above the diagonal: the reduction must read the lower triangle only.
                for j in 0..n {
                    for i in 0..j {
                        lower[(i, j)] = f64::NAN;
                    }
                }
                let (diag, sub) = tridiag::tridiagonalize(
                    lower.as_mut(),
                    b,
                    par,
                    &mut tridiag::Workspace::default(),
                );
                assert_eq!((diag.len(), sub.len()), (n, n.saturating_sub(1)));
                let got = tridiag::tridiagonal_eigenvalues(&diag, &sub).unwrap();
                let err = |r: &[f64]| {
                    got.iter()
                        .zip(r)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f64::max)
                        / (norm * f64::EPSILON)
                };
                let (vs_known, vs_dense) = (err(&want), err(&dense));
                // Q·diag·Qᵀ itself is formed with an error of a few ε·‖A‖·√n.
                assert!(
                    vs_known < 8.0 * (n as f64).sqrt() + 8.0,
                    "n={n} b={b}: {vs_known:.1} ε·‖A‖ from the known spectrum"
                );
                assert!(
                    vs_dense < 8.0 * (n as f64).sqrt() + 8.0,
                    "n={n} b={b}: {vs_dense:.1} ε·‖A‖ from faer's dense solver"
                );
            }
        }
    }
}

/// Power-law spectra (s_k ∝ k^−α, about three decades, BF16-rounded: the shape of real
/// weights) stay on the Gram route, with the SVD's signal/noise split and `snr_ratio` to 1e-12
/// relative. Before the error estimate was sharpened every such matrix went back to the SVD.
#[test]
fn power_law_spectra_stay_on_the_gram_route() {
    let mut rng = Rng::new(11);
    let mut worst = 0.0f64;
    let mut worst_bound = 0.0f64;
    // (rows, cols, alpha): decades = alpha · log10(min side).
    let shapes = [
        (512, 1536, 1.1), // 3.0 decades, wide
        (1536, 512, 1.1), // tall
        (640, 640, 1.1),  // 3.1 decades, square
        (800, 1600, 1.1), // 3.2 decades
    ];
    let mut ws = SvdWorkspace::default();
    for (i, &(r, c, alpha)) in shapes.iter().chain(shapes.iter()).enumerate() {
        // The first round through faer's one-stage reduction, the second through the two-stage.
        let two_stage = i >= shapes.len();
        let w = power_law_bf16(&mut rng, r, c, alpha);
        let svd = matrix_snr(&w, r, c, Par::Seq, &mut ws).unwrap();
        let mut gw = GramWorkspace::with_two_stage_from(if two_stage { 0 } else { usize::MAX });
        let g = gram_singular_values(&w, r, c, Par::Seq, &mut gw).unwrap();
        let gram = stats_from_singular_values(g.singular_values.clone(), r, c);
        let bound = gram_uncertainty(&g, &gram).expect("the Gram route decides");
        assert!(
            bound <= GRAM_TOLERANCE,
            "{r}x{c} alpha {alpha}: bound {bound:e}"
        );
        assert_eq!((gram.n_signal, gram.n_noise), (svd.n_signal, svd.n_noise));
        assert!(!svd.is_infinite() && !gram.is_infinite());
        let rel = (gram.snr_ratio - svd.snr_ratio).abs() / svd.snr_ratio;
        // The bound is a worst case; the measured difference must sit below it, and below the
        // README's figure.
        assert!(rel <= bound, "{r}x{c}: {rel:e} above the bound {bound:e}");
        assert!(rel <= README_BOUND, "{r}x{c} alpha {alpha}: {rel:e}");
        worst = worst.max(rel);
        worst_bound = worst_bound.max(bound);
    }
    let (r, c, _) = shapes[3];
    let w = power_law_bf16(&mut rng, r, c, 1.1);
    let (_, m) = matrix_snr_with(&w, r, c, Method::Gram, Par::Seq, &mut ws).unwrap();
    assert_eq!(m, Method::Gram, "the default route");
    println!(
        "power laws: largest relative snr_ratio difference to the SVD {worst:.1e}, largest \
         guaranteed bound {worst_bound:.1e} (tolerance {GRAM_TOLERANCE:e})"
    );
}

/// Four decades of power law (BF16-rounded): the plain route's rounding (about 0.05·ε·λ_max
/// per eigenvalue of W·Wᵀ) would move `snr_ratio` by up to ~1e-11, and its check says so; the
/// deflated route (`spectrum::deflate`: the top directions taken out of W before squaring it)
/// keeps them on the Gram route, with faer's SVD's signal/noise split and `snr_ratio` to 1e-12.
#[test]
fn four_decades_stay_on_the_gram_route_by_deflation() {
    let mut rng = Rng::new(12);
    let mut ws = SvdWorkspace::default();
    let (mut worst, mut worst_bound) = (0.0f64, 0.0f64);
    // decades = alpha · log10(min side): 4.0, 4.3, 4.0, 4.0.
    for (r, c, alpha) in [
        (512, 1024, 1.476),
        (384, 1536, 1.55),
        (512, 512, 1.48),
        (1024, 384, 1.55),
    ] {
        let w = power_law_bf16(&mut rng, r, c, alpha);
        // The plain route alone refuses: this is the case deflation is for.
        let plain =
            gram_singular_values(&w, r, c, Par::Seq, &mut GramWorkspace::default()).unwrap();
        let plain_stats = stats_from_singular_values(plain.singular_values.clone(), r, c);
        assert!(
            !snr::gram_is_conclusive(&plain, &plain_stats, GRAM_TOLERANCE),
            "{r}x{c} alpha {alpha}: the plain route decides alone"
        );
        let svd = matrix_snr(&w, r, c, Par::Seq, &mut ws).unwrap();
        let (st, m) = matrix_snr_with(&w, r, c, Method::Gram, Par::Seq, &mut ws).unwrap();
        assert_eq!(m, Method::Gram, "{r}x{c} alpha {alpha}: left to the SVD");
        assert_eq!((st.n_signal, st.n_noise), (svd.n_signal, svd.n_noise));
        assert!(!svd.is_infinite() && !st.is_infinite());
        let rel = (st.snr_ratio - svd.snr_ratio).abs() / svd.snr_ratio;
        assert!(rel <= README_BOUND, "{r}x{c} alpha {alpha}: {rel:e}");
        let d = deflated(&w, r, c);
        let bound = gram_uncertainty(&d, &st).expect("decides");
        assert!(rel <= bound, "{r}x{c}: {rel:e} above the bound {bound:e}");
        worst = worst.max(rel);
        worst_bound = worst_bound.max(bound);
    }
    println!(
        "four decades, deflated: largest relative snr_ratio difference to the SVD {worst:.1e}, \
         largest guaranteed bound {worst_bound:.1e} (tolerance {GRAM_TOLERANCE:e})"
    );
}

/// The deflated route's result for `w`, as `matrix_snr_with` computes it.
fn deflated(w: &[f64], r: usize, c: usize) -> GramSpectrum {
    let mut gw = GramWorkspace::default();
    let plain = gram_singular_values(w, r, c, Par::Seq, &mut gw).unwrap();
    deflate::deflated_singular_values(w, r, c, &plain, 5e-3, Par::Seq, &mut gw)
        .expect("deflation applies")
}

/// Every interval the deflated route gives contains the SVD's value, up to the SVD's own error
/// (≤ 1e-13·s_max), on steep spectra of several shapes (wide, tall, square, BF16 or not), with
/// both reductions, sequential and with rayon; and the intervals are not vacuous: the widest,
/// relative to its value, stays far below what the SNR may lose.
#[test]
fn deflated_intervals_contain_the_svd_values() {
    let mut rng = Rng::new(31);
    let steep: Vec<f64> = (0..600).map(|k| ((k + 1) as f64).powf(-1.3)).collect();
    let cases: Vec<(&str, usize, usize, Vec<f64>)> = vec![
        (
            "power 1.48 bf16 512x512",
            512,
            512,
            power_law_bf16(&mut rng, 512, 512, 1.48),
        ),
        (
            "power 1.55 bf16 1024x384",
            1024,
            384,
            power_law_bf16(&mut rng, 1024, 384, 1.55),
        ),
        (
            "power 2.0 300x900",
            300,
            900,
            power_law(&mut rng, 300, 900, 2.0),
        ),
        (
            "power 1.3 f64 600x600",
            600,
            600,
            with_spectrum(&mut rng, 600, 600, &steep),
        ),
    ];
    for (name, r, c, w) in cases {
        let s = snr::singular_values(&w, r, c, Par::Seq, &mut SvdWorkspace::default()).unwrap();
        let smax = s[0];
        for (route, two_stage, par) in [
            ("one-stage", usize::MAX, Par::Seq),
            ("two-stage", 0, Par::rayon(2)),
        ] {
            let mut gw = GramWorkspace::with_two_stage_from(two_stage);
            let plain = gram_singular_values(&w, r, c, par, &mut gw).unwrap();
            let d = deflate::deflated_singular_values(&w, r, c, &plain, 5e-3, par, &mut gw)
                .expect("deflation applies");
            let iv = d.intervals.as_ref().expect("one interval per value");
            assert_eq!(iv.len(), s.len());
            let (mut worst, mut widest) = (0.0f64, 0.0f64);
            for ((&sv, &(lo, hi)), &g) in s.iter().zip(iv).zip(&d.singular_values) {
                assert!(
                    lo <= g && g <= hi,
                    "{name} {route}: {g} outside [{lo}, {hi}]"
                );
                // faer's SVD: an absolute error of up to ~1e-13·s_max (see the test above).
                let svd_error = 1e-13 * smax;
                let outside = (lo - sv).max(sv - hi).max(0.0);
                worst = worst.max(outside / svd_error);
                widest = widest.max((hi - lo) / g);
            }
            println!(
                "{name:>26} {route}: SVD outside its interval by {worst:.2} × its own error; \
                 widest interval {widest:.1e} relative"
            );
            assert!(
                worst < 1.0,
                "{name} {route}: the SVD's value outside the interval"
            );
            assert!(widest < 1e-6, "{name} {route}: interval {widest:e} wide");
        }
    }
}

/// A four-decade spectrum with a value placed exactly on the threshold: deflation sharpens
/// every value, but no estimate can say on which side the SVD puts that one, so the check
/// still refuses and the SVD decides.
#[test]
fn deflation_refuses_a_value_on_the_threshold() {
    let mut rng = Rng::new(22);
    let (r, c) = (512, 1024);
    let mut s: Vec<f64> = (0..r).map(|k| ((k + 1) as f64).powf(-1.476)).collect();
    let t = stats_from_singular_values(s.clone(), r, c).threshold;
    let k = s.iter().rposition(|&x| x > t).unwrap();
    assert!(
        ![127, 128, 383, 384].contains(&k) && s[k + 1] <= t,
        "k = {k}"
    );
    s[k] = t;
    assert_eq!(stats_from_singular_values(s.clone(), r, c).threshold, t);
    let w = with_spectrum(&mut rng, r, c, &s);
    let d = deflated(&w, r, c);
    let st = stats_from_singular_values(d.singular_values.clone(), r, c);
    assert_eq!(
        gram_uncertainty(&d, &st),
        None,
        "the interval straddles the threshold"
    );
    let mut ws = SvdWorkspace::default();
    let (st, m) = matrix_snr_with(&w, r, c, Method::Gram, Par::Seq, &mut ws).unwrap();
    assert_eq!(m, Method::Svd);
    assert_eq!(st, matrix_snr(&w, r, c, Par::Seq, &mut ws).unwrap());
}

/// A singular value placed exactly on the threshold: no Gram estimate can say on which side
/// the SVD puts it, so the SVD decides (and the result is the SVD's).
#[test]
fn a_value_on_the_threshold_goes_to_the_svd() {
    let mut rng = Rng::new(21);
    let (r, c) = (200, 400);
    let mut s: Vec<f64> = (0..r).map(|k| ((k + 1) as f64).powf(-1.1)).collect();
    let t = stats_from_singular_values(s.clone(), r, c).threshold;
    // The last value above the threshold (not one the quartiles use), moved onto it.
    let k = s.iter().rposition(|&x| x > t).unwrap();
    // Not one of the four values the quartiles interpolate between (descending 49, 50, 149, 150).
    assert!(![49, 50, 149, 150].contains(&k) && s[k + 1] <= t, "k = {k}");
    s[k] = t;
    assert_eq!(stats_from_singular_values(s.clone(), r, c).threshold, t);
    let w = with_spectrum(&mut rng, r, c, &s);
    let mut ws = SvdWorkspace::default();
    let (st, m) = matrix_snr_with(&w, r, c, Method::Gram, Par::Seq, &mut ws).unwrap();
    assert_eq!(m, Method::Svd);
    assert_eq!(st, matrix_snr(&w, r, c, Par::Seq, &mut ws).unwrap());
}

/// Entries so large that W·Wᵀ overflows: the Gram route gives up (no panic, no infinity
/// passed off as a result) and the SVD decides, whatever it says.
#[test]
fn overflowing_gram_matrix_goes_to_the_svd() {
    let mut rng = Rng::new(4);
    for scale in [1e160, 1e200] {
        let w: Vec<f64> = gaussian(&mut rng, 30 * 50, scale);
        let g = gram_singular_values(&w, 30, 50, Par::Seq, &mut GramWorkspace::default()).unwrap();
        assert_eq!(g.eigenvalue_error, f64::INFINITY);
        let mut ws = SvdWorkspace::default();
        let svd = matrix_snr(&w, 30, 50, Par::Seq, &mut ws);
        match matrix_snr_with(&w, 30, 50, Method::Gram, Par::Seq, &mut ws) {
            Ok((st, m)) => {
                assert_eq!(m, Method::Svd);
                assert_eq!(Ok(st), svd);
            }
            Err(e) => assert_eq!(Err(e), svd),
        }
    }
}

/// Hand-computed cases: a diagonal matrix's singular values are its entries' magnitudes.
#[test]
fn diagonal_matrix_by_hand() {
    let d = [
        3.0, 0.0, 0.0, 0.0, //
        0.0, -5.0, 0.0, 0.0, //
        0.0, 0.0, 1.0, 0.0,
    ];
    let g = gram_singular_values(&d, 3, 4, Par::Seq, &mut GramWorkspace::default()).unwrap();
    for (got, want) in g.singular_values.iter().zip([5.0, 3.0, 1.0]) {
        assert!((got - want).abs() < 1e-14, "{:?}", g.singular_values);
    }
    // Tall orientation: the transpose has the same values.
    let t = [
        3.0, 0.0, 0.0, //
        0.0, -5.0, 0.0, //
        0.0, 0.0, 1.0, //
        0.0, 0.0, 0.0,
    ];
    let g = gram_singular_values(&t, 4, 3, Par::Seq, &mut GramWorkspace::default()).unwrap();
    for (got, want) in g.singular_values.iter().zip([5.0, 3.0, 1.0]) {
        assert!((got - want).abs() < 1e-14, "{:?}", g.singular_values);
    }
    // S = [5, 3, 1] for 3x4 (hand): q25 = 2, q75 = 4, sigma = 2/1.349, threshold =
    // sigma*(1+sqrt(3/4)) = 2.766: signal 5 + 3 = 8, noise 1, snr_ratio = 8/5.
    let (st, m) = matrix_snr_with(
        &d,
        3,
        4,
        Method::Gram,
        Par::Seq,
        &mut SvdWorkspace::default(),
    )
    .unwrap();
    assert_eq!(m, Method::Gram);
    assert!((st.snr_ratio - 1.6).abs() < 1e-14, "{}", st.snr_ratio);
}

/// A rank-one matrix: its zero singular values come out of the Gram matrix as rounding noise
/// of either sign, so whether the noise sum is zero (an infinite SNR) is beyond the Gram route:
/// the SVD decides, and the result is exactly the SVD's.
#[test]
fn rank_deficient_matrices_are_left_to_the_svd() {
    let (u, v) = ([1.0, 2.0, -1.0, 0.5], [0.3, -0.7, 1.1, 0.2, 0.9]);
    let w: Vec<f64> = u
        .iter()
        .flat_map(|a| v.iter().map(move |b| a * b))
        .collect();
    let mut ws = SvdWorkspace::default();
    let (st, m) = matrix_snr_with(&w, 4, 5, Method::Gram, Par::Seq, &mut ws).unwrap();
    assert_eq!(m, Method::Svd);
    assert_eq!(st, matrix_snr(&w, 4, 5, Par::Seq, &mut ws).unwrap());
}

/// All-zero and single-row matrices: exact in the Gram route, and equal to the SVD's
/// degenerate results (NaN ratio; infinite).
#[test]
fn degenerate_matrices_match_the_svd() {
    let mut ws = SvdWorkspace::default();
    let (zero, m) = matrix_snr_with(&[0.0; 12], 3, 4, Method::Gram, Par::Seq, &mut ws).unwrap();
    assert_eq!(m, Method::Gram);
    assert!(zero.snr_ratio.is_nan());
    assert_eq!(zero.raw_snr, f64::INFINITY);
    let (row, m) = matrix_snr_with(&[3.0, 4.0], 1, 2, Method::Gram, Par::Seq, &mut ws).unwrap();
    assert_eq!(m, Method::Gram);
    assert_eq!(row.max_singular_value, 5.0);
    assert!(row.is_infinite());
    let bad = matrix_snr_with(&[1.0, f64::NAN], 1, 2, Method::Gram, Par::Seq, &mut ws);
    assert_eq!(bad, Err(snr::SnrError::NonFinite { count: 1 }));
}

/// The workspace is reused across shapes and parallelism without mixing them up.
#[test]
fn workspace_reuse_across_shapes() {
    let mut rng = Rng::new(3);
    let mut gw = GramWorkspace::default();
    for &(r, c) in &[(40, 90), (90, 40), (64, 64), (40, 90)] {
        let w = gaussian(&mut rng, r * c, 1.0);
        for par in [Par::Seq, Par::rayon(2)] {
            let a = gram_singular_values(&w, r, c, par, &mut gw).unwrap();
            let b = gram_singular_values(&w, r, c, par, &mut GramWorkspace::default()).unwrap();
            assert_eq!(a, b);
        }
    }
}
