//! The models whose oracle SNR is committed under `tests/golden/`: one definition, read by the
//! tests (which build each model and compare snrscope with the committed values) and by the
//! `golden_models` example (which builds the same models for `tests/golden/regenerate.py`).
//!
//! Changing a case changes its model: run `python3 tests/golden/regenerate.py` afterwards.

use std::path::{Path, PathBuf};

use safetensors::Dtype;
use snrscope::{
    demo::{ModelSpec, Rng, encode, power_law, write_model},
    scanfile::pyjson::PyJson,
};

use crate::fused_models::{Arch, ArchSpec, write_arch_model};

pub struct Case {
    /// Also the golden file's name: `tests/golden/<name>.json`.
    pub name: &'static str,
    /// What the oracle and snrscope are pointed at, relative to the case's folder ("" = the
    /// folder itself).
    pub target: &'static str,
    /// The oracle's `--match` regular expression.
    pub pattern: &'static str,
    /// Run the oracle on a hand-extracted part of each matching tensor instead of the whole
    /// tensor (the V part of a fused q/k/v projection).
    pub extract: Option<Extract>,
    build: fn(&Path),
}

/// "Hand-extract these rows (or columns) of every tensor the case's pattern matches, and run
/// the oracle on that": `tests/golden/regenerate.py` copies the listed ranges' bytes of each
/// such tensor into `<case>-extracted/model.safetensors` (same tensor names and dtype) and runs
/// the unmodified oracle on that file. The ranges are written out by hand below from each
/// architecture's attention code in transformers — not computed by `src/fused.rs`, whose V
/// slices they check.
pub struct Extract {
    /// `"rows"` or `"cols"` of the stored tensor.
    pub axis: &'static str,
    /// Half-open ranges along `axis`, concatenated in this order.
    pub ranges: &'static [(usize, usize)],
}

impl Case {
    /// Writes the case's model into `dir` (created).
    pub fn build(&self, dir: &Path) {
        (self.build)(dir)
    }
}

fn spec(layers: usize, infinite: &[usize], f: impl FnOnce(&mut ModelSpec)) -> ModelSpec {
    let mut s = ModelSpec::tiny(layers, infinite);
    f(&mut s);
    s
}

fn write(dir: &Path, s: &ModelSpec) {
    write_model(dir, s).expect("writing a test model");
}

