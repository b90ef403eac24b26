//! Running an evaluation: the choices' plans, the streamed pass on a background thread (or
//! the caller's), its events.

use std::{
    ops::Range,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{
    arch::ArchConfig,
    error::EvalError,
    estimate::MemoryEstimate,
    events::{EvalEvent, EvalOptions, Perplexity, Stage},
    memory,
    reader::{Reader, Stop},
    source,
    source::{MappedModel, WeightSource},
    stream::{self, ChoicePlan, Hooks},
    tokens,
};
use crate::{checkpoint::Model, export, plan::Plan, util::cancel::CancelToken};

type Sink = Arc<dyn Fn(EvalEvent) + Send + Sync>;

/// Sees every window's logits (choice index, tokens range, len × vocab row-major): for tests
/// and benchmarks. Asking for them keeps each lane's logits whole, so keep texts short.
pub type Inspect<'a> = &'a mut (dyn FnMut(usize, Range<usize>, &[f32]) + Send);

/// A running evaluation.
pub type EvalHandle = crate::spectrum::scan::JobHandle;

/// Evaluates `choices` (each a list of dropped layers; empty = the original) over `tokens` on
/// a background thread and hands every event to `sink`. Returns at once. The choices of one
/// job run in one streamed pass.
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
            run(
                &model,
                &tokens,
                None,
                &choices,
                &options,
                &token,
                &sink,
                Hooks::default(),
            );
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
    let hooks = Hooks {
        logits: inspect,
        hidden: None,
    };
    run(model, tokens, None, choices, options, cancel, &sink, hooks)
}

/// [`evaluate`] with every hook: the logits and the hidden states of each layer (for metrics
/// computed in the same pass).
pub fn evaluate_hooked(
    model: &Arc<Model>,
    tokens: &[u32],
    choices: &[Vec<usize>],
    options: &EvalOptions,
    cancel: &CancelToken,
    sink: impl Fn(EvalEvent) + Send + Sync + 'static,
    hooks: Hooks<'_>,
) -> Vec<Option<Result<Perplexity, EvalError>>> {
    let sink: Sink = Arc::new(sink);
    run(model, tokens, None, choices, options, cancel, &sink, hooks)
}

/// [`evaluate_hooked`] over samples: each range of `tokens` is a window of its own (no
/// attention across samples, each sample's first token context only), in place of the
/// back-to-back windows of the options (`window` and `max_tokens` are not used). A sample
/// longer than the model's context is refused.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_samples(
    model: &Arc<Model>,
    tokens: &[u32],
    samples: &[Range<usize>],
    choices: &[Vec<usize>],
    options: &EvalOptions,
    cancel: &CancelToken,
    sink: impl Fn(EvalEvent) + Send + Sync + 'static,
    hooks: Hooks<'_>,
) -> Vec<Option<Result<Perplexity, EvalError>>> {
    let sink: Sink = Arc::new(sink);
    run(
        model,
        tokens,
        Some(samples),
        choices,
        options,
        cancel,
        &sink,
        hooks,
    )
}

#[allow(clippy::too_many_arguments)]
fn run(
    model: &Arc<Model>,
    tokens: &[u32],
    samples: Option<&[Range<usize>]>,
    choices: &[Vec<usize>],
    options: &EvalOptions,
    cancel: &CancelToken,
    sink: &Sink,
    hooks: Hooks<'_>,
) -> Vec<Option<Result<Perplexity, EvalError>>> {
    let tokens = match samples {
        Some(_) => tokens,
        None => &tokens[..options.max_tokens.unwrap_or(usize::MAX).min(tokens.len())],
    };
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.threads
    };
    let source = MappedModel::new(model.clone());
    let mut out: Vec<Option<Result<Perplexity, EvalError>>> = vec![None; choices.len()];
    let mut ready: Vec<(usize, ChoicePlan)> = Vec::new();
    for (i, d) in choices.iter().enumerate() {
        match prepare(model, &source, tokens, samples, d, options) {
            Ok(p) => ready.push((i, p)),
            Err(e) => out[i] = Some(Err(e)),
        }
    }
    let source_layers = model.main_stack().map(|s| s.num_layers).unwrap_or(0);
    let plans: Vec<ChoicePlan> = ready.iter().map(|(_, p)| p.clone()).collect();
    let (work_total, lanes) = stream::survey(&plans, source_layers);
    let keep_logits = hooks.logits.is_some();
    let estimate = plans
        .iter()
        .map(|p| {
            let window = p.windows.iter().map(|w| w.len()).max().unwrap_or(0);
            let tokens: usize = p.windows.iter().map(|w| w.len()).sum();
            memory::streamed(&p.arch, tokens, window, lanes, threads, keep_logits)
        })
        .max_by_key(|e| e.total());
    if options.check_memory
        && let Some(estimate) = estimate
        && let Some(available) = memory::available()
        && estimate.total() > available
    {
        let window = plans
            .iter()
            .flat_map(|p| p.windows.iter().map(|w| w.len()))
            .max()
            .unwrap_or(0);
        let err = EvalError::TooLarge {
            estimate,
            available,
            window,
        };
        for (i, _) in &ready {
            out[*i] = Some(Err(err.clone()));
        }
        ready.clear();
    }
    let plans: Vec<ChoicePlan> = ready.iter().map(|(_, p)| p.clone()).collect();
    if !plans.is_empty() {
        let work = || {
            pass(
                &source,
                &plans,
                &ready,
                choices,
                tokens,
                source_layers,
                work_total,
                estimate.unwrap_or(MemoryEstimate {
                    weights: 0,
                    activations: 0,
                }),
                cancel,
                sink,
                hooks,
            )
        };
        let results = match rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ppl-worker-{i}"))
            .build()
        {
            Ok(pool) => pool.install(work),
            Err(_) => work(),
        };
        for ((i, _), r) in ready.iter().zip(results) {
            out[*i] = r;
        }
    }
    for (i, r) in out.iter().enumerate() {
        if let Some(result) = r {
            sink(EvalEvent::Result {
                dropped: choices[i].clone(),
                result: result.clone(),
            });
        }
    }
    sink(EvalEvent::Finished {
        cancelled: cancel.is_cancelled(),
    });
    out
}

