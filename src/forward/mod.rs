//! Perplexity of a model and of pruning choices of it, computed on the CPU by a forward pass
//! streamed from the checkpoint (f32), the pruned model's layers read from the
//! original's files: nothing is written.
//!
//! The perplexity is exp(mean negative log-likelihood of each token given the ones before it
//! in its window). The token ids are cut into back-to-back windows (stride = window) of the
//! model's context (capped by [`EvalOptions::window`]); each window's first token is context
//! only.
//!
//! The pass ([`stream`]) runs all choices of a job together, layer by layer and one weight
//! matrix band at a time, so memory is a band plus the activations whatever the model's size,
//! and the layers before a choice's first dropped one are computed once for all choices.
//!
//! For the explorer: [`start`] runs a job in the background and reports [`EvalEvent`]s to a
//! callback (or a channel: [`start_channel`]); [`EvalHandle::cancel`] stops it after the
//! matrix band in flight. [`EvalState`] folds the events into what a screen shows, and
//! [`PplSummary`] is "ppl 12.31 → 14.08 (+14.4 %)" for the choice it was computed for.
//!
//! Modules: [`arch`] (supported architectures, per-layer behaviour from config.json),
//! [`source`] (the weight-source trait and the checkpoint read a band at a time), [`stream`] (the
//! pass: lanes of choices, banded reads), `layer`, `attention`, `head`, [`rope`], `kernels`
//! (the arithmetic), [`observe`] (the hidden-state hook), [`tokens`] (tokenizing, windows),
//! [`memory`] (estimates), `choice` (a mergekit YAML read back as dropped layers), `state`
//! (summary for screens).

pub mod arch;
mod attention;
mod choice;
mod head;
mod kernels;
mod layer;
pub mod memory;
pub mod observe;
mod reader;
pub mod rope;
pub mod source;
mod state;
pub mod stream;
pub mod tokens;
mod vmath;

mod error;
mod estimate;
mod events;
mod job;
mod supported;

pub use arch::ArchConfig;
pub use choice::dropped_from_yaml;
pub use error::EvalError;
pub use events::{EvalEvent, EvalOptions, Perplexity, Stage};
pub use job::{
    EvalHandle, Inspect, evaluate, evaluate_hooked, evaluate_samples, start, start_channel,
    window_nll,
};
pub use memory::MemoryEstimate;
pub use observe::{HiddenObserver, Site};
pub use state::{EvalState, PplSummary, format_perplexity};
pub use stream::Hooks;
pub use supported::SUPPORTED;
