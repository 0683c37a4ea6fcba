//! Keras merge layers (`keras/src/layers/merging/`): `Add` and `Concatenate`.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::Tensor;

use super::{Layer, Shape};

#[derive(Debug, Clone, Copy)]
pub struct Add;

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

impl Concatenate {
    /// Keras axis (counting the batch axis) -> axis of the shape without batch.
    fn shape_axis(&self, rank: usize) -> Result<usize> {
        let axis = if self.axis < 0 { self.axis + rank as i64 + 1 } else { self.axis };
        if axis < 1 || axis > rank as i64 {
            bail!("Concatenate axis {} is out of range for inputs of rank {}", self.axis, rank + 1);
        }
        Ok(axis as usize - 1)
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
        let axis = self.shape_axis(first.len())?;
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
        // Keras (H, W, C) axis 0/1/2 of an image is NCHW dim 2/3/1 inside the graph.
        let rank = inputs[0].dim();
        let axis = self.shape_axis(rank - 1).expect("checked when built");
        let dim = if rank == 4 { [2, 3, 1][axis] } else { axis as i64 + 1 };
        Tensor::cat(inputs, dim)
    }
}
