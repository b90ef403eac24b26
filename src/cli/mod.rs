//! The command line: argument parsing and the headless subcommands.

mod args;
mod cache;
mod common;
mod eval;
mod export;
mod merge;
mod probe;
mod scan;
mod signals;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use args::ScanFlags;

#[derive(Debug, Parser)]
#[command(
    name = "snrscope",
    version,
    about = "See which layers of a large language model can be cut away (laserQlora SNR), \
             and export the pruned model or its mergekit config.",
    args_conflicts_with_subcommands = true,
    after_help = "A model folder named like a subcommand (demo, scan, export, eval, cache) is \
                  taken as the subcommand: open it as ./NAME (e.g. `snrscope ./demo`)."
)]
pub struct Cli {
    /// Model folder, .safetensors, PyTorch .bin or GGUF file, scan JSON or probe JSON to
    /// explore; the built-in demo model when omitted.
    pub model: Option<PathBuf>,
    /// Explorer: show this saved scan (e.g. `snrscope scan --out`) with the model instead of
    /// scanning those module types again.
    #[arg(long, value_name = "FILE")]
    pub scan: Option<PathBuf>,
    /// Explorer: carry a saved pruning on: the layers a mergekit passthrough YAML (as `y` or
    /// `export --yaml` writes it) keeps become hand choices (`u` undoes).
    #[arg(long, value_name = "FILE")]
    pub yaml: Option<PathBuf>,
    /// Explorer: show a probe's layer metrics (`snrscope probe --out`: Block Influence,
    /// angular distances, perplexity without each layer) as tabs beside the SNR; `d` on one
    /// lets it drive the choice.
    #[arg(long, value_name = "FILE")]
    pub probe: Option<PathBuf>,
    /// Explorer: mergekit's `model:` for the YAML [default: the model folder's absolute path].
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// Explorer: the UTF-8 text `p` scores the perplexity on [default: a built-in English
    /// sample, KJV Genesis 1-4].
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
    /// Explorer: tokens `p` scores (fewer answer sooner; `snrscope eval` scores the whole text).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(2..))]
    pub max_tokens: u64,
    /// Explorer: longest window of `p`'s perplexity in tokens [default: 512, at most the
    /// model's context].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..))]
    pub window: Option<u64>,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub scanning: ScanFlags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute the SNR of one module type in every layer (or of --modules), without a
    /// terminal UI; split across machines with --part and --merge.
    Scan(scan::ScanArgs),
    /// Plan the pruning and write the mergekit YAML and/or the pruned model.
    Export(Box<export::ExportArgs>),
    /// Show the scan cache's folder and size, or clear or trim it.
    Cache(cache::CacheArgs),
    /// Perplexity of the original and of the pruned model on a text, on the CPU, without
    /// writing the pruned model.
    Eval(Box<eval::EvalArgs>),
    /// Layer metrics from activations (Block Influence, angular distances, PruneMe's rows,
    /// perplexity without each layer) in one streamed forward pass on the CPU.
    Probe(Box<probe::ProbeArgs>),
    /// Write the built-in demo model to a folder.
    Demo {
        /// Folder to create (must not exist yet, or be empty) [default: ./snrscope-demo].
        dir: Option<PathBuf>,
    },
}

/// Exit codes: 0 success, 1 error (bad input, I/O), 2 usage, 3 finished but some matrices
/// could not be scanned.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Scan(args)) => scan::run(args),
        Some(Command::Export(args)) => export::run(*args),
        Some(Command::Cache(args)) => cache::run(args),
        Some(Command::Eval(args)) => eval::run(*args),
        Some(Command::Probe(args)) => probe::run(*args),
        Some(Command::Demo { dir }) => demo(dir),
        None => crate::ui::run(crate::ui::Explore {
            source: cli.model,
            scan: cli.scan,
            yaml: cli.yaml,
            probe: cli.probe,
            model_name: cli.model_name,
            threads: cli.scanning.threads,
            method: cli.scanning.method,
            no_cache: cli.scanning.no_cache,
            eval: crate::ui::EvalSetup {
                text: cli.text,
                max_tokens: cli.max_tokens as usize,
                window: Some(cli.window.map_or(512, |w| w as usize)),
                threads: cli.scanning.threads,
            },
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Messages quote tensor names, scan-file keys and paths: escape what a terminal
            // would execute.
            eprintln!(
                "error: {}",
                snrscope::util::text::escape_controls(&error_text(&e))
            );
            ExitCode::from(1)
        }
    }
}

fn demo(dir: Option<PathBuf>) -> color_eyre::Result<ExitCode> {
    if dir.is_none() && std::path::Path::new("demo").is_dir() {
        // `snrscope demo` meant to open the folder ./demo, perhaps.
        eprintln!("note: to open the folder ./demo, run `snrscope ./demo`");
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from("snrscope-demo"));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        color_eyre::eyre::bail!("{}: exists and is not empty", dir.display());
    }
    let spec = snrscope::demo::ModelSpec::demo();
    snrscope::demo::write_model(&dir, &spec)?;
    eprintln!(
        "wrote the demo model ({} layers; v_proj SNR infinite in layers {:?}) to {}",
        spec.layers,
        spec.infinite_layers,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The error and its causes joined by ": ", leaving out a cause the message before it already
/// ends with (errors that quote their I/O reason also carry it as their source: "cannot create:
/// No such file or directory" was followed by the same words again).
fn error_text(e: &color_eyre::Report) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        let bare = match c.rfind(" (os error ") {
            Some(i) if c.ends_with(')') => &c[..i],
            _ => c.as_str(),
        };
        if !text.is_empty() && text.ends_with(bare) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}
