//! Hostile GGUF headers: valid files with counts, lengths, types, offsets, n_dims and the
//! alignment overwritten by extreme values, random bytes flipped, files cut short, and headers
//! generated from scratch (random key/value types, nested arrays, tensor infos). Every case is
//! opened, and whatever opens is read through: every tensor dequantized, the tokenizer built,
//! the pruned layout computed. No panic, every error names the file, and memory stays bounded:
//! the process runs under a 4 GiB address-space limit (a runaway allocation aborts the test)
//! and its peak resident set must stay under 512 MiB.
//!
//! This binary holds only this test, so the peak it measures is its own.

use snrscope_testkit::{gguf_builder as builder, memory};

use builder::{Builder, llama};
use snrscope::{
    checkpoint::gguf::{GgufModel, Tokenizer, can_dequantize},
    export::pruned_layout,
};

const CASES: u64 = 10_000;
const ADDRESS_SPACE_LIMIT: u64 = 4 << 30;
const PEAK_RSS_LIMIT_KB: i64 = 512 * 1024;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

const EXTREMES: &[u64] = &[
    0,
    1,
    2,
    3,
    5,
    7,
    8,
    31,
    64,
    255,
    65_535,
    u32::MAX as u64,
    u32::MAX as u64 + 1,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
    u64::MAX - 7,
];

