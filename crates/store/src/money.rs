//! Amounts of money as integer micro-dollars: exact, never floating point.

/// US dollars times 1,000,000.
pub type Micros = i64;

/// Parses a non-negative dollar amount such as `5`, `12.5` or `0.002` into micro-dollars.
pub fn parse_usd(text: &str) -> Result<Micros, String> {
    let text = text.trim().trim_start_matches('$');
    let bad = || format!("'{text}' is not a dollar amount (examples: 5, 12.50, 0.002)");
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if whole.is_empty() && fraction.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
        || fraction.len() > 6
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let padded = format!("{fraction:0<6}");
    let fraction: i64 = padded.parse().map_err(|_| bad())?;
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(bad)
}

/// Formats micro-dollars as `$12.50` (two decimals, more when needed).
pub fn format_usd(micros: Micros) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let whole = abs / 1_000_000;
    let fraction = abs % 1_000_000;
    let mut frac = format!("{fraction:06}");
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{sign}${whole}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_dollars_exactly() {
        assert_eq!(parse_usd("5"), Ok(5_000_000));
        assert_eq!(parse_usd("12.5"), Ok(12_500_000));
        assert_eq!(parse_usd("0.002"), Ok(2_000));
        assert_eq!(parse_usd("$20.00"), Ok(20_000_000));
        assert!(parse_usd("-1").is_err());
        assert!(parse_usd("1.0000001").is_err());
        assert!(parse_usd("abc").is_err());
        assert!(parse_usd("").is_err());
        assert_eq!(format_usd(12_500_000), "$12.50");
        assert_eq!(format_usd(2_000), "$0.002");
        assert_eq!(format_usd(0), "$0.00");
    }
}
