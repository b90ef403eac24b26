//! A folder built under a temporary name beside its target and renamed into place only when
//! complete. Dropped without [`TempDir::commit`] (error, cancel, panic), it removes itself.

use std::path::{Path, PathBuf};

use super::ExportError;

#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    target: PathBuf,
    armed: bool,
}

/// `.<name>.snrscope-<what>-<pid>` beside `target`.
fn sibling(target: &Path, what: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let parent = target.parent().unwrap_or(Path::new("."));
    parent.join(format!(".{name}.snrscope-{what}-{}", std::process::id()))
}

impl TempDir {
    /// Creates the temporary folder beside `target` (whose parent must exist). Temporary
    /// folders for the same target left by killed runs (their process is gone) are removed.
    pub fn beside(target: &Path) -> Result<TempDir, ExportError> {
        remove_stale(target);
        let path = sibling(target, "tmp");
        // Left over from an earlier run of a process with our pid that was killed: ours to
        // remove, the name is specific enough.
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| ExportError::io(&path, "cannot remove a stale temporary folder", e))?;
        }
        std::fs::create_dir(&path)
            .map_err(|e| ExportError::io(&path, "cannot create the temporary output folder", e))?;
        Ok(TempDir {
            path,
            target: target.to_path_buf(),
            armed: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the finished folder to the target. An existing target (the caller checked
    /// `--force`) is moved aside first and removed only once the new folder is in place; if
    /// that removal fails the export still succeeded, and the returned note says where the old
    /// folder was left.
    pub fn commit(mut self) -> Result<Option<String>, ExportError> {
        let mut note = None;
        sync_dir(&self.path);
        if self.target.exists() {
            let old = sibling(&self.target, "old");
            if old.exists() {
                std::fs::remove_dir_all(&old)
                    .map_err(|e| ExportError::io(&old, "cannot remove a stale folder", e))?;
            }
            std::fs::rename(&self.target, &old).map_err(|e| {
                ExportError::io(&self.target, "cannot move the existing folder aside", e)
            })?;
            if let Err(e) = std::fs::rename(&self.path, &self.target) {
                // Put the old folder back: the user keeps what they had.
                let _ = std::fs::rename(&old, &self.target);
                return Err(ExportError::io(
                    &self.target,
                    "cannot rename the new folder into place",
                    e,
                ));
            }
            self.armed = false;
            if let Err(e) = std::fs::remove_dir_all(&old) {
                note = Some(format!(
                    "the replaced folder could not be removed and is left at {}: {e}",
                    old.display()
                ));
            }
        } else {
            std::fs::rename(&self.path, &self.target).map_err(|e| {
                ExportError::io(&self.target, "cannot rename the new folder into place", e)
            })?;
            self.armed = false;
        }
        if let Some(parent) = self.target.parent() {
            sync_dir(parent);
        }
        Ok(note)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Removes `.<name>.snrscope-tmp-<pid>` folders beside `target` whose process no longer
/// runs (killed with SIGKILL, power loss). Only where /proc tells which processes run.
fn remove_stale(target: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let prefix = format!(".{name}.snrscope-tmp-");
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in rd.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Makes a folder's entries durable (best effort; not every platform can open folders).
fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}