/// The streamed pass of the job's ready choices, with progress.
#[allow(clippy::too_many_arguments)]
fn pass(
    source: &dyn WeightSource,
    plans: &[ChoicePlan],
    ready: &[(usize, ChoicePlan)],
    choices: &[Vec<usize>],
    tokens: &[u32],
    source_layers: usize,
    work_total: u64,
    estimate: MemoryEstimate,
    cancel: &CancelToken,
    sink: &Sink,
    mut hooks: Hooks<'_>,
) -> Vec<Option<Result<Perplexity, EvalError>>> {
    let started = Instant::now();
    let dropped = choices[ready.last().map_or(0, |r| r.0)].clone();
    let tokens_total: usize = plans
        .iter()
        .map(|p| p.windows.iter().map(|w| w.len()).sum::<usize>())
        .sum();
    let bytes_total: u64 = plans
        .first()
        .map(|p| {
            p.names
                .values()
                .filter_map(|n| source.info(n))
                .map(|i| i.bytes)
                .sum()
        })
        .unwrap_or(0);
    sink(EvalEvent::Progress {
        dropped: dropped.clone(),
        stage: Stage::Loading {
            bytes_done: 0,
            bytes_total,
        },
        elapsed: Duration::ZERO,
        fraction: 0.0,
        eta: None,
    });
    let done = AtomicU64::new(0);
    let last = Mutex::new(Instant::now());
    let forward_started = Mutex::new(None::<Instant>);
    let progress = |w: u64| {
        let d = done.fetch_add(w, Ordering::Relaxed) + w;
        let Ok(mut last) = last.lock() else { return };
        if last.elapsed() < Duration::from_millis(50) && d < work_total {
            return;
        }
        *last = Instant::now();
        let fraction = (d as f64 / work_total.max(1) as f64).min(1.0);
        let since = forward_started
            .lock()
            .ok()
            .and_then(|s| *s)
            .unwrap_or(started)
            .elapsed();
        let eta = (fraction > 0.0).then(|| since.mul_f64((1.0 - fraction) / fraction));
        sink(EvalEvent::Progress {
            dropped: dropped.clone(),
            stage: Stage::Scoring {
                tokens_done: (tokens_total as f64 * fraction) as usize,
                tokens_total,
            },
            elapsed: started.elapsed(),
            fraction,
            eta,
        });
    };
    if let Ok(mut s) = forward_started.lock() {
        *s = Some(Instant::now());
    }
    let rd = Reader::new(source, memory::BAND_ELEMS, cancel, &progress);
    let load_started = Instant::now();
    let outcome = stream::run(&rd, plans, tokens, source_layers, &mut hooks);
    let seconds = load_started.elapsed().as_secs_f64();
    match outcome {
        Err(Stop::Cancelled) => vec![None; plans.len()],
        Err(Stop::Failed(e)) => vec![Some(Err(e)); plans.len()],
        Ok(sums) => plans
            .iter()
            .zip(ready)
            .zip(sums)
            .map(|((p, (i, _)), (nll, scored))| {
                let processed: usize = p.windows.iter().map(|w| w.len()).sum();
                let mean_nll = nll / scored.max(1) as f64;
                Some(Ok(Perplexity {
                    dropped: choices[*i].clone(),
                    layers: p.arch.layers,
                    perplexity: mean_nll.exp(),
                    mean_nll,
                    tokens: scored,
                    tokens_processed: processed,
                    windows: p.windows.len(),
                    window: p.windows.iter().map(|w| w.len()).max().unwrap_or(0),
                    load_seconds: 0.0,
                    forward_seconds: seconds,
                    tokens_per_second: tokens_total as f64 / seconds.max(1e-9),
                    peak_rss: memory::peak_rss(),
                    estimate,
                }))
            })
            .collect(),
    }
}

