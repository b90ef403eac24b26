//! Forward-pass speed of the perplexity evaluation (snrscope's streamed pass, f32) against PyTorch's
//! (transformers, float32, eager attention) on the same model, windows and threads, in the same
//! run, as ratios; and the peak resident set of each.
//! Run: `cargo bench --bench eval` (the PyTorch side needs python3 with torch and
//! transformers; without them it reports n/a).

use std::{process::Command, sync::Arc};

use snrscope::{
    checkpoint::Model,
    demo::{self, ModelSpec},
    forward::{self, EvalOptions, tokens},
    util::cancel::CancelToken,
};
use snrscope_testkit::eval_models::{self, ArchSpec};

const WINDOW: usize = 512;

/// tokens/s of the best of two runs of the streamed forward over `ids` (weights read and
/// converted from the checkpoint inside the timed pass).
fn rust_rate(model: &Arc<Model>, ids: &[u32], threads: usize) -> f64 {
    let options = EvalOptions {
        threads,
        window: Some(WINDOW),
        ..Default::default()
    };
    (0..2)
        .map(|_| {
            let r = forward::evaluate(
                model,
                ids,
                &[Vec::new()],
                &options,
                &CancelToken::default(),
                |_| {},
                None,
            );
            let p = r
                .into_iter()
                .next()
                .flatten()
                .expect("ran")
                .expect("evaluates");
            p.tokens_per_second
        })
        .fold(0.0, f64::max)
}

/// (tokens/s, peak RSS bytes) of transformers over the same windows.
fn torch_rate(dir: &std::path::Path, ids: &[u32], threads: usize) -> Option<(f64, u64)> {
    let script = format!(
        "import sys, time, json, resource, torch\n\
         from transformers import AutoModelForCausalLM\n\
         torch.set_num_threads({threads})\n\
         m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32, attn_implementation='eager').eval()\n\
         ids = json.load(open(sys.argv[2]))\n\
         w = [ids[s:s+{WINDOW}] for s in range(0, len(ids), {WINDOW}) if len(ids[s:s+{WINDOW}]) >= 2]\n\
         best = 0.0\n\
         with torch.no_grad():\n\
         \x20   for _ in range(2):\n\
         \x20       t = time.perf_counter()\n\
         \x20       for x in w: m(torch.tensor([x])).logits\n\
         \x20       best = max(best, sum(map(len, w)) / (time.perf_counter() - t))\n\
         print(best, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n"
    );
    let ids_file = dir.join("bench-ids.json");
    std::fs::write(&ids_file, serde_json::to_string(ids).ok()?).ok()?;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script]).arg(dir).arg(&ids_file);
    cmd.env("OMP_NUM_THREADS", threads.to_string());
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!(
            "torch failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn main() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let demo_dir = tmp.path().join("demo");
    demo::write_model(&demo_dir, &ModelSpec::demo()).expect("demo model");
    // Matrices of a real model's width: the demo's are so small that per-op overhead, not
    // arithmetic, sets its speed.
    let wide_dir = tmp.path().join("wide");
    let wide = ModelSpec {
        layers: 4,
        hidden: 1024,
        heads: 16,
        kv_heads: 4,
        intermediate: 2816,
        vocab: 4096,
        infinite_layers: vec![1],
        english_vocab: false,
        ..ModelSpec::demo()
    };
    demo::write_model(&wide_dir, &wide).expect("wide model");
    let gemma = ArchSpec {
        layers: 8,
        hidden: 256,
        heads: 8,
        kv_heads: 4,
        head_dim: 32,
        intermediate: 512,
        vocab: 1024,
        max_positions: 1024,
        ..ArchSpec::fixtures()
            .into_iter()
            .find(|s| s.name == "gemma2")
            .expect("gemma2")
    };
    let gemma_dir = tmp.path().join("gemma2");
    eval_models::write_model(&gemma_dir, &gemma).expect("gemma2 model");
    let phi3 = ArchSpec {
        name: "phi3".into(),
        arch: eval_models::Arch::Phi3,
        seed: 0xf13,
        extra_config: Default::default(),
        ..gemma.clone()
    };
    let phi3_dir = tmp.path().join("phi3");
    eval_models::write_model(&phi3_dir, &phi3).expect("phi3 model");
    let cases = [
        (
            "demo (llama, 24 layers, one pass per window)",
            demo_dir,
            2048,
        ),
        (
            "wide llama (4 layers, hidden 1024, 75M params, one pass per window)",
            wide_dir,
            1024,
        ),
        ("gemma2 (8 layers × hidden 256)", gemma_dir, 1024),
        ("phi3 (8 layers × hidden 256)", phi3_dir, 1024),
    ];
    println!(
        "forward pass, f32, windows of {WINDOW} tokens, best of 2; {cores} cores; ratio = snrscope tokens/s / torch tokens/s"
    );
    for (name, dir, n_tokens) in cases {
        let model = Arc::new(Model::open(&dir).expect("open"));
        let vocab = model
            .config
            .as_ref()
            .and_then(|c| c["vocab_size"].as_u64())
            .unwrap_or(2);
        let text = eval_models::sample_text(5, n_tokens, vocab as usize);
        let ids = tokens::tokenize(&dir.join("tokenizer.json"), &text).expect("tokenize");
        println!("{name}: {} tokens", ids.len());
        for threads in [1, cores] {
            let c = rust_rate(&model, &ids, threads);
            let t = torch_rate(&dir, &ids, threads);
            let (rate, ratio, rss) = match t {
                Some((r, rss)) => (
                    format!("{r:>8.0}"),
                    format!("{:.2}x", c / r),
                    snrscope::util::bytes::human_bytes(rss),
                ),
                None => ("n/a".into(), "n/a".into(), "n/a".into()),
            };
            println!(
                "  {threads} thread(s): snrscope {c:>8.0} tok/s  torch {rate} tok/s  ratio {ratio}  torch peak RSS {rss}"
            );
        }
    }
    println!(
        "snrscope peak RSS (this process, all models): {}",
        forward::memory::peak_rss().map_or("n/a".into(), snrscope::util::bytes::human_bytes)
    );
}
