//! The value projection inside fused q/k/v weights: proof that the part snrscope calls V is V.
//!
//! For each fused layout, a generated model's fused tensor is read, the rows (or columns)
//! snrscope's derived module selects are zeroed, and one attention layer is computed over a few
//! positions by `attention` below: the output must then be the same at every position (it no
//! longer depends on the values — with a bias, every value vector is the bias, so each output
//! is that bias whatever the attention weights). Zeroing any other part of the same size must
//! not have that effect.
//!
//! `attention` is independent of snrscope's slicing code (src/fused.rs): it does not know which
//! rows are "V"; it computes the projection's output and splits it into q, k and v the way
//! each architecture's forward pass in transformers 5 does (`view` / `split` / `chunk` of the
//! output vector, quoted at each arm), then runs plain causal softmax attention in f64.

#![allow(clippy::single_range_in_vec_init)]

use std::sync::Arc;

use snrscope::{
    checkpoint::{
        Model,
        slice::{Axis, TensorSlice},
    },
    spectrum::scan::{self, ScanOptions},
};
use snrscope_testkit::fused_models::{Arch, ArchSpec, write_arch_model};

const POSITIONS: usize = 5;

struct Attn {
    arch: Arch,
    hidden: usize,
    heads: usize,
    kv_heads: usize,
}

impl Attn {
    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// q (heads), k and v (kv heads) of one position, from the fused projection's output `y`.
    #[allow(clippy::type_complexity)]
    fn split(&self, y: &[f64]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let (h, hd, nh, nkv) = (self.hidden, self.head_dim(), self.heads, self.kv_heads);
        let chunk = |v: &[f64], n: usize| -> Vec<Vec<f64>> {
            (0..n).map(|i| v[i * hd..(i + 1) * hd].to_vec()).collect()
        };
        match self.arch {
            // Phi3Attention.forward: query_pos = H·hd; q = qkv[..., :query_pos],
            // k = qkv[..., query_pos : query_pos + KV·hd], v = qkv[..., query_pos + KV·hd:].
            // DbrxAttention.forward: qkv_states.split([hidden, KV·hd, KV·hd], dim=2).
            Arch::Phi3 | Arch::Dbrx => {
                let (q, rest) = y.split_at(nh * hd);
                let (k, v) = rest.split_at(nkv * hd);
                (chunk(q, nh), chunk(k, nkv), chunk(v, nkv))
            }
            // GPT2Attention.forward: self.c_attn(h).split(self.split_size, dim=2).
            Arch::Gpt2 => (
                chunk(&y[..h], nh),
                chunk(&y[h..2 * h], nh),
                chunk(&y[2 * h..], nh),
            ),
            // GPTNeoXAttention.forward: view(..., -1, 3 * head_size), then chunk(3, dim=-1).
            Arch::GptNeox => {
                let per: Vec<&[f64]> = y.chunks(3 * hd).collect();
                (
                    per.iter().map(|p| p[..hd].to_vec()).collect(),
                    per.iter().map(|p| p[hd..2 * hd].to_vec()).collect(),
                    per.iter().map(|p| p[2 * hd..].to_vec()).collect(),
                )
            }
            // FalconAttention._split_heads (new_decoder_architecture):
            // view(batch, seq, -1, num_heads // num_kv_heads + 2, head_dim);
            // query = qkv[:, :, :, :-2], key = qkv[:, :, :, [-2]], value = qkv[:, :, :, [-1]].
            Arch::FalconNew => {
                let g = nh / nkv;
                let groups: Vec<&[f64]> = y.chunks((g + 2) * hd).collect();
                let mut q = Vec::new();
                for grp in &groups {
                    q.extend(chunk(&grp[..g * hd], g));
                }
                (
                    q,
                    groups
                        .iter()
                        .map(|p| p[g * hd..(g + 1) * hd].to_vec())
                        .collect(),
                    groups.iter().map(|p| p[(g + 1) * hd..].to_vec()).collect(),
                )
            }
            Arch::Qwen2Vl => unreachable!(),
        }
    }

