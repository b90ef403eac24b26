//! `snrscope cache`: where the scan cache is, its size, clearing and trimming it; and how the
//! scanning subcommands (scan, export) set up and report the cache.

use std::{process::ExitCode, sync::Arc};

use clap::{Args, Subcommand};
use color_eyre::eyre::{WrapErr, eyre};

use snrscope::{
    spectrum::{
        cache::{self, Cache},
        scan::{MatrixResult, ScanOptions},
        snr::Method,
    },
    util::bytes::human_bytes,
};

#[derive(Debug, Args)]
#[command(after_help = "\
The cache holds each scanned matrix's singular values, keyed by the weight file's identity \
(device, inode, size, modification time), the tensor's name, offset, dtype and shape, and the \
method. Folder: $SNRSCOPE_CACHE_DIR, else $XDG_CACHE_HOME/snrscope, else ~/.cache/snrscope \
(~/Library/Caches/snrscope on macOS). After every scan it is trimmed to 1 GiB, oldest entries \
first. A damaged or foreign entry is ignored with a warning and recomputed.")]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: Option<CacheAction>,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Remove every cached result.
    Clear,
    /// Remove the oldest cached results until at most --max-size remain.
    Prune {
        /// K, M, G (and KB, MB, GB) are powers of 1000, KiB, MiB, GiB powers of 1024.
        #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = snrscope::util::bytes::parse_size)]
        max_size: u64,
    },
}

pub fn run(args: CacheArgs) -> color_eyre::Result<ExitCode> {
    let cache = Cache::user()
        .ok_or_else(|| eyre!("no cache folder: set SNRSCOPE_CACHE_DIR, XDG_CACHE_HOME or HOME"))?;
    let dir = cache.root().display().to_string();
    match args.action {
        None => {
            let u = cache.usage();
            println!("{dir}");
            println!(
                "{} entries, {} (trimmed to {} after each scan)",
                u.entries,
                human_bytes(u.bytes),
                human_bytes(cache::DEFAULT_MAX_BYTES)
            );
        }
        Some(CacheAction::Clear) => {
            let removed = cache
                .clear()
                .wrap_err_with(|| format!("{dir}: cannot clear"))?;
            eprintln!(
                "removed {} entries ({}) from {dir}",
                removed.entries,
                human_bytes(removed.bytes)
            );
        }
        Some(CacheAction::Prune { max_size }) => {
            let removed = cache
                .prune(max_size)
                .wrap_err_with(|| format!("{dir}: cannot prune"))?;
            let left = cache.usage();
            eprintln!(
                "removed {} entries ({}); {} entries ({}) left in {dir}",
                removed.entries,
                human_bytes(removed.bytes),
                left.entries,
                human_bytes(left.bytes)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The options of a command-line scan: the user's cache unless `no_cache`.
pub fn scan_options(threads: usize, method: Method, no_cache: bool) -> ScanOptions {
    ScanOptions {
        threads,
        method,
        cache: if no_cache {
            None
        } else {
            Cache::user().map(Arc::new)
        },
    }
}

/// After a scan: the cache's warnings, what it saved, Gram's fallbacks; trims the cache.
pub fn report(options: &ScanOptions, results: &[Option<MatrixResult>]) {
    let done: Vec<&MatrixResult> = results.iter().flatten().collect();
    if options.method == Method::Gram {
        let computed = done.iter().filter(|r| !r.cached && r.outcome.is_ok());
        let to_svd = computed.filter(|r| r.method == Method::Svd).count();
        if to_svd > 0 {
            eprintln!(
                "note: the Gram method left {to_svd} matrices to the SVD (it could not guarantee \
                 their SNR); the scan file records each matrix's method"
            );
        }
    }
    let Some(cache) = &options.cache else {
        return;
    };
    for w in cache.take_warnings() {
        eprintln!("warning: scan cache: {w}");
    }
    let reused = done.iter().filter(|r| r.cached).count();
    eprintln!(
        "scan cache: {reused} of {} matrices reused, {} computed ({})",
        done.len(),
        done.len() - reused,
        cache.root().display()
    );
    if let Err(e) = cache.prune(cache::DEFAULT_MAX_BYTES) {
        eprintln!("warning: scan cache: cannot trim: {e}");
    }
}
