//! The final rename, the only moment an output appears under its name. On Linux `renameat2`
//! makes it safe against anything that happened meanwhile: `RENAME_NOREPLACE` fails instead of
//! replacing something that appeared at the target, `RENAME_EXCHANGE` swaps a finished folder
//! with the one `--force` replaces, so the target name is never missing. Elsewhere (or on a
//! filesystem without renameat2) the portable fallbacks are weaker, and say so.

use std::{io, path::Path};

/// Renames `from` to `to` unless `to` exists (`AlreadyExists` then, nothing changed).
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    match linux::renameat2(from, to, libc::RENAME_NOREPLACE) {
        Err(e) if unsupported(&e) => {}
        r => return r,
    }
    if from.is_dir() {
        // No portable atomic no-replace rename for folders: check, then rename. (A plain rename
        // onto an existing non-empty folder fails anyway; an empty one would be replaced.)
        if to.symlink_metadata().is_ok() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        return std::fs::rename(from, to);
    }
    // A hard link never replaces: it is the portable atomic no-replace for files.
    match std::fs::hard_link(from, to) {
        Ok(()) => std::fs::remove_file(from),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            if to.symlink_metadata().is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            std::fs::rename(from, to)
        }
    }
}

/// Atomically swaps `a` and `b` (both must exist). `Ok(false)` when the platform or filesystem
/// cannot: the caller falls back to moving `b` aside.
pub(crate) fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    match linux::renameat2(a, b, libc::RENAME_EXCHANGE) {
        Ok(()) => return Ok(true),
        Err(e) if unsupported(&e) => {}
        Err(e) => return Err(e),
    }
    let _ = (a, b);
    Ok(false)
}

#[cfg(target_os = "linux")]
fn unsupported(e: &io::Error) -> bool {
    // ENOSYS: kernel without renameat2; EINVAL: a filesystem without the flag (NFS, older
    // FUSE); EPERM is not treated as unsupported: it is a real refusal.
    matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::{ffi::CString, io, os::unix::ffi::OsStrExt, path::Path};

    pub(crate) fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
        };
        let (f, t) = (c(from)?, c(to)?);
        // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call;
        // the syscall takes no other memory.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                flags,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noreplace_refuses_an_existing_target_and_keeps_both() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::write(&a, "new").unwrap();
        std::fs::write(&b, "user's").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "user's");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new");
        std::fs::remove_file(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new");
        assert!(!a.exists());
    }

    #[test]
    fn noreplace_folders() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        assert!(rename_noreplace(&a, &b).is_err());
        assert!(a.is_dir() && b.is_dir());
    }

    #[test]
    fn exchange_swaps_folders() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("f"), "new").unwrap();
        std::fs::write(b.join("f"), "old").unwrap();
        if exchange(&a, &b).unwrap() {
            assert_eq!(std::fs::read_to_string(b.join("f")).unwrap(), "new");
            assert_eq!(std::fs::read_to_string(a.join("f")).unwrap(), "old");
        }
    }
}
