//! `model.fit(x, y, epochs, batch_size, shuffle, validation_split | validation_data, verbose)`
//! with Keras's semantics: each batch runs in training mode (BatchNorm on batch statistics,
//! Dropout on; frozen layers in inference), the reported loss and accuracy of an epoch are the
//! sample-weighted means of the per-batch values computed before each update, validation runs in
//! inference mode at the epoch's end, and `validation_split` takes the *last* fraction of the
//! data before any shuffling.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use super::augment::Augmentation;
use super::callbacks::{CallbackConfig, CallbackContext, CallbackList, Logs};
use super::checkpoint::{self, TrainingState};
use super::compile::{Accuracy, CompileConfig};
use super::data_parallel::{DataParallel, StepTotals};
use super::evaluate::{count_correct, evaluate_dataset};
use super::history::History;
use super::optimizer::Optimizer;
use super::progress::Progress;
use crate::data::dataset::{Dataset, LabelMode};
use crate::data::loader::Loading;
use crate::graph::Model;
use crate::layers::autocast::{autocast, Precision};
use crate::rng::SplitMix64;

#[derive(Debug, Clone)]
pub struct FitOptions {
    pub epochs: usize,
    pub batch_size: i64,
    pub shuffle: bool,
    /// Seed of the per-epoch shuffling.
    pub seed: u64,
    pub validation_split: f64,
    pub verbose: u8,
    /// Save a checkpoint after every epoch (and on interruption) here.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from `checkpoint_dir`'s checkpoint when there is one.
    pub resume: bool,
    /// Augment each training batch (never the validation data).
    pub augmentation: Option<Augmentation>,
    /// Precision of the convolutions and matrix multiplies in training steps (`autocast`);
    /// validation runs in float32.
    pub precision: Precision,
    /// How batches are read (worker threads and read-ahead depth, for datasets read from disk).
    pub loading: Loading,
    /// Keras's built-in callbacks, called in order.
    pub callbacks: Vec<CallbackConfig>,
    /// Keras's `class_weight`: each training sample's loss weighted by its class's entry
    /// (classes past the end: 1.0); the accuracy and the validation are not weighted, as in Keras.
    pub class_weight: Option<Vec<f64>>,
    /// Train as one rank of a data-parallel job (`batch_size` is then the global batch, split
    /// across the ranks; only rank 0 prints and writes checkpoints).
    pub data_parallel: Option<DataParallel>,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            seed: 0,
            validation_split: 0.0,
            verbose: 1,
            checkpoint_dir: None,
            resume: false,
            augmentation: None,
            precision: Precision::Fp32,
            loading: Loading::default(),
            callbacks: Vec::new(),
            class_weight: None,
            data_parallel: None,
        }
    }
}

/// Why `fit` stopped early.
#[derive(Debug)]
pub enum Stopped {
    Interrupted { checkpoint: Option<PathBuf> },
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::Interrupted { checkpoint: Some(path) } => {
                write!(f, "interrupted; progress saved to {}", path.display())
            }
            Stopped::Interrupted { checkpoint: None } => write!(f, "interrupted (no checkpoint directory was given)"),
        }
    }
}

impl std::error::Error for Stopped {}

// Keras's `fit(x, y, validation_data=…, …)` keeps its shape here; the options are one struct.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    model: &mut Model,
    compile: &CompileConfig,
    optimizer: &mut Optimizer,
    x: &Tensor,
    y: &Tensor,
    validation_data: Option<(&Tensor, &Tensor)>,
    options: &FitOptions,
    interrupt: &AtomicBool,
) -> Result<History> {
    let data = Dataset::from_tensors(x, y, "fit's arrays").context("fit")?;
    let validation = validation_data.map(|(x, y)| Dataset::from_tensors(x, y, "fit's validation arrays")).transpose().context("fit")?;
    fit_dataset(model, compile, optimizer, &data, validation.as_ref(), options, interrupt)
}

/// `model.fit(dataset, validation_data=…)`: as [`fit`], reading each batch from `data` when it
/// is needed (read ahead by `options.loading`), with the callbacks of `options.callbacks`.
pub fn fit_dataset(
    model: &mut Model,
    compile: &CompileConfig,
    optimizer: &mut Optimizer,
    data: &Dataset,
    validation: Option<&Dataset>,
    options: &FitOptions,
    interrupt: &AtomicBool,
) -> Result<History> {
    let mut callbacks = CallbackList::from_configs(&options.callbacks)?;
    fit_with_callbacks(model, compile, optimizer, data, validation, options, &mut callbacks, interrupt)
}

