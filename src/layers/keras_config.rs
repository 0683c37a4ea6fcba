//! Reading one layer's Keras `get_config()` dictionary: the typed accessors every layer's
//! `from_keras_config` uses, with Keras's defaults and the checks a hostile file needs (whole
//! numbers, bounded sizes, known strings). Both dialects arrive here: Keras 3 may wrap an
//! activation as `{"class_name": "function", "config": "relu"}`.

use anyhow::Result;
use serde_json::Value;

use super::activation::Activation;
use super::padding::Padding;

/// The largest size of any one dimension, kernel, stride, dilation, padding, filter or unit
/// count in a model configuration: far above any real model, and small enough that shape
/// arithmetic on three of them cannot overflow.
pub const MAX_DIMENSION: i64 = 1 << 20;

/// A layer's `config` object, with the class it configures (for messages).
#[derive(Clone, Copy)]
pub struct KerasConfig<'a> {
    pub class_name: &'a str,
    value: &'a Value,
}

impl<'a> KerasConfig<'a> {
    pub fn new(class_name: &'a str, value: &'a Value) -> Self {
        Self { class_name, value }
    }

    /// The whole config object, as read.
    pub fn whole(&self) -> &'a Value {
        self.value
    }

    /// The raw value under `key` (`Null` when absent).
    pub fn get(&self, key: &str) -> &'a Value {
        &self.value[key]
    }

    /// A required whole number of at least 1 (`filters`, `units`).
    pub fn size(&self, key: &str) -> Result<i64> {
        let value = self
            .get(key)
            .as_i64()
            .ok_or_else(|| invalid(key, format!("{} needs a whole number '{key}', got {}", self.class_name, self.get(key))))?;
        bounded(value, 1, &format!("'{key}'"))
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            Value::Null => Ok(default),
            value => value.as_f64().ok_or_else(|| invalid(key, format!("{}'s '{key}' must be a number, got {value}", self.class_name))),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            Value::Null => Ok(default),
            value => {
                value.as_bool().ok_or_else(|| invalid(key, format!("{}'s '{key}' must be true or false, got {value}", self.class_name)))
            }
        }
    }

    /// A pair of sizes of at least 1 (kernel sizes, strides, dilations, pool sizes), given as
    /// one number or two; `default` when absent.
    pub fn positive_pair_or(&self, key: &str, default: [i64; 2]) -> Result<[i64; 2]> {
        if self.get(key).is_null() {
            return Ok(default);
        }
        self.positive_pair(key)
    }

    pub fn positive_pair(&self, key: &str) -> Result<[i64; 2]> {
        let [a, b] = pair(self.get(key), key)?;
        Ok([bounded(a, 1, key)?, bounded(b, 1, key)?])
    }

    /// `padding: "valid" | "same"` (Keras's default `valid`).
    pub fn padding(&self) -> Result<Padding> {
        match self.get("padding").as_str().unwrap_or("valid").to_ascii_lowercase().as_str() {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            other => Err(invalid("padding", format!("padding '{other}' is not supported (valid, same)"))),
        }
    }

    /// `activation`, absent meaning linear.
    pub fn activation(&self) -> Result<Activation> {
        match self.get("activation") {
            Value::Null => Ok(Activation::Linear),
            Value::String(name) => Activation::from_keras_name(name),
            Value::Object(map) => Activation::from_keras_name(map.get("config").and_then(Value::as_str).unwrap_or("")),
            other => Err(invalid("activation", format!("unreadable activation {other}"))),
        }
    }

    /// Refuse `data_format: channels_first`: keras-tch runs channels-last models.
    pub fn require_channels_last(&self) -> Result<()> {
        match self.get("data_format").as_str() {
            None | Some("channels_last") => Ok(()),
            Some(other) => {
                Err(invalid("data_format", format!("data_format '{other}' is not supported; keras-tch runs channels_last models")))
            }
        }
    }
}

/// `value` if it is in `min..=MAX_DIMENSION`.
pub fn bounded(value: i64, min: i64, what: &str) -> Result<i64> {
    if value < min || value > MAX_DIMENSION {
        return Err(invalid(what, format!("{what} must be between {min} and {MAX_DIMENSION}, got {value}")));
    }
    Ok(value)
}

/// One number (`3`, meaning `[3, 3]`) or a pair (`[3, 2]`), as Keras's `normalize_tuple` takes.
pub fn pair(value: &Value, what: &str) -> Result<[i64; 2]> {
    let whole = |v: &Value| v.as_i64().ok_or_else(|| invalid(what, format!("{what} must be whole numbers, got {value}")));
    match value {
        Value::Number(_) => {
            let v = whole(value)?;
            Ok([v, v])
        }
        Value::Array(items) if items.len() == 2 => Ok([whole(&items[0])?, whole(&items[1])?]),
        other => Err(invalid(what, format!("{what} must be a number or a pair, got {other}"))),
    }
}

/// A configuration field keras-tch cannot take, as the typed error (the layer is named by the
/// caller's context).
pub fn invalid(field: &str, problem: String) -> anyhow::Error {
    crate::Error::InvalidConfigField { field: field.trim_matches('\'').to_string(), problem }.into()
}
