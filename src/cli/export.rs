//! `snrscope export`: plan the pruning and write the mergekit YAML, the pruned model and/or
//! Spectrum's unfrozen-parameters YAML.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::Args;
use color_eyre::eyre::{bail, eyre};

use snrscope::{
    checkpoint::Model,
    export::{self, ExportError, ExportOptions, Inputs},
    plan::{self, Plan, Request, Rule, SnrTable, format_ranges},
    scanfile,
    spectrum::scan::{self, ScanJob},
    util::{
        bytes::{human_bytes, human_count},
        cancel::CancelToken,
        fsid,
        text::escape_controls,
    },
};

use super::{
    args::{LayerList, ScanFlags, check_layers, module_for, parse_layers, parse_rule},
    common::{self, bytes_bar, scan_with_bar},
};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  snrscope export MODEL --yaml prune.yml
  snrscope export MODEL --model-out ./Yi-34B-pruned --yaml prune.yml
  snrscope export MODEL --drop 12,20-21 --keep 55 --model-name 01-ai/Yi-34B --yaml prune.yml
  snrscope export scan.json --yaml prune.yml
  snrscope export MODEL --scan saved-scan.json --model-out ./pruned
  snrscope export MODEL --unfrozen-yaml spectrum.yml --top-percent 25
  snrscope export MODEL.gguf --drop 0,5 --gguf-out pruned.gguf

Without an output flag the plan is printed and nothing is written. Outputs are never written
into, over or around the input model (checked by file identity, so links and bind mounts count),
and an existing output is replaced only with --force. The pruned model is written first; the
YAML files only once it is in place. Only model files are copied (config, tokenizer, chat
template, license, ...; never hidden files or keys); --copy adds a file or folder by name.

