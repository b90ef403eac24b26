//! `snrscope cache`: where the scan cache is, its size, clearing and trimming it; and how the
//! scanning subcommands (scan, export) set up and report the cache.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use color_eyre::eyre::{WrapErr, eyre};

use snrscope::{
    spectrum::cache::{self, Cache},
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
