//! `snrscope eval`: perplexity of the original model and of a pruning choice, on the CPU,
//! with the pruned model built in memory.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::Args;
use color_eyre::eyre::bail;
use serde_json::json;

use snrscope::{
    checkpoint::Model,
    forward::{self, EvalEvent, EvalOptions, Perplexity, PplSummary, Stage, format_perplexity},
    plan::{self, Request, Rule, SnrTable},
    scanfile,
    spectrum::scan,
    util::{bytes::human_bytes, cancel::CancelToken, text::escape_controls},
};

use super::{
    args::{LayerList, ScanFlags, check_layers, module_for, parse_layers, parse_rule},
    common::{self, scan_with_bar},
};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  snrscope eval MODEL                          # the seed's rule (v_proj SNR infinite), sample text
  snrscope eval MODEL --drop 12,20-21 --text wiki.txt
  snrscope eval MODEL --rule lowest:8 --keep 0 --max-tokens 2048
  snrscope eval MODEL --yaml prune.yml --json
  snrscope eval MODEL --drop 5 --token-ids ids.txt

The choice: --yaml FILE (a mergekit passthrough config), else --rule R on the SNR of --module
with --drop/--keep overrides (as `snrscope export`), else exactly the --drop layers, else the
seed's rule. The perplexity is exp(mean negative log-likelihood of each token given the ones
before it in its window); windows are back-to-back (stride = window) and as long as the model's
context (or --window, --max-tokens); each window's first token is not scored. Token ids are the
tokenizer's own encoding of the text without added special tokens. It measures how well the
model predicts this text, not a benchmark score. Supported model types: llama, mistral, mixtral,
qwen2, qwen3, qwen3_moe, gemma2, gemma3_text, phi3. The forward pass streams the checkpoint one
weight band at a time, so memory stays near 1 GB whatever the model's size.

Exit codes: 0 done, 1 error (bad input, not enough memory, unsupported model), 2 usage,
128+N stopped by signal N (130 for Ctrl-C).")]
pub struct EvalArgs {
    /// Model folder (config.json + .safetensors + tokenizer.json), a .safetensors file with
    /// its config.json beside it, or a GGUF (its config and tokenizer from its metadata;
    /// quantized matrices dequantized one band at a time).
    pub model: PathBuf,
    /// Drop these layers, e.g. `12,20-21` (with --rule: in addition to the rule's).
    #[arg(long, value_name = "LAYERS", value_parser = parse_layers)]
    pub drop: Option<LayerList>,
    /// Keep these layers even if --rule drops them.
    #[arg(long, value_name = "LAYERS", value_parser = parse_layers, requires = "rule")]
    pub keep: Option<LayerList>,
    /// Choose by SNR as `snrscope export` does: `infinite`, `lowest:K` or `below:X` (scans
    /// --module first).
    #[arg(long, value_parser = parse_rule)]
    pub rule: Option<Rule>,
    /// Module type whose SNR --rule reads [default: self_attn.v_proj or the closest
    /// equivalent].
    #[arg(long, value_name = "TYPE")]
    pub module: Option<String>,
    /// Let a probe's metric drive --rule instead of an SNR (no scan): `bi`, `angle:N` (blocks
    /// of N layers), `ppl`; see `snrscope export --help`.
    #[arg(long, value_name = "METRIC", requires_all = ["probe", "rule"], conflicts_with = "module")]
    pub metric: Option<String>,
    /// The probe file --metric reads (`snrscope probe --out`), a probe of this model.
    #[arg(long, value_name = "FILE", requires = "metric")]
    pub probe: Option<PathBuf>,
    /// Evaluate the layers this mergekit passthrough config keeps (e.g. from `snrscope export
    /// --yaml`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["drop", "keep", "rule"])]
    pub yaml: Option<PathBuf>,
    /// UTF-8 text to score [default: a built-in English sample, KJV Genesis 1-4].
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
    /// Token ids to score instead of text (whole numbers separated by spaces, commas or
    /// newlines, or a JSON array): for models without tokenizer.json.
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    pub token_ids: Option<PathBuf>,
    /// Score only the first N tokens (also bounds the window, and so the memory).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Longest window in tokens [default: the model's context].
    #[arg(long, value_name = "N")]
    pub window: Option<usize>,
    /// Threads for the forward pass (and the SNR scan); 0 = one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Load even when the memory estimate exceeds the available memory.
    #[arg(long)]
    pub no_memory_check: bool,
}

