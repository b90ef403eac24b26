//! Mutated PyTorch `.bin` files: bytes overwritten anywhere in the archive, files cut short,
//! and pickles mutated inside an otherwise valid zip (so the opcode walker itself is driven
//! through hostile input). Opening either succeeds — and then every tensor reads without a
//! panic — or fails with a message naming the file. No panic, no abort, memory bounded: the
//! process runs under a 4 GiB address-space limit and its peak resident set must stay under
//! 512 MiB. A few hundred cases, so it stays fast (`FUZZ_BIN_CASES=30000` runs more: 30,000
//! took 20 s here, none failed).
//!
//! This binary holds only this test, so the peak it measures is its own.

use snrscope_testkit::memory;
use snrscope_testkit::torch_bin::{self as support};

use std::{
    path::Path,
    sync::atomic::{AtomicU32, Ordering},
};

use proptest::{prelude::*, test_runner::Config};
use snrscope::{checkpoint::Model, spectrum::scan};

const ADDRESS_SPACE_LIMIT: u64 = 4 << 30;
const PEAK_RSS_LIMIT_KB: i64 = 512 * 1024;

/// The committed fixtures the mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    let dir = support::fixtures();
    [
        "bf16_state_dict/pytorch_model.bin",
        "f16_sharded/pytorch_model-00001-of-00003.bin",
        "f32_parameters_proto4/pytorch_model.bin",
        "f64_fused_views/pytorch_model.bin",
        "phi3_plain/pytorch_model.bin",
    ]
    .iter()
    .map(|p| std::fs::read(dir.join(p)).unwrap())
    .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Bytes overwritten at positions given as fractions of the file (the archive's structure:
    /// local headers, data.pkl, central directory).
    Overwrite(Vec<(f64, u8)>),
    /// Cut at a fraction of the file.
    Truncate(f64),
    /// data.pkl edited (overwrite, insert, delete at fractions of its length), then zipped
    /// again properly.
    Pickle(Vec<(u8, f64, u8)>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..8).prop_map(Mutation::Overwrite),
        1 => (0.0f64..1.0).prop_map(Mutation::Truncate),
        4 => prop::collection::vec((0u8..3, 0.0f64..1.0, any::<u8>()), 1..6)
            .prop_map(Mutation::Pickle),
    ]
}

fn apply(seed: &[u8], m: &Mutation) -> Vec<u8> {
    let at = |f: f64, len: usize| ((f * len as f64) as usize).min(len.saturating_sub(1));
    match m {
        Mutation::Overwrite(edits) => {
            let mut b = seed.to_vec();
            for &(f, v) in edits {
                let i = at(f, b.len());
                b[i] = v;
            }
            b
        }
        Mutation::Truncate(f) => seed[..at(*f, seed.len())].to_vec(),
        Mutation::Pickle(edits) => {
            let mut entries = support::unzip(seed);
            let pkl = &mut entries
                .iter_mut()
                .find(|(n, _)| n.ends_with("/data.pkl"))
                .unwrap()
                .1;
            for &(op, f, v) in edits {
                let i = at(f, pkl.len());
                match op {
                    0 => pkl[i] = v,
                    1 => pkl.insert(i, v),
                    _ => {
                        pkl.remove(i);
                    }
                }
            }
            support::rezip(&entries)
        }
    }
}

/// Opens the file and, if it opens, reads every matrix and every tensor's bytes.
fn exercise(path: &Path) {
    match Model::open(path) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "the message names the file: {msg}"
            );
        }
        Ok(model) => {
            for t in &model.tensors {
                let _ = model.bytes(t).map(|b| b.len());
            }
            let mut buf = Vec::new();
            let every = regex::Regex::new(".").unwrap();
            for job in scan::jobs_matching(&model, &every) {
                let t = model.tensor(&job.tensor).unwrap();
                let _ = match &job.slice {
                    Some(Ok(s)) => model.read_slice(t, s, &mut buf),
                    _ => model.read_matrix(t, &mut buf),
                };
            }
            let _ = snrscope::spectrum::parts::fingerprint(&model);
        }
    }
}

#[test]
fn mutated_bin_files_never_panic() {
    // The limit and the peak belong to the whole process: measured alone.
    memory::in_own_process("fuzz_torch_bin::mutated_bin_files_never_panic", || {
        memory::limit_address_space(ADDRESS_SPACE_LIMIT);
        let seeds = seeds();
        let tmp = tempfile::tempdir().unwrap();
        let counter = AtomicU32::new(0);
        let opened = AtomicU32::new(0);
        let mut runner = proptest::test_runner::TestRunner::new(Config {
            cases: std::env::var("FUZZ_BIN_CASES")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(400),
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&(0..seeds.len(), mutation()), |(s, m)| {
                let bytes = apply(&seeds[s], &m);
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let path = tmp.path().join(format!("case-{n}.bin"));
                std::fs::write(&path, &bytes).unwrap();
                exercise(&path);
                if Model::open(&path).is_ok() {
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                std::fs::remove_file(&path).unwrap();
                Ok(())
            })
            .unwrap();
        let (n, ok) = (counter.into_inner(), opened.into_inner());
        let peak = memory::peak_rss_kb();
        eprintln!("{n} mutated .bin files, {ok} still opened; peak RSS {peak} KiB");
        assert!(ok > 0 && ok < n, "the mutations both break and spare files");
        assert!(peak < PEAK_RSS_LIMIT_KB, "peak RSS {peak} KiB");
    });
}
