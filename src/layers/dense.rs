//! Keras `Dense` (`keras/src/layers/core/dense.py`) on flat features, with the activation Keras
//! lets it carry; glorot_uniform kernel, zero bias. The kernel is kept as torch's (out, in).

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::{nn, Tensor};

use super::activation::Activation;
use super::autocast::{for_compute, to_float};
use super::init::InitialWeights;
use super::keras_config::KerasConfig;
use super::registry::{BuildLayer, FromKerasConfig};
use super::{single_input, Layer, Layout, Shape, Weight};

#[derive(Debug, Clone)]
pub struct DenseConfig {
    pub units: i64,
    pub activation: Activation,
    pub use_bias: bool,
}

/// `Dense(units)` with Keras's defaults: no activation, bias.
pub fn dense(units: i64) -> DenseConfig {
    DenseConfig { units, activation: Activation::Linear, use_bias: true }
}

impl DenseConfig {
    pub fn activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }
    pub fn use_bias(mut self, use_bias: bool) -> Self {
        self.use_bias = use_bias;
        self
    }

    pub fn build(self, path: &nn::Path, inputs: &[Shape], initial: InitialWeights) -> Result<Dense> {
        let in_features = match single_input("Dense", inputs)?.as_slice() {
            &[features] => features,
            other => bail!("Dense expects flat features (None, F); got shape {other:?}: add a Flatten or global pooling first"),
        };
        if self.units <= 0 {
            bail!("Dense: units must be positive, got {}", self.units);
        }
        let kernel = path.var("kernel", &[self.units, in_features], initial.kernel(in_features, self.units));
        let bias = self.use_bias.then(|| path.var("bias", &[self.units], nn::Init::Const(0.0)));
        Ok(Dense { config: self, kernel, bias })
    }
}

impl FromKerasConfig for DenseConfig {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        Ok(dense(config.size("units")?).activation(config.activation()?).use_bias(config.bool_or("use_bias", true)?))
    }
}

impl BuildLayer for DenseConfig {
    fn class_name(&self) -> &'static str {
        "Dense"
    }

    fn parameter_count(&self, inputs: &[Shape]) -> u128 {
        let features = inputs.first().and_then(|s| s.last()).map_or(0, |&c| c.max(0) as u128);
        let units = self.units.max(0) as u128;
        features * units + if self.use_bias { units } else { 0 }
    }

    fn build_layer(self: Box<Self>, path: &nn::Path, inputs: &[Shape], initial: InitialWeights) -> Result<Box<dyn Layer>> {
        Ok(Box::new(self.build(path, inputs, initial)?))
    }
}

pub struct Dense {
    pub config: DenseConfig,
    pub kernel: Tensor,
    pub bias: Option<Tensor>,
}

impl Dense {
    /// `x·Wᵀ + b` in the compute precision, returned as float32 (see `autocast`).
    fn linear(&self, xs: &Tensor) -> Tensor {
        to_float(for_compute(xs).linear(&for_compute(&self.kernel), self.bias.as_ref().map(for_compute).as_ref()))
    }
}

impl Layer for Dense {
    fn as_dense(&self) -> Option<&Dense> {
        Some(self)
    }

    fn class_name(&self) -> &'static str {
        "Dense"
    }

    fn keras_config(&self) -> Value {
        json!({
            "units": self.config.units,
            "activation": self.config.activation.keras_name(),
            "use_bias": self.config.use_bias,
        })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let in_features = self.kernel.size()[1];
        match single_input(self.class_name(), inputs)?.as_slice() {
            &[f] if f == in_features => Ok(vec![self.config.units]),
            other => bail!("Dense expects ({in_features},) features, got shape {other:?}"),
        }
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        self.config.activation.apply(&self.linear(inputs[0]))
    }

    fn forward_logits(&self, inputs: &[&Tensor], _train: bool) -> Option<Tensor> {
        matches!(self.config.activation, Activation::Softmax | Activation::Sigmoid).then(|| self.linear(inputs[0]))
    }

    fn weights(&self) -> Vec<Weight<'_>> {
        let mut weights = vec![Weight { name: "kernel", tensor: &self.kernel, trainable: true, layout: Layout::DenseKernel }];
        if let Some(bias) = &self.bias {
            weights.push(Weight { name: "bias", tensor: bias, trainable: true, layout: Layout::Same });
        }
        weights
    }
}
