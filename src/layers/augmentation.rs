//! Keras's random image augmentation layers (`keras/src/layers/preprocessing/random_flip.py`,
//! `random_contrast.py`; the geometric ones are in [`super::affine_augmentation`]), as Keras's
//! transfer-learning guide puts them in front of a base: the identity at inference; in
//! training, a random transform per image, drawn from libtorch's generator (seeded by `--seed` /
//! [`super::init::seed`]).
//!
//! The draws are Keras's distributions, not its numbers: Keras and libtorch have different
//! generators, so a given image gets another flip or angle here than in Keras.

use anyhow::Result;
use serde_json::{json, Value};
use tch::{Kind, Tensor};

use super::keras_config::{invalid, KerasConfig};
use super::registry::FromKerasConfig;
use super::{image_input, Layer, Shape};

/// An augmentation layer: its Keras class, its config as tf.keras writes it (Keras 3's adds
/// `data_format`), and its training-time transform of a batch of NCHW images. At inference it
/// is the identity; as a [`Layer`] it takes one image input and keeps its shape.
pub trait Augmentation: Send {
    const CLASS_NAME: &'static str;
    fn tf_keras_config(&self) -> Value;
    fn keras3_config_of(&self) -> Value {
        channels_last(self.tf_keras_config())
    }
    fn transform(&self, xs: &Tensor) -> Tensor;
}

impl<A: Augmentation> Layer for A {
    fn class_name(&self) -> &'static str {
        A::CLASS_NAME
    }

    fn keras_config(&self) -> Value {
        self.tf_keras_config()
    }

    fn keras3_config(&self) -> Value {
        self.keras3_config_of()
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        Ok(image_input(A::CLASS_NAME, inputs)?.to_vec())
    }

    fn forward(&self, inputs: &[&Tensor], train: bool) -> Tensor {
        if train {
            self.transform(inputs[0])
        } else {
            inputs[0].shallow_clone()
        }
    }
}

/// Keras's `factor`: a number `f` meaning `[-f, f]`, or a pair `[lower, upper]`.
pub(super) fn factor_range(config: &KerasConfig, key: &str) -> Result<(f64, f64)> {
    let range = match config.get(key) {
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            (-f.abs(), f.abs())
        }
        Value::Array(pair) if pair.len() == 2 => match (pair[0].as_f64(), pair[1].as_f64()) {
            (Some(lower), Some(upper)) => (lower, upper),
            _ => return Err(invalid(key, format!("{key} must be a number or a pair of numbers, got {}", config.get(key)))),
        },
        other => return Err(invalid(key, format!("{key} must be a number or a pair of numbers, got {other}"))),
    };
    if !(range.0.is_finite() && range.1.is_finite() && range.0 <= range.1) {
        return Err(invalid(key, format!("{key} must give lower <= upper, got {}", config.get(key))));
    }
    Ok(range)
}

/// One uniform draw per image in `[lower, upper)`, shaped (N, 1, 1, 1).
pub(super) fn per_image_uniform(xs: &Tensor, (lower, upper): (f64, f64)) -> Tensor {
    let n = xs.size()[0];
    Tensor::rand([n, 1, 1, 1], (Kind::Float, xs.device())) * (upper - lower) + lower
}

/// `RandomFlip(mode)`: in training, each image mirrored left-right and/or top-bottom with
/// probability 1/2 per axis.
#[derive(Debug, Clone)]
pub struct RandomFlip {
    pub horizontal: bool,
    pub vertical: bool,
    /// Keras's `seed` as the file gave it (written back; the draws here use libtorch's generator).
    seed: Value,
}

