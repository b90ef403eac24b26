//! One weight file kept open, and tensor bytes read from it one tensor (or one band, one
//! chunk) at a time with positioned reads.

use std::{collections::HashMap, fs::File, io, ops::Range, path::PathBuf};

use safetensors::Dtype;

use super::error::MatrixError;

/// One weight file (`.safetensors`, or a PyTorch `.bin`), kept open. Tensor data is read with
/// `pread` into the buffer its conversion needs anyway, never memory-mapped: a file that
/// shrinks while it is read (truncated by another process, a network share going away) is an
/// error naming the file, not a SIGBUS that kills the process. A scan needs memory for the
/// matrices in flight, not address space for the whole model, and its resident set stays
/// flat however many matrices it reads.
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

    fn unreadable(&self, problem: String) -> MatrixError {
        MatrixError::Unreadable {
            path: self.path.clone(),
            problem,
        }
    }

    /// Refuses a range outside the file as it was when opened.
    fn check(&self, range: &Range<usize>) -> Result<(), MatrixError> {
        if range.end as u64 > self.len || range.start > range.end {
            return Err(self.unreadable(format!(
                "too short: bytes {}..{} of {}",
                range.start, range.end, self.len
            )));
        }
        Ok(())
    }

    /// Fills `buf` with the file's bytes from `offset` on. A file that ends early (it shrank
    /// since it was opened) or cannot be read gives an error naming it.
    pub(crate) fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), MatrixError> {
        let mut done = 0;
        while done < buf.len() {
            match read_at(&self.file, &mut buf[done..], offset + done as u64) {
                Ok(0) => {
                    let now = self
                        .file
                        .metadata()
                        .map_or_else(|_| "?".into(), |m| m.len().to_string());
                    return Err(self.unreadable(format!(
                        "the file ends at byte {} while reading bytes {}..{}: it shrank from {} \
                         to {now} bytes after it was opened (truncated or replaced while \
                         snrscope read it?)",
                        offset + done as u64,
                        offset,
                        offset + buf.len() as u64,
                        self.len
                    )));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(self.unreadable(format!(
                        "cannot read bytes {}..{}: {}",
                        offset,
                        offset + buf.len() as u64,
                        crate::util::text::io_reason(&e)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads `range` of the file into memory.
    pub(crate) fn read(&self, range: Range<usize>) -> Result<TensorBytes, MatrixError> {
        self.check(&range)?;
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(range.end - range.start)
            .map_err(|_| self.unreadable(out_of_memory((range.end - range.start) as u64, "")))?;
        bytes.resize(range.end - range.start, 0);
        self.read_exact_at(range.start as u64, &mut bytes)?;
        Ok(TensorBytes(bytes))
    }

    /// Appends the values of `range` (little-endian `dtype`, a scannable float type) to `out`
    /// as f64. The raw bytes are read into the space the f64 values take in `out` and widened
    /// there, so reading a matrix costs its f64 buffer and nothing more.
    pub(crate) fn read_f64(
        &self,
        dtype: super::Dtype,
        range: Range<usize>,
        out: &mut Vec<f64>,
    ) -> Result<(), MatrixError> {
        self.check(&range)?;
        let dtype = match dtype {
            super::Dtype::Plain(d) => d,
            // Quantized blocks are decoded from a buffer of their own (a fraction of the f64
            // values' size).
            super::Dtype::Ggml(t) => {
                let bytes = self.read(range.clone())?;
                if !super::tensor::decode_append(super::Dtype::Ggml(t), &bytes, out) {
                    return Err(self.unreadable(format!(
                        "bytes {}..{} are not whole {} blocks",
                        range.start,
                        range.end,
                        t.name()
                    )));
                }
                return Ok(());
            }
        };
        let es = match dtype {
            Dtype::F64 => 8,
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            _ => return Err(self.unreadable(format!("dtype {dtype:?} cannot be read as f64"))),
        };
        let n = (range.end - range.start) / es;
        let start = out.len();
        out.try_reserve_exact(n)
            .map_err(|_| self.unreadable(out_of_memory((n * 8) as u64, "in f64")))?;
        out.resize(start + n, 0.0);
        // SAFETY: the tail of `out` holds exactly n initialised f64 values; any byte pattern is
        // a valid f64, and u8 needs no alignment.
        let bytes: &mut [u8] = unsafe {
            std::slice::from_raw_parts_mut(out[start..].as_mut_ptr().cast::<u8>(), n * 8)
        };
        if let Err(e) = self.read_exact_at(range.start as u64, &mut bytes[..n * es]) {
            out.truncate(start);
            return Err(e);
        }
        widen_in_place(dtype, es, bytes, n);
        Ok(())
    }
}

/// Why `bytes` of a read could not be held, in words a user can act on.
fn out_of_memory(bytes: u64, how: &str) -> String {
    format!(
        "cannot allocate {} for it{}{how}: out of memory or address space (is `ulimit -v` \
         set? snrscope holds one matrix per thread, so the limit must exceed the largest \
         matrix in f64 plus the scan's working memory)",
        crate::util::bytes::human_bytes(bytes),
        if how.is_empty() { "" } else { " " }
    )
}

/// Turns the `n` values of `es` bytes each at the front of `bytes` into `n` native f64 values
/// filling it. From the last value back: value i's f64 goes to bytes 8i.., which overlap only
/// the raw bytes of values j ≥ i, already converted (or, for i itself, read just before).
fn widen_in_place(dtype: Dtype, es: usize, bytes: &mut [u8], n: usize) {
    for i in (0..n).rev() {
        let mut raw = [0u8; 8];
        raw[..es].copy_from_slice(&bytes[i * es..(i + 1) * es]);
        let v = match dtype {
            Dtype::F64 => f64::from_le_bytes(raw),
            Dtype::F32 => f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as f64,
            Dtype::F16 => half::f16::from_le_bytes([raw[0], raw[1]]).to_f64(),
            _ => half::bf16::from_le_bytes([raw[0], raw[1]]).to_f64(),
        };
        bytes[i * 8..(i + 1) * 8].copy_from_slice(&v.to_ne_bytes());
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Bytes of a tensor (or of part of one), read from its shard.
pub struct TensorBytes(Vec<u8>);

impl std::ops::Deref for TensorBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_in_place_matches_decoding() {
        let values = [1.5f64, -0.25, 3.0e-3, 65504.0, -7.0];
        for (dtype, raw) in [
            (
                Dtype::BF16,
                values
                    .iter()
                    .flat_map(|&v| half::bf16::from_f64(v).to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
            (
                Dtype::F16,
                values
                    .iter()
                    .flat_map(|&v| half::f16::from_f64(v).to_le_bytes())
                    .collect(),
            ),
            (
                Dtype::F32,
                values
                    .iter()
                    .flat_map(|&v| (v as f32).to_le_bytes())
                    .collect(),
            ),
            (
                Dtype::F64,
                values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
            ),
        ] {
            let mut expected = Vec::new();
            assert!(super::super::tensor::decode_f64(
                dtype.into(),
                &raw,
                &mut expected
            ));
            let es = raw.len() / values.len();
            let mut buf = vec![0u8; values.len() * 8];
            buf[..raw.len()].copy_from_slice(&raw);
            widen_in_place(dtype, es, &mut buf, values.len());
            let got: Vec<f64> = buf
                .chunks_exact(8)
                .map(|c| f64::from_ne_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(got, expected, "{dtype:?}");
        }
    }
}
