//! The per-sample numbers behind the layer metrics, collected from the hidden states as the
//! streamed pass computes them (a [`HiddenObserver`] on the original model's lane), so no
//! layer's states are stored: per layer only a sum of cosines per sample, and the last token's
//! state of the `max_block + 1` most recent layer inputs per sample (the angular distances of
//! blocks of up to `max_block` layers end there).
//!
//! Notation: x_k is the input of layer k for k < L, and x_L the last layer's output *before*
//! the final norm; e is the final norm's output (what transformers returns as the last of
//! `hidden_states`).

use std::{collections::VecDeque, ops::Range};

use serde::{Deserialize, Serialize};

use crate::forward::{HiddenObserver, Site};

/// The choice index of the original model in the probe's pass (the others, if any, are the
/// single-layer removals of the perplexity criterion).
pub(crate) const ORIGINAL: usize = 0;

/// One sample's share of every metric; means over samples are taken only at the end, so parts
/// computed on different machines merge exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleStats {
    /// Tokens of the sample (all of them enter Block Influence).
    pub tokens: usize,
    /// Per layer i: Σ over the sample's tokens of cos(x_i, x_{i+1}) (f64).
    #[serde(with = "floats")]
    pub cos_sum: Vec<f64>,
    /// `angular[n-1][l]` = arccos(cos(x_l, x_{l+n}))/π at the sample's last token, n = 1..=
    /// max_block, l = 0..=L-n.
    #[serde(with = "nested")]
    pub angular: Vec<Vec<f64>>,
    /// `pruneme_tail[n-1]` = the same distance between x_{L-n} and e (PruneMe's last row for
    /// blocks of n, which compares with the normed state), n = 1..=min(max_block, L-1).
    #[serde(with = "floats")]
    pub pruneme_tail: Vec<f64>,
}

/// arccos(cos(a, b))/π in f64, the cosine clamped to [-1, 1] (as PruneMe clamps it). NaN when
/// either vector is zero.
pub(crate) fn angular_distance(a: &[f32], b: &[f32]) -> f64 {
    cosine(a, b).clamp(-1.0, 1.0).acos() / std::f64::consts::PI
}

/// cos(a, b) in f64.
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// Sees the original model's lane and keeps each sample's numbers.
pub(crate) struct Collector {
    layers: usize,
    max_block: usize,
    /// Each sample's rows within the lane (the samples back to back).
    rows: Vec<Range<usize>>,
    stats: Vec<SampleStats>,
    /// Per sample: the last token's x_k for the most recent k, oldest first, at most
    /// `max_block + 1` of them.
    recent: Vec<VecDeque<Vec<f32>>>,
    /// The next layer expected (the pass calls in layer order).
    next: usize,
    finished: bool,
    problem: Option<String>,
}

impl Collector {
    /// For `layers` layers, blocks of up to `max_block` (1..=layers), samples of these
    /// lengths (in pass order).
    pub(crate) fn new(layers: usize, max_block: usize, lengths: &[usize]) -> Collector {
        let max_block = max_block.clamp(1, layers.max(1));
        let mut at = 0;
        let rows = lengths
            .iter()
            .map(|&n| {
                at += n;
                at - n..at
            })
            .collect();
        let stats = lengths
            .iter()
            .map(|&tokens| SampleStats {
                tokens,
                cos_sum: vec![0.0; layers],
                angular: (1..=max_block)
                    .map(|n| vec![f64::NAN; layers + 1 - n])
                    .collect(),
                pruneme_tail: vec![f64::NAN; max_block.min(layers.saturating_sub(1))],
            })
            .collect();
        Collector {
            layers,
            max_block,
            rows,
            stats,
            recent: vec![VecDeque::new(); lengths.len()],
            next: 0,
            finished: false,
            problem: None,
        }
    }

    /// The samples' numbers, once the pass reached the final norm; else why not.
    pub(crate) fn finish(self) -> Result<Vec<SampleStats>, String> {
        if let Some(p) = self.problem {
            return Err(p);
        }
        if !self.finished || self.next != self.layers {
            return Err(format!(
                "the pass stopped after {} of {} layers",
                self.next, self.layers
            ));
        }
        Ok(self.stats)
    }

