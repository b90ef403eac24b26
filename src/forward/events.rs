//! What an evaluation is asked to do and what it reports: options, stages, results.

use std::time::Duration;

use super::{error::EvalError, estimate::MemoryEstimate};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// Threads of the forward pass; 0 = one per core.
    pub threads: usize,
    /// Longest window, in tokens [default: the model's context].
    pub window: Option<usize>,
    /// Score only the first N tokens (also caps the window).
    pub max_tokens: Option<usize>,
    /// Refuse before reading weights when the estimate exceeds the available memory.
    pub check_memory: bool,
}

impl Default for EvalOptions {
    /// All cores, the model's context, every token, memory checked.
    fn default() -> Self {
        EvalOptions {
            threads: 0,
            window: None,
            max_tokens: None,
            check_memory: true,
        }
    }
}

/// The perplexity of one choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Perplexity {
    /// The choice: dropped layers of the main stack, ascending; empty for the original.
    pub dropped: Vec<usize>,
    /// Layers the evaluated model has.
    pub layers: usize,
    pub perplexity: f64,
    pub mean_nll: f64,
    /// Tokens scored (every token but each window's first).
    pub tokens: usize,
    /// Tokens through the model.
    pub tokens_processed: usize,
    pub windows: usize,
    /// Longest window, in tokens.
    pub window: usize,
    /// Checks and the embedding rows, before the first layer.
    pub load_seconds: f64,
    /// The streamed pass (shared by every choice of the job: they run together).
    pub forward_seconds: f64,
    /// Tokens through the model per second of the pass, over every choice of the job.
    pub tokens_per_second: f64,
    /// This process's peak resident set when the evaluation ended (whole process).
    pub peak_rss: Option<u64>,
    pub estimate: MemoryEstimate,
}

impl Perplexity {
    pub fn is_original(&self) -> bool {
        self.dropped.is_empty()
    }
}

/// What a running job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Checking the weights and reading the embedding rows (bytes of the checkpoint the job
    /// reads in all).
    Loading { bytes_done: u64, bytes_total: u64 },
    /// The streamed pass. Every token advances together, layer by layer, so `tokens_done` is
    /// `tokens_total` times the fraction of the pass's work done.
    Scoring {
        tokens_done: usize,
        tokens_total: usize,
    },
}

impl Stage {
    pub fn fraction(&self) -> f64 {
        let (d, t) = match *self {
            Stage::Loading {
                bytes_done,
                bytes_total,
            } => (bytes_done as f64, bytes_total as f64),
            Stage::Scoring {
                tokens_done,
                tokens_total,
            } => (tokens_done as f64, tokens_total as f64),
        };
        if t > 0.0 { (d / t).min(1.0) } else { 1.0 }
    }
}

/// Everything a job reports, in order: progress, one result per choice, then `Finished`
/// exactly once. A choice interrupted by cancelling gets no result.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalEvent {
    Progress {
        /// The choice the job is for (the last one: the original runs alongside it).
        dropped: Vec<usize>,
        stage: Stage,
        elapsed: Duration,
        /// Fraction of the job's work done, 0..=1.
        fraction: f64,
        /// Time left at the rate so far, once there is a rate.
        eta: Option<Duration>,
    },
    Result {
        dropped: Vec<usize>,
        result: Result<Perplexity, EvalError>,
    },
    Finished {
        cancelled: bool,
    },
}
