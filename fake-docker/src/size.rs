//! Docker's size syntax (`64m`, `67108864`, `64MiB`), as go-units `RAMInBytes` parses it.

use thiserror::Error;

/// Why a size string was rejected; the text is what docker prints after the flag name.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SizeError {
    #[error("invalid size: '{0}'")]
    InvalidSize(String),
    #[error("invalid suffix: '{0}'")]
    InvalidSuffix(String),
    #[error("strconv.ParseFloat: parsing \"{0}\": invalid syntax")]
    InvalidNumber(String),
}

/// Parses a memory size with binary multipliers (k = 1024), like `docker --memory`.
pub fn parse_ram_size(text: &str) -> Result<i64, SizeError> {
    // go-units splits at the last digit, dot or space; everything after is the suffix.
    let separator = text
        .char_indices()
        .filter(|(_, c)| c.is_ascii_digit() || *c == '.' || *c == ' ')
        .map(|(i, _)| i)
        .next_back()
        .ok_or_else(|| SizeError::InvalidSize(text.to_string()))?;
    let (number, suffix) = if text.as_bytes()[separator] == b' ' {
        (&text[..separator], &text[separator + 1..])
    } else {
        (&text[..=separator], &text[separator + 1..])
    };
    let value: f64 = parse_go_float(number)?;
    if value < 0.0 {
        return Err(SizeError::InvalidSize(text.to_string()));
    }
    if suffix.is_empty() {
        return Ok(value as i64);
    }
    if suffix.len() > 3 {
        return Err(SizeError::InvalidSuffix(suffix.to_string()));
    }
    let lower = suffix.to_ascii_lowercase();
    let bad = || SizeError::InvalidSuffix(lower.clone());
    let mut chars = lower.chars();
    let first = chars.next().ok_or_else(bad)?;
    if first == 'b' {
        return if lower.len() == 1 {
            Ok(value as i64)
        } else {
            Err(bad())
        };
    }
    let multiplier: f64 = match first {
        'k' => 1024f64,
        'm' => 1024f64.powi(2),
        'g' => 1024f64.powi(3),
        't' => 1024f64.powi(4),
        'p' => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    let rest = &lower[1..];
    if !(rest.is_empty() || rest == "b" || rest == "ib") {
        return Err(bad());
    }
    Ok((value * multiplier) as i64)
}

fn parse_go_float(number: &str) -> Result<f64, SizeError> {
    // Rust accepts forms Go rejects ("inf", "+1"); the split above leaves only digits,
    // dots and spaces, so a plain parse is close enough, and errors read like Go's.
    number
        .parse::<f64>()
        .map_err(|_| SizeError::InvalidNumber(number.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_suffixed_sizes() {
        assert_eq!(parse_ram_size("67108864"), Ok(67108864));
        assert_eq!(parse_ram_size("64m"), Ok(67108864));
        assert_eq!(parse_ram_size("64M"), Ok(67108864));
        assert_eq!(parse_ram_size("64MiB"), Ok(67108864));
        assert_eq!(parse_ram_size("64mb"), Ok(67108864));
        assert_eq!(parse_ram_size("1g"), Ok(1 << 30));
        assert_eq!(parse_ram_size("2k"), Ok(2048));
        assert_eq!(parse_ram_size("10b"), Ok(10));
        assert_eq!(parse_ram_size("1.5k"), Ok(1536));
        assert_eq!(parse_ram_size("64 m"), Ok(67108864));
    }

    #[test]
    fn rejects_like_go_units() {
        assert_eq!(
            parse_ram_size("12qq").unwrap_err().to_string(),
            "invalid suffix: 'qq'"
        );
        assert_eq!(
            parse_ram_size("12mx").unwrap_err().to_string(),
            "invalid suffix: 'mx'"
        );
        assert_eq!(
            parse_ram_size("12bb").unwrap_err().to_string(),
            "invalid suffix: 'bb'"
        );
        assert_eq!(
            parse_ram_size("m").unwrap_err().to_string(),
            "invalid size: 'm'"
        );
        assert_eq!(
            parse_ram_size("1.2.3m").unwrap_err().to_string(),
            "strconv.ParseFloat: parsing \"1.2.3\": invalid syntax"
        );
    }
}

/// Go's `%.{precision}g` for the values size formatting produces.
fn go_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let scientific = format!("{:.*e}", precision.saturating_sub(1), value);
    let exponent: i32 = scientific
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        let (mantissa, _) = scientific.split_once('e').unwrap_or((&scientific, ""));
        let mantissa = trim_zeros(mantissa);
        return format!(
            "{mantissa}e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        );
    }
    let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
    trim_zeros(&format!("{value:.decimals$}"))
}

fn trim_zeros(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

fn scaled(size: f64, base: f64, units: &[&str], precision: usize) -> String {
    let mut size = size;
    let mut unit = 0;
    while size >= base && unit + 1 < units.len() {
        size /= base;
        unit += 1;
    }
    format!("{}{}", go_g(size, precision), units[unit])
}

/// go-units `HumanSizeWithPrecision`: decimal units (`1.99MB` at precision 3).
pub fn human_size(bytes: u64, precision: usize) -> String {
    scaled(
        bytes as f64,
        1000.0,
        &["B", "kB", "MB", "GB", "TB", "PB", "EB"],
        precision,
    )
}

/// go-units `BytesSize`: binary units, 4 significant digits (`23.54GiB`, `340KiB`).
pub fn bytes_size(bytes: u64) -> String {
    scaled(
        bytes as f64,
        1024.0,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
        4,
    )
}

#[cfg(test)]
mod human_tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size(1985472, 3), "1.99MB");
        assert_eq!(human_size(1985472, 4), "1.985MB");
        assert_eq!(human_size(2048, 4), "2.048kB");
        assert_eq!(human_size(3072, 4), "3.072kB");
        assert_eq!(human_size(340, 3), "340B");
        assert_eq!(human_size(0, 3), "0B");
        assert_eq!(bytes_size(340 * 1024), "340KiB");
        assert_eq!(bytes_size(1 << 30), "1GiB");
        assert_eq!(bytes_size(25_275_000_000), "23.54GiB");
    }
}
