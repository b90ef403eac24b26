//! Background scans: every job reports once, progress adds up, cancellation stops the rest;
//! `snrscope scan --out` writes the oracle's layout, keys in the oracle's order.

use snrscope_testkit::golden;

use std::{process::Command, sync::Arc, time::Duration};

use snrscope::{
    checkpoint::Model,
    demo::{ModelSpec, write_model},
    spectrum::{
        scan::{self, Progress, ScanEvent, ScanOptions},
        snr::Method,
    },
};

#[test]
fn every_job_reports_once_and_progress_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), &ModelSpec::tiny(10, &[3])).unwrap();
    let model = Arc::new(Model::open(dir.path()).unwrap());
    let jobs = scan::jobs_matching(&model, &regex::Regex::new("layers").unwrap());
    assert_eq!(jobs.len(), 10 * 7);
    let total_bytes: u64 = jobs.iter().map(|j| j.bytes).sum();
    let (handle, rx) = scan::start_channel(
        model,
        jobs.clone(),
        ScanOptions {
            threads: 2,
            ..Default::default()
        },
    );
    let mut seen = vec![0; jobs.len()];
    let mut last_done = 0;
    let mut finished = None;
    for e in rx.iter() {
        match e {
            ScanEvent::Result { result, progress } => {
                assert!(finished.is_none(), "no result after Finished");
                seen[result.job] += 1;
                assert!(result.outcome.is_ok());
                assert_eq!(progress.total, jobs.len());
                assert_eq!(progress.bytes_total, total_bytes);
                last_done = last_done.max(progress.done);
            }
            ScanEvent::Finished {
                progress,
                cancelled,
            } => {
                finished = Some((progress, cancelled));
                break;
            }
        }
    }
    handle.join();
    assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    let (progress, cancelled) = finished.expect("Finished arrives");
    assert!(!cancelled);
    assert_eq!(last_done, jobs.len());
    assert_eq!(progress.done, jobs.len());
    assert_eq!(progress.bytes_done, total_bytes);
    assert_eq!(progress.fraction(), 1.0);
}

/// One thread computes the largest matrix first, and progress is the share of the work done
/// (a 128x256 matrix counts for more than a 32x128 one), not of the matrices.
#[test]
fn largest_first_and_progress_by_work() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), &ModelSpec::tiny(2, &[])).unwrap();
    let model = Arc::new(Model::open(dir.path()).unwrap());
    let jobs = scan::jobs_matching(&model, &regex::Regex::new(".").unwrap());
    let work: Vec<f64> = jobs
        .iter()
        .map(|j| snrscope::spectrum::schedule::work(j.shape[0], j.shape[1], Method::Svd))
        .collect();
    let total: f64 = work.iter().sum();
    let options = ScanOptions {
        threads: 1,
        ..Default::default()
    };
    let (handle, rx) = scan::start_channel(model, jobs.clone(), options);
    let mut order = Vec::new();
    for e in rx.iter() {
        match e {
            ScanEvent::Result { result, progress } => {
                order.push(result.job);
                let done: f64 = order.iter().map(|&j| work[j]).sum();
                assert!((progress.work_done - done).abs() <= 1e-9 * total);
                assert!((progress.work_total - total).abs() <= 1e-9 * total);
                if progress.done < progress.total {
                    assert!((progress.fraction() - done / total).abs() < 1e-12);
                }
            }
            ScanEvent::Finished { progress, .. } => {
                assert_eq!(progress.fraction(), 1.0);
                assert_eq!(progress.eta(), Some(Duration::ZERO));
                break;
            }
        }
    }
    handle.join();
    let sizes: Vec<f64> = order.iter().map(|&j| work[j]).collect();
    assert!(
        sizes.windows(2).all(|w| w[0] >= w[1]),
        "largest first: {sizes:?}"
    );
    // The embeddings and the MLP dominate a tiny model; a count-based bar would say 1/23.
    assert!(work[order[0]] / total > 1.0 / jobs.len() as f64);
}

