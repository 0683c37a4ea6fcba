//! Keras pooling (`keras/src/layers/pooling/`): `MaxPooling2D` and `AveragePooling2D` with
//! `valid`/`same`, `GlobalAveragePooling2D`, `GlobalMaxPooling2D`.
//!
//! TF's `same` pooling pads asymmetrically (see `padding`), never lets a padded cell win a max,
//! and averages over the real pixels of each window only.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::Tensor;

use super::keras_config::KerasConfig;
use super::padding::{same_pads, window_output, Padding};
use super::registry::FromKerasConfig;
use super::{image_input, Layer, Shape};

/// Max or average pooling, by Keras's `pooling='max'|'avg'` names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PoolKind {
    #[value(name = "max")]
    Max,
    #[value(name = "avg")]
    Average,
}

/// Keras's `pooling` argument of the applications (`None`, `'avg'` or `'max'`), with `none`
/// spelt out: the one parser of it.
pub fn parse_pooling(text: &str) -> Result<Option<PoolKind>, String> {
    match text {
        "none" => Ok(None),
        "avg" => Ok(Some(PoolKind::Average)),
        "max" => Ok(Some(PoolKind::Max)),
        other => Err(format!("'{other}' is not a pooling: none, avg or max")),
    }
}

impl PoolKind {
    /// `MaxPooling2D` → Max, `AveragePooling2D` → Average (with `suffix` = "Pooling2D").
    fn of_class(class_name: &str, suffix: &str) -> Result<Self> {
        match class_name.strip_suffix(suffix) {
            Some("Max") => Ok(PoolKind::Max),
            Some("Average") => Ok(PoolKind::Average),
            _ => bail!("'{class_name}' is not a pooling class"),
        }
    }
}

/// `MaxPooling2D` / `AveragePooling2D(pool_size, strides=pool_size, padding)`.
#[derive(Debug, Clone)]
pub struct Pool2D {
    pub kind: PoolKind,
    pub pool_size: [i64; 2],
    pub strides: [i64; 2],
    pub padding: Padding,
}

/// `MaxPooling2D(pool_size)`, strides defaulting to the pool size as in Keras.
pub fn max_pool(pool_size: i64) -> Pool2D {
    Pool2D { kind: PoolKind::Max, pool_size: [pool_size; 2], strides: [pool_size; 2], padding: Padding::Valid }
}

/// `AveragePooling2D(pool_size)`, strides defaulting to the pool size as in Keras.
pub fn avg_pool(pool_size: i64) -> Pool2D {
    Pool2D { kind: PoolKind::Average, ..max_pool(pool_size) }
}

impl Pool2D {
    pub fn strides(mut self, stride: i64) -> Self {
        self.strides = [stride; 2];
        self
    }
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    pub fn same(self) -> Self {
        self.padding(Padding::Same)
    }
}

impl FromKerasConfig for Pool2D {
    /// `MaxPooling2D` or `AveragePooling2D`, as `config.class_name` says; strides default to
    /// the pool size.
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        config.require_channels_last()?;
        let kind = PoolKind::of_class(config.class_name, "Pooling2D")?;
        let pool_size = config.positive_pair_or("pool_size", [2, 2])?;
        Ok(Pool2D { kind, pool_size, strides: config.positive_pair_or("strides", pool_size)?, padding: config.padding()? })
    }
}

impl Layer for Pool2D {
    fn class_name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "MaxPooling2D",
            PoolKind::Average => "AveragePooling2D",
        }
    }

    fn keras_config(&self) -> Value {
        json!({
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding.keras_name(),
            "data_format": "channels_last",
        })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let [h, w, c] = image_input(self.class_name(), inputs)?;
        if self.pool_size.iter().chain(&self.strides).any(|&v| v <= 0) {
            bail!("{}: pool_size and strides must be positive, got {self:?}", self.class_name());
        }
        let [oh, ow] = window_output(self.class_name(), self.padding, [h, w], self.pool_size, self.strides)?;
        Ok(vec![oh, ow, c])
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        let xs = inputs[0];
        let size = xs.size();
        let pads = same_pads(self.padding, [size[2], size[3]], self.pool_size, self.strides);
        let padded = pads.iter().any(|&p| p > 0);
        match self.kind {
            PoolKind::Max => {
                // -inf padding: a padded cell can never be the maximum.
                let xs = if padded { xs.pad(pads, "constant", f64::NEG_INFINITY) } else { xs.shallow_clone() };
                xs.max_pool2d(self.pool_size, self.strides, [0, 0], [1, 1], false)
            }
            PoolKind::Average if !padded => xs.avg_pool2d(self.pool_size, self.strides, [0, 0], false, true, None::<i64>),
            PoolKind::Average => {
                // Sum over the zero-padded window divided by the number of real pixels in it.
                let window =
                    |t: &Tensor| t.constant_pad_nd(pads).avg_pool2d(self.pool_size, self.strides, [0, 0], false, true, None::<i64>);
                let real = Tensor::ones([1, 1, size[2], size[3]], (xs.kind(), xs.device()));
                window(xs) / window(&real)
            }
        }
    }
}

/// `GlobalAveragePooling2D` / `GlobalMaxPooling2D`: (None, H, W, C) -> (None, C).
#[derive(Debug, Clone, Copy)]
pub struct GlobalPool2D {
    pub kind: PoolKind,
}

impl FromKerasConfig for GlobalPool2D {
    /// `GlobalMaxPooling2D` or `GlobalAveragePooling2D`, as `config.class_name` says.
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        config.require_channels_last()?;
        if config.bool_or("keepdims", false)? {
            bail!("keepdims=True is not supported");
        }
        Ok(GlobalPool2D { kind: PoolKind::of_class(config.class_name.trim_start_matches("Global"), "Pooling2D")? })
    }
}

impl Layer for GlobalPool2D {
    fn class_name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "GlobalMaxPooling2D",
            PoolKind::Average => "GlobalAveragePooling2D",
        }
    }

    fn keras_config(&self) -> Value {
        json!({ "data_format": "channels_last", "keepdims": false })
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        let [_, _, c] = image_input(self.class_name(), inputs)?;
        Ok(vec![c])
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        match self.kind {
            PoolKind::Max => inputs[0].amax([2, 3], false),
            PoolKind::Average => inputs[0].mean_dim(&[2i64, 3][..], false, None::<tch::Kind>),
        }
    }
}
