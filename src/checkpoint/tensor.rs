//! A tensor's place in its file, and the decoding of its bytes.

use std::ops::Range;

use super::gguf::{self, GgmlType};

/// A tensor's storage type. Safetensors and PyTorch dtypes — and GGUF's plain types (F32, F16,
/// BF16, F64, integers), which are the same little-endian bytes — are `Plain`; ggml's
/// block-quantized types (Q4_K, Q8_0, ...) are `Ggml`: a row is a whole number of blocks of
/// values with their scales, decoded by [`gguf::dequantize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dtype {
    Plain(safetensors::Dtype),
    Ggml(GgmlType),
}

impl From<safetensors::Dtype> for Dtype {
    fn from(d: safetensors::Dtype) -> Dtype {
        Dtype::Plain(d)
    }
}

impl PartialEq<safetensors::Dtype> for Dtype {
    fn eq(&self, other: &safetensors::Dtype) -> bool {
        *self == Dtype::Plain(*other)
    }
}

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
        use safetensors::Dtype as S;
        match self.dtype {
            Dtype::Plain(d) => matches!(d, S::F64 | S::F32 | S::F16 | S::BF16),
            Dtype::Ggml(t) => gguf::can_dequantize(t),
        }
    }

    /// Bytes per row of a 2-D tensor (quantized rows are whole blocks, so rows are byte
    /// ranges of every dtype).
    pub(crate) fn row_bytes(&self) -> Option<usize> {
        let (rows, _) = self.matrix_shape()?;
        Some((self.range.end - self.range.start) / rows.max(1))
    }
}

/// `BF16` -> "BF16", as safetensors headers spell it; ggml types as llama.cpp does (`Q4_K`).
pub fn dtype_name(d: Dtype) -> String {
    match d {
        Dtype::Plain(d) => format!("{d:?}"),
        Dtype::Ggml(t) => t.name(),
    }
}

/// Little-endian decoding of the scannable float dtypes; `false` (and `out` empty) for any
/// other dtype.
pub fn decode_f64(dtype: Dtype, bytes: &[u8], out: &mut Vec<f64>) -> bool {
    out.clear();
    decode_append(dtype, bytes, out)
}

/// [`decode_f64`] without clearing `out` first.
pub(crate) fn decode_append(dtype: Dtype, bytes: &[u8], out: &mut Vec<f64>) -> bool {
    use safetensors::Dtype;
    let dtype = match dtype {
        super::Dtype::Plain(d) => d,
        super::Dtype::Ggml(t) => return dequantize_append(t, bytes, out),
    };
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

/// Quantized blocks appended to `out` as f64; `false` (and `out` as it was) for a type that
/// cannot be dequantized or bytes that are not whole blocks.
fn dequantize_append(t: GgmlType, bytes: &[u8], out: &mut Vec<f64>) -> bool {
    let (Some(bs), Some(ts)) = (t.block_size(), t.type_size()) else {
        return false;
    };
    if !gguf::can_dequantize(t) || !(bytes.len() as u64).is_multiple_of(ts) {
        return false;
    }
    let start = out.len();
    out.resize(start + (bytes.len() as u64 / ts * bs) as usize, 0.0);
    if gguf::dequantize(t, bytes, &mut out[start..]).is_err() {
        out.truncate(start);
        return false;
    }
    true
}
