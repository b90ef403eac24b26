//! Perplexity of a model and of pruning choices of it, computed on the CPU by candle's models
//! (f32), the pruned model built in memory from the original's mapped weights: nothing is
//! written.
//!
//! The perplexity is exp(mean negative log-likelihood of each token given the ones before it
//! in its window). The token ids are cut into back-to-back windows (stride = window) of the
//! model's context (capped by [`EvalOptions::window`] and the sliding window where candle's
//! model would differ from transformers'); each window's first token is context only.
//!
//! For the explorer: [`start`] runs a job in the background and reports [`EvalEvent`]s to a
//! callback (or a channel: [`start_channel`]); [`EvalHandle::cancel`] stops it after the
//! window (or token step) in flight. [`EvalState`] folds the events into what a screen shows,
//! and [`PplSummary`] is "ppl 12.31 → 14.08 (+14.4 %)" for the choice it was computed for.
//!
//! Modules: [`models`] (supported architectures, candle models), [`weights`] (the weight
//! source over the memory map), [`tokens`] (tokenizing, windows), [`memory`] (estimates),
//! `choice` (a mergekit YAML read back as dropped layers), `state` (summary for screens).

mod choice;
pub mod memory;
pub mod models;
mod state;
pub mod tokens;
mod weights;

use std::{
    collections::HashMap,
    ops::Range,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

pub use choice::dropped_from_yaml;
pub use memory::MemoryEstimate;
pub use models::{ArchConfig, SUPPORTED};
pub use state::{EvalState, PplSummary, format_perplexity};

use crate::{checkpoint::Model, export, plan::Plan, util::cancel::CancelToken};
use weights::{Converted, Probe, WeightSource};

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
        "not enough memory: evaluating needs about {} ({} of f32 weights + {} for windows of \
         {window} tokens), but only {} is available; try a smaller --max-tokens (shorter \
         windows) or a smaller model",
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// Threads of the forward pass; 0 = one per core.
    pub threads: usize,
    /// Longest window, in tokens [default: the model's context].
    pub window: Option<usize>,
    /// Score only the first N tokens (also caps the window).
    pub max_tokens: Option<usize>,
    /// Refuse before loading when the estimate exceeds the available memory.
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
    pub load_seconds: f64,
    pub forward_seconds: f64,
    /// `tokens_processed / forward_seconds`.
    pub tokens_per_second: f64,
    /// This process's peak resident set when the evaluation ended (whole process).
    pub peak_rss: Option<u64>,
    pub estimate: MemoryEstimate,
}

impl Perplexity {
    pub(crate) fn is_original(&self) -> bool {
        self.dropped.is_empty()
    }
}

/// What a running choice is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Converting weights to f32 (bytes of the checkpoint).
    Loading { bytes_done: u64, bytes_total: u64 },
    /// Scoring windows.
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

/// Everything a job reports, in order: progress and one result per choice, then `Finished`
/// exactly once. A choice interrupted by cancelling gets no result.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalEvent {
    Progress {
        dropped: Vec<usize>,
        stage: Stage,
        elapsed: Duration,
    },
    Result {
        dropped: Vec<usize>,
        result: Result<Perplexity, EvalError>,
    },
    Finished {
        cancelled: bool,
    },
}

type Sink = Arc<dyn Fn(EvalEvent) + Send + Sync>;

/// Sees every window's logits (`tokens` range × vocab, row-major): for tests and benchmarks.
pub(crate) type Inspect<'a> = &'a mut (dyn FnMut(usize, Range<usize>, &[f32]) + Send);

/// A running evaluation.
pub(crate) type EvalHandle = crate::spectrum::scan::JobHandle;

/// Evaluates `choices` (each a list of dropped layers; empty = the original) over `tokens` on
/// a background thread and hands every event to `sink`. Returns at once. Choices of one job
/// share the converted weights, so original + pruned costs the original's memory once.
pub fn start(
    model: Arc<Model>,
    tokens: Arc<[u32]>,
    choices: Vec<Vec<usize>>,
    options: EvalOptions,
    sink: impl Fn(EvalEvent) + Send + Sync + 'static,
) -> EvalHandle {
    let cancel = CancelToken::default();
    let token = cancel.clone();
    let sink: Sink = Arc::new(sink);
    let thread = std::thread::Builder::new()
        .name("ppl-eval".into())
        .spawn(move || {
            run(&model, &tokens, &choices, &options, &token, &sink, None);
        })
        .expect("spawning the evaluation thread");
    EvalHandle::new(cancel, thread)
}

