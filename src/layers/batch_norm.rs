//! Keras `BatchNormalization` (`keras/src/layers/normalization/batch_normalization.py`).
//!
//! Keras's defaults differ from torch's: momentum 0.99 is the weight of the *old* moving value
//! (torch's momentum is 1 − Keras's), epsilon is 1e-3 (torch: 1e-5), and gamma starts at ones
//! (tch's default BatchNorm init is Uniform(0, 1)). In training the batch statistics normalise
//! and the moving statistics are updated; in inference the moving statistics normalise.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tch::{nn, Tensor};

use super::init::InitialWeights;
use super::keras_config::KerasConfig;
use super::registry::{BuildLayer, FromKerasConfig};
use super::synchronized_batch_norm::{synchronized_forward, BatchNormParts, ReplicaSum};
use super::{single_input, Layer, Layout, Shape, Weight};

#[derive(Debug, Clone)]
pub struct BatchNormConfig {
    /// Keras's axis; only the channel axis (-1, or 3 for images) is supported.
    pub axis: i64,
    pub momentum: f64,
    pub epsilon: f64,
    /// Keras's `synchronized`: in data-parallel training, normalise with the global batch's
    /// statistics instead of each replica's own (no effect in a single process).
    pub synchronized: bool,
}

/// `BatchNormalization(axis=-1)` with Keras's defaults (momentum 0.99, epsilon 1e-3).
pub fn batch_norm() -> BatchNormConfig {
    BatchNormConfig { axis: -1, momentum: 0.99, epsilon: 1e-3, synchronized: false }
}

impl BatchNormConfig {
    pub fn axis(mut self, axis: i64) -> Self {
        self.axis = axis;
        self
    }
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    pub fn synchronized(mut self, synchronized: bool) -> Self {
        self.synchronized = synchronized;
        self
    }

    pub fn build(self, path: &nn::Path, inputs: &[Shape]) -> Result<BatchNorm> {
        let shape = single_input("BatchNormalization", inputs)?;
        let rank = shape.len() as i64 + 1;
        if !(self.axis == -1 || self.axis == rank - 1) {
            bail!("BatchNormalization: only the channel axis (-1) is supported, got axis {} for input {shape:?}", self.axis);
        }
        if !(0.0..1.0).contains(&self.momentum) || self.epsilon <= 0.0 {
            bail!("BatchNormalization: need 0 <= momentum < 1 and epsilon > 0, got {self:?}");
        }
        let Some(&channels) = shape.last() else {
            bail!("BatchNormalization needs an input with a channel axis, got shape {shape:?}");
        };
        Ok(BatchNorm {
            gamma: path.var("gamma", &[channels], nn::Init::Const(1.0)),
            beta: path.var("beta", &[channels], nn::Init::Const(0.0)),
            moving_mean: path.zeros_no_train("moving_mean", &[channels]),
            moving_variance: path.ones_no_train("moving_variance", &[channels]),
            config: self,
            replicas: None,
        })
    }
}

impl FromKerasConfig for BatchNormConfig {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        if !config.bool_or("center", true)? || !config.bool_or("scale", true)? {
            bail!("BatchNormalization without center or scale is not supported");
        }
        let axis = match config.get("axis") {
            Value::Array(items) if items.len() == 1 => items[0].as_i64(),
            Value::Null => Some(-1),
            value => value.as_i64(),
        }
        .context("BatchNormalization over several axes is not supported")?;
        Ok(batch_norm()
            .axis(axis)
            .momentum(config.f64_or("momentum", 0.99)?)
            .epsilon(config.f64_or("epsilon", 1e-3)?)
            .synchronized(config.bool_or("synchronized", false)?))
    }
}

impl BuildLayer for BatchNormConfig {
    fn class_name(&self) -> &'static str {
        "BatchNormalization"
    }

    fn parameter_count(&self, inputs: &[Shape]) -> u128 {
        4 * inputs.first().and_then(|s| s.last()).map_or(0, |&c| c.max(0) as u128)
    }

    /// BatchNormalization's initial values are constants: nothing to draw either way.
    fn build_layer(self: Box<Self>, path: &nn::Path, inputs: &[Shape], _initial: InitialWeights) -> Result<Box<dyn Layer>> {
        Ok(Box::new(self.build(path, inputs)?))
    }
}

pub struct BatchNorm {
    pub config: BatchNormConfig,
    pub gamma: Tensor,
    pub beta: Tensor,
    pub moving_mean: Tensor,
    pub moving_variance: Tensor,
    /// The data-parallel job's replicas, while a synchronized layer trains in one.
    replicas: Option<Arc<dyn ReplicaSum>>,
}

impl BatchNorm {
    /// Joins (or, with `None`, leaves) a data-parallel job's replicas; only a synchronized
    /// layer takes them.
    pub fn set_replicas(&mut self, replicas: Option<Arc<dyn ReplicaSum>>) {
        self.replicas = replicas.filter(|_| self.config.synchronized);
    }

    fn parts(&self) -> BatchNormParts<'_> {
        BatchNormParts {
            gamma: &self.gamma,
            beta: &self.beta,
            moving_mean: &self.moving_mean,
            moving_variance: &self.moving_variance,
            momentum: self.config.momentum,
            epsilon: self.config.epsilon,
        }
    }
}

impl Layer for BatchNorm {
    fn as_batch_norm(&self) -> Option<&BatchNorm> {
        Some(self)
    }

    fn class_name(&self) -> &'static str {
        "BatchNormalization"
    }

    fn keras_config(&self) -> Value {
        json!({
            "axis": self.config.axis,
            "momentum": self.config.momentum,
            "epsilon": self.config.epsilon,
            "center": true,
            "scale": true,
        })
    }

    /// Keras 3 writes `synchronized` (tf.keras 2 does not, even when it is set).
    fn keras3_config(&self) -> Value {
        let mut config = self.keras_config();
        config["synchronized"] = json!(self.config.synchronized);
        config
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let shape = single_input(self.class_name(), inputs)?;
        let channels = self.gamma.size()[0];
        if shape.last() != Some(&channels) {
            bail!("BatchNormalization has {channels} channels, got input shape {shape:?}");
        }
        Ok(shape.clone())
    }

    fn forward(&self, inputs: &[&Tensor], train: bool) -> Tensor {
        if let (true, Some(replicas)) = (train, &self.replicas) {
            if let Some(output) = synchronized_forward(inputs[0], &self.parts(), replicas.as_ref()) {
                return output;
            }
        }
        // The channel axis is dim 1 inside the graph for (N, C) and (N, C, H, W) alike.
        inputs[0].batch_norm(
            Some(&self.gamma),
            Some(&self.beta),
            Some(&self.moving_mean),
            Some(&self.moving_variance),
            train,
            1.0 - self.config.momentum,
            self.config.epsilon,
            false,
        )
    }

    fn weights(&self) -> Vec<Weight<'_>> {
        vec![
            Weight { name: "gamma", tensor: &self.gamma, trainable: true, layout: Layout::Same },
            Weight { name: "beta", tensor: &self.beta, trainable: true, layout: Layout::Same },
            Weight { name: "moving_mean", tensor: &self.moving_mean, trainable: false, layout: Layout::Same },
            Weight { name: "moving_variance", tensor: &self.moving_variance, trainable: false, layout: Layout::Same },
        ]
    }

    fn as_batch_norm_mut(&mut self) -> Option<&mut BatchNorm> {
        Some(self)
    }
}
