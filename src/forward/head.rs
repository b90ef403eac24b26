//! The final norm and the output head, applied a band of vocabulary rows at a time with a
//! running log-sum-exp per token, so neither the head in f32 nor tokens × vocab logits are
//! ever held whole (unless a caller asks to see the logits).

use super::{
    arch::ArchConfig,
    kernels::{max_and_sum_exp, rms_norm, softcap_all},
    reader::{Reader, Res},
};

/// Per token of the hidden states: −log p(target), where a token has a target (the next token
/// of its window).
pub struct Scored {
    /// NLL of each row's target; `NaN` for rows without one (the last of each window).
    pub nll: Vec<f64>,
    /// rows × vocab logits, when asked for.
    pub logits: Option<Vec<f32>>,
}

/// Scores `h` (rows × hidden). `targets[r]` is the token row r predicts, if any.
#[allow(clippy::too_many_arguments)]
pub fn score(
    arch: &ArchConfig,
    rd: &Reader,
    norm: &str,
    head: &str,
    h: &[f32],
    targets: &[Option<u32>],
    keep_logits: bool,
    observe: &mut dyn FnMut(&[f32]),
) -> Res<Scored> {
    let hidden = arch.hidden;
    let n = h.len() / hidden;
    let mut x = vec![0f32; h.len()];
    rms_norm(h, &rd.vector(norm)?, arch.rms_norm_eps, arch.norm, &mut x);
    observe(&x);
    let vocab = arch.vocab;
    // Band rows: bounded by the weight band and by the logits band.
    let rows = (rd.band_elems / hidden.max(1))
        .min(rd.band_elems / n.max(1))
        .clamp(1, vocab);
    let mut max = vec![f64::NEG_INFINITY; n];
    let mut sum = vec![0f64; n];
    let mut target = vec![f64::NAN; n];
    let mut logits = keep_logits.then(|| vec![0f32; n * vocab]);
    let mut band = vec![0f32; n * rows];
    let mut start = 0;
    while start < vocab {
        let end = (start + rows).min(vocab);
        let w = end - start;
        rd.project(head, start..end, &x, n, &mut band, w, 0)?;
        let part = &mut band[..n * w];
        if let Some(cap) = arch.final_softcap {
            softcap_all(part, cap);
        }
        for (r, row) in part.chunks(w).enumerate() {
            let (m, s) = max_and_sum_exp(row);
            let m = m as f64;
            if m > max[r] {
                sum[r] *= (max[r] - m).exp();
                max[r] = m;
            }
            sum[r] += s * (m - max[r]).exp();
            if let Some(t) = targets[r]
                && (start..end).contains(&(t as usize))
            {
                target[r] = row[t as usize - start] as f64;
            }
            if let Some(l) = logits.as_mut() {
                l[r * vocab + start..r * vocab + end].copy_from_slice(row);
            }
        }
        start = end;
    }
    let nll = (0..n)
        .map(|r| match targets[r] {
            Some(_) => max[r] + sum[r].ln() - target[r],
            None => f64::NAN,
        })
        .collect();
    Ok(Scored { nll, logits })
}