    /// One causal attention layer over `x` (positions x hidden): the concatenated head
    /// outputs per position.
    fn run(
        &self,
        w: &[f64],
        shape: (usize, usize),
        bias: Option<&[f64]>,
        x: &[Vec<f64>],
    ) -> Vec<Vec<f64>> {
        let (rows, cols) = shape;
        let project = |xt: &[f64]| -> Vec<f64> {
            let out_dim = if self.arch == Arch::Gpt2 { cols } else { rows };
            (0..out_dim)
                .map(|o| {
                    let dot: f64 = if self.arch == Arch::Gpt2 {
                        // Conv1D.forward: x @ weight (weight is in x out).
                        (0..rows).map(|i| xt[i] * w[i * cols + o]).sum()
                    } else {
                        // nn.Linear: weight is out x in.
                        (0..cols).map(|i| w[o * cols + i] * xt[i]).sum()
                    };
                    dot + bias.map_or(0.0, |b| b[o])
                })
                .collect()
        };
        let parts: Vec<_> = x.iter().map(|xt| self.split(&project(xt))).collect();
        let hd = self.head_dim();
        let scale = 1.0 / (hd as f64).sqrt();
        let group = self.heads / self.kv_heads;
        (0..x.len())
            .map(|t| {
                let mut out = Vec::with_capacity(self.heads * hd);
                for head in 0..self.heads {
                    let kvh = head / group;
                    let q = &parts[t].0[head];
                    let scores: Vec<f64> = (0..=t)
                        .map(|s| {
                            scale
                                * q.iter()
                                    .zip(&parts[s].1[kvh])
                                    .map(|(a, b)| a * b)
                                    .sum::<f64>()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for d in 0..hd {
                        out.push((0..=t).map(|s| e[s] / z * parts[s].2[kvh][d]).sum());
                    }
                }
                out
            })
            .collect()
    }
}

fn same_at_every_position(out: &[Vec<f64>]) -> bool {
    let scale = out
        .iter()
        .flatten()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-300);
    out.iter().all(|o| {
        o.iter()
            .zip(&out[0])
            .all(|(a, b)| (a - b).abs() <= 1e-12 * scale)
    })
}

fn zeroed(w: &[f64], shape: (usize, usize), part: &TensorSlice) -> Vec<f64> {
    let mut w = w.to_vec();
    let (rows, cols) = shape;
    for r in &part.ranges {
        for i in r.clone() {
            match part.axis {
                Axis::Rows => w[i * cols..(i + 1) * cols]
                    .iter_mut()
                    .for_each(|v| *v = 0.0),
                Axis::Cols => (0..rows).for_each(|row| w[row * cols + i] = 0.0),
            }
        }
    }
    w
}

/// Contiguous parts of the fused axis the size of V (the "thirds", or the equal blocks for
/// grouped-query layouts), plus the Q and K parts as each forward pass reads them.
fn other_parts(axis: Axis, len: usize, v_len: usize, v: &TensorSlice) -> Vec<TensorSlice> {
    let mut out = Vec::new();
    let mut start = 0;
    while start + v_len <= len {
        let p = TensorSlice {
            axis,
            ranges: vec![start..start + v_len],
        };
        let same = {
            let mut a: Vec<usize> = v.ranges.iter().flat_map(|r| r.clone()).collect();
            a.sort_unstable();
            a == (start..start + v_len).collect::<Vec<_>>()
        };
        if !same {
            out.push(p);
        }
        start += v_len;
    }
    out
}

fn check_layout(arch: Arch) {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ArchSpec::tiny(arch, 3, &[1]);
    write_arch_model(tmp.path(), &spec).unwrap();
    let model = Model::open(tmp.path()).unwrap();
    let stack = model.main_stack().unwrap();
    let derived = stack.default_module().unwrap().to_string();
    assert!(derived.contains(" ⊂ "), "{arch:?}: default {derived}");
    let jobs = scan::jobs_for_module(&model, stack, &derived);
    assert_eq!(jobs.len(), 3);
    let attn = Attn {
        arch,
        hidden: spec.hidden,
        heads: spec.heads,
        kv_heads: spec.kv_heads,
    };
    let mut rng = snrscope::demo::Rng::new(42);
    let x: Vec<Vec<f64>> = (0..POSITIONS)
        .map(|_| (0..spec.hidden).map(|_| rng.normal()).collect())
        .collect();
    for job in &jobs {
        let t = model.tensor(&job.tensor).unwrap();
        let mut w = Vec::new();
        let shape = model.read_matrix(t, &mut w).unwrap();
        let bias_name = job.tensor.replace(".weight", ".bias");
        let bias = model.tensor(&bias_name).map(|b| {
            let mut v = Vec::new();
            assert!(snrscope::checkpoint::decode_f64(
                b.dtype,
                &model.bytes(b).unwrap(),
                &mut v
            ));
            v
        });
        let v = job.slice.clone().unwrap().unwrap();
        // Unchanged weights: the output depends on the position.
        assert!(!same_at_every_position(&attn.run(
            &w,
            shape,
            bias.as_deref(),
            &x
        )));
        // V zeroed: the same output at every position.
        let out = attn.run(&zeroed(&w, shape, &v), shape, bias.as_deref(), &x);
        assert!(
            same_at_every_position(&out),
            "{arch:?}: zeroing snrscope's V part"
        );
        // Any other part of V's size zeroed: still depends on the position.
        let len = match v.axis {
            Axis::Rows => shape.0,
            Axis::Cols => shape.1,
        };
        let others = other_parts(v.axis, len, v.len(), &v);
        assert!(others.len() >= 2, "{arch:?}");
        for p in others {
            let out = attn.run(&zeroed(&w, shape, &p), shape, bias.as_deref(), &x);
            assert!(
                !same_at_every_position(&out),
                "{arch:?}: zeroing {:?} {:?} also removed the values",
                p.axis,
                p.ranges
            );
        }
        // What the scan reads is exactly the selected part of the tensor.
        let mut part = Vec::new();
        let (r, c) = model.read_slice(t, &v, &mut part).unwrap();
        assert_eq!(part, v.extract(&w, shape.0, shape.1));
        assert_eq!(job.shape, vec![r, c]);
    }
}

#[test]
fn phi3_v_rows_are_the_values() {
    check_layout(Arch::Phi3);
}

#[test]
fn gpt2_v_columns_are_the_values() {
    check_layout(Arch::Gpt2);
}

#[test]
fn gpt_neox_v_rows_are_the_values() {
    check_layout(Arch::GptNeox);
}

#[test]
fn falcon_new_decoder_v_rows_are_the_values() {
    check_layout(Arch::FalconNew);
}

#[test]
fn dbrx_v_rows_are_the_values() {
    check_layout(Arch::Dbrx);
}

/// The seed rule on the derived module drops exactly the layers planted with an infinite-SNR
/// value part; the whole fused tensor stays available as its own module type.
#[test]
fn seed_rule_drops_the_planted_layers() {
    for arch in [
        Arch::Phi3,
        Arch::Gpt2,
        Arch::GptNeox,
        Arch::FalconNew,
        Arch::Dbrx,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let planted = [1usize, 4];
        write_arch_model(tmp.path(), &ArchSpec::tiny(arch, 6, &planted)).unwrap();
        let model = Arc::new(Model::open(tmp.path()).unwrap());
        let stack = model.main_stack().unwrap().clone();
        assert_eq!(stack.prefix, arch.stack());
        let fused = arch.fused().unwrap();
        assert!(stack.modules.contains_key(fused), "whole tensor kept");
        let derived = stack.default_module().unwrap().to_string();
        let jobs = scan::jobs_for_module(&model, &stack, &derived);
        let results = scan::scan_blocking(
            model.clone(),
            jobs.clone(),
            ScanOptions {
                threads: 2,
                ..Default::default()
            },
        );
        let inf: Vec<usize> = jobs
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.outcome.as_ref().unwrap().is_infinite())
            .map(|(j, _)| j.layer.unwrap())
            .collect();
        assert_eq!(inf, planted, "{arch:?}");
    }
}

