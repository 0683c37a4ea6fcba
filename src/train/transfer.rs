//! Transfer learning's training side, in the lecture's order: train the new head with the base
//! frozen — on cached bottleneck features when the whole base is frozen (the default), else on
//! the images — then optionally unfreeze the top stages and fine-tune at a lower learning rate.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Result};
use tch::Tensor;

use super::augment::Augmentation;
use super::bottleneck::{base_fingerprint, cached_features, compute_features, compute_features_in_parallel, copy_dense, head_model};
use super::callbacks::CallbackConfig;
use super::compile::CompileConfig;
use super::curves::save_curves;
use super::data_parallel::DataParallel;
use super::fit::{fit, fit_dataset, FitOptions};
use super::freeze::resnet_stages;
use super::history::History;
use super::losses::CrossEntropyStyle;
use super::optimizer::{Optimizer, OptimizerConfig};
use crate::data::dataset::Dataset;
use crate::data::loader::Loading;
use crate::graph::optimizer_state::OptimizerState;
use crate::graph::Model;
use crate::layers::autocast::Precision;

/// The head's layers in the model (see `models::transfer::with_new_head`).
#[derive(Debug, Clone)]
pub struct HeadLayers {
    /// The global pooling layer: its output is the bottleneck feature.
    pub pool: String,
    pub dense: String,
    pub dropout: f64,
}

/// Training (and validation) images as the model takes them (preprocessed) with one-hot labels.
pub struct TransferData {
    pub train: Dataset,
    pub validation: Option<Dataset>,
}

