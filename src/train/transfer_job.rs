//! `keras-tch transfer` as library calls — what the command line, the ported notebooks and a
//! library user all run: open the data (a class-per-folder dataset or a course-layout file) and
//! the base at the data's image size ([`open_transfer`]); replace the base's top by a new
//! head and freeze the base ([`transfer_model`]); train ([`super::transfer::train_transfer`]);
//! save the model with its compile and class names ([`save_transfer_model`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tch::Device;

use super::compile::CompileConfig;
use super::freeze::{freeze, FreezeSpec};
use super::job::{image_input_size, open_training_data, DataSpec};
use super::losses::CrossEntropyStyle;
use super::optimizer::OptimizerConfig;
use super::transfer::HeadLayers;
use crate::data::dataset::Dataset;
use crate::graph::Model;
use crate::io::atomic::write_bytes_atomically;
use crate::io::save_model_h5;
use crate::models::transfer::{load_base, with_new_head, Base, NewHead};

/// The base, opened for the data's image size, and the raw datasets (0-255 pixels, integer labels).
pub struct OpenedTransfer {
    pub base: Base,
    pub train: Dataset,
    pub validation: Option<Dataset>,
}

/// Open the data `spec` names (as `train` opens it) and the base at `base_path`: folders are
/// read at `spec.image_size`, else at the base's input size (224×224 for checkpoints); a course
/// file fixes the image size, the base is built for it, and without `spec.validation` the test
/// split of its sibling `test_*.h5` validates when that file exists.
pub fn open_transfer(spec: &DataSpec, base_path: &Path, device: Device) -> Result<OpenedTransfer> {
    if spec.train.is_dir() {
        let base = load_base(base_path, spec.image_size.unwrap_or([224, 224]).map(i64::from), device)?;
        let data = open_training_data(spec, image_input_size(&base.model))?;
        return Ok(OpenedTransfer { base, train: data.train, validation: data.validation });
    }
    let validation = spec.validation.clone().or_else(|| sibling_test_file(&spec.train).filter(|p| p.exists()));
    let data = open_training_data(&DataSpec { validation, ..spec.clone() }, None)?;
    let shape = data.train.input_shape();
    let base = load_base(base_path, [shape[0], shape[1]], device)?;
    Ok(OpenedTransfer { base, train: data.train, validation: data.validation })
}

/// `train_x.h5` -> `test_x.h5` (the course's pairs: train_signs/test_signs, train_catvnoncat/…).
fn sibling_test_file(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix("train_")?;
    Some(path.with_file_name(format!("test_{rest}")))
}

/// The model a transfer run trains.
pub struct TransferModel {
    pub model: Model,
    pub head: HeadLayers,
    /// The base's layers that the new head replaced (its old top).
    pub dropped: Vec<String>,
    /// The new head's layers, in order.
    pub head_names: Vec<String>,
    /// The layers `freeze` froze, in order.
    pub frozen: Vec<String>,
}

/// `base` with its top replaced by `head` after `base_output` (default: its last image-shaped
/// output), frozen by `freeze_spec` — by default (`None`) everything below the head, which lets
/// the head train on cached features.
pub fn transfer_model(base: Model, base_output: Option<&str>, head: &NewHead, freeze_spec: Option<&FreezeSpec>) -> Result<TransferModel> {
    let (mut model, head_names, dropped) = with_new_head(base, base_output, head)?;
    let below_head = model.node(model.layer(&head_names[0])?.inbound[0]).name.clone();
    let spec = freeze_spec.cloned().unwrap_or(FreezeSpec { until: Some(below_head), ..Default::default() });
    let frozen = freeze(&mut model, &spec).context("freezing the new model's base")?;
    let head_layers = HeadLayers { pool: head_names[0].clone(), dense: head_names.last().expect("a Dense").clone(), dropout: head.dropout };
    Ok(TransferModel { model, head: head_layers, dropped, head_names, frozen })
}

/// Save the trained model as a Keras HDF5 at `save`, compiled as Keras would reload it (Adam at
/// `learning_rate`, categorical cross-entropy), and its class names in `OUT.classes.txt`; the
/// compile and that file's path.
pub fn save_transfer_model(model: &mut Model, classes: &[String], save: &Path, learning_rate: f64) -> Result<(CompileConfig, PathBuf)> {
    let compile = transfer_compile(model)?;
    model.training_config = Some(compile.training_config(&OptimizerConfig::adam(learning_rate)));
    save_model_h5(model, save)?;
    let classes_path = save.with_extension("classes.txt");
    write_bytes_atomically(&classes_path, (classes.join("\n") + "\n").as_bytes())?;
    Ok((compile, classes_path))
}

/// The compile a trained transfer model is saved and evaluated with: categorical cross-entropy
/// (tf.keras's), accuracy.
pub fn transfer_compile(model: &Model) -> Result<CompileConfig> {
    CompileConfig::for_model(model, None, CrossEntropyStyle::TfKeras)
}
