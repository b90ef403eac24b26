//! `snrscope export`: plan the pruning and write the mergekit YAML and/or the pruned model.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Model folder, .safetensors file, or scan JSON.
    pub model: PathBuf,
}

pub fn run(args: ExportArgs) -> color_eyre::Result<ExitCode> {
    let _ = args;
    color_eyre::eyre::bail!("export is not built yet")
}