/// [`start`] with a receiver.
pub fn start_channel(
    model: Arc<Model>,
    tokens: Arc<[u32]>,
    choices: Vec<Vec<usize>>,
    options: EvalOptions,
) -> (EvalHandle, crossbeam_channel::Receiver<EvalEvent>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = start(model, tokens, choices, options, move |e| {
        let _ = tx.send(e);
    });
    (handle, rx)
}

/// Runs a job on the calling thread (and its own pool); results in choice order, `None` where
/// cancelled. `inspect` sees every window's logits.
pub fn evaluate(
    model: &Arc<Model>,
    tokens: &[u32],
    choices: &[Vec<usize>],
    options: &EvalOptions,
    cancel: &CancelToken,
    sink: impl Fn(EvalEvent) + Send + Sync + 'static,
    inspect: Option<Inspect<'_>>,
) -> Vec<Option<Result<Perplexity, EvalError>>> {
    let sink: Sink = Arc::new(sink);
    run(model, tokens, choices, options, cancel, &sink, inspect)
}

/// One choice, checked and ready to load.
struct Prepared {
    dropped: Vec<usize>,
    arch: ArchConfig,
    source: WeightSource,
    window: usize,
    windows: Vec<Range<usize>>,
    /// Source tensors it reads, with their f32 size.
    reads: HashMap<String, u64>,
    activations: u64,
}

fn run(
    model: &Arc<Model>,
    tokens: &[u32],
    choices: &[Vec<usize>],
    options: &EvalOptions,
    cancel: &CancelToken,
    sink: &Sink,
    mut inspect: Option<Inspect<'_>>,
) -> Vec<Option<Result<Perplexity, EvalError>>> {
    let tokens = &tokens[..options.max_tokens.unwrap_or(usize::MAX).min(tokens.len())];
    let converted = Converted::default();
    let mut prepared: Vec<Result<Prepared, EvalError>> = choices
        .iter()
        .map(|d| prepare(model, tokens, d, options, &converted))
        .collect();
    if options.check_memory
        && let Some(err) = memory_refusal(&prepared)
    {
        for p in prepared.iter_mut().filter(|p| p.is_ok()) {
            *p = Err(err.clone());
        }
    }
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.threads
    };
    let work = || {
        let mut out = Vec::with_capacity(prepared.len());
        for (i, p) in prepared.into_iter().enumerate() {
            if cancel.is_cancelled() {
                out.push(None);
                continue;
            }
            let dropped = choices[i].clone();
            let result = p.and_then(|p| {
                let inspect = inspect
                    .as_deref_mut()
                    .map(|f| move |r: Range<usize>, l: &[f32]| f(i, r, l));
                score(p, tokens, cancel, sink, inspect)
            });
            match result {
                Ok(None) => out.push(None),
                Ok(Some(r)) => {
                    sink(EvalEvent::Result {
                        dropped,
                        result: Ok(r.clone()),
                    });
                    out.push(Some(Ok(r)));
                }
                Err(e) => {
                    sink(EvalEvent::Result {
                        dropped,
                        result: Err(e.clone()),
                    });
                    out.push(Some(Err(e)));
                }
            }
        }
        out
    };
    let out = match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ppl-worker-{i}"))
        .build()
    {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    };
    sink(EvalEvent::Finished {
        cancelled: cancel.is_cancelled(),
    });
    out
}

/// The job's weights (every source tensor any choice reads, once) plus the largest working
/// set, against what the machine has.
fn memory_refusal(prepared: &[Result<Prepared, EvalError>]) -> Option<EvalError> {
    let ok: Vec<&Prepared> = prepared.iter().filter_map(|p| p.as_ref().ok()).collect();
    let mut reads: HashMap<&str, u64> = HashMap::new();
    for p in &ok {
        reads.extend(p.reads.iter().map(|(k, v)| (k.as_str(), *v)));
    }
    let largest = ok.iter().max_by_key(|p| p.activations)?;
    let estimate = MemoryEstimate {
        weights: reads.values().sum(),
        activations: largest.activations,
    };
    let available = memory::available()?;
    (estimate.total() > available).then_some(EvalError::TooLarge {
        estimate,
        available,
        window: largest.window,
    })
}

