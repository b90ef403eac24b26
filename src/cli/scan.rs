//! `snrscope scan`: headless SNR of every layer, as a table or a Spectrum-style JSON file.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use clap::Args;
use color_eyre::eyre::{bail, eyre};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    export::Inputs,
    model::Model,
    scan::{self, CancelToken, ScanJob, ScanOptions},
    scanfile::{self, ScanEntry},
    snr::SnrStats,
    text::escape_controls,
};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Model folder (config.json + .safetensors shards) or a single .safetensors file.
    pub model: PathBuf,
    /// Write the results as JSON (Spectrum/laserRMT layout) to this file instead of printing a
    /// table.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Regular expression over module names (tensor name without `.weight`), e.g.
    /// 'self_attn\.(q|k|v|o)_proj'. Default: the value projection of the main layer stack.
    #[arg(long)]
    pub modules: Option<String>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Replace an existing --out file (never one of the model's own files).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: ScanArgs) -> color_eyre::Result<ExitCode> {
    let model = Arc::new(Model::open(&args.model)?);
    for w in &model.warnings {
        eprintln!("warning: {}", escape_controls(w));
    }
    let inputs = Inputs::of_model(&model);
    if let Some(out) = &args.out {
        // Before a scan that may take minutes, not after it.
        inputs.check(out)?;
        if out.symlink_metadata().is_ok() && !args.force {
            bail!(
                "{}: already exists (pass --force to replace it)",
                out.display()
            );
        }
    }
    let jobs = select_jobs(&model, args.modules.as_deref())?;
    let results = scan_with_bar(&model, jobs.clone(), args.threads, &CancelToken::default());

    let entries: Vec<ScanEntry> = jobs
        .iter()
        .zip(&results)
        .map(|(job, r)| ScanEntry::from_result(job, r.as_ref()))
        .collect();
    let failed = entries.iter().filter(|e| e.error.is_some()).count();
    match &args.out {
        Some(path) => {
            crate::export::write_file_atomically(
                path,
                scanfile::to_json(&entries).as_bytes(),
                &inputs,
                args.force,
            )?;
            eprintln!(
                "wrote {} result(s) to {} ({} infinite, {failed} failed)",
                entries.len(),
                path.display(),
                entries.iter().filter(|e| e.snr.is_infinite()).count()
            );
        }
        None => print!("{}", table(&jobs, &results)),
    }
    for e in entries.iter().filter(|e| e.error.is_some()) {
        eprintln!(
            "warning: {}: {}",
            escape_controls(&e.module),
            escape_controls(e.error.as_deref().unwrap_or_default())
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// The jobs for `--modules`, or the main stack's value projection.
pub fn select_jobs(model: &Model, modules: Option<&str>) -> color_eyre::Result<Vec<ScanJob>> {
    let jobs = match modules {
        Some(pattern) => {
            let re = regex::Regex::new(pattern).map_err(|e| {
                eyre!("--modules {pattern:?} is not a valid regular expression: {e}")
            })?;
            let jobs = scan::jobs_matching(model, &re);
            if jobs.is_empty() {
                bail!(
                    "{}: no 2-D weight matches --modules {pattern:?}",
                    model.source.display()
                );
            }
            jobs
        }
        None => {
            let stack = model.main_stack()?;
            let module = stack
                .default_module()
                .ok_or_else(|| eyre!("{}: layers have no 2-D weights", model.source.display()))?;
            scan::jobs_for_module(model, stack, module)
        }
    };
    Ok(jobs)
}

/// Runs the scan with a byte progress bar on stderr (when it is a terminal); `stop` ends it
/// early. Outcomes in job order, `None` for jobs that never ran.
pub fn scan_with_bar(
    model: &Arc<Model>,
    jobs: Vec<ScanJob>,
    threads: usize,
    stop: &CancelToken,
) -> Vec<Option<Result<SnrStats, String>>> {
    let bar = bytes_bar("scanning");
    bar.set_length(jobs.iter().map(|j| j.bytes).sum());
    bar.set_message(format!("{} matrices", jobs.len()));
    let results = scan::run_to_end(
        model.clone(),
        jobs,
        ScanOptions { threads },
        stop,
        |_, progress| bar.set_position(progress.bytes_done),
    );
    bar.finish_and_clear();
    results.into_iter().map(|r| r.map(|r| r.outcome)).collect()
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

fn table(jobs: &[ScanJob], results: &[Option<Result<SnrStats, String>>]) -> String {
    use std::fmt::Write as _;
    let width = jobs
        .iter()
        .map(|j| j.module_type.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!(
        "{:>5}  {:<width$}  {:>12}  {:>14}  {}\n",
        "layer", "module", "shape", "snr_ratio", ""
    );
    for (job, r) in jobs.iter().zip(results) {
        let shape = job
            .shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("x");
        let layer = job.layer.map_or("-".into(), |l| l.to_string());
        let (value, mark) = match r {
            Some(Ok(s)) if s.is_infinite() => ("inf".to_string(), "∞ infinite".to_string()),
            Some(Ok(s)) if s.snr_ratio.is_nan() => {
                ("nan".to_string(), "all-zero matrix".to_string())
            }
            Some(Ok(s)) => (format!("{:.6e}", s.snr_ratio), String::new()),
            Some(Err(e)) => ("error".to_string(), e.clone()),
            None => ("-".to_string(), "not scanned".to_string()),
        };
        let _ = writeln!(
            out,
            "{layer:>5}  {:<width$}  {shape:>12}  {value:>14}  {}",
            escape_controls(&job.module_type),
            escape_controls(&mark)
        );
    }
    out
}