Ctrl-C, SIGTERM and SIGHUP stop cleanly: nothing is left under the output names. Exit codes:
0 done, 1 error, 2 usage, 3 done but some matrices could not be scanned, 128+N stopped by
signal N (130 for Ctrl-C).")]
pub struct ExportArgs {
    /// Model folder (config.json + .safetensors or pytorch_model.bin), a .safetensors or .bin
    /// file (the pruned model is always written as safetensors), a GGUF (a .gguf file, any
    /// part of a split set, or a folder holding one; pruned with --gguf-out), or a scan JSON
    /// (Spectrum / laserQlora layout; plans without the weights).
    pub model: PathBuf,
    /// Write mergekit's passthrough config (one slice per run of kept layers) to this file.
    #[arg(long, value_name = "FILE")]
    pub yaml: Option<PathBuf>,
    /// With a model: take the SNR from this saved scan (e.g. `snrscope scan --out`) instead of
    /// scanning again. Its layer stack must match the model's.
    #[arg(long, value_name = "FILE")]
    pub scan: Option<PathBuf>,
    /// Write the pruned model to this folder (needs the model's weights). Built beside it
    /// under a temporary name and renamed when complete.
    #[arg(long, value_name = "DIR")]
    pub model_out: Option<PathBuf>,
    /// For a GGUF model: write the pruned model as one GGUF file (kept layers byte for byte
    /// in their own types, renumbered; block_count and every per-layer metadata array
    /// shortened). Built beside it under a temporary name and renamed when complete.
    #[arg(long, value_name = "FILE", conflicts_with = "model_out")]
    pub gguf_out: Option<PathBuf>,
    /// Write Spectrum's training selection (top --top-percent of layers by SNR per module
    /// type) to this file. With a model, scans every module type of the main layer stack.
    #[arg(long, value_name = "FILE")]
    pub unfrozen_yaml: Option<PathBuf>,
    /// Share of layers per module type that --unfrozen-yaml unfreezes.
    #[arg(long, value_name = "PERCENT", default_value_t = 50.0)]
    pub top_percent: f64,
    /// Which layers to drop from the module's SNR: `infinite` (the seed's rule), `lowest:K`
    /// (the K smallest finite SNR) or `below:X` (strictly below X: a layer whose printed SNR is
    /// X is kept).
    #[arg(long, default_value = "infinite", value_parser = parse_rule)]
    pub rule: Rule,
    /// Also drop these layers, e.g. `12,20-21`.
    #[arg(long, value_name = "LAYERS", value_parser = parse_layers)]
    pub drop: Option<LayerList>,
    /// Keep these layers even if the rule drops them, e.g. `55`.
    #[arg(long, value_name = "LAYERS", value_parser = parse_layers)]
    pub keep: Option<LayerList>,
    /// Module type whose SNR drives the choice [default: self_attn.v_proj or the model's
    /// closest equivalent].
    #[arg(long, value_name = "TYPE")]
    pub module: Option<String>,
    /// Let a probe's metric drive --rule instead of an SNR (no scan): `bi` (Block Influence),
    /// `angle:N` (angular distance of blocks of N layers; `lowest:K` takes the K lowest
    /// disjoint blocks), `ppl` (perplexity without the layer). Lowest values drop first.
    #[arg(
        long,
        value_name = "METRIC",
        requires = "probe",
        conflicts_with = "module"
    )]
    pub metric: Option<String>,
    /// The probe file --metric reads (`snrscope probe --out`); it must be a probe of this
    /// model (same weights, same layer stack).
    #[arg(long, value_name = "FILE", requires = "metric")]
    pub probe: Option<PathBuf>,
    /// mergekit's `model:` value (e.g. a Hugging Face repo id) [default: the model folder's
    /// absolute path; required with a scan file and --yaml].
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// mergekit's dtype [default: config.json's torch_dtype, else the weights' dominant dtype;
    /// bfloat16 for a scan file].
    #[arg(long)]
    pub dtype: Option<String>,
    /// Largest shard of the pruned model, in bytes; K, M, G (and KB, MB, GB) are powers of
    /// 1000, KiB, MiB, GiB powers of 1024.
    #[arg(long, value_name = "SIZE", default_value = "5GB", value_parser = snrscope::util::bytes::parse_size)]
    pub shard_size: u64,
    /// Replace existing output files and folders (never the input's).
    #[arg(long)]
    pub force: bool,
    /// Also copy this file or folder (e.g. sentence-transformers' 1_Pooling) of the model
    /// folder into the pruned model (repeatable); by default only recognised model files are
    /// copied.
    #[arg(long = "copy", value_name = "NAME")]
    pub copy: Vec<String>,
    /// With --scan: accept a saved scan that lacks some layers of the model (they count as
    /// unknown and are kept unless dropped by hand).
    #[arg(long)]
    pub allow_partial: bool,
    #[command(flatten)]
    pub scanning: ScanFlags,
}

/// Where the SNR values come from.
enum Source {
    Model(Arc<Model>),
    ScanFile(Vec<scanfile::ScanEntry>),
}

