//! Background SNR scans: a rayon pool computes one matrix per task and reports each result the
//! moment it is ready. The caller never blocks; a cancel flag stops the remaining work.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use faer::Par;
use rayon::prelude::*;
use regex::Regex;

use crate::{
    layers::{self, Stack},
    model::Model,
    snr::{self, SnrStats, SvdWorkspace},
};

/// One matrix to scan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanJob {
    /// The tensor, e.g. `model.layers.3.self_attn.v_proj.weight`.
    pub tensor: String,
    /// The module, i.e. the tensor name without `.weight`: the key of a scan file.
    pub module: String,
    /// e.g. `self_attn.v_proj`.
    pub module_type: String,
    pub layer: Option<usize>,
    pub shape: Vec<usize>,
    pub bytes: u64,
    /// For a derived module (the V part of a fused projection): the part of `tensor` to read,
    /// or why it cannot be known. `None`: the whole tensor.
    pub slice: Option<Result<crate::fused::TensorSlice, String>>,
}

impl ScanJob {
    fn for_tensor(model: &Model, name: &str) -> Option<ScanJob> {
        let t = model.tensor(name)?;
        let module = name.strip_suffix(".weight").unwrap_or(name).to_string();
        let parsed = layers::parse_layer_name(&module);
        Some(ScanJob {
            tensor: name.to_string(),
            module_type: parsed
                .map(|p| p.rest.to_string())
                .unwrap_or_else(|| module.clone()),
            layer: parsed.map(|p| p.index),
            module,
            shape: t.shape.clone(),
            bytes: t.num_bytes(),
            slice: None,
        })
    }

    /// The job for a derived module: `tensor`'s part, named `module_type` in layer `layer`.
    fn for_part(
        model: &Model,
        stack: &Stack,
        layer: usize,
        name: &str,
        module_type: &str,
        derived: &crate::fused::Derived,
    ) -> Option<ScanJob> {
        let mut job = ScanJob::for_tensor(model, name)?;
        job.module = format!("{}.{layer}.{module_type}", stack.prefix);
        job.module_type = module_type.to_string();
        if let (Ok(slice), Some((rows, cols))) =
            (&derived.slice, model.tensor(name)?.matrix_shape())
        {
            let (r, c) = slice.shape(rows, cols);
            job.bytes = job.bytes * (r * c) as u64 / (rows * cols).max(1) as u64;
            job.shape = vec![r, c];
        }
        job.slice = Some(derived.slice.clone());
        Some(job)
    }
}

/// Jobs for one module type of one stack, in layer order.
pub fn jobs_for_module(model: &Model, stack: &Stack, module_type: &str) -> Vec<ScanJob> {
    let by_layer = stack.modules.get(module_type).into_iter().flatten();
    match stack.derived.get(module_type) {
        Some(d) => by_layer
            .filter_map(|(&l, name)| ScanJob::for_part(model, stack, l, name, module_type, d))
            .collect(),
        None => by_layer
            .filter_map(|(_, name)| ScanJob::for_tensor(model, name))
            .collect(),
    }
}

/// Jobs for every 2-D `.weight` tensor whose name (without `.weight`) matches `pattern`, in
/// natural name order — the oracle's `--match` semantics — then the derived modules (V parts
/// of fused projections, e.g. `model.layers.3.self_attn.v_proj ⊂ qkv_proj`) that match.
pub fn jobs_matching(model: &Model, pattern: &Regex) -> Vec<ScanJob> {
    let mut jobs: Vec<ScanJob> = model
        .tensors
        .iter()
        .filter(|t| t.shape.len() == 2)
        .filter(|t| {
            let module = t.name.strip_suffix(".weight").unwrap_or(&t.name);
            t.name.ends_with(".weight") && pattern.is_match(module)
        })
        .filter_map(|t| ScanJob::for_tensor(model, &t.name))
        .collect();
    for stack in &model.layout.stacks {
        for module_type in stack.derived.keys() {
            jobs.extend(
                jobs_for_module(model, stack, module_type)
                    .into_iter()
                    .filter(|j| pattern.is_match(&j.module)),
            );
        }
    }
    jobs
}

/// Counters shared by the workers; snapshots of them travel with every event.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub elapsed: Duration,
}

impl Progress {
    pub fn fraction(&self) -> f64 {
        if self.bytes_total == 0 {
            if self.total == 0 {
                1.0
            } else {
                self.done as f64 / self.total as f64
            }
        } else {
            self.bytes_done as f64 / self.bytes_total as f64
        }
    }

    /// Matrices per second so far.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.done as f64 / s } else { 0.0 }
    }

    /// Remaining time, extrapolated from the bytes done so far.
    pub fn eta(&self) -> Option<Duration> {
        let f = self.fraction();
        if self.done == 0 || f <= 0.0 {
            return None;
        }
        let total = self.elapsed.as_secs_f64() / f;
        Some(Duration::from_secs_f64(
            (total - self.elapsed.as_secs_f64()).max(0.0),
        ))
    }
}

/// What one job produced.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixResult {
    pub job: usize,
    pub outcome: Result<SnrStats, String>,
    /// Time spent on this matrix (decode + SVD).
    pub elapsed: Duration,
}

/// Everything a scan reports, in order: results as they finish, then `Finished` exactly once.
#[derive(Debug, Clone, PartialEq)]
pub enum ScanEvent {
    Result {
        result: Box<MatrixResult>,
        progress: Progress,
    },
    Finished {
        progress: Progress,
        cancelled: bool,
    },
}

/// Stops a scan: jobs not yet started are skipped.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanOptions {
    /// Pool size; 0 means one per core.
    pub threads: usize,
}

