//! One writer per target: a lock file beside the output folder (`.NAME.snrscope-lock`, an
//! advisory `flock`) serialises snrscope exports to the same name; the second fails at once with
//! the first one's process id instead of racing it for the final rename.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    path::{Path, PathBuf},
};

use super::{ExportError, sibling};

#[derive(Debug)]
pub(crate) struct TargetLock {
    path: PathBuf,
    file: File,
}

impl TargetLock {
    pub(crate) fn acquire(target: &Path) -> Result<TargetLock, ExportError> {
        let path = sibling(target, "lock");
        let io = |e| ExportError::io(&path, "cannot create the lock file beside the output", e);
        // A holder removes the file when done; if it did so between our open and our lock, we
        // hold a lock on a file nobody else can see: open again.
        for _ in 0..10 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut pid = String::new();
                    let _ = file.read_to_string(&mut pid);
                    return Err(ExportError::Busy {
                        out: target.to_path_buf(),
                        holder: pid.trim().to_string(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            if !same_file(&file, &path).unwrap_or(false) {
                continue;
            }
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            write!(file, "{}", std::process::id()).map_err(io)?;
            return Ok(TargetLock { path, file });
        }
        Err(ExportError::Busy {
            out: target.to_path_buf(),
            holder: String::new(),
        })
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (file.metadata()?, std::fs::metadata(path)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> std::io::Result<bool> {
    Ok(path.exists())
}

impl Drop for TargetLock {
    fn drop(&mut self) {
        // Removed while still locked, so a waiting process re-opens the path (see acquire).
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_target_fails_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("out");
        let first = TargetLock::acquire(&target).unwrap();
        match TargetLock::acquire(&target) {
            Err(ExportError::Busy { holder, .. }) => {
                assert_eq!(holder, std::process::id().to_string())
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "lock file removed"
        );
        TargetLock::acquire(&target).unwrap();
    }
}
