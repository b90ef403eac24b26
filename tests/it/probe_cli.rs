//! `snrscope probe` end to end, as the issue's checks call it: `--token-ids IDS.json` (an array
//! of arrays) `--max-block N --out P.json` on the llama fixture, P.json's keys and lengths, its
//! numbers against the committed transformers reference (tests/reference/probe), PruneMe's CSVs
//! beside it, the cache, `--part K/N` + `--merge` equal to the whole run, and the refusals.

use std::path::Path;

use serde_json::Value;
use snrscope_testkit::eval_models::{self, ArchSpec};

const TOL: f64 = 1e-5;

fn reference(name: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/probe/reference.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["fixtures"][name].clone()
}

/// Fixture `name` in `dir/m`, its reference samples in `dir/ids.json`; the reference.
fn fixture(dir: &Path, name: &str) -> Value {
    let spec = ArchSpec::fixtures()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap();
    eval_models::write_model(&dir.join("m"), &spec).unwrap();
    let r = reference(name);
    std::fs::write(dir.join("ids.json"), r["samples"].to_string()).unwrap();
    r
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("{v} is not a list"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn assert_close(what: &str, got: &Value, want: &Value) {
    let (g, w) = (numbers(got), numbers(want));
    assert_eq!(g.len(), w.len(), "{what}: lengths");
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!((a - b).abs() <= TOL, "{what}[{i}]: {a} vs {b}");
    }
}

fn run(dir: &Path, cache: &Path, args: &[&str]) -> (i32, String, String) {
    crate::snrscope()
        .args(args)
        .cwd(dir)
        .cache(cache)
        .run()
        .parts()
}

fn ok(dir: &Path, cache: &Path, args: &[&str]) -> String {
    let (code, _, err) = run(dir, cache, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    err
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn token_id_samples_give_the_issue_keys_equal_to_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let (t, cache) = (tmp.path(), tmp.path().join("cache"));
    let r = fixture(t, "llama");
    let layers = r["layers"].as_u64().unwrap() as usize;
    assert_eq!(layers, 4);
    ok(
        t,
        &cache,
        &[
            "probe",
            "m",
            "--token-ids",
            "ids.json",
            "--max-block",
            "2",
            "--pruneme",
            "--out",
            "p.json",
        ],
    );
    let p = read(&t.join("p.json"));
    assert_eq!(p["samples"], 3);
    assert_eq!(p["sample_tokens"], serde_json::json!([64, 17, 50]));
    assert_eq!(p["tokens"], 131);
    assert_eq!(p["layers"], layers);
    assert!(p["timings"]["forward_seconds"].as_f64().unwrap() > 0.0);
    assert_close(
        "block_influence",
        &p["block_influence"],
        &r["block_influence"],
    );
    // Blocks of 1 and 2 only: "1" has L entries, "2" has L-1.
    let ad = p["angular_distance"].as_object().unwrap();
    assert_eq!(ad.keys().collect::<Vec<_>>(), ["1", "2"]);
    for n in ["1", "2"] {
        assert_close(
            &format!("angular_distance {n}"),
            &p["angular_distance"][n],
            &r["angular_distance"][n],
        );
    }
    assert_eq!(
        p["angular_distance"]["2"].as_array().unwrap().len(),
        layers - 1
    );
    // PruneMe's rows: L-n of them; and its CSV files beside --out, row for row.
    for n in ["1", "2"] {
        let want = &r["pruneme"]["1"];
        assert_close(&format!("pruneme {n}"), &p["pruneme"][n], &want["rows"][n]);
        let csv = std::fs::read_to_string(t.join(format!("p.pruneme-{n}.csv"))).unwrap();
        let theirs = want["csv"][n].as_str().unwrap();
        let (ours, theirs): (Vec<&str>, Vec<&str>) =
            (csv.split("\r\n").collect(), theirs.split("\r\n").collect());
        assert_eq!(ours.len(), theirs.len(), "CSV {n}");
        for (a, b) in ours.iter().zip(&theirs) {
            let (a, b): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
            assert_eq!(a.len(), b.len());
            if let (Some(x), Some(y)) = (a.get(2), b.get(2))
                && let (Ok(x), Ok(y)) = (x.parse::<f64>(), y.parse::<f64>())
            {
                assert_eq!(a[..2], b[..2], "CSV {n}: block columns");
                assert!((x - y).abs() <= TOL, "CSV {n}: {x} vs {y}");
            } else {
                assert_eq!(a, b, "CSV {n}: header");
            }
        }
    }
    assert!(!t.join("p.pruneme-3.csv").exists());

    // PruneMe's own batching: batches of 2, the last (incomplete) batch left out.
    ok(
        t,
        &cache,
        &[
            "probe",
            "m",
            "--token-ids",
            "ids.json",
            "--pruneme",
            "--pruneme-batch",
            "2",
            "--out",
            "b.json",
        ],
    );
    let b = read(&t.join("b.json"));
    assert_eq!(b["pruneme_batch"], 2);
    for n in 1..layers {
        let n = n.to_string();
        assert_close(
            &format!("pruneme batch 2, {n}"),
            &b["pruneme"][&n],
            &r["pruneme"]["2"]["rows"][&n],
        );
    }
    // Without --max-block: every block size, the last a single entry (all layers).
    let ad = b["angular_distance"].as_object().unwrap();
    assert_eq!(ad.len(), layers);
    assert_close(
        "angular 4",
        &b["angular_distance"]["4"],
        &r["angular_distance"]["4"],
    );
}

#[test]
fn a_second_run_reads_the_cache_and_no_cache_recomputes() {
    let tmp = tempfile::tempdir().unwrap();
    let (t, cache) = (tmp.path(), tmp.path().join("cache"));
    fixture(t, "qwen3");
    let args = |out: &'static str| ["probe", "m", "--token-ids", "ids.json", "--out", out];
    let first = ok(t, &cache, &args("a.json"));
    assert!(!first.contains("probe cache"), "{first}");
    let second = ok(t, &cache, &args("b.json"));
    assert!(second.contains("read from the probe cache"), "{second}");
    let (a, b) = (read(&t.join("a.json")), read(&t.join("b.json")));
    for k in ["block_influence", "angular_distance"] {
        assert_eq!(a[k], b[k], "{k}");
    }
    assert_eq!(b["cached"], true);
    let third = ok(t, &cache, &[&args("c.json")[..], &["--no-cache"]].concat());
    assert!(!third.contains("probe cache"), "{third}");
    // A different block count is another probe, not the cached one.
    let fourth = ok(
        t,
        &cache,
        &[&args("d.json")[..], &["--max-block", "1"]].concat(),
    );
    assert!(!fourth.contains("probe cache"), "{fourth}");
    // Changed weights are not served from the cache either.
    let w = t.join("m/model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&w, bytes).unwrap();
    let fifth = ok(t, &cache, &args("e.json"));
    assert!(!fifth.contains("probe cache"), "{fifth}");
}

#[test]
fn parts_merged_equal_the_whole_probe() {
    let tmp = tempfile::tempdir().unwrap();
    let (t, cache) = (tmp.path(), tmp.path().join("cache"));
    fixture(t, "mistral");
    let common = [
        "--token-ids",
        "ids.json",
        "--ppl",
        "--threads",
        "1",
        "--no-cache",
    ];
    ok(
        t,
        &cache,
        &[&["probe", "m", "--out", "whole.json"][..], &common].concat(),
    );
    for k in ["1/2", "2/2"] {
        let out = format!("part-{}.json", &k[..1]);
        ok(
            t,
            &cache,
            &[&["probe", "m", "--part", k, "--out", &out][..], &common].concat(),
        );
    }
    ok(
        t,
        &cache,
        &[
            "probe",
            "--merge",
            "part-2.json",
            "part-1.json",
            "--out",
            "merged.json",
        ],
    );
    let (w, m) = (read(&t.join("whole.json")), read(&t.join("merged.json")));
    // Each sample's numbers do not depend on the samples beside it, and parts keep them
    // exactly (f64 written and read back bit for bit): the merge is the whole run. (The
    // perplexity's sums are added in another order: equal to rounding.)
    for k in [
        "block_influence",
        "angular_distance",
        "sample_tokens",
        "samples_sha256",
        "proposals",
    ] {
        assert_eq!(w[k], m[k], "{k}");
    }
    let ppl = |v: &Value| {
        let mut x = numbers(&v["perplexity"]["without_layer"]);
        x.push(v["perplexity"]["original"].as_f64().unwrap());
        x
    };
    for (a, b) in ppl(&w).iter().zip(ppl(&m)) {
        assert!((a - b).abs() <= 1e-12 * b, "perplexity: {a} vs {b}");
    }

    // A missing part, a part twice, and parts of another sample set are refused.
    let (code, _, err) = run(
        t,
        &cache,
        &["probe", "--merge", "part-1.json", "--out", "x.json"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("part-1.json") || err.contains("2/2"), "{err}");
    let (code, _, err) = run(
        t,
        &cache,
        &[
            "probe",
            "--merge",
            "part-1.json",
            "part-1.json",
            "--out",
            "x.json",
        ],
    );
    assert_eq!(code, 1, "{err}");
    std::fs::write(t.join("other.json"), "[[1, 2, 3], [4, 5, 6]]").unwrap();
    ok(
        t,
        &cache,
        &[
            "probe",
            "m",
            "--token-ids",
            "other.json",
            "--ppl",
            "--part",
            "2/2",
            "--out",
            "other-2.json",
        ],
    );
    let (code, _, err) = run(
        t,
        &cache,
        &[
            "probe",
            "--merge",
            "part-1.json",
            "other-2.json",
            "--out",
            "x.json",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(!t.join("x.json").exists());
}

#[test]
fn refuses_bad_samples_and_an_existing_out_before_the_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let (t, cache) = (tmp.path(), tmp.path().join("cache"));
    fixture(t, "llama");
    let refused = |ids: &str, needles: &[&str]| {
        std::fs::write(t.join("bad.json"), ids).unwrap();
        let (code, _, err) = run(t, &cache, &["probe", "m", "--token-ids", "bad.json"]);
        assert_eq!(code, 1, "{ids}: {err}");
        for n in needles {
            assert!(err.contains(n), "{ids}: {n:?} not in {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    };
    refused("[[1, 2, 3], [5]]", &["bad.json", "sample 2 has 1 token"]);
    refused("[[1, 2, 3], []]", &["bad.json", "sample 2 has 0 token"]);
    refused("[]", &["bad.json"]);
    refused("[[1, 2, \"a\"]]", &["bad.json", "sample 1, entry 3"]);
    refused(
        "[[1, 2, 3], [5, 999]]",
        &["bad.json", "sample 2", "999", "vocabulary of 128"],
    );
    std::fs::write(t.join("p.json"), "mine").unwrap();
    let (code, _, err) = run(
        t,
        &cache,
        &["probe", "m", "--token-ids", "ids.json", "--out", "p.json"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert!(
        !err.contains("probing"),
        "refused after the pass started: {err}"
    );
    assert_eq!(std::fs::read_to_string(t.join("p.json")).unwrap(), "mine");
    // More PruneMe batch than samples: no batch would be complete.
    let (code, _, err) = run(
        t,
        &cache,
        &[
            "probe",
            "m",
            "--token-ids",
            "ids.json",
            "--pruneme",
            "--pruneme-batch",
            "4",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--pruneme-batch 4") && err.contains("3 samples"),
        "{err}"
    );
}

/// The explorer shows a probe as tabs beside the model's SNR: the angular distance of blocks
/// of 2 driving the choice drops the block the file says is lowest (worked out here from
/// P.json, not by the explorer), and the file opens alone too.
#[test]
fn the_explorer_shows_a_probe_and_its_best_block_drives_the_choice() {
    use snrscope_testkit::pty::{Pty, key};
    let tmp = tempfile::tempdir().unwrap();
    let (t, cache) = (tmp.path(), tmp.path().join("cache"));
    fixture(t, "llama");
    ok(
        t,
        &cache,
        &[
            "probe",
            "m",
            "--token-ids",
            "ids.json",
            "--max-block",
            "2",
            "--out",
            "p.json",
        ],
    );
    let p = read(&t.join("p.json"));
    let layers = p["layers"].as_u64().unwrap() as usize;
    let d2 = numbers(&p["angular_distance"]["2"]);
    let best = (0..d2.len())
        .min_by(|&a, &b| d2[a].total_cmp(&d2[b]))
        .unwrap();
    let mut kept = Vec::new();
    if best > 0 {
        kept.push(format!("[0,{best})"));
    }
    if best + 2 < layers {
        kept.push(format!("[{},{layers})", best + 2));
    }
    let expect = format!("keep {}  {}/{layers} layers", kept.join(" "), layers - 2);

    let env = [("XDG_CACHE_HOME", cache.as_os_str())];
    let args = [
        t.join("m").into_os_string(),
        "--probe".into(),
        t.join("p.json").into_os_string(),
    ];
    let mut term = Pty::spawn(env!("CARGO_BIN_EXE_snrscope"), &args, &env, 160, 40);
    term.wait_text("scanned:");
    // After the value projection: BI, angle·1, angle·2; d lets the last drive.
    term.keys(&[key::TAB, key::TAB, key::TAB]);
    let s = term.wait_text("angular distance (n=2) · low = drop first");
    assert!(s.contains("BI") && s.contains("angle·1"), "{s}");
    term.keys(&["d"]);
    let s = term.wait_text("the choice now follows angle·2");
    assert!(
        s.contains("drop the block of 2 layers with the lowest angular distance (n=2)"),
        "{s}"
    );
    assert!(s.contains(&expect), "want {expect:?}:\n{s}");
    term.keys(&["q"]);
    term.wait_text("Quit?");
    term.keys(&["q"]);
    assert_eq!(term.wait_exit(), 0);
    assert!(!term.alternate());

    // Alone: Block Influence drives `lowest K`; no model, so no perplexity.
    let mut term = Pty::spawn(
        env!("CARGO_BIN_EXE_snrscope"),
        &[t.join("p.json").as_os_str()],
        &env,
        160,
        40,
    );
    let s = term.wait_text("Block Influence · low = drop first");
    assert!(s.contains("probe file"), "{s}");
    assert!(
        s.contains("drop the layer with the lowest Block Influence"),
        "{s}"
    );
    term.keys(&["p"]);
    term.wait_text("perplexity needs the model's weights");
    term.keys(&["q"]);
    assert_eq!(term.wait_exit(), 0);

    // Without a file: P probes the model from the explorer and its tabs appear.
    let mut term = Pty::spawn(
        env!("CARGO_BIN_EXE_snrscope"),
        &[t.join("m").as_os_str()],
        &env,
        160,
        40,
    );
    term.wait_text("scanned:");
    term.keys(&["P"]);
    let s = term.wait_text("probed 8 samples");
    assert!(s.contains("BI") && s.contains("angle·4"), "{s}");
    term.keys(&["q"]);
    assert_eq!(term.wait_exit(), 0);
}

/// Headless, as in the explorer: `export --probe P.json --metric angle:2 --rule lowest:1`
/// writes the YAML that drops the block P.json says is lowest, `eval --metric bi --rule
/// lowest:1` evaluates without the layer of lowest Block Influence (both worked out here from
/// P.json), and the refusals name what is wrong.
#[test]
fn export_and_eval_follow_a_probe_metric() {
    let tmp = tempfile::tempdir().unwrap();
    let (t, cache) = (tmp.path(), tmp.path().join("cache"));
    fixture(t, "llama");
    ok(
        t,
        &cache,
        &[
            "probe",
            "m",
            "--token-ids",
            "ids.json",
            "--max-block",
            "2",
            "--out",
            "p.json",
        ],
    );
    let p = read(&t.join("p.json"));
    let layers = p["layers"].as_u64().unwrap() as usize;
    let argmin = |v: &[f64]| (0..v.len()).min_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    let best = argmin(&numbers(&p["angular_distance"]["2"]));
    let (code, out, err) = run(
        t,
        &cache,
        &[
            "export",
            "m",
            "--probe",
            "p.json",
            "--metric",
            "angle:2",
            "--rule",
            "lowest:1",
            "--yaml",
            "prune.yml",
            "--model-name",
            "org/m",
            "--model-out",
            "pruned",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("scanning"), "a metric needs no scan: {err}");
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(t.join("prune.yml")).unwrap()).unwrap();
    let ranges: Vec<(usize, usize)> = yaml["slices"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| {
            let r = &s["sources"][0]["layer_range"];
            (
                r[0].as_u64().unwrap() as usize,
                r[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let mut want = Vec::new();
    if best > 0 {
        want.push((0, best));
    }
    if best + 2 < layers {
        want.push((best + 2, layers));
    }
    assert_eq!(ranges, want, "best block of 2 starts at {best}");
    let card = std::fs::read_to_string(t.join("pruned/README.md")).unwrap();
    assert!(
        card.contains("the block of 2 layers with the lowest angular distance (n=2)")
            && card.contains("arccos"),
        "{card}"
    );
    let config: Value = read(&t.join("pruned/config.json"));
    assert_eq!(config["num_hidden_layers"], layers - 2);

    let lowest_bi = argmin(&numbers(&p["block_influence"]));
    // eval scores one text: the first sample's ids.
    let samples: Value = read(&t.join("ids.json"));
    std::fs::write(t.join("one.json"), samples[0].to_string()).unwrap();
    let (code, out, err) = run(
        t,
        &cache,
        &[
            "eval",
            "m",
            "--probe",
            "p.json",
            "--metric",
            "bi",
            "--rule",
            "lowest:1",
            "--token-ids",
            "one.json",
            "--max-tokens",
            "16",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pruned"]["dropped"], serde_json::json!([lowest_bi]));
    assert!(err.contains("the 1 lowest finite Block Influence"), "{err}");

    // The infinite rule on a metric, a metric the probe lacks, another model's probe.
    let (code, _, err) = run(
        t,
        &cache,
        &[
            "export", "m", "--probe", "p.json", "--metric", "bi", "--yaml", "x.yml",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("no metric is ever infinite"), "{err}");
    let (code, _, err) = run(
        t,
        &cache,
        &[
            "export", "m", "--probe", "p.json", "--metric", "ppl", "--rule", "lowest:1", "--yaml",
            "x.yml",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("p.json: holds no perplexity without each layer"),
        "{err}"
    );
    let spec = ArchSpec::fixtures()
        .into_iter()
        .find(|s| s.name == "mistral")
        .unwrap();
    eval_models::write_model(&t.join("other"), &spec).unwrap();
    let (code, _, err) = run(
        t,
        &cache,
        &[
            "export", "other", "--probe", "p.json", "--metric", "bi", "--rule", "lowest:1",
            "--yaml", "x.yml",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("p.json: is a probe of other weights"), "{err}");
    assert!(!t.join("x.yml").exists());
}
