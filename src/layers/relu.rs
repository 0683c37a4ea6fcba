//! Keras's `ReLU` layer (`keras/src/layers/activations/relu.py`, tf-keras's `backend.relu`):
//! `max_value` caps the output, values at or below `threshold` are zeroed, and below it
//! `negative_slope` leaks: `f(x) = min(x, max_value)` for `x > threshold`, `0` at the threshold,
//! `negative_slope · (x − threshold)` below.

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
