//! `snrscope eval` on a Yi-34B-shaped model (60 layers, hidden 7168, intermediate 20480, 56
//! heads / 8 KV heads, vocab 64000, BF16, 68.8 GB of tensors) written as sparse files: headers
//! and norms only, every matrix a hole (zeros cost the forward pass the same arithmetic and
//! reads as real values). Runs the release binary as a user would:
//! `snrscope eval MODEL --drop 2,5 --token-ids IDS --max-tokens 128 --json`, and prints its
//! peak resident set (the bar: ≤ 2 GB), time and tokens/s.
//!
//! Then `snrscope probe MODEL --token-ids IDS --max-tokens 128 --pruneme --out P.json` on the
//! same tokens (one sample of 128; every block size), its peak resident set against the same
//! bar (the metrics themselves are NaN on zero weights; only memory and time are measured).
//!
//! Manual (minutes, not for CI): `cargo build --release && cargo bench --bench eval_34b`.
//! `SNRSCOPE_BENCH_DIR=DIR` keeps the model there (it takes ~no disk);
//! `SNRSCOPE_BENCH_RUN=eval` or `=probe` runs only that command.

use std::{
    fs::File,
    io::{Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

const LAYERS: usize = 60;
const HIDDEN: usize = 7168;
const KV: usize = 1024;
const FF: usize = 20480;
const VOCAB: usize = 64000;
const SHARD_LIMIT: u64 = 5_000_000_000;

fn tensors() -> Vec<(String, Vec<usize>)> {
    let mut t = vec![("model.embed_tokens.weight".to_string(), vec![VOCAB, HIDDEN])];
    for l in 0..LAYERS {
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
            t.push((format!("model.layers.{l}.{n}"), s));
        }
    }
    t.push(("model.norm.weight".into(), vec![HIDDEN]));
    t.push(("lm_head.weight".into(), vec![VOCAB, HIDDEN]));
    t
}

/// Writes the sparse model (norms hold ones, everything else is a hole).
fn write_sparse_model(dir: &Path) -> u64 {
    let bytes_of = |s: &[usize]| s.iter().product::<usize>() as u64 * 2;
    let mut shards: Vec<Vec<(String, Vec<usize>)>> = vec![Vec::new()];
    let mut acc = 0;
    for t in tensors() {
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
    let mut total = 0u64;
    let one = half::bf16::from_f32(1.0).to_le_bytes();
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
            places.push((name.clone(), off, b));
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
        for (name, o, b) in places {
            if name.ends_with("norm.weight") {
                f.seek(SeekFrom::Start(start + o)).unwrap();
                f.write_all(&one.repeat(b as usize / 2)).unwrap();
            }
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&index).unwrap(),
    )
    .unwrap();
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "num_hidden_layers": LAYERS, "hidden_size": HIDDEN, "intermediate_size": FF,
        "num_attention_heads": 56, "num_key_value_heads": 8, "vocab_size": VOCAB,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 5000000.0,
        "hidden_act": "silu", "tie_word_embeddings": false, "torch_dtype": "bfloat16"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    total
}

fn main() {
    let keep = std::env::var_os("SNRSCOPE_BENCH_DIR").map(PathBuf::from);
    let tmp = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let dir = keep.unwrap_or_else(|| tmp.path().join("yi-34b-shaped"));
    std::fs::create_dir_all(&dir).unwrap();
    let total = write_sparse_model(&dir);
    let ids = dir.join("ids.txt");
    let list: Vec<String> = (0..128)
        .map(|i| ((i * 7919 + 13) % VOCAB).to_string())
        .collect();
    std::fs::write(&ids, list.join(" ")).unwrap();
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .ancestors()
        .nth(2)
        .map(|d| d.join("snrscope"))
        .filter(|p| p.is_file())
        .expect("target/release/snrscope: run `cargo build --release` first");
    println!(
        "sparse Yi-34B-shaped model: {:.1} GB of BF16 tensors in {}",
        total as f64 / 1e9,
        dir.display()
    );
    let run = std::env::var("SNRSCOPE_BENCH_RUN").unwrap_or_default();
    if run != "probe" {
        bench_eval(&bin, &dir, &ids);
    }
    if run != "eval" {
        bench_probe(&bin, &dir, &ids);
    }
}

fn bench_eval(bin: &Path, dir: &Path, ids: &Path) {
    let started = Instant::now();
    let out = Command::new(bin)
        .arg("eval")
        .arg(dir)
        .args([
            "--drop",
            "2,5",
            "--max-tokens",
            "128",
            "--json",
            "--token-ids",
        ])
        .arg(ids)
        .output()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        std::process::exit(1);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rss = v["peak_rss_bytes"].as_u64().unwrap_or(0);
    println!(
        "snrscope eval --drop 2,5 --max-tokens 128: {secs:.0} s wall, pass {:.0} s, {:.2} tokens/s \
         (original + pruned, 256 tokens through the model), peak RSS {:.2} GB (estimate {:.2} GB), bar ≤ 2 GB: {}",
        v["original"]["forward_seconds"].as_f64().unwrap_or(0.0),
        v["original"]["tokens_per_second"].as_f64().unwrap_or(0.0),
        rss as f64 / 1e9,
        v["memory_estimate_bytes"].as_u64().unwrap_or(0) as f64 / 1e9,
        if rss <= 2_000_000_000 {
            "met"
        } else {
            "NOT met"
        }
    );
}

fn bench_probe(bin: &Path, dir: &Path, ids: &Path) {
    let out_file = dir.with_extension("probe.json");
    let started = Instant::now();
    let out = Command::new(bin)
        .arg("probe")
        .arg(dir)
        .args([
            "--max-tokens",
            "128",
            "--pruneme",
            "--no-cache",
            "--force",
            "--token-ids",
        ])
        .arg(ids)
        .arg("--out")
        .arg(&out_file)
        .output()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        std::process::exit(1);
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    let rss = v["peak_rss_bytes"].as_u64().unwrap_or(0);
    println!(
        "snrscope probe --max-tokens 128 --pruneme ({} sample(s), {} tokens, blocks 1..{}): {secs:.0} s \
         wall, pass {:.0} s, peak RSS {:.2} GB, bar ≤ 2 GB: {}",
        v["samples"],
        v["tokens"],
        v["max_block"],
        v["timings"]["forward_seconds"].as_f64().unwrap_or(0.0),
        rss as f64 / 1e9,
        if rss <= 2_000_000_000 {
            "met"
        } else {
            "NOT met"
        }
    );
}