pub const CASES: &[Case] = &[
    Case {
        name: "bf16_gqa_sharded",
        target: "",
        pattern: "v_proj",
        extract: None,
        build: |d| write(d, &spec(12, &[0, 4, 5, 11], |s| s.shards = 3)),
    },
    Case {
        // q/k/o/mlp, embeddings and lm_head too: rectangular both ways and square.
        name: "bf16_every_matrix",
        target: "",
        pattern: ".",
        extract: None,
        build: |d| write(d, &ModelSpec::tiny(3, &[1])),
    },
    Case {
        name: "f16_single_file",
        target: "model.safetensors",
        pattern: "v_proj",
        extract: None,
        build: |d| {
            write(
                d,
                &spec(6, &[2, 3], |s| {
                    s.dtype = Dtype::F16;
                    s.seed = 11;
                }),
            )
        },
    },
    Case {
        // No GQA: v_proj is square.
        name: "f32_square",
        target: "",
        pattern: "self_attn",
        extract: None,
        build: |d| {
            write(
                d,
                &spec(5, &[4], |s| {
                    s.dtype = Dtype::F32;
                    s.kv_heads = s.heads;
                    s.seed = 12;
                }),
            )
        },
    },
    Case {
        name: "f64_sharded",
        target: "",
        pattern: "v_proj|down_proj",
        extract: None,
        build: |d| {
            write(
                d,
                &spec(4, &[0, 3], |s| {
                    s.dtype = Dtype::F64;
                    s.shards = 2;
                    s.seed = 13;
                }),
            )
        },
    },
    Case {
        // A 12-layer model in two shards, the layout `snrscope scan --out` is checked on.
        name: "bf16_two_shards",
        target: "",
        pattern: "v_proj",
        extract: None,
        build: |d| write(d, &spec(12, &[2, 10, 11], |s| s.shards = 2)),
    },
    Case {
        // Tiny models keep every SVD on faer's small-matrix path; these shapes go through its
        // QR pre-reduction (tall and wide) and divide-and-conquer bidiagonal solver.
        name: "bf16_larger_shapes",
        target: "model.safetensors",
        pattern: "v_proj",
        extract: None,
        build: larger_shapes,
    },
    Case {
        // What the Gram method finds hardest, in every float dtype: a square Gaussian (its
        // smallest singular values near zero), a spectrum decaying over six decades (values the
        // Gram matrix cannot resolve, left to the SVD), a steep power law, a tall matrix with a
        // few spikes over a Gaussian bulk.
        name: "gram_stress",
        target: "model.safetensors",
        pattern: "v_proj",
        extract: None,
        build: gram_stress,
    },
    // Fused q/k/v projections, hidden 64, 4 heads of 16. The V part of each, by hand:
    Case {
        // Phi3Attention: qkv[..., :4·16] q, [64:64+2·16] k, [96:] v (2 KV heads).
        name: "phi3_fused_v",
        target: "model.safetensors",
        pattern: "qkv_proj",
        extract: Some(Extract {
            axis: "rows",
            ranges: &[(96, 128)],
        }),
        build: |d| arch(d, Arch::Phi3, &[1, 3]),
    },
    Case {
        // GPT2Attention: Conv1D weight 64 x 192, y = x @ W, split(64): v = columns 128..192.
        name: "gpt2_fused_v",
        target: "model.safetensors",
        pattern: "c_attn",
        extract: Some(Extract {
            axis: "cols",
            ranges: &[(128, 192)],
        }),
        build: |d| arch(d, Arch::Gpt2, &[0, 2]),
    },
    Case {
        // GPTNeoXAttention: view(..., 4 heads, 48) then chunk(3): head h's v is rows
        // 48h+32 .. 48h+48.
        name: "gpt_neox_fused_v",
        target: "model.safetensors",
        pattern: "query_key_value",
        extract: Some(Extract {
            axis: "rows",
            ranges: &[(32, 48), (80, 96), (128, 144), (176, 192)],
        }),
        build: |d| arch(d, Arch::GptNeox, &[2, 3]),
    },
    Case {
        // FalconAttention, new decoder: view(..., 2 KV groups, 2 + 2, 16): group g is rows
        // 64g .. 64g+64 = [q, q, k, v], its v the last 16.
        name: "falcon_new_decoder_fused_v",
        target: "model.safetensors",
        pattern: "query_key_value",
        extract: Some(Extract {
            axis: "rows",
            ranges: &[(48, 64), (112, 128)],
        }),
        build: |d| arch(d, Arch::FalconNew, &[1, 2]),
    },
    Case {
        // DbrxAttention: split([64, 2·16, 2·16]): v = rows 96..128.
        name: "dbrx_fused_v",
        target: "model.safetensors",
        pattern: "Wqkv",
        extract: Some(Extract {
            axis: "rows",
            ranges: &[(96, 128)],
        }),
        build: |d| arch(d, Arch::Dbrx, &[0, 3]),
    },
    Case {
        // Multimodal: the text stack under `model.language_model`, a vision tower beside it.
        name: "qwen2_vl_text_stack",
        target: "",
        pattern: "language_model.*v_proj",
        extract: None,
        build: |d| arch(d, Arch::Qwen2Vl, &[1, 4]),
    },
];

/// The layer count of every architecture case.
pub const ARCH_LAYERS: usize = 6;

fn arch(dir: &Path, arch: Arch, infinite: &[usize]) {
    write_arch_model(dir, &ArchSpec::tiny(arch, ARCH_LAYERS, infinite))
        .expect("writing a test model");
}

