//! Quantized blocks to numbers, one tensor (or one row range) at a time: to f64 for the SNR and
//! to f32 for the forward pass. Each type follows gguf-py's `gguf.quants` (itself written to
//! match ggml-quants.c) operation by operation — the block scale times the sub-block scale,
//! then times the quant, minus the scaled minimum — so the f32 results are bit-identical to
//! gguf-py's numpy, and the f64 results are the same expressions evaluated in f64 (exact for
//! every block llama.cpp writes: an f16 scale times a 6-bit scale times a 6-bit quant has at
//! most 23 significant bits).
//!
//! IQ*, TQ*, MXFP4 and the integer types are refused by name.

use std::ops::{Add, Mul, Sub};

use super::types::GgmlType;

/// The output number type: f32 or f64.
pub trait Float: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> {
    fn from_f32(x: f32) -> Self;
    fn from_f64(x: f64) -> Self;
    fn from_i32(x: i32) -> Self;
}

impl Float for f32 {
    fn from_f32(x: f32) -> f32 {
        x
    }
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
    fn from_i32(x: i32) -> f32 {
        x as f32
    }
}

impl Float for f64 {
    fn from_f32(x: f32) -> f64 {
        x as f64
    }
    fn from_f64(x: f64) -> f64 {
        x
    }
    fn from_i32(x: i32) -> f64 {
        x as f64
    }
}

/// Whether [`dequantize`] takes this type.
pub fn can_dequantize(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32
            | GgmlType::F16
            | GgmlType::BF16
            | GgmlType::F64
            | GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
            | GgmlType::Q8_K
    )
}

/// Why a block run could not be decoded (the caller adds the file and tensor).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DequantError {
    #[error(
        "its type {0} cannot be dequantized by snrscope (F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, \
         Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K can)"
    )]
    Unsupported(GgmlType),
    #[error("{bytes} bytes of {ty} do not hold {values} values")]
    Length {
        ty: GgmlType,
        bytes: usize,
        values: usize,
    },
}

