//! One decoder layer applied to the hidden states of every lane that runs it (see
//! [`super::stream`]), reading each weight matrix once, in bands, for all their tokens.

use std::{collections::HashMap, ops::Range};

use super::{
    arch::{ArchConfig, LayerKind, Mlp, Moe},
    attention::Attention,
    kernels::{add, add_bias, gated, norm_row, rms_norm},
    reader::{Reader, Res},
    rope::Tables,
};

/// One lane's part in a layer: its hidden states (tokens × hidden, windows back to back) and
/// how this layer behaves for it.
pub struct LaneStep<'a> {
    pub h: &'a mut Vec<f32>,
    /// Token ranges of its windows within `h` (positions restart at each window).
    pub windows: &'a [Range<usize>],
    pub kind: &'a LayerKind,
}

/// Applies the layer whose tensors `name` resolves (relative name -> checkpoint name).
pub fn apply(
    arch: &ArchConfig,
    rd: &Reader,
    name: &dyn Fn(&str) -> String,
    lanes: &mut [LaneStep],
) -> Res<()> {
    let h = arch.hidden;
    let n: usize = lanes.iter().map(|l| l.h.len() / h).sum();
    let offsets: Vec<usize> = lanes
        .iter()
        .scan(0, |acc, l| {
            let o = *acc;
            *acc += l.h.len() / h;
            Some(o)
        })
        .collect();
    let eps = arch.rms_norm_eps;

    // Attention.
    let mut x = vec![0f32; n * h];
    {
        let w = rd.vector(&name("input_layernorm.weight"))?;
        for (l, &o) in lanes.iter().zip(&offsets) {
            rms_norm(l.h, &w, eps, arch.norm, &mut x[o * h..o * h + l.h.len()]);
        }
    }
    let (qd, kvd, hd) = (arch.q_dim(), arch.kv_dim(), arch.head_dim);
    let ld = qd + 2 * kvd;
    let mut qkv = vec![0f32; n * ld];
    if arch.fused {
        rd.project(
            &name("self_attn.qkv_proj.weight"),
            0..ld,
            &x,
            n,
            &mut qkv,
            ld,
            0,
        )?;
    } else {
        for (p, col, width) in [
            ("q_proj", 0, qd),
            ("k_proj", qd, kvd),
            ("v_proj", qd + kvd, kvd),
        ] {
            rd.project(
                &name(&format!("self_attn.{p}.weight")),
                0..width,
                &x,
                n,
                &mut qkv,
                ld,
                col,
            )?;
            if arch.qkv_bias {
                let b = rd.vector(&name(&format!("self_attn.{p}.bias")))?;
                add_bias(&mut qkv, ld, col, &b);
            }
        }
    }
    drop(x);
    if arch.qk_norm {
        let qn = scale_of(arch, rd.vector(&name("self_attn.q_norm.weight"))?);
        let kn = scale_of(arch, rd.vector(&name("self_attn.k_norm.weight"))?);
        use rayon::prelude::*;
        qkv.par_chunks_mut(ld).for_each(|row| {
            for head in row[..qd + kvd].chunks_mut(hd).enumerate() {
                let (i, v) = head;
                let s = if i < arch.heads { &qn } else { &kn };
                let copy = v.to_vec();
                norm_row(&copy, s, eps, v);
            }
        });
    }
    // Rotations, then attention, window by window.
    let mut attn = vec![0f32; n * qd];
    let mut tables: HashMap<(usize, usize), Tables> = HashMap::new();
    for (l, &o) in lanes.iter().zip(&offsets) {
        for w in l.windows {
            let len = w.len();
            let t = tables
                .entry((l.kind.rope, len))
                .or_insert_with(|| arch.ropes[l.kind.rope].tables(len));
            let rows = &mut qkv[(o + w.start) * ld..(o + w.end) * ld];
            rotate(rows, ld, arch.heads + arch.kv_heads, hd, t);
            let a = Attention {
                heads: arch.heads,
                kv_heads: arch.kv_heads,
                head_dim: hd,
                scale: arch.attn_scale,
                softcap: arch.attn_softcap,
                sliding_window: l.kind.sliding_window,
            };
            a.window(
                &rows[..],
                &rows[qd..],
                &rows[qd + kvd..],
                ld,
                len,
                &mut attn[(o + w.start) * qd..(o + w.end) * qd],
            );
        }
    }
    drop(qkv);
    let mut y = vec![0f32; n * h];
    rd.project(
        &name("self_attn.o_proj.weight"),
        0..h,
        &attn,
        n,
        &mut y,
        h,
        0,
    )?;
    drop(attn);
    if arch.o_bias {
        add_bias(&mut y, h, 0, &rd.vector(&name("self_attn.o_proj.bias"))?);
    }
    if arch.sandwich {
        let w = rd.vector(&name("post_attention_layernorm.weight"))?;
        let copy = y.clone();
        rms_norm(&copy, &w, eps, arch.norm, &mut y);
    }
    for (l, &o) in lanes.iter_mut().zip(&offsets) {
        let len = l.h.len();
        add(l.h, &y[o * h..o * h + len]);
    }

    // Feed-forward.
    let mut x = y;
    {
        let norm = if arch.sandwich {
            "pre_feedforward_layernorm.weight"
        } else {
            "post_attention_layernorm.weight"
        };
        let w = rd.vector(&name(norm))?;
        for (l, &o) in lanes.iter().zip(&offsets) {
            rms_norm(l.h, &w, eps, arch.norm, &mut x[o * h..o * h + l.h.len()]);
        }
    }
    let mlp = &lanes
        .first()
        .map(|l| l.kind.mlp.clone())
        .unwrap_or(Mlp::Dense);
    let mut y = match mlp {
        Mlp::Dense => dense(arch, rd, name, &x, n)?,
        Mlp::Moe(m) => moe(arch, rd, name, m, &x, n)?,
    };
    drop(x);
    if arch.sandwich {
        let w = rd.vector(&name("post_feedforward_layernorm.weight"))?;
        let copy = y.clone();
        rms_norm(&copy, &w, eps, arch.norm, &mut y);
    }
    for (l, &o) in lanes.iter_mut().zip(&offsets) {
        let len = l.h.len();
        add(l.h, &y[o * h..o * h + len]);
    }
    Ok(())
}

