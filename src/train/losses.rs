//! Keras's losses, per sample (`keras/src/backend.py` of tf.keras 2.x and Keras 2.0's
//! `tensorflow_backend.py`). Two behaviours exist and both are needed:
//!
//! - Keras 2.0/2.1 (what the course notebooks ran): renormalise the probabilities, clip them to
//!   [1e-7, 1 − 1e-7] and take −Σ y·log p — a saturated wrong prediction costs at most ~16.1;
//! - tf.keras 2.x and Keras 3: when the model's output is a softmax/sigmoid, compute the loss from
//!   its logits (no clip) — a saturated wrong prediction can cost hundreds.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// Keras's `epsilon()`.
pub const EPSILON: f64 = 1e-7;

/// The losses keras-tch implements, by Keras's names (`compile(loss="categorical_crossentropy")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Loss {
    #[value(name = "categorical_crossentropy")]
    CategoricalCrossentropy,
    #[value(name = "binary_crossentropy")]
    BinaryCrossentropy,
    #[value(name = "sparse_categorical_crossentropy")]
    SparseCategoricalCrossentropy,
}

/// Which Keras computes the cross-entropy (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossEntropyStyle {
    /// Keras 2.0/2.1: clipped probabilities.
    Keras20,
    /// tf.keras 2.x / Keras 3: from the logits of a softmax/sigmoid output.
    TfKeras,
}

impl Loss {
    pub fn from_keras_name(name: &str) -> Result<Self> {
        Ok(match name {
            "categorical_crossentropy" | "CategoricalCrossentropy" => Loss::CategoricalCrossentropy,
            "binary_crossentropy" | "BinaryCrossentropy" => Loss::BinaryCrossentropy,
            "sparse_categorical_crossentropy" | "SparseCategoricalCrossentropy" => Loss::SparseCategoricalCrossentropy,
            other => {
                bail!("loss '{other}' is not supported (categorical_crossentropy, binary_crossentropy, sparse_categorical_crossentropy)")
            }
        })
    }

    /// Keras's class of the loss (`keras.losses.CategoricalCrossentropy`, …).
    pub fn keras_class_name(self) -> &'static str {
        match self {
            Loss::CategoricalCrossentropy => "CategoricalCrossentropy",
            Loss::BinaryCrossentropy => "BinaryCrossentropy",
            Loss::SparseCategoricalCrossentropy => "SparseCategoricalCrossentropy",
        }
    }

    pub fn keras_name(self) -> &'static str {
        match self {
            Loss::CategoricalCrossentropy => "categorical_crossentropy",
            Loss::BinaryCrossentropy => "binary_crossentropy",
            Loss::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
        }
    }

    /// Per-sample loss (N,). `probs` is the model's output; `logits` the pre-activation output
    /// when the model ends in a softmax/sigmoid (used by the tf.keras style).
    pub fn per_sample(self, style: CrossEntropyStyle, y_true: &Tensor, probs: &Tensor, logits: Option<&Tensor>) -> Tensor {
        let logits = if style == CrossEntropyStyle::TfKeras { logits } else { None };
        match self {
            Loss::CategoricalCrossentropy => categorical(y_true, probs, logits),
            Loss::SparseCategoricalCrossentropy => {
                let classes = probs.size()[1];
                categorical(&crate::data::one_hot(y_true, classes as usize), probs, logits)
            }
            Loss::BinaryCrossentropy => binary(style, y_true, probs, logits),
        }
    }
}

fn categorical(y_true: &Tensor, probs: &Tensor, logits: Option<&Tensor>) -> Tensor {
    if let Some(logits) = logits {
        return -(y_true * logits.log_softmax(-1, Kind::Float)).sum_dim_intlist(-1, false, Kind::Float);
    }
    let p = probs / probs.sum_dim_intlist(-1, true, Kind::Float);
    let p = p.clamp(EPSILON, 1.0 - EPSILON);
    -(y_true * p.log()).sum_dim_intlist(-1, false, Kind::Float)
}

fn binary(style: CrossEntropyStyle, y_true: &Tensor, probs: &Tensor, logits: Option<&Tensor>) -> Tensor {
    let y = y_true.reshape(probs.size());
    let elementwise = match (logits, style) {
        // tf.nn.sigmoid_cross_entropy_with_logits: max(z, 0) − z·y + log(1 + exp(−|z|)).
        (Some(z), _) => z.clamp_min(0.0) - z * &y + (-z.abs()).exp().log1p(),
        // tf.keras 2.x without logits: clip, then log(p + ε).
        (None, CrossEntropyStyle::TfKeras) => {
            let p = probs.clamp(EPSILON, 1.0 - EPSILON);
            let log_p: Tensor = (&p + EPSILON).log();
            let log_q: Tensor = (p.neg() + (1.0 + EPSILON)).log();
            let not_y: Tensor = 1.0 - &y;
            let bce: Tensor = &y * log_p + not_y * log_q;
            -bce
        }
        // Keras 2.0: clip, back to logits, sigmoid cross-entropy with logits.
        (None, CrossEntropyStyle::Keras20) => {
            let p = probs.clamp(EPSILON, 1.0 - EPSILON);
            let z: Tensor = (&p / (p.neg() + 1.0)).log();
            z.clamp_min(0.0) - &z * &y + (-z.abs()).exp().log1p()
        }
    };
    elementwise.mean_dim(-1, false, Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_bounds_a_saturated_mistake_but_logits_do_not() {
        let y = Tensor::from_slice(&[1f32, 0.0]).reshape([1, 2]);
        let logits = Tensor::from_slice(&[-50f32, 50.0]).reshape([1, 2]);
        let probs = logits.softmax(-1, Kind::Float);
        let clipped = Loss::CategoricalCrossentropy.per_sample(CrossEntropyStyle::Keras20, &y, &probs, Some(&logits));
        let from_logits = Loss::CategoricalCrossentropy.per_sample(CrossEntropyStyle::TfKeras, &y, &probs, Some(&logits));
        assert!((clipped.double_value(&[0]) - (-(1e-7f64).ln())).abs() < 1e-3);
        assert!((from_logits.double_value(&[0]) - 100.0).abs() < 1e-3);
    }
}
