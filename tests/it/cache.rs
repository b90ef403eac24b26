//! The scan cache: a repeated scan computes nothing (proved by the results' `cached` flags and
//! the cache's write counter, not by timing), an interrupted scan resumes where it stopped, a
//! damaged entry or a changed file is recomputed, the model folder never receives a file, and
//! concurrent processes share one cache safely. Every test has its own cache folder.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};

use snrscope::{
    checkpoint::Model,
    demo::{ModelSpec, write_model},
    spectrum::{
        cache::Cache,
        scan::{self, MatrixResult, ScanEvent, ScanJob, ScanOptions},
        snr::Method,
    },
};

fn model(dir: &Path, layers: usize) -> (Arc<Model>, Vec<ScanJob>) {
    write_model(dir, &ModelSpec::tiny(layers, &[1])).unwrap();
    let m = Arc::new(Model::open(dir).unwrap());
    let jobs = scan::jobs_matching(&m, &regex::Regex::new("layers").unwrap());
    (m, jobs)
}

fn options(cache: &Arc<Cache>, method: Method) -> ScanOptions {
    ScanOptions {
        threads: 2,
        method,
        cache: Some(cache.clone()),
    }
}

fn scan(m: &Arc<Model>, jobs: &[ScanJob], o: ScanOptions) -> Vec<MatrixResult> {
    scan::scan_blocking(m.clone(), jobs.to_vec(), o)
}

fn cached_count(r: &[MatrixResult]) -> usize {
    r.iter().filter(|r| r.cached).count()
}

#[test]
fn second_scan_computes_nothing_and_gives_identical_results() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, jobs) = model(&tmp.path().join("m"), 3);
    let cache = Arc::new(Cache::at(tmp.path().join("cache")));
    let first = scan(&m, &jobs, options(&cache, Method::Svd));
    assert_eq!(cached_count(&first), 0);
    assert_eq!(cache.writes(), jobs.len());

    let again = Arc::new(Cache::at(tmp.path().join("cache")));
    let second = scan(&m, &jobs, options(&again, Method::Svd));
    assert_eq!(
        cached_count(&second),
        jobs.len(),
        "every matrix from the cache"
    );
    assert_eq!(again.writes(), 0, "nothing computed, so nothing stored");
    assert_eq!(again.hits(), jobs.len());
    assert!(again.take_warnings().is_empty());
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.job, b.job);
        // Bit for bit: the statistics are a function of the stored singular values.
        assert_eq!(a.outcome, b.outcome);
        assert_eq!(b.method, Method::Svd);
    }
}

#[test]
fn the_lookup_for_a_model_that_opens_needs_no_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, jobs) = model(&tmp.path().join("m"), 2);
    let cache = Arc::new(Cache::at(tmp.path().join("cache")));
    assert!(
        scan::cached_results(&m, &jobs, Method::Svd, &cache)
            .iter()
            .all(Option::is_none)
    );
    let computed = scan(&m, &jobs, options(&cache, Method::Svd));
    // What the explorer would call on open: every bar at once, equal to the scan's.
    let reopened = Model::open(tmp.path().join("m")).unwrap();
    let hits = scan::cached_results(&reopened, &jobs, Method::Svd, &cache);
    for (r, hit) in computed.iter().zip(hits) {
        let (stats, method) = hit.expect("cached");
        assert_eq!(Ok(stats), r.outcome);
        assert_eq!(method, Method::Svd);
    }
}

#[test]
fn gram_reuses_the_svd_but_not_the_reverse() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, jobs) = model(&tmp.path().join("m"), 2);
    let cache = Arc::new(Cache::at(tmp.path().join("cache")));
    scan(&m, &jobs, options(&cache, Method::Svd));
    // The SVD is the reference: a Gram scan takes its results (and says so).
    let g = scan(&m, &jobs, options(&cache, Method::Gram));
    assert_eq!(cached_count(&g), jobs.len());
    assert!(g.iter().all(|r| r.method == Method::Svd));

    let tmp2 = tempfile::tempdir().unwrap();
    let (m2, jobs2) = model(&tmp2.path().join("m"), 2);
    let cache2 = Arc::new(Cache::at(tmp2.path().join("cache")));
    let g = scan(&m2, &jobs2, options(&cache2, Method::Gram));
    assert_eq!(cached_count(&g), 0);
    // ...but a Gram result never stands in for the SVD.
    let s = scan(&m2, &jobs2, options(&cache2, Method::Svd));
    let gram_made = g.iter().filter(|r| r.method == Method::Gram).count();
    assert!(gram_made > 0);
    assert_eq!(cached_count(&s), jobs2.len() - gram_made);
    // And a second Gram scan reuses its own results.
    let g2 = scan(&m2, &jobs2, options(&cache2, Method::Gram));
    assert_eq!(cached_count(&g2), jobs2.len());
}

#[test]
fn an_interrupted_scan_resumes_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, jobs) = model(&tmp.path().join("m"), 6);
    let cache = Arc::new(Cache::at(tmp.path().join("cache")));
    let o = ScanOptions {
        threads: 1,
        ..options(&cache, Method::Svd)
    };
    let (handle, rx) = scan::start_channel(m.clone(), jobs.clone(), o);
    let mut computed = Vec::new();
    for e in rx.iter() {
        match e {
            ScanEvent::Result { result, .. } => {
                computed.push(result.job);
                if computed.len() == 5 {
                    handle.cancel();
                }
            }
            ScanEvent::Finished { cancelled, .. } => {
                assert!(cancelled);
                break;
            }
        }
    }
    handle.join();
    assert!(computed.len() < jobs.len());
    let resumed = scan(&m, &jobs, options(&cache, Method::Svd));
    let from_cache: Vec<usize> = resumed.iter().filter(|r| r.cached).map(|r| r.job).collect();
    computed.sort_unstable();
    assert_eq!(from_cache, computed, "exactly what the first run finished");
}

