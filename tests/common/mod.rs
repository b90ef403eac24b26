//! Helpers shared by the core integration tests.
#![allow(dead_code)]

use std::{path::PathBuf, process::Command};

pub fn shared_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"))
}

/// Runs `shared/tools/snr_oracle.py` (numpy) on `model` and parses its JSON. Fails the test,
/// never skips it, when python3 or numpy is missing: CI installs them.
pub fn run_oracle(model: &std::path::Path, pattern: &str) -> snrscope::pyjson::PyJson {
    let script = shared_dir().join("tools/snr_oracle.py");
    assert!(script.is_file(), "oracle missing at {}", script.display());
    let out = Command::new("python3")
        .arg(&script)
        .arg(model)
        .args(["--match", pattern])
        .output()
        .expect("python3 must be installed to run the SNR oracle");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    // Python writes Infinity / NaN bare; json5 reads them.
    snrscope::pyjson::PyJson::parse(&text).expect("oracle output parses")
}