fn prepare(
    model: &Arc<Model>,
    tokens: &[u32],
    dropped: &[usize],
    options: &EvalOptions,
    converted: &Converted,
) -> Result<Prepared, EvalError> {
    let config = model.config.as_ref().ok_or_else(|| EvalError::BadConfig {
        path: model.source.clone(),
        problem: "no config.json beside the weights: the architecture is unknown".into(),
    })?;
    let config_path = model
        .config_path
        .clone()
        .unwrap_or_else(|| model.source.clone());
    let (config, names) = if dropped.is_empty() {
        let names = model
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.name.clone()))
            .collect();
        (config.clone(), names)
    } else {
        let stack = model
            .main_stack()
            .map_err(|e| EvalError::Choice(e.to_string()))?;
        let plan = Plan {
            model_ref: String::new(),
            stack_prefix: stack.prefix.clone(),
            num_layers: stack.num_layers,
            dropped: dropped.to_vec(),
            module_type: String::new(),
            reason: String::new(),
            snr: Vec::new(),
            dtype: String::new(),
            mergekit_modules: None,
        };
        plan.validate()
            .map_err(|e| EvalError::Choice(e.to_string()))?;
        // The export's own renumbering and config edit: what is evaluated is what it writes.
        let names = export::pruned_tensors(model, &plan)
            .map_err(|e| EvalError::Choice(e.to_string()))?
            .into_iter()
            .map(|t| (t.name, t.source.name.clone()))
            .collect();
        let (config, _) = export::prune_config(config, plan.num_layers, &plan.kept());
        (config, names)
    };
    let arch = ArchConfig::parse(&config, &config_path)?;
    if let Some((pos, &id)) = tokens
        .iter()
        .enumerate()
        .find(|(_, id)| **id as usize >= arch.vocab)
    {
        return Err(EvalError::Choice(format!(
            "token id {id} at position {pos} is outside the model's vocabulary of {} \
             (vocab_size in {})",
            arch.vocab,
            config_path.display()
        )));
    }
    let window = arch
        .context
        .min(options.window.unwrap_or(usize::MAX))
        .min(tokens.len());
    let windows = tokens::windows(tokens.len(), window);
    if windows.is_empty() {
        return Err(EvalError::Choice(format!(
            "{} token(s): at least 2 are needed to score one",
            tokens.len()
        )));
    }
    let mut source = WeightSource::new(model.clone(), names, converted.clone());
    arch.prepare(&mut source, window)?;
    let probe = Probe::new(source.clone());
    arch.build(probe.var_builder(), window)
        .map_err(|e| EvalError::BadWeights {
            path: model.source.clone(),
            problem: e.to_string(),
        })?;
    let asked = probe.asked();
    let problems = weights::check_requests(&source, &asked);
    if !problems.is_empty() {
        let n = problems.len();
        let mut list = problems.into_iter().take(8).collect::<Vec<_>>().join("; ");
        if n > 8 {
            list.push_str(&format!("; and {} more", n - 8));
        }
        return Err(EvalError::BadWeights {
            path: model.source.clone(),
            problem: format!(
                "{n} tensor(s) do not fit the {} config: {list}",
                arch.model_type
            ),
        });
    }
    let reads = asked
        .iter()
        .filter_map(|(name, _)| source.entry(name))
        .map(|e| (e.name.clone(), e.num_elements() * 4))
        .collect();
    let batch = arch.batch(windows.iter().filter(|r| r.len() == window).count());
    Ok(Prepared {
        dropped: dropped.to_vec(),
        activations: memory::activations(&arch, window, batch),
        arch,
        source,
        window,
        windows,
        reads,
    })
}

