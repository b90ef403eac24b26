//! Files that change or are not what they claim: a shard that shrinks while it is read, a FIFO
//! or a device where a file should be (in the scan cache, as a scan file, a part file, a text,
//! a YAML, a model file). Each gives an error (or, for the cache, a warning) naming the file;
//! nothing blocks, nothing reads without bound, nothing dies of a signal.

use std::{
    ffi::CString,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
};

use snrscope::{
    checkpoint::Model,
    demo::{ModelSpec, write_model},
    export::{self, ExportOptions},
    forward::source::{MappedModel, WeightSource},
    spectrum::{
        cache::{Cache, FileIdentity, Key},
        scan::{self, ScanOptions},
        snr::Method,
    },
    util::cancel::CancelToken,
};
use snrscope_testkit::{memory, models as support};

/// A model of `layers` layers in two shards, large enough that scanning every matrix on one
/// thread takes a while (256-wide matrices, as in the demo).
fn two_shard_model(dir: &Path, layers: usize) -> PathBuf {
    let mut spec = ModelSpec::demo();
    spec.layers = layers;
    spec.infinite_layers = vec![1];
    spec.english_vocab = false;
    write_model(dir, &spec).unwrap();
    dir.join("model-00001-of-00002.safetensors")
}

fn shrink(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

// ---- 1. a shard that shrinks under a running read ----

/// Every reader of tensor data — the scan (as the explorer runs it too), the pruned-model
/// export, the forward pass of `eval` and `p`, the part fingerprint — meets a shard truncated
/// after the model was opened with an error naming the file. With memory maps the first read
/// past the new end was a SIGBUS that killed the process; this runs in a process of its own,
/// so such a death fails this test instead of the whole test binary.
#[test]
fn a_shard_that_shrinks_after_opening_is_an_error_naming_it() {
    memory::in_own_process(
        "hostile_files::a_shard_that_shrinks_after_opening_is_an_error_naming_it",
        || {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("m");
            let shard = two_shard_model(&dir, 4);
            let model = Arc::new(Model::open(&dir).unwrap());
            let len = std::fs::metadata(&shard).unwrap().len();
            shrink(&shard, len / 3);
            let name = "model-00001-of-00002.safetensors";
            let beyond: Vec<_> = model
                .tensors
                .iter()
                .filter(|t| {
                    model.shards[t.shard].path == shard
                        && t.range.end as u64 > len / 3
                        && t.shape.len() == 2
                })
                .collect();
            assert!(!beyond.is_empty());

            // The scan's read.
            let mut buf = Vec::new();
            for t in &beyond {
                let e = model.read_matrix(t, &mut buf).unwrap_err().to_string();
                assert!(e.contains(name) && e.contains("shrank"), "{e}");
            }
            // A whole scan: the matrices past the end fail, naming the file; the others stand.
            let jobs = scan::jobs_matching(&model, &regex::Regex::new("layers").unwrap());
            let results = scan::scan_blocking(
                model.clone(),
                jobs,
                ScanOptions {
                    threads: 2,
                    method: Method::Svd,
                    cache: None,
                },
            );
            let failed: Vec<&String> = results
                .iter()
                .filter_map(|r| r.outcome.as_ref().err())
                .collect();
            assert!(!failed.is_empty());
            assert!(failed.iter().all(|e| e.contains(name)), "{failed:?}");
            assert!(results.iter().any(|r| r.outcome.is_ok()));

            // The export's copy.
            let out = tmp.path().join("out");
            let e = export::export_model(
                &model,
                &support::plan(4, &[1]),
                &ExportOptions::new(&out),
                &mut |_| {},
                &CancelToken::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(name) && e.contains("shrank"), "{e}");
            assert!(!out.exists());

            // The forward pass's banded read.
            let source = MappedModel::new(model.clone());
            let t = beyond[0];
            let mut rows = Vec::new();
            let e = source
                .read_rows(&t.name, 0..t.shape[0], &mut rows)
                .unwrap_err();
            assert!(e.contains(name) && e.contains("shrank"), "{e}");

            // The fingerprint of a part file reads samples: it still finishes.
            let _ = snrscope::spectrum::parts::fingerprint(&model);
        },
    );
}

/// The pid's open descriptors point at `file`.
#[cfg(target_os = "linux")]
fn has_open(pid: u32, file: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == file))
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}

/// Cache entries written so far (one per scanned matrix).
fn entries_in(cache: &Path) -> usize {
    walk(cache)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "snr"))
        .count()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Runs `snrscope ARGS` on a two-shard model and truncates its first shard to 1,000,000 bytes
