//! `snrscope probe`: the activation-based layer metrics (Block Influence, angular distances,
//! PruneMe's rows, the perplexity without each layer) in one streamed forward pass, as a probe
//! file for the explorer and scripts; split across machines with --part and --merge.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Instant,
};

use clap::Args;
use color_eyre::eyre::{bail, eyre};
use serde_json::{Map, json};

use snrscope::{
    checkpoint::Model,
    export::{Inputs, write_file_atomically},
    forward::{self, ArchConfig, EvalEvent, Stage},
    plan::{format_layer_list, join_layers},
    probe::{self, Extras, IndexedSample, Metrics, ProbeCache, ProbeMeta, ProbeOptions, Samples},
    scanfile,
    spectrum::parts::{self, Part},
    util::{bytes::human_bytes, cancel::CancelToken},
};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  snrscope probe MODEL --out probe.json                 # 8 samples of 128 tokens of the sample text
  snrscope probe MODEL --text wiki.txt --samples 32 --max-tokens 256 --out probe.json
  snrscope probe MODEL --token-ids ids.json --max-block 8 --pruneme --out probe.json
  snrscope probe MODEL --ppl --out probe.json           # + perplexity without each layer
  snrscope probe MODEL --part 2/4 --out part-2.json     # on each of 4 machines, then:
  snrscope probe --merge part-*.json --out probe.json

Metrics (x_k = the input of layer k; x_L = the last layer's output before the final norm):
  block_influence[i]      1 - mean over all tokens of cos(x_i, x_i+1)      (ShortGPT)
  angular_distance[n][l]  mean over samples of arccos(cos(x_l, x_l+n))/pi at the last token
                          (Gromov et al.): the cost of dropping layers l..l+n-1
  pruneme[n][j]           PruneMe's rows (--pruneme; CSVs beside --out): x_j+1 vs x_j+1+n,
                          the last row against the final norm's output
  perplexity.without_layer  (--ppl) the samples' perplexity without each single layer
Low values mark candidates to drop. Samples: the text (or a flat list of ids) is cut into
--samples samples of --max-tokens tokens; a JSON array of arrays of ids gives the samples
themselves. Tokens are the tokenizer's encoding without added special tokens (no BOS).

Memory is the streamed pass's (see `snrscope eval --help`): one weight band plus the samples'
activations, whatever the layer count; --ppl runs L+1 models sharing their prefixes (about
(L+3)/2 times the work, activations up to L+1 times). Results are cached (see `snrscope cache`).
Exit codes: 0 done, 1 error, 2 usage, 128+N stopped by signal N.")]
pub struct ProbeArgs {
    /// Model folder (config.json + weights + tokenizer.json), or a .safetensors file with its
    /// config.json beside it.
    #[arg(required_unless_present = "merge", conflicts_with = "merge")]
    pub model: Option<PathBuf>,
    /// UTF-8 text to cut into samples [default: a built-in English sample, KJV Genesis 1-4].
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
    /// Token ids instead of text: a JSON array of arrays (one sample each), or one list of
    /// whole numbers (cut like a text).
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    pub token_ids: Option<PathBuf>,
    /// Samples to use [default: 8; every sample of an array of arrays].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub samples: Option<u64>,
    /// Tokens per sample [default: 128; samples given as arrays are only cut to it when it
    /// is given]; at most the model's context.
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u64).range(2..))]
    pub max_tokens: Option<u64>,
    /// Largest block of the angular distances [default: every block size up to the layer
    /// count].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_block: Option<u64>,
    /// Also PruneMe's rows (its `hidden_states[1:]` indexing) in the JSON, and its CSV per
    /// block size beside --out (`NAME.pruneme-N.csv`).
    #[arg(long)]
    pub pruneme: bool,
    /// PruneMe's batch size: its rows average batch means, leaving out an incomplete last
    /// batch (its DataLoader drops it) [default: 1, every sample].
    #[arg(long, value_name = "B", requires = "pruneme", value_parser = clap::value_parser!(u64).range(1..))]
    pub pruneme_batch: Option<u64>,
    /// Also the perplexity without each single layer (Shortened LLaMA's PPL criterion).
    #[arg(long, conflicts_with = "merge")]
    pub ppl: bool,
    /// Write the probe file here (without it, a table is printed).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file (never one of the model's own files).
    #[arg(long)]
    pub force: bool,
    /// Probe only part K of N of the samples (contiguous, the same on every machine); --out
    /// then writes a part file for --merge.
    #[arg(long, value_name = "K/N", conflicts_with = "merge", requires = "out")]
    pub part: Option<Part>,
    /// Combine the part files of a split probe into one probe file (--out). Refuses parts of
    /// different models, samples or options, overlapping parts and missing samples.
    #[arg(long, value_name = "PART", num_args = 1.., requires = "out")]
    pub merge: Vec<PathBuf>,
    /// Threads for the forward pass; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Neither reuse nor store a cached probe.
    #[arg(long)]
    pub no_cache: bool,
    /// Run even when the memory estimate exceeds the available memory.
    #[arg(long)]
    pub no_memory_check: bool,
}

