//! Layer numbers as people write them (`12,20-21`) and the contiguous kept ranges a mergekit
//! passthrough config is built from.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Half-open runs of kept layers, in order: `[0,12) [13,20) [22,60)` for 60 layers with
/// 12, 20 and 21 dropped.
pub fn kept_ranges(num_layers: usize, dropped: &[usize]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for i in 0..num_layers {
        if dropped.contains(&i) {
            continue;
        }
        match out.last_mut() {
            Some(r) if r.end == i => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

pub fn format_ranges(ranges: &[Range<usize>]) -> String {
    ranges
        .iter()
        .map(|r| format!("[{},{})", r.start, r.end))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `[12, 20, 21]` as `12,20-21`, the spelling `--drop` takes.
pub fn format_layer_list(layers: &[usize]) -> String {
    let mut sorted = layers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if j == i {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Parses `12,20-21` into `[12, 20, 21]`.
pub fn parse_layer_list(s: &str) -> Result<Vec<usize>, ParseError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || {
            ParseError(format!(
                "{part:?} is not a layer number or range like 20-21"
            ))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// `12, 20, 21`.
pub fn join_layers(layers: &[usize]) -> String {
    layers
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_for_the_issue_example() {
        let r = kept_ranges(60, &[12, 20, 21]);
        assert_eq!(r, vec![0..12, 13..20, 22..60]);
        assert_eq!(format_ranges(&r), "[0,12) [13,20) [22,60)");
    }

    #[test]
    fn layer_lists_read_back_as_written() {
        assert_eq!(format_layer_list(&[21, 12, 20, 12]), "12,20-21");
        assert_eq!(format_layer_list(&[5, 11, 12, 19]), "5,11-12,19");
        assert_eq!(format_layer_list(&[]), "");
        let l = vec![0, 1, 2, 7, 9, 10];
        assert_eq!(parse_layer_list(&format_layer_list(&l)).unwrap(), l);
    }

    #[test]
    fn ranges_at_the_edges() {
        assert_eq!(kept_ranges(5, &[0]), vec![1..5]);
        assert_eq!(kept_ranges(5, &[4]), vec![0..4]);
        assert_eq!(kept_ranges(5, &[]), vec![0..5]);
        assert_eq!(kept_ranges(5, &[0, 1, 3, 4]), vec![2..3]);
        assert_eq!(kept_ranges(3, &[0, 1, 2]), Vec::<Range<usize>>::new());
        assert_eq!(kept_ranges(6, &[1, 2, 4]), vec![0..1, 3..4, 5..6]);
    }

    #[test]
    fn layer_lists() {
        assert_eq!(parse_layer_list("12,20-21").unwrap(), vec![12, 20, 21]);
        assert_eq!(parse_layer_list(" 3 , 1,3").unwrap(), vec![1, 3]);
        assert!(parse_layer_list("5-2").is_err());
        assert!(parse_layer_list("a").is_err());
    }
}