/// as soon as the process has it open (stopped meanwhile with SIGSTOP, so the truncation lands
/// before the reads are done; if every matrix was already scanned when it stopped, the run is
/// repeated). Returns the exit code (-1 for a signal) and stderr.
#[cfg(target_os = "linux")]
fn run_while_a_shard_shrinks(args: &[&str], matrices: usize) -> (i32, String) {
    for _attempt in 0..3 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        let shard = two_shard_model(&dir, 12);
        let shard = std::fs::canonicalize(shard).unwrap();
        let cache = tmp.path().join("cache");
        let mut child = Command::new(env!("CARGO_BIN_EXE_snrscope"))
            .args(args)
            .arg(&dir)
            .env("SNRSCOPE_CACHE_DIR", &cache)
            .current_dir(tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !has_open(pid, &shard) {
            assert!(
                std::time::Instant::now() < deadline,
                "the shard was never opened"
            );
            if child.try_wait().unwrap().is_some() {
                break;
            }
        }
        signal(pid, libc::SIGSTOP);
        let too_late = entries_in(&cache) >= matrices;
        shrink(&shard, 1_000_000);
        signal(pid, libc::SIGCONT);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if too_late {
            eprintln!("every matrix was read before the truncation; again");
            continue;
        }
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(out.status.signal(), None, "killed by a signal: {stderr}");
        return (out.status.code().unwrap_or(-1), stderr);
    }
    panic!("three runs finished reading before the shard could be truncated");
}

/// The reproduction: `scan M --modules '.*' --threads 1` while the shard shrinks. It
/// was "Bus error", exit 135; now the matrices past the new end fail with the file named, and
/// the scan finishes with exit 3 (some matrices could not be scanned) — or 1 if the shard
/// shrank before its header was checked.
#[cfg(target_os = "linux")]
#[test]
fn scan_while_a_shard_shrinks_reports_the_file() {
    let (code, err) =
        run_while_a_shard_shrinks(&["scan", "--modules", ".*", "--threads", "1"], 12 * 7);
    assert!(code == 3 || code == 1, "exit {code}: {err}");
    assert!(
        err.contains("model-00001-of-00002.safetensors"),
        "the file is named: {err}"
    );
}

/// The same for `export --model-out` (which scans, then copies): exit 1 naming the file, and no
/// pruned model left behind.
#[cfg(target_os = "linux")]
#[test]
fn export_while_a_shard_shrinks_reports_the_file() {
    let (code, err) =
        run_while_a_shard_shrinks(&["export", "--model-out", "out", "--threads", "1"], 12);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("model-00001-of-00002.safetensors"),
        "the file is named: {err}"
    );
}

// ---- 2. the scan cache: FIFOs, devices ----

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in a temporary folder of this test.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Where the cache keeps the entry of `model`'s tensor `name` (SVD): a scan with a cache of
/// its own writes it, and the test finds it by its key's hash.
fn entry_path(cache: &Path, model: &Model, name: &str) -> PathBuf {
    let t = model.tensor(name).unwrap();
    let id = FileIdentity::of(&model.shards[t.shard].path).unwrap();
    let key = Key::new(&id, t, Method::Svd);
    Cache::at(cache).entry_path(&key)
}

/// A FIFO, a link to /dev/zero and a link to a FIFO standing where cache entries belong: the
/// export neither blocks (it blocked for ever, deaf to SIGTERM) nor reads without end (4.4 GB
/// from /dev/zero); each is named in a warning and the matrix is recomputed.
#[cfg(unix)]
#[test]
fn special_files_in_the_scan_cache_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    write_model(&dir, &ModelSpec::tiny(4, &[1])).unwrap();
    let model = Model::open(&dir).unwrap();
    let cache = tmp.path().join("cache");
    let fifo = entry_path(&cache, &model, "model.layers.0.self_attn.v_proj.weight");
    let zero = entry_path(&cache, &model, "model.layers.1.self_attn.v_proj.weight");
    let to_fifo = entry_path(&cache, &model, "model.layers.2.self_attn.v_proj.weight");
    for p in [&fifo, &zero, &to_fifo] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    }
    mkfifo(&fifo);
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .args(["export", "m", "--threads", "1"])
        .env("SNRSCOPE_CACHE_DIR", &cache)
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A hang is a failure, not a test that never ends: after a minute it is stopped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("export blocked on a special file in the scan cache");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("FIFO"), "{err}");
    assert!(err.contains("character device"), "{err}");
    for p in [&fifo, &zero, &to_fifo] {
        assert!(
            err.contains(&p.display().to_string()),
            "{} named: {err}",
            p.display()
        );
    }
    assert!(err.contains("0 of 4 matrices reused, 4 computed"), "{err}");
}

