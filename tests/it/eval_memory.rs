//! The streamed forward pass's memory does not grow with the model: the same width at 4 and at
//! 16 layers, each evaluated (original + pruned) by `snrscope eval` in a child process whose
//! peak resident set it reports. Holding the 12 extra layers in f32 would cost ~150 MB more;
//! the bound allows a fraction of that for allocator noise.

use std::path::Path;

use snrscope_testkit::eval_models;

fn model(dir: &Path, layers: usize) {
    eval_models::write_wide_llama(dir, layers).unwrap();
}

/// Peak RSS of `snrscope eval` on the model, as its JSON reports it.
fn peak(dir: &Path, ids: &Path) -> u64 {
    let o = crate::snrscope()
        .args(["eval".as_ref(), dir.as_os_str()])
        .args([
            "--drop",
            "1,2",
            "--max-tokens",
            "128",
            "--threads",
            "2",
            "--json",
        ])
        .args(["--token-ids".as_ref(), ids.as_os_str()])
        .run();
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(v["pruned"]["perplexity"].as_f64().unwrap().is_finite());
    v["peak_rss_bytes"].as_u64().unwrap()
}

#[test]
fn peak_memory_does_not_grow_with_the_layer_count() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = tmp.path().join("ids.txt");
    let list: Vec<String> = (0..128)
        .map(|i| ((i * 37 + 11) % 2048).to_string())
        .collect();
    std::fs::write(&ids, list.join(" ")).unwrap();
    let (small, large) = (tmp.path().join("l4"), tmp.path().join("l16"));
    model(&small, 4);
    model(&large, 16);
    let (p4, p16) = (peak(&small, &ids), peak(&large, &ids));
    println!(
        "peak RSS: 4 layers {} MB, 16 layers {} MB",
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
