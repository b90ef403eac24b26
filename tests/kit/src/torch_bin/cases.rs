//! The models behind the committed PyTorch `.bin` fixtures of `tests/torch_bin/`: each case's
//! safetensors "twin" is written by snrscope's own generator, and
//! `tests/torch_bin/make_fixtures.py` (run once, with a pinned torch) loaded those exact bytes
//! and `torch.save`d them in the case's style. The tests build the twins again (checking their
//! sha256 against `manifest.json`) and compare the `.bin` with its twin: same tensors, same
//! bytes, same SNR, same export.
//!
//! Changing a case changes its twin: run `python3 tests/torch_bin/make_fixtures.py` afterwards
//! and commit the new fixtures.

use std::path::Path;

use safetensors::Dtype;
use snrscope::demo::{ModelSpec, write_model};

use crate::fused_models::{Arch, ArchSpec, write_arch_model};

pub struct BinCase {
    /// The fixture folder `tests/torch_bin/<name>/`.
    pub name: &'static str,
    /// How make_fixtures.py saved it (see that script):
    /// - `state_dict`: `torch.save(OrderedDict)` with `_metadata`, as `torch.save(model.state_dict())`;
    /// - `sharded`: one plain dict per shard plus `pytorch_model.bin.index.json`, as
    ///   transformers' `save_pretrained(safe_serialization=False)`;
    /// - `parameters_proto4`: every value an `nn.Parameter`, `pickle_protocol=4`;
    /// - `fused_views`: each layer's q/k/v projections are row views of one storage (non-zero
    ///   storage offsets, several tensors per storage);
    /// - `plain`: a plain dict, protocol 2.
    pub style: &'static str,
    build: fn(&Path),
}

impl BinCase {
    /// Writes the case's safetensors twin into `dir` (created).
    pub fn build(&self, dir: &Path) {
        (self.build)(dir)
    }
}

/// A Llama-style model small enough that its fixture is a few KB.
fn small(layers: usize, infinite: &[usize], dtype: Dtype, seed: u64) -> ModelSpec {
    let mut s = ModelSpec::tiny(layers, infinite);
    s.hidden = 8;
    s.heads = 2;
    s.kv_heads = 1;
    s.intermediate = 12;
    s.vocab = 16;
    s.dtype = dtype;
    s.seed = seed;
    s
}

fn small_arch(arch: Arch, infinite: &[usize]) -> ArchSpec {
    let mut s = ArchSpec::tiny(arch, 3, infinite);
    s.hidden = 16;
    s.heads = 2;
    s.kv_heads = if arch == Arch::Gpt2 { 2 } else { 1 };
    s.intermediate = 24;
    s.vocab = 16;
    s
}

pub const BIN_CASES: &[BinCase] = &[
    BinCase {
        name: "bf16_state_dict",
        style: "state_dict",
        build: |d| write_model(d, &small(4, &[1], Dtype::BF16, 21)).unwrap(),
    },
    BinCase {
        name: "f16_sharded",
        style: "sharded",
        build: |d| {
            let mut s = small(4, &[0, 3], Dtype::F16, 22);
            s.shards = 3;
            write_model(d, &s).unwrap()
        },
    },
    BinCase {
        name: "f32_parameters_proto4",
        style: "parameters_proto4",
        build: |d| write_model(d, &small(3, &[2], Dtype::F32, 23)).unwrap(),
    },
    BinCase {
        name: "f64_fused_views",
        style: "fused_views",
        build: |d| write_model(d, &small(3, &[1], Dtype::F64, 24)).unwrap(),
    },
    BinCase {
        // V rows of a fused qkv_proj: read_slice on a .bin.
        name: "phi3_plain",
        style: "plain",
        build: |d| write_arch_model(d, &small_arch(Arch::Phi3, &[1])).unwrap(),
    },
    BinCase {
        // V columns of a Conv1D c_attn: read_slice along columns on a .bin.
        name: "gpt2_plain",
        style: "plain",
        build: |d| write_arch_model(d, &small_arch(Arch::Gpt2, &[0, 2])).unwrap(),
    },
];

pub fn case(name: &str) -> &'static BinCase {
    BIN_CASES
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no .bin case {name}"))
}

/// sha256 (hex) of a file.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// sha256 of every `.safetensors` file in `dir`, by file name.
pub fn safetensors_hashes(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("listing a twin folder") {
        let path = entry.expect("listing a twin folder").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".safetensors") {
            out.insert(name, sha256_file(&path));
        }
    }
    out
}