impl FromKerasConfig for RandomFlip {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        let mode = config.get("mode").as_str().unwrap_or("horizontal_and_vertical");
        let (horizontal, vertical) = match mode {
            "horizontal" => (true, false),
            "vertical" => (false, true),
            "horizontal_and_vertical" => (true, true),
            other => {
                return Err(invalid(
                    "mode",
                    format!("RandomFlip's mode must be horizontal, vertical or horizontal_and_vertical, got '{other}'"),
                ))
            }
        };
        Ok(Self { horizontal, vertical, seed: config.get("seed").clone() })
    }
}

impl Augmentation for RandomFlip {
    const CLASS_NAME: &'static str = "RandomFlip";

    fn tf_keras_config(&self) -> Value {
        let mode = match (self.horizontal, self.vertical) {
            (true, false) => "horizontal",
            (false, true) => "vertical",
            _ => "horizontal_and_vertical",
        };
        json!({ "mode": mode, "seed": self.seed })
    }

    fn transform(&self, xs: &Tensor) -> Tensor {
        let mut xs = xs.shallow_clone();
        // NCHW inside the graph: width is axis 3, height axis 2.
        for (flip, axis) in [(self.horizontal, 3), (self.vertical, 2)] {
            if flip {
                let chosen = per_image_uniform(&xs, (0.0, 1.0)).lt(0.5);
                xs = xs.flip([axis]).where_self(&chosen, &xs);
            }
        }
        xs
    }
}

/// `RandomContrast(factor)`: in training, each image's channels moved away from (or towards)
/// their mean by a factor drawn from `[1 − lower, 1 + upper]` (a number `f` is `[1 − f, 1 + f]`,
/// as tf.keras reads it; Keras 3 writes the pair it made of it, `[0, f]` for `f`), then clipped
/// to `value_range`.
#[derive(Debug, Clone)]
pub struct RandomContrast {
    /// The factor's range.
    pub range: (f64, f64),
    pub value_range: (f64, f64),
    seed: Value,
}

impl FromKerasConfig for RandomContrast {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        let range = match config.get("factor") {
            Value::Array(pair) if pair.len() == 2 => match (pair[0].as_f64(), pair[1].as_f64()) {
                (Some(lower), Some(upper)) => (1.0 - lower, 1.0 + upper),
                _ => return Err(invalid("factor", format!("RandomContrast's factor must be numbers, got {}", config.get("factor")))),
            },
            _ => {
                let f = config.f64_or("factor", f64::NAN)?;
                (1.0 - f, 1.0 + f)
            }
        };
        if !(range.0.is_finite() && range.1.is_finite() && 0.0 <= range.0 && range.0 <= range.1) {
            return Err(invalid(
                "factor",
                format!("RandomContrast's factor must give 0 <= 1 - lower <= 1 + upper, got {}", config.get("factor")),
            ));
        }
        let value_range = match config.get("value_range") {
            Value::Array(pair) if pair.len() == 2 => (pair[0].as_f64().unwrap_or(0.0), pair[1].as_f64().unwrap_or(255.0)),
            _ => (0.0, 255.0),
        };
        Ok(Self { range, value_range, seed: config.get("seed").clone() })
    }
}

impl Augmentation for RandomContrast {
    const CLASS_NAME: &'static str = "RandomContrast";

    fn tf_keras_config(&self) -> Value {
        json!({ "factor": [1.0 - self.range.0, self.range.1 - 1.0], "seed": self.seed })
    }

    fn keras3_config_of(&self) -> Value {
        let mut config = channels_last(self.tf_keras_config());
        config["value_range"] = json!([self.value_range.0, self.value_range.1]);
        config
    }

    fn transform(&self, xs: &Tensor) -> Tensor {
        let factor = per_image_uniform(xs, self.range);
        let mean = xs.mean_dim([2i64, 3].as_slice(), true, Kind::Float);
        ((xs - &mean) * factor + mean).clamp(self.value_range.0, self.value_range.1)
    }
}

/// A tf.keras config as Keras 3 writes it: with `data_format`.
pub(super) fn channels_last(mut config: Value) -> Value {
    config["data_format"] = json!("channels_last");
    config
}
