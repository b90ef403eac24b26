//! Pruned-GGUF export time against `cp` + `sync FILE` of the same file, and the export's peak
//! resident set, on a generated GGUF of about 1.1 GB (8 layers of F16 matrices and a Q8_0
//! embedding). The export drops one layer of eight. Runs alternate (cp, export, cp, export, ...)
//! so both see the same machine load; each ratio is from one pair, reported with the best of
//! each. The export runs in a child process (this binary again) so its peak RSS is its own.
//!
//! `cargo bench --bench gguf_export` (SNRSCOPE_BENCH_DIR=... to choose the filesystem; the
//! default is target/gguf-bench, removed afterwards).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use snrscope::{
    checkpoint::gguf::GgufModel,
    export::{Inputs, PruneOptions, write_pruned},
    util::cancel::CancelToken,
};

const LAYERS: u64 = 8;
const ROUNDS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--child-export" {
        child_export(Path::new(&args[2]), Path::new(&args[3]));
        return;
    }
    let dir = std::env::var_os("SNRSCOPE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/gguf-bench"));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("model.gguf");
    let size = generate(&src);
    println!("source: {} ({:.2} GB)", src.display(), size as f64 / 1e9);
    let (mut cp_best, mut ex_best) = (f64::MAX, f64::MAX);
    let mut peak_kb = 0i64;
    for round in 0..ROUNDS {
        let dst = dir.join("copy.gguf");
        let t = Instant::now();
        assert!(
            Command::new("cp")
                .arg(&src)
                .arg(&dst)
                .status()
                .unwrap()
                .success()
        );
        assert!(Command::new("sync").arg(&dst).status().unwrap().success());
        let cp = t.elapsed().as_secs_f64();
        std::fs::remove_file(&dst).unwrap();

        let out = dir.join("pruned.gguf");
        let t = Instant::now();
        let status = Command::new(&args[0])
            .args(["--child-export"])
            .arg(&src)
            .arg(&out)
            .status()
            .unwrap();
        let ex = t.elapsed().as_secs_f64();
        assert!(status.success());
        let out_size = std::fs::metadata(&out).unwrap().len();
        std::fs::remove_file(&out).unwrap();
        // SAFETY: getrusage fills the struct we pass.
        let children_peak = unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
            u.ru_maxrss
        };
        peak_kb = peak_kb.max(children_peak);
        println!(
            "round {round}: cp+sync {cp:.2} s ({:.0} MB/s); export {ex:.2} s for {:.2} GB written \
             ({:.0} MB/s); ratio {:.2}",
            size as f64 / 1e6 / cp,
            out_size as f64 / 1e9,
            out_size as f64 / 1e6 / ex,
            ex / cp
        );
        cp_best = cp_best.min(cp);
        ex_best = ex_best.min(ex);
    }
    println!(
        "best: cp+sync {cp_best:.2} s, export {ex_best:.2} s: ratio {:.2} (target <= 1.2; the \
         export writes 7/8 of the bytes)",
        ex_best / cp_best
    );
    println!(
        "peak RSS of the largest child (cp, sync or the export): {:.1} MB",
        peak_kb as f64 / 1024.0
    );
    if std::env::var_os("SNRSCOPE_BENCH_KEEP").is_none() {
        std::fs::remove_file(&src).unwrap();
    }
    open_time(&dir);
    let _ = std::fs::remove_dir(&dir);
}

