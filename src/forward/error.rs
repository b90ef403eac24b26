//! Why an evaluation cannot run or stopped: every message names the file and the problem.

use std::path::PathBuf;

use super::{estimate::MemoryEstimate, supported::SUPPORTED};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error(
        "{}: model_type {model_type:?} cannot be evaluated; supported: {} (scan and export \
         still work for it)",
        path.display(),
        SUPPORTED.join(", ")
    )]
    Unsupported { path: PathBuf, model_type: String },
    #[error("{}: {problem}", path.display())]
    BadConfig { path: PathBuf, problem: String },
    #[error("{}: {problem}", path.display())]
    BadWeights { path: PathBuf, problem: String },
    #[error("{}: {problem}", path.display())]
    Tokenizer { path: PathBuf, problem: String },
    #[error("{}: {problem}", path.display())]
    Text { path: PathBuf, problem: String },
    #[error("{0}")]
    Choice(String),
    #[error(
        "not enough memory: evaluating needs about {} ({} for one weight band in f32 + {} of \
         activations for {window}-token windows), but only {} is available; try a smaller \
         --max-tokens",
        crate::util::bytes::human_bytes(estimate.total()),
        crate::util::bytes::human_bytes(estimate.weights),
        crate::util::bytes::human_bytes(estimate.activations),
        crate::util::bytes::human_bytes(*available)
    )]
    TooLarge {
        estimate: MemoryEstimate,
        available: u64,
        window: usize,
    },
    #[error("the forward pass failed: {0}")]
    Compute(String),
}
