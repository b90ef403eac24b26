//! The interactive explorer (ratatui + crossterm).

use std::{path::PathBuf, process::ExitCode};

/// Opens the explorer on a model folder, a .safetensors file, a scan JSON, or the demo model.
pub fn run(source: Option<PathBuf>) -> color_eyre::Result<ExitCode> {
    let _ = source;
    color_eyre::eyre::bail!("the interactive explorer is not built yet; use `snrscope scan`")
}
