//! Filesystem identity: what makes two paths the same file or folder, whatever the strings say
//! (symlinks, bind mounts, hard links, `..`, case-insensitive names all defeat string compares).

use std::path::{Path, PathBuf};

/// Device and inode on Unix; the canonical path elsewhere (the best the platform offers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
    #[cfg(not(unix))]
    canonical: PathBuf,
}

impl FileId {
    /// The identity of what `path` names, following symlinks; `None` if it does not exist.
    pub fn of(path: &Path) -> Option<FileId> {
        Self::from_metadata(path, std::fs::metadata(path).ok()?)
    }

    /// The identity of the directory entry itself: a symlink is not followed.
    pub(crate) fn of_entry(path: &Path) -> Option<FileId> {
        Self::from_metadata(path, std::fs::symlink_metadata(path).ok()?)
    }

    #[cfg(unix)]
    fn from_metadata(_path: &Path, m: std::fs::Metadata) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    #[cfg(not(unix))]
    fn from_metadata(path: &Path, _m: std::fs::Metadata) -> Option<FileId> {
        Some(FileId {
            canonical: std::fs::canonicalize(path).ok()?,
        })
    }
}

/// `path` made absolute with every symlink resolved, as far as it exists: the longest existing
/// ancestor is canonicalized and the rest appended. `out/new.yml` with `out` a symlink resolves
/// through the link although `new.yml` does not exist yet.
pub fn resolve(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return abs,
        }
    }
}

/// The identities of `path`'s existing folders from itself (if it exists) up to the root.
pub(crate) fn ancestor_ids(path: &Path) -> Vec<(PathBuf, FileId)> {
    let resolved = resolve(path);
    resolved
        .ancestors()
        .filter_map(|a| FileId::of(a).map(|id| (a.to_path_buf(), id)))
        .collect()
}
