//! Why a GGUF could not be opened or read (the pruned GGUF's own errors are the export's).
//! Every message names the file at fault and the problem, with names from the file escaped (a
//! tensor name is attacker-chosen text).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{}: cannot read: {}", path.display(), crate::util::text::io_reason(source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no such file or folder", path.display())]
    NotFound { path: PathBuf },
    /// Not a GGUF at all, or a GGUF this reader does not take (big-endian, version 1).
    #[error("{}: {problem}", path.display())]
    NotGguf { path: PathBuf, problem: String },
    /// A malformed header: a count, length, type or offset that does not fit the file.
    #[error("{}: invalid GGUF: {problem}", path.display())]
    Malformed { path: PathBuf, problem: String },
    /// A split set that is incomplete or inconsistent, or a folder that holds no model or more
    /// than one.
    #[error("{}: {problem}", path.display())]
    Layout { path: PathBuf, problem: String },
    /// A tensor that cannot be read as asked (unknown name, type snrscope cannot dequantize,
    /// rows out of range).
    #[error("{}: {problem}", path.display())]
    Tensor { path: PathBuf, problem: String },
}

impl GgufError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> GgufError {
        GgufError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn malformed(path: &Path, problem: impl Into<String>) -> GgufError {
        GgufError::Malformed {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    pub(crate) fn layout(path: &Path, problem: impl Into<String>) -> GgufError {
        GgufError::Layout {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    pub(crate) fn tensor(path: &Path, problem: impl Into<String>) -> GgufError {
        GgufError::Tensor {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

/// A name from the file, safe to print.
pub(crate) fn shown(s: &str) -> String {
    crate::util::text::escape_controls(s).into_owned()
}