/// [`fit_dataset`] with the caller's own list of callbacks (any
/// [`Callback`](super::callbacks::Callback)), called in order; `options.callbacks` is not read
/// (`CallbackList::from_configs` builds those, to push one's own after them).
#[allow(clippy::too_many_arguments)]
pub fn fit_with_callbacks(
    model: &mut Model,
    compile: &CompileConfig,
    optimizer: &mut Optimizer,
    data: &Dataset,
    validation: Option<&Dataset>,
    options: &FitOptions,
    callbacks: &mut CallbackList,
    interrupt: &AtomicBool,
) -> Result<History> {
    // Synchronized BatchNorm layers sum their statistics over the job's replicas while it trains.
    if let Some(parallel) = &options.data_parallel {
        model.set_batch_norm_replicas(Some(parallel.batch_statistics()));
    }
    let history = fit_loop(model, compile, optimizer, data, validation, options, callbacks, interrupt);
    model.set_batch_norm_replicas(None);
    history
}

/// [`fit_with_callbacks`]'s epochs and steps.
#[allow(clippy::too_many_arguments)]
fn fit_loop(
    model: &mut Model,
    compile: &CompileConfig,
    optimizer: &mut Optimizer,
    data: &Dataset,
    validation: Option<&Dataset>,
    options: &FitOptions,
    callbacks: &mut CallbackList,
    interrupt: &AtomicBool,
) -> Result<History> {
    if options.batch_size < 1 {
        bail!("fit: batch_size must be at least 1, got {}", options.batch_size);
    }
    if !(0.0..1.0).contains(&options.validation_split) {
        bail!("fit: validation_split must be at least 0 and below 1, got {}", options.validation_split);
    }
    // Keras holds out the *last* fraction of the data, before any shuffling.
    let (train, split_validation) = if validation.is_none() && options.validation_split > 0.0 {
        data.split_last(options.validation_split)
    } else {
        (data.clone(), None)
    };
    let validation = validation.or(split_validation.as_ref());
    let n = train.len();
    if n == 0 {
        bail!("fit: no training samples");
    }
    let batch_size = options.batch_size as usize;
    let parallel = options.data_parallel.as_ref();
    let chief = parallel.is_none_or(DataParallel::is_chief);
    let replica_batch_size = match parallel {
        Some(parallel) => parallel.replica_batch_size(batch_size)?,
        None => batch_size,
    };
    let verbose = if chief { options.verbose } else { 0 };
    // A rank with no samples in a step still runs its synchronized BatchNorms' collectives.
    let synchronized = parallel.is_some() && model.has_synchronized_batch_norm();

    callbacks.on_train_begin(&mut context(model, optimizer, compile, chief))?;
    let mut state = TrainingState::default();
    if let (true, Some(dir)) = (options.resume, &options.checkpoint_dir) {
        if let Some(restored) = checkpoint::restore(dir, model, optimizer, callbacks)? {
            if chief {
                eprintln!("Resuming from {} at epoch {}, batch {}", dir.display(), restored.epoch + 1, restored.next_batch);
            }
            state = restored;
        }
    }
    if let Some(parallel) = parallel {
        parallel.broadcast_weights(model)?;
    }

    while state.epoch < options.epochs && !state.stop_training {
        if state.next_batch == 0 {
            callbacks.on_epoch_begin(state.epoch, &mut context(model, optimizer, compile, chief))?;
        }
        let order = epoch_order(n, options, state.epoch);
        // A rank reads only its slice of each global batch.
        let order = match parallel {
            Some(parallel) => parallel.local_order(&order, batch_size),
            None => order,
        };
        let mut progress = Progress::start_epoch(state.epoch + 1, options.epochs, n, verbose);
        let mut batches = train.batches(Some(&order), replica_batch_size, state.next_batch, &options.loading);
        for batch in state.next_batch..n.div_ceil(batch_size) {
            let size = (n - batch * batch_size).min(batch_size);
            // A rank whose slice of a short last batch is empty still takes part in the step.
            let has_samples = parallel.is_none_or(|parallel| !parallel.slice(size).is_empty());
            let prepared = if has_samples {
                let (xb, yb) = batches.next().context("the dataset gave fewer batches than its length implies")??;
                let xb = to_device_for_step(&xb, model.device());
                let xb = match &options.augmentation {
                    Some(augmentation) => augmentation.apply(&xb, state.epoch, batch),
                    None => xb,
                };
                let yb = to_device_for_step(&yb, model.device()).to_kind(Kind::Float);
                let weights = options.class_weight.as_deref().map(|table| sample_weights(table, compile, &yb)).transpose()?;
                Some((xb, yb, weights))
            } else if synchronized {
                let (xb, yb) = empty_batch(&train, model.device())?;
                Some((xb, yb, None))
            } else {
                None
            };
            let step = match (parallel, &prepared) {
                (Some(parallel), prepared) => {
                    let batch = prepared.as_ref().map(|(xb, yb, weights)| (xb, yb, weights.as_ref()));
                    let interrupted = interrupt.load(Ordering::SeqCst);
                    autocast(options.precision, || replica_train_step(model, compile, optimizer, batch, size, parallel, interrupted))?
                }
                (None, Some((xb, yb, weights))) => {
                    let (loss, probs) = autocast(options.precision, || train_step(model, compile, optimizer, xb, yb, weights.as_ref()))?;
                    // As in Keras, class weights weight the loss, not the compiled metrics.
                    let correct = match compile.accuracy {
                        Some(accuracy) if loss.is_finite() => tch::no_grad(|| count_correct(accuracy, yb, &probs.detach())),
                        _ => 0.0,
                    };
                    StepResult { loss, correct, interrupted: interrupt.load(Ordering::SeqCst) }
                }
                (None, None) => unreachable!("a single process always has samples"),
            };
            let loss_value = step.loss;
            if !loss_value.is_finite() {
                bail!(
                    "the loss became {loss_value} at epoch {}, batch {}: training stopped{}",
                    state.epoch + 1,
                    batch + 1,
                    options.checkpoint_dir.as_ref().map_or(String::new(), |d| format!("; the last good checkpoint is in {}", d.display()))
                );
            }
            state.loss_sum += loss_value * size as f64;
            state.correct += step.correct;
            state.seen += size;
            state.next_batch = batch + 1;
            let logs = running_logs(&state, compile.accuracy);
            progress.update(state.seen, &logs);
            if !callbacks.is_empty() {
                callbacks.on_train_batch_end(batch, &logs, &mut context(model, optimizer, compile, chief))?;
            }
            if step.interrupted {
                if let Some(parallel) = parallel {
                    parallel.average_non_trainable_weights(model)?;
                }
                let checkpoint = match &options.checkpoint_dir {
                    Some(dir) if chief => Some(checkpoint::save(dir, model, optimizer, &state, callbacks)?),
                    Some(dir) => Some(dir.clone()), // saved there by rank 0
                    None => None,
                };
                return Err(Stopped::Interrupted { checkpoint }.into());
            }
        }
        if let Some(parallel) = parallel {
            parallel.average_non_trainable_weights(model)?;
        }
        let mut logs = running_logs(&state, compile.accuracy);
        if let Some(validation) = validation {
            let result = match parallel {
                Some(parallel) => parallel.evaluate(model, compile, validation, options.batch_size, &options.loading)?,
                None => evaluate_dataset(model, compile, validation, options.batch_size, &options.loading)?,
            };
            logs.push(("val_loss", result.loss));
            if let Some(accuracy) = result.accuracy {
                logs.push(("val_accuracy", accuracy));
            }
        }
        // As in Keras: the progress line first, then the callbacks (which may add to the logs),
        // then History.
        progress.finish(&logs);
        let mut ctx = context(model, optimizer, compile, chief);
        callbacks.on_epoch_end(state.epoch, &mut logs, &mut ctx)?;
        let stop_training = ctx.stop_training;
        state.history.push(&logs);
        state = TrainingState { epoch: state.epoch + 1, history: state.history, stop_training, ..Default::default() };
        if let (Some(dir), true) = (&options.checkpoint_dir, chief) {
            checkpoint::save(dir, model, optimizer, &state, callbacks)?;
        }
        if let Some(parallel) = parallel {
            parallel.group().barrier()?;
        }
        crate::runtime::release_freed_memory();
    }
    callbacks.on_train_end(&mut context(model, optimizer, compile, chief))?;
    Ok(state.history)
}

