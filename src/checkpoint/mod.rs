//! Opening a model folder (or a single `.safetensors` or PyTorch `.bin` file) without reading
//! tensor data: files are memory-mapped read-only and only their headers are parsed (for a
//! `.bin`, the zip directory and the pickle that describes the tensors: see
//! [`crate::torch_bin`]).

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    ops::Range,
    path::{Component, Path, PathBuf},
};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use crate::layers::{self, LayerLayout};

/// Why a model could not be opened. Every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: no such file or folder")]
    NotFound { path: PathBuf },
    #[error("{dir}: no config.json in this folder (a model folder needs one)")]
    MissingConfig { dir: PathBuf },
    #[error("{path}: invalid JSON: {source}")]
    InvalidJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {problem}")]
    BadIndex { path: PathBuf, problem: String },
    #[error(
        "{path}: not a .safetensors or PyTorch .bin file (a model is a folder with config.json, a .safetensors file or a pytorch_model.bin; scan files are .json)"
    )]
    NotSafetensors { path: PathBuf },
    #[error("{dir}: no .safetensors file (nor pytorch_model.bin) in this folder")]
    NoSafetensors { dir: PathBuf },
    /// A PyTorch `.bin` that is refused: not a torch.save zip, a pickle naming anything but
    /// tensors and plain containers, a storage that does not fit, a strided view, ...
    #[error("{path}: {problem}")]
    BadBin { path: PathBuf, problem: String },
    #[error("{path}: cannot read: {}", crate::text::io_reason(source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Map { path: PathBuf, problem: String },
    #[error("{path}: not a valid safetensors file: {problem}")]
    BadHeader { path: PathBuf, problem: String },
    #[error(
        "{path}: truncated: its header needs {expected} bytes of tensor data, the file holds {actual}"
    )]
    Truncated {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{index}: names shard {shard}, which does not exist")]
    MissingShard { index: PathBuf, shard: String },
    #[error("tensor {name} is stored twice: in {first} and in {second}")]
    DuplicateTensor {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// The model has no numbered layers: nothing to scan or prune.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: no numbered layers found in the tensor names")]
pub struct NoLayerStack {
    pub path: PathBuf,
}

/// Why a tensor could not be turned into an f64 matrix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MatrixError {
    #[error("no tensor named {0}")]
    NotFound(String),
    #[error("{name} has shape {shape:?}, not a 2-D matrix")]
    NotMatrix { name: String, shape: Vec<usize> },
    #[error("{name} has dtype {dtype}, which cannot be scanned (only F64, F32, F16, BF16)")]
    UnsupportedDtype { name: String, dtype: String },
    #[error("{path}: {problem}")]
    Unreadable { path: PathBuf, problem: String },
}

/// One `.safetensors` file, kept open. Tensor data is mapped into memory one tensor (or one
/// export chunk) at a time and unmapped when done: a scan needs address space for the matrices
/// in flight, not for the whole model (68 GiB for a 34B model, which `ulimit -v` may not
/// allow), and its resident set stays flat however many matrices it reads.
#[derive(Debug)]
pub struct Shard {
    pub path: PathBuf,
    /// File name relative to the model folder (what an index's weight_map says).
    pub file_name: String,
    file: File,
    len: u64,
    pub metadata: Option<HashMap<String, String>>,
}

impl Shard {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maps `range` of the file.
    fn map(&self, range: Range<usize>) -> Result<TensorBytes, MatrixError> {
        let unreadable = |problem: String| MatrixError::Unreadable {
            path: self.path.clone(),
            problem,
        };
        if range.end as u64 > self.len || range.start > range.end {
            return Err(unreadable(format!(
                "too short: bytes {}..{} of {}",
                range.start, range.end, self.len
            )));
        }
        let len = range.end - range.start;
        if len == 0 {
            return Ok(TensorBytes {
                map: None,
                skip: 0,
                len: 0,
            });
        }
        // Maps start on a page boundary.
        let skip = range.start % page_size();
        let offset = (range.start - skip) as u64;
        // SAFETY: the file is opened read-only and never written by this process. Another
        // process truncating it underneath us would fault reads, the usual caveat of every mmap
        // loader.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(skip + len)
                .map(&self.file)
        }
        .map_err(|e| unreadable(map_problem(&e, (skip + len) as u64)))?;
        Ok(TensorBytes {
            map: Some(map),
            skip,
            len,
        })
    }
}

/// A tensor's bytes, mapped from its shard while this value lives.
pub struct TensorBytes {
    map: Option<Mmap>,
    skip: usize,
    len: usize,
}

impl std::ops::Deref for TensorBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.map {
            Some(m) => &m[self.skip..self.skip + self.len],
            None => &[],
        }
    }
}

