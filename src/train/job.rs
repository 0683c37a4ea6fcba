//! The `train` workflow as library calls, so the command line, the ported notebooks and a Rust
//! user run the same steps: open the data (a course file or a class-per-folder dataset),
//! choose the compile and optimizer (a model file's own, or Keras's defaults), then fit, write
//! History, curves and the model, and evaluate on the validation data.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};

use super::compile::{CompileConfig, TrainingConfig};
use super::curves::save_curves;
use super::data_parallel::DataParallel;
use super::evaluate::{evaluate_dataset, evaluate_with_report, Evaluation, ReportRequest};
use super::fit::{fit_dataset, FitOptions};
use super::history::History;
use super::losses::{CrossEntropyStyle, Loss};
use super::optimizer::{Optimizer, OptimizerConfig, OptimizerKind};
use super::report::EvaluationReport;
use crate::data::course_file::course_dataset;
use crate::data::dataset::Dataset;
use crate::data::folders::{folder_dataset, folder_datasets};
use crate::graph::optimizer_state::SavedOptimizerState;
use crate::graph::Model;
use crate::imaging::{ImageReading, Interpolation, PreprocessMode};
use crate::io::save_model_h5;

/// Where the training data is and how to read it.
#[derive(Debug, Clone)]
pub struct DataSpec {
    /// A course-layout `.h5`, or a folder with one sub-folder per class.
    pub train: PathBuf,
    /// Validation data of the same kind.
    pub validation: Option<PathBuf>,
    /// Without `validation`: of a folder, the files `image_dataset_from_directory` holds out
    /// for this fraction and `seed`; of a course file, `fit`'s last fraction.
    pub validation_split: f64,
    pub seed: u64,
    /// (height, width) folder images are read at (default: Keras's 256×256).
    pub image_size: Option<[u32; 2]>,
    pub interpolation: Interpolation,
    pub crop_to_aspect_ratio: bool,
    /// Use only the first this many training samples.
    pub limit: Option<usize>,
}

/// Opened training data: raw datasets (0-255 pixels, integer labels).
pub struct TrainingData {
    pub train: Dataset,
    pub validation: Option<Dataset>,
    /// Whether it came from image folders (whose split is made here, not by `fit`).
    pub from_folders: bool,
    /// Files found in the folder (training + validation, before `limit`).
    pub found: usize,
}

impl TrainingData {
    /// The datasets as the model takes them: preprocessed, labels as `compile`'s loss wants.
    pub fn as_the_model_takes(&self, preprocess: PreprocessMode, compile: &CompileConfig) -> (Dataset, Option<Dataset>) {
        let convert = |data: &Dataset| data.clone().with_preprocessing(preprocess).with_label_mode(compile.label_mode());
        (convert(&self.train), self.validation.as_ref().map(convert))
    }
}

/// Open `spec`'s data; folder images are read at `spec.image_size`, else `model_size`, else 256×256.
pub fn open_training_data(spec: &DataSpec, model_size: Option<[u32; 2]>) -> Result<TrainingData> {
    let from_folders = spec.train.is_dir();
    let (train, validation) = if from_folders {
        let [height, width] = spec.image_size.or(model_size).unwrap_or([256, 256]);
        let reading = ImageReading::new((height, width), spec.interpolation).with_crop_to_aspect_ratio(spec.crop_to_aspect_ratio);
        match &spec.validation {
            Some(path) => (folder_dataset(&spec.train, reading)?, Some(folder_dataset(path, reading)?)),
            None => folder_datasets(&spec.train, spec.validation_split, spec.seed, reading)?,
        }
    } else {
        let validation = spec.validation.as_ref().map(|path| course_dataset(path, "test")).transpose()?;
        (course_dataset(&spec.train, "train")?, validation)
    };
    let found = train.len() + validation.as_ref().map_or(0, Dataset::len);
    let train = match spec.limit {
        Some(limit) => train.take(limit),
        None => train,
    };
    if train.is_empty() {
        bail!("{} holds no training images", spec.train.display());
    }
    Ok(TrainingData { train, validation, from_folders, found })
}

/// A model's (height, width) input, when it takes images.
pub fn image_input_size(model: &Model) -> Option<[u32; 2]> {
    match model.node(model.inputs()[0]).output_shape[..] {
        [h, w, _] => Some([h as u32, w as u32]),
        _ => None,
    }
}

/// The compile to train with: the model file's own (with `style`), unless a loss is given.
pub fn compile_for(model: &Model, loss: Option<Loss>, style: CrossEntropyStyle) -> Result<CompileConfig> {
    match (&model.training_config, loss) {
        (Some(config), None) => Ok(CompileConfig { style, ..CompileConfig::from_keras(config)? }),
        (_, loss) => CompileConfig::for_model(model, loss, style),
    }
}

