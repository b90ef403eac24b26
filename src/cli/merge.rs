//! `snrscope scan --merge PART... --out FILE`: part files of a split scan into one scan file.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use color_eyre::eyre::bail;

use snrscope::{scanfile, spectrum::parts};

pub fn run(
    files: &[PathBuf],
    out: Option<&Path>,
    allow_partial: bool,
    force: bool,
) -> color_eyre::Result<ExitCode> {
    let Some(out) = out else {
        bail!("--merge needs --out FILE for the merged scan");
    };
    let mut inputs = snrscope::export::Inputs::new();
    files.iter().for_each(|f| inputs.add(f));
    // Before reading the parts: an output that is one of them (by file identity), that
    // exists without --force, or whose folder is missing, is refused.
    snrscope::export::check_output_file(out, &inputs, force)?;
    let mut read = Vec::with_capacity(files.len());
    for f in files {
        let (info, entries) = parts::read(f)?;
        read.push((f.clone(), info, entries));
    }
    let merged = parts::merge(read, allow_partial)?;
    snrscope::export::write_file_atomically(
        out,
        scanfile::to_json(&merged.entries).as_bytes(),
        &inputs,
        force,
    )?;
    let failed = merged.entries.iter().filter(|e| e.error.is_some()).count();
    eprintln!(
        "merged {} part file(s): {} matrices (method {}) into {}",
        files.len(),
        merged.entries.len(),
        merged.method,
        out.display()
    );
    if !merged.missing.is_empty() {
        eprintln!(
            "warning: {} matrices are in no part (--allow-partial), e.g. {}",
            merged.missing.len(),
            snrscope::util::text::escape_controls(&merged.missing[0])
        );
    }
    if failed > 0 {
        eprintln!("warning: {failed} matrices have no SNR (see their \"error\")");
    }
    Ok(if failed > 0 || !merged.missing.is_empty() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
