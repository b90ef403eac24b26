//! Opening a model folder (or a single `.safetensors` or PyTorch `.bin` file) without reading
//! tensor data: files are opened read-only and only their headers are parsed (for a
//! `.bin`, the zip directory and the pickle that describes the tensors: see
//! [`crate::checkpoint::torch_bin`]).

mod error;
mod from_gguf;
pub mod fused;
pub mod gguf;
mod index;
pub mod layers;
mod pickle;
mod safetensors_header;
mod shard;
pub mod slice;
mod tensor;
mod torch_bin;

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

pub use error::{MatrixError, NoLayerStack, OpenError};
pub use from_gguf::{Fixup, GgufSide};
use index::{check_index_matches, read_json, read_weight_map, shard_names};
use layers::LayerLayout;
use safetensors_header::{list_safetensors, open_shard};
pub use shard::{Shard, TensorBytes};
pub use slice::TensorSlice;
pub use tensor::{Dtype, TensorEntry, decode_f64, dtype_name};

/// How a model's weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    Safetensors,
    /// PyTorch `.bin` (torch.save's zip). Read like safetensors (each tensor is a byte range
    /// of the file); an export writes safetensors.
    PytorchBin,
    /// llama.cpp's GGUF (see `from_gguf`): tensors under their Hugging Face names, each a byte
    /// range of its part file; an export writes a pruned GGUF.
    Gguf,
}

/// An opened model: headers parsed, data untouched.
#[derive(Debug)]
pub struct Model {
    /// What the user named (folder or file).
    pub source: PathBuf,
    /// The folder holding the model's files.
    pub dir: PathBuf,
    pub config: Option<serde_json::Value>,
    pub config_path: Option<PathBuf>,
    /// Present when the model is sharded with a `model.safetensors.index.json` (or, for
    /// `.bin` shards, a `pytorch_model.bin.index.json`).
    pub index_path: Option<PathBuf>,
    pub format: WeightFormat,
    pub shards: Vec<Shard>,
    /// In natural name order.
    pub tensors: Vec<TensorEntry>,
    by_name: HashMap<String, usize>,
    pub layout: LayerLayout,
    pub warnings: Vec<String>,
    /// For a GGUF model: the file, each tensor's GGUF name, the converter's changes to undo.
    pub gguf: Option<Box<GgufSide>>,
}

const INDEX_FILE: &str = "model.safetensors.index.json";
const BIN_FILE: &str = "pytorch_model.bin";
const BIN_INDEX_FILE: &str = "pytorch_model.bin.index.json";