fn write_with_config(arch: Arch, edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let spec = ArchSpec::tiny(arch, 3, &[]);
    write_arch_model(tmp.path(), &spec).unwrap();
    let mut c = spec.config();
    edit(&mut c);
    std::fs::write(tmp.path().join("config.json"), c.to_string()).unwrap();
    tmp
}

fn derived_error(dir: &std::path::Path) -> String {
    let model = Model::open(dir).unwrap();
    let stack = model.main_stack().unwrap();
    let derived = stack.default_module().unwrap();
    assert!(derived.contains(" ⊂ "), "still the default: {derived}");
    let jobs = scan::jobs_for_module(&model, stack, derived);
    let e = jobs[0].slice.clone().unwrap().unwrap_err();
    assert!(
        model.warnings.iter().any(|w| w.contains(&e)),
        "warned on open: {:?}",
        model.warnings
    );
    e
}

#[test]
fn a_missing_config_field_is_named_never_guessed() {
    let dir = write_with_config(Arch::FalconNew, |c| {
        c.as_object_mut()
            .unwrap()
            .remove("new_decoder_architecture");
    });
    let e = derived_error(dir.path());
    assert!(e.contains("\"new_decoder_architecture\""), "{e}");
    let dir = write_with_config(Arch::Phi3, |c| {
        c.as_object_mut().unwrap().remove("num_key_value_heads");
    });
    let e = derived_error(dir.path());
    assert!(e.contains("\"num_key_value_heads\""), "{e}");
    // A config that contradicts the tensor's shape is refused too.
    let dir = write_with_config(Arch::Phi3, |c| c["num_key_value_heads"] = 4.into());
    let e = derived_error(dir.path());
    assert!(e.contains("refusing to guess"), "{e}");
}

