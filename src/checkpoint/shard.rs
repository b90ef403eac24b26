//! One weight file kept open, and tensor bytes mapped from it one tensor at a time.

use std::{collections::HashMap, fs::File, ops::Range, path::PathBuf};

use memmap2::Mmap;

use super::error::MatrixError;

/// One `.safetensors` file, kept open. Tensor data is mapped into memory one tensor (or one
/// export chunk) at a time and unmapped when done: a scan needs address space for the matrices
/// in flight, not for the whole model (68 GiB for a 34B model, which `ulimit -v` may not
/// allow), and its resident set stays flat however many matrices it reads.
#[derive(Debug)]
pub struct Shard {
    pub path: PathBuf,
    /// File name relative to the model folder (what an index's weight_map says).
    pub file_name: String,
    pub(crate) file: File,
    pub(crate) len: u64,
    pub metadata: Option<HashMap<String, String>>,
}

impl Shard {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maps `range` of the file.
    pub(crate) fn map(&self, range: Range<usize>) -> Result<TensorBytes, MatrixError> {
        let unreadable = |problem: String| MatrixError::Unreadable {
            path: self.path.clone(),
            problem,
        };
        if range.end as u64 > self.len || range.start > range.end {
            return Err(unreadable(format!(
                "too short: bytes {}..{} of {}",
                range.start, range.end, self.len
            )));
        }
        let len = range.end - range.start;
        if len == 0 {
            return Ok(TensorBytes {
                map: None,
                skip: 0,
                len: 0,
            });
        }
        // Maps start on a page boundary.
        let skip = range.start % page_size();
        let offset = (range.start - skip) as u64;
        // SAFETY: the file is opened read-only and never written by this process. Another
        // process truncating it underneath us would fault reads, the usual caveat of every mmap
        // loader.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(skip + len)
                .map(&self.file)
        }
        .map_err(|e| unreadable(map_problem(&e, (skip + len) as u64)))?;
        Ok(TensorBytes {
            map: Some(map),
            skip,
            len,
        })
    }
}

/// A tensor's bytes, mapped from its shard while this value lives.
pub struct TensorBytes {
    map: Option<Mmap>,
    skip: usize,
    len: usize,
}

impl std::ops::Deref for TensorBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.map {
            Some(m) => &m[self.skip..self.skip + self.len],
            None => &[],
        }
    }
}

fn page_size() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 {
            return n as usize;
        }
    }
    // Windows' allocation granularity, and a safe multiple of every Unix page size.
    65_536
}

/// Why a map failed, in words a user can act on.
fn map_problem(e: &std::io::Error, len: u64) -> String {
    if e.raw_os_error() == Some(12) {
        // ENOMEM from mmap: the address space, not the RAM, ran out.
        format!(
            "cannot map {} of it into memory: out of address space (is `ulimit -v` set? \
             snrscope maps one matrix at a time, so the limit must exceed the largest matrix \
             plus the scan's working memory)",
            crate::util::bytes::human_bytes(len)
        )
    } else {
        format!(
            "cannot map into memory: {}",
            crate::util::text::io_reason(e)
        )
    }
}