/// A q/k norm's multiplier (Gemma's norms scale by 1 + w).
fn scale_of(arch: &ArchConfig, w: Vec<f32>) -> Vec<f32> {
    match arch.norm {
        super::kernels::NormKind::Rms => w,
        super::kernels::NormKind::RmsOnePlus => w.into_iter().map(|v| 1.0 + v).collect(),
    }
}

/// Rotates the first `heads` head vectors of every row (queries then keys).
fn rotate(rows: &mut [f32], ld: usize, heads: usize, hd: usize, t: &Tables) {
    use rayon::prelude::*;
    rows.par_chunks_mut(ld).enumerate().for_each(|(pos, row)| {
        for v in row[..heads * hd].chunks_mut(hd) {
            t.apply(v, pos);
        }
    });
}

/// `down(act(gate(x)) · up(x))`.
fn dense(
    arch: &ArchConfig,
    rd: &Reader,
    name: &dyn Fn(&str) -> String,
    x: &[f32],
    n: usize,
) -> Res<Vec<f32>> {
    let (h, ff) = (arch.hidden, arch.intermediate);
    let mut gate = vec![0f32; n * ff];
    let mut up = vec![0f32; n * ff];
    if arch.fused {
        let w = name("mlp.gate_up_proj.weight");
        rd.project(&w, 0..ff, x, n, &mut gate, ff, 0)?;
        rd.project(&w, ff..2 * ff, x, n, &mut up, ff, 0)?;
    } else {
        rd.project(&name("mlp.gate_proj.weight"), 0..ff, x, n, &mut gate, ff, 0)?;
        rd.project(&name("mlp.up_proj.weight"), 0..ff, x, n, &mut up, ff, 0)?;
        if arch.mlp_bias {
            add_bias(&mut gate, ff, 0, &rd.vector(&name("mlp.gate_proj.bias"))?);
            add_bias(&mut up, ff, 0, &rd.vector(&name("mlp.up_proj.bias"))?);
        }
    }
    gated(&mut gate, &up, arch.act);
    drop(up);
    let mut y = vec![0f32; n * h];
    rd.project(&name("mlp.down_proj.weight"), 0..h, &gate, n, &mut y, h, 0)?;
    if arch.mlp_bias {
        add_bias(&mut y, h, 0, &rd.vector(&name("mlp.down_proj.bias"))?);
    }
    Ok(y)
}

