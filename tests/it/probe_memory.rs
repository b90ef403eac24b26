//! The probe's memory does not grow with the model: the same width at 4 and at 16 layers,
//! probed (every block size, PruneMe's rows) by `snrscope probe` in a child process whose peak
//! resident set its probe file reports. Holding the 12 extra layers in f32 would cost ~150 MB
//! more, and keeping every layer's hidden states would grow with the layer count too; the
//! bound allows a fraction of that for allocator noise. (`--ppl` is left out: it runs L+1
//! models at once, whose activations do grow with L; see the README.)

use std::path::Path;

use snrscope_testkit::eval_models;

fn model(dir: &Path, layers: usize) {
    eval_models::write_wide_llama(dir, layers).unwrap();
}

/// Peak RSS of `snrscope probe` on the model, as its probe file reports it.
fn peak(dir: &Path, ids: &Path) -> u64 {
    let out = dir.with_extension("probe.json");
    let o = crate::snrscope()
        .args(["probe".as_ref(), dir.as_os_str()])
        .args(["--token-ids".as_ref(), ids.as_os_str()])
        .args(["--out".as_ref(), out.as_os_str()])
        .args(["--pruneme", "--threads", "2", "--no-cache"])
        .run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(v["block_influence"][0].as_f64().unwrap().is_finite());
    v["peak_rss_bytes"].as_u64().unwrap()
}

#[test]
fn probe_peak_memory_does_not_grow_with_the_layer_count() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = tmp.path().join("ids.json");
    let sample = |seed: usize| -> Vec<usize> { (0..64).map(|i| (i * 37 + seed) % 2048).collect() };
    let samples = vec![sample(11), sample(500), sample(1200)];
    std::fs::write(&ids, serde_json::to_string(&samples).unwrap()).unwrap();
    let (small, large) = (tmp.path().join("l4"), tmp.path().join("l16"));
    model(&small, 4);
    model(&large, 16);
    let (p4, p16) = (peak(&small, &ids), peak(&large, &ids));
    println!(
        "probe peak RSS: 4 layers {} MB, 16 layers {} MB",
        p4 >> 20,
        p16 >> 20
    );
    assert!(
        p16 < p4 + (40 << 20),
        "16 layers peaked at {} MB, 4 layers at {} MB",
        p16 >> 20,
        p4 >> 20
    );
}