/// Valid seeds: a llama with a vocabulary, one with quantized tensors, a gemma2.
fn seeds() -> Vec<Vec<u8>> {
    let vocab = llama(2)
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_str("tokenizer.ggml.pre", "qwen2")
        .kv_strs("tokenizer.ggml.tokens", &["a", "b", "ab", "\u{120}"])
        .kv_strs("tokenizer.ggml.merges", &["a b"])
        .kv_u32("general.alignment", 32);
    let spm = llama(1)
        .kv_str("tokenizer.ggml.model", "llama")
        .kv_strs(
            "tokenizer.ggml.tokens",
            &["<unk>", "\u{2581}", "a", "<0x61>"],
        )
        .kv_array(
            "tokenizer.ggml.scores",
            builder::F32,
            &[vec![0; 4], vec![0; 4], vec![0; 4], vec![0; 4]],
        );
    let quant = Builder::new()
        .kv_str("general.architecture", "qwen2")
        .kv_u32("qwen2.block_count", 1)
        .tensor("blk.0.attn_v.weight", &[256, 2], 12, vec![0x11; 288])
        .tensor("blk.0.attn_k.weight", &[32, 2], 8, vec![0x22; 68])
        .tensor("blk.0.ffn_down.weight", &[256, 1], 14, vec![0x33; 210]);
    vec![vocab.bytes(), spm.bytes(), quant.bytes(), llama(3).bytes()]
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    // Most fields live in the first part of these small files.
    let header = b.len().min(1200);
    match rng.below(4) {
        0 => {
            for _ in 0..=rng.below(3) {
                let at = rng.below(header as u64 - 8) as usize;
                let v = rng.pick(EXTREMES);
                if rng.below(2) == 0 {
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                } else {
                    b[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
                }
            }
        }
        1 => {
            for _ in 0..=rng.below(8) {
                let at = rng.below(header as u64) as usize;
                b[at] ^= 1 << rng.below(8);
            }
        }
        2 => b.truncate(rng.below(b.len() as u64) as usize),
        _ => {
            // The counts and the version: the first fields.
            let at = rng.pick(&[4usize, 8, 16]);
            let v = rng.pick(EXTREMES);
            let w = if at == 4 { 4 } else { 8 };
            b[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
        }
    }
    b
}

fn value(rng: &mut Rng, ty: u32, depth: u32, out: &mut Vec<u8>) {
    match ty {
        0 | 1 | 7 => out.push(rng.next() as u8),
        2 | 3 => out.extend((rng.next() as u16).to_le_bytes()),
        4..=6 => out.extend((rng.next() as u32).to_le_bytes()),
        8 => {
            let n = if rng.below(8) == 0 {
                rng.pick(EXTREMES)
            } else {
                rng.below(12)
            };
            out.extend(n.to_le_bytes());
            out.extend((0..n.min(12)).map(|i| b'a' + i as u8));
        }
        9 => {
            let elem = if depth > 2 { 4 } else { rng.below(14) as u32 };
            let n = if rng.below(8) == 0 {
                rng.pick(EXTREMES)
            } else {
                rng.below(5)
            };
            out.extend(elem.to_le_bytes());
            out.extend(n.to_le_bytes());
            for _ in 0..n.min(5) {
                value(rng, elem, depth + 1, out);
            }
        }
        _ => out.extend(rng.next().to_le_bytes()),
    }
}

/// A header from scratch: random keys and value types, random tensor infos, some data.
fn generated(rng: &mut Rng) -> Vec<u8> {
    let n_kv = rng.below(6);
    let n_t = rng.below(5);
    let mut b = b"GGUF".to_vec();
    b.extend(rng.pick(&[2u32, 3, 3, 3]).to_le_bytes());
    b.extend(
        if rng.below(10) == 0 {
            rng.pick(EXTREMES)
        } else {
            n_t
        }
        .to_le_bytes(),
    );
    b.extend(
        if rng.below(10) == 0 {
            rng.pick(EXTREMES)
        } else {
            n_kv
        }
        .to_le_bytes(),
    );
    for _ in 0..n_kv {
        let key = rng.pick(&[
            "general.architecture",
            "general.alignment",
            "llama.block_count",
            "tokenizer.ggml.model",
            "tokenizer.ggml.tokens",
            "split.count",
            "x",
        ]);
        // Keys repeat now and then (a duplicate is refused).
        b.extend(builder::string(key));
        let ty = rng.below(14) as u32;
        b.extend(ty.to_le_bytes());
        value(rng, ty, 0, &mut b);
    }
    for i in 0..n_t {
        b.extend(builder::string(&format!("blk.{}.attn_v.weight", i)));
        let nd = if rng.below(10) == 0 {
            rng.pick(EXTREMES) as u32
        } else {
            rng.below(4) as u32 + 1
        };
        b.extend(nd.to_le_bytes());
        for _ in 0..nd.min(6) {
            let d = if rng.below(6) == 0 {
                rng.pick(EXTREMES)
            } else {
                rng.pick(&[1u64, 2, 32, 256])
            };
            b.extend(d.to_le_bytes());
        }
        b.extend((rng.below(42) as u32).to_le_bytes());
        let off = if rng.below(4) == 0 {
            rng.pick(EXTREMES)
        } else {
            32 * rng.below(4)
        };
        b.extend(off.to_le_bytes());
    }
    b.resize(b.len().next_multiple_of(32), 0);
    let data = rng.below(2048) as usize;
    b.extend((0..data).map(|_| rng.next() as u8));
    b
}

fn exercise(m: &GgufModel) {
    for t in m.tensors() {
        if can_dequantize(t.info.ggml_type) && t.info.n_bytes < (64 << 20) {
            let _ = t.to_f64();
            let _ = t.dequantize_rows::<f32>(0..t.info.n_rows().min(2));
        }
        let _ = t.read_raw(0..t.info.n_rows().min(1));
        let _ = snrscope::checkpoint::gguf::names::hf_name(m.arch().unwrap_or(""), &t.info.name);
    }
    if let Ok(tok) = Tokenizer::from_model(m) {
        let _ = tok.encode("a b ab \u{e9}");
    }
    if let Some(n) = m.block_count() {
        let _ = pruned_layout(m, &[0]);
        let _ = pruned_layout(m, &[n.saturating_sub(1)]);
    }
}

#[test]
fn hostile_headers_are_refused_with_bounded_memory() {
    // The limit and the peak belong to the whole process: measured alone.
    memory::in_own_process(
        "gguf_fuzz::hostile_headers_are_refused_with_bounded_memory",
        || {
            memory::limit_address_space(ADDRESS_SPACE_LIMIT);

            let d = tempfile::tempdir().unwrap();
            let seeds = seeds();
            for s in &seeds {
                let p = d.path().join("seed.gguf");
                std::fs::write(&p, s).unwrap();
                exercise(&GgufModel::open(&p).expect("seeds are valid"));
            }
            let mut rng = Rng(0x5EED_6A6F);
            let (mut opened, mut refused) = (0, 0);
            for case in 0..CASES {
                let bytes = if case % 3 == 2 {
                    generated(&mut rng)
                } else {
                    let s = rng.pick(&[0usize, 1, 2, 3]);
                    mutate(&mut rng, &seeds[s])
                };
                let name = format!("case-{case}.gguf");
                let p = d.path().join(&name);
                std::fs::write(&p, &bytes).unwrap();
                match GgufModel::open(&p) {
                    Ok(m) => {
                        opened += 1;
                        exercise(&m);
                    }
                    Err(e) => {
                        refused += 1;
                        let msg = e.to_string();
                        assert!(
                            msg.contains(&name),
                            "case {case}: the error names the file: {msg}"
                        );
                    }
                }
                std::fs::remove_file(&p).unwrap();
            }
            // Both outcomes are exercised in quantity.
            assert!(
                opened > CASES / 20 && refused > CASES / 4,
                "opened {opened}, refused {refused}"
            );

            let peak = memory::peak_rss_kb();
            assert!(peak < PEAK_RSS_LIMIT_KB, "peak RSS {peak} KiB");
        },
    );
}
