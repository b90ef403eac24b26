//! From each sample's numbers to the metrics: means over tokens and samples, and PruneMe's
//! rows. Pure arithmetic; the same function serves a whole run and merged parts, so both give
//! the same numbers for the same samples.

use super::collect::SampleStats;

/// Σ negative log-likelihood and tokens scored, per model of the perplexity criterion.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PplSums {
    pub original: (f64, usize),
    /// Per layer: the model without that layer (NaN where it could not be evaluated).
    pub without_layer: Vec<(f64, usize)>,
}

impl PplSums {
    /// Sums of two sets of samples.
    pub fn add(&mut self, other: &PplSums) {
        let add = |a: &mut (f64, usize), b: &(f64, usize)| {
            a.0 += b.0;
            a.1 += b.1;
        };
        add(&mut self.original, &other.original);
        for (a, b) in self.without_layer.iter_mut().zip(&other.without_layer) {
            add(a, b);
        }
    }
}

fn ppl((nll, count): (f64, usize)) -> f64 {
    if count == 0 {
        f64::NAN
    } else {
        (nll / count as f64).exp()
    }
}

/// Every metric of a probe, per layer or block.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Per layer i: 1 − mean over every token of every sample of cos(x_i, x_{i+1}).
    pub block_influence: Vec<f64>,
    /// `angular[n-1][l]`: mean over samples of the last token's arccos(cos(x_l, x_{l+n}))/π.
    pub angular: Vec<Vec<f64>>,
    /// `pruneme[n-1][j]`: PruneMe's row j for blocks of n (see [`pruneme_rows`]).
    pub pruneme: Vec<Vec<f64>>,
    /// Perplexity of the original and of the model without each single layer.
    pub ppl_original: Option<f64>,
    pub ppl_without_layer: Option<Vec<f64>>,
}

/// The metrics of `samples` (in sample order) for a model of `layers` layers. PruneMe's rows
/// average batches of `pruneme_batch` consecutive samples (an incomplete last batch left out,
/// as its `DataLoader(drop_last=True)` does), then the batch means.
pub fn metrics(
    layers: usize,
    samples: &[&SampleStats],
    ppl_sums: Option<&PplSums>,
    pruneme_batch: usize,
) -> Metrics {
    let tokens: usize = samples.iter().map(|s| s.tokens).sum();
    let block_influence = (0..layers)
        .map(|i| 1.0 - samples.iter().map(|s| s.cos_sum[i]).sum::<f64>() / tokens as f64)
        .collect();
    let blocks = samples.first().map_or(0, |s| s.angular.len());
    let angular = (0..blocks)
        .map(|b| {
            (0..samples[0].angular[b].len())
                .map(|l| mean(samples.iter().map(|s| s.angular[b][l])))
                .collect()
        })
        .collect();
    let tails = samples.first().map_or(0, |s| s.pruneme_tail.len());
    let pruneme = (1..=tails)
        .map(|n| {
            (0..layers - n)
                .map(|j| {
                    let per_sample: Vec<f64> = samples
                        .iter()
                        .map(|s| pruneme_value(s, layers, n, j))
                        .collect();
                    let batches: Vec<f64> = per_sample
                        .chunks_exact(pruneme_batch.max(1))
                        .map(|b| mean(b.iter().copied()))
                        .collect();
                    mean(batches.into_iter())
                })
                .collect()
        })
        .collect();
    Metrics {
        block_influence,
        angular,
        pruneme,
        ppl_original: ppl_sums.map(|p| ppl(p.original)),
        ppl_without_layer: ppl_sums.map(|p| p.without_layer.iter().map(|&s| ppl(s)).collect()),
    }
}

/// PruneMe's distance for one sample, row j of blocks of n: its entries are
/// `hidden_states[1:]`, i.e. entry j is layer j's output x_{j+1} for j < L−1 and the final
/// norm's output for j = L−1; row j compares entries j and j+n.
fn pruneme_value(s: &SampleStats, layers: usize, n: usize, j: usize) -> f64 {
    if j + n < layers - 1 {
        s.angular[n - 1][j + 1]
    } else {
        s.pruneme_tail[n - 1]
    }
}

