//! A folder built under a temporary name beside its target and renamed into place only when
//! complete. Dropped without [`TempDir::commit`] (error, cancel, panic), it removes itself.
//!
//! The target is locked for the whole build (one snrscope writer per name), leftovers of dead
//! runs are cleaned first, and the final rename re-checks everything: the inputs, and that the
//! target is still what it was at the start — a folder that appeared meanwhile, or replaced the
//! one `--force` was told to replace, is never touched.

use std::path::{Path, PathBuf};

use super::{
    ExportError, guard::Inputs, leftovers, lock::TargetLock, rename, sibling_of_this_process,
};
use crate::util::fsid::FileId;

#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    target: PathBuf,
    armed: bool,
    /// The folder `--force` replaces, as it was when the export started.
    replaces: Option<FileId>,
    inputs: Inputs,
    _lock: TargetLock,
}

impl TempDir {
    /// Locks `target`, cleans up after dead runs (their notes go to `notes`), checks it against
    /// the inputs and `force`, and creates the temporary folder beside it (its parent must
    /// exist).
    pub fn beside(
        target: &Path,
        inputs: &Inputs,
        force: bool,
        notes: &mut Vec<String>,
    ) -> Result<TempDir, ExportError> {
        let lock = TargetLock::acquire(target)?;
        notes.extend(leftovers::clean(target));
        inputs.check(target)?;
        let replaces = match target.symlink_metadata() {
            Err(_) => None,
            Ok(_) if !force => {
                return Err(ExportError::TargetExists {
                    path: target.to_path_buf(),
                });
            }
            Ok(_) if !target.is_dir() => {
                return Err(ExportError::BadTarget {
                    out: target.to_path_buf(),
                    problem: "exists and is not a folder; not replacing it".into(),
                });
            }
            Ok(_) => FileId::of_entry(target),
        };
        let path = sibling_of_this_process(target, "tmp");
        std::fs::create_dir(&path)
            .map_err(|e| ExportError::io(&path, "cannot create the temporary output folder", e))?;
        Ok(TempDir {
            path,
            target: target.to_path_buf(),
            armed: true,
            replaces,
            inputs: inputs.clone(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts the finished folder at the target. A replaced folder is swapped out atomically
    /// (the target name never goes missing) and then removed; if that removal fails, the export
    /// still succeeded and the returned note says where the old folder was left.
    pub fn commit(mut self) -> Result<Option<String>, ExportError> {
        sync_dir(&self.path);
        self.inputs.check(&self.target)?;
        let changed = |what: &str| ExportError::TargetChanged {
            path: self.target.clone(),
            what: what.to_string(),
        };
        let mut note = None;
        match (&self.replaces, FileId::of_entry(&self.target)) {
            (_, None) => {
                rename::rename_noreplace(&self.path, &self.target).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        changed("appeared while the export ran")
                    } else {
                        ExportError::io(&self.target, "cannot rename the new folder into place", e)
                    }
                })?;
                self.armed = false;
            }
            (None, Some(_)) => return Err(changed("appeared while the export ran")),
            (Some(want), Some(now)) if *want != now => {
                return Err(changed(
                    "was replaced by something else while the export ran",
                ));
            }
            (Some(want), Some(_)) => {
                let want = want.clone();
                note = self.swap_in(&want)?;
            }
        }
        if let Some(parent) = self.target.parent() {
            sync_dir(parent);
        }
        Ok(note)
    }

    /// Replaces the existing target folder (identity `want`) with ours.
    fn swap_in(&mut self, want: &FileId) -> Result<Option<String>, ExportError> {
        let into_place =
            |e| ExportError::io(&self.target, "cannot rename the new folder into place", e);
        if rename::exchange(&self.path, &self.target).map_err(into_place)? {
            // Our temporary name now holds the old folder. Swapped something else in the
            // instant between the check and the exchange? Swap back and leave it alone.
            if FileId::of_entry(&self.path).as_ref() != Some(want) {
                let _ = rename::exchange(&self.path, &self.target);
                return Err(ExportError::TargetChanged {
                    path: self.target.clone(),
                    what: "was replaced by something else while the export ran".into(),
                });
            }
            self.armed = false;
            return Ok(remove_replaced(&self.path));
        }
        // Portable fallback: move the old folder aside, move ours in, remove the old one. A
        // crash between the two renames leaves the old folder under `-old-PID`, which the next
        // run puts back (see leftovers).
        let old = sibling_of_this_process(&self.target, "old");
        std::fs::rename(&self.target, &old).map_err(|e| {
            ExportError::io(&self.target, "cannot move the existing folder aside", e)
        })?;
        if let Err(e) = rename::rename_noreplace(&self.path, &self.target) {
            let _ = std::fs::rename(&old, &self.target);
            return Err(into_place(e));
        }
        self.armed = false;
        Ok(remove_replaced(&old))
    }
}

fn remove_replaced(old: &Path) -> Option<String> {
    std::fs::remove_dir_all(old).err().map(|e| {
        format!(
            "the replaced folder could not be removed and is left at {}: {}",
            old.display(),
            crate::util::text::io_reason(&e)
        )
    })
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Makes a folder's entries durable (best effort; not every platform can open folders).
fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}
