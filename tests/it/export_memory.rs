//! The pruned-model writer's memory does not grow with the model: exporting 300 MB and 900 MB
//! models raises the peak resident set by about one copy chunk. Alone in its own test binary,
//! since the measure is process-wide. Linux only (reads /proc/self/status).

use snrscope_testkit::memory;
use snrscope_testkit::models as support;

use snrscope::{
    checkpoint::Model,
    export::{self, ExportOptions},
    util::cancel::CancelToken,
};

/// Peak RSS growth (KB) while exporting a sparse model of `layers` x 75 MiB.
fn export_peak_growth_kb(root: &std::path::Path, layers: usize) -> (u64, u64) {
    let src = root.join(format!("src{layers}"));
    support::sparse_model(&src, layers);
    let model = Model::open(&src).unwrap();
    let plan = support::plan(layers, &[1]);
    let out = root.join(format!("out{layers}"));
    // Resets VmHWM to the current RSS (Linux >= 4.0); without the reset an earlier, higher
    // peak would hide the writer's, so the test insists on it.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS via clear_refs");
    let before = memory::status_kb("VmRSS:");
    let s = export::export_model(
        &model,
        &plan,
        &ExportOptions::new(out.clone()),
        &mut |_| {},
        &CancelToken::default(),
    )
    .unwrap();
    let peak = memory::status_kb("VmHWM:");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&src).unwrap();
    (peak.saturating_sub(before), s.bytes / 1024)
}

#[cfg(target_os = "linux")]
#[test]
fn peak_rss_is_independent_of_model_size() {
    // The limit and the peak belong to the whole process: measured alone.
    memory::in_own_process(
        "export_memory::peak_rss_is_independent_of_model_size",
        || {
            let tmp = tempfile::tempdir().unwrap();
            let (small, small_kb) = export_peak_growth_kb(tmp.path(), 4);
            let (large, large_kb) = export_peak_growth_kb(tmp.path(), 12);
            eprintln!(
                "peak RSS growth: {small} KB for {small_kb} KB written, {large} KB for {large_kb} KB"
            );
            // One 16 MiB chunk of source pages, the 1 MiB write buffer, headers: well under 64 MiB.
            assert!(small < 64 * 1024, "{small} KB");
            assert!(large < 64 * 1024, "{large} KB while writing {large_kb} KB");
        },
    );
}
