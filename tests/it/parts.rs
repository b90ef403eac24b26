//! A scan split with `--part K/N` and put together with `--merge` equals the whole scan; the
//! merge refuses what does not fit together. Each run has its own cache folder (and the part
//! runs do not share one, so nothing is borrowed between them).

use std::path::Path;

use snrscope::demo::{ModelSpec, write_model};

fn ok(args: &[&str], cwd: &Path) -> String {
    let (code, _, err) = crate::snrscope().args(args).cwd(cwd).run().parts();
    assert_eq!(code, 0, "snrscope {args:?}: {err}");
    err
}

fn refused(args: &[&str], cwd: &Path, code: i32, needles: &[&str]) {
    let (c, _, err) = crate::snrscope().args(args).cwd(cwd).run().parts();
    assert_eq!(c, code, "snrscope {args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// One thread, so every matrix is computed the same sequential way in every run: the merged
/// file must then equal the whole scan's byte for byte, for both methods.
#[test]
fn three_parts_merged_equal_the_whole_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    write_model(&t.join("m"), &ModelSpec::tiny(5, &[1, 3])).unwrap();
    for method in ["svd", "gram"] {
        let common = ["--modules", "layers", "--threads", "1", "--method", method];
        let whole = format!("whole-{method}.json");
        ok(&[&["scan", "m", "--out", &whole][..], &common].concat(), t);
        let mut parts = Vec::new();
        for k in 1..=3 {
            let part = format!("part-{k}-{method}.json");
            let spec = format!("{k}/3");
            ok(
                &[&["scan", "m", "--part", &spec, "--out", &part][..], &common].concat(),
                t,
            );
            parts.push(part);
        }
        // Every part got a share, and the shares do not repeat a matrix.
        let sizes: Vec<usize> = parts
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(t.join(p)).unwrap();
                text.matches("\"snr\":").count()
            })
            .collect();
        assert!(sizes.iter().all(|&n| n > 0), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 5 * 7);
        // In any order.
        let merged = format!("merged-{method}.json");
        let args: Vec<&str> = [
            "scan", "--merge", &parts[2], &parts[0], &parts[1], "--out", &merged,
        ]
        .into_iter()
        .collect();
        let err = ok(&args, t);
        assert!(err.contains("35 matrices"), "{err}");
        let a = std::fs::read_to_string(t.join(&whole)).unwrap();
        let b = std::fs::read_to_string(t.join(&merged)).unwrap();
        if let Some((i, (x, y))) = a
            .lines()
            .zip(b.lines())
            .enumerate()
            .find(|(_, (x, y))| x != y)
        {
            panic!("{method}: merged parts differ from the whole scan at line {i}: {x} / {y}");
        }
        assert_eq!(a, b, "{method}: merged parts differ from the whole scan");
        assert!(a.contains(&format!("\"method\": \"{method}\"")));
    }
}

#[test]
fn merge_refuses_overlaps_gaps_and_strangers() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    write_model(&t.join("m"), &ModelSpec::tiny(4, &[1])).unwrap();
    let mut other = ModelSpec::tiny(4, &[1]);
    other.seed += 1;
    write_model(&t.join("other"), &other).unwrap();
    for (model, k, out) in [
        ("m", "1/3", "p1.json"),
        ("m", "2/3", "p2.json"),
        ("m", "3/3", "p3.json"),
        ("other", "3/3", "q3.json"),
    ] {
        ok(&["scan", model, "--part", k, "--out", out], t);
    }
    ok(
        &[
            "scan", "m", "--part", "3/3", "--method", "gram", "--out", "g3.json",
        ],
        t,
    );
    ok(&["scan", "m", "--part", "2/2", "--out", "h2.json"], t);
    ok(&["scan", "m", "--out", "whole.json"], t);

    refused(
        &[
            "scan", "--merge", "p1.json", "p2.json", "p2.json", "--out", "x.json",
        ],
        t,
        1,
        &["is in both", "p2.json"],
    );
    refused(
        &["scan", "--merge", "p1.json", "p3.json", "--out", "x.json"],
        t,
        1,
        &["in no part", "2/3", "--allow-partial"],
    );
    refused(
        &[
            "scan", "--merge", "p1.json", "p2.json", "q3.json", "--out", "x.json",
        ],
        t,
        1,
        &["different models", "q3.json"],
    );
    refused(
        &[
            "scan", "--merge", "p1.json", "p2.json", "g3.json", "--out", "x.json",
        ],
        t,
        1,
        &["different methods"],
    );
    refused(
        &["scan", "--merge", "p1.json", "h2.json", "--out", "x.json"],
        t,
        1,
        &["split the scan differently"],
    );
    refused(
        &[
            "scan",
            "--merge",
            "p1.json",
            "whole.json",
            "--out",
            "x.json",
        ],
        t,
        1,
        &["whole.json", "not a part file"],
    );
    refused(&["scan", "--merge", "p1.json"], t, 1, &["--out"]);
    refused(&["scan", "m", "--part", "4/3"], t, 2, &["K/N"]);
    assert!(
        !t.join("x.json").exists(),
        "nothing written by a refused merge"
    );

    // --allow-partial writes what there is and says so (exit 3: not everything scanned).
    refused(
        &[
            "scan",
            "--merge",
            "p1.json",
            "p3.json",
            "--allow-partial",
            "--out",
            "x.json",
        ],
        t,
        3,
        &["in no part"],
    );
    assert!(t.join("x.json").exists());
}