pub fn run(mut args: ExportArgs) -> color_eyre::Result<ExitCode> {
    let cancel = CancelToken::default();
    super::signals::cancel_on_signals(&cancel);
    let input = args.model.display().to_string();
    let mut inputs = Inputs::of_path(&args.model);
    if let Some(scan) = &args.scan {
        inputs.add(scan);
    }
    if let Some(probe) = &args.probe {
        inputs.add(probe);
    }
    let source = if scanfile::looks_like_scan_file(&args.model) {
        let (_, entries) = scanfile::read(&args.model)?;
        if let Some(out) = args.model_out.as_ref().or(args.gguf_out.as_ref()) {
            bail!(
                "{input}: is a scan file; {} needs the model's weights (give the model \
                 instead)",
                out.display()
            );
        }
        // The YAML's `model:` must name a model, and a scan file is not one (as the explorer).
        if args.yaml.is_some() && args.model_name.is_none() {
            bail!(
                "{input}: is a scan file, not a model: --yaml needs --model-name with the \
                 model's Hugging Face repo id or folder for mergekit's `model:`"
            );
        }
        Source::ScanFile(entries)
    } else {
        let model = Model::open(&args.model)?;
        for w in &model.warnings {
            eprintln!("warning: {}", escape_controls(w));
        }
        inputs = Inputs::of_model(&model).merge(&inputs);
        // A GGUF's module type may be given by its llama.cpp name (`--module attn_v`).
        if let (Some(_), Some(m)) = (&model.gguf, &args.module) {
            args.module = Some(module_for(&model, model.main_stack()?, Some(m))?);
        }
        match (&model.gguf, &args.model_out, &args.gguf_out) {
            (Some(_), Some(out), _) => bail!(
                "{input}: is a GGUF; it is pruned to a GGUF file (--gguf-out {}), not to a \
                 safetensors folder",
                out.with_extension("gguf").display()
            ),
            (None, _, Some(out)) => bail!(
                "{input}: is not a GGUF; --gguf-out {} needs a .gguf model (--model-out writes \
                 a pruned safetensors folder)",
                out.display()
            ),
            // Before a scan that may take minutes, not after it.
            (_, Some(out), _) => export::check_output_folder(&inputs, out, args.force)?,
            (_, _, Some(out)) => export::check_gguf_target(out, &inputs, args.force)?,
            _ => {}
        }
        Source::Model(Arc::new(model))
    };
    check_outputs(&args, &inputs)?;

    let model_ref = match (&args.model_name, &source) {
        (Some(name), _) => name.clone(),
        // mergekit reads the Hugging Face model a GGUF was converted from, not the GGUF.
        (None, Source::Model(m)) if m.gguf.is_some() => {
            match m.gguf.as_ref().and_then(|g| g.file.source_repo()) {
                Some(repo) => repo,
                None if args.yaml.is_some() => bail!(
                    "{input}: a GGUF names no Hugging Face model it was converted from \
                     (general.source.repo_url, general.base_model.*); mergekit's YAML needs \
                     one: pass --model-name ORG/NAME"
                ),
                None => input.clone(),
            }
        }
        // As the explorer: the folder's absolute path (a relative one reads as a repo id).
        (None, Source::Model(_)) => export::model_reference(&args.model),
        (None, Source::ScanFile(_)) => input.clone(),
    };
    let choice = Request {
        module: args.module.clone(),
        rule: args.rule,
        drop: args.drop.clone().map(|l| l.0).unwrap_or_default(),
        keep: args.keep.clone().map(|l| l.0).unwrap_or_default(),
    };
    let mut failed = 0;
    let (table, groups, dtype) = match &source {
        Source::ScanFile(entries) => {
            let table = SnrTable::from_scan(entries, &input)?;
            let groups = export::unfrozen_groups_from_scan(entries);
            let dtype = args.dtype.clone().unwrap_or_else(|| "bfloat16".into());
            (table, groups, dtype)
        }
        Source::Model(model) => {
            let table = match &args.scan {
                Some(path) => saved_scan_for(model, path, &args)?,
                // A metric drives: no SNR is needed unless Spectrum's selection is asked for.
                None if args.metric.is_some() && args.unfrozen_yaml.is_none() => {
                    SnrTable::for_stack(model.main_stack()?)
                }
                None => {
                    let (table, f) = scan_model(model, &args, &cancel)?;
                    failed = f;
                    table
                }
            };
            let groups = export::groups_from_table(&table);
            let dtype = args
                .dtype
                .clone()
                .unwrap_or_else(|| plan::model_dtype(model));
            (table, groups, dtype)
        }
    };
    if cancel.is_cancelled() {
        eprintln!("cancelled; nothing was written");
        return Ok(ExitCode::from(super::signals::exit_code()));
    }

    // Only --yaml and --model-out need a plan: a Spectrum selection is still written when, say,
    // every layer's SNR is infinite.
    let pruning = args.yaml.is_some() || args.model_out.is_some() || args.gguf_out.is_some();
    let planned = match (&args.metric, &args.probe) {
        (Some(metric), Some(probe)) => {
            let model = match &source {
                Source::Model(m) => Some(&**m),
                Source::ScanFile(_) => None,
            };
            let c = super::common::probe_metric(
                probe,
                metric,
                &args.rule,
                model,
                &table.stack_prefix,
                table.num_layers,
            )?;
            let column = super::common::metric_column_name(&c);
            let reading = plan::Reading {
                module_type: &column,
                what: &c.name,
                values: &c.values,
                block: c.block,
                definition: Some(&c.definition),
            };
            plan::make_plan_from(
                &reading,
                &table.stack_prefix,
                table.num_layers,
                &choice,
                &model_ref,
                &dtype,
            )
        }
        _ => plan::make_plan(&table, &choice, &model_ref, &dtype),
    };
    let plan = match planned {
        Ok(mut p) => {
            if let Source::Model(model) = &source {
                p.mergekit_modules = plan::mergekit_modules(model);
            }
            Some(p)
        }
        Err(e) if !pruning => {
            eprintln!("note: no pruning plan: {}", escape_controls(&e.to_string()));
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(plan) = &plan {
        print_plan(plan);
        if let Source::Model(model) = &source
            && let Some(stack) = model.layout.stack(&plan.stack_prefix)
        {
            let s = snrscope::plan::sizes(model, stack, &plan.dropped);
            println!(
                "parameters: {} -> {} (tensors: {} -> {})",
                human_count(s.params_before),
                human_count(s.params_after),
                human_bytes(s.bytes_before),
                human_bytes(s.bytes_after)
            );
        }
    }
    // The pruned model first: if it fails, no YAML claims a model that was not written.
    let mut wrote_any = false;
    if let (Some(plan), Some(out), Source::Model(model)) = (&plan, &args.model_out, &source) {
        let mut options = ExportOptions::new(out);
        options.shard_size = args.shard_size;
        options.force = args.force;
        options.extra_files = args.copy.clone();
        options.inputs = inputs.clone();
        let bar = bytes_bar("writing");
        bar.set_message(out.display().to_string());
        let result = export::export_model(
            model,
            plan,
            &options,
            &mut |p| {
                bar.set_length(p.bytes_total);
                bar.set_position(p.bytes_done);
            },
            &cancel,
        );
        bar.finish_and_clear();
        match result {
            Ok(s) => report_export(&s),
            Err(e @ ExportError::Cancelled { .. }) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(super::signals::exit_code()));
            }
            // Failures while writing: the temporary folder is gone, any old folder is intact.
            Err(e @ ExportError::Io { .. }) => {
                return Err(eyre!("{e}; nothing was written under {}", out.display()));
            }
            Err(e) => return Err(e.into()),
        }
        wrote_any = true;
    }
    if let (Some(plan), Some(out), Source::Model(model)) = (&plan, &args.gguf_out, &source)
        && let Some(gguf) = &model.gguf
    {
        let kept: Vec<usize> = (0..plan.num_layers)
            .filter(|l| !plan.dropped.contains(l))
            .collect();
        let options = export::PruneOptions {
            kept,
            out: out.clone(),
            replace: args.force,
            inputs: inputs.clone(),
        };
        let bar = bytes_bar("writing");
        bar.set_message(out.display().to_string());
        let result = export::write_pruned(
            &gguf.file,
            &options,
            &mut |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            },
            &cancel,
        );
        bar.finish_and_clear();
        match result {
            Ok(s) => {
                for n in s.notes.iter().chain(&s.edited) {
                    eprintln!("note: {}", escape_controls(n));
                }
                eprintln!(
                    "wrote {} ({} tensors, {} bytes)",
                    s.out.display(),
                    s.tensors,
                    s.bytes
                );
            }
            Err(e @ ExportError::Cancelled { .. }) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(super::signals::exit_code()));
            }
            Err(e @ ExportError::Io { .. }) => {
                return Err(eyre!("{e}; nothing was written under {}", out.display()));
            }
            Err(e) => return Err(e.into()),
        }
        wrote_any = true;
    }
    if let Some(path) = &args.unfrozen_yaml {
        export::write_unfrozen_yaml(&groups, args.top_percent, path, &inputs, args.force)?;
        eprintln!(
            "wrote {} (top {}% of {} module type(s))",
            path.display(),
            args.top_percent,
            groups.len()
        );
        wrote_any = true;
    }
    if let (Some(plan), Some(path)) = (&plan, &args.yaml) {
        export::write_mergekit_yaml(plan, path, &inputs, args.force)?;
        eprintln!("wrote {}", path.display());
        wrote_any = true;
    }
    Ok(finish(wrote_any, failed))
}