impl TransferData {
    /// Preprocessed images and one-hot labels already in memory; `identity` names them for the
    /// feature cache's key.
    pub fn from_tensors(x: &Tensor, y: &Tensor, validation: Option<(&Tensor, &Tensor)>, identity: &str) -> Result<Self> {
        Ok(Self {
            train: Dataset::from_tensors(x, y, identity)?,
            validation: validation.map(|(x, y)| Dataset::from_tensors(x, y, &format!("{identity} (validation)"))).transpose()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct TransferOptions {
    pub epochs: usize,
    pub batch_size: i64,
    pub learning_rate: f64,
    pub seed: u64,
    pub verbose: u8,
    /// Train the head on cached features when the whole base is frozen.
    pub cache_dir: Option<PathBuf>,
    /// Then unfreeze this many top ResNet stages (BatchNorm stays frozen)...
    pub fine_tune_stages: usize,
    /// ... and train them this many epochs at this learning rate.
    pub fine_tune_epochs: usize,
    pub fine_tune_learning_rate: f64,
    /// Augment the training images (turns the feature cache off: features change every epoch).
    pub augmentation: Augmentation,
    /// Where each phase's History (`head_history.{json,csv}`, `fine_tune_history.*`), curves
    /// (`*_curves.png`) and crash-safe checkpoints (`checkpoints-head/`, `checkpoints-fine-tune/`)
    /// go, as `fit` writes them for `train`; None writes nothing.
    pub run_dir: Option<PathBuf>,
    /// Precision of the training steps (head and fine-tuning); the cached bottleneck features
    /// are always computed in float32, so one cache serves both precisions.
    pub precision: Precision,
    /// How images are read (worker threads, read-ahead).
    pub loading: Loading,
    /// Keras's callbacks, given to each phase's `fit` as a Keras user passes them to both calls
    /// (each phase starts them afresh). On cached features the head trains alone, so a
    /// `ModelCheckpoint` there would save only the head: it is left out of that phase (with a
    /// note), and the whole model is saved at the end as always.
    pub callbacks: Vec<CallbackConfig>,
    /// Keras's `class_weight`, for both phases.
    pub class_weight: Option<Vec<f64>>,
    /// Train as one rank of a data-parallel job (as `fit` does; the bottleneck features are
    /// computed shared out between the ranks; rank 0 writes).
    pub data_parallel: Option<DataParallel>,
}

impl Default for TransferOptions {
    /// One head epoch at Keras's default Adam learning rate and batch size, no feature cache, no
    /// fine-tuning, no augmentation, nothing written, float32.
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 32,
            learning_rate: 1e-3,
            seed: 0,
            verbose: 1,
            cache_dir: None,
            fine_tune_stages: 0,
            fine_tune_epochs: 0,
            fine_tune_learning_rate: 0.0,
            augmentation: Augmentation::default(),
            run_dir: None,
            precision: Precision::Fp32,
            loading: Loading::default(),
            callbacks: Vec::new(),
            class_weight: None,
            data_parallel: None,
        }
    }
}

/// What a transfer run did.
pub struct TransferReport {
    pub head_history: History,
    pub fine_tune_history: Option<History>,
    /// The last phase's optimizer state (Adam's), for the saved model to continue from.
    pub optimizer_state: OptimizerState,
    /// The feature cache file, and whether an earlier run's was reused.
    pub cache: Option<(PathBuf, bool)>,
}

/// Whether every layer below the head is frozen (so its features never change).
pub fn base_is_frozen(model: &Model, head: &HeadLayers) -> bool {
    let head_names = [head.pool.as_str(), head.dense.as_str()];
    model
        .layers()
        .iter()
        .filter(|n| !head_names.contains(&n.name.as_str()) && n.layer.class_name() != "Dropout")
        .all(|n| !n.trainable || n.layer.weights().is_empty())
}

/// Train the head (then fine-tune), stopping cleanly with a checkpoint when `interrupt` is set.
pub fn train_transfer(
    model: &mut Model,
    head: &HeadLayers,
    data: &TransferData,
    options: &TransferOptions,
    interrupt: &AtomicBool,
) -> Result<TransferReport> {
    let compile = CompileConfig::for_model(model, None, CrossEntropyStyle::TfKeras)?;
    let fit_options = |epochs, phase: &str| FitOptions {
        epochs,
        batch_size: options.batch_size,
        seed: options.seed,
        verbose: options.verbose,
        augmentation: options.augmentation.is_active().then(|| options.augmentation.clone()),
        checkpoint_dir: options.run_dir.as_ref().map(|dir| dir.join(format!("checkpoints-{phase}"))),
        precision: options.precision,
        loading: options.loading,
        callbacks: options.callbacks.clone(),
        class_weight: options.class_weight.clone(),
        data_parallel: options.data_parallel.clone(),
        ..Default::default()
    };
    let parallel = options.data_parallel.as_ref();
    let validation = data.validation.as_ref();

    let (head_history, cache, head_optimizer) = match &options.cache_dir {
        Some(dir) if base_is_frozen(model, head) && !options.augmentation.is_active() => {
            let fingerprint = base_fingerprint(model, &head.pool)?;
            let key = |data: &Dataset| fingerprint.clone().add_str(&data.identity()).hex();
            let features = |data: &Dataset| match parallel {
                Some(parallel) => {
                    compute_features_in_parallel(model, &head.pool, data, options.batch_size, &options.loading, parallel, interrupt)
                }
                None => compute_features(model, &head.pool, data, options.batch_size, &options.loading, interrupt),
            };
            let (train_features, path, reused) = cached_features(dir, &key(&data.train), parallel, || features(&data.train))?;
            crate::runtime::release_freed_memory();
            let validation_features = match &data.validation {
                Some(validation) => {
                    Some((cached_features(dir, &key(validation), parallel, || features(validation))?.0, validation.targets()?))
                }
                None => None,
            };
            let mut head_only = head_model(model, &head.dense, head.dropout, model.device())?;
            let mut optimizer = Optimizer::new(OptimizerConfig::adam(options.learning_rate));
            let history = fit(
                &mut head_only,
                &compile,
                &mut optimizer,
                &train_features.to_device(model.device()),
                &data.train.targets()?,
                validation_features.as_ref().map(|(x, y)| (x, y)),
                // Epochs over cached features take seconds: no checkpoints needed.
                &FitOptions {
                    checkpoint_dir: None,
                    callbacks: head_only_callbacks(&options.callbacks),
                    ..fit_options(options.epochs, "head")
                },
                interrupt,
            )?;
            copy_dense(&head_only, model, &head.dense)?;
            // The head model's Dense has the whole model's name: its slots fit the whole model.
            (history, Some((path, reused)), optimizer.saved_state())
        }
        _ => {
            let mut optimizer = Optimizer::new(OptimizerConfig::adam(options.learning_rate));
            let history =
                fit_dataset(model, &compile, &mut optimizer, &data.train, validation, &fit_options(options.epochs, "head"), interrupt)?;
            (history, None, optimizer.saved_state())
        }
    };

    let (fine_tune_history, optimizer_state) = if options.fine_tune_stages > 0 && options.fine_tune_epochs > 0 {
        unfreeze_top_stages(model, options.fine_tune_stages)?;
        // Keras recompiles after changing `trainable`: a fresh optimizer at the lower rate.
        let mut optimizer = Optimizer::new(OptimizerConfig::adam(options.fine_tune_learning_rate));
        let history = fit_dataset(
            model,
            &compile,
            &mut optimizer,
            &data.train,
            validation,
            &fit_options(options.fine_tune_epochs, "fine-tune"),
            interrupt,
        )?;
        (Some(history), optimizer.saved_state())
    } else {
        (None, head_optimizer)
    };
    if let (Some(dir), true) = (&options.run_dir, parallel.is_none_or(DataParallel::is_chief)) {
        save_history(&head_history, dir, "head")?;
        if let Some(history) = &fine_tune_history {
            save_history(history, dir, "fine_tune")?;
        }
    }
    Ok(TransferReport { head_history, fine_tune_history, cache, optimizer_state })
}

/// The callbacks for the head trained alone on cached features: all but `ModelCheckpoint`,
/// which would save the head model instead of the whole one.
fn head_only_callbacks(callbacks: &[CallbackConfig]) -> Vec<CallbackConfig> {
    let (checkpoints, others): (Vec<_>, Vec<_>) = callbacks.iter().cloned().partition(|c| matches!(c, CallbackConfig::ModelCheckpoint(_)));
    if !checkpoints.is_empty() {
        println!("note: ModelCheckpoint does not run while the head trains on cached features (it would save the head alone); the whole model is saved at the end");
    }
    others
}

fn save_history(history: &History, dir: &Path, phase: &str) -> Result<()> {
    history.save_json(&dir.join(format!("{phase}_history.json")))?;
    history.save_csv(&dir.join(format!("{phase}_history.csv")))?;
    save_curves(history, &dir.join(format!("{phase}_curves.png")))
}

/// Make the last `stages` ResNet stages trainable (5 = conv5_x, 4 = conv4_x, …), keeping their
/// BatchNorm layers frozen in inference mode, as Keras's fine-tuning guide advises.
pub fn unfreeze_top_stages(model: &mut Model, stages: usize) -> Result<Vec<String>> {
    let layer_names: Vec<&str> = model.layers().iter().map(|n| n.name.as_str()).collect();
    let Some(layer_stages) = resnet_stages(&layer_names) else {
        bail!(
            "model '{}' has no ResNet stages to unfreeze: none of its layers is named like a residual block \
             (conv2_block1_1_conv, res2a_branch2a, layer1_block1_conv1)",
            model.name
        );
    };
    let first = 6usize.saturating_sub(stages).max(1);
    let names: Vec<String> = model
        .layers()
        .iter()
        .zip(&layer_stages)
        .filter(|(n, stage)| stage.is_some_and(|s| s >= first) && n.layer.class_name() != "BatchNormalization")
        .map(|(n, _)| n.name.clone())
        .collect();
    for name in &names {
        model.set_trainable(name, true)?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_resnet_has_stages_to_unfreeze() {
        let mut alexnet = crate::models::classic::alexnet(tch::Device::Cpu).unwrap();
        let error = unfreeze_top_stages(&mut alexnet, 5).unwrap_err().to_string();
        assert!(error.contains("no ResNet stages"), "{error}");

        let mut resnet = crate::models::course::resnet50([64, 64, 3], 6, None, tch::Device::Cpu).unwrap();
        let unfrozen = unfreeze_top_stages(&mut resnet, 1).unwrap();
        assert!(!unfrozen.is_empty() && unfrozen.iter().all(|n| n.starts_with("res5")), "{unfrozen:?}");
    }
}
