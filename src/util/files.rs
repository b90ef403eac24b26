//! Opening the files snrscope reads. Only regular files are read: a FIFO, a device, a socket or
//! a link to one is refused by name — and opening one never blocks, because the file is opened
//! with `O_NONBLOCK` and checked with `fstat` before anything is read from it. Whole-file reads
//! take a bound, checked against the file's size before reading (and again while reading, for a
//! file that grows meanwhile), so no input can make snrscope read without end.

use std::{
    fs::{File, Metadata},
    io::{self, Read as _},
    path::Path,
};

use super::bytes::human_bytes;

/// Bounds of the whole-file reads, by what the file is. Each is far above any real file of its
/// kind and far below what would hurt.
pub mod limit {
    /// config.json, generation configs, safetensors indexes: KBs to a few MB.
    pub const JSON: u64 = 64 << 20;
    /// Scan files and part files: ~300 bytes per matrix (a full 405B scan is a few MB).
    pub const SCAN: u64 = 256 << 20;
    /// A mergekit YAML: a few KB.
    pub const YAML: u64 = 16 << 20;
    /// tokenizer.json: up to ~35 MB for the largest vocabularies.
    pub const TOKENIZER: u64 = 512 << 20;
    /// The text (or token ids) a perplexity is computed on.
    pub const TEXT: u64 = 256 << 20;
}

/// What a non-regular file is, in words.
fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// The error for a file that is not a regular one: `is a FIFO (named pipe), not a regular file`.
fn not_regular(meta: &Metadata) -> io::Error {
    let kind = kind_of(meta);
    let text = if kind == "not a regular file" {
        kind.to_string()
    } else {
        format!("is {kind}, not a regular file")
    };
    io::Error::new(io::ErrorKind::InvalidInput, text)
}

/// Opens `path` for reading if it is (or links to) a regular file; anything else is refused
/// without blocking. Returns the file and its metadata (from `fstat`, so they describe what
/// was opened, not what the name points to a moment later).
pub fn open_regular(path: &Path) -> io::Result<(File, Metadata)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // A FIFO without a writer would block open(2) for ever; O_NONBLOCK returns at once,
        // and fstat then tells what it is.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd as _;
        // Back to ordinary reads (O_NONBLOCK means nothing to a regular file, but a descriptor
        // handed on should not carry it).
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fd = file.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
    }
    Ok((file, meta))
}

/// The whole of `path`, a regular file of at most `max` bytes (`what` names the kind of file
/// in the error: "a scan file").
pub fn read_bounded(path: &Path, max: u64, what: &str) -> io::Result<Vec<u8>> {
    let (file, meta) = open_regular(path)?;
    let too_large = |size: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "is {size}, more than {what} can be (at most {}); is it the right file?",
                human_bytes(max)
            ),
        )
    };
    if meta.len() > max {
        return Err(too_large(human_bytes(meta.len())));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    // One byte more than the bound: a file that grew past it is refused, not read on.
    file.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(too_large("growing".into()));
    }
    Ok(out)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_string_bounded(path: &Path, max: u64, what: &str) -> io::Result<String> {
    String::from_utf8(read_bounded(path, max, what)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_within_their_bound() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(&p, b"{}").unwrap();
        assert_eq!(read_bounded(&p, 2, "a file").unwrap(), b"{}");
        let e = read_bounded(&p, 1, "a scan file").unwrap_err();
        assert!(
            e.to_string().contains("more than a scan file can be"),
            "{e}"
        );
        let e = read_bounded(dir.path(), 100, "a file").unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_fifos_are_refused_without_blocking() {
        let e = read_bounded(Path::new("/dev/zero"), 1 << 20, "a file").unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path in our own temporary folder.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK this open would wait for a writer for ever.
        let e = open_regular(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
    }
}