/// The ETA leaves out what came from the cache: it took no time and is not work left.
#[test]
fn eta_ignores_cached_work() {
    let p = Progress {
        done: 3,
        total: 4,
        work_done: 30.0,
        work_total: 40.0,
        cached: 2,
        cached_work: 20.0,
        elapsed: Duration::from_secs(5),
        ..Progress::default()
    };
    // 10 units computed in 5 s, 10 left: 5 s more.
    assert_eq!(p.eta(), Some(Duration::from_secs(5)));
    let nothing_computed = Progress {
        work_done: 20.0,
        done: 2,
        ..p
    };
    assert_eq!(nothing_computed.eta(), None);
}

#[test]
fn cancel_stops_the_remaining_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ModelSpec::tiny(40, &[]);
    spec.hidden = 128;
    spec.intermediate = 256;
    write_model(dir.path(), &spec).unwrap();
    let model = Arc::new(Model::open(dir.path()).unwrap());
    let jobs = scan::jobs_matching(&model, &regex::Regex::new("layers").unwrap());
    let n = jobs.len();
    let (handle, rx) = scan::start_channel(
        model,
        jobs,
        ScanOptions {
            threads: 1,
            ..Default::default()
        },
    );
    // Cancel as soon as the first result arrives; the caller never blocks on the pool.
    let mut results = 0;
    let mut cancelled_flag = None;
    for e in rx.iter() {
        match e {
            ScanEvent::Result { .. } => {
                results += 1;
                handle.cancel();
            }
            ScanEvent::Finished { cancelled, .. } => {
                cancelled_flag = Some(cancelled);
                break;
            }
        }
    }
    handle.join();
    assert_eq!(cancelled_flag, Some(true));
    assert!(results < n / 2, "{results} of {n} ran after cancel");
}

/// `snrscope scan --out` against the oracle's own output for the same model: the same keys in
/// the same order, the same types, the same SNR (1e-9), infinity as Python's bare token.
/// (`.ci/python-reads-scan-json` checks that Python's json module reads the file too.)
#[test]
fn scan_json_has_the_oracle_layout() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("m");
    let golden = golden::golden("bf16_two_shards", &model_dir);
    let out = dir.path().join("scan.json");
    // Its own scan cache: never the user's, never another test's.
    let cache = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .env("SNRSCOPE_CACHE_DIR", cache.path())
        .arg("scan")
        .arg(&model_dir)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("\"snr\": Infinity"), "bare Infinity token");
    // Key order as written (the parsed value's map is sorted): top-level keys sit at indent 2.
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  \"")?.split_once("\": {").map(|(k, _)| k))
        .collect();
    let theirs = golden.results.as_object().unwrap();
    let mut their_keys: Vec<&str> = theirs.keys().map(String::as_str).collect();
    their_keys.sort_by(|a, b| snrscope::checkpoint::layers::natural_cmp(a, b));
    assert_eq!(
        keys, their_keys,
        "the oracle's keys, in its (natural) order"
    );
    let ours = snrscope::scanfile::pyjson::PyJson::parse(&text).unwrap();
    let mut inf = Vec::new();
    for k in their_keys {
        let (a, b) = (&ours.get(k).unwrap(), &theirs[k]);
        assert_eq!(a.get("type"), b.get("type"));
        assert_eq!(a.get("type").unwrap().as_str(), Some("self_attn.v_proj"));
        let (x, y) = (
            a.get("snr").unwrap().as_f64().unwrap(),
            b.get("snr").unwrap().as_f64().unwrap(),
        );
        assert!(
            (x.is_infinite() && x == y) || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
            "{k}: {x} vs {y}"
        );
        if x.is_infinite() {
            inf.push(k.to_string());
        }
    }
    assert_eq!(
        inf,
        [2, 10, 11].map(|i| format!("model.layers.{i}.self_attn.v_proj"))
    );
}

#[test]
fn table_marks_infinite_layers() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), &ModelSpec::tiny(4, &[1])).unwrap();
    // Its own scan cache: never the user's, never another test's.
    let cache = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .env("SNRSCOPE_CACHE_DIR", cache.path())
        .arg("scan")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[2].contains("∞") && lines[2].trim_start().starts_with('1'));
    assert_eq!(text.matches('∞').count(), 1);
    assert!(lines[1].contains("self_attn.v_proj") && lines[1].contains("32x64"));
}