fn page_size() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 {
            return n as usize;
        }
    }
    // Windows' allocation granularity, and a safe multiple of every Unix page size.
    65_536
}

/// Why a map failed, in words a user can act on.
fn map_problem(e: &std::io::Error, len: u64) -> String {
    if e.raw_os_error() == Some(12) {
        // ENOMEM from mmap: the address space, not the RAM, ran out.
        format!(
            "cannot map {} of it into memory: out of address space (is `ulimit -v` set? \
             snrscope maps one matrix at a time, so the limit must exceed the largest matrix \
             plus the scan's working memory)",
            crate::plan::human_bytes(len)
        )
    } else {
        format!("cannot map into memory: {}", crate::text::io_reason(e))
    }
}

/// A tensor's place in its shard. `range` is absolute within the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub shard: usize,
    pub range: Range<usize>,
}

impl TensorEntry {
    pub fn num_elements(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }

    pub fn num_bytes(&self) -> u64 {
        (self.range.end - self.range.start) as u64
    }

    /// `(rows, cols)` for a 2-D tensor.
    pub fn matrix_shape(&self) -> Option<(usize, usize)> {
        match self.shape.as_slice() {
            &[r, c] => Some((r, c)),
            _ => None,
        }
    }

    pub fn is_scannable_dtype(&self) -> bool {
        matches!(
            self.dtype,
            Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16
        )
    }
}

/// `BF16` -> "BF16", as safetensors headers spell it.
pub fn dtype_name(d: Dtype) -> String {
    format!("{d:?}")
}

/// How a model's weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    Safetensors,
    /// PyTorch `.bin` (torch.save's zip). Read like safetensors (each tensor is a byte range
    /// of the file); an export writes safetensors.
    PytorchBin,
}

