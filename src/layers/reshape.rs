//! Keras `Flatten` (`keras/src/layers/reshaping/flatten.py`) and `Dropout`
//! (`keras/src/layers/regularization/dropout.py`).
//!
//! Keras is channels-last: `Flatten` after a conv stack orders features as (H, W, C), so the
//! image (internally NCHW) is put back in NHWC order before flattening — a `Dense` after it then
//! sees Keras's feature order and Keras's weights work unchanged.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tch::Tensor;

use super::keras_config::KerasConfig;
use super::registry::FromKerasConfig;
use super::{single_input, Layer, Shape};

#[derive(Debug, Clone, Copy)]
pub struct Flatten;

impl FromKerasConfig for Flatten {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        config.require_channels_last()?;
        Ok(Flatten)
    }
}

impl Layer for Flatten {
    fn class_name(&self) -> &'static str {
        "Flatten"
    }

    fn keras_config(&self) -> Value {
        json!({ "data_format": "channels_last" })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(vec![single_input(self.class_name(), inputs)?.iter().product()])
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        let xs = inputs[0];
        match xs.dim() {
            4 => xs.permute([0, 2, 3, 1]).flatten(1, -1),
            _ => xs.flatten(1, -1),
        }
    }
}

/// `Dropout(rate)`: active only in training, scaling kept units by 1 / (1 − rate) as Keras does.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub rate: f64,
}

impl FromKerasConfig for Dropout {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        let rate = config.get("rate").as_f64().context("Dropout without rate")?;
        if !(0.0..1.0).contains(&rate) {
            bail!("Dropout's rate must be in [0, 1), got {rate}");
        }
        Ok(Dropout { rate })
    }
}

impl Layer for Dropout {
    fn class_name(&self) -> &'static str {
        "Dropout"
    }

    fn keras_config(&self) -> Value {
        json!({ "rate": self.rate, "noise_shape": null, "seed": null })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        if !(0.0..1.0).contains(&self.rate) {
            bail!("Dropout rate must be in [0, 1), got {}", self.rate);
        }
        Ok(single_input(self.class_name(), inputs)?.clone())
    }

    fn forward(&self, inputs: &[&Tensor], train: bool) -> Tensor {
        inputs[0].dropout(self.rate, train)
    }
}