pub fn run(args: EvalArgs) -> color_eyre::Result<ExitCode> {
    if scanfile::looks_like_scan_file(&args.model) {
        bail!(
            "{}: is a scan file; evaluating needs the model's weights (give the model folder)",
            args.model.display()
        );
    }
    if args.max_tokens == Some(0) || args.window.is_some_and(|w| w < 2) {
        bail!("--max-tokens must be positive and --window at least 2");
    }
    let model = Arc::new(Model::open(&args.model)?);
    for w in &model.warnings {
        eprintln!("warning: {}", escape_controls(w));
    }
    // Before tokenizing and scanning: a model the pass cannot run is refused first.
    forward::ArchConfig::of_model(&model)?;
    let (tokens, text_name) = read_tokens(&args, &model)?;
    let cancel = CancelToken::default();
    super::signals::cancel_on_signals(&cancel);
    let dropped = choose(&args, &model, &cancel)?;
    if cancel.is_cancelled() {
        return Ok(ExitCode::from(super::signals::exit_code()));
    }
    let options = EvalOptions {
        threads: args.threads,
        window: args.window,
        max_tokens: args.max_tokens,
        check_memory: !args.no_memory_check,
    };
    let mut choices = vec![Vec::new()];
    if !dropped.is_empty() {
        choices.push(dropped.clone());
    } else {
        eprintln!("note: the choice drops no layer; evaluating the original only");
    }
    let bar = eval_bar();
    let sink_bar = bar.clone();
    let results = forward::evaluate(
        &model,
        &tokens,
        &choices,
        &options,
        &cancel,
        move |e| show_progress(&sink_bar, &e),
        None,
    );
    bar.finish_and_clear();
    if cancel.is_cancelled() {
        eprintln!("cancelled");
        return Ok(ExitCode::from(super::signals::exit_code()));
    }
    let mut out: Vec<Perplexity> = Vec::new();
    for r in results {
        match r {
            Some(Ok(p)) => out.push(p),
            Some(Err(e)) => return Err(e.into()),
            None => return Ok(ExitCode::from(super::signals::exit_code())),
        }
    }
    let model_type = model
        .config
        .as_ref()
        .and_then(|c| c.get("model_type"))
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let used = tokens.len().min(args.max_tokens.unwrap_or(usize::MAX));
    if args.json {
        println!("{}", json_report(&args, model_type, &text_name, used, &out));
    } else {
        print!("{}", text_report(&args, model_type, &text_name, used, &out));
    }
    Ok(ExitCode::SUCCESS)
}

fn read_tokens(args: &EvalArgs, model: &Model) -> color_eyre::Result<(Vec<u32>, String)> {
    if let Some(p) = &args.token_ids {
        return Ok((forward::tokens::read_token_ids(p)?, p.display().to_string()));
    }
    let (ids, name, unknown) = forward::tokens::model_text_tokens(model, args.text.as_deref())?;
    if unknown * 10 > ids.len() {
        eprintln!(
            "note: {unknown} of {} tokens are the tokenizer's unknown token: the text is mostly \
             outside this model's vocabulary, so its perplexity says little about the text",
            ids.len()
        );
    }
    Ok((ids, name))
}

/// The dropped layers, from --yaml, --rule (with a scan), --drop, or the seed's rule.
fn choose(
    args: &EvalArgs,
    model: &Arc<Model>,
    cancel: &CancelToken,
) -> color_eyre::Result<Vec<usize>> {
    let stack = model.main_stack()?;
    if let Some(y) = &args.yaml {
        return Ok(forward::dropped_from_yaml(y, stack.num_layers)?);
    }
    let none = LayerList(Vec::new());
    check_layers(
        model,
        stack,
        &[
            ("--drop", args.drop.as_ref().unwrap_or(&none)),
            ("--keep", args.keep.as_ref().unwrap_or(&none)),
        ],
    )?;
    let drop = args.drop.clone().map(|l| l.0).unwrap_or_default();
    if args.rule.is_none() && !drop.is_empty() {
        return Ok(drop);
    }
    let keep = args.keep.clone().map(|l| l.0).unwrap_or_default();
    if let (Some(metric), Some(probe), Some(rule)) = (&args.metric, &args.probe, &args.rule) {
        let c = common::probe_metric(
            probe,
            metric,
            rule,
            Some(model),
            &stack.prefix,
            stack.num_layers,
        )?;
        let column = common::metric_column_name(&c);
        let reading = plan::Reading {
            module_type: &column,
            what: &c.name,
            values: &c.values,
            block: c.block,
            definition: Some(&c.definition),
        };
        let choice = Request {
            module: None,
            rule: *rule,
            drop,
            keep,
        };
        let plan =
            plan::make_plan_from(&reading, &stack.prefix, stack.num_layers, &choice, "", "")?;
        eprintln!("choice: {}", escape_controls(&plan.reason));
        return Ok(plan.dropped);
    }
    let module = module_for(model, stack, args.module.as_deref())?;
    let jobs = scan::jobs_for_module(model, stack, &module);
    let options = common::scan_options(&ScanFlags {
        threads: args.threads,
        method: snrscope::spectrum::snr::Method::Svd,
        no_cache: false,
    });
    let results = scan_with_bar(model, jobs.clone(), options, cancel);
    let mut table = SnrTable::for_stack(stack);
    for (job, r) in jobs.iter().zip(results) {
        match (job.layer, r) {
            (Some(layer), Some(Ok(s))) => table.set(&job.module_type, layer, s.snr_ratio),
            (_, Some(Err(e))) => eprintln!(
                "warning: {}: {}",
                escape_controls(&job.module),
                escape_controls(&e)
            ),
            _ => {}
        }
    }
    table
        .modules
        .entry(module.clone())
        .or_insert_with(|| vec![None; stack.num_layers]);
    let choice = Request {
        module: Some(module),
        rule: args.rule.unwrap_or_default(),
        drop,
        keep,
    };
    let plan = plan::make_plan(&table, &choice, "", "")?;
    eprintln!("choice: {}", escape_controls(&plan.reason));
    Ok(plan.dropped)
}

