//! Small files (YAML, JSON) written beside their target and renamed into place: a reader (or a
//! crash) never sees half a file, an input is never the target, and an existing file is
//! replaced only when the caller says so — re-checked at the rename, so a file that appears
//! meanwhile is not replaced either.

use std::{
    io::Write,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use super::{ExportError, guard::Inputs, leftovers, sibling_of_this_process};

/// Refuses, before any work, an output file that could not be written: no file name, a parent
/// folder that is missing or not writable, an input (whatever `replace` says), a folder, or an
/// existing file unless `replace`.
pub fn check_output_file(path: &Path, inputs: &Inputs, replace: bool) -> Result<(), ExportError> {
    if path.file_name().is_none() {
        return Err(ExportError::BadTarget {
            out: path.to_path_buf(),
            problem: "not a file name".into(),
        });
    }
    check_parent(path)?;
    inputs.check(path)?;
    if path.is_dir() {
        return Err(ExportError::BadTarget {
            out: path.to_path_buf(),
            problem: "is a folder, not a file".into(),
        });
    }
    if !replace && path.symlink_metadata().is_ok() {
        return Err(ExportError::TargetExists {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The folder `out` is to be created in exists, is a folder and can be written: checked before
/// a scan or an export that may take minutes, not when it fails at the end.
pub(crate) fn check_parent(out: &Path) -> Result<(), ExportError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let bad = |problem: String| ExportError::BadTarget {
        out: out.to_path_buf(),
        problem,
    };
    match std::fs::metadata(parent) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad("its folder does not exist (create it first)".into()));
        }
        Err(e) => {
            return Err(bad(format!(
                "its folder: {}",
                crate::util::text::io_reason(&e)
            )));
        }
        Ok(m) if !m.is_dir() => {
            return Err(bad(format!("{} is not a folder", parent.display())));
        }
        Ok(_) => {}
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt as _;
        if let Ok(c) = std::ffi::CString::new(parent.as_os_str().as_bytes()) {
            // SAFETY: access(2) on a NUL-terminated path; it only reads it.
            if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(bad(format!(
                    "cannot write in its folder: {}",
                    crate::util::text::io_reason(&e)
                )));
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `path`. Refuses an input (whatever `replace` says), and an existing `path`
/// unless `replace`.
pub fn write_file_atomically(
    path: &Path,
    bytes: &[u8],
    inputs: &Inputs,
    replace: bool,
) -> Result<(), ExportError> {
    check_output_file(path, inputs, replace)?;
    // Leftovers of killed runs for this name; their notes are not worth a line for small files.
    let _ = leftovers::clean(path);
    // Two writers in one process (the explorer, tests) must not share a temporary name.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = sibling_of_this_process(path, "tmp").into_os_string();
    tmp.push(format!("-{n}"));
    let tmp = std::path::PathBuf::from(tmp);
    let result = (|| {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| ExportError::io(path, "cannot create", e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| ExportError::io(path, "cannot write", e))?;
        drop(f);
        inputs.check(path)?;
        if replace {
            std::fs::rename(&tmp, path).map_err(|e| ExportError::io(path, "cannot write", e))
        } else {
            super::rename::rename_noreplace(&tmp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    ExportError::TargetChanged {
                        path: path.to_path_buf(),
                        what: "appeared while it was being written".into(),
                    }
                } else {
                    ExportError::io(path, "cannot write", e)
                }
            })
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