/// The callbacks' view of training; `chief`: this process is the one that writes files.
fn context<'a>(model: &'a mut Model, optimizer: &'a mut Optimizer, compile: &'a CompileConfig, chief: bool) -> CallbackContext<'a> {
    CallbackContext { chief, ..CallbackContext::new(model, optimizer, compile) }
}

/// One step's result: the batch's mean loss, its correct predictions, and whether any process
/// was interrupted.
struct StepResult {
    loss: f64,
    correct: f64,
    interrupted: bool,
}

/// One optimisation step on a batch (BatchNorm in training mode): forward, Keras's loss,
/// backward, optimizer update (in bfloat16 when run inside `autocast(Precision::Bf16, ..)`).
/// With sample weights, the loss is Keras's `sum_over_batch_size`: the weighted losses' sum over
/// the batch size. Returns the batch's loss and the predicted probabilities.
/// A non-finite loss is returned without updating the weights.
pub fn train_step(
    model: &Model,
    compile: &CompileConfig,
    optimizer: &mut Optimizer,
    xb: &Tensor,
    yb: &Tensor,
    sample_weight: Option<&Tensor>,
) -> Result<(f64, Tensor)> {
    let (per_sample, probs) = per_sample_loss(model, compile, xb, yb, sample_weight)?;
    let loss = per_sample.mean(Kind::Float);
    let loss_value = loss.double_value(&[]);
    if loss_value.is_finite() {
        // Gradients are returned rather than accumulated into `.grad`: nothing to zero, and no
        // extra pass adding each new gradient to a zeroed one.
        let variables = model.trainable_variables();
        let grads = Tensor::run_backward(&[&loss], &variables.iter().map(|(_, v)| v).collect::<Vec<_>>(), false, false);
        optimizer.apply(&variables, &grads)?;
    }
    Ok((loss_value, probs))
}