/// An opened model: headers parsed, data mapped but untouched.
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
        let (dir, shard_names, index_path, config_path, format) = if meta.is_dir() {
            let dir = source.clone();
            let config_path = dir.join("config.json");
            if !config_path.is_file() {
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
            } else {
                return Err(OpenError::NoSafetensors { dir });
            };
            (dir, names, index, Some(config_path), format)
        } else {
            let format = match source.extension() {
                Some(e) if e == "safetensors" => WeightFormat::Safetensors,
                _ if crate::torch_bin::is_bin_name(&source) => WeightFormat::PytorchBin,
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
                WeightFormat::PytorchBin => open_bin_shard(&path, file_name, shards.len())?,
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
        warnings.extend(crate::fused::derive(
            config.as_ref(),
            &mut layout,
            &shape_of,
        ));
        Ok(Model {
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
        })
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

    /// The tensor's raw little-endian bytes, mapped from its shard while the value lives.
    pub fn bytes(&self, t: &TensorEntry) -> Result<TensorBytes, MatrixError> {
        self.shards[t.shard].map(t.range.clone())
    }

    /// Asks the kernel to start reading the tensor's pages now, asynchronously: a sequential
    /// copy (the export) then finds them in the page cache instead of faulting them in one
    /// small read-around window at a time, which on a cold cache is several times slower.
    pub fn prefetch(&self, t: &TensorEntry) {
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
        if !decode_f64(t.dtype, &self.bytes(t)?, out) {
            return Err(MatrixError::UnsupportedDtype {
                name: t.name.clone(),
                dtype: dtype_name(t.dtype),
            });
        }
        Ok((rows, cols))
    }

    /// Converts part of a 2-D tensor (e.g. the V rows of a fused projection) to row-major f64
    /// in `out`. Only the selected bytes are mapped and read.
    pub fn read_slice(
        &self,
        t: &TensorEntry,
        slice: &crate::fused::TensorSlice,
        out: &mut Vec<f64>,
    ) -> Result<(usize, usize), MatrixError> {
        use crate::fused::Axis;
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
        let es = t.dtype.bitsize() / 8;
        let shard = &self.shards[t.shard];
        out.clear();
        match slice.axis {
            Axis::Rows => {
                for r in &slice.ranges {
                    let start = t.range.start + r.start * cols * es;
                    let end = t.range.start + r.end * cols * es;
                    decode_append(t.dtype, &shard.map(start..end)?, out);
                }
            }
            Axis::Cols => {
                // One map from the first selected byte to the last; only the selected columns
                // of each row are decoded (touched).
                let (first, last) = (
                    slice.ranges.iter().map(|r| r.start).min().unwrap_or(0),
                    slice.ranges.iter().map(|r| r.end).max().unwrap_or(0),
                );
                if rows > 0 && last > first {
                    let start = t.range.start + first * es;
                    let end = t.range.start + ((rows - 1) * cols + last) * es;
                    let bytes = shard.map(start..end)?;
                    for row in 0..rows {
                        for r in &slice.ranges {
                            let a = (row * cols + r.start - first) * es;
                            let b = (row * cols + r.end - first) * es;
                            decode_append(t.dtype, &bytes[a..b], out);
                        }
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

    /// Display name: the folder (or file) name.
    pub fn name(&self) -> String {
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

/// Little-endian decoding of the scannable float dtypes; `false` (and `out` empty) for any
/// other dtype.
pub fn decode_f64(dtype: Dtype, bytes: &[u8], out: &mut Vec<f64>) -> bool {
    out.clear();
    decode_append(dtype, bytes, out)
}

/// [`decode_f64`] without clearing `out` first.
fn decode_append(dtype: Dtype, bytes: &[u8], out: &mut Vec<f64>) -> bool {
    match dtype {
        Dtype::F64 => out.extend(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
        ),
        Dtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64),
        ),
        Dtype::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()),
        ),
        Dtype::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64()),
        ),
        _ => return false,
    }
    true
}

fn read_json(path: &Path) -> Result<serde_json::Value, OpenError> {
    let text = std::fs::read_to_string(path).map_err(|source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| OpenError::InvalidJson {
        path: path.to_path_buf(),
        source,
    })
}

/// An index's `weight_map`: tensor name -> shard file name.
type WeightMap = BTreeMap<String, String>;

fn read_weight_map(index: &Path) -> Result<WeightMap, OpenError> {
    let v = read_json(index)?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| OpenError::BadIndex {
            path: index.to_path_buf(),
            problem: "no \"weight_map\" object".into(),
        })?;
    map.iter()
        .map(|(tensor, shard)| match shard.as_str() {
            Some(s) => Ok((tensor.clone(), s.to_string())),
            None => Err(OpenError::BadIndex {
                path: index.to_path_buf(),
                problem: format!("weight_map entry for {tensor} is not a file name"),
            }),
        })
        .collect()
}

fn shard_names(dir: &Path, index: &Path, weight_map: &WeightMap) -> Result<Vec<String>, OpenError> {
    // An index is data from the internet: its file names must stay inside the model folder.
    for (tensor, shard) in weight_map {
        let inside = Path::new(shard)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside || shard.is_empty() {
            return Err(OpenError::BadIndex {
                path: index.to_path_buf(),
                problem: format!(
                    "weight_map entry for {tensor} names {shard:?}, which is outside the model \
                     folder; refusing to read it"
                ),
            });
        }
    }
    let mut names: Vec<String> = weight_map.values().cloned().collect();
    names.sort_by(|a, b| layers::natural_cmp(a, b));
    names.dedup();
    if names.is_empty() {
        return Err(OpenError::BadIndex {
            path: index.to_path_buf(),
            problem: "weight_map is empty".into(),
        });
    }
    for n in &names {
        if !dir.join(n).is_file() {
            return Err(OpenError::MissingShard {
                index: index.to_path_buf(),
                shard: n.clone(),
            });
        }
    }
    Ok(names)
}

/// The folder's `.safetensors` files in natural order (maybe none).
fn list_safetensors(dir: &Path) -> Result<Vec<String>, OpenError> {
    let rd = std::fs::read_dir(dir).map_err(|source| OpenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    names.sort_by(|a, b| layers::natural_cmp(a, b));
    Ok(names)
}

fn open_shard(
    path: &Path,
    file_name: String,
    shard_index: usize,
) -> Result<(Shard, Vec<TensorEntry>), OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    // Only the header is read: opening maps nothing, so it needs no address space for data.
    let head = read_head(&file, len).map_err(io)?;
    let (header_len, metadata) = match SafeTensors::read_metadata(&head) {
        Ok((n, _)) if len != head.len() as u64 => {
            return Err(
                header_error(path, &head, len, SafeTensorError::MetadataIncompleteBuffer)
                    .unwrap_or_else(|| bad_header(path, n)),
            );
        }
        Ok(r) => r,
        // The header is complete and valid (read_metadata validates it before it compares the
        // buffer with the data size); only the data was not read.
        Err(SafeTensorError::MetadataIncompleteBuffer) => {
            match header_error(path, &head, len, SafeTensorError::MetadataIncompleteBuffer) {
                Some(e) => return Err(e),
                None => {
                    let n = head.len() - 8;
                    let metadata =
                        serde_json::from_slice::<safetensors::tensor::Metadata>(&head[8..])
                            .map_err(|_| bad_header(path, n))?;
                    (n, metadata)
                }
            }
        }
        Err(e) => {
            return Err(header_error(path, &head, len, e).unwrap_or_else(|| bad_header(path, 0)));
        }
    };
    let data_start = 8 + header_len;
    let entries = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| TensorEntry {
            name,
            dtype: info.dtype,
            shape: info.shape.clone(),
            shard: shard_index,
            range: data_start + info.data_offsets.0..data_start + info.data_offsets.1,
        })
        .collect();
    let shard = Shard {
        path: path.to_path_buf(),
        file_name,
        metadata: metadata.metadata().clone(),
        len,
        file,
    };
    Ok((shard, entries))
}

