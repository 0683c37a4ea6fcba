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

/// Python's `repr(float)`: the shortest text that reads back, in scientific form below 1e-4
/// and from 1e16 (`1e-05`, `0.0001`, `1.0`, `1e+16`).
pub fn python_float_repr(value: f64) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "nan".into()
        } else if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        return python_exponent(&format!("{value:e}"));
    }
    let text = value.to_string();
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

/// A value in a Python format string.
#[derive(Debug, Clone, Copy)]
pub enum FormatValue {
    Int(i64),
    Float(f64),
}

/// Python's `template.format(**values)` for the specs Keras's file paths use: `{name}`,
/// `{name:02d}`, `{name:.2f}`, `{name:.3e}`, `{name:.1%}` (fill with zeros, width, precision,
/// type d f e %); `{{` and `}}` are braces. A missing name is an error that lists the names.
pub fn format_template(template: &str, values: &[(&str, FormatValue)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        let brace = &rest[open..];
        if brace.starts_with("{{") || brace.starts_with("}}") {
            out.push_str(&brace[..1]);
            rest = &brace[2..];
            continue;
        }
        if brace.starts_with('}') {
            return Err(format!("single '}}' in {template:?}"));
        }
        let close = brace.find('}').ok_or_else(|| format!("unclosed '{{' in {template:?}"))?;
        let field = &brace[1..close];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        let value = values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).ok_or_else(|| {
            let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
            format!("no value named '{name}' for {template:?} (there are: {})", names.join(", "))
        })?;
        out.push_str(&format_spec(value, spec).map_err(|why| format!("{{{field}}} in {template:?}: {why}"))?);
        rest = &brace[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The widest field or longest precision a format spec may ask for.
const MAX_FIELD: usize = 64;

/// One value by a Python format spec `[0][width][.precision][d|f|e|%]`.
fn format_spec(value: FormatValue, spec: &str) -> Result<String, String> {
    let kind = spec.chars().last().filter(|c| c.is_ascii_alphabetic() || *c == '%');
    let body = &spec[..spec.len() - kind.map_or(0, char::len_utf8)];
    let (width_part, precision) = match body.split_once('.') {
        Some((w, p)) => (w, Some(p.parse::<usize>().map_err(|_| format!("bad precision in spec '{spec}'"))?)),
        None => (body, None),
    };
    let zero_fill = width_part.starts_with('0') && width_part.len() > 1;
    let width = if width_part.is_empty() { 0 } else { width_part.parse::<usize>().map_err(|_| format!("unsupported spec '{spec}'"))? };
    // A path's field never needs more; a huge width or precision would only allocate.
    if width > MAX_FIELD || precision.is_some_and(|p| p > MAX_FIELD) {
        return Err(format!("width and precision must be at most {MAX_FIELD} in spec '{spec}'"));
    }
    let text = match (value, kind) {
        (FormatValue::Int(v), None | Some('d')) => v.to_string(),
        (FormatValue::Int(v), Some(k)) => return format_spec(FormatValue::Float(v as f64), &format!("{body}{k}")),
        (FormatValue::Float(_), Some('d')) => return Err("format 'd' needs an integer".into()),
        (FormatValue::Float(v), None) => match precision {
            None => python_float_repr(v),
            Some(_) => return Err("a precision needs a type here (f, e or %)".into()),
        },
        (FormatValue::Float(v), Some('f')) => format!("{v:.*}", precision.unwrap_or(6)),
        (FormatValue::Float(v), Some('e')) => python_exponent(&format!("{v:.*e}", precision.unwrap_or(6))),
        (FormatValue::Float(v), Some('%')) => format!("{:.*}%", precision.unwrap_or(6), v * 100.0),
        (_, Some(other)) => return Err(format!("format type '{other}' is not supported (d, f, e, %)")),
    };
    Ok(match (zero_fill, text.strip_prefix('-')) {
        (true, Some(digits)) => format!("-{digits:0>w$}", w = width.saturating_sub(1)),
        (true, None) => format!("{text:0>width$}"),
        (false, _) => format!("{text:>width$}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_checkpoint_paths_format_like_python() {
        let values = [("epoch", FormatValue::Int(3)), ("val_loss", FormatValue::Float(0.123456)), ("loss", FormatValue::Float(1e-5))];
        let path = format_template("w.{epoch:02d}-{val_loss:.2f}-{loss}-{{x}}.h5", &values).unwrap();
        assert_eq!(path, "w.03-0.12-1e-05-{x}.h5");
        assert_eq!(format_template("{epoch:03}-{val_loss:.1e}-{val_loss:.1%}", &values).unwrap(), "003-1.2e-01-12.3%");
        assert!(format_template("{val_acc}", &values).unwrap_err().contains("epoch, val_loss, loss"));
        assert_eq!(python_float_repr(0.5), "0.5");
        assert_eq!(python_float_repr(2.0), "2.0");
        assert_eq!(python_float_repr(1e16), "1e+16");
    }

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
