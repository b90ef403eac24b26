//! Background SNR scans: a rayon pool computes one matrix per task and reports each result the
//! moment it is ready. The caller never blocks; a cancel flag stops the remaining work.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use faer::Par;

use crate::util::cancel::CancelToken;
use regex::Regex;

use crate::{
    checkpoint::{
        Model,
        layers::{self, Stack},
    },
    spectrum::{
        cache::{self, Cache, FileIdentity, Key},
        schedule,
        snr::{self, Method, SnrStats, SvdWorkspace},
    },
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
    pub slice: Option<Result<crate::checkpoint::slice::TensorSlice, String>>,
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
        derived: &crate::checkpoint::slice::Derived,
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
    /// Estimated floating-point work ([`schedule::work`]) of the matrices done / of all.
    pub work_done: f64,
    pub work_total: f64,
    /// How many of the `done` matrices came from the cache, and their work.
    pub cached: usize,
    pub cached_work: f64,
}

impl Progress {
    /// Share of the scan done: by work when known (a 14336x4096 matrix is ~40 times a
    /// 1024x4096 one), else by bytes, else by count.
    pub fn fraction(&self) -> f64 {
        if self.done >= self.total {
            // Exactly, whatever order the work was added up in.
            1.0
        } else if self.work_total > 0.0 {
            self.work_done / self.work_total
        } else if self.bytes_total == 0 {
            self.done as f64 / self.total as f64
        } else {
            self.bytes_done as f64 / self.bytes_total as f64
        }
    }

    /// Matrices computed per second so far (cached results took no time: counting them gave
    /// "4803.3 matrices/s" for a scan answered from the cache).
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        let computed = self.done.saturating_sub(self.cached);
        if s > 0.0 { computed as f64 / s } else { 0.0 }
    }

    /// Remaining time, extrapolated from the work computed so far (cached results took no
    /// time, so they count neither as done work nor as work left).
    pub fn eta(&self) -> Option<Duration> {
        if self.work_total > 0.0 {
            let computed = self.work_done - self.cached_work;
            let left = self.work_total - self.work_done;
            if self.done == self.total {
                return Some(Duration::ZERO);
            }
            if computed <= 0.0 {
                return None;
            }
            let secs = self.elapsed.as_secs_f64() * left / computed;
            return Some(Duration::from_secs_f64(secs.max(0.0)));
        }
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
    /// Time spent on this matrix (decode + SVD; the lookup for a cached one).
    pub elapsed: Duration,
    /// Read from the scan cache instead of computed.
    pub cached: bool,
    /// What produced the singular values: the method asked for, except where `Gram` had to
    /// leave a matrix to the SVD (see `snr::matrix_snr_with`).
    pub method: Method,
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

#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Pool size; 0 means one per core.
    pub threads: usize,
    /// How to get the singular values (the SVD unless asked otherwise).
    pub method: Method,
    /// Where results are looked up before computing and stored after; `None`: no cache.
    pub cache: Option<Arc<Cache>>,
}

impl ScanOptions {
    pub fn threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        }
    }
}

/// A background job (a scan, an evaluation): its cancel token and its thread.
pub struct JobHandle {
    pub cancel: CancelToken,
    thread: Option<JoinHandle<()>>,
}