/// Opening cost is the header's: a Llama-3-sized vocabulary (128,256 tokens, 280,147 merges,
/// scores and types) and 291 tensor infos, tensor data absent (never read by `open`).
fn open_time(dir: &Path) {
    let path = dir.join("vocab.gguf");
    let s = |v: &str, out: &mut Vec<u8>| {
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    };
    let (n_tok, n_merge, n_t) = (128_256u64, 280_147u64, 291u64);
    let mut h = b"GGUF".to_vec();
    h.extend(3u32.to_le_bytes());
    h.extend(n_t.to_le_bytes());
    h.extend(5u64.to_le_bytes());
    s("general.architecture", &mut h);
    h.extend(8u32.to_le_bytes());
    s("llama", &mut h);
    s("tokenizer.ggml.model", &mut h);
    h.extend(8u32.to_le_bytes());
    s("gpt2", &mut h);
    s("tokenizer.ggml.tokens", &mut h);
    h.extend(9u32.to_le_bytes());
    h.extend(8u32.to_le_bytes());
    h.extend(n_tok.to_le_bytes());
    for i in 0..n_tok {
        s(&format!("tok{i}"), &mut h);
    }
    s("tokenizer.ggml.token_type", &mut h);
    h.extend(9u32.to_le_bytes());
    h.extend(5u32.to_le_bytes());
    h.extend(n_tok.to_le_bytes());
    (0..n_tok).for_each(|_| h.extend(1i32.to_le_bytes()));
    s("tokenizer.ggml.merges", &mut h);
    h.extend(9u32.to_le_bytes());
    h.extend(8u32.to_le_bytes());
    h.extend(n_merge.to_le_bytes());
    for i in 0..n_merge {
        s(&format!("t{} k{}", i % 1000, i / 1000), &mut h);
    }
    for i in 0..n_t {
        s(&format!("blk.{}.t{}.weight", i / 9, i % 9), &mut h);
        h.extend(2u32.to_le_bytes());
        h.extend(4096u64.to_le_bytes());
        h.extend(1024u64.to_le_bytes());
        h.extend(30u32.to_le_bytes());
        h.extend((i * 4096 * 1024 * 2).to_le_bytes());
    }
    h.resize(h.len().next_multiple_of(32), 0);
    let header_len = h.len();
    std::fs::write(&path, &h).unwrap();
    // A sparse tail stands for the 2.4 GB of tensor data the infos describe.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(header_len as u64 + n_t * 4096 * 1024 * 2)
        .unwrap();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let m = GgufModel::open(&path).unwrap();
        times.push(t.elapsed().as_secs_f64());
        assert_eq!(m.len(), n_t as usize);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "open: a {:.1} MB header (128,256 tokens, 280,147 merges, 291 tensors): median {:.0} ms \
         over 5 opens",
        header_len as f64 / 1e6,
        times[2] * 1e3
    );
    std::fs::remove_file(&path).unwrap();
}

fn child_export(src: &Path, out: &Path) {
    let m = GgufModel::open(src).unwrap();
    let n = m.block_count().unwrap();
    let opts = PruneOptions {
        kept: (0..n).filter(|&l| l != 3).collect(),
        out: out.to_path_buf(),
        replace: false,
        inputs: Inputs::new(),
    };
    write_pruned(&m, &opts, &mut |_, _| {}, &CancelToken::default()).unwrap();
    // SAFETY: getrusage fills the struct we pass.
    let peak = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_maxrss
    };
    eprintln!("  export peak RSS {:.1} MB", peak as f64 / 1024.0);
}

/// A llama-shaped GGUF: 8 layers of 4 F16 matrices 4096x4096 (~134 MB per layer) and a Q8_0
/// embedding; the data are pseudo-random bytes (never decoded here).
fn generate(path: &Path) -> u64 {
    use std::io::Write;
    let mut tensors: Vec<(String, Vec<u64>, u32, u64)> = vec![(
        "token_embd.weight".into(),
        vec![4096, 8192],
        8,
        4096 * 8192 / 32 * 34,
    )];
    for l in 0..LAYERS {
        for m in ["attn_q", "attn_k", "attn_v", "attn_output"] {
            tensors.push((
                format!("blk.{l}.{m}.weight"),
                vec![4096, 4096],
                1,
                4096 * 4096 * 2,
            ));
        }
    }
    let s = |v: &str, out: &mut Vec<u8>| {
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    };
    let mut h = b"GGUF".to_vec();
    h.extend(3u32.to_le_bytes());
    h.extend((tensors.len() as u64).to_le_bytes());
    h.extend(2u64.to_le_bytes());
    s("general.architecture", &mut h);
    h.extend(8u32.to_le_bytes());
    s("llama", &mut h);
    s("llama.block_count", &mut h);
    h.extend(4u32.to_le_bytes());
    h.extend((LAYERS as u32).to_le_bytes());
    let mut off = 0u64;
    for (name, dims, ty, bytes) in &tensors {
        s(name, &mut h);
        h.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| h.extend(d.to_le_bytes()));
        h.extend(ty.to_le_bytes());
        h.extend(off.to_le_bytes());
        off = (off + bytes).next_multiple_of(32);
    }
    h.resize(h.len().next_multiple_of(32), 0);
    let total = h.len() as u64 + off;
    if std::fs::metadata(path).is_ok_and(|m| m.len() == total) {
        return total;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&h).unwrap();
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = off;
    while left > 0 {
        for c in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    f.into_inner().unwrap().sync_all().unwrap();
    total
}
