//! Rotary position embeddings as transformers computes them (`modeling_rope_utils`): the
//! inverse frequencies of every `rope_type` these model types accept, the attention factor
//! that scales cos/sin, and the rotate-half application to the first `dim` features of a head.

use serde_json::Value;

/// One rotary embedding's parameters, read from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    pub theta: f64,
    /// Rotated features per head (head_dim × partial_rotary_factor).
    pub dim: usize,
    pub scaling: Scaling,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scaling {
    Default,
    Linear {
        factor: f64,
    },
    /// NTK-aware scaling: differs from the default only past `max_position_embeddings`, which
    /// no window reaches (windows are capped at the context).
    Dynamic {
        factor: f64,
        max_positions: f64,
    },
    Yarn {
        factor: f64,
        attention_factor: f64,
        beta_fast: f64,
        beta_slow: f64,
        original_max_positions: f64,
        truncate: bool,
    },
    /// Short factors for windows up to `original_max_positions`, long ones beyond.
    LongRope {
        short: Vec<f64>,
        long: Vec<f64>,
        attention_factor: f64,
        original_max_positions: usize,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_positions: f64,
    },
}

impl Rope {
    /// Reads a rope parameter block (`rope_scaling` or `rope_parameters`, already merged with
    /// `rope_theta`) the way `standardize_rope_params` completes it. `top` is the config
    /// (for `original_max_position_embeddings` and `max_position_embeddings`).
    pub fn parse(block: &Value, top: &Value, dim: usize) -> Result<Rope, String> {
        let num = |k: &str| block.get(k).and_then(Value::as_f64);
        let need = |k: &str| num(k).ok_or_else(|| format!("rope scaling: `{k}` missing"));
        let theta = num("rope_theta").ok_or("rope_theta missing")?;
        let kind = block
            .get("rope_type")
            .or_else(|| block.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let max_positions = top
            .get("max_position_embeddings")
            .and_then(Value::as_f64)
            .unwrap_or(2048.0);
        // transformers prefers the config's top-level value, then the block's, then the context.
        let original = top
            .get("original_max_position_embeddings")
            .and_then(Value::as_f64)
            .or_else(|| num("original_max_position_embeddings"))
            .unwrap_or(max_positions);
        let scaling = match kind {
            "default" => Scaling::Default,
            "linear" => Scaling::Linear {
                factor: need("factor")?,
            },
            "dynamic" => Scaling::Dynamic {
                factor: need("factor")?,
                max_positions,
            },
            "yarn" => {
                let factor = num("factor").unwrap_or(max_positions / original);
                let mscale = num("mscale").filter(|v| *v != 0.0);
                let mscale_all = num("mscale_all_dim").filter(|v| *v != 0.0);
                let get = |scale: f64, m: f64| {
                    if scale <= 1.0 {
                        1.0
                    } else {
                        0.1 * m * scale.ln() + 1.0
                    }
                };
                let attention_factor = match (num("attention_factor"), mscale, mscale_all) {
                    (Some(a), _, _) => a,
                    (None, Some(m), Some(a)) => get(factor, m) / get(factor, a),
                    _ => get(factor, 1.0),
                };
                Scaling::Yarn {
                    factor,
                    attention_factor,
                    beta_fast: num("beta_fast").filter(|v| *v != 0.0).unwrap_or(32.0),
                    beta_slow: num("beta_slow").filter(|v| *v != 0.0).unwrap_or(1.0),
                    original_max_positions: original,
                    truncate: block
                        .get("truncate")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                }
            }
            "longrope" | "su" => {
                let list = |k: &str| -> Result<Vec<f64>, String> {
                    let v: Option<Vec<f64>> = block
                        .get(k)
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_f64).collect());
                    match v {
                        Some(v) if v.len() == dim / 2 => Ok(v),
                        Some(v) => Err(format!(
                            "rope scaling: `{k}` has {} entries, the rotary dimension needs {}",
                            v.len(),
                            dim / 2
                        )),
                        None => Err(format!("rope scaling: `{k}` missing")),
                    }
                };
                let factor = num("factor").unwrap_or(max_positions / original);
                let attention_factor = num("attention_factor").unwrap_or(if factor <= 1.0 {
                    1.0
                } else {
                    (1.0 + factor.ln() / original.ln()).sqrt()
                });
                Scaling::LongRope {
                    short: list("short_factor")?,
                    long: list("long_factor")?,
                    attention_factor,
                    original_max_positions: original as usize,
                }
            }
            "llama3" => Scaling::Llama3 {
                factor: need("factor")?,
                low_freq_factor: need("low_freq_factor")?,
                high_freq_factor: need("high_freq_factor")?,
                original_max_positions: original,
            },
            other => return Err(format!("rope scaling {other:?} is not supported")),
        };
        Ok(Rope {
            theta,
            dim,
            scaling,
        })
    }

    /// `inv_freq` (dim/2 values, f32 like transformers) and the attention factor for a window
    /// of `len` tokens.
    pub fn inv_freq(&self, len: usize) -> (Vec<f32>, f32) {
        let dim = self.dim as f32;
        let base = self.theta as f32;
        // base ** (arange(0, dim, 2) / dim) in f32.
        let pos_freqs: Vec<f32> = (0..self.dim)
            .step_by(2)
            .map(|i| base.powf(i as f32 / dim))
            .collect();
        let plain = || pos_freqs.iter().map(|p| 1.0 / p).collect::<Vec<f32>>();
        match &self.scaling {
            Scaling::Default | Scaling::Dynamic { .. } => (plain(), 1.0),
            Scaling::Linear { factor } => (
                plain().into_iter().map(|f| f / *factor as f32).collect(),
                1.0,
            ),
            Scaling::Yarn {
                factor,
                attention_factor,
                beta_fast,
                beta_slow,
                original_max_positions,
                truncate,
            } => {
                let d = self.dim as f64;
                let corr = |rot: f64| {
                    d * (original_max_positions / (rot * 2.0 * std::f64::consts::PI)).ln()
                        / (2.0 * self.theta.ln())
                };
                let (mut low, mut high) = (corr(*beta_fast), corr(*beta_slow));
                if *truncate {
                    low = low.floor();
                    high = high.ceil();
                }
                let (low, mut high) = (low.max(0.0), high.min(d - 1.0));
                if low == high {
                    high += 0.001;
                }
                let inv = pos_freqs
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| {
                        let ramp =
                            ((i as f32 - low as f32) / (high as f32 - low as f32)).clamp(0.0, 1.0);
                        let extra = 1.0 - ramp;
                        let interp = 1.0 / (*factor as f32 * p);
                        interp * (1.0 - extra) + (1.0 / p) * extra
                    })
                    .collect();
                (inv, *attention_factor as f32)
            }
            Scaling::LongRope {
                short,
                long,
                attention_factor,
                original_max_positions,
            } => {
                let ext = if len > *original_max_positions {
                    long
                } else {
                    short
                };
                let shape: Vec<f32> = (0..self.dim)
                    .step_by(2)
                    .map(|i| base.powf(i as f32 / dim))
                    .collect();
                let inv = ext
                    .iter()
                    .zip(shape)
                    .map(|(&e, s)| 1.0 / (e as f32 * s))
                    .collect();
                (inv, *attention_factor as f32)
            }
            Scaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_positions,
            } => {
                let (factor, low, high, old) = (
                    *factor as f32,
                    *low_freq_factor as f32,
                    *high_freq_factor as f32,
                    *original_max_positions as f32,
                );
                let (low_wavelen, high_wavelen) = (old / low, old / high);
                let inv = plain()
                    .into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect();
                (inv, 1.0)
            }
        }
    }

    /// cos and sin tables (`len` × dim/2) for positions 0..len of a window, scaled by the
    /// attention factor.
    pub fn tables(&self, len: usize) -> Tables {
        let (inv, scale) = self.inv_freq(len);
        let half = inv.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for p in 0..len {
            for &f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos() * scale);
                sin.push(a.sin() * scale);
            }
        }
        Tables { half, cos, sin }
    }
}