    /// x_k arrived for every sample (its last token's row `last` of `states`): the distances
    /// of the blocks that end at k.
    fn push_state(&mut self, k: usize, states: &[f32], hidden: usize) {
        for (s, rows) in self.rows.iter().enumerate() {
            let last = rows.end - 1;
            let x = states[last * hidden..(last + 1) * hidden].to_vec();
            let recent = &mut self.recent[s];
            // recent[j] is x_{k - len + j}.
            let len = recent.len();
            for n in 1..=self.max_block.min(len) {
                self.stats[s].angular[n - 1][k - n] = angular_distance(&recent[len - n], &x);
            }
            recent.push_back(x);
            if recent.len() > self.max_block + 1 {
                recent.pop_front();
            }
        }
    }

    fn fail(&mut self, problem: String) {
        self.problem.get_or_insert(problem);
    }
}

impl HiddenObserver for Collector {
    fn layer(&mut self, site: &Site, input: &[f32], output: &[f32]) {
        if !site.choices.contains(&ORIGINAL) || self.problem.is_some() {
            return;
        }
        let hidden = site.hidden;
        let rows = self.rows.last().map_or(0, |r| r.end);
        if site.layer != self.next || input.len() != rows * hidden || output.len() != input.len() {
            self.fail(format!(
                "the probe expected layer {} with {rows} rows; the pass gave layer {} with {} \
                 rows",
                self.next,
                site.layer,
                input.len() / hidden.max(1)
            ));
            return;
        }
        let i = site.layer;
        for (s, r) in self.rows.iter().enumerate() {
            let mut sum = 0f64;
            for t in r.clone() {
                let span = t * hidden..(t + 1) * hidden;
                sum += cosine(&input[span.clone()], &output[span]);
            }
            self.stats[s].cos_sum[i] = sum;
        }
        self.push_state(i, input, hidden);
        if i + 1 == self.layers {
            self.push_state(self.layers, output, hidden);
        }
        self.next += 1;
    }

    fn final_norm(&mut self, choices: &[usize], _: &[Range<usize>], normed: &[f32]) {
        if !choices.contains(&ORIGINAL) || self.problem.is_some() {
            return;
        }
        let rows = self.rows.last().map_or(0, |r| r.end);
        if self.next != self.layers || rows == 0 || !normed.len().is_multiple_of(rows) {
            self.fail("the final norm came before the last layer".into());
            return;
        }
        let hidden = normed.len() / rows;
        for (s, r) in self.rows.iter().enumerate() {
            let last = r.end - 1;
            let e = &normed[last * hidden..(last + 1) * hidden];
            // recent ends with x_L; x_{L-n} is n places before it.
            let recent = &self.recent[s];
            for (n, slot) in (1..).zip(self.stats[s].pruneme_tail.iter_mut()) {
                if let Some(x) = recent.len().checked_sub(1 + n).map(|j| &recent[j]) {
                    *slot = angular_distance(x, e);
                }
            }
        }
        // The states are no longer needed.
        self.recent.iter_mut().for_each(VecDeque::clear);
        self.finished = true;
    }
}

/// f64 lists in JSON with non-finite values as `null` (JSON has no NaN), read back as NaN.
pub(crate) mod floats {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|x| x.is_finite().then_some(*x))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(d)?
            .into_iter()
            .map(|x| x.unwrap_or(f64::NAN))
            .collect())
    }
}