/// The forward pass in training mode: each sample's loss (weighted by `sample_weight`) and the
/// predicted probabilities.
fn per_sample_loss(
    model: &Model,
    compile: &CompileConfig,
    xb: &Tensor,
    yb: &Tensor,
    sample_weight: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let (probs, logits) = model.forward_with_logits(&[xb], true)?;
    let logits = compile.loss_logits(&probs, logits);
    let per_sample = compile.loss.per_sample(compile.style, yb, &probs, logits.as_ref());
    let per_sample = match sample_weight {
        Some(weights) => per_sample * weights.to_device(probs.device()),
        None => per_sample,
    };
    Ok((per_sample, probs))
}

/// [`train_step`] as one replica of a data-parallel step over a global batch of `global_size`
/// samples, of which `batch` (`x`, `y`, sample weights) is this rank's slice (`None`: an empty
/// slice of a short last batch). The replica's loss is its samples' loss sum over the global
/// batch size (Keras's `compute_average_loss`), so the gradients summed over the ranks are the
/// global batch's mean gradient; every rank then applies that same update.
#[allow(clippy::too_many_arguments)]
fn replica_train_step(
    model: &Model,
    compile: &CompileConfig,
    optimizer: &mut Optimizer,
    batch: Option<(&Tensor, &Tensor, Option<&Tensor>)>,
    global_size: usize,
    parallel: &DataParallel,
    interrupted: bool,
) -> Result<StepResult> {
    let variables = model.trainable_variables();
    let (grads, totals) = match batch {
        Some((xb, yb, sample_weight)) => {
            let (per_sample, probs) = per_sample_loss(model, compile, xb, yb, sample_weight)?;
            parallel.check_batch_statistics()?;
            let loss_sum = per_sample.sum(Kind::Float);
            let loss = &loss_sum / global_size as f64;
            // (A synchronized BatchNorm's backward all-reduces too, so this can fail.)
            let grads = Tensor::f_run_backward(&[&loss], &variables.iter().map(|(_, v)| v).collect::<Vec<_>>(), false, false)
                .with_context(|| format!("rank {} of {}: the backward pass failed", parallel.rank(), parallel.world_size()))?;
            let correct = compile.accuracy.map_or(0.0, |accuracy| tch::no_grad(|| count_correct(accuracy, yb, &probs.detach())));
            (grads, StepTotals { loss_sum: loss_sum.double_value(&[]), correct, interrupted })
        }
        None => {
            let grads = variables.iter().map(|(_, v)| v.zeros_like()).collect();
            (grads, StepTotals { loss_sum: 0.0, correct: 0.0, interrupted })
        }
    };
    let totals = parallel.sum_step(&grads, totals)?;
    let loss = totals.loss_sum / global_size as f64;
    if loss.is_finite() {
        optimizer.apply(&variables, &grads)?;
    }
    Ok(StepResult { loss, correct: totals.correct, interrupted: totals.interrupted })
}