fn f16<T: Float>(b: &[u8]) -> T {
    T::from_f32(half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
}

/// Decodes `bytes` (whole blocks of `ty`) into `out`, whose length is the number of values.
pub fn dequantize<T: Float>(ty: GgmlType, bytes: &[u8], out: &mut [T]) -> Result<(), DequantError> {
    if !can_dequantize(ty) {
        return Err(DequantError::Unsupported(ty));
    }
    let (bs, ts) = (
        ty.block_size().expect("known") as usize,
        ty.type_size().expect("known") as usize,
    );
    if !out.len().is_multiple_of(bs) || bytes.len() != out.len() / bs * ts {
        return Err(DequantError::Length {
            ty,
            bytes: bytes.len(),
            values: out.len(),
        });
    }
    let blocks = bytes.chunks_exact(ts).zip(out.chunks_exact_mut(bs));
    match ty {
        GgmlType::F32 => {
            blocks.for_each(|(b, y)| y[0] = T::from_f32(f32::from_le_bytes(b.try_into().unwrap())))
        }
        GgmlType::F64 => {
            blocks.for_each(|(b, y)| y[0] = T::from_f64(f64::from_le_bytes(b.try_into().unwrap())))
        }
        GgmlType::F16 => blocks.for_each(|(b, y)| y[0] = f16(b)),
        GgmlType::BF16 => blocks.for_each(|(b, y)| {
            y[0] = T::from_f32(f32::from_bits(
                (u16::from_le_bytes([b[0], b[1]]) as u32) << 16,
            ))
        }),
        GgmlType::Q4_0 => blocks.for_each(|(b, y)| q4_0(b, y)),
        GgmlType::Q4_1 => blocks.for_each(|(b, y)| q4_1(b, y)),
        GgmlType::Q5_0 => blocks.for_each(|(b, y)| q5_0(b, y)),
        GgmlType::Q5_1 => blocks.for_each(|(b, y)| q5_1(b, y)),
        GgmlType::Q8_0 => blocks.for_each(|(b, y)| q8_0(b, y)),
        GgmlType::Q2_K => blocks.for_each(|(b, y)| q2_k(b, y)),
        GgmlType::Q3_K => blocks.for_each(|(b, y)| q3_k(b, y)),
        GgmlType::Q4_K => blocks.for_each(|(b, y)| q4_k(b, y)),
        GgmlType::Q5_K => blocks.for_each(|(b, y)| q5_k(b, y)),
        GgmlType::Q6_K => blocks.for_each(|(b, y)| q6_k(b, y)),
        GgmlType::Q8_K => blocks.for_each(|(b, y)| q8_k(b, y)),
        _ => unreachable!("can_dequantize covers the rest"),
    }
    Ok(())
}

// Legacy 32-value blocks. The low nibbles hold values 0..16, the high nibbles 16..32; Q5's
// fifth bits are a little-endian u32, bit i for value i.

fn q4_0<T: Float>(b: &[u8], y: &mut [T]) {
    let d: T = f16(&b[0..2]);
    for (j, &q) in b[2..18].iter().enumerate() {
        y[j] = d * T::from_i32((q & 0x0F) as i32 - 8);
        y[j + 16] = d * T::from_i32((q >> 4) as i32 - 8);
    }
}

fn q4_1<T: Float>(b: &[u8], y: &mut [T]) {
    let (d, m): (T, T) = (f16(&b[0..2]), f16(&b[2..4]));
    for (j, &q) in b[4..20].iter().enumerate() {
        y[j] = d * T::from_i32((q & 0x0F) as i32) + m;
        y[j + 16] = d * T::from_i32((q >> 4) as i32) + m;
    }
}

fn q5_0<T: Float>(b: &[u8], y: &mut [T]) {
    let d: T = f16(&b[0..2]);
    let qh = u32::from_le_bytes(b[2..6].try_into().unwrap());
    for (j, &q) in b[6..22].iter().enumerate() {
        let lo = (q & 0x0F) as i32 | (((qh >> j) & 1) << 4) as i32;
        let hi = (q >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32;
        y[j] = d * T::from_i32(lo - 16);
        y[j + 16] = d * T::from_i32(hi - 16);
    }
}

fn q5_1<T: Float>(b: &[u8], y: &mut [T]) {
    let (d, m): (T, T) = (f16(&b[0..2]), f16(&b[2..4]));
    let qh = u32::from_le_bytes(b[4..8].try_into().unwrap());
    for (j, &q) in b[8..24].iter().enumerate() {
        let lo = (q & 0x0F) as i32 | (((qh >> j) & 1) << 4) as i32;
        let hi = (q >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32;
        y[j] = d * T::from_i32(lo) + m;
        y[j + 16] = d * T::from_i32(hi) + m;
    }
}

fn q8_0<T: Float>(b: &[u8], y: &mut [T]) {
    let d: T = f16(&b[0..2]);
    for (j, &q) in b[2..34].iter().enumerate() {
        y[j] = T::from_i32(q as i8 as i32) * d;
    }
}

// K-quants: 256-value super-blocks of sub-blocks (16 of 16 or 8 of 32 values), each with its
// own small scale (and minimum) under the super-block's f16 scale(s).

fn q2_k<T: Float>(b: &[u8], y: &mut [T]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin): (T, T) = (f16(&b[80..82]), f16(&b[82..84]));
    for (e, out) in y.iter_mut().enumerate() {
        // Value e: bits 2*(j%4) of byte (j/4)*32 + l, where e = j*32 + l.
        let (j, l) = (e / 32, e % 32);
        let q = (qs[(j / 4) * 32 + l] >> (2 * (j % 4))) & 3;
        let sc = scales[e / 16];
        let dl = d * T::from_i32((sc & 0x0F) as i32);
        let ml = dmin * T::from_i32((sc >> 4) as i32);
        *out = dl * T::from_i32(q as i32) - ml;
    }
}

fn q3_k<T: Float>(b: &[u8], y: &mut [T]) {
    let (hmask, qs, sc) = (&b[0..32], &b[32..96], &b[96..108]);
    let d: T = f16(&b[108..110]);
    let scale = |i: usize| -> i32 {
        let lo = if i < 8 { sc[i] & 0x0F } else { sc[i - 8] >> 4 };
        let hi = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
        (lo | (hi << 4)) as i8 as i32 - 32
    };
    for (e, out) in y.iter_mut().enumerate() {
        let (j, l) = (e / 32, e % 32);
        let ql = ((qs[(j / 4) * 32 + l] >> (2 * (j % 4))) & 3) as i32;
        // A set high bit means no offset; a clear one subtracts 4.
        let hbit = ((hmask[l] >> j) & 1) as i32;
        let q = ql - ((hbit ^ 1) << 2);
        let dl = d * T::from_i32(scale(e / 16));
        *out = dl * T::from_i32(q);
    }
}

/// Q4_K/Q5_K's eight 6-bit scales and minimums, packed in 12 bytes.
fn scale_min_k4(s: &[u8], j: usize) -> (i32, i32) {
    if j < 4 {
        ((s[j] & 0x3F) as i32, (s[j + 4] & 0x3F) as i32)
    } else {
        (
            ((s[j + 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30)) as i32,
            ((s[j + 4] >> 4) | ((s[j] >> 2) & 0x30)) as i32,
        )
    }
}

fn q4_k<T: Float>(b: &[u8], y: &mut [T]) {
    let (d, dmin): (T, T) = (f16(&b[0..2]), f16(&b[2..4]));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (g, out) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min_k4(scales, g);
        let (d1, m1) = (d * T::from_i32(sc), dmin * T::from_i32(m));
        // Sub-block g: nibble g%2 of bytes (g/2)*32 ..
        for (l, o) in out.iter_mut().enumerate() {
            let q = (qs[(g / 2) * 32 + l] >> (4 * (g % 2))) & 0x0F;
            *o = d1 * T::from_i32(q as i32) - m1;
        }
    }
}

fn q5_k<T: Float>(b: &[u8], y: &mut [T]) {
    let (d, dmin): (T, T) = (f16(&b[0..2]), f16(&b[2..4]));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for (g, out) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min_k4(scales, g);
        let (d1, m1) = (d * T::from_i32(sc), dmin * T::from_i32(m));
        for (l, o) in out.iter_mut().enumerate() {
            let lo = (qs[(g / 2) * 32 + l] >> (4 * (g % 2))) & 0x0F;
            let hi = (qh[l] >> g) & 1;
            *o = d1 * T::from_i32((lo | (hi << 4)) as i32) - m1;
        }
    }
}

fn q6_k<T: Float>(b: &[u8], y: &mut [T]) {
    let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
    let d: T = f16(&b[208..210]);
    for (e, out) in y.iter_mut().enumerate() {
        let (half, r) = (e / 128, e % 128);
        let lo = (ql[half * 64 + r % 64] >> (4 * (r / 64))) & 0x0F;
        let hi = (qh[half * 32 + r % 32] >> (2 * (r / 32))) & 3;
        let q = (lo | (hi << 4)) as i32 - 32;
        let ds = d * T::from_i32(scales[e / 16] as i8 as i32);
        *out = ds * T::from_i32(q);
    }
}

fn q8_k<T: Float>(b: &[u8], y: &mut [T]) {
    // An f32 scale, 256 int8 quants, then 16 int16 block sums (for dot products; not needed).
    let d = T::from_f32(f32::from_le_bytes(b[0..4].try_into().unwrap()));
    for (o, &q) in y.iter_mut().zip(&b[4..260]) {
        *o = d * T::from_i32(q as i8 as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed blocks, independent of gguf-py (the fixtures test the rest).
    #[test]
    fn q8_0_block_by_hand() {
        let mut b = vec![0x00, 0x38]; // f16 0.5
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let mut y = [0f64; 32];
        dequantize(GgmlType::Q8_0, &b, &mut y).unwrap();
        assert_eq!(y[0], -8.0);
        assert_eq!(y[31], 7.5);
    }

    #[test]
    fn q4_0_block_by_hand() {
        let mut b = vec![0x00, 0x40]; // f16 2.0
        b.extend([0xF1u8; 16]); // low nibble 1, high nibble 15
        let mut y = [0f32; 32];
        dequantize(GgmlType::Q4_0, &b, &mut y).unwrap();
        assert_eq!(y[0], 2.0 * (1.0 - 8.0));
        assert_eq!(y[16], 2.0 * (15.0 - 8.0));
    }

    #[test]
    fn q8_k_block_by_hand() {
        let mut b = 0.25f32.to_le_bytes().to_vec();
        b.extend((0..256).map(|i| (i as u8).wrapping_sub(128)));
        b.extend([0u8; 32]);
        let mut y = vec![0f64; 256];
        dequantize(GgmlType::Q8_K, &b, &mut y).unwrap();
        assert_eq!(y[0], -32.0);
        assert_eq!(y[255], 31.75);
    }

    #[test]
    fn refuses_by_name_and_wrong_lengths() {
        let mut y = [0f64; 256];
        let e = dequantize(GgmlType(16), &[0; 66], &mut y).unwrap_err();
        assert!(e.to_string().contains("IQ2_XXS"), "{e}");
        let e = dequantize(GgmlType::Q4_K, &[0; 143], &mut y).unwrap_err();
        assert!(e.to_string().contains("143 bytes"), "{e}");
    }
}