/// Loads and scores one choice; `Ok(None)` when cancelled.
fn score(
    p: Prepared,
    tokens: &[u32],
    cancel: &CancelToken,
    sink: &Sink,
    mut inspect: Option<impl FnMut(Range<usize>, &[f32])>,
) -> Result<Option<Perplexity>, EvalError> {
    let started = Instant::now();
    let bytes_total: u64 = p
        .reads
        .keys()
        .filter_map(|n| p.source.model().tensor(n))
        .map(|t| t.num_bytes())
        .sum();
    let done = Arc::new(AtomicU64::new(0));
    let on_load: weights::OnLoad = {
        let (done, sink, dropped) = (done.clone(), sink.clone(), p.dropped.clone());
        Arc::new(move |bytes| {
            let d = done.fetch_add(bytes, Ordering::Relaxed) + bytes;
            sink(EvalEvent::Progress {
                dropped: dropped.clone(),
                stage: Stage::Loading {
                    bytes_done: d.min(bytes_total),
                    bytes_total,
                },
                elapsed: started.elapsed(),
            });
        })
    };
    let source = p
        .source
        .clone()
        .on_load(Some(on_load))
        .cancel_with(cancel.clone());
    let net = match p.arch.build(source.var_builder(), p.window) {
        Ok(net) => net,
        Err(_) if cancel.is_cancelled() => return Ok(None),
        Err(e) => return Err(EvalError::Compute(e.to_string())),
    };
    let load_seconds = started.elapsed().as_secs_f64();

    let tokens_total: usize = p.windows.iter().map(|r| r.len()).sum();
    let progress = |tokens_done: usize| {
        sink(EvalEvent::Progress {
            dropped: p.dropped.clone(),
            stage: Stage::Scoring {
                tokens_done,
                tokens_total,
            },
            elapsed: started.elapsed(),
        });
    };
    progress(0);
    let forward_started = Instant::now();
    let (mut nll, mut scored, mut processed) = (0f64, 0usize, 0usize);
    let vocab = p.arch.vocab;
    for group in batches(&p.windows, p.arch.batch(p.windows.len())) {
        let slices: Vec<&[u32]> = group.iter().map(|r| &tokens[r.clone()]).collect();
        let mut failed = None;
        let completed = net
            .run(&slices, cancel, &mut |i, logits| {
                let r = group[i].clone();
                if logits.len() != r.len() * vocab {
                    failed = Some(format!(
                        "{} logits for a window of {} tokens and a vocabulary of {vocab}",
                        logits.len(),
                        r.len()
                    ));
                    return;
                }
                nll += window_nll(&logits, vocab, &tokens[r.clone()]);
                scored += r.len() - 1;
                processed += r.len();
                if let Some(f) = inspect.as_mut() {
                    f(r, &logits);
                }
            })
            .map_err(|e| EvalError::Compute(e.to_string()))?;
        if let Some(f) = failed {
            return Err(EvalError::Compute(f));
        }
        if !completed {
            return Ok(None);
        }
        progress(processed);
    }
    let forward_seconds = forward_started.elapsed().as_secs_f64();
    let mean_nll = nll / scored as f64;
    Ok(Some(Perplexity {
        dropped: p.dropped,
        layers: p.arch.layers,
        perplexity: mean_nll.exp(),
        mean_nll,
        tokens: scored,
        tokens_processed: processed,
        windows: p.windows.len(),
        window: p.window,
        load_seconds,
        forward_seconds,
        tokens_per_second: processed as f64 / forward_seconds.max(1e-9),
        peak_rss: memory::peak_rss(),
        estimate: MemoryEstimate {
            weights: p.reads.values().sum(),
            activations: p.activations,
        },
    }))
}

/// Windows run together: up to `batch` of equal length (only the stepped path batches).
fn batches(windows: &[Range<usize>], batch: usize) -> Vec<Vec<Range<usize>>> {
    let mut out: Vec<Vec<Range<usize>>> = Vec::new();
    for r in windows {
        match out.last_mut() {
            Some(g) if g.len() < batch && g[0].len() == r.len() => g.push(r.clone()),
            _ => out.push(vec![r.clone()]),
        }
    }
    out
}

/// Σ −log p(token | the ones before it) over a window, from its logits (`len × vocab`), in
/// f64 (log-sum-exp with the row's maximum subtracted).
pub(crate) fn window_nll(logits: &[f32], vocab: usize, tokens: &[u32]) -> f64 {
    tokens
        .iter()
        .enumerate()
        .skip(1)
        .map(|(p, &target)| {
            let row = &logits[(p - 1) * vocab..p * vocab];
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
            let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
            max + sum.ln() - row[target as usize] as f64
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_of_uniform_logits_is_log_vocab() {
        let logits = vec![0.5f32; 3 * 4];
        let nll = window_nll(&logits, 4, &[0, 1, 2]);
        assert!((nll - 2.0 * 4f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn nll_reads_the_previous_row() {
        // Row 0 predicts token 1 with logit 10 among zeros; row 1 is unused.
        let mut logits = vec![0f32; 2 * 3];
        logits[1] = 10.0;
        let nll = window_nll(&logits, 3, &[2, 1]);
        let expected = (10f64.exp() + 2.0).ln() - 10.0;
        assert!((nll - expected).abs() < 1e-12);
    }

    #[test]
    fn batches_group_equal_lengths() {
        let w = vec![0..4, 4..8, 8..12, 12..14];
        assert_eq!(
            batches(&w, 2),
            vec![vec![0..4, 4..8], vec![8..12], vec![12..14]]
        );
        assert_eq!(batches(&w, 1).len(), 4);
    }
}