/// The optimizer to train with: the model file's own when neither a kind nor a rate is given
/// (Keras's `Adam()` when the file's cannot be used, with the reason), else `kind` (Adam) with
/// Keras's defaults at `learning_rate`; `epsilon` overrides Adam's.
pub fn optimizer_for(
    model: &Model,
    kind: Option<OptimizerKind>,
    learning_rate: Option<f64>,
    epsilon: Option<f64>,
) -> (OptimizerConfig, Option<String>) {
    let (mut config, note) = match (&model.training_config, kind, learning_rate) {
        (Some(training), None, None) => match TrainingConfig::from_keras(training) {
            Ok(file) => (file.optimizer, None),
            Err(why) => (OptimizerConfig::adam(1e-3), Some(format!("{why:#}; training with Keras's Adam() instead"))),
        },
        (_, kind, rate) => (OptimizerConfig::with_defaults(kind.unwrap_or(OptimizerKind::Adam), rate), None),
    };
    if let (Some(value), OptimizerConfig::Adam { epsilon, .. }) = (epsilon, &mut config) {
        *epsilon = value;
    }
    (config, note)
}

/// Keras's `load_model` then `fit`: continue from the optimizer state `model`'s file saved,
/// when it is `optimizer`'s class. Returns what was done (or why not), to tell the user.
pub fn continue_saved_optimizer(model: &Model, optimizer: &mut Optimizer) -> Option<String> {
    match &model.optimizer_state {
        SavedOptimizerState::Absent => None,
        SavedOptimizerState::Unusable(why) => Some(format!("note: the model file's optimizer state is not used: {why}")),
        SavedOptimizerState::Restorable(state) => Some(match optimizer.restore_saved(state, model.device()) {
            Ok(()) => format!("Continuing from the model file's optimizer state ({}, {} steps)", state.class, state.iterations),
            Err(why) => format!("note: {why:#}: the optimizer starts afresh"),
        }),
    }
}

/// What `model.save` after `fit` keeps besides the weights: the compile settings and the
/// optimizer's state, so that the file continues training (here or in Keras) where it stopped.
pub fn keep_training_state(model: &mut Model, compile: &CompileConfig, optimizer: &Optimizer) {
    model.training_config = Some(compile.training_config(&optimizer.config));
    model.optimizer_state = SavedOptimizerState::Restorable(optimizer.saved_state());
}

/// What [`fit_and_save`] did.
pub struct TrainOutcome {
    pub history: History,
    /// On the validation data, after training.
    pub evaluation: Option<Evaluation>,
    /// The report asked for, of the same predictions as `evaluation`.
    pub report: Option<EvaluationReport>,
}

/// Fit `model` on the raw datasets (preprocessed with `preprocess`, labels as the loss takes
/// them), write `history.{json,csv}` and `curves.png` to `run_dir`, save the model with its
/// compile to `save` (a Keras `.h5`), and evaluate it on the validation data (with the report
/// `report` asks for, from the same pass).
#[allow(clippy::too_many_arguments)]
pub fn fit_and_save(
    model: &mut Model,
    compile: &CompileConfig,
    optimizer: &mut Optimizer,
    data: &TrainingData,
    preprocess: PreprocessMode,
    options: &FitOptions,
    run_dir: &Path,
    save: &Path,
    report: Option<&ReportRequest>,
    interrupt: &AtomicBool,
) -> Result<TrainOutcome> {
    let (train, validation) = data.as_the_model_takes(preprocess, compile);
    let history = fit_dataset(model, compile, optimizer, &train, validation.as_ref(), options, interrupt)?;
    keep_training_state(model, compile, optimizer);
    // In a data-parallel job the ranks end with the same model: rank 0 writes it.
    if options.data_parallel.as_ref().is_none_or(DataParallel::is_chief) {
        std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        history.save_json(&run_dir.join("history.json"))?;
        history.save_csv(&run_dir.join("history.csv"))?;
        save_curves(&history, &run_dir.join("curves.png"))?;
        save_model_h5(model, save)?;
    }
    if let Some(parallel) = &options.data_parallel {
        parallel.group().barrier()?;
    }
    let (evaluation, report) = match (&validation, report) {
        (Some(validation), Some(request)) => {
            let (evaluation, report) = match &options.data_parallel {
                Some(parallel) => parallel.evaluate_with_report(model, compile, validation, 32, &options.loading, request)?,
                None => evaluate_with_report(model, compile, validation, 32, &options.loading, request)?,
            };
            (Some(evaluation), Some(report))
        }
        (Some(validation), None) => match &options.data_parallel {
            Some(parallel) => (Some(parallel.evaluate(model, compile, validation, 32, &options.loading)?), None),
            None => (Some(evaluate_dataset(model, compile, validation, 32, &options.loading)?), None),
        },
        (None, _) => (None, None),
    };
    Ok(TrainOutcome { history, evaluation, report })
}
