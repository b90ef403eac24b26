//! Outputs and requests that cannot succeed are refused before the scan, not after it: the
//! scan cache (a folder of this test's own) stays empty, so nothing was scanned.

use std::path::Path;

use snrscope::demo::ModelSpec;
use snrscope_testkit::models::gen_model;

/// Scan-cache entries written (one per matrix scanned).
fn cache_entries(dir: &Path) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else if p.extension().is_some_and(|x| x == "snr") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

/// `scan --out` and `export --yaml / --unfrozen-yaml / --model-out` into a folder that does not
/// exist: refused at once (it scanned for minutes, then failed with "cannot create: No such
/// file or directory: No such file or directory (os error 2)"), the reason said once.
#[test]
fn outputs_in_a_missing_folder_are_refused_before_scanning() {
    let tmp = tempfile::tempdir().unwrap();
    gen_model(tmp.path(), "m", &ModelSpec::tiny(4, &[1]));
    let cache = tmp.path().join("cache");
    for args in [
        vec!["scan", "m", "--out", "missing/x.json"],
        vec!["scan", "m", "--part", "1/2", "--out", "missing/x.json"],
        vec!["export", "m", "--yaml", "missing/p.yml"],
        vec!["export", "m", "--unfrozen-yaml", "missing/u.yml"],
        vec!["export", "m", "--model-out", "missing/out"],
        vec![
            "export",
            "m",
            "--model-out",
            "out",
            "--yaml",
            "missing/p.yml",
        ],
    ] {
        let (code, _, err) = crate::snrscope()
            .args(&args)
            .cwd(tmp.path())
            .cache(&cache)
            .run()
            .parts();
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            err.contains("missing") && err.contains("does not exist"),
            "{args:?}: {err}"
        );
        assert_eq!(cache_entries(&cache), 0, "{args:?} scanned first: {err}");
        assert!(!tmp.path().join("out").exists());
    }
}

/// An I/O error's reason appears once, not again as its "cause".
#[test]
fn an_io_reason_is_said_once() {
    let tmp = tempfile::tempdir().unwrap();
    gen_model(tmp.path(), "m", &ModelSpec::tiny(4, &[1]));
    let (code, _, err) = crate::snrscope()
        .args(["export", "m", "--scan", "nowhere.json", "--yaml", "p.yml"])
        .cwd(tmp.path())
        .run()
        .parts();
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("nowhere.json"), "{err}");
}
