//! `snrscope scan`: headless SNR of every layer, as a table or a Spectrum-style JSON file.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::Args;
use color_eyre::eyre::{bail, eyre};

use super::{
    args::ScanFlags,
    common::{self},
};
use snrscope::{
    checkpoint::Model,
    export::Inputs,
    scanfile::{self, ScanEntry},
    spectrum::{
        parts::{self, Part},
        scan::{self, ScanJob},
        snr::SnrStats,
    },
    util::{cancel::CancelToken, text::escape_controls},
};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  snrscope scan MODEL --out scan.json
  snrscope scan MODEL --modules '_proj$' --method gram --out all-modules.json
  snrscope scan MODEL --part 2/3 --out part-2.json        # on each of 3 machines
  snrscope scan --merge part-*.json --out scan.json

Memory: matrices are scanned largest first, one per thread; each thread holds one matrix in \
f64 and its workspace, so a scan needs at most THREADS x (8 bytes x rows x cols + workspace) \
for its largest matrix: about 1.4 GB per thread for 14336x4096, 0.4 GB for 4096x4096, \
0.15 GB for 1024x7168, with either method (the weights are read one matrix at a time, not \
loaded).

Results are cached per matrix (see `snrscope cache --help`): a repeated or interrupted scan \
reuses every matrix already computed. Exit codes: 0 done, 1 error, 2 usage, 3 done but some \
matrices could not be scanned (or, with --merge --allow-partial, are missing).")]
pub struct ScanArgs {
    /// Model folder (config.json + .safetensors shards, or PyTorch pytorch_model.bin shards), or a
    /// single .safetensors or .bin file.
    #[arg(required_unless_present = "merge", conflicts_with = "merge")]
    pub model: Option<PathBuf>,
    /// Write the results as JSON (Spectrum/laserRMT layout) to this file instead of printing a
    /// table.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Regular expression over module names (tensor name without `.weight`), e.g.
    /// 'self_attn\.(q|k|v|o)_proj'. Default: the value projection of the main layer stack.
    #[arg(long)]
    pub modules: Option<String>,
    /// Replace an existing --out file (never one of the model's own files).
    #[arg(long)]
    pub force: bool,
    /// Scan only part K of N (1 <= K <= N): a fixed share of the matrices, balanced by work,
    /// the same on every machine. --out then writes a part file for --merge.
    #[arg(long, value_name = "K/N", conflicts_with = "merge")]
    pub part: Option<Part>,
    /// Combine the part files of a split scan into one scan file (--out). Refuses parts of
    /// different models or methods, overlapping parts, and missing matrices.
    #[arg(long, value_name = "PART", num_args = 1.., conflicts_with_all = ["modules", "method", "no_cache"])]
    pub merge: Vec<PathBuf>,
    /// With --merge: write the merged scan even if some matrices are in no part.
    #[arg(long, requires = "merge")]
    pub allow_partial: bool,
    #[command(flatten)]
    pub scanning: ScanFlags,
}

pub fn run(args: ScanArgs) -> color_eyre::Result<ExitCode> {
    if !args.merge.is_empty() {
        return super::merge::run(
            &args.merge,
            args.out.as_deref(),
            args.allow_partial,
            args.force,
        );
    }
    let model_path = args
        .model
        .as_ref()
        .expect("clap requires MODEL without --merge");
    let model = Arc::new(Model::open(model_path)?);
    for w in &model.warnings {
        eprintln!("warning: {}", escape_controls(w));
    }
    let inputs = Inputs::of_model(&model);
    if let Some(out) = &args.out {
        // Before a scan that may take minutes, not after it.
        snrscope::export::check_output_file(out, &inputs, args.force)?;
    }
    let all_jobs = select_jobs(&model, args.modules.as_deref())?;
    let jobs = match args.part {
        Some(part) => parts::share(&all_jobs, args.scanning.method, part),
        None => all_jobs.clone(),
    };
    let options = common::scan_options(&args.scanning);
    let full = common::scan_with_progress(
        &model,
        jobs.clone(),
        options.clone(),
        &CancelToken::default(),
    );
    common::report(&options, &full);
    let results: Vec<Option<Result<SnrStats, String>>> = full
        .iter()
        .map(|r| r.as_ref().map(|r| r.outcome.clone()))
        .collect();

    let entries: Vec<ScanEntry> = jobs
        .iter()
        .zip(&full)
        .map(|(job, r)| ScanEntry::from_matrix_result(job, r.as_ref()))
        .collect();
    // A GGUF model's scan names modules as llama.cpp does (`blk.3.attn_v`).
    let entries = scanfile::to_file_keys(&model, entries);
    let failed = entries.iter().filter(|e| e.error.is_some()).count();
    match &args.out {
        Some(path) => {
            let text = match args.part {
                Some(part) => parts::to_json(
                    &parts::PartInfo {
                        part,
                        method: args.scanning.method,
                        model_fingerprint: parts::fingerprint(&model),
                        model: model_path.display().to_string(),
                        all_modules: all_jobs.iter().map(|j| model.scan_key(&j.module)).collect(),
                    },
                    &entries,
                ),
                None => scanfile::to_json(&entries),
            };
            snrscope::export::write_file_atomically(path, text.as_bytes(), &inputs, args.force)?;
            eprintln!(
                "wrote {} result(s) to {} ({} infinite, {failed} failed)",
                entries.len(),
                path.display(),
                entries.iter().filter(|e| e.snr.is_infinite()).count()
            );
        }
        None => {
            // A GGUF model's modules as llama.cpp names them (`attn_v`), as in its scan files.
            let shown: Vec<ScanJob> = jobs
                .iter()
                .map(|j| ScanJob {
                    module_type: scanfile::type_of(&model.scan_key(&j.module)),
                    ..j.clone()
                })
                .collect();
            print!("{}", table(&shown, &results))
        }
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