const DEFAULT_SAMPLES: usize = 8;
const DEFAULT_TOKENS: usize = 128;

pub fn run(args: ProbeArgs) -> color_eyre::Result<ExitCode> {
    let started = Instant::now();
    if !args.merge.is_empty() {
        return merge(&args, started);
    }
    let model_path = args.model.as_ref().expect("clap requires MODEL");
    if scanfile::looks_like_scan_file(model_path) {
        bail!(
            "{}: is a JSON file; probing needs the model's weights (give the model folder)",
            model_path.display()
        );
    }
    let model = Arc::new(Model::open(model_path)?);
    for w in &model.warnings {
        eprintln!("warning: {}", snrscope::util::text::escape_controls(w));
    }
    let config = model.config.as_ref().ok_or_else(|| {
        eyre!(
            "{}: no config.json beside the weights: the architecture is unknown",
            model.source.display()
        )
    })?;
    let config_path = model
        .config_path
        .clone()
        .unwrap_or_else(|| model.source.clone());
    // Unsupported types and broken configs are refused before the text is read.
    let arch = ArchConfig::parse(config, &config_path)?;
    let stack = model.main_stack()?;
    let layers = stack.num_layers;
    let mut inputs = Inputs::of_model(&model);
    if let Some(t) = args.text.as_ref().or(args.token_ids.as_ref()) {
        inputs.add(t);
    }
    if let Some(out) = &args.out {
        // Before a pass that may take hours, not after it.
        check_out(out, &inputs, args.force)?;
        if args.pruneme && args.part.is_none() {
            for n in 1..layers {
                check_out(&csv_path(out, n), &inputs, args.force)?;
            }
        }
    }
    let (all, text_name) = read_samples(&args, &model, arch.context, arch.vocab)?;
    check_pruneme_batch(args.pruneme_batch, all.len())?;
    let max_block = args
        .max_block
        .map_or(layers, |n| n as usize)
        .clamp(1, layers.max(1));
    let meta = ProbeMeta {
        model: model_path.display().to_string(),
        model_type: arch.model_type.clone(),
        model_fingerprint: parts::fingerprint(&model),
        stack_prefix: stack.prefix.clone(),
        layers,
        hidden: arch.hidden,
        text: text_name,
        sample_tokens: all.lengths(),
        samples_sha256: all.digest(),
        max_block,
        ppl: args.ppl,
    };
    let which: Vec<usize> = match args.part {
        Some(part) => probe::share(all.len(), part).collect(),
        None => (0..all.len()).collect(),
    };
    let samples = all.subset(&which);
    eprintln!(
        "probing {} ({}, {layers} layers): {} sample(s), {} tokens{}",
        model_path.display(),
        arch.model_type,
        samples.len(),
        samples.tokens(),
        args.part.map_or(String::new(), |p| format!(
            " (part {p} of {} samples)",
            all.len()
        ))
    );
    let cancel = CancelToken::default();
    super::signals::cancel_on_signals(&cancel);
    let mut cache = if args.no_cache {
        None
    } else {
        ProbeCache::user()
    };
    let options = ProbeOptions {
        max_block,
        ppl: args.ppl,
        threads: args.threads,
        check_memory: !args.no_memory_check,
    };
    let bar = pass_bar();
    let sink_bar = bar.clone();
    let pass_started = Instant::now();
    let result = if samples.is_empty() {
        Ok(Some((
            probe::Collected {
                stats: Vec::new(),
                ppl: None,
            },
            false,
        )))
    } else {
        probe::probe(
            &model,
            layers,
            &samples,
            &options,
            cache.as_mut(),
            &cancel,
            move |e| show_progress(&sink_bar, &e),
        )
    };
    bar.finish_and_clear();
    for w in cache
        .as_mut()
        .map(ProbeCache::take_warnings)
        .unwrap_or_default()
    {
        eprintln!("warning: {w}");
    }
    let Some((collected, cached)) = result? else {
        eprintln!("cancelled");
        return Ok(ExitCode::from(super::signals::exit_code()));
    };
    let forward_seconds = pass_started.elapsed().as_secs_f64();
    if cached {
        eprintln!("(read from the probe cache; --no-cache recomputes)");
    }
    if let Some(part) = args.part {
        let out = args.out.as_ref().expect("clap requires --out with --part");
        let indexed = which
            .iter()
            .zip(collected.stats)
            .map(|(&index, stats)| IndexedSample { index, stats })
            .collect();
        let text = probe::part_to_json(part, &meta, indexed, collected.ppl);
        write_file_atomically(out, text.as_bytes(), &inputs, args.force)?;
        eprintln!(
            "wrote part {part} ({} of {} samples) to {}; combine the parts with snrscope probe \
             --merge PART... --out FILE",
            which.len(),
            all.len(),
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let stats: Vec<&probe::SampleStats> = collected.stats.iter().collect();
    let batch = args.pruneme_batch.unwrap_or(1) as usize;
    let m = probe::metrics(layers, &stats, collected.ppl.as_ref(), batch);
    let mut run = Map::new();
    run.insert(
        "timings".into(),
        json!({
            "forward_seconds": if cached { 0.0 } else { forward_seconds },
            "total_seconds": started.elapsed().as_secs_f64(),
        }),
    );
    run.insert("cached".into(), json!(cached));
    run.insert("threads".into(), json!(args.threads));
    run.insert("peak_rss_bytes".into(), json!(forward::memory::peak_rss()));
    finish(&args, &meta, &m, run, &inputs, model_path)
}

/// Writes the probe file (and PruneMe's CSVs), or prints the table.
fn finish(
    args: &ProbeArgs,
    meta: &ProbeMeta,
    m: &Metrics,
    run: Map<String, serde_json::Value>,
    inputs: &Inputs,
    model: &Path,
) -> color_eyre::Result<ExitCode> {
    let batch = args.pruneme_batch.unwrap_or(1) as usize;
    let extras = Extras {
        pruneme: args.pruneme.then_some(batch),
        run,
    };
    match &args.out {
        Some(out) => {
            let text = probe::to_json(meta, m, &extras);
            write_file_atomically(out, text.as_bytes(), inputs, args.force)?;
            let mut csvs = 0;
            if args.pruneme {
                for (i, rows) in m.pruneme.iter().enumerate() {
                    let csv = probe::pruneme_csv(rows, i + 1);
                    write_file_atomically(
                        &csv_path(out, i + 1),
                        csv.as_bytes(),
                        inputs,
                        args.force,
                    )?;
                    csvs += 1;
                }
            }
            eprint!("{}", proposals(meta, m, model));
            eprintln!(
                "wrote {}{}",
                out.display(),
                if csvs > 0 {
                    format!(
                        " and {csvs} PruneMe CSV(s) ({})",
                        csv_path(out, 1).display()
                    )
                } else {
                    String::new()
                },
            );
        }
        None => {
            print!("{}", table(meta, m));
            print!("{}", proposals(meta, m, model));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn merge(args: &ProbeArgs, started: Instant) -> color_eyre::Result<ExitCode> {
    let out = args.out.as_ref().expect("clap requires --out with --merge");
    let mut inputs = Inputs::new();
    args.merge.iter().for_each(|f| inputs.add(f));
    check_out(out, &inputs, args.force)?;
    let mut read = Vec::with_capacity(args.merge.len());
    for f in &args.merge {
        read.push(probe::read_part(f).map_err(|e| eyre!(e))?);
    }
    let merged = probe::merge(read).map_err(|e| eyre!(e))?;
    let meta = merged.meta;
    check_pruneme_batch(args.pruneme_batch, meta.sample_tokens.len())?;
    if args.max_block.is_some_and(|n| n as usize != meta.max_block) {
        bail!(
            "--max-block is the parts' ({}) when merging",
            meta.max_block
        );
    }
    if args.pruneme {
        for n in 1..meta.layers {
            check_out(&csv_path(out, n), &inputs, args.force)?;
        }
    }
    let stats: Vec<&probe::SampleStats> = merged.stats.iter().collect();
    let batch = args.pruneme_batch.unwrap_or(1) as usize;
    let m = probe::metrics(meta.layers, &stats, merged.ppl.as_ref(), batch);
    let mut run = Map::new();
    run.insert(
        "merged_from".into(),
        json!(
            args.merge
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        ),
    );
    run.insert(
        "timings".into(),
        json!({"total_seconds": started.elapsed().as_secs_f64()}),
    );
    eprintln!(
        "merged {} part file(s): {} samples, {} tokens",
        args.merge.len(),
        meta.sample_tokens.len(),
        meta.sample_tokens.iter().sum::<usize>()
    );
    let model = PathBuf::from(&meta.model);
    finish(args, &meta, &m, run, &inputs, &model)
}

fn check_out(out: &Path, inputs: &Inputs, force: bool) -> color_eyre::Result<()> {
    inputs.check(out)?;
    if out.symlink_metadata().is_ok() && !force {
        bail!(
            "{}: already exists (pass --force to replace it)",
            out.display()
        );
    }
    Ok(())
}

/// `probe.json` -> `probe.pruneme-N.csv` beside it.
fn csv_path(out: &Path, n: usize) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "probe".into());
    out.with_file_name(format!("{stem}.pruneme-{n}.csv"))
}

/// The samples and where they came from.
fn read_samples(
    args: &ProbeArgs,
    model: &Model,
    context: usize,
    vocab: usize,
) -> color_eyre::Result<(Samples, String)> {
    let count = args.samples.map(|n| n as usize);
    let tokens = args.max_tokens.map(|n| n as usize);
    let cap = |t: usize| {
        if t > context {
            eprintln!("note: samples are cut to the model's context of {context} tokens (not {t})");
        }
        t.min(context)
    };
    if let Some(p) = &args.token_ids {
        let (lists, nested) = probe::read_ids(p)?;
        let name = p.display().to_string();
        let samples = if nested {
            let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
            let t = cap(tokens.unwrap_or(longest));
            Samples::from_lists(lists, count.unwrap_or(usize::MAX), t)
        } else {
            let t = cap(tokens.unwrap_or(DEFAULT_TOKENS));
            Samples::from_stream(&lists[0], count.unwrap_or(DEFAULT_SAMPLES), t)
        };
        return check_samples(samples, name, vocab);
    }
    let (ids, name, unknown) = forward::tokens::text_tokens(&model.dir, args.text.as_deref())?;
    if unknown * 10 > ids.len() {
        eprintln!(
            "note: {unknown} of {} tokens are the tokenizer's unknown token: the text is mostly \
             outside this model's vocabulary",
            ids.len()
        );
    }
    let t = cap(tokens.unwrap_or(DEFAULT_TOKENS));
    let wanted = count.unwrap_or(DEFAULT_SAMPLES);
    let samples = Samples::from_stream(&ids, wanted, t);
    if samples.len() < wanted {
        eprintln!(
            "note: the text has {} tokens: {} sample(s) of {t} (asked for {wanted})",
            ids.len(),
            samples.len()
        );
    }
    check_samples(samples, name, vocab)
}

/// Every sample long enough to score, every id within the vocabulary (named by sample and
/// entry, before any weight is read).
fn check_samples(
    samples: Samples,
    name: String,
    vocab: usize,
) -> color_eyre::Result<(Samples, String)> {
    for (i, r) in samples.ranges.iter().enumerate() {
        if r.len() < 2 {
            bail!(
                "{name}: sample {} has {} token(s); every sample needs at least 2",
                i + 1,
                r.len()
            );
        }
        if let Some((j, id)) = samples.ids[r.clone()]
            .iter()
            .enumerate()
            .find(|(_, id)| **id as usize >= vocab)
        {
            bail!(
                "{name}: sample {}, entry {}: token id {id} is outside the model's vocabulary \
                 of {vocab}",
                i + 1,
                j + 1
            );
        }
    }
    Ok((samples, name))
}

/// PruneMe averages whole batches only: a batch larger than the samples leaves none.
fn check_pruneme_batch(batch: Option<u64>, samples: usize) -> color_eyre::Result<()> {
    if let Some(b) = batch
        && b as usize > samples
    {
        bail!(
            "--pruneme-batch {b} with {samples} samples: PruneMe leaves out an incomplete \
             batch, so no batch would remain (use at most {samples})"
        );
    }
    if let Some(b) = batch.map(|b| b as usize)
        && !samples.is_multiple_of(b)
    {
        eprintln!(
            "note: PruneMe's rows leave out the last {} sample(s) (an incomplete batch of \
             --pruneme-batch {b}), as its DataLoader does",
            samples % b
        );
    }
    Ok(())
}

/// One line per layer: Block Influence, the angular distance of the block of one starting
/// there, and the perplexity without it.
fn table(meta: &ProbeMeta, m: &Metrics) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ({}, {} layers): {} samples, {} tokens of {}",
        meta.model,
        meta.model_type,
        meta.layers,
        meta.sample_tokens.len(),
        meta.sample_tokens.iter().sum::<usize>(),
        meta.text
    );
    let _ = write!(s, "layer  block_influence  angular_distance(n=1)");
    if m.ppl_without_layer.is_some() {
        let _ = write!(s, "  ppl_without_layer");
    }
    s.push('\n');
    for i in 0..meta.layers {
        let _ = write!(
            s,
            "{i:>5}  {:>15.6}  {:>21.6}",
            m.block_influence[i], m.angular[0][i]
        );
        if let Some(w) = &m.ppl_without_layer {
            let _ = write!(s, "  {:>17}", forward::format_perplexity(w[i]));
        }
        s.push('\n');
    }
    if let Some(p) = m.ppl_original {
        let _ = writeln!(s, "original perplexity {}", forward::format_perplexity(p));
    }
    s
}

/// What the metrics propose, with the command that shows each choice's cost.
fn proposals(meta: &ProbeMeta, m: &Metrics, model: &Path) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let k = (meta.layers / 8).max(1);
    let mut lowest: Vec<usize> = probe::lowest_first(&m.block_influence)
        .into_iter()
        .take(k)
        .collect();
    lowest.sort_unstable();
    let _ = writeln!(
        s,
        "lowest {k} Block Influence: layers {} (cost: snrscope eval {} --drop {})",
        join_layers(&lowest),
        model.display(),
        format_layer_list(&lowest)
    );
    let n = k.min(m.angular.len());
    if let Some(rows) = m.angular.get(n - 1)
        && let Some(&l) = probe::lowest_first(rows).first()
    {
        let block: Vec<usize> = (l..l + n).collect();
        let _ = writeln!(
            s,
            "best block of {n} (angular distance {:.4}): layers {} (cost: snrscope eval {} \
             --drop {})",
            rows[l],
            join_layers(&block),
            model.display(),
            format_layer_list(&block)
        );
    }
    s
}

fn pass_bar() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} probing {msg} [{bar:30}] {percent:>3}% {elapsed}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn show_progress(bar: &indicatif::ProgressBar, e: &EvalEvent) {
    let EvalEvent::Progress {
        stage,
        fraction,
        eta,
        ..
    } = e
    else {
        return;
    };
    match *stage {
        Stage::Loading { bytes_total, .. } => bar.set_message(format!(
            "checking the weights ({})",
            human_bytes(bytes_total)
        )),
        Stage::Scoring { .. } => {
            let left = eta.map_or(String::new(), |d| {
                format!(", about {} left", indicatif::HumanDuration(d))
            });
            bar.set_message(format!("streaming layers{left}"));
        }
    }
    bar.set_position((fraction * 1000.0) as u64);
}