/// [`floats`] for lists of lists.
pub(crate) mod nested {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|r| {
                r.iter()
                    .map(|x| x.is_finite().then_some(*x))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        Ok(Vec::<Vec<Option<f64>>>::deserialize(d)?
            .into_iter()
            .map(|r| r.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_of_known_angles() {
        assert!((angular_distance(&[1.0, 0.0], &[0.0, 2.0]) - 0.5).abs() < 1e-15);
        assert!((angular_distance(&[1.0, 0.0], &[-3.0, 0.0]) - 1.0).abs() < 1e-15);
        // Parallel vectors: 0 up to acos's sensitivity near 1 (acos(1 - ε) ≈ √(2ε)).
        assert!(angular_distance(&[1.0, 1.0], &[2.0, 2.0]).abs() < 1e-8);
        let third = angular_distance(&[1.0, 0.0], &[0.5, 3f32.sqrt() / 2.0]);
        assert!((third - 1.0 / 3.0).abs() < 1e-7, "{third}");
        assert!(angular_distance(&[0.0, 0.0], &[1.0, 0.0]).is_nan());
    }

    /// Feeds a 3-layer model's states by hand: 2 samples (2 and 3 tokens), hidden 2, each
    /// layer rotating every token by a known angle.
    #[test]
    fn collects_each_samples_numbers_from_the_lane() {
        let rot = |v: [f32; 2], a: f32| {
            [
                v[0] * a.cos() - v[1] * a.sin(),
                v[0] * a.sin() + v[1] * a.cos(),
            ]
        };
        let angles = [0.1f32, 0.2, 0.4];
        let mut c = Collector::new(3, 2, &[2, 3]);
        let mut x: Vec<[f32; 2]> = vec![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 3.0]];
        let windows = [0..2, 2..5];
        for (l, &a) in angles.iter().enumerate() {
            let y: Vec<[f32; 2]> = x.iter().map(|&v| rot(v, a)).collect();
            let flat = |v: &[[f32; 2]]| v.iter().flatten().copied().collect::<Vec<f32>>();
            let site = Site {
                choices: &[0],
                layer: l,
                source_layer: l,
                hidden: 2,
                windows: &windows,
            };
            c.layer(&site, &flat(&x), &flat(&y));
            x = y;
        }
        // The final norm: a reflection, 180° from x_L's direction for the first sample's last.
        let normed: Vec<f32> = x.iter().flat_map(|v| [-v[0], -v[1]]).collect();
        c.final_norm(&[0], &windows, &normed);
        let stats = c.finish().unwrap();
        let pi = std::f64::consts::PI;
        for s in &stats {
            for (l, &a) in angles.iter().enumerate() {
                let want = s.tokens as f64 * (a as f64).cos();
                assert!((s.cos_sum[l] - want).abs() < 1e-6);
            }
            // Blocks of 1 at l: angle of layer l; blocks of 2: the two angles summed.
            for (l, &a) in angles.iter().enumerate() {
                assert!((s.angular[0][l] - a as f64 / pi).abs() < 1e-6);
            }
            assert!((s.angular[1][0] - 0.3 / pi).abs() < 1e-6);
            assert!((s.angular[1][1] - 0.6 / pi).abs() < 1e-6);
            assert_eq!(s.angular[1].len(), 2);
            // PruneMe's tail: x_{L-1} against -x_L: 180° - 0.4 rad; x_{L-2}: 180° - 0.6.
            assert!((s.pruneme_tail[0] - (pi - 0.4) / pi).abs() < 1e-6);
            assert!((s.pruneme_tail[1] - (pi - 0.6) / pi).abs() < 1e-6);
        }
        assert_eq!(stats[0].tokens, 2);
        assert_eq!(stats[1].tokens, 3);
    }

    #[test]
    fn other_lanes_are_ignored_and_a_short_pass_is_an_error() {
        let mut c = Collector::new(2, 1, &[2]);
        let site = Site {
            choices: &[1],
            layer: 0,
            source_layer: 1,
            hidden: 1,
            windows: &[],
        };
        c.layer(&site, &[1.0, 2.0], &[1.0, 2.0]);
        assert!(c.finish().unwrap_err().contains("after 0 of 2"));
    }

    #[test]
    fn nan_survives_json_as_null() {
        let s = SampleStats {
            tokens: 1,
            cos_sum: vec![f64::NAN, 0.5],
            angular: vec![vec![0.25, f64::NAN]],
            pruneme_tail: vec![],
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("null"), "{text}");
        let back: SampleStats = serde_json::from_str(&text).unwrap();
        assert!(back.cos_sum[0].is_nan() && back.angular[0][1].is_nan());
        assert_eq!(back.cos_sum[1], 0.5);
    }
}
