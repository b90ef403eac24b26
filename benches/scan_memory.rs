//! A Yi-34B-shaped model (60 layers, hidden 7168, GQA v_proj 1024x7168, BF16, 69 GB of
//! tensors in 14 shards) written as sparse files: only the v_proj matrices hold real data, the
//! rest are holes, so it costs ~0.9 GB of disk. Measures, in one run:
//! - opening it (headers only) against reading the same header bytes by hand;
//! - the v_proj scan's peak RSS against the bytes it reads, and its throughput against one
//!   matrix's SVD time.
//!
//! Run: `cargo bench --bench scan_memory` (Linux: reads /proc/self/status).

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
    path::Path,
    sync::Arc,
    time::Instant,
};

use faer::Par;
use snrscope::{
    checkpoint::Model,
    demo::{Rng, encode, gaussian},
    spectrum::{
        scan::{self, ScanOptions},
        snr::{SvdWorkspace, matrix_snr},
    },
};

const LAYERS: usize = 60;
const HIDDEN: usize = 7168;
const KV: usize = 1024;
const FF: usize = 20480;
const VOCAB: usize = 64000;
const SHARD_LIMIT: u64 = 5_000_000_000;

fn status_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn tensors() -> Vec<(String, Vec<usize>)> {
    let mut t = vec![("model.embed_tokens.weight".to_string(), vec![VOCAB, HIDDEN])];
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        for (n, s) in [
            ("input_layernorm.weight", vec![HIDDEN]),
            ("self_attn.q_proj.weight", vec![HIDDEN, HIDDEN]),
            ("self_attn.k_proj.weight", vec![KV, HIDDEN]),
            ("self_attn.v_proj.weight", vec![KV, HIDDEN]),
            ("self_attn.o_proj.weight", vec![HIDDEN, HIDDEN]),
            ("post_attention_layernorm.weight", vec![HIDDEN]),
            ("mlp.gate_proj.weight", vec![FF, HIDDEN]),
            ("mlp.up_proj.weight", vec![FF, HIDDEN]),
            ("mlp.down_proj.weight", vec![HIDDEN, FF]),
        ] {
            t.push((format!("{p}.{n}"), s));
        }
    }
    t.push(("model.norm.weight".into(), vec![HIDDEN]));
    t.push(("lm_head.weight".into(), vec![VOCAB, HIDDEN]));
    t
}

/// Writes the sparse model; returns (total tensor bytes, v_proj bytes).
fn write_sparse_model(dir: &Path) -> (u64, u64) {
    let all = tensors();
    let bytes_of = |s: &[usize]| s.iter().product::<usize>() as u64 * 2;
    let mut shards: Vec<Vec<(String, Vec<usize>)>> = vec![Vec::new()];
    let mut acc = 0;
    for t in all {
        let b = bytes_of(&t.1);
        if acc + b > SHARD_LIMIT && !shards.last().unwrap().is_empty() {
            shards.push(Vec::new());
            acc = 0;
        }
        acc += b;
        shards.last_mut().unwrap().push(t);
    }
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    let mut rng = Rng::new(34);
    let (mut total, mut vbytes) = (0u64, 0u64);
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, n);
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let mut off = 0u64;
        let mut places = Vec::new();
        for (name, shape) in shard {
            let b = bytes_of(shape);
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [off, off + b]}),
            );
            places.push((name.clone(), off));
            weight_map.insert(name.clone(), file.clone().into());
            off += b;
        }
        total += off;
        let mut h = serde_json::to_vec(&header).unwrap();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let start = 8 + h.len() as u64;
        let mut f = File::create(dir.join(&file)).unwrap();
        f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
        f.write_all(&h).unwrap();
        f.set_len(start + off).unwrap();
        for (name, o) in places {
            if name.ends_with("v_proj.weight") {
                let data = encode(
                    safetensors::Dtype::BF16,
                    &gaussian(&mut rng, KV * HIDDEN, 0.02),
                );
                f.seek(SeekFrom::Start(start + o)).unwrap();
                f.write_all(&data).unwrap();
                vbytes += data.len() as u64;
            }
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({"model_type": "llama", "num_hidden_layers": LAYERS, "hidden_size": HIDDEN, "torch_dtype": "bfloat16"}).to_string(),
    )
    .unwrap();
    (total, vbytes)
}

fn read_headers_by_hand(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let mut f = File::open(&p).unwrap();
            let mut len = [0u8; 8];
            f.read_exact(&mut len).unwrap();
            let mut h = vec![0u8; u64::from_le_bytes(len) as usize];
            f.read_exact(&mut h).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&h).unwrap();
            n += v.as_object().unwrap().len();
        }
    }
    n
}

fn main() {
    let base = std::env::var_os("SNRSCOPE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let t = Instant::now();
    let (total, vbytes) = write_sparse_model(dir.path());
    println!(
        "wrote a sparse Yi-34B-shaped model: {:.1} GB of tensors, {:.0} MB of v_proj data, in {:.1} s",
        total as f64 / 1e9,
        vbytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // Open: best of 3, against parsing the same headers with plain reads.
    let open = (0..3)
        .map(|_| {
            let t = Instant::now();
            let m = Model::open(dir.path()).unwrap();
            std::hint::black_box(&m);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let by_hand = (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(read_headers_by_hand(dir.path()));
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let model = Arc::new(Model::open(dir.path()).unwrap());
    println!(
        "open: {:.1} ms for {} tensors in {} shards; plain header read {:.1} ms; ratio {:.2}",
        open * 1e3,
        model.tensors.len(),
        model.shards.len(),
        by_hand * 1e3,
        open / by_hand
    );

    // One matrix alone, for the throughput baseline.
    let stack = model.layout.main_stack().unwrap();
    let jobs = scan::jobs_for_module(&model, stack, "self_attn.v_proj");
    let mut buf = Vec::new();
    let (r, c) = model
        .read_matrix_by_name(&jobs[0].tensor, &mut buf)
        .unwrap();
    let t = Instant::now();
    matrix_snr(&buf, r, c, Par::Seq, &mut SvdWorkspace::default()).unwrap();
    let one = t.elapsed().as_secs_f64();
    drop(buf);

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    reset_peak_rss();
    let rss_before = status_kb("VmRSS:");
    let t = Instant::now();
    let results = scan::scan_blocking(
        model.clone(),
        jobs.clone(),
        ScanOptions {
            threads,
            ..Default::default()
        },
    );
    let secs = t.elapsed().as_secs_f64();
    let peak = status_kb("VmHWM:");
    assert_eq!(results.len(), LAYERS);
    assert!(results.iter().all(|r| r.outcome.is_ok()));
    println!(
        "scan of {LAYERS} v_proj on {threads} threads: {secs:.1} s ({:.2} matrices/s); one matrix alone {one:.2} s; speed-up over serial {:.2}x",
        LAYERS as f64 / secs,
        one * LAYERS as f64 / secs
    );
    println!(
        "peak RSS during the scan: {:.0} MB (before: {:.0} MB); bytes read: {:.0} MB BF16 = {:.0} MB as f64; peak / bytes read = {:.2}; peak / model size = {:.4}",
        peak as f64 / 1e3,
        rss_before as f64 / 1e3,
        vbytes as f64 / 1e6,
        vbytes as f64 * 4.0 / 1e6,
        peak as f64 * 1e3 / vbytes as f64,
        peak as f64 * 1e3 / total as f64
    );
}