#[test]
fn damaged_entries_and_changed_files_are_recomputed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let (m, jobs) = model(&dir, 2);
    let root = tmp.path().join("cache");
    let cache = Arc::new(Cache::at(&root));
    let first = scan(&m, &jobs, options(&cache, Method::Svd));
    // Damage one entry: flip a byte in the middle of its singular values.
    let entries = files_under(&root);
    assert_eq!(entries.len(), jobs.len());
    let victim = &entries[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2 + 3;
    bytes[mid] ^= 0x40;
    std::fs::write(victim, &bytes).unwrap();
    let c2 = Arc::new(Cache::at(&root));
    let second = scan(&m, &jobs, options(&c2, Method::Svd));
    assert_eq!(cached_count(&second), jobs.len() - 1);
    let warnings = c2.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&victim.display().to_string()) && warnings[0].contains("corrupt"),
        "{warnings:?}"
    );
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.outcome, b.outcome, "the damaged entry was not trusted");
    }
    // The recomputed result replaced the damaged entry.
    let c3 = Arc::new(Cache::at(&root));
    assert_eq!(
        cached_count(&scan(&m, &jobs, options(&c3, Method::Svd))),
        jobs.len()
    );

    // A rewritten shard (new modification time, here the same bytes) is a new file.
    let shard = m.shards[0].path.clone();
    let f = std::fs::File::options().append(true).open(&shard).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(f);
    let reopened = Arc::new(Model::open(&dir).unwrap());
    let c4 = Arc::new(Cache::at(&root));
    let after = scan(&reopened, &jobs, options(&c4, Method::Svd));
    assert_eq!(cached_count(&after), 0);
}

#[test]
fn a_cache_inside_the_model_folder_is_never_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let (m, jobs) = model(&dir, 2);
    let before = listing(&dir);
    let cache = Arc::new(Cache::at(dir.join("cache")));
    let r = scan(&m, &jobs, options(&cache, Method::Svd));
    assert!(r.iter().all(|r| r.outcome.is_ok() && !r.cached));
    assert_eq!(cache.writes(), 0);
    assert_eq!(
        listing(&dir),
        before,
        "nothing written into the model folder"
    );
    let w = cache.take_warnings();
    assert!(
        w.len() == 1 && w[0].contains("inside the model folder"),
        "{w:?}"
    );
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn listing(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap();
            (p, (m.len(), m.modified().unwrap()))
        })
        .collect()
}

#[test]
fn command_line_reuse_no_cache_and_cache_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    write_model(&dir, &ModelSpec::tiny(4, &[1])).unwrap();
    let cache = tmp.path().join("cache");
    let d = dir.to_str().unwrap();

    let (code, _, err) = crate::snrscope()
        .args(["scan", d, "--no-cache"])
        .cache(&cache)
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(!cache.exists(), "--no-cache writes nothing");

    let (code, first, err) = crate::snrscope()
        .args(["scan", d])
        .cache(&cache)
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("scan cache: 0 of 4 matrices reused, 4 computed"),
        "{err}"
    );
    let (code, second, err) = crate::snrscope()
        .args(["scan", d])
        .cache(&cache)
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("scan cache: 4 of 4 matrices reused, 0 computed"),
        "{err}"
    );
    assert_eq!(first, second);
    // export scans through the same cache.
    let (code, _, err) = crate::snrscope()
        .args(["export", d])
        .cache(&cache)
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("4 of 4 matrices reused"), "{err}");

    let (code, out, err) = crate::snrscope()
        .args(["cache"])
        .cache(&cache)
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(cache.to_str().unwrap()) && out.contains("4 entries"),
        "{out}"
    );
    let (code, _, err) = crate::snrscope()
        .args(["cache", "clear"])
        .cache(&cache)
        .run()
        .parts();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("removed 4 entries"), "{err}");
    let (_, out, _) = crate::snrscope()
        .args(["cache"])
        .cache(&cache)
        .run()
        .parts();
    assert!(out.contains("0 entries"), "{out}");

    // A file in the cache folder that is not an entry stays, and is never read.
    std::fs::create_dir_all(cache.join("v1/ab")).unwrap();
    std::fs::write(cache.join("v1/ab/notes.txt"), "mine").unwrap();
    crate::snrscope()
        .args(["cache", "clear"])
        .cache(&cache)
        .run()
        .parts();
    assert!(cache.join("v1/ab/notes.txt").exists());
}

/// Two processes scanning the same model into one cache at once: both finish without a
/// warning, and a third run finds every entry intact.
#[test]
fn concurrent_processes_share_one_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    write_model(&dir, &ModelSpec::tiny(6, &[1])).unwrap();
    let cache = tmp.path().join("cache");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_snrscope"))
            .env("SNRSCOPE_CACHE_DIR", &cache)
            .args([
                "scan",
                dir.to_str().unwrap(),
                "--modules",
                "layers",
                "--threads",
                "1",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("warning"), "{err}");
    }
    let (code, _, err) = crate::snrscope()
        .args(["scan", dir.to_str().unwrap(), "--modules", "layers"])
        .cache(&cache)
        .run()
        .parts();
    assert_eq!(code, 0);
    assert!(err.contains("42 of 42 matrices reused"), "{err}");
    assert!(!err.contains("warning"), "{err}");
}
