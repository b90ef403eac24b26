//! Weights as the pass reads them: one band of rows at a time, converted to f32, with the
//! job's cancel token checked between bands.

use std::{collections::HashMap, ops::Range, sync::Mutex};

use super::{error::EvalError, kernels::matmul_t, source::WeightSource};
use crate::util::cancel::CancelToken;

/// Why a pass stopped early.
#[derive(Debug)]
pub enum Stop {
    Cancelled,
    Failed(EvalError),
}

pub type Res<T> = Result<T, Stop>;

/// Reads weights for the pass: bands of rows as f32, applied at once; counts work done.
pub struct Reader<'a> {
    pub src: &'a dyn WeightSource,
    /// Largest band of a matrix converted at once, in f32 elements.
    pub band_elems: usize,
    pub cancel: &'a CancelToken,
    pub progress: &'a (dyn Fn(u64) + Sync),
    /// The f32 band, kept between products: a fresh one per matrix cost its page faults and
    /// zeroing every time (~5 % of a pass at hidden 1024). It is never larger than
    /// `band_elems`, which the memory estimate counts as held throughout.
    scratch: Mutex<Vec<f32>>,
}

impl<'a> Reader<'a> {
    pub fn new(
        src: &'a dyn WeightSource,
        band_elems: usize,
        cancel: &'a CancelToken,
        progress: &'a (dyn Fn(u64) + Sync),
    ) -> Reader<'a> {
        Reader {
            src,
            band_elems,
            cancel,
            progress,
            scratch: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn failed(&self, problem: String) -> Stop {
        Stop::Failed(EvalError::BadWeights {
            path: self.src.path().to_path_buf(),
            problem,
        })
    }

    fn rows_into(&self, name: &str, rows: Range<usize>, out: &mut Vec<f32>) -> Res<()> {
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        self.src
            .read_rows(name, rows, out)
            .map_err(|e| self.failed(e))
    }

    /// A whole (small) tensor: norms, biases.
    pub fn vector(&self, name: &str) -> Res<Vec<f32>> {
        let info = self
            .src
            .info(name)
            .ok_or_else(|| self.failed(format!("no tensor {name}")))?;
        let mut out = Vec::new();
        self.rows_into(name, 0..info.shape.first().copied().unwrap_or(1), &mut out)?;
        Ok(out)
    }

    /// `x · W[rows]ᵀ` (x: m × the tensor's row length) into columns `col..` of `out` (rows
    /// of `ld`), reading `rows` of W a band at a time.
    #[allow(clippy::too_many_arguments)]
    pub fn project(
        &self,
        name: &str,
        rows: Range<usize>,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        ld: usize,
        col: usize,
    ) -> Res<()> {
        let info = self
            .src
            .info(name)
            .ok_or_else(|| self.failed(format!("no tensor {name}")))?;
        let k = info.row_len();
        if x.len() < m * k {
            return Err(self.failed(format!(
                "{name}: rows of {k} do not fit inputs of {}",
                x.len() / m.max(1)
            )));
        }
        let band = (self.band_elems / k).max(1);
        let mut guard = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let buf = &mut *guard;
        let mut start = rows.start;
        while start < rows.end {
            let end = (start + band).min(rows.end);
            buf.clear();
            // Exactly: growth by doubling could hold twice the largest band.
            buf.reserve_exact((end - start) * k);
            self.rows_into(name, start..end, buf)?;
            matmul_t(
                x,
                m,
                k,
                buf,
                end - start,
                out,
                ld,
                col + start - rows.start,
                true,
            );
            (self.progress)(((end - start) * k * m) as u64);
            start = end;
        }
        Ok(())
    }

    /// Rows `ids` of an embedding, each distinct row read once.
    pub fn embed(&self, name: &str, ids: &[u32], hidden: usize) -> Res<Vec<f32>> {
        let mut distinct: Vec<u32> = ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let mut rows: HashMap<u32, usize> = HashMap::new();
        let mut table = Vec::with_capacity(distinct.len() * hidden);
        for (i, &id) in distinct.iter().enumerate() {
            self.rows_into(name, id as usize..id as usize + 1, &mut table)?;
            rows.insert(id, i);
        }
        let mut out = Vec::with_capacity(ids.len() * hidden);
        for id in ids {
            let r = rows[id];
            out.extend_from_slice(&table[r * hidden..(r + 1) * hidden]);
        }
        Ok(out)
    }
}
