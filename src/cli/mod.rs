//! The command line: argument parsing and the headless subcommands.

mod eval;
mod export;
mod scan;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "snrscope",
    version,
    about = "See which layers of a large language model can be cut away (laserQlora SNR), \
             and export the pruned model or its mergekit config.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Model folder, .safetensors file or scan JSON to explore; the built-in demo model when
    /// omitted.
    pub model: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute the SNR of one module type in every layer, without a terminal UI.
    Scan(scan::ScanArgs),
    /// Plan the pruning and write the mergekit YAML and/or the pruned model.
    Export(Box<export::ExportArgs>),
    /// Perplexity of the original and of the pruned model on a text, on the CPU, without
    /// writing the pruned model.
    Eval(Box<eval::EvalArgs>),
    /// Write the built-in demo model to a folder.
    Demo {
        /// Folder to create (must not exist yet, or be empty).
        dir: PathBuf,
    },
}

/// Exit codes: 0 success, 1 error (bad input, I/O), 2 usage, 3 finished but some matrices
/// could not be scanned.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Scan(args)) => scan::run(args),
        Some(Command::Export(args)) => export::run(*args),
        Some(Command::Eval(args)) => eval::run(*args),
        Some(Command::Demo { dir }) => demo(dir),
        None => crate::ui::run(cli.model),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn demo(dir: PathBuf) -> color_eyre::Result<ExitCode> {
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        color_eyre::eyre::bail!("{}: exists and is not empty", dir.display());
    }
    let spec = crate::demo::ModelSpec::demo();
    crate::demo::write_model(&dir, &spec)?;
    eprintln!(
        "wrote the demo model ({} layers; v_proj SNR infinite in layers {:?}) to {}",
        spec.layers,
        spec.infinite_layers,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
