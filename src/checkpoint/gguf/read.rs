//! Tensor data, one tensor (or one run of its rows) at a time: read from disk in bounded
//! chunks and decoded as it arrives, so reading a matrix costs its output plus one chunk.
//!
//! A "row" is ggml's innermost dimension: row r of a 2-D GGUF tensor is row r of the Hugging
//! Face matrix (GGUF lists dimensions innermost first, the bytes are the same order). For a
//! 3-D expert tensor, rows run through the experts: expert e's matrix is rows
//! `e*rows_per_expert .. (e+1)*rows_per_expert`.

use std::ops::Range;

use super::{
    GgufError,
    dequant::{self, Float},
    error::shown,
    open::{GgufModel, TensorRef},
};

const CHUNK_BYTES: u64 = 4 << 20;

impl TensorRef<'_> {
    /// Absolute byte range of `rows` in the part file. Every ggml row is a whole number of
    /// blocks (checked when the file was opened), so row boundaries are byte boundaries.
    pub fn rows_byte_range(&self, rows: Range<u64>) -> Result<Range<u64>, GgufError> {
        let n_rows = self.info.n_rows();
        if rows.start > rows.end || rows.end > n_rows {
            return Err(GgufError::tensor(
                &self.part.path,
                format!(
                    "tensor {} has {n_rows} rows; rows {}..{} do not exist",
                    shown(&self.info.name),
                    rows.start,
                    rows.end
                ),
            ));
        }
        let row_bytes = self.info.n_bytes / n_rows.max(1);
        let start = self.byte_range().start;
        Ok(start + rows.start * row_bytes..start + rows.end * row_bytes)
    }

    /// The raw bytes of `rows`, as stored.
    pub fn read_raw(&self, rows: Range<u64>) -> Result<Vec<u8>, GgufError> {
        let r = self.rows_byte_range(rows)?;
        let mut buf = vec![0u8; (r.end - r.start) as usize];
        self.part.read_at(r.start, &mut buf)?;
        Ok(buf)
    }

    /// `rows` decoded, row-major (`rows.len() * row_len` values).
    pub fn dequantize_rows<T: Float + Default>(
        &self,
        rows: Range<u64>,
    ) -> Result<Vec<T>, GgufError> {
        let info = self.info;
        if !dequant::can_dequantize(info.ggml_type) {
            return Err(GgufError::tensor(
                &self.part.path,
                format!(
                    "tensor {}: {}",
                    shown(&info.name),
                    dequant::DequantError::Unsupported(info.ggml_type)
                ),
            ));
        }
        let bytes = self.rows_byte_range(rows.clone())?;
        let row_len = info.row_len();
        let n = (rows.end - rows.start)
            .checked_mul(row_len)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                GgufError::tensor(
                    &self.part.path,
                    format!("tensor {} is too large", shown(&info.name)),
                )
            })?;
        let mut out = Vec::new();
        out.try_reserve_exact(n).map_err(|_| {
            GgufError::tensor(
                &self.part.path,
                format!(
                    "tensor {}: not enough memory for {n} values",
                    shown(&info.name)
                ),
            )
        })?;
        out.resize(n, T::default());
        let row_bytes = info.n_bytes / info.n_rows().max(1);
        let rows_per_chunk = (CHUNK_BYTES / row_bytes.max(1)).max(1);
        let mut buf = Vec::new();
        let mut row = 0u64;
        let total_rows = rows.end - rows.start;
        while row < total_rows {
            let take = rows_per_chunk.min(total_rows - row);
            buf.resize((take * row_bytes) as usize, 0);
            self.part.read_at(bytes.start + row * row_bytes, &mut buf)?;
            let o = (row * row_len) as usize..((row + take) * row_len) as usize;
            dequant::dequantize(info.ggml_type, &buf, &mut out[o]).map_err(|e| {
                GgufError::tensor(
                    &self.part.path,
                    format!("tensor {}: {e}", shown(&info.name)),
                )
            })?;
            row += take;
        }
        Ok(out)
    }

    /// The whole tensor in f64 (for the SNR), row-major in the Hugging Face layout.
    pub fn to_f64(&self) -> Result<Vec<f64>, GgufError> {
        self.dequantize_rows(0..self.info.n_rows())
    }

    /// The whole tensor in f32 (for the forward pass).
    pub fn to_f32(&self) -> Result<Vec<f32>, GgufError> {
        self.dequantize_rows(0..self.info.n_rows())
    }
}

impl GgufModel {
    /// A tensor by its GGUF name, or an error naming the file.
    pub fn require(&self, name: &str) -> Result<TensorRef<'_>, GgufError> {
        self.tensor(name).ok_or_else(|| {
            GgufError::tensor(
                &self.main().path,
                format!("has no tensor named {}", shown(name)),
            )
        })
    }
}