#[test]
fn an_unknown_architecture_lists_the_supported_ones() {
    let dir = write_with_config(Arch::Phi3, |c| c["model_type"] = "codegen".into());
    let e = derived_error(dir.path());
    for want in ["\"codegen\"", "phi3", "gpt_neox", "falcon", "--modules"] {
        assert!(e.contains(want), "{want}: {e}");
    }
    // Scanning the refused module reports the reason for every layer, and the whole fused
    // tensor still scans.
    let model = Arc::new(Model::open(dir.path()).unwrap());
    let stack = model.main_stack().unwrap().clone();
    let jobs = scan::jobs_for_module(&model, &stack, stack.default_module().unwrap());
    for r in scan::scan_blocking(
        model.clone(),
        jobs,
        ScanOptions {
            threads: 1,
            ..Default::default()
        },
    ) {
        assert_eq!(r.outcome.unwrap_err(), e);
    }
    let jobs = scan::jobs_for_module(&model, &stack, "self_attn.qkv_proj");
    for r in scan::scan_blocking(
        model,
        jobs,
        ScanOptions {
            threads: 1,
            ..Default::default()
        },
    ) {
        assert!(r.outcome.is_ok());
    }
}

/// A multimodal model's YAML uses mergekit's `modules:` syntax: the text decoder gets the
/// kept layers' slices, the vision tower and projector are copied whole; a single-stack
/// model keeps plain `slices:`.
#[test]
fn multimodal_yaml_uses_mergekit_modules() {
    use snrscope::{
        export,
        plan::{self, Plan},
    };
    let plan_for = |model: &Model| Plan {
        model_ref: "org/model".into(),
        stack_prefix: model.main_stack().unwrap().prefix.clone(),
        num_layers: 6,
        dropped: vec![1, 4],
        module_type: "self_attn.v_proj".into(),
        reason: String::new(),
        snr: vec![None; 6],
        dtype: "bfloat16".into(),
        mergekit_modules: plan::mergekit_modules(model),
        metric: None,
    };
    let tmp = tempfile::tempdir().unwrap();
    write_arch_model(tmp.path(), &ArchSpec::tiny(Arch::Qwen2Vl, 6, &[1, 4])).unwrap();
    let model = Model::open(tmp.path()).unwrap();
    assert_eq!(
        model.main_stack().unwrap().prefix,
        "model.language_model.layers"
    );
    let yaml = export::mergekit_yaml(&plan_for(&model)).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert!(v.get("slices").is_none(), "{yaml}");
    let modules = v["modules"].as_mapping().unwrap();
    let names: Vec<&str> = modules.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["text_decoder", "multi_modal_projector", "vision_tower"]
    );
    let ranges: Vec<Vec<u64>> = v["modules"]["text_decoder"]["slices"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| {
            let r = &s["sources"][0]["layer_range"];
            vec![r[0].as_u64().unwrap(), r[1].as_u64().unwrap()]
        })
        .collect();
    assert_eq!(ranges, [vec![0, 1], vec![2, 4], vec![5, 6]]);
    for whole in ["multi_modal_projector", "vision_tower"] {
        assert_eq!(v["modules"][whole]["models"][0]["model"], "org/model");
        assert!(v["modules"][whole].get("slices").is_none());
    }
    assert_eq!(v["merge_method"], "passthrough");

    // A multimodal architecture mergekit has no definition for: the names it infers.
    let mut c = ArchSpec::tiny(Arch::Qwen2Vl, 6, &[]).config();
    c["architectures"] = serde_json::json!(["SomeNewVLForConditionalGeneration"]);
    std::fs::write(tmp.path().join("config.json"), c.to_string()).unwrap();
    let model = Model::open(tmp.path()).unwrap();
    let m = plan::mergekit_modules(&model).unwrap();
    assert_eq!(m.text, "model.language_model.layers");
    assert_eq!(
        m.whole,
        ["model.visual.blocks", "model.visual.merger.mlp", "default"]
    );

    // One stack: plain slices.
    let tmp = tempfile::tempdir().unwrap();
    write_arch_model(tmp.path(), &ArchSpec::tiny(Arch::Phi3, 6, &[])).unwrap();
    let model = Model::open(tmp.path()).unwrap();
    assert_eq!(plan::mergekit_modules(&model), None);
    let yaml = export::mergekit_yaml(&plan_for(&model)).unwrap();
    assert!(
        yaml.contains("\nslices:\n") && !yaml.contains("modules:"),
        "{yaml}"
    );
}