/// One PyTorch `.bin` file: its zip directory and pickle are read, nothing else.
fn open_bin_shard(
    path: &Path,
    file_name: String,
    shard_index: usize,
) -> Result<(Shard, Vec<TensorEntry>), OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let entries = crate::torch_bin::read_entries(&file, len, shard_index).map_err(|problem| {
        OpenError::BadBin {
            path: path.to_path_buf(),
            problem,
        }
    })?;
    let shard = Shard {
        path: path.to_path_buf(),
        file_name,
        metadata: None,
        len,
        file,
    };
    Ok((shard, entries))
}

/// The 8-byte length and the header it announces (as much of it as the file holds; at most
/// safetensors' 100 MB header limit, beyond which the length alone is an error).
fn read_head(file: &File, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = file;
    let mut head = Vec::new();
    f.take(8).read_to_end(&mut head)?;
    if head.len() == 8 {
        let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let want = n.min(100_000_001).min(len.saturating_sub(8));
        f.take(want).read_to_end(&mut head)?;
    }
    Ok(head)
}

fn bad_header(path: &Path, n: usize) -> OpenError {
    OpenError::BadHeader {
        path: path.to_path_buf(),
        problem: format!("its {n}-byte header could not be read back"),
    }
}

/// The error for a header `read_metadata` refused, given the file's real length; `None` when
/// the only complaint was the data size and the file has exactly the size the header promises.
fn header_error(path: &Path, bytes: &[u8], actual: u64, e: SafeTensorError) -> Option<OpenError> {
    let path = path.to_path_buf();
    let declared_header = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    Some(match e {
        SafeTensorError::HeaderTooSmall => OpenError::BadHeader {
            path,
            problem: format!("only {actual} bytes, shorter than the 8-byte header length"),
        },
        SafeTensorError::InvalidHeaderLength => OpenError::Truncated {
            path,
            expected: declared_header.unwrap_or(0).saturating_add(8),
            actual,
            // A truncated header is reported as truncation: that is the common cause.
        },
        SafeTensorError::MetadataIncompleteBuffer => {
            // Work out the size the header promises, to say which way it is off.
            let n = declared_header.unwrap_or(0) as usize;
            let data_len = bytes
                .get(8..8 + n)
                .and_then(|h| serde_json::from_slice::<serde_json::Value>(h).ok())
                .and_then(|v| {
                    v.as_object().map(|o| {
                        o.values()
                            .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
                            .max()
                            .unwrap_or(0)
                    })
                })
                .unwrap_or(0);
            let expected = 8 + n as u64 + data_len;
            if expected == actual {
                return None;
            }
            if expected > actual {
                OpenError::Truncated {
                    path,
                    expected,
                    actual,
                }
            } else {
                OpenError::BadHeader {
                    path,
                    problem: format!(
                        "{} bytes after the last tensor's data (the header accounts for {expected})",
                        actual - expected
                    ),
                }
            }
        }
        SafeTensorError::InvalidOffset(name) => OpenError::BadHeader {
            path,
            problem: format!(
                "data_offsets of tensor {name} overlap another tensor, leave a gap, or point past the data"
            ),
        },
        SafeTensorError::TensorInvalidInfo => OpenError::BadHeader {
            path,
            problem: "a tensor's byte range does not match its shape and dtype".into(),
        },
        other => OpenError::BadHeader {
            path,
            problem: other.to_string(),
        },
    })
}

fn check_index_matches(
    index: &Path,
    weight_map: &WeightMap,
    shards: &[Shard],
    tensors: &[TensorEntry],
    warnings: &mut Vec<String>,
) -> Result<(), OpenError> {
    let actual: HashMap<&str, &str> = tensors
        .iter()
        .map(|t| (t.name.as_str(), shards[t.shard].file_name.as_str()))
        .collect();
    for (name, shard) in weight_map {
        match actual.get(name.as_str()) {
            None => {
                return Err(OpenError::BadIndex {
                    path: index.to_path_buf(),
                    problem: format!("lists tensor {name} in {shard}, which does not hold it"),
                });
            }
            Some(found) if found != shard => {
                return Err(OpenError::BadIndex {
                    path: index.to_path_buf(),
                    problem: format!("lists tensor {name} in {shard}, but it is in {found}"),
                });
            }
            _ => {}
        }
    }
    let unlisted = tensors
        .iter()
        .filter(|t| !weight_map.contains_key(&t.name))
        .count();
    if unlisted > 0 {
        warnings.push(format!(
            "{}: {unlisted} tensor(s) in the shards are not in its weight_map",
            index.display()
        ));
    }
    Ok(())
}