/// A batch of no samples shaped as `data`'s (its first sample's inputs and labels, narrowed to
/// none): what a rank with an empty slice of a short last batch runs.
fn empty_batch(data: &Dataset, device: Device) -> Result<(Tensor, Tensor)> {
    let (x, y) = data.take(1).batches(None, 1, 0, &Loading::default()).next().context("the dataset has no samples")??;
    Ok((x.narrow(0, 0, 0).to_device(device), y.narrow(0, 0, 0).to_device(device).to_kind(Kind::Float)))
}

/// A batch on the model's device. Host batches bound for CUDA go through pinned memory so the
/// copy is asynchronous (the step's kernels queue behind it instead of waiting for it); pinning
/// needs a CUDA build, so where it fails the batch is copied the ordinary way.
fn to_device_for_step(batch: &Tensor, device: Device) -> Tensor {
    if !device.is_cuda() || batch.device() == device {
        return batch.to_device(device);
    }
    match batch.f_pin_memory(device) {
        Ok(pinned) => pinned.to_device_(device, pinned.kind(), true, false),
        Err(_) => batch.to_device(device),
    }
}

/// The epoch's sample order: shuffled from (seed, epoch) so a resumed run replays it exactly,
/// by a generator of its own, so shuffling neither reseeds nor draws from libtorch's global one
/// (which weight initialisation and Dropout use).
fn epoch_order(n: usize, options: &FitOptions, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if options.shuffle {
        SplitMix64::for_parts(options.seed, &[epoch as u64]).shuffle(&mut order);
    }
    order
}

fn running_logs(state: &TrainingState, accuracy: Option<Accuracy>) -> Logs {
    let seen = state.seen.max(1) as f64;
    let mut logs = vec![("loss", state.loss_sum / seen)];
    if accuracy.is_some() {
        logs.push(("accuracy", state.correct / seen));
    }
    logs
}

/// scikit-learn's `compute_class_weight("balanced", classes=np.unique(y), y=y)`, as a table by
/// class index: `n_samples / (n_classes * count[class])` for the classes present (absent ones
/// get 1.0, which no sample uses).
pub fn balanced_class_weights(labels: &[i64]) -> Result<Vec<f64>> {
    if let Some(bad) = labels.iter().find(|&&l| l < 0) {
        bail!("class labels must be at least 0, found {bad}");
    }
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut counts = vec![0usize; classes];
    for &label in labels {
        counts[label as usize] += 1;
    }
    let present = counts.iter().filter(|&&c| c > 0).count();
    Ok(counts.iter().map(|&c| if c == 0 { 1.0 } else { labels.len() as f64 / (present * c) as f64 }).collect())
}

/// Each sample's weight from its class (`table[class]`, 1.0 past the end), float32 (N).
fn sample_weights(table: &[f64], compile: &CompileConfig, yb: &Tensor) -> Result<Tensor> {
    let classes = match compile.label_mode() {
        LabelMode::Categorical => yb.argmax(-1, false),
        LabelMode::Int | LabelMode::Binary => yb.flatten(0, -1).round().to_kind(Kind::Int64),
    };
    let classes: Vec<i64> = Vec::try_from(classes.to_device(Device::Cpu)).context("class_weight: reading the batch's classes")?;
    let weights: Vec<f32> =
        classes.iter().map(|&c| usize::try_from(c).ok().and_then(|c| table.get(c)).copied().unwrap_or(1.0) as f32).collect();
    Ok(Tensor::from_slice(&weights).to_device(yb.device()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_orders_are_permutations_that_repeat_per_seed_and_epoch() {
        let options = FitOptions { seed: 3, ..Default::default() };
        let order = |epoch| epoch_order(50, &options, epoch);
        let mut sorted = order(0);
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<usize>>());
        assert_eq!(order(0), order(0), "the same epoch replays");
        assert_ne!(order(0), order(1), "each epoch has its own order");
        let in_order = FitOptions { shuffle: false, ..options };
        assert_eq!(epoch_order(5, &in_order, 7), [0, 1, 2, 3, 4]);
    }
}