/// config.json of a pruned fused model: only the layer count changes, byte for byte.
#[test]
fn pruned_config_keeps_every_other_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("m");
    write_arch_model(&src, &ArchSpec::tiny(Arch::Phi3, 6, &[1, 4])).unwrap();
    // As Python's json writes it (serde_json writes 0.00001).
    let text = std::fs::read_to_string(src.join("config.json")).unwrap();
    let text = text.replace("\"rms_norm_eps\": 0.00001", "\"rms_norm_eps\": 1e-06");
    std::fs::write(src.join("config.json"), text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_snrscope"))
        .args(["export"])
        .arg(&src)
        .arg("--model-out")
        .arg(tmp.path().join("pruned"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = std::fs::read_to_string(src.join("config.json")).unwrap();
    let after = std::fs::read_to_string(tmp.path().join("pruned/config.json")).unwrap();
    assert!(before.contains("\"rms_norm_eps\": 1e-06"), "{before}");
    assert_eq!(
        after,
        before.replace("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 4")
    );
    // The pruned model keeps the kept layers' fused tensors under new numbers.
    let pruned = Model::open(tmp.path().join("pruned")).unwrap();
    assert_eq!(pruned.main_stack().unwrap().num_layers, 4);
    assert!(
        pruned
            .tensor("model.layers.3.self_attn.qkv_proj.weight")
            .is_some()
    );
}

/// The scan cache keeps the V part of a fused tensor apart from the whole tensor: same tensor,
/// same bytes, different matrices.
#[test]
fn the_cache_never_confuses_the_value_part_with_the_whole_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("phi3");
    write_arch_model(&dir, &ArchSpec::tiny(Arch::Phi3, 4, &[1])).unwrap();
    let model = Arc::new(Model::open(&dir).unwrap());
    let stack = model.main_stack().unwrap().clone();
    let cache = Arc::new(snrscope::spectrum::cache::Cache::at(
        tmp.path().join("cache"),
    ));
    let opts = || ScanOptions {
        threads: 1,
        cache: Some(cache.clone()),
        ..Default::default()
    };
    let whole = scan::jobs_for_module(&model, &stack, "self_attn.qkv_proj");
    let part = scan::jobs_for_module(&model, &stack, "self_attn.v_proj ⊂ qkv_proj");
    let w = scan::scan_blocking(model.clone(), whole, opts());
    let p = scan::scan_blocking(model.clone(), part.clone(), opts());
    assert!(
        p.iter().all(|r| !r.cached),
        "the part was not taken from the whole"
    );
    let snr = |r: &scan::MatrixResult| r.outcome.as_ref().unwrap().snr_ratio;
    assert!(w.iter().zip(&p).all(|(a, b)| snr(a) != snr(b)));
    // The part's own entries are reused.
    let again = scan::scan_blocking(model, part, opts());
    assert!(again.iter().all(|r| r.cached));
    assert!(again.iter().zip(&p).all(|(a, b)| snr(a) == snr(b)));
}
