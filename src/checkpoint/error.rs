//! Why a model or one of its tensors could not be read. Every message names the file at fault.

use std::path::PathBuf;

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
        "{path}: not a .safetensors, PyTorch .bin or .gguf file (a model is a folder with config.json, a .safetensors file, a pytorch_model.bin or a GGUF; scan files are .json)"
    )]
    NotSafetensors { path: PathBuf },
    #[error("{dir}: no .safetensors file (nor pytorch_model.bin) in this folder")]
    NoSafetensors { dir: PathBuf },
    /// A PyTorch `.bin` that is refused: not a torch.save zip, a pickle naming anything but
    /// tensors and plain containers, a storage that does not fit, a strided view, ...
    #[error("{path}: {problem}")]
    BadBin { path: PathBuf, problem: String },
    #[error("{path}: cannot read: {}", crate::util::text::io_reason(source))]
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
    /// A GGUF that cannot be opened (header, split set, folder).
    #[error(transparent)]
    Gguf(#[from] super::gguf::GgufError),
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
    #[error(
        "{name} has dtype {dtype}, which cannot be scanned (only F64, F32, F16, BF16 and the GGUF types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K-Q6_K, Q8_K)"
    )]
    UnsupportedDtype { name: String, dtype: String },
    #[error("{path}: {problem}")]
    Unreadable { path: PathBuf, problem: String },
}
