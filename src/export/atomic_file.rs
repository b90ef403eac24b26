//! Small files (YAML, JSON) written beside their target and renamed into place.

use std::{io::Write, path::Path};

use super::ExportError;

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`, so a
/// reader (or a crash) never sees half a file. Overwrites an existing `path`: callers decide
/// whether that is allowed.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| ExportError::BadTarget {
        out: path.to_path_buf(),
        problem: "not a file name".into(),
    })?;
    if path.is_dir() {
        return Err(ExportError::BadTarget {
            out: path.to_path_buf(),
            problem: "is a folder, not a file".into(),
        });
    }
    let tmp = dir.join(format!(
        ".{}.snrscope-tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| ExportError::io(path, "cannot create", e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| ExportError::io(path, "cannot write", e))?;
        std::fs::rename(&tmp, path).map_err(|e| ExportError::io(path, "cannot write", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
