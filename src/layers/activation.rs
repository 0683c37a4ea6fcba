//! Keras activations (`keras/src/activations/activations.py`) and the `Activation` layer.
//! Softmax runs over the last Keras axis, which is the channel axis: dim 1 inside the graph for
//! both flat (N, C) and image (N, C, H, W) tensors.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::{Kind, Tensor};

use super::keras_config::KerasConfig;
use super::registry::FromKerasConfig;
use super::{single_input, Layer, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Linear,
    Relu,
    Softmax,
    Sigmoid,
    Tanh,
}

impl Activation {
    pub fn keras_name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Softmax => "softmax",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }

    pub fn from_keras_name(name: &str) -> Result<Self> {
        Ok(match name {
            "linear" => Activation::Linear,
            "relu" => Activation::Relu,
            "softmax" => Activation::Softmax,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            other => bail!("unsupported activation '{other}' (supported: linear, relu, softmax, sigmoid, tanh)"),
        })
    }

    pub fn apply(self, xs: &Tensor) -> Tensor {
        match self {
            Activation::Linear => xs.shallow_clone(),
            Activation::Relu => xs.relu(),
            Activation::Softmax => xs.softmax(1, Kind::Float),
            Activation::Sigmoid => xs.sigmoid(),
            Activation::Tanh => xs.tanh(),
        }
    }
}

impl FromKerasConfig for Activation {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        config.activation()
    }
}

impl Layer for Activation {
    fn class_name(&self) -> &'static str {
        "Activation"
    }

    fn keras_config(&self) -> Value {
        json!({ "activation": self.keras_name() })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(single_input(self.class_name(), inputs)?.clone())
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        self.apply(inputs[0])
    }

    fn forward_logits(&self, inputs: &[&Tensor], _train: bool) -> Option<Tensor> {
        matches!(self, Activation::Softmax | Activation::Sigmoid).then(|| inputs[0].shallow_clone())
    }
}