fn report_export(s: &export::ExportSummary) {
    for n in &s.notes {
        eprintln!("note: {}", escape_controls(n));
    }
    if !s.skipped.is_empty() {
        eprintln!("not copied from the model folder:");
        for (name, why) in &s.skipped {
            eprintln!("  {}: {}", escape_controls(name), escape_controls(why));
        }
    }
    eprintln!(
        "wrote {} ({} tensors, {} bytes in {} shard(s); copied {})",
        s.out.display(),
        s.tensors,
        s.bytes,
        s.shards,
        if s.copied.is_empty() {
            "no other file".to_string()
        } else {
            s.copied.join(", ")
        }
    );
}

/// The SNR table of a saved scan, checked against the model it is used with: a scan of another
/// model would silently drop the wrong layers.
fn saved_scan_for(
    model: &Model,
    path: &std::path::Path,
    args: &ExportArgs,
) -> color_eyre::Result<SnrTable> {
    let (_, entries) = scanfile::read(path)?;
    let entries = scanfile::to_model_names(model, entries);
    let table = SnrTable::from_scan(&entries, &path.display().to_string())?;
    let stack = model.main_stack()?;
    if table.stack_prefix != stack.prefix || table.num_layers != stack.num_layers {
        bail!(
            "{}: scans `{}` with {} layers, but {} has `{}` with {} layers",
            path.display(),
            table.stack_prefix,
            table.num_layers,
            model.source.display(),
            stack.prefix,
            stack.num_layers
        );
    }
    // A layer the scan never saw would be kept without a word: say so, unless asked not to.
    let module = table.module(args.module.as_deref())?.to_string();
    let have: std::collections::BTreeSet<usize> = entries
        .iter()
        .filter(|e| e.module_type == module)
        .filter_map(|e| {
            e.layer()
                .filter(|(s, _)| *s == stack.prefix)
                .map(|(_, l)| l)
        })
        .collect();
    let missing: Vec<usize> = stack
        .modules
        .get(&module)
        .into_iter()
        .flat_map(|m| m.keys().copied())
        .filter(|l| !have.contains(l))
        .collect();
    if !missing.is_empty() && !args.allow_partial {
        bail!(
            "{}: has no {module} entry for layer(s) {} of {}; those layers would be kept \
             unjudged (pass --allow-partial to accept that, or scan again)",
            path.display(),
            plan::join_layers(&missing),
            model.source.display()
        );
    }
    Ok(table)
}

