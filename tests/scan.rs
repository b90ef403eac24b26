//! Background scans: every job reports once, progress adds up, cancellation stops the rest;
//! `snrscope scan --out` writes JSON that Python's json module (what Spectrum and laserRMT use)
//! reads, with the oracle's keys in the oracle's order.

mod common;

use std::{process::Command, sync::Arc};

use snrscope::{
    demo::{ModelSpec, write_model},
    model::Model,
    scan::{self, ScanEvent, ScanOptions},
};

#[test]
fn every_job_reports_once_and_progress_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), &ModelSpec::tiny(10, &[3])).unwrap();
    let model = Arc::new(Model::open(dir.path()).unwrap());
    let jobs = scan::jobs_matching(&model, &regex::Regex::new("layers").unwrap());
    assert_eq!(jobs.len(), 10 * 7);
    let total_bytes: u64 = jobs.iter().map(|j| j.bytes).sum();
    let (handle, rx) = scan::start_channel(model, jobs.clone(), ScanOptions { threads: 2 });
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
    let (handle, rx) = scan::start_channel(model, jobs, ScanOptions { threads: 1 });
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

#[test]
fn scan_json_reads_in_python_like_the_oracle_output() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("m");
    let mut spec = ModelSpec::tiny(12, &[2, 10, 11]);
    spec.shards = 2;
    write_model(&model_dir, &spec).unwrap();
    let out = dir.path().join("scan.json");
    let status = Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .arg("scan")
        .arg(&model_dir)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let oracle_out = dir.path().join("oracle.json");
    let script = common::shared_dir().join("tools/snr_oracle.py");
    let st = Command::new("python3")
        .arg(&script)
        .arg(&model_dir)
        .args(["--match", "v_proj", "--out"])
        .arg(&oracle_out)
        .status()
        .unwrap();
    assert!(st.success());
    // Python loads both with json.load, as Spectrum does, and compares keys (in order), types
    // and the snr values.
    let check = r#"
import json, math, sys
ours = json.load(open(sys.argv[1]))
theirs = json.load(open(sys.argv[2]))
assert list(ours) == list(theirs), (list(ours), list(theirs))
for k in theirs:
    a, b = ours[k]["snr"], theirs[k]["snr"]
    assert ours[k]["type"] == theirs[k]["type"] == "self_attn.v_proj"
    assert (math.isinf(a) and math.isinf(b)) or abs(a - b) <= 1e-9 * max(abs(a), abs(b)), (k, a, b)
inf = [k for k in ours if math.isinf(ours[k]["snr"])]
assert inf == ["model.layers.%d.self_attn.v_proj" % i for i in (2, 10, 11)], inf
print("ok")
"#;
    let o = Command::new("python3")
        .args(["-c", check])
        .arg(&out)
        .arg(&oracle_out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("\"snr\": Infinity"), "bare Infinity token");
}

#[test]
fn table_marks_infinite_layers() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), &ModelSpec::tiny(4, &[1])).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_snrscope"))
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
