//! Sizes for people: `68.8 GB`, `34.4B`, and `5GB` / `2GiB` read back.

/// `68.8 GB`, `14.7 MB` (powers of 1000, as model cards count).
pub fn human_bytes(b: u64) -> String {
    scaled(b, [" B", " kB", " MB", " GB"])
}

/// `34.4B`, `135.0M`, `12.3K`.
pub fn human_count(n: u64) -> String {
    scaled(n, ["", "K", "M", "B"])
}

/// One decimal in the largest power of 1000 that fits, with that power's suffix.
fn scaled(n: u64, suffixes: [&str; 4]) -> String {
    let x = n as f64;
    for (scale, suffix) in [(1e9, suffixes[3]), (1e6, suffixes[2]), (1e3, suffixes[1])] {
        if x >= scale {
            return format!("{:.1}{suffix}", x / scale);
        }
    }
    format!("{n}{}", suffixes[0])
}

/// `5GB`, `500M`, `2GiB`, `123456`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit (use e.g. 5GB, 500MB, 2GiB or bytes)"
            ));
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 5GB, 500MB or 1000000"))?;
    let bytes = (n * mult as f64).round();
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("{s:?}: the shard size must be at least one byte"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_count(34_400_000_000), "34.4B");
        assert_eq!(human_count(135_000_000), "135.0M");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_bytes(68_800_000_000), "68.8 GB");
        assert_eq!(human_bytes(1_500), "1.5 kB");
        assert_eq!(human_bytes(12), "12 B");
    }

    #[test]
    fn shard_sizes() {
        assert_eq!(parse_size("5GB"), Ok(5_000_000_000));
        assert_eq!(parse_size("5G"), Ok(5_000_000_000));
        assert_eq!(parse_size("500M"), Ok(500_000_000));
        assert_eq!(parse_size("100K"), Ok(100_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("123456"), Ok(123_456));
        assert!(parse_size("0").is_err());
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("GB").is_err());
        assert!(parse_size("-5GB").is_err());
    }
}
