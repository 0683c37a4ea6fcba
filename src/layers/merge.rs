//! Keras merge layers (`keras/src/layers/merging/`): `Add` and `Concatenate`.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tch::Tensor;

use super::keras_config::KerasConfig;
use super::registry::FromKerasConfig;
use super::{graph_dim, shape_axis, Layer, Shape};

#[derive(Debug, Clone, Copy)]
pub struct Add;

impl FromKerasConfig for Add {
    fn from_keras_config(_config: &KerasConfig) -> Result<Self> {
        Ok(Add)
    }
}

impl Layer for Add {
    fn class_name(&self) -> &'static str {
        "Add"
    }

    fn keras_config(&self) -> Value {
        json!({})
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let Some(first) = inputs.first() else { bail!("Add needs at least two inputs, got none") };
        if inputs.len() < 2 {
            bail!("Add needs at least two inputs, got {}", inputs.len());
        }
        if let Some(other) = inputs.iter().find(|s| *s != first) {
            bail!("Add needs inputs of one shape, got {first:?} and {other:?}");
        }
        Ok(first.clone())
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        inputs[1..].iter().fold(inputs[0].shallow_clone(), |sum, xs| sum + *xs)
    }
}

/// `Concatenate(axis)`, axis in Keras's terms (channels-last; -1 is the channel axis).
#[derive(Debug, Clone, Copy)]
pub struct Concatenate {
    pub axis: i64,
}

impl FromKerasConfig for Concatenate {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        match config.get("axis") {
            Value::Null => Ok(Concatenate { axis: -1 }),
            value => {
                Ok(Concatenate { axis: value.as_i64().with_context(|| format!("Concatenate's axis must be a whole number, got {value}"))? })
            }
        }
    }
}

impl Layer for Concatenate {
    fn class_name(&self) -> &'static str {
        "Concatenate"
    }

    fn keras_config(&self) -> Value {
        json!({ "axis": self.axis })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let Some(first) = inputs.first() else { bail!("Concatenate needs inputs, got none") };
        let axis = shape_axis("Concatenate", self.axis, first.len())?;
        let mut out = first.clone();
        for shape in &inputs[1..] {
            let agrees = shape.len() == first.len() && shape.iter().zip(first).enumerate().all(|(i, (a, b))| i == axis || a == b);
            if !agrees {
                bail!("Concatenate on axis {}: shapes {first:?} and {shape:?} do not match off that axis", self.axis);
            }
            out[axis] += shape[axis];
        }
        Ok(out)
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        let rank = inputs[0].dim();
        let axis = shape_axis(self.class_name(), self.axis, rank - 1).expect("checked when built");
        Tensor::cat(inputs, graph_dim(axis, rank))
    }
}