/// Top-k routing as transformers' Mixtral and Qwen3-MoE routers: softmax over the experts in
/// f32, the k largest, renormalised when the model says so; each expert's output weighted and
/// summed in expert order. Experts no token chose are not read.
fn moe(
    arch: &ArchConfig,
    rd: &Reader,
    name: &dyn Fn(&str) -> String,
    m: &Moe,
    x: &[f32],
    n: usize,
) -> Res<Vec<f32>> {
    let (h, e, ff) = (arch.hidden, m.experts, m.intermediate);
    let mut logits = vec![0f32; n * e];
    rd.project(
        &name(&format!("{}.weight", m.router)),
        0..e,
        x,
        n,
        &mut logits,
        e,
        0,
    )?;
    let mut routed: Vec<Vec<(usize, f32)>> = vec![Vec::new(); e];
    for (t, row) in logits.chunks(e).enumerate() {
        let (chosen, weights) = route(row, m.top_k, m.normalize);
        for (&i, &w) in chosen.iter().zip(&weights) {
            routed[i].push((t, w));
        }
    }
    let mut y = vec![0f32; n * h];
    for (i, tokens) in routed.iter().enumerate() {
        if tokens.is_empty() {
            continue;
        }
        let ne = tokens.len();
        let mut xe = Vec::with_capacity(ne * h);
        for &(t, _) in tokens {
            xe.extend_from_slice(&x[t * h..(t + 1) * h]);
        }
        let base = m.expert.replace("{e}", &i.to_string());
        let [g, u, d] = m.gate_up_down.map(|p| name(&format!("{base}.{p}.weight")));
        let mut gate = vec![0f32; ne * ff];
        let mut up = vec![0f32; ne * ff];
        rd.project(&g, 0..ff, &xe, ne, &mut gate, ff, 0)?;
        rd.project(&u, 0..ff, &xe, ne, &mut up, ff, 0)?;
        gated(&mut gate, &up, arch.act);
        let mut ye = vec![0f32; ne * h];
        rd.project(&d, 0..h, &gate, ne, &mut ye, h, 0)?;
        for (&(t, w), row) in tokens.iter().zip(ye.chunks(h)) {
            for (a, b) in y[t * h..(t + 1) * h].iter_mut().zip(row) {
                *a += b * w;
            }
        }
    }
    Ok(y)
}

/// The experts one token goes to and their weights.
pub fn route(logits: &[f32], k: usize, normalize: bool) -> (Vec<usize>, Vec<f32>) {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let exp: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let probs: Vec<f32> = exp.iter().map(|v| v / sum).collect();
    let mut order: Vec<usize> = (0..probs.len()).collect();
    // Largest first; ties to the lower index, as torch.topk does on CPU.
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order.truncate(k);
    let mut w: Vec<f32> = order.iter().map(|&i| probs[i]).collect();
    if normalize {
        let s: f32 = w.iter().sum();
        w.iter_mut().for_each(|v| *v /= s);
    }
    (order, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_picks_the_largest_and_renormalises() {
        let (e, w) = route(&[0.0, 2.0, 1.0, -1.0], 2, true);
        assert_eq!(e, vec![1, 2]);
        assert!((w[0] + w[1] - 1.0).abs() < 1e-6 && w[0] > w[1]);
        let (_, raw) = route(&[0.0, 2.0, 1.0, -1.0], 2, false);
        assert!(raw[0] + raw[1] < 1.0);
    }
}
