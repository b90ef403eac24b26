//! Parts of a stored tensor: the V rows (or columns) inside a fused attention projection, and
//! the derived module types that name them. Shared by layer discovery and the fused layouts.

use std::ops::Range;

/// Marks a derived module type: `self_attn.v_proj ⊂ qkv_proj`.
pub(crate) const SUBSET_MARK: &str = " ⊂ ";

/// Which axis of the stored tensor a slice selects (the other axis is taken whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Rows,
    Cols,
}

/// Parts of a stored 2-D tensor: the listed ranges of `axis`, in order, and all of the other
/// axis. Singular values do not depend on the order of rows or columns, so the V rows of all
/// heads, concatenated, are the V matrix whose SNR is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSlice {
    pub axis: Axis,
    pub ranges: Vec<Range<usize>>,
}

impl TensorSlice {
    /// How many rows (or columns) the slice selects.
    pub fn len(&self) -> usize {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of the selected matrix, given the stored tensor's shape.
    pub fn shape(&self, rows: usize, cols: usize) -> (usize, usize) {
        match self.axis {
            Axis::Rows => (self.len(), cols),
            Axis::Cols => (rows, self.len()),
        }
    }

    /// Copies the selected part of a row-major `rows x cols` matrix (tests and tools).
    pub fn extract(&self, data: &[f64], rows: usize, cols: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.len() * rows.max(cols));
        match self.axis {
            Axis::Rows => {
                for r in &self.ranges {
                    out.extend_from_slice(&data[r.start * cols..r.end * cols]);
                }
            }
            Axis::Cols => {
                for row in 0..rows {
                    for r in &self.ranges {
                        out.extend_from_slice(&data[row * cols + r.start..row * cols + r.end]);
                    }
                }
            }
        }
        out
    }
}

/// A derived V module of a stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// The fused module type it is cut from, e.g. `self_attn.qkv_proj`.
    pub fused_type: String,
    /// Where V sits, or why it cannot be known (the message names the missing config field).
    pub slice: Result<TensorSlice, String>,
}
