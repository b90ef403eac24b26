//! Where the forward pass reads its weights: a band of rows of one tensor as f32 at a time.
//! [`WeightSource`] is all the pass asks of a checkpoint format; [`MappedModel`] serves the
//! safetensors and PyTorch `.bin` files [`Model`] opens (the bytes of the asked rows are read and
//! converted), and a GGUF reader can serve its (dequantised) tensors the same way.

use std::{
    ops::Range,
    path::Path,
    sync::{Arc, Mutex},
};

use rayon::prelude::*;
use safetensors::Dtype as Plain;

use crate::checkpoint::{Dtype, Fixup, Model, dtype_name, gguf, gguf::names::QkPermutation};

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
pub struct MappedModel {
    model: Arc<Model>,
    /// The raw bytes of a band, kept between reads (a fresh buffer per band cost its page
    /// faults and zeroing each time); at most one band's source bytes, as the memory
    /// estimate counts.
    raw: Mutex<Vec<u8>>,
}

impl MappedModel {
    pub fn new(model: Arc<Model>) -> MappedModel {
        MappedModel {
            model,
            raw: Mutex::new(Vec::new()),
        }
    }
}

impl WeightSource for MappedModel {
    fn path(&self) -> &Path {
        &self.model.source
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        let t = self.model.tensor(name)?;
        Some(TensorInfo {
            shape: t.shape.clone(),
            bytes: t.num_bytes(),
            unreadable: (!readable(t.dtype)).then(|| {
                format!(
                    "dtype {} cannot be evaluated (only F32, F16, BF16, F64 and the ggml types \
                     snrscope dequantizes)",
                    dtype_name(t.dtype)
                )
            }),
        })
    }

    fn read_rows(&self, name: &str, rows: Range<usize>, out: &mut Vec<f32>) -> Result<(), String> {
        let model = &self.model;
        let t = model
            .tensor(name)
            .ok_or_else(|| format!("{}: no tensor {name}", model.source.display()))?;
        if !readable(t.dtype) {
            return Err(format!(
                "{}: tensor {name} has dtype {}, which cannot be evaluated",
                model.source.display(),
                dtype_name(t.dtype)
            ));
        }
        let row_len: usize = t.shape.iter().skip(1).product::<usize>().max(1);
        let n_rows = t.shape.first().copied().unwrap_or(1);
        if rows.start > rows.end || rows.end > n_rows {
            return Err(format!(
                "{}: rows {rows:?} of {name} are outside its {n_rows} rows",
                model.source.display()
            ));
        }
        let expected = match t.dtype {
            Dtype::Plain(d) => Some(t.num_elements() * (d.bitsize() / 8) as u64),
            Dtype::Ggml(g) => g.bytes_for(t.num_elements()),
        };
        if expected != Some(t.num_bytes()) {
            return Err(format!(
                "{}: tensor {name} holds {} bytes, its shape and dtype need {}",
                model.source.display(),
                t.num_bytes(),
                expected.map_or("another size".into(), |e| e.to_string())
            ));
        }
        let read = |within: Range<usize>| model.bytes_within(t, within).map_err(|e| e.to_string());
        // Rows are whole blocks in every dtype, so a band of rows is a byte range.
        let row_bytes = t.num_bytes() as usize / n_rows.max(1);
        let start = out.len();
        let fixup = model.gguf.as_ref().and_then(|g| g.fixup(name));
        if let Some(Fixup::Permuted(p)) = fixup {
            // The converter moved rows only within their head: the heads the asked rows lie in
            // are read, not the whole tensor for every band.
            let d = p.head_dim.max(1);
            let first = rows.start / d * d;
            let last = rows.end.div_ceil(d).saturating_mul(d).min(n_rows);
            let bytes = read(first * row_bytes..last.max(first) * row_bytes)?;
            return permuted_rows(model, t, (&bytes, row_bytes, first), p, rows, out);
        }
        out.resize(start + rows.len() * row_len, 0.0);
        match t.dtype {
            Dtype::Plain(dtype) => {
                let width = dtype.bitsize() / 8;
                // Only the asked rows are read, so resident memory stays at the band.
                let mut raw = self.raw.lock().unwrap_or_else(|e| e.into_inner());
                let len = rows.len() * row_bytes;
                raw.clear();
                raw.reserve_exact(len);
                raw.resize(len, 0);
                // Inside the tensor: its rows and byte size were checked above.
                let at = t.range.start + rows.start * row_bytes;
                model.shards[t.shard]
                    .read_exact_at(at as u64, &mut raw)
                    .map_err(|e| e.to_string())?;
                let band = &raw[..];
                const BLOCK: usize = 1 << 14;
                out[start..]
                    .par_chunks_mut(BLOCK)
                    .zip(band.par_chunks(BLOCK * width))
                    .for_each(|(o, b)| decode(dtype, b, o));
            }
            Dtype::Ggml(g) => {
                // Each row is decoded on its own (in parallel); a quantized vector is decoded
                // whole and the asked part kept.
                if t.shape.len() < 2 {
                    let bytes = read(0..t.num_bytes() as usize)?;
                    let mut all = vec![0f32; t.num_elements() as usize];
                    gguf::dequantize(g, &bytes, &mut all).map_err(|e| e.to_string())?;
                    out[start..].copy_from_slice(&all[rows.clone()]);
                } else {
                    let band = read(rows.start * row_bytes..rows.end * row_bytes)?;
                    out[start..]
                        .par_chunks_mut(row_len)
                        .zip(band.par_chunks(row_bytes))
                        .try_for_each(|(o, b)| gguf::dequantize(g, b, o))
                        .map_err(|e| format!("{}: tensor {name}: {e}", model.source.display()))?;
                }
            }
        }
        if fixup == Some(Fixup::PlusOne) {
            // Gemma's converter stored its norm weights as 1 + w.
            out[start..].iter_mut().for_each(|x| *x -= 1.0);
        }
        Ok(())
    }
}

