//! Singular values: faer (what snrscope uses) against numpy's LAPACK
//! (`np.linalg.svd(A, compute_uv=False)`) on the same shapes in the same run, as ratios.
//! Run: `cargo bench --bench svd` (needs python3 with numpy).

use std::{process::Command, time::Instant};

use faer::Par;
use snrscope::{
    demo::{Rng, gaussian},
    spectrum::snr::{SvdWorkspace, singular_values},
};

const SHAPES: &[(usize, usize)] = &[(1024, 7168), (1024, 4096)];
const REPS: usize = 3;

fn best_of<F: FnMut()>(mut f: F) -> f64 {
    f(); // warm-up: page faults, allocator, CPU frequency
    (0..REPS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn numpy_seconds(rows: usize, cols: usize, threads: Option<usize>) -> Option<f64> {
    let script = format!(
        "import time, numpy as np\n\
         a = np.random.default_rng(1).standard_normal(({rows}, {cols}))\n\
         np.linalg.svd(a, compute_uv=False)\n\
         best = min((lambda t: (np.linalg.svd(a, compute_uv=False), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range({REPS}))\n\
         print(best)\n"
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script]);
    // The machine pins OpenBLAS to a conservative kernel for old numpy builds; a current numpy
    // runs slower under it, so benchmarking clears both variables for this command only.
    cmd.env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE");
    if let Some(n) = threads {
        cmd.env("OPENBLAS_NUM_THREADS", n.to_string())
            .env("OMP_NUM_THREADS", n.to_string());
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("numpy failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("singular values only, f64, best of {REPS}; {cores} cores");
    println!(
        "{:>11}  {:>12}  {:>12}  {:>12}  {:>12}  {:>9}  {:>9}",
        "shape", "faer 1 thr", "faer all", "numpy 1 thr", "numpy all", "ratio 1", "ratio all"
    );
    for &(rows, cols) in SHAPES {
        let mut rng = Rng::new(1);
        let a = gaussian(&mut rng, rows * cols, 1.0);
        let mut ws = SvdWorkspace::default();
        let faer_seq = best_of(|| {
            singular_values(&a, rows, cols, Par::Seq, &mut ws).unwrap();
        });
        let mut ws = SvdWorkspace::default();
        let faer_par = best_of(|| {
            singular_values(&a, rows, cols, Par::rayon(cores), &mut ws).unwrap();
        });
        let np_seq = numpy_seconds(rows, cols, Some(1));
        let np_par = numpy_seconds(rows, cols, None);
        let fmt = |x: Option<f64>| x.map_or("n/a".to_string(), |s| format!("{s:.3} s"));
        let ratio = |np: Option<f64>, f: f64| np.map_or("n/a".into(), |n| format!("{:.2}x", n / f));
        println!(
            "{:>11}  {:>12}  {:>12}  {:>12}  {:>12}  {:>9}  {:>9}",
            format!("{rows}x{cols}"),
            fmt(Some(faer_seq)),
            fmt(Some(faer_par)),
            fmt(np_seq),
            fmt(np_par),
            ratio(np_seq, faer_seq),
            ratio(np_par, faer_par),
        );
    }
    println!("ratio = numpy time / faer time (above 1: faer is faster)");
}
