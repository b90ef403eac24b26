//! What interrupted runs leave beside a target — `.NAME.snrscope-tmp-PID…` (a half-written
//! output) and `.NAME.snrscope-old-PID` (a folder `--force` was replacing when the process died;
//! possibly a full model) — is cleaned up by the next run for the same target, once the process
//! that made it is gone. An `-old-` folder whose target is missing is the user's only copy: it
//! is put back, not deleted.

use std::path::{Path, PathBuf};

use super::rename::rename_noreplace;
use crate::util::bytes::human_bytes;

/// Cleans up after dead runs for `target`; one note per thing done, for the summary.
pub fn clean(target: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return notes;
    };
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let prefix = format!(".{name}.snrscope-");
    let Ok(rd) = std::fs::read_dir(parent) else {
        return notes;
    };
    let mut found: Vec<(PathBuf, &'static str)> = Vec::new();
    for entry in rd.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let (kind, pid) = match rest.split_once('-') {
            Some(("tmp", pid)) => ("tmp", pid),
            Some(("old", pid)) => ("old", pid),
            _ => continue,
        };
        // `PID` or `PID-N` (small files carry a counter too).
        let pid = pid.split('-').next().unwrap_or_default();
        if let Ok(pid) = pid.parse::<u32>()
            && !process_alive(pid)
        {
            found.push((entry.path(), kind));
        }
    }
    found.sort();
    let (mut removed, mut freed) = (0usize, 0u64);
    for (path, kind) in found {
        if kind == "old" && target.symlink_metadata().is_err() {
            if rename_noreplace(&path, target).is_ok() {
                notes.push(format!(
                    "put back {} from {}: a replace was interrupted there",
                    target.display(),
                    path.display()
                ));
            }
            continue;
        }
        let size = disk_size(&path);
        let gone = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match gone {
            Ok(()) => {
                removed += 1;
                freed += size;
            }
            Err(e) => notes.push(format!(
                "could not remove {} (left by an interrupted run): {}",
                path.display(),
                crate::util::text::io_reason(&e)
            )),
        }
    }
    if removed > 0 {
        notes.push(format!(
            "removed {removed} leftover(s) of interrupted snrscope runs beside {} ({} freed)",
            target.display(),
            human_bytes(freed)
        ));
    }
    notes
}

/// Bytes under `path`, symlinks not followed.
fn disk_size(path: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| disk_size(&e.path()))
        .sum()
}

/// Whether a process with this id runs (a process we may not signal still runs).
pub(crate) fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks for existence and permission; nothing is delivered.
        if unsafe { libc::kill(pid, 0) } == 0 {
            return true;
        }
        std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        // Without a way to tell, never remove another run's files.
        let _ = pid;
        true
    }
}
