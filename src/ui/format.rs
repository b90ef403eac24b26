//! Numbers and durations as the explorer prints them, in one place.

use std::time::Duration;

/// Short number for axes and labels: `1.23e-2`, `0.5`, `12.3`, `∞`.
pub fn short(v: f64) -> String {
    sig(v, 3)
}

/// `v` with `digits` significant digits, trailing zeros dropped: `4.2143`, `1.2e-5`, `∞`.
pub fn sig(v: f64, digits: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞" } else { "-∞" }.into();
    }
    let digits = digits.clamp(1, 17);
    let exp = v.abs().log10().floor() as i32;
    if (-2..3).contains(&exp) {
        let decimals = (digits as i32 - 1 - exp).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{v:.prec$e}", prec = digits - 1)
    }
}

/// Labels for `values` with the fewest significant digits (at least 3) that tell every
/// distinct value apart: `4.2143` and `4.2156` need five.
pub fn distinct(values: &[f64]) -> Vec<String> {
    let mut uniq: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    uniq.sort_by(f64::total_cmp);
    uniq.dedup();
    for digits in 3..=17 {
        let labels: Vec<String> = uniq.iter().map(|&v| sig(v, digits)).collect();
        if labels.windows(2).all(|w| w[0] != w[1]) {
            return values.iter().map(|&v| sig(v, digits)).collect();
        }
    }
    values.iter().map(|v| format!("{v:?}")).collect()
}

/// The exact value, as Rust and Python print it (shortest round trip): for thresholds, where
/// two different values must never print the same.
pub fn exact(v: f64) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else {
        sig(v, 3)
    }
}

/// `850 ms`, `12.3 s`, `4 min 05 s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{} min {:02} s", (s / 60.0) as u64, (s as u64) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(12.345), "12.3");
        assert_eq!(short(0.012345), "0.0123");
        assert_eq!(short(1.2345e-5), "1.23e-5");
        assert_eq!(short(123456.0), "1.23e5");
        assert_eq!(short(f64::INFINITY), "∞");
        assert_eq!(sig(4.21437, 5), "4.2144");
    }

    #[test]
    fn labels_tell_close_values_apart() {
        // The spread of a generated 12-layer model: 0.03 %; three digits tell these apart,
        // a closer pair needs six.
        assert_eq!(distinct(&[4.2143, 4.2156]), vec!["4.21", "4.22"]);
        assert_eq!(distinct(&[4.21431, 4.21434]), vec!["4.21431", "4.21434"]);
        assert_eq!(distinct(&[1.0, 10.0]), vec!["1", "10"]);
        assert_eq!(distinct(&[2.0, 2.0]), vec!["2", "2"]);
    }

    #[test]
    fn exact_thresholds_differ() {
        assert_ne!(exact(4.214_432_1), exact(4.214_432_2));
        assert_eq!(exact(0.25), "0.25");
    }
}
