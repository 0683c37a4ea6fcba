//! Keras's `Normalization` preprocessing layer (`keras/src/layers/preprocessing/normalization.py`,
//! tf-keras's `normalization.py`): `(x − mean) / max(√variance, ε)` with ε = 1e-7 (Keras's
//! `backend.epsilon()`), or with `invert` the way back, `mean + x · max(√variance, ε)`. The
//! statistics are per channel (`axis=-1`, the default) or one for everything (`axis=None`), and
//! come either from the config (`Normalization(mean=..., variance=...)`: no weights) or from
//! `adapt()`, stored as the layer's three non-trainable weights `mean`, `variance` and `count`
//! (the number of samples adapted on, an int64 that Keras keeps only to continue adapting).

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::{nn, Kind, Tensor};

use super::init::InitialWeights;
use super::keras_config::{invalid, KerasConfig};
use super::registry::{BuildLayer, FromKerasConfig};
use super::{graph_dim, shape_axis, single_input, Layer, Layout, Shape, Weight};

/// Keras's `backend.epsilon()`, the smallest standard deviation divided by.
const EPSILON: f64 = 1e-7;

#[derive(Debug, Clone, PartialEq)]
pub struct NormalizationConfig {
    /// Keras's `axis` as a list: `[-1]` (per channel) or empty (`None`: one mean and variance).
    pub axis: Vec<i64>,
    pub invert: bool,
    /// `mean` and `variance` given in the config (a number each, or one per channel); `None`
    /// when they are adapted weights.
    pub given: Option<(Vec<f64>, Vec<f64>)>,
}

impl NormalizationConfig {
    fn per_channel(&self) -> bool {
        !self.axis.is_empty()
    }

    /// The number of means: the channel count per channel, 1 for `axis=None`. Checks the axis
    /// is the last one and that given statistics fit.
    fn statistics_len(&self, inputs: &[Shape]) -> Result<i64> {
        let shape = single_input("Normalization", inputs)?;
        if !self.per_channel() {
            return Ok(1);
        }
        let last = shape.len().checked_sub(1).ok_or_else(|| anyhow::anyhow!("Normalization needs an input with a channel axis"))?;
        if shape_axis("Normalization", self.axis[0], shape.len())? != last {
            bail!("Normalization: only the channel axis (-1) or axis=None is supported, got axis {:?} for input {shape:?}", self.axis);
        }
        let channels = shape[last];
        if let Some((mean, _)) = &self.given {
            if mean.len() != 1 && mean.len() as i64 != channels {
                bail!("Normalization: the config gives {} means for {channels} channels (input shape {shape:?})", mean.len());
            }
        }
        Ok(channels)
    }
}

/// A config's `mean` or `variance`: a number or a flat list of numbers.
fn statistic(config: &KerasConfig, key: &str) -> Result<Vec<f64>> {
    let values: Option<Vec<f64>> = match config.get(key) {
        Value::Number(n) => n.as_f64().map(|v| vec![v]),
        Value::Array(items) if !items.is_empty() => items.iter().map(Value::as_f64).collect(),
        _ => None,
    };
    match values {
        Some(values) if values.iter().all(|v| v.is_finite()) => Ok(values),
        _ => Err(invalid(key, format!("Normalization's {key} must be a number or a flat list of numbers, got {}", config.get(key)))),
    }
}

impl FromKerasConfig for NormalizationConfig {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        let axis: Vec<i64> = match config.get("axis") {
            Value::Null => Vec::new(),
            Value::Number(n) => n.as_i64().into_iter().collect(),
            Value::Array(items) => items.iter().filter_map(Value::as_i64).collect(),
            other => return Err(invalid("axis", format!("Normalization's axis must be whole numbers, got {other}"))),
        };
        let listed = match config.get("axis") {
            Value::Array(items) => items.len(),
            Value::Null => 0,
            _ => 1,
        };
        if axis.len() != listed || axis.len() > 1 {
            return Err(invalid("axis", format!("Normalization over several axes is not supported, got axis {}", config.get("axis"))));
        }
        let given = match (config.get("mean").is_null(), config.get("variance").is_null()) {
            (true, true) => None,
            (false, false) => {
                let (mean, variance) = (statistic(config, "mean")?, statistic(config, "variance")?);
                if mean.len() != variance.len() {
                    return Err(invalid("variance", format!("Normalization gives {} means and {} variances", mean.len(), variance.len())));
                }
                if variance.iter().any(|&v| v < 0.0) {
                    return Err(invalid("variance", "Normalization's variance must not be negative".to_string()));
                }
                Some((mean, variance))
            }
            _ => return Err(invalid("mean", "Normalization needs both mean and variance, or neither".to_string())),
        };
        Ok(Self { axis, invert: config.bool_or("invert", false)?, given })
    }
}

