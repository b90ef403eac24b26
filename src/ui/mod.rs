//! The interactive explorer (ratatui + crossterm).
//!
//! Layout of the code: `state/` holds each concern's state (document, scans, choice, view,
//! overlays, the perplexity and export as the screen sees them) and never draws; `app/`
//! routes messages and actions between them and returns [`effect::Effect`]s — it owns no
//! channel, starts no thread and touches no file; `jobs.rs` carries the effects out (threads
//! for scans, the perplexity and the export; file writes); `keys.rs` maps (mode, key) to an
//! action from tables that also feed help and the hint line; `view/` draws the whole screen
//! from `App` and nothing else; `runtime.rs` runs the loop and the input/signal threads;
//! `terminal.rs` guarantees the terminal is restored. Nothing on the UI thread reads tensor
//! data or computes an SVD.

mod action;
mod app;
mod effect;
mod eval_text;
mod format;
mod help_rows;
mod jobs;
mod keys;
mod layout;
mod msg;
mod probe_job;
mod runtime;
mod state;
mod terminal;
#[cfg(test)]
mod tests;
mod view;
mod write_job;

pub(crate) use eval_text::EvalSetup;

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Instant};

use color_eyre::eyre::WrapErr;
use ratatui::{Terminal, backend::CrosstermBackend};

use snrscope::{checkpoint::Model, demo, scanfile};

use app::{App, AppOptions};

/// What `snrscope [MODEL]` was asked to open.
#[derive(Debug, Clone, Default)]
pub struct Explore {
    /// Model folder, .safetensors or .bin file, or scan JSON; the demo model when `None`.
    pub source: Option<PathBuf>,
    /// A saved scan to show with the model (`--scan`).
    pub scan: Option<PathBuf>,
    /// A saved mergekit YAML whose kept layers the session carries on (`--yaml`).
    pub yaml: Option<PathBuf>,
    /// A probe file whose metrics show beside the SNR (`--probe`).
    pub probe: Option<PathBuf>,
    pub model_name: Option<String>,
    pub threads: usize,
    pub method: snrscope::spectrum::snr::Method,
    /// `--no-cache`: neither read nor write the scan cache.
    pub no_cache: bool,
    /// What `p` evaluates on (`--text`, `--max-tokens`, `--window`).
    pub eval: EvalSetup,
}