fn gram_stress(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng::new(2024);
    let decades: Vec<f64> = (0..300)
        .map(|i| 10f64.powf(-6.0 * i as f64 / 299.0))
        .collect();
    let spiked = {
        let (r, c) = (640, 160);
        let mut w = snrscope::demo::gaussian(&mut rng, r * c, 0.02);
        let spikes = snrscope::demo::with_spectrum(&mut rng, r, c, &[3.0, 2.0, 1.5, 1.0]);
        w.iter_mut().zip(spikes).for_each(|(a, b)| *a += b);
        w
    };
    let tensors: Vec<(usize, usize, Dtype, Vec<f64>)> = vec![
        (
            400,
            400,
            Dtype::F64,
            snrscope::demo::gaussian(&mut rng, 400 * 400, 0.05),
        ),
        (
            300,
            500,
            Dtype::F64,
            snrscope::demo::with_spectrum(&mut rng, 300, 500, &decades),
        ),
        (256, 768, Dtype::F32, power_law(&mut rng, 256, 768, 1.0)),
        (
            300,
            300,
            Dtype::F16,
            snrscope::demo::gaussian(&mut rng, 300 * 300, 0.05),
        ),
        (640, 160, Dtype::BF16, spiked),
    ];
    let encoded: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = tensors
        .iter()
        .enumerate()
        .map(|(i, (r, c, dtype, w))| {
            (
                format!("model.layers.{i}.self_attn.v_proj.weight"),
                vec![*r, *c],
                *dtype,
                encode(*dtype, w),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = encoded
        .iter()
        .map(|(n, s, d, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

fn larger_shapes(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng::new(99);
    let shapes = [(384usize, 1536usize), (1536, 384), (600, 600)];
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(r, c))| {
            let w = power_law(&mut rng, r, c, 0.7 + 0.2 * i as f64);
            (
                format!("model.layers.{i}.self_attn.v_proj.weight"),
                vec![r, c],
                encode(Dtype::BF16, &w),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(Dtype::BF16, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

pub fn case(name: &str) -> &'static Case {
    CASES
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no golden case {name}"))
}

/// sha256 of every `.safetensors` file under `dir`, by file name: what the golden file was
/// computed from.
pub fn weight_hashes(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::Digest as _;
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("listing a case folder") {
        let path = entry.expect("listing a case folder").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".safetensors") {
            let bytes = std::fs::read(&path).expect("reading a weight file");
            let digest = sha2::Sha256::digest(&bytes);
            out.insert(name, digest.iter().map(|b| format!("{b:02x}")).collect());
        }
    }
    out
}

pub fn golden_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../golden"))
}

/// A golden case's model, built into `dir`, with the oracle's results for it. Fails (with the
/// command that fixes it) when the model's bytes are not the ones the oracle was run on.
pub struct Golden {
    pub case: &'static Case,
    /// The case's folder.
    pub dir: PathBuf,
    /// The oracle's output: `{"model.layers.0.self_attn.v_proj": {"snr": …, …}, …}`.
    pub results: PyJson,
}

impl Golden {
    /// What the oracle was pointed at: the folder or a file in it.
    pub fn target(&self) -> PathBuf {
        if self.case.target.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(self.case.target)
        }
    }
}

pub fn golden(name: &str, dir: &Path) -> Golden {
    let case = case(name);
    case.build(dir);
    let path = golden_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run tests/golden/regenerate.py", path.display()));
    // Python writes Infinity / NaN bare; PyJson reads them.
    let file =
        PyJson::parse(&text).unwrap_or_else(|e| panic!("{}: does not parse: {e}", path.display()));
    let recorded: std::collections::BTreeMap<String, String> = file
        .get("weights")
        .and_then(PyJson::as_object)
        .expect("golden file has \"weights\"")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("hash string").to_string()))
        .collect();
    assert_eq!(
        weight_hashes(dir),
        recorded,
        "{name}: the generated model is not the one {} was computed from; the generator \
         changed: run `python3 tests/golden/regenerate.py` (needs numpy) and commit the result",
        path.display()
    );
    Golden {
        case,
        dir: dir.to_path_buf(),
        results: file
            .get("results")
            .expect("golden file has \"results\"")
            .clone(),
    }
}