/// Rows `rows` of an arch-`llama` GGUF's `attn_q`/`attn_k` (or their biases) in Hugging
/// Face's order: each row is read from the GGUF row the converter moved it to.
fn permuted_rows(
    model: &Model,
    t: &crate::checkpoint::TensorEntry,
    // The bytes of rows `first..`, each `row_bytes` long.
    (bytes, row_bytes, first): (&[u8], usize, usize),
    p: QkPermutation,
    rows: Range<usize>,
    out: &mut Vec<f32>,
) -> Result<(), String> {
    let name = &t.name;
    let n_rows = t.shape.first().copied().unwrap_or(1);
    let row_len: usize = t.shape.iter().skip(1).product::<usize>().max(1);
    if p.n_heads * p.head_dim != n_rows || !p.head_dim.is_multiple_of(2) {
        return Err(format!(
            "{}: tensor {name} has {n_rows} rows, but its {} heads of {} need {}; its row \
             order cannot be undone",
            model.source.display(),
            p.n_heads,
            p.head_dim,
            p.n_heads * p.head_dim
        ));
    }
    let start = out.len();
    out.resize(start + rows.len() * row_len, 0.0);
    for (k, r) in rows.enumerate() {
        let g = p.gguf_row(r) - first;
        let src = &bytes[g * row_bytes..(g + 1) * row_bytes];
        let dst = &mut out[start + k * row_len..start + (k + 1) * row_len];
        match t.dtype {
            Dtype::Plain(d) => decode(d, src, dst),
            Dtype::Ggml(g) if t.shape.len() >= 2 => gguf::dequantize(g, src, dst)
                .map_err(|e| format!("{}: tensor {name}: {e}", model.source.display()))?,
            Dtype::Ggml(_) => {
                return Err(format!(
                    "{}: tensor {name} is a quantized vector whose row order cannot be undone",
                    model.source.display()
                ));
            }
        }
    }
    Ok(())
}

/// Whether the pass can convert a dtype to f32.
fn readable(d: Dtype) -> bool {
    match d {
        Dtype::Plain(p) => matches!(p, Plain::F32 | Plain::F16 | Plain::BF16 | Plain::F64),
        Dtype::Ggml(g) => gguf::can_dequantize(g),
    }
}

/// Little-endian `bytes` of `dtype` into `out` (same element count).
fn decode(dtype: Plain, bytes: &[u8], out: &mut [f32]) {
    match dtype {
        Plain::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Plain::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            }
        }
        Plain::F16 => {
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
        decode(Plain::BF16, &bytes, &mut out);
        assert_eq!(out, [1.5, -3.25]);
    }
}