/// PruneMe's CSV for blocks of n: `block_start,block_end,average_distance`, its row j as
/// `j+1, j+1+n` (its own numbering; the 0-based layers the row's distance skips are
/// j+1 … j+n), with the `\r\n` line ends Python's csv module writes.
pub fn pruneme_csv(rows: &[f64], n: usize) -> String {
    let mut out = String::from("block_start,block_end,average_distance\r\n");
    for (j, d) in rows.iter().enumerate() {
        out.push_str(&format!("{},{},{}\r\n", j + 1, j + 1 + n, python_float(*d)));
    }
    out
}

/// A float as Python's `str()` writes it (what `csv.DictWriter` writes): shortest round-trip
/// digits, `nan` for NaN.
fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    let s = format!("{x:?}");
    // Rust's Debug and Python's repr agree on the shortest digits; they differ on exponents
    // ("1e-5" vs "1e-05").
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0f64, 0usize);
    for x in v {
        sum += x;
        n += 1;
    }
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(tokens: usize, cos: f64, ad: f64, tail: f64) -> SampleStats {
        // 3 layers, blocks up to 2.
        SampleStats {
            tokens,
            cos_sum: vec![cos * tokens as f64; 3],
            angular: vec![vec![ad; 4], vec![ad * 2.0; 3]],
            pruneme_tail: vec![tail, tail * 2.0],
        }
    }

    #[test]
    fn means_over_tokens_and_samples() {
        let (a, b) = (sample(2, 0.9, 0.1, 0.7), sample(6, 0.5, 0.3, 0.9));
        let m = metrics(3, &[&a, &b], None, 1);
        // Tokens weigh: (2·0.9 + 6·0.5)/8 = 0.6.
        assert!((m.block_influence[0] - 0.4).abs() < 1e-15);
        // Samples weigh equally.
        assert!((m.angular[0][3] - 0.2).abs() < 1e-15);
        assert_eq!(m.angular[1].len(), 3);
        // PruneMe, n = 1: rows 0, 1 are angular[0][1], [0][2]; row 2 (= L-1-n... the last)
        // compares with the normed state.
        assert_eq!(m.pruneme[0].len(), 2);
        assert!((m.pruneme[0][0] - 0.2).abs() < 1e-15);
        assert!((m.pruneme[0][1] - 0.8).abs() < 1e-15);
        assert_eq!(m.pruneme[1], vec![1.6]);
    }

    #[test]
    fn pruneme_batches_drop_the_incomplete_last() {
        let s = [
            sample(2, 0.0, 0.0, 1.0),
            sample(2, 0.0, 0.0, 2.0),
            sample(2, 0.0, 0.0, 9.0),
        ];
        let refs: Vec<&SampleStats> = s.iter().collect();
        assert_eq!(metrics(3, &refs, None, 2).pruneme[0][1], 1.5);
        assert_eq!(metrics(3, &refs, None, 1).pruneme[0][1], 4.0);
        assert!(metrics(3, &refs, None, 4).pruneme[0][1].is_nan());
    }

    #[test]
    fn csv_as_python_writes_it() {
        let csv = pruneme_csv(&[0.25, 1e-5, f64::NAN, 0.1 + 0.2], 2);
        assert_eq!(
            csv,
            "block_start,block_end,average_distance\r\n1,3,0.25\r\n2,4,1e-05\r\n3,5,nan\r\n\
             4,6,0.30000000000000004\r\n"
        );
    }

    #[test]
    fn perplexities_from_sums() {
        let mut p = PplSums {
            original: (2.0, 2),
            without_layer: vec![(4.0, 2), (0.0, 0)],
        };
        p.add(&p.clone());
        let m = metrics(3, &[&sample(1, 0.0, 0.0, 0.0)], Some(&p), 1);
        assert!((m.ppl_original.unwrap() - 1f64.exp()).abs() < 1e-12);
        let w = m.ppl_without_layer.unwrap();
        assert!((w[0] - 2f64.exp()).abs() < 1e-12 && w[1].is_nan());
    }
}
