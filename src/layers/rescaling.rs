//! Keras's `Rescaling` preprocessing layer (`keras/src/layers/preprocessing/rescaling.py`):
//! `inputs * scale + offset`, the same at training and inference — what Keras's
//! transfer-learning guide puts before a base model (`Rescaling(1 / 127.5, offset=-1)`).

use anyhow::Result;
use serde_json::{json, Value};
use tch::Tensor;

use super::keras_config::{invalid, KerasConfig};
use super::registry::FromKerasConfig;
use super::{single_input, Layer, Shape};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescaling {
    pub scale: f64,
    pub offset: f64,
}

impl FromKerasConfig for Rescaling {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        // Keras also takes a per-channel list for each; keras-tch reads the scalar form.
        for key in ["scale", "offset"] {
            if !(config.get(key).is_number() || config.get(key).is_null()) {
                return Err(invalid(key, format!("Rescaling's {key} must be a number here, got {}", config.get(key))));
            }
        }
        let rescaling = Self { scale: config.f64_or("scale", 1.0)?, offset: config.f64_or("offset", 0.0)? };
        if !(rescaling.scale.is_finite() && rescaling.offset.is_finite()) {
            return Err(invalid("scale", format!("Rescaling needs a finite scale and offset, got {rescaling:?}")));
        }
        Ok(rescaling)
    }
}

impl Layer for Rescaling {
    fn class_name(&self) -> &'static str {
        "Rescaling"
    }

    fn keras_config(&self) -> Value {
        json!({ "scale": self.scale, "offset": self.offset })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(single_input(self.class_name(), inputs)?.clone())
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        inputs[0] * self.scale + self.offset
    }
}
