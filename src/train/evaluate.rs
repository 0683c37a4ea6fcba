//! `model.evaluate(x, y, batch_size=32)`: the loss and accuracy over the whole set, as Keras
//! reports them (per-sample values averaged over all samples), in inference mode.

use anyhow::{bail, Context, Result};
use tch::{no_grad, Kind, Tensor};

use super::compile::{Accuracy, CompileConfig};
use crate::data::dataset::Dataset;
use crate::data::loader::Loading;
use crate::graph::Model;

#[derive(Debug, Clone, Copy)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: Option<f64>,
}

impl Evaluation {
    /// The notebook's `print("Loss = " + str(preds[0]))` / `print("Test Accuracy = " + …)`.
    pub fn print_notebook_lines(&self) {
        println!("Loss = {}", self.loss);
        if let Some(accuracy) = self.accuracy {
            println!("Test Accuracy = {accuracy}");
        }
    }
}

pub fn evaluate(model: &Model, compile: &CompileConfig, x: &Tensor, y: &Tensor, batch_size: i64) -> Result<Evaluation> {
    let data = Dataset::from_tensors(x, y, "evaluate's arrays").context("evaluate")?;
    evaluate_in_phase(model, compile, &data, batch_size, &Loading::on_this_thread(), false)
}

/// `model.evaluate(dataset)`: as [`evaluate`], reading each batch when it is needed.
pub fn evaluate_dataset(model: &Model, compile: &CompileConfig, data: &Dataset, batch_size: i64, loading: &Loading) -> Result<Evaluation> {
    evaluate_in_phase(model, compile, data, batch_size, loading, false)
}

/// `evaluate` after Keras's `K.set_learning_phase(1)`, as the course notebook ran it before
/// loading its pretrained `ResNet50.h5`: BatchNorm normalises each batch by the batch's own
/// statistics (and Dropout drops). The moving statistics are left as they were, as Keras's
/// `evaluate` runs no updates.
pub fn evaluate_learning_phase_1(model: &Model, compile: &CompileConfig, x: &Tensor, y: &Tensor, batch_size: i64) -> Result<Evaluation> {
    let data = Dataset::from_tensors(x, y, "evaluate's arrays").context("evaluate")?;
    evaluate_dataset_learning_phase_1(model, compile, &data, batch_size, &Loading::on_this_thread())
}

/// [`evaluate_learning_phase_1`] on a dataset.
pub fn evaluate_dataset_learning_phase_1(
    model: &Model,
    compile: &CompileConfig,
    data: &Dataset,
    batch_size: i64,
    loading: &Loading,
) -> Result<Evaluation> {
    let saved: Vec<(Tensor, Tensor)> = model
        .layers()
        .iter()
        .flat_map(|n| n.layer.weights().into_iter().filter(|w| !w.trainable).map(|w| (w.tensor.shallow_clone(), w.tensor.copy())))
        .collect();
    let result = evaluate_in_phase(model, compile, data, batch_size, loading, true);
    no_grad(|| {
        for (variable, value) in &saved {
            variable.shallow_clone().copy_(value);
        }
    });
    result
}

fn evaluate_in_phase(
    model: &Model,
    compile: &CompileConfig,
    data: &Dataset,
    batch_size: i64,
    loading: &Loading,
    train: bool,
) -> Result<Evaluation> {
    if data.is_empty() {
        bail!("evaluate: no samples");
    }
    if batch_size < 1 {
        bail!("evaluate: batch_size must be at least 1, got {batch_size}");
    }
    let (mut loss_sum, mut correct) = (0.0, 0.0);
    no_grad(|| -> Result<()> {
        for batch in data.batches(None, batch_size as usize, 0, loading) {
            let (xb, yb) = batch?;
            let xb = xb.to_device(model.device());
            let yb = yb.to_device(model.device()).to_kind(Kind::Float);
            let (probs, logits) = model.forward_with_logits(&[&xb], train)?;
            loss_sum += compile.loss.per_sample(compile.style, &yb, &probs, logits.as_ref()).sum(Kind::Double).double_value(&[]);
            if let Some(accuracy) = compile.accuracy {
                correct += count_correct(accuracy, &yb, &probs);
            }
        }
        Ok(())
    })?;
    let n = data.len() as f64;
    Ok(Evaluation { loss: loss_sum / n, accuracy: compile.accuracy.map(|_| correct / n) })
}

pub fn count_correct(accuracy: Accuracy, y: &Tensor, probs: &Tensor) -> f64 {
    hits(accuracy, y, probs).sum(Kind::Double).double_value(&[])
}

/// Each sample's accuracy, float64 (N): 1 or 0, or for several binary outputs the fraction right.
fn hits(accuracy: Accuracy, y: &Tensor, probs: &Tensor) -> Tensor {
    match accuracy {
        Accuracy::Categorical => y.argmax(-1, false).eq_tensor(&probs.argmax(-1, false)).to_kind(Kind::Double),
        Accuracy::SparseCategorical => y.flatten(0, -1).to_kind(Kind::Int64).eq_tensor(&probs.argmax(-1, false)).to_kind(Kind::Double),
        Accuracy::Binary => {
            let right = y.reshape(probs.size()).eq_tensor(&probs.gt(0.5).to_kind(Kind::Float)).to_kind(Kind::Double);
            right.reshape([probs.size()[0], -1]).mean_dim(1, false, Kind::Double)
        }
    }
}
