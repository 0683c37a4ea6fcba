//! Keras's `Softmax` layer (`keras/src/layers/activations/softmax.py`): the softmax over one
//! axis, the last (channel) axis by default. Over the channel axis its input is the logits a
//! cross-entropy uses, as for `Activation("softmax")`.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tch::{Kind, Tensor};

use super::keras_config::KerasConfig;
use super::registry::FromKerasConfig;
use super::{graph_dim, shape_axis, single_input, Layer, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Softmax {
    /// Keras's axis, counting the batch axis; -1 is the channel axis.
    pub axis: i64,
}

impl Default for Softmax {
    fn default() -> Self {
        Self { axis: -1 }
    }
}

impl Softmax {
    fn graph_dim(&self, tensor_rank: usize) -> i64 {
        graph_dim(shape_axis(self.class_name(), self.axis, tensor_rank - 1).expect("checked when built"), tensor_rank)
    }
}

impl FromKerasConfig for Softmax {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        // tf.keras may write the axis as a one-element list.
        let axis = match config.get("axis") {
            Value::Null => Some(-1),
            Value::Array(items) if items.len() == 1 => items[0].as_i64(),
            value => value.as_i64(),
        }
        .with_context(|| format!("Softmax over several axes is not supported, got axis {}", config.get("axis")))?;
        Ok(Self { axis })
    }
}

impl Layer for Softmax {
    fn class_name(&self) -> &'static str {
        "Softmax"
    }

    fn keras_config(&self) -> Value {
        json!({ "axis": self.axis })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let shape = single_input(self.class_name(), inputs)?;
        shape_axis(self.class_name(), self.axis, shape.len())?;
        Ok(shape.clone())
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        inputs[0].softmax(self.graph_dim(inputs[0].dim()), Kind::Float)
    }

    fn forward_logits(&self, inputs: &[&Tensor], _train: bool) -> Option<Tensor> {
        (self.graph_dim(inputs[0].dim()) == 1).then(|| inputs[0].shallow_clone())
    }
}
