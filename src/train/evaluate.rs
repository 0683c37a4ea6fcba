//! `model.evaluate(x, y, batch_size=32)`: the loss and accuracy over the whole set, as Keras
//! reports them (per-sample values averaged over all samples), in inference mode.

use anyhow::{bail, Context, Result};
use tch::{no_grad, Kind, Tensor};

use super::compile::{Accuracy, CompileConfig};
use super::report::EvaluationReport;
use crate::data::dataset::{Dataset, LabelMode};
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
    evaluate_in_phase(model, compile, &data, batch_size, &Loading::on_this_thread(), false, None)
}

/// `model.evaluate(dataset)`: as [`evaluate`], reading each batch when it is needed.
pub fn evaluate_dataset(model: &Model, compile: &CompileConfig, data: &Dataset, batch_size: i64, loading: &Loading) -> Result<Evaluation> {
    evaluate_in_phase(model, compile, data, batch_size, loading, false, None)
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
    let result = evaluate_in_phase(model, compile, data, batch_size, loading, true, None);
    no_grad(|| {
        for (variable, value) in &saved {
            variable.shallow_clone().copy_(value);
        }
    });
    result
}

/// The evaluation of `model` on `data` (BatchNorm and Dropout as in training when `train`), with
/// each batch's outputs and targets pushed to `collect` (on the CPU) when given.
fn evaluate_in_phase(
    model: &Model,
    compile: &CompileConfig,
    data: &Dataset,
    batch_size: i64,
    loading: &Loading,
    train: bool,
    mut collect: Option<&mut Vec<(Tensor, Tensor)>>,
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
            let logits = compile.loss_logits(&probs, logits);
            loss_sum += compile.loss.per_sample(compile.style, &yb, &probs, logits.as_ref()).sum(Kind::Double).double_value(&[]);
            if let Some(accuracy) = compile.accuracy {
                correct += count_correct(accuracy, &yb, &probs);
            }
            if let Some(collected) = collect.as_deref_mut() {
                collected.push((probs.to_device(tch::Device::Cpu), yb.to_device(tch::Device::Cpu)));
            }
        }
        Ok(())
    })?;
    let n = data.len() as f64;
    Ok(Evaluation { loss: loss_sum / n, accuracy: compile.accuracy.map(|_| correct / n) })
}

/// What an evaluation report is asked to hold: top-k accuracies for each k below the number of
/// classes, and how many of the most confidently misclassified files to list.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub top_k: Vec<usize>,
    pub mistakes: usize,
}

/// [`evaluate_dataset`] and scikit-learn's report (classification_report, confusion_matrix,
/// top-k accuracies, the most confidently misclassified files when the samples are files) of
/// the same predictions, from one pass over `data`. A single sigmoid output counts as two
/// classes.
pub fn evaluate_with_report(
    model: &Model,
    compile: &CompileConfig,
    data: &Dataset,
    batch_size: i64,
    loading: &Loading,
    request: &ReportRequest,
) -> Result<(Evaluation, EvaluationReport)> {
    let (evaluation, scores, y_true) = evaluate_scoring(model, compile, data, batch_size, loading)?;
    Ok((evaluation, report_of(data, &scores, &y_true, request)?))
}

/// [`evaluate_dataset`], with each sample's class scores (N × classes, float32 on the CPU; a
/// single sigmoid output as two classes) and true class (N, int64): what a report is made of.
pub(crate) fn evaluate_scoring(
    model: &Model,
    compile: &CompileConfig,
    data: &Dataset,
    batch_size: i64,
    loading: &Loading,
) -> Result<(Evaluation, Tensor, Tensor)> {
    let mut batches = Vec::new();
    let evaluation = evaluate_in_phase(model, compile, data, batch_size, loading, false, Some(&mut batches))?;
    let (outputs, targets): (Vec<Tensor>, Vec<Tensor>) = batches.into_iter().unzip();
    let (outputs, targets) = (Tensor::cat(&outputs, 0).to_kind(Kind::Float), Tensor::cat(&targets, 0));
    let scores = if outputs.size().get(1) == Some(&1) {
        Tensor::cat(&[outputs.ones_like() - &outputs, outputs.shallow_clone()], 1)
    } else {
        outputs
    };
    let y_true = match compile.label_mode() {
        LabelMode::Categorical => targets.argmax(-1, false),
        LabelMode::Int | LabelMode::Binary => targets.flatten(0, -1).round().to_kind(Kind::Int64),
    };
    Ok((evaluation, scores, y_true))
}

/// How many classes a report on `model`'s output has (a single sigmoid output: two).
pub(crate) fn report_classes(model: &Model) -> Result<i64> {
    let [output] = model.outputs() else { bail!("an evaluation report needs a model with one output") };
    Ok(match model.node(*output).output_shape.last() {
        Some(1) | None => 2,
        Some(&units) => units,
    })
}

/// The report of the samples of `data`, from their class `scores` and true classes `y_true`
/// (as [`evaluate_scoring`] gives them).
pub(crate) fn report_of(data: &Dataset, scores: &Tensor, y_true: &Tensor, request: &ReportRequest) -> Result<EvaluationReport> {
    let y_true: Vec<usize> = Vec::<i64>::try_from(y_true.to_kind(Kind::Int64))?.into_iter().map(|c| c.max(0) as usize).collect();
    let classes = scores.size()[1] as usize;
    let names: Vec<String> =
        if data.classes().len() == classes { data.classes().to_vec() } else { (0..classes).map(|c| c.to_string()).collect() };
    let scores: Vec<f32> = Vec::try_from(scores.contiguous().flatten(0, -1))?;
    let top_k: Vec<usize> = request.top_k.iter().copied().filter(|&k| k >= 1 && k < classes).collect();
    EvaluationReport::new(&names, &y_true, &scores, &top_k, data.sample_names().as_deref(), request.mistakes)
}

pub fn count_correct(accuracy: Accuracy, y: &Tensor, probs: &Tensor) -> f64 {
    let hits = match accuracy {
        Accuracy::Categorical => y.argmax(-1, false).eq_tensor(&probs.argmax(-1, false)),
        Accuracy::SparseCategorical => y.flatten(0, -1).to_kind(Kind::Int64).eq_tensor(&probs.argmax(-1, false)),
        Accuracy::Binary => y.reshape(probs.size()).eq_tensor(&probs.gt(0.5).to_kind(Kind::Float)),
    };
    hits.to_kind(Kind::Double).sum(Kind::Double).double_value(&[])
        * if accuracy == Accuracy::Binary { 1.0 / probs.size().get(1).copied().unwrap_or(1) as f64 } else { 1.0 }
}
