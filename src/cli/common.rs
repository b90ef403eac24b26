//! What the headless commands share: the scan options they build from the flags, the scan
//! with its progress bar, and the report after it.

use std::{io::IsTerminal, sync::Arc, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};
use snrscope::{
    checkpoint::Model,
    spectrum::{
        cache::{self, Cache},
        scan::{self, MatrixResult, ScanJob, ScanOptions},
        snr::{Method, SnrStats},
    },
    util::cancel::CancelToken,
};

use super::args::ScanFlags;

/// The options of a command-line scan: the user's cache unless `no_cache`.
pub fn scan_options(flags: &ScanFlags) -> ScanOptions {
    ScanOptions {
        threads: flags.threads,
        method: flags.method,
        cache: if flags.no_cache {
            None
        } else {
            Cache::user().map(Arc::new)
        },
    }
}

/// After a scan: the cache's warnings, what it saved, Gram's fallbacks; trims the cache.
pub fn report(options: &ScanOptions, results: &[Option<MatrixResult>]) {
    let done: Vec<&MatrixResult> = results.iter().flatten().collect();
    if options.method == Method::Gram {
        let computed = done.iter().filter(|r| !r.cached && r.outcome.is_ok());
        let to_svd = computed.filter(|r| r.method == Method::Svd).count();
        if to_svd > 0 {
            eprintln!(
                "note: the Gram method left {to_svd} matrices to the SVD (it could not guarantee \
                 their SNR); the scan file records each matrix's method"
            );
        }
    }
    let Some(cache) = &options.cache else {
        return;
    };
    for w in cache.take_warnings() {
        eprintln!("warning: scan cache: {w}");
    }
    let reused = done.iter().filter(|r| r.cached).count();
    eprintln!(
        "scan cache: {reused} of {} matrices reused, {} computed ({})",
        done.len(),
        done.len() - reused,
        cache.root().display()
    );
    if let Err(e) = cache.prune(cache::DEFAULT_MAX_BYTES) {
        eprintln!("warning: scan cache: cannot trim: {e}");
    }
}

/// Runs the scan with a progress bar on stderr (when it is a terminal); `stop` ends it early.
/// Outcomes in job order, `None` for jobs that never ran.
pub fn scan_with_bar(
    model: &Arc<Model>,
    jobs: Vec<ScanJob>,
    options: ScanOptions,
    stop: &CancelToken,
) -> Vec<Option<Result<SnrStats, String>>> {
    let results = scan_with_progress(model, jobs, options.clone(), stop);
    report(&options, &results);
    results.into_iter().map(|r| r.map(|r| r.outcome)).collect()
}

/// [`scan_with_bar`] with every result's details (cached, method), without the report.
pub fn scan_with_progress(
    model: &Arc<Model>,
    jobs: Vec<ScanJob>,
    options: ScanOptions,
    stop: &CancelToken,
) -> Vec<Option<MatrixResult>> {
    let bar = work_bar();
    // Work in millions of flops: a matrix's share of the bar is its share of the time.
    let n = jobs.len();
    let results = scan::run_to_end(model.clone(), jobs, options, stop, |_, p| {
        bar.set_length((p.work_total - p.cached_work).max(1.0) as u64 / 1_000_000 + 1);
        bar.set_position(((p.work_done - p.cached_work) / 1e6) as u64);
        let eta = p.eta().map_or("-".into(), |d| eta_text(d.as_secs()));
        let cached = if p.cached > 0 {
            format!(", {} cached", p.cached)
        } else {
            String::new()
        };
        bar.set_message(format!("{}/{n} matrices{cached}, ETA {eta}", p.done));
    });
    bar.finish_and_clear();
    results
}

/// `45s`, `12m05s`, `3h20m`.
fn eta_text(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The scan's bar: its length is the scan's work, not bytes or matrix count.
fn work_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{spinner} scanning [{bar:30}] {percent:>3}% {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bytes/rate/ETA bar for `what` ("scanning", "writing"); hidden when stderr is not a
/// terminal, so scripts get clean output.
pub fn bytes_bar(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{msg}} [{{bar:30}}] {{bytes}}/{{total_bytes}} \
             {{bytes_per_sec}} ETA {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `--probe FILE --metric KEY`: the probe's metric the rule reads instead of an SNR, checked
/// against what is pruned (the model's weights when there is a model; the stack always).
pub fn probe_metric(
    probe: &std::path::Path,
    metric: &str,
    rule: &snrscope::plan::Rule,
    model: Option<&Model>,
    stack_prefix: &str,
    num_layers: usize,
) -> color_eyre::Result<snrscope::probe::Column> {
    use color_eyre::eyre::bail;
    let name = probe.display();
    if *rule == snrscope::plan::Rule::Infinite {
        bail!(
            "--metric {metric}: no metric is ever infinite; choose with --rule lowest:K (for \
             angle:N, the K lowest disjoint blocks of N layers; lowest:1 is the best block) or \
             --rule below:X"
        );
    }
    if !snrscope::probe::looks_like_probe_file(probe) {
        bail!("{name}: is not a probe file (`snrscope probe --out` writes one)");
    }
    let doc = snrscope::probe::read(probe).map_err(|e| color_eyre::eyre::eyre!(e))?;
    if let Some(model) = model
        && snrscope::spectrum::parts::fingerprint(model) != doc.model_fingerprint
    {
        bail!(
            "{name}: is a probe of other weights ({}), not of {} (their tensors or bytes \
             differ); probe this model with `snrscope probe`",
            snrscope::util::text::escape_controls(&doc.model),
            model.source.display()
        );
    }
    if doc.stack_prefix != stack_prefix || doc.layers != num_layers {
        bail!(
            "{name}: probes `{}` with {} layers, but the model has `{stack_prefix}` with \
             {num_layers} layers",
            doc.stack_prefix,
            doc.layers
        );
    }
    snrscope::probe::column(&doc, metric).map_err(|e| color_eyre::eyre::eyre!("{name}: {e}"))
}

/// The plan's column name for a metric ("Block Influence", or for blocks the value of the
/// block that starts at the layer).
pub fn metric_column_name(c: &snrscope::probe::Column) -> String {
    if c.block > 1 {
        format!("{} (the block from this layer)", c.name)
    } else {
        c.name.clone()
    }
}