/// A cache entry longer than its key says it can be (a valid entry with bytes appended) is
/// refused from its size, before it is read.
#[test]
fn an_oversized_cache_entry_is_refused_before_it_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    write_model(&dir, &ModelSpec::tiny(2, &[])).unwrap();
    let model = Arc::new(Model::open(&dir).unwrap());
    let cache = tmp.path().join("cache");
    let name = "model.layers.0.self_attn.v_proj.weight";
    let jobs: Vec<_> = scan::jobs_matching(
        &model,
        &regex::Regex::new("layers.0.self_attn.v_proj").unwrap(),
    );
    let options = ScanOptions {
        threads: 1,
        method: Method::Svd,
        cache: Some(Arc::new(Cache::at(&cache))),
    };
    scan::scan_blocking(model.clone(), jobs.clone(), options);
    let entry = entry_path(&cache, &model, name);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&entry)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 4096]).unwrap();
    let c = Arc::new(Cache::at(&cache));
    let again = scan::scan_blocking(
        model.clone(),
        jobs,
        ScanOptions {
            threads: 1,
            method: Method::Svd,
            cache: Some(c.clone()),
        },
    );
    assert!(!again[0].cached);
    let w = c.take_warnings().join("\n");
    assert!(
        w.contains(&entry.display().to_string()) && w.contains("bytes"),
        "{w}"
    );
}

// ---- 3. inputs that are not regular files ----

/// `--scan /dev/zero`, `scan --merge /dev/zero`, a FIFO as the scan file, the text, the YAML:
/// refused at once, by name (it read 4.4 GB in 3 s from /dev/zero, or blocked on a FIFO).
#[cfg(unix)]
#[test]
fn devices_and_fifos_as_inputs_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    write_model(&dir, &ModelSpec::tiny(4, &[1])).unwrap();
    let fifo = tmp.path().join("scan.json");
    mkfifo(&fifo);
    let fifo_s = fifo.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["export", "m", "--scan", "/dev/zero", "--yaml", "p.yml"],
            "/dev/zero",
            "character device",
        ),
        (
            vec!["scan", "--merge", "/dev/zero", "--out", "s.json"],
            "/dev/zero",
            "character device",
        ),
        (
            vec!["export", fifo_s, "--yaml", "p.yml", "--model-name", "x"],
            fifo_s,
            "FIFO",
        ),
        (
            vec!["export", "m", "--scan", fifo_s, "--yaml", "p.yml"],
            fifo_s,
            "FIFO",
        ),
        (
            vec!["scan", "--merge", fifo_s, "--out", "s.json"],
            fifo_s,
            "FIFO",
        ),
        (
            vec!["eval", "m", "--drop", "1", "--text", fifo_s],
            fifo_s,
            "FIFO",
        ),
        (vec!["eval", "m", "--yaml", fifo_s], fifo_s, "FIFO"),
        (
            vec!["eval", "m", "--drop", "1", "--token-ids", "/dev/zero"],
            "/dev/zero",
            "character device",
        ),
        (
            vec!["probe", "m", "--token-ids", fifo_s, "--out", "p.json"],
            fifo_s,
            "FIFO",
        ),
        (
            vec!["probe", "--merge", fifo_s, "--out", "p.json"],
            fifo_s,
            "FIFO",
        ),
    ];
    for (args, named, what) in cases {
        let mut child = Command::new(env!("CARGO_BIN_EXE_snrscope"))
            .args(&args)
            .env("SNRSCOPE_CACHE_DIR", tmp.path().join("cache"))
            .current_dir(tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{args:?} blocked");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(named) && err.contains(what), "{args:?}: {err}");
        assert!(!tmp.path().join("p.yml").exists());
    }
}

/// A model folder whose config.json or shard is a FIFO, or a link to /dev/zero.
#[cfg(unix)]
#[test]
fn special_files_in_a_model_folder_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    for (file, special) in [
        ("config.json", "fifo"),
        ("model.safetensors", "fifo"),
        ("config.json", "zero"),
        ("model.safetensors", "zero"),
    ] {
        let dir = tmp.path().join(format!("{file}-{special}"));
        write_model(&dir, &ModelSpec::tiny(2, &[])).unwrap();
        let p = dir.join(file);
        std::fs::remove_file(&p).unwrap();
        if special == "fifo" {
            mkfifo(&p);
        } else {
            std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        }
        let (code, _, err) = crate::snrscope()
            .args(["scan".as_ref(), dir.as_os_str()])
            .run()
            .parts();
        assert_eq!(code, 1, "{file} {special}: {err}");
        assert!(
            err.contains(file) && err.contains("not a regular file"),
            "{err}"
        );
    }
}
