//! Checks of numeric flags at parse time, so a value that cannot mean anything (`--batch-size
//! 0`, `--lr nan`, `--validation-split 2`) is refused with clap's usage message before any
//! work starts, instead of giving a panic or a silently wrong result later.

/// A whole number ≥ 1 (batch sizes, limits).
pub fn at_least_one_i64(text: &str) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(value) if value >= 1 => Ok(value),
        Ok(value) => Err(format!("must be at least 1, got {value}")),
        Err(_) => Err(format!("'{text}' is not a whole number")),
    }
}

/// A whole number ≥ 1, as a count.
pub fn at_least_one_usize(text: &str) -> Result<usize, String> {
    at_least_one_i64(text).map(|value| value as usize)
}

/// A fraction in [0, 1) (Keras's `validation_split`, where 1 would leave nothing to train on;
/// Dropout's `rate`).
pub fn fraction(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if (0.0..1.0).contains(&value) => Ok(value),
        Ok(value) => Err(format!("must be at least 0 and below 1, got {value}")),
        Err(_) => Err(format!("'{text}' is not a number")),
    }
}

/// A finite number > 0 (learning rates, epsilons).
pub fn positive_finite(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        Ok(value) => Err(format!("must be a finite number above 0, got {value}")),
        Err(_) => Err(format!("'{text}' is not a number")),
    }
}
