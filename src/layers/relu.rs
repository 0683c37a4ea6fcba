//! Keras's `ReLU` layer (`keras/src/layers/activations/relu.py`, tf-keras's `backend.relu`):
//! `max_value` caps the output, values at or below `threshold` are zeroed, and below it
//! `negative_slope` leaks: `f(x) = min(x, max_value)` for `x > threshold`, `0` at the threshold,
//! `negative_slope · (x − threshold)` below. `LeakyReLU` is the same function with only a slope.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::Tensor;

use super::keras_config::KerasConfig;
use super::registry::FromKerasConfig;
use super::{single_input, Layer, Shape};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReLU {
    pub max_value: Option<f64>,
    pub negative_slope: f64,
    pub threshold: f64,
}

impl Default for ReLU {
    /// `ReLU()`: the plain rectifier.
    fn default() -> Self {
        Self { max_value: None, negative_slope: 0.0, threshold: 0.0 }
    }
}

impl FromKerasConfig for ReLU {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        let max_value = match config.get("max_value") {
            Value::Null => None,
            _ => Some(config.f64_or("max_value", 0.0)?),
        };
        let relu = Self { max_value, negative_slope: config.f64_or("negative_slope", 0.0)?, threshold: config.f64_or("threshold", 0.0)? };
        // Keras's own checks (ValueError in its constructor).
        let non_negative = |value: f64| value >= 0.0; // false for NaN
        if relu.max_value.is_some_and(|m| !non_negative(m)) || !non_negative(relu.negative_slope) || !non_negative(relu.threshold) {
            bail!("ReLU needs max_value, negative_slope and threshold of at least 0, got {relu:?}");
        }
        Ok(relu)
    }
}

impl Layer for ReLU {
    fn class_name(&self) -> &'static str {
        "ReLU"
    }

    fn keras_config(&self) -> Value {
        json!({ "max_value": self.max_value, "negative_slope": self.negative_slope, "threshold": self.threshold })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(single_input(self.class_name(), inputs)?.clone())
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        let xs = inputs[0];
        let mut ys = if self.threshold == 0.0 { xs.relu() } else { xs * xs.gt(self.threshold).to_kind(xs.kind()) };
        if let Some(max_value) = self.max_value {
            ys = ys.clamp_max(max_value);
        }
        // Not in place: autograd needs the rectifier's output as it was.
        if self.negative_slope == 0.0 {
            ys
        } else {
            ys - (xs.neg() + self.threshold).relu() * self.negative_slope
        }
    }
}

/// Keras's `LeakyReLU` layer (`keras/src/layers/activations/leaky_relu.py`): `x` above zero,
/// `negative_slope · x` below — the [`ReLU`] with only a slope. tf.keras calls the slope `alpha`
/// (default 0.3), Keras 3 `negative_slope` (same default, and it still reads `alpha`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyReLU {
    pub negative_slope: f64,
}

impl LeakyReLU {
    fn as_relu(&self) -> ReLU {
        ReLU { negative_slope: self.negative_slope, ..ReLU::default() }
    }
}

impl FromKerasConfig for LeakyReLU {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        let key = if config.get("negative_slope").is_null() { "alpha" } else { "negative_slope" };
        let negative_slope = config.f64_or(key, 0.3)?;
        if !negative_slope.is_finite() {
            bail!("LeakyReLU needs a finite {key}, got {negative_slope}");
        }
        Ok(Self { negative_slope })
    }
}

impl Layer for LeakyReLU {
    fn class_name(&self) -> &'static str {
        "LeakyReLU"
    }

    fn keras_config(&self) -> Value {
        json!({ "alpha": self.negative_slope })
    }

    fn keras3_config(&self) -> Value {
        json!({ "negative_slope": self.negative_slope })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(single_input(self.class_name(), inputs)?.clone())
    }

    fn forward(&self, inputs: &[&Tensor], train: bool) -> Tensor {
        self.as_relu().forward(inputs, train)
    }
}