/// As `snrscope scan`: 3 when finished but some matrices could not be scanned.
fn finish(wrote_any: bool, failed: usize) -> ExitCode {
    if !wrote_any {
        eprintln!("nothing written: pass --yaml, --model-out, --gguf-out or --unfrozen-yaml");
    }
    if failed > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

/// Refuses outputs that touch the input (always) or exist (without --force) before a long
/// scan, not after.
fn check_outputs(args: &ExportArgs, inputs: &Inputs) -> color_eyre::Result<()> {
    for p in [&args.yaml, &args.unfrozen_yaml].into_iter().flatten() {
        export::check_output_file(p, inputs, args.force)?;
    }
    let outputs: Vec<&PathBuf> = [
        &args.yaml,
        &args.unfrozen_yaml,
        &args.model_out,
        &args.gguf_out,
    ]
    .into_iter()
    .flatten()
    .collect();
    for (i, a) in outputs.iter().enumerate() {
        if outputs[..i]
            .iter()
            .any(|b| fsid::resolve(a) == fsid::resolve(b))
        {
            bail!("{}: given for two outputs", a.display());
        }
    }
    if !(0.0..=100.0).contains(&args.top_percent) {
        bail!(
            "--top-percent {}: must be between 0 and 100",
            args.top_percent
        );
    }
    Ok(())
}

/// Scans the module the plan needs (all module types of the main stack when
/// --unfrozen-yaml asks for them), with a progress bar. Also returns how many matrices failed.
fn scan_model(
    model: &Arc<Model>,
    args: &ExportArgs,
    cancel: &CancelToken,
) -> color_eyre::Result<(SnrTable, usize)> {
    let stack = model.main_stack()?;
    // Layer numbers are checked before a scan that may take minutes.
    let none = LayerList(Vec::new());
    check_layers(
        model,
        stack,
        &[
            ("--drop", args.drop.as_ref().unwrap_or(&none)),
            ("--keep", args.keep.as_ref().unwrap_or(&none)),
        ],
    )?;
    let mut table = SnrTable::for_stack(stack);
    let module = module_for(model, stack, args.module.as_deref())?;
    let jobs: Vec<ScanJob> = if args.unfrozen_yaml.is_some() {
        // Spectrum unfreezes parameters by name: derived parts of fused tensors are not
        // parameters (their whole tensors are scanned as their own type).
        stack
            .modules
            .keys()
            .filter(|m| !stack.derived.contains_key(*m))
            .flat_map(|m| scan::jobs_for_module(model, stack, m))
            .collect()
    } else {
        scan::jobs_for_module(model, stack, &module)
    };
    let options = common::scan_options(&args.scanning);
    let results = scan_with_bar(model, jobs.clone(), options, cancel);
    let mut failed = 0;
    for (job, r) in jobs.iter().zip(results) {
        let Some(layer) = job.layer else { continue };
        match r {
            Some(Ok(s)) => table.set(&job.module_type, layer, s.snr_ratio),
            Some(Err(e)) => {
                failed += 1;
                eprintln!(
                    "warning: {}: {}",
                    escape_controls(&job.module),
                    escape_controls(&e)
                );
            }
            None => {}
        }
    }
    if failed > 0 {
        eprintln!(
            "warning: {failed} {} could not be scanned; their layers count as unknown",
            if failed == 1 { "matrix" } else { "matrices" }
        );
    }
    // A module type whose matrices all failed still needs its (empty) row for --module.
    table
        .modules
        .entry(module.clone())
        .or_insert_with(|| vec![None; stack.num_layers]);
    table.default_module = Some(module);
    Ok((table, failed))
}

fn print_plan(plan: &Plan) {
    let kept = plan.num_layers - plan.dropped.len();
    // Names come from the model's or the scan file's keys: escape what a terminal would run.
    println!(
        "plan: {} of {} layers of `{}` kept ({}; dtype {})",
        kept,
        plan.num_layers,
        escape_controls(&plan.stack_prefix),
        escape_controls(&plan.reason),
        escape_controls(&plan.dtype)
    );
    println!("kept: {}", format_ranges(&plan.kept_ranges()));
    if plan.dropped.is_empty() {
        println!("dropped: none");
    } else {
        println!("dropped ({} SNR):", escape_controls(&plan.module_type));
        for &l in &plan.dropped {
            println!(
                "  layer {l:>3}  {}",
                export::format_snr(plan.snr.get(l).copied().flatten())
            );
        }
    }
}