impl BuildLayer for NormalizationConfig {
    fn class_name(&self) -> &'static str {
        "Normalization"
    }

    fn parameter_count(&self, inputs: &[Shape]) -> u128 {
        match (&self.given, self.statistics_len(inputs)) {
            (None, Ok(len)) => 2 * len.max(0) as u128 + 1,
            _ => 0,
        }
    }

    /// The adapted statistics start as Keras's do (mean 0, variance 1, count 0): constants.
    fn build_layer(self: Box<Self>, path: &nn::Path, inputs: &[Shape], _initial: InitialWeights) -> Result<Box<dyn Layer>> {
        let len = self.statistics_len(inputs)?;
        let dims: &[i64] = if self.per_channel() { &[len] } else { &[] };
        let statistics = match &self.given {
            Some((mean, variance)) => {
                let given = |values: &[f64]| Tensor::from_slice(values).to_kind(Kind::Float).to_device(path.device());
                Statistics::Given { mean: given(mean), variance: given(variance) }
            }
            None => Statistics::Adapted {
                mean: path.zeros_no_train("mean", dims),
                variance: path.ones_no_train("variance", dims),
                // Not a variable of the store: an integer, never trained or cast.
                count: Tensor::zeros([], (Kind::Int64, path.device())),
            },
        };
        Ok(Box::new(Normalization { config: *self, channels: len, statistics }))
    }
}

enum Statistics {
    Given { mean: Tensor, variance: Tensor },
    Adapted { mean: Tensor, variance: Tensor, count: Tensor },
}

pub struct Normalization {
    config: NormalizationConfig,
    /// How many means the statistics hold (1 for `axis=None`).
    channels: i64,
    statistics: Statistics,
}

impl Normalization {
    fn mean_and_variance(&self) -> (&Tensor, &Tensor) {
        match &self.statistics {
            Statistics::Given { mean, variance } | Statistics::Adapted { mean, variance, .. } => (mean, variance),
        }
    }

    /// `statistic` shaped to broadcast over a graph tensor of `rank` dimensions.
    fn broadcast(&self, statistic: &Tensor, rank: usize) -> Tensor {
        if !self.config.per_channel() || statistic.numel() == 1 {
            return statistic.reshape([] as [i64; 0]);
        }
        let mut shape = vec![1i64; rank];
        shape[graph_dim(rank - 2, rank) as usize] = statistic.numel() as i64;
        statistic.reshape(shape)
    }
}

impl Layer for Normalization {
    fn class_name(&self) -> &'static str {
        "Normalization"
    }

    fn keras_config(&self) -> Value {
        let (mean, variance) = match &self.config.given {
            Some((mean, variance)) if mean.len() == 1 => (json!(mean[0]), json!(variance[0])),
            Some((mean, variance)) => (json!(mean), json!(variance)),
            None => (Value::Null, Value::Null),
        };
        json!({ "axis": self.config.axis, "invert": self.config.invert, "mean": mean, "variance": variance })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let len = self.config.statistics_len(inputs)?;
        if len != self.channels {
            bail!("Normalization holds {} means, got input shape {:?}", self.channels, inputs[0]);
        }
        Ok(inputs[0].clone())
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        let xs = inputs[0];
        let (mean, variance) = self.mean_and_variance();
        let mean = self.broadcast(mean, xs.dim());
        let deviation = self.broadcast(&variance.sqrt().clamp_min(EPSILON), xs.dim());
        if self.config.invert {
            xs * deviation + mean
        } else {
            (xs - mean) / deviation
        }
    }

    fn weights(&self) -> Vec<Weight<'_>> {
        match &self.statistics {
            Statistics::Given { .. } => Vec::new(),
            Statistics::Adapted { mean, variance, count } => vec![
                Weight { name: "mean", tensor: mean, trainable: false, layout: Layout::Same },
                Weight { name: "variance", tensor: variance, trainable: false, layout: Layout::Same },
                Weight { name: "count", tensor: count, trainable: false, layout: Layout::Same },
            ],
        }
    }
}