/// Opens the explorer.
pub fn run(args: Explore) -> color_eyre::Result<ExitCode> {
    let started = Instant::now();
    // Installing twice (e.g. from a test harness) is harmless; keep the first.
    let _ = color_eyre::install();
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        color_eyre::eyre::bail!(
            "the explorer draws on a terminal, and standard output is not one; \
             for scripts use `snrscope scan` or `snrscope export`"
        );
    }
    if let Some(t) = &args.eval.text
        && let Err(e) = snrscope::util::files::open_regular(t)
    {
        color_eyre::eyre::bail!(
            "{}: cannot read the text for the perplexity: {}",
            t.display(),
            snrscope::util::text::io_reason(&e)
        );
    }
    let cache = if args.no_cache {
        None
    } else {
        snrscope::spectrum::cache::Cache::user().map(Arc::new)
    };
    let options = AppOptions {
        autoscan: true,
        threads: args.threads,
        model_name: args.model_name.clone(),
        method: args.method,
        cache,
        eval: args.eval.clone(),
    };
    // Everything that can fail with a plain message fails here, before the screen changes.
    let app = match &args.source {
        Some(p) if snrscope::probe::looks_like_probe_file(p) => {
            if args.scan.is_some() || args.probe.is_some() {
                color_eyre::eyre::bail!(
                    "{}: is a probe file already; --scan and --probe go with a model folder \
                     (or --probe with a scan file)",
                    p.display()
                );
            }
            let probe = snrscope::probe::read(p).map_err(|e| color_eyre::eyre::eyre!(e))?;
            let mut app = App::for_probe_file(p, &probe);
            if let Some(n) = &args.model_name {
                app = app.with_model_name(n);
            }
            app
        }
        Some(p) if scanfile::looks_like_scan_file(p) => {
            if args.scan.is_some() {
                color_eyre::eyre::bail!(
                    "{}: is a scan file already; --scan goes with a model folder",
                    p.display()
                );
            }
            let (_, entries) = scanfile::read(p)?;
            let mut app = App::for_scan_file(p, entries)?;
            if let Some(n) = &args.model_name {
                app = app.with_model_name(n);
            }
            app
        }
        source => {
            let dir = match source {
                Some(p) => p.clone(),
                None => {
                    let t0 = Instant::now();
                    let dir = demo::demo_dir_reporting(&mut |step| {
                        eprintln!("snrscope: {step} ({:.1} s)", t0.elapsed().as_secs_f64());
                    })
                    .wrap_err("cannot write the demo model")?;
                    eprintln!("snrscope: opening the demo model at {}", dir.display());
                    dir
                }
            };
            let model = Arc::new(Model::open(&dir)?);
            match &args.scan {
                Some(scan) => {
                    let (_, entries) = scanfile::read(scan)?;
                    let entries = scanfile::to_model_names(&model, entries);
                    App::for_model_with_scan(model, scan, &entries, options)?
                }
                None => App::for_model(model, options)?,
            }
        }
    };
    let mut app = app;
    if let Some(p) = &args.probe {
        add_probe_file(&mut app, p)?;
    }
    if let Some(y) = &args.yaml {
        carry_on_file(&mut app, y, args.model_name.is_some())?;
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let executor = jobs::Executor::new(tx.clone());
    let _guard = terminal::TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    runtime::spawn_input(tx.clone());
    runtime::spawn_signals(tx);
    runtime::event_loop(&mut terminal, app, executor, &rx, started)?;
    Ok(ExitCode::SUCCESS)
}

/// Adds a probe file's metrics (`--probe`): refused, naming the file, when it is not a probe
/// of this model (another stack, or weights whose fingerprint differs).
fn add_probe_file(app: &mut App, path: &std::path::Path) -> color_eyre::Result<()> {
    if !snrscope::probe::looks_like_probe_file(path) {
        color_eyre::eyre::bail!(
            "{}: is not a probe file (`snrscope probe --out` writes one)",
            path.display()
        );
    }
    let probe = snrscope::probe::read(path).map_err(|e| color_eyre::eyre::eyre!(e))?;
    if let Some(model) = app.model() {
        let mine = snrscope::spectrum::parts::fingerprint(model);
        if mine != probe.model_fingerprint {
            color_eyre::eyre::bail!(
                "{}: is a probe of other weights ({}), not of {} (their tensors or bytes \
                 differ); probe this model with `snrscope probe`",
                path.display(),
                snrscope::util::text::escape_controls(&probe.model),
                model.source.display()
            );
        }
    }
    app.add_probe(path, &probe)
}

/// The longest mergekit config read back: a pruning's YAML is a few kB.
const MAX_YAML: u64 = 1 << 20;

/// Reads a saved mergekit YAML and carries its kept layers on (`--yaml`); refused with the
/// file's name and the reason when it is not a passthrough slice config of this model.
pub(crate) fn carry_on_file(
    app: &mut App,
    path: &std::path::Path,
    explicit_name: bool,
) -> color_eyre::Result<()> {
    let text = snrscope::util::files::read_string_bounded(path, MAX_YAML, "a mergekit config")
        .map_err(|e| {
            color_eyre::eyre::eyre!(
                "{}: cannot read the YAML: {}",
                path.display(),
                snrscope::util::text::io_reason(&e)
            )
        })?;
    let kept = snrscope::export::kept_layers(&text, app.num_layers())
        .map_err(|e| color_eyre::eyre::eyre!("{}: {e}", path.display()))?;
    app.carry_on(path, &kept, explicit_name);
    Ok(())
}
