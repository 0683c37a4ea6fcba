//! Keras's `InputLayer` (`keras/src/layers/core/input_layer.py`): the graph's entry, holding the
//! input shape without the batch axis. Its config is the one place the two Keras dialects
//! differ per layer: tf.keras writes `batch_input_shape` (and `ragged`), Keras 3 `batch_shape`.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tch::Tensor;

use super::keras_config::{bounded, KerasConfig};
use super::registry::FromKerasConfig;
use super::{Layer, Shape};

pub struct InputLayer {
    pub shape: Shape,
}

impl From<InputLayer> for Shape {
    fn from(input: InputLayer) -> Shape {
        input.shape
    }
}

/// A shape with Keras's leading `None` batch axis, as configs write it: `[null, 64, 64, 3]`.
pub fn batch_shape(shape: &[i64]) -> Value {
    let mut dims = vec![Value::Null];
    dims.extend(shape.iter().map(|&d| json!(d)));
    Value::Array(dims)
}

impl FromKerasConfig for InputLayer {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        let shape = config
            .get("batch_input_shape")
            .as_array()
            .or_else(|| config.get("batch_shape").as_array())
            .context("no batch_input_shape / batch_shape")?;
        let Some((_batch, dims)) = shape.split_first() else { bail!("batch_input_shape is empty; expected [null, H, W, C]") };
        let shape = dims
            .iter()
            .map(|d| {
                let d = d.as_i64().context("input dimensions other than the batch must be fixed numbers")?;
                bounded(d, 1, "input dimensions")
            })
            .collect::<Result<_>>()?;
        Ok(Self { shape })
    }
}

impl Layer for InputLayer {
    fn class_name(&self) -> &'static str {
        "InputLayer"
    }

    fn keras_config(&self) -> Value {
        json!({ "batch_input_shape": batch_shape(&self.shape), "dtype": "float32", "sparse": false, "ragged": false })
    }

    fn keras3_config(&self) -> Value {
        json!({ "batch_shape": batch_shape(&self.shape), "dtype": "float32", "sparse": false })
    }

    fn output_shape(&self, _inputs: &[Shape]) -> Result<Shape> {
        Ok(self.shape.clone())
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        inputs[0].shallow_clone()
    }
}