/// Checks one choice (config, tokens, every tensor it reads: present, shaped as the config
/// implies, convertible) without reading a weight.
fn prepare(
    model: &Arc<Model>,
    source: &dyn WeightSource,
    tokens: &[u32],
    samples: Option<&[Range<usize>]>,
    dropped: &[usize],
    options: &EvalOptions,
) -> Result<ChoicePlan, EvalError> {
    let config = model.config.as_ref().ok_or_else(|| EvalError::BadConfig {
        path: model.source.clone(),
        problem: "no config.json beside the weights: the architecture is unknown".into(),
    })?;
    let config_path = model
        .config_path
        .clone()
        .unwrap_or_else(|| model.source.clone());
    // The type is checked before anything else is looked at.
    ArchConfig::parse(config, &config_path)?;
    let stack = model
        .main_stack()
        .map_err(|e| EvalError::Choice(e.to_string()))?;
    let (config, names, layers) = if dropped.is_empty() {
        let names = model
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.name.clone()))
            .collect();
        (config.clone(), names, (0..stack.num_layers).collect())
    } else {
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
            metric: None,
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
        (config, names, plan.kept())
    };
    let arch = ArchConfig::parse(&config, &config_path)?;
    if arch.layers != layers.len() {
        return Err(EvalError::BadConfig {
            path: config_path,
            problem: format!(
                "num_hidden_layers is {} but the weights have {} layers",
                arch.layers,
                layers.len()
            ),
        });
    }
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
    let windows = match samples {
        Some(samples) => sample_windows(samples, tokens.len(), arch.context)?,
        None => {
            let window = arch
                .context
                .min(options.window.unwrap_or(usize::MAX))
                .min(tokens.len());
            tokens::windows(tokens.len(), window)
        }
    };
    if windows.is_empty() {
        return Err(EvalError::Choice(format!(
            "{} token(s): at least 2 are needed to score one",
            tokens.len()
        )));
    }
    let prefix = stack.prefix.clone();
    let base = prefix
        .strip_suffix(".layers")
        .unwrap_or("model")
        .to_string();
    let embed = format!("{base}.embed_tokens.weight");
    let plan = ChoicePlan {
        head: if arch.tied {
            embed.clone()
        } else {
            "lm_head.weight".into()
        },
        norm: format!("{base}.norm.weight"),
        embed,
        arch,
        names,
        prefix,
        layers,
        windows,
    };
    check_tensors(&plan, source)?;
    Ok(plan)
}

/// Samples as windows: each within the tokens, at least 2 tokens long (one to score), at most
/// the model's context.
fn sample_windows(
    samples: &[Range<usize>],
    tokens: usize,
    context: usize,
) -> Result<Vec<Range<usize>>, EvalError> {
    for (i, s) in samples.iter().enumerate() {
        let problem = if s.start > s.end || s.end > tokens {
            Some(format!("is not within the {tokens} tokens"))
        } else if s.len() < 2 {
            Some(format!("has {} token(s); at least 2 are needed", s.len()))
        } else if s.len() > context {
            Some(format!(
                "has {} tokens, more than the model's context of {context}",
                s.len()
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(EvalError::Choice(format!("sample {} {p}", i + 1)));
        }
    }
    Ok(samples.to_vec())
}

/// Every tensor the plan reads, against the checkpoint: all problems in one message.
fn check_tensors(p: &ChoicePlan, source: &dyn WeightSource) -> Result<(), EvalError> {
    let a = &p.arch;
    let mut wanted: Vec<(String, Vec<usize>)> = vec![
        (p.embed.clone(), vec![a.vocab, a.hidden]),
        (p.norm.clone(), vec![a.hidden]),
    ];
    if p.head != p.embed {
        wanted.push((p.head.clone(), vec![a.vocab, a.hidden]));
    }
    for (j, kind) in a.kinds.iter().enumerate() {
        for (suffix, shape) in a.layer_tensors(kind) {
            wanted.push((format!("{}.{j}.{suffix}", p.prefix), shape));
        }
    }
    let mut problems = Vec::new();
    for (served, shape) in &wanted {
        let Some(src) = p.names.get(served) else {
            problems.push(format!("{served}: missing"));
            continue;
        };
        match source.info(src) {
            None => problems.push(format!("{served}: missing")),
            Some(i) if &i.shape != shape => problems.push(format!(
                "{served}: shape {:?} (from {src}), but the config implies {shape:?}",
                i.shape
            )),
            Some(source::TensorInfo {
                unreadable: Some(why),
                ..
            }) => problems.push(format!("{served}: {why}")),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let n = problems.len();
    let mut list = problems.into_iter().take(8).collect::<Vec<_>>().join("; ");
    if n > 8 {
        list.push_str(&format!("; and {} more", n - 8));
    }
    Err(EvalError::BadWeights {
        path: source.path().to_path_buf(),
        problem: format!(
            "{n} tensor(s) do not fit the {} config: {list}",
            a.model_type
        ),
    })
}

/// Σ −log p(token | the ones before it) over a window, from its logits (`len × vocab`), in
/// f64 (log-sum-exp with the row's maximum subtracted).
pub fn window_nll(logits: &[f32], vocab: usize, tokens: &[u32]) -> f64 {
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
}
