//! Where the forward pass reads its weights: a band of rows of one tensor as f32 at a time.
//! [`WeightSource`] is all the pass asks of a checkpoint format; [`MappedModel`] serves the
//! safetensors and PyTorch `.bin` files [`Model`] opens (the bytes of the asked rows are read and
//! converted), and a GGUF reader can serve its (dequantised) tensors the same way.

use std::{ops::Range, path::Path, sync::Arc};

use rayon::prelude::*;
use safetensors::Dtype;

use crate::checkpoint::{Model, dtype_name};

/// A tensor as the pass sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub shape: Vec<usize>,
    /// Bytes in the checkpoint (progress and memory estimates).
    pub bytes: u64,
    /// Why it cannot be converted to f32, if it cannot (e.g. "dtype I8").
    pub unreadable: Option<String>,
}

impl TensorInfo {
    /// Elements per row of its first axis (1 for a vector).
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product::<usize>().max(1)
    }
}

/// A checkpoint's tensors by name, read as f32 a band of rows at a time.
pub trait WeightSource: Send + Sync {
    /// The file or folder errors name.
    fn path(&self) -> &Path;
    fn info(&self, name: &str) -> Option<TensorInfo>;
    /// Appends rows `rows` of the first axis of `name` (a vector's rows are its elements) to
    /// `out`, as f32, row-major.
    fn read_rows(&self, name: &str, rows: Range<usize>, out: &mut Vec<f32>) -> Result<(), String>;
}

/// The safetensors / `.bin` checkpoint of a [`Model`], read a band at a time.
pub struct MappedModel(pub Arc<Model>);

impl WeightSource for MappedModel {
    fn path(&self) -> &Path {
        &self.0.source
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        let t = self.0.tensor(name)?;
        Some(TensorInfo {
            shape: t.shape.clone(),
            bytes: t.num_bytes(),
            unreadable: (!matches!(t.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64))
                .then(|| {
                    format!(
                        "dtype {} cannot be evaluated (only F32, F16, BF16, F64)",
                        dtype_name(t.dtype)
                    )
                }),
        })
    }

    fn read_rows(&self, name: &str, rows: Range<usize>, out: &mut Vec<f32>) -> Result<(), String> {
        let model = &self.0;
        let t = model
            .tensor(name)
            .ok_or_else(|| format!("{}: no tensor {name}", model.source.display()))?;
        let width = match t.dtype {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F64 => 8,
            d => {
                return Err(format!(
                    "{}: tensor {name} has dtype {}, which cannot be evaluated",
                    model.source.display(),
                    dtype_name(d)
                ));
            }
        };
        let row_len: usize = t.shape.iter().skip(1).product::<usize>().max(1);
        let n_rows = t.shape.first().copied().unwrap_or(1);
        if rows.start > rows.end || rows.end > n_rows {
            return Err(format!(
                "{}: rows {rows:?} of {name} are outside its {n_rows} rows",
                model.source.display()
            ));
        }
        let expected = t.num_elements() as usize * width;
        if t.num_bytes() as usize != expected {
            return Err(format!(
                "{}: tensor {name} holds {} bytes, its shape and dtype need {expected}",
                model.source.display(),
                t.num_bytes()
            ));
        }
        // Only the asked rows are read, so resident memory stays at the band.
        let band = model
            .bytes_within(t, rows.start * row_len * width..rows.end * row_len * width)
            .map_err(|e| e.to_string())?;
        let start = out.len();
        out.resize(start + rows.len() * row_len, 0.0);
        let dtype = t.dtype;
        const BLOCK: usize = 1 << 14;
        out[start..]
            .par_chunks_mut(BLOCK)
            .zip(band.par_chunks(BLOCK * width))
            .for_each(|(o, b)| decode(dtype, b, o));
        Ok(())
    }
}

/// Little-endian `bytes` of `dtype` into `out` (same element count).
fn decode(dtype: Dtype, bytes: &[u8], out: &mut [f32]) {
    match dtype {
        Dtype::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Dtype::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            }
        }
        Dtype::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        _ => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_widens_exactly() {
        let mut out = [0f32; 2];
        let v = [half::bf16::from_f32(1.5), half::bf16::from_f32(-3.25)];
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        decode(Dtype::BF16, &bytes, &mut out);
        assert_eq!(out, [1.5, -3.25]);
    }
}