/// A running scan.
pub struct ScanHandle {
    pub cancel: CancelToken,
    thread: Option<JoinHandle<()>>,
}

impl ScanHandle {
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits for the workers to stop (after `Finished` was sent).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts scanning `jobs` on a fresh pool and hands every event to `sink` (from worker threads;
/// a channel sender fits). Returns at once.
pub fn start(
    model: Arc<Model>,
    jobs: Vec<ScanJob>,
    options: ScanOptions,
    sink: impl Fn(ScanEvent) + Send + Sync + 'static,
) -> ScanHandle {
    let cancel = CancelToken::default();
    let token = cancel.clone();
    let thread = std::thread::Builder::new()
        .name("snr-scan".into())
        .spawn(move || run(&model, &jobs, options, &token, &sink))
        .expect("spawning the scan thread");
    ScanHandle {
        cancel,
        thread: Some(thread),
    }
}

/// Convenience for callers that want a receiver.
pub fn start_channel(
    model: Arc<Model>,
    jobs: Vec<ScanJob>,
    options: ScanOptions,
) -> (ScanHandle, crossbeam_channel::Receiver<ScanEvent>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = start(model, jobs, options, move |e| {
        let _ = tx.send(e);
    });
    (handle, rx)
}

fn run(
    model: &Model,
    jobs: &[ScanJob],
    options: ScanOptions,
    cancel: &CancelToken,
    sink: &(impl Fn(ScanEvent) + Sync),
) {
    let started = Instant::now();
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.threads
    };
    let bytes_total = jobs.iter().map(|j| j.bytes).sum();
    let done = AtomicUsize::new(0);
    let bytes_done = AtomicU64::new(0);
    let snapshot = |done: usize, bytes_done: u64| Progress {
        done,
        total: jobs.len(),
        bytes_done,
        bytes_total,
        elapsed: started.elapsed(),
    };
    // Parallelism goes across matrices (two single-threaded SVDs nearly double throughput);
    // only when there are fewer matrices than threads does one SVD get several.
    let par = if jobs.len() < threads {
        Par::rayon(threads)
    } else {
        Par::Seq
    };
    // Ask the kernel for the next few matrices while the current ones are in the SVD: on a cold
    // cache it then reads them in large requests instead of one small fault at a time. A fixed
    // window keeps this independent of model size (WILLNEED fills the page cache, not our RSS).
    let ahead = 2 * threads;
    let prefetch = |i: usize| {
        if let Some(t) = jobs.get(i).and_then(|j| model.tensor(&j.tensor)) {
            model.prefetch(t);
        }
    };
    (0..ahead).for_each(prefetch);
    let work = || {
        jobs.par_iter().enumerate().for_each_init(
            || (Vec::<f64>::new(), SvdWorkspace::default()),
            |(buf, ws), (i, job)| {
                if cancel.is_cancelled() {
                    return;
                }
                prefetch(i + ahead);
                let t0 = Instant::now();
                let outcome = scan_one(model, job, buf, ws, par);
                let result = MatrixResult {
                    job: i,
                    outcome,
                    elapsed: t0.elapsed(),
                };
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                let b = bytes_done.fetch_add(job.bytes, Ordering::Relaxed) + job.bytes;
                sink(ScanEvent::Result {
                    result: Box::new(result),
                    progress: snapshot(d, b),
                });
            },
        )
    };
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("snr-worker-{i}"))
        .build()
    {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    }
    sink(ScanEvent::Finished {
        progress: snapshot(done.into_inner(), bytes_done.into_inner()),
        cancelled: cancel.is_cancelled(),
    });
}

fn scan_one(
    model: &Model,
    job: &ScanJob,
    buf: &mut Vec<f64>,
    ws: &mut SvdWorkspace,
    par: Par,
) -> Result<SnrStats, String> {
    let t = model
        .tensor(&job.tensor)
        .ok_or_else(|| format!("no tensor named {}", job.tensor))?;
    let (rows, cols) = match &job.slice {
        None => model.read_matrix(t, buf),
        Some(Ok(slice)) => model.read_slice(t, slice, buf),
        Some(Err(why)) => return Err(why.clone()),
    }
    .map_err(|e| e.to_string())?;
    snr::matrix_snr(buf, rows, cols, par, ws).map_err(|e| e.to_string())
}

/// Runs a scan to its end on the calling thread's behalf: `on_result` sees every result as it
/// arrives (for progress bars), `stop` cancels the remaining jobs (e.g. Ctrl-C). Results come
/// back in job order; `None` where a job was cancelled before it ran.
pub fn run_to_end(
    model: Arc<Model>,
    jobs: Vec<ScanJob>,
    options: ScanOptions,
    stop: &CancelToken,
    mut on_result: impl FnMut(&MatrixResult, &Progress),
) -> Vec<Option<MatrixResult>> {
    let n = jobs.len();
    let (handle, rx) = start_channel(model, jobs, options);
    let mut out: Vec<Option<MatrixResult>> = vec![None; n];
    loop {
        if stop.is_cancelled() {
            handle.cancel();
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ScanEvent::Result { result, progress }) => {
                on_result(&result, &progress);
                let j = result.job;
                out[j] = Some(*result);
            }
            Ok(ScanEvent::Finished { .. })
            | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
    }
    handle.join();
    out
}

/// Scans to the end without progress or cancellation; results in job order.
pub fn scan_blocking(
    model: Arc<Model>,
    jobs: Vec<ScanJob>,
    options: ScanOptions,
) -> Vec<MatrixResult> {
    run_to_end(model, jobs, options, &CancelToken::default(), |_, _| {})
        .into_iter()
        .flatten()
        .collect()
}
