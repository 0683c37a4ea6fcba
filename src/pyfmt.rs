//! Python's and numpy's printed forms, for output that matches the notebooks' cells.

/// Rust's scientific form (`1.2340e-4`) in Python's (`1.2340e-04`: signed, two-digit exponent).
pub fn python_exponent(rust_scientific: &str) -> String {
    let (mantissa, exponent) = rust_scientific.split_once('e').expect("scientific notation has an exponent");
    let exponent: i32 = exponent.parse().expect("integer exponent");
    format!("{mantissa}e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs())
}

/// numpy's `str()` of a 1-D float32 array (default print options: at most 8 fraction digits,
/// every element padded to a common width, zeros as `0.`): `[0.94822985 0.         1.1610144 ]`.
pub fn numpy_array_str(values: &[f32]) -> String {
    let parts: Vec<(String, String)> = values
        .iter()
        .map(|v| {
            let shortest = v.to_string();
            let text = match shortest.split_once('.') {
                Some((_, fraction)) if fraction.len() > 8 => {
                    let rounded = format!("{v:.8}");
                    rounded.trim_end_matches('0').to_string()
                }
                _ => shortest,
            };
            let (int, fraction) = text.split_once('.').unwrap_or((&text, ""));
            (int.to_string(), fraction.to_string())
        })
        .collect();
    let left = parts.iter().map(|(i, _)| i.len()).max().unwrap_or(1);
    let right = parts.iter().map(|(_, f)| f.len()).max().unwrap_or(0);
    let items: Vec<String> = parts.iter().map(|(i, f)| format!("{i:>left$}.{f:<right$}")).collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_like_python() {
        assert_eq!(python_exponent(&format!("{:.4e}", 0.00012345)), "1.2345e-04");
        assert_eq!(python_exponent("3e7"), "3e+07");
    }

    #[test]
    fn pads_like_numpy() {
        assert_eq!(numpy_array_str(&[0.5, 0.0, 1.25]), "[0.5  0.   1.25]");
        assert_eq!(numpy_array_str(&[10.0, -1.5]), "[10.  -1.5]");
        assert_eq!(numpy_array_str(&[0.12345679]), "[0.12345679]");
    }
}