/// Precomputed rotations of one window.
#[derive(Debug, Clone)]
pub struct Tables {
    half: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Tables {
    /// Rotates the first `2·half` features of one head's vector at position `pos` (rotate-half
    /// pairing: feature i with i + half); the rest pass through.
    #[inline]
    pub fn apply(&self, v: &mut [f32], pos: usize) {
        let h = self.half;
        let (c, s) = (
            &self.cos[pos * h..(pos + 1) * h],
            &self.sin[pos * h..(pos + 1) * h],
        );
        for i in 0..h {
            let (a, b) = (v[i], v[i + h]);
            v[i] = a * c[i] - b * s[i];
            v[i + h] = b * c[i] + a * s[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn llama3_keeps_high_frequencies_and_divides_low_ones() {
        let block = json!({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16});
        let r = Rope::parse(&block, &json!({}), 16).unwrap();
        let (inv, s) = r.inv_freq(8);
        assert_eq!(s, 1.0);
        let plain = 1.0 / 500000f32.powf(14.0 / 16.0);
        assert!((inv[7] - plain / 8.0).abs() < 1e-12);
    }

    #[test]
    fn longrope_switches_factors_past_the_original_context() {
        let block = json!({"rope_type": "longrope", "rope_theta": 10000.0,
            "short_factor": [1.0, 1.0], "long_factor": [2.0, 4.0]});
        let top = json!({"max_position_embeddings": 64, "original_max_position_embeddings": 16});
        let r = Rope::parse(&block, &top, 4).unwrap();
        let (short, a) = r.inv_freq(16);
        let (long, _) = r.inv_freq(17);
        assert_eq!(short[0], 1.0);
        assert_eq!(long[0], 0.5);
        assert!((a as f64 - (1.0 + 4f64.ln() / 16f64.ln()).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn rotation_pairs_features_half_apart() {
        let r = Rope {
            theta: 10000.0,
            dim: 2,
            scaling: Scaling::Default,
        };
        let t = r.tables(2);
        let mut v = [1.0, 0.0, 7.0];
        t.apply(&mut v, 1);
        assert!((v[0] - 1f32.cos()).abs() < 1e-6 && (v[1] - 1f32.sin()).abs() < 1e-6);
        assert_eq!(v[2], 7.0);
    }
}