/// The pass's progress on stderr, only when it is a terminal: percent of the work, elapsed,
/// and the time left at the rate so far.
fn eval_bar() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} evaluating {msg} [{bar:30}] {percent:>3}% {elapsed}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn show_progress(bar: &indicatif::ProgressBar, e: &EvalEvent) {
    let EvalEvent::Progress {
        dropped,
        stage,
        fraction,
        eta,
        ..
    } = e
    else {
        return;
    };
    let what = if dropped.is_empty() {
        "original"
    } else {
        "original + pruned"
    };
    match *stage {
        Stage::Loading { .. } => bar.set_message(format!("{what}: checking the weights")),
        Stage::Scoring { .. } => {
            let left = eta.map_or(String::new(), |d| {
                format!(", about {} left", indicatif::HumanDuration(d))
            });
            bar.set_message(format!("{what}: streaming layers{left}"));
        }
    }
    bar.set_position((fraction * 1000.0) as u64);
}

fn side(p: &Perplexity) -> serde_json::Value {
    json!({
        "perplexity": p.perplexity,
        "mean_nll": p.mean_nll,
        "tokens": p.tokens,
        "tokens_processed": p.tokens_processed,
        "layers": p.layers,
        "dropped": p.dropped,
        "windows": p.windows,
        "window": p.window,
        "tokens_per_second": p.tokens_per_second,
        "load_seconds": p.load_seconds,
        "forward_seconds": p.forward_seconds,
    })
}

fn json_report(
    args: &EvalArgs,
    model_type: &str,
    text: &str,
    tokens: usize,
    out: &[Perplexity],
) -> serde_json::Value {
    let original = &out[0];
    let mut v = json!({
        "model": args.model.display().to_string(),
        "model_type": model_type,
        "text": text,
        "tokens": tokens,
        "window": original.window,
        "stride": original.window,
        // The threads used, not 0 for "one per core".
        "threads": if args.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            args.threads
        },
        "original": side(original),
        "peak_rss_bytes": forward::memory::peak_rss(),
        "memory_estimate_bytes": original.estimate.total(),
    });
    if let Some(p) = out.get(1) {
        v["pruned"] = side(p);
        v["relative_change"] = json!(p.perplexity / original.perplexity - 1.0);
    }
    v
}

fn text_report(
    args: &EvalArgs,
    model_type: &str,
    text: &str,
    tokens: usize,
    out: &[Perplexity],
) -> String {
    use std::fmt::Write as _;
    let o = &out[0];
    let mut s = String::new();
    let _ = writeln!(
        s,
        "model: {} ({})",
        args.model.display(),
        escape_controls(model_type)
    );
    let _ = writeln!(
        s,
        "text: {text}: {tokens} tokens, {} window(s) of up to {} (stride {}), {} scored",
        o.windows, o.window, o.window, o.tokens
    );
    let line = |s: &mut String, name: &str, p: &Perplexity| {
        let what = if p.dropped.is_empty() {
            format!("{} layers", p.layers)
        } else {
            format!(
                "{} layers, dropped {}",
                p.layers,
                p.dropped
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let _ = writeln!(
            s,
            "{name:<9} ppl {:>10}  ({what}; {:.1} tokens/s, load {:.1} s, forward {:.1} s)",
            format_perplexity(p.perplexity),
            p.tokens_per_second,
            p.load_seconds,
            p.forward_seconds
        );
    };
    line(&mut s, "original", o);
    if let Some(p) = out.get(1) {
        line(&mut s, "pruned", p);
        let summary = PplSummary {
            original: o.perplexity,
            pruned: p.perplexity,
            dropped: p.dropped.clone(),
        };
        let _ = writeln!(s, "{}", summary.text());
    }
    let _ = writeln!(
        s,
        "peak memory: {} (estimate {})",
        forward::memory::peak_rss().map_or("unknown".into(), human_bytes),
        human_bytes(o.estimate.total())
    );
    s
}
