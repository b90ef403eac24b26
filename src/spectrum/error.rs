//! Why a matrix has no SNR. Shared by both routes to its singular values (SVD and Gram).

/// The matrix's problem; the caller names the tensor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnrError {
    #[error("matrix has no elements ({rows}x{cols})")]
    Empty { rows: usize, cols: usize },
    #[error("buffer holds {len} values, shape {rows}x{cols} needs {}", rows * cols)]
    ShapeMismatch {
        rows: usize,
        cols: usize,
        len: usize,
    },
    #[error("matrix contains {count} NaN or infinite entries")]
    NonFinite { count: usize },
    #[error("SVD did not converge")]
    NoConvergence,
}
