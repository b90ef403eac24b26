//! What the explorer's perplexity is computed on: the setup from the command line, and the
//! text once read and tokenized (by the job, off the UI thread).

use std::{path::PathBuf, sync::Arc};

/// What the explorer evaluates on (`--text`, `--max-tokens`, `--window`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalSetup {
    /// A UTF-8 text; the built-in English sample when `None`.
    pub text: Option<PathBuf>,
    /// Tokens scored: the explorer answers in seconds rather than minutes, so a choice can be
    /// compared with the next one quickly.
    pub max_tokens: usize,
    /// Longest window [default: the model's context, capped by `max_tokens`].
    pub window: Option<usize>,
    pub threads: usize,
}

impl Default for EvalSetup {
    fn default() -> Self {
        EvalSetup {
            text: None,
            max_tokens: 1024,
            window: Some(512),
            threads: 0,
        }
    }
}

/// The tokenized text, once read.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalText {
    pub tokens: Arc<[u32]>,
    /// The file, or the built-in sample's name.
    pub name: String,
    /// Ids that are the tokenizer's unknown token.
    pub unknown: usize,
}