impl JobHandle {
    pub fn new(cancel: CancelToken, thread: JoinHandle<()>) -> JobHandle {
        JobHandle {
            cancel,
            thread: Some(thread),
        }
    }

    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits for the job's thread to stop (after its last event was sent).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running scan.
pub type ScanHandle = JobHandle;

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
    JobHandle::new(cancel, thread)
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

/// Cache keys for `jobs` under `method`, `None` where a job's tensor or file is unknown.
fn cache_keys(
    model: &Model,
    files: &[Option<FileIdentity>],
    jobs: &[ScanJob],
    method: Method,
) -> Vec<Option<Key>> {
    jobs.iter()
        .map(|j| {
            let t = model.tensor(&j.tensor)?;
            let id = files.get(t.shard)?.as_ref()?;
            match &j.slice {
                None => Some(Key::new(id, t, method)),
                Some(Ok(s)) => Some(Key::of_part(
                    id,
                    t,
                    method,
                    Some(&format!("{:?} {:?}", s.axis, s.ranges)),
                )),
                // Nothing to compute, nothing to cache.
                Some(Err(_)) => None,
            }
        })
        .collect()
}

/// The cached statistics of each job (and the method that produced them), without computing
/// anything: a few small file reads per job, cheap enough to run when a model opens. A job
/// scanned with `Gram` also accepts a cached SVD result (the reference).
pub fn cached_results(
    model: &Model,
    jobs: &[ScanJob],
    method: Method,
    cache: &Cache,
) -> Vec<Option<(SnrStats, Method)>> {
    let methods: &[Method] = match method {
        Method::Svd => &[Method::Svd],
        Method::Gram => &[Method::Gram, Method::Svd],
    };
    let files = cache::shard_identities(model);
    let keys: Vec<Vec<Option<Key>>> = methods
        .iter()
        .map(|&m| cache_keys(model, &files, jobs, m))
        .collect();
    jobs.iter()
        .enumerate()
        .map(|(i, job)| {
            let (rows, cols) = match job.shape.as_slice() {
                &[r, c] => (r, c),
                _ => return None,
            };
            methods.iter().zip(&keys).find_map(|(&m, keys)| {
                let values = cache.get(keys[i].as_ref()?, rows.min(cols))?;
                Some((snr::stats_from_singular_values(values, rows, cols), m))
            })
        })
        .collect()
}

fn run(
    model: &Model,
    jobs: &[ScanJob],
    options: ScanOptions,
    cancel: &CancelToken,
    sink: &(impl Fn(ScanEvent) + Sync),
) {
    let started = Instant::now();
    let threads = options.threads();
    let method = options.method;
    // A cache inside the model's folder would write into the model: not used at all.
    let cache = options.cache.as_deref().filter(|c| {
        let inside = c.is_inside(&model.dir);
        if inside {
            c.note(format!(
                "{} is inside the model folder {}; not used (the model is never written to)",
                c.root().display(),
                model.dir.display()
            ));
        }
        !inside
    });
    let work: Vec<f64> = jobs
        .iter()
        .map(|j| match j.shape.as_slice() {
            &[r, c] => schedule::work(r, c, method),
            _ => 0.0,
        })
        .collect();
    let counters = Mutex::new(Progress {
        total: jobs.len(),
        bytes_total: jobs.iter().map(|j| j.bytes).sum(),
        work_total: work.iter().sum(),
        ..Progress::default()
    });
    // One lock around the counters and the send keeps every event's snapshot consistent and
    // the events in the order of their counts.
    let report = |i: usize, result: MatrixResult| {
        let mut p = counters.lock().unwrap_or_else(|e| e.into_inner());
        p.done += 1;
        p.bytes_done += jobs[i].bytes;
        p.work_done += work[i];
        if result.cached {
            p.cached += 1;
            p.cached_work += work[i];
        }
        p.elapsed = started.elapsed();
        sink(ScanEvent::Result {
            result: Box::new(result),
            progress: *p,
        });
    };

    // Everything the cache holds is reported at once, before any computing starts.
    let mut todo: Vec<usize> = schedule::largest_first(&work);
    if let Some(cache) = cache {
        let hits = cached_results(model, jobs, method, cache);
        todo.retain(|&i| hits[i].is_none());
        for (i, hit) in hits.into_iter().enumerate() {
            if let Some((stats, used)) = hit {
                report(
                    i,
                    MatrixResult {
                        job: i,
                        outcome: Ok(stats),
                        elapsed: Duration::ZERO,
                        cached: true,
                        method: used,
                    },
                );
            }
        }
    }
    let files = cache
        .map(|_| cache::shard_identities(model))
        .unwrap_or_default();
    let keys = cache.map(|_| cache_keys(model, &files, jobs, Method::Svd));
    let gram_keys = cache
        .filter(|_| method == Method::Gram)
        .map(|_| cache_keys(model, &files, jobs, Method::Gram));

    // Ask the kernel for the next few matrices while the current ones are in the SVD: on a cold
    // cache it then reads them in large requests instead of one small fault at a time. A fixed
    // window keeps this independent of model size (WILLNEED fills the page cache, not our RSS).
    let ahead = 2 * threads;
    let prefetch = |k: usize| {
        if let Some(t) = todo.get(k).and_then(|&i| model.tensor(&jobs[i].tensor)) {
            model.prefetch(t);
        }
    };
    (0..ahead).for_each(prefetch);
    let next = AtomicUsize::new(0);
    // One loop per pool thread, each taking the largest matrix not yet taken. Parallelism goes
    // across matrices (two single-threaded SVDs nearly double throughput); a matrix taken when
    // fewer remain than there are other threads gets them all inside (faer on the same pool),
    // so the threads that run out of matrices help with it instead of idling to the end.
    let worker = || {
        let mut buf = Vec::<f64>::new();
        let mut ws = SvdWorkspace::default();
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = todo.get(k) else { break };
            prefetch(k + ahead);
            let left = todo.len() - k - 1;
            let par = if schedule::use_all_threads(left, threads) {
                Par::rayon(threads)
            } else {
                Par::Seq
            };
            let t0 = Instant::now();
            let outcome = scan_one(model, &jobs[i], &mut buf, &mut ws, method, par);
            if let (Some(cache), Ok((stats, used))) = (cache, &outcome) {
                let key = match used {
                    Method::Gram => gram_keys.as_ref().and_then(|k| k[i].as_ref()),
                    Method::Svd => keys.as_ref().and_then(|k| k[i].as_ref()),
                };
                // Stored under the key of the method that produced it, and only if the file
                // is still the one the key names (it could have changed during the scan).
                let unchanged = model.tensor(&jobs[i].tensor).is_some_and(|t| {
                    FileIdentity::of(&model.shards[t.shard].path).ok() == files[t.shard]
                });
                if let (Some(key), true) = (key, unchanged) {
                    cache.put(key, &stats.singular_values);
                }
            }
            let (outcome, used) = match outcome {
                Ok((s, m)) => (Ok(s), m),
                Err(e) => (Err(e), method),
            };
            report(
                i,
                MatrixResult {
                    job: i,
                    outcome,
                    elapsed: t0.elapsed(),
                    cached: false,
                    method: used,
                },
            );
        }
    };
    let work_all = || {
        rayon::scope(|s| {
            for _ in 0..threads {
                s.spawn(|_| worker());
            }
        })
    };
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("snr-worker-{i}"))
        .build()
    {
        Ok(pool) => pool.install(work_all),
        Err(_) => worker(),
    }
    let progress = *counters.lock().unwrap_or_else(|e| e.into_inner());
    sink(ScanEvent::Finished {
        progress: Progress {
            elapsed: started.elapsed(),
            ..progress
        },
        cancelled: cancel.is_cancelled(),
    });
}

fn scan_one(
    model: &Model,
    job: &ScanJob,
    buf: &mut Vec<f64>,
    ws: &mut SvdWorkspace,
    method: Method,
    par: Par,
) -> Result<(SnrStats, Method), String> {
    let t = model
        .tensor(&job.tensor)
        .ok_or_else(|| format!("no tensor named {}", job.tensor))?;
    let (rows, cols) = match &job.slice {
        None => model.read_matrix(t, buf),
        Some(Ok(slice)) => model.read_slice(t, slice, buf),
        Some(Err(why)) => return Err(why.clone()),
    }
    .map_err(|e| e.to_string())?;
    snr::matrix_snr_with(buf, rows, cols, method, par, ws).map_err(|e| e.to_string())
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
