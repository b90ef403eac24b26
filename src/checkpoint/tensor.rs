//! A tensor's place in its file, and the decoding of its bytes.

use std::ops::Range;

use safetensors::Dtype;

/// A tensor's place in its shard. `range` is absolute within the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub shard: usize,
    pub range: Range<usize>,
}

impl TensorEntry {
    pub(crate) fn num_elements(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }

    pub fn num_bytes(&self) -> u64 {
        (self.range.end - self.range.start) as u64
    }

    /// `(rows, cols)` for a 2-D tensor.
    pub(crate) fn matrix_shape(&self) -> Option<(usize, usize)> {
        match self.shape.as_slice() {
            &[r, c] => Some((r, c)),
            _ => None,
        }
    }

    pub fn is_scannable_dtype(&self) -> bool {
        matches!(
            self.dtype,
            Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16
        )
    }
}

/// `BF16` -> "BF16", as safetensors headers spell it.
pub fn dtype_name(d: Dtype) -> String {
    format!("{d:?}")
}

/// Little-endian decoding of the scannable float dtypes; `false` (and `out` empty) for any
/// other dtype.
pub fn decode_f64(dtype: Dtype, bytes: &[u8], out: &mut Vec<f64>) -> bool {
    out.clear();
    decode_append(dtype, bytes, out)
}

/// [`decode_f64`] without clearing `out` first.
pub(crate) fn decode_append(dtype: Dtype, bytes: &[u8], out: &mut Vec<f64>) -> bool {
    match dtype {
        Dtype::F64 => out.extend(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
        ),
        Dtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64),
        ),
        Dtype::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()),
        ),
        Dtype::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64()),
        ),
        _ => return false,
    }
    true
}