impl Model {
    pub fn open(path: impl AsRef<Path>) -> Result<Model, OpenError> {
        let source = path.as_ref().to_path_buf();
        let meta = std::fs::metadata(&source).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => OpenError::NotFound {
                path: source.clone(),
            },
            _ => OpenError::Io {
                path: source.clone(),
                source: e,
            },
        })?;
        if meta.is_dir() && !source.join("config.json").is_file() && from_gguf::holds_gguf(&source)
            || !meta.is_dir() && from_gguf::is_gguf_name(&source)
        {
            return from_gguf::open(&source);
        }
        let (dir, shard_names, index_path, config_path, format) = if meta.is_dir() {
            let dir = source.clone();
            let config_path = dir.join("config.json");
            // Anything by that name is read (a FIFO or a device is refused by name there).
            if !config_path.exists() {
                return Err(OpenError::MissingConfig { dir });
            }
            // safetensors first; PyTorch .bin only when the folder has no safetensors. Only
            // pytorch_model.bin or the files its index names are read: other .bin files in a
            // model folder (training_args.bin, optimizer states) are arbitrary pickles.
            let index_path = dir.join(INDEX_FILE);
            let bin_index = dir.join(BIN_INDEX_FILE);
            let safetensors = list_safetensors(&dir)?;
            let (names, index, format) = if index_path.is_file() {
                let weight_map = read_weight_map(&index_path)?;
                let names = shard_names(&dir, &index_path, &weight_map)?;
                (
                    names,
                    Some((index_path, weight_map)),
                    WeightFormat::Safetensors,
                )
            } else if !safetensors.is_empty() {
                (safetensors, None, WeightFormat::Safetensors)
            } else if bin_index.is_file() {
                let weight_map = read_weight_map(&bin_index)?;
                let names = shard_names(&dir, &bin_index, &weight_map)?;
                (
                    names,
                    Some((bin_index, weight_map)),
                    WeightFormat::PytorchBin,
                )
            } else if dir.join(BIN_FILE).is_file() {
                (vec![BIN_FILE.to_string()], None, WeightFormat::PytorchBin)
            } else if from_gguf::holds_gguf(&dir) {
                // A config.json beside a GGUF (a download of both): the GGUF is the model.
                return from_gguf::open(&source);
            } else {
                return Err(OpenError::NoSafetensors { dir });
            };
            (dir, names, index, Some(config_path), format)
        } else {
            let format = match source.extension() {
                Some(e) if e == "safetensors" => WeightFormat::Safetensors,
                _ if torch_bin::is_bin_name(&source) => WeightFormat::PytorchBin,
                _ => return Err(OpenError::NotSafetensors { path: source }),
            };
            let dir = source
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            let name = source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A lone file inside a model folder still gets that folder's config.
            let config_path = Some(dir.join("config.json")).filter(|p| p.is_file());
            (dir, vec![name], None, config_path, format)
        };
        let config = match &config_path {
            Some(p) => Some(read_json(p)?),
            None => None,
        };

        let mut shards = Vec::with_capacity(shard_names.len());
        let mut tensors = Vec::new();
        let mut owner: HashMap<String, usize> = HashMap::new();
        for file_name in shard_names {
            let path = dir.join(&file_name);
            let (shard, entries) = match format {
                WeightFormat::Safetensors => open_shard(&path, file_name, shards.len())?,
                WeightFormat::PytorchBin => torch_bin::open_shard(&path, file_name, shards.len())?,
                WeightFormat::Gguf => unreachable!("GGUF models are opened by from_gguf"),
            };
            for e in entries {
                if let Some(&first) = owner.get(&e.name) {
                    return Err(OpenError::DuplicateTensor {
                        name: e.name,
                        first: shards
                            .get(first)
                            .map(|s: &Shard| s.path.clone())
                            .unwrap_or_else(|| shard.path.clone()),
                        second: shard.path.clone(),
                    });
                }
                owner.insert(e.name.clone(), e.shard);
                tensors.push(e);
            }
            shards.push(shard);
        }
        let mut warnings = Vec::new();
        if let Some((index, weight_map)) = &index_path {
            check_index_matches(index, weight_map, &shards, &tensors, &mut warnings)?;
        }
        let index_path = index_path.map(|(p, _)| p);
        Ok(Model::assemble(
            source,
            dir,
            config,
            config_path,
            index_path,
            format,
            shards,
            tensors,
            warnings,
            None,
        ))
    }

    /// The model from its opened parts: tensors in natural name order, the layer stacks and
    /// the fused layouts found.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        source: PathBuf,
        dir: PathBuf,
        config: Option<serde_json::Value>,
        config_path: Option<PathBuf>,
        index_path: Option<PathBuf>,
        format: WeightFormat,
        shards: Vec<Shard>,
        mut tensors: Vec<TensorEntry>,
        mut warnings: Vec<String>,
        gguf: Option<Box<GgufSide>>,
    ) -> Model {
        tensors.sort_by(|a, b| layers::natural_cmp(&a.name, &b.name));
        let by_name: HashMap<String, usize> = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let config_layers = config.as_ref().and_then(layers::config_layer_count);
        let mut layout = layers::discover(
            tensors
                .iter()
                .map(|t| (t.name.as_str(), t.shape.as_slice())),
            config_layers,
        );
        warnings.extend(layout.warnings.iter().cloned());
        let shape_of = |name: &str| by_name.get(name).map(|&i: &usize| tensors[i].shape.clone());
        warnings.extend(fused::derive(config.as_ref(), &mut layout, &shape_of));
        Model {
            source,
            dir,
            config,
            config_path,
            index_path,
            format,
            shards,
            tensors,
            by_name,
            layout,
            warnings,
            gguf,
        }
    }

    /// How a tensor is named in its file: its GGUF name for a GGUF model (`blk.3.attn_v.weight`),
    /// else the name itself. For messages.
    pub fn file_name_of(&self, name: &str) -> String {
        self.gguf
            .as_ref()
            .and_then(|g| g.gguf_name(name))
            .unwrap_or_else(|| name.to_string())
    }

    /// The key a scan file gives `module`: its GGUF module for a GGUF model (`blk.3.attn_v`),
    /// else the module itself.
    pub fn scan_key(&self, module: &str) -> String {
        self.gguf
            .as_ref()
            .and_then(|g| g.gguf_module(module))
            .unwrap_or_else(|| module.to_string())
    }

    /// The module a scan-file key names in this model (the inverse of [`Model::scan_key`]);
    /// a key that is not a GGUF module is returned as it is.
    pub fn module_of_key(&self, key: &str) -> String {
        self.gguf
            .as_ref()
            .and_then(|g| g.hf_module(key))
            .unwrap_or_else(|| key.to_string())
    }

    /// The transformer's main layer stack (see [`layers::discover`]).
    pub fn main_stack(&self) -> Result<&layers::Stack, NoLayerStack> {
        self.layout.main_stack().ok_or_else(|| NoLayerStack {
            path: self.source.clone(),
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor's raw little-endian bytes, read from its shard.
    pub fn bytes(&self, t: &TensorEntry) -> Result<TensorBytes, MatrixError> {
        self.shards[t.shard].read(t.range.clone())
    }

    /// Bytes `within` of the tensor's own bytes (0 is its first byte), read from its shard.
    pub fn bytes_within(
        &self,
        t: &TensorEntry,
        within: std::ops::Range<usize>,
    ) -> Result<TensorBytes, MatrixError> {
        if within.start > within.end || within.end > t.range.end - t.range.start {
            return Err(MatrixError::Unreadable {
                path: self.shards[t.shard].path.clone(),
                problem: format!(
                    "{}: bytes {}..{} lie outside its {} bytes",
                    t.name,
                    within.start,
                    within.end,
                    t.range.end - t.range.start
                ),
            });
        }
        self.shards[t.shard].read(t.range.start + within.start..t.range.start + within.end)
    }

    /// Asks the kernel to start reading the tensor's pages now, asynchronously: a sequential
    /// copy (the export) then finds them in the page cache instead of faulting them in one
    /// small read-around window at a time, which on a cold cache is several times slower.
    pub(crate) fn prefetch(&self, t: &TensorEntry) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = self.shards[t.shard].file.as_raw_fd();
            // SAFETY: a valid open descriptor; the call only advises the page cache.
            unsafe {
                libc::posix_fadvise(
                    fd,
                    t.range.start as libc::off_t,
                    (t.range.end - t.range.start) as libc::off_t,
                    libc::POSIX_FADV_WILLNEED,
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = t;
    }

    /// Converts a 2-D tensor to row-major f64 in `out` (reused across calls).
    pub fn read_matrix(
        &self,
        t: &TensorEntry,
        out: &mut Vec<f64>,
    ) -> Result<(usize, usize), MatrixError> {
        let (rows, cols) = t.matrix_shape().ok_or_else(|| MatrixError::NotMatrix {
            name: t.name.clone(),
            shape: t.shape.clone(),
        })?;
        if !t.is_scannable_dtype() {
            return Err(MatrixError::UnsupportedDtype {
                name: t.name.clone(),
                dtype: dtype_name(t.dtype),
            });
        }
        out.clear();
        self.shards[t.shard].read_f64(t.dtype, t.range.clone(), out)?;
        Ok((rows, cols))
    }

    /// Converts part of a 2-D tensor (e.g. the V rows of a fused projection) to row-major f64
    /// in `out`. Only the selected bytes are read.
    pub fn read_slice(
        &self,
        t: &TensorEntry,
        slice: &TensorSlice,
        out: &mut Vec<f64>,
    ) -> Result<(usize, usize), MatrixError> {
        use slice::Axis;
        let (rows, cols) = t.matrix_shape().ok_or_else(|| MatrixError::NotMatrix {
            name: t.name.clone(),
            shape: t.shape.clone(),
        })?;
        let unsupported = || MatrixError::UnsupportedDtype {
            name: t.name.clone(),
            dtype: dtype_name(t.dtype),
        };
        if !t.is_scannable_dtype() {
            return Err(unsupported());
        }
        let limit = match slice.axis {
            Axis::Rows => rows,
            Axis::Cols => cols,
        };
        if let Some(r) = slice
            .ranges
            .iter()
            .find(|r| r.start > r.end || r.end > limit)
        {
            return Err(MatrixError::Unreadable {
                path: self.shards[t.shard].path.clone(),
                problem: format!(
                    "{}: part {}..{} lies outside its {rows}x{cols} shape",
                    t.name, r.start, r.end
                ),
            });
        }
        let shard = &self.shards[t.shard];
        out.clear();
        match slice.axis {
            Axis::Rows => {
                // Quantized rows are whole blocks: rows are byte ranges of every dtype.
                let row_bytes = t.row_bytes().unwrap_or(0);
                for r in &slice.ranges {
                    let start = t.range.start + r.start * row_bytes;
                    let end = t.range.start + r.end * row_bytes;
                    shard.read_f64(t.dtype, start..end, out)?;
                }
            }
            Axis::Cols => {
                // Columns cut through quantized blocks; no fused layout of a GGUF needs them.
                let Dtype::Plain(d) = t.dtype else {
                    return Err(unsupported());
                };
                let es = d.bitsize() / 8;
                // Only the selected columns of each row are read.
                for row in 0..rows {
                    for r in &slice.ranges {
                        let a = t.range.start + (row * cols + r.start) * es;
                        let b = t.range.start + (row * cols + r.end) * es;
                        shard.read_f64(t.dtype, a..b, out)?;
                    }
                }
            }
        }
        Ok(slice.shape(rows, cols))
    }

    pub fn read_matrix_by_name(
        &self,
        name: &str,
        out: &mut Vec<f64>,
    ) -> Result<(usize, usize), MatrixError> {
        let t = self
            .tensor(name)
            .ok_or_else(|| MatrixError::NotFound(name.to_string()))?;
        self.read_matrix(t, out)
    }

    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(TensorEntry::num_bytes).sum()
    }

    pub fn total_params(&self) -> u64 {
        self.tensors.iter().map(TensorEntry::num_elements).sum()
    }

    /// Display name: the folder (or file) name; a GGUF's file name without `.gguf`.
    pub fn name(&self) -> String {
        if let Some(g) = &self.gguf
            && !self.source.is_dir()
        {
            return from_gguf::display_name(g);
        }
        let p = if self.source.is_dir() {
            &self.source
        } else {
            &self.dir
        };
        std::fs::canonicalize(p)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| p.display().to_string())
    }

    /// The dtype most of the weights are stored in (by bytes), as a safetensors name.
    pub fn dominant_dtype(&self) -> Option<Dtype> {
        let mut by: BTreeMap<Dtype, u64> = BTreeMap::new();
        for t in &self.tensors {
            *by.entry(t.dtype).or_default() += t.num_bytes();
        }
        by.into_iter().max_by_key(|(_, b)| *b).map(|(d, _)| d)
    }
}
