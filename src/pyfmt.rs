//! Python's and numpy's printed forms, for output that matches the notebooks' cells.

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
    fn pads_like_numpy() {
        assert_eq!(numpy_array_str(&[0.5, 0.0, 1.25]), "[0.5  0.   1.25]");
        assert_eq!(numpy_array_str(&[10.0, -1.5]), "[10.  -1.5]");
        assert_eq!(numpy_array_str(&[0.123456789]), "[0.12345679]");
    }
}
