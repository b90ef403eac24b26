//! ggml's tensor types: their ids as GGUF stores them, names, and block geometry. Every type
//! llama.cpp can write is known here, so that any tensor's byte size can be checked against the
//! file and copied as it is; which of them can be turned into numbers is [`super::dequant`]'s
//! business.

use std::fmt;

/// A ggml tensor type, by its id in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GgmlType(pub u32);

/// (id, name, values per block, bytes per block), as in ggml's `type_traits` and gguf-py's
/// `GGML_QUANT_SIZES`. Ids 4, 5 and 31-33, 36-38 were removed from ggml and are unknown here.
const TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

impl GgmlType {
    pub const F32: GgmlType = GgmlType(0);
    pub const F16: GgmlType = GgmlType(1);
    pub const Q4_0: GgmlType = GgmlType(2);
    pub const Q4_1: GgmlType = GgmlType(3);
    pub const Q5_0: GgmlType = GgmlType(6);
    pub const Q5_1: GgmlType = GgmlType(7);
    pub const Q8_0: GgmlType = GgmlType(8);
    pub const Q2_K: GgmlType = GgmlType(10);
    pub const Q3_K: GgmlType = GgmlType(11);
    pub const Q4_K: GgmlType = GgmlType(12);
    pub const Q5_K: GgmlType = GgmlType(13);
    pub const Q6_K: GgmlType = GgmlType(14);
    pub const Q8_K: GgmlType = GgmlType(15);
    pub const F64: GgmlType = GgmlType(28);
    pub const BF16: GgmlType = GgmlType(30);

    fn entry(self) -> Option<&'static (u32, &'static str, u64, u64)> {
        TYPES.iter().find(|t| t.0 == self.0)
    }

    /// Whether ggml knows this id (its size can be computed).
    pub fn is_known(self) -> bool {
        self.entry().is_some()
    }

    /// `Q4_K`, `F16`, ...; `type 99` for an unknown id.
    pub fn name(self) -> String {
        match self.entry() {
            Some(t) => t.1.to_string(),
            None => format!("type {}", self.0),
        }
    }

    /// Values per block (1 for plain types); `None` for an unknown id.
    pub fn block_size(self) -> Option<u64> {
        self.entry().map(|t| t.2)
    }

    /// Bytes per block; `None` for an unknown id.
    pub fn type_size(self) -> Option<u64> {
        self.entry().map(|t| t.3)
    }

    /// Bytes of `n` values, when `n` is a whole number of blocks and the size fits in u64.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let (bs, ts) = (self.block_size()?, self.type_size()?);
        if !n.is_multiple_of(bs) {
            return None;
        }
        (n / bs).checked_mul(ts)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_common_types() {
        assert_eq!(GgmlType::Q4_K.bytes_for(4096), Some(16 * 144));
        assert_eq!(GgmlType::Q8_0.bytes_for(33), None);
        assert_eq!(GgmlType(4).name(), "type 4");
        assert!(!GgmlType(4).is_known());
        assert_eq!(GgmlType::BF16.to_string(), "BF16");
    }
}
