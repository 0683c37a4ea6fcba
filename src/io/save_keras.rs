//! Writing Keras 3 `.keras` archives (`keras/src/saving/saving_lib.py`): a zip holding
//! `metadata.json`, `config.json` (the functional config in Keras 3's dialect: `module`,
//! `registered_name`, `build_config`, connections as call arguments) and `model.weights.h5`
//! (`layers/<class name + counter>/vars/<i>`, each `vars` group naming its layer, as Keras ≥ 3.6
//! writes). Keras 3's `keras.models.load_model` reads it back; `model.load_weights` reads the
//! `.weights.h5` file [`save_weights_keras3`] writes.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::atomic::write_bytes_atomically;
use super::hdf5_image::{create_in_memory, file_image};
use super::load_weights::{keras3_group_path, keras3_groups};
use super::model_config::model_config;
use super::nested_weights::refuse_nested_models;
use super::optimizer_weights::write_keras3_optimizer_vars;
use super::save_h5::{write_str_attr, write_weight_dataset};
use super::subclassed_resnet::TutorialResnet;
use crate::graph::naming::AutoNamer;
use crate::graph::nesting::own_name;
use crate::graph::optimizer_state::SavedOptimizerState;
use crate::graph::{KerasVersion, Model};
use crate::train::compile::TrainingConfig;

/// The Keras whose `.keras` format this follows.
const KERAS3_FORMAT_VERSION: &str = "3.15.1";

/// `model.save("model.keras")`, with the optimizer's state when the model carries one (Keras
/// 3's `load_model` then restores it).
pub fn save_model_keras(model: &Model, path: &Path) -> Result<()> {
    refuse_nested_models(model, "a Keras 3 .keras archive")?;
    let config = keras3_config(model)?;
    let weights = create_in_memory().and_then(|file| {
        write_weights(model, &file)?;
        if let (SavedOptimizerState::Restorable(state), Some(training)) = (&model.optimizer_state, &model.training_config) {
            write_keras3_optimizer_vars(model, state, &TrainingConfig::from_keras(training)?.optimizer, &file)?;
        }
        file_image(&file)
    })?;
    let build = || -> Result<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("metadata.json", stored)?;
        zip.write_all(json!({ "keras_version": KERAS3_FORMAT_VERSION, "date_saved": "keras-tch" }).to_string().as_bytes())?;
        zip.start_file("config.json", stored)?;
        zip.write_all(config.to_string().as_bytes())?;
        zip.start_file("model.weights.h5", stored)?;
        zip.write_all(&weights)?;
        Ok(zip.finish()?.into_inner())
    };
    build()
        .and_then(|bytes| write_bytes_atomically(path, &bytes))
        .with_context(|| format!("saving model '{}' as a .keras archive", model.name))
}

/// Keras 3's `model.save_weights("model.weights.h5")`: the same `layers/<group>/vars/<i>` file
/// the archive holds, on its own (Keras 3 requires the `.weights.h5` suffix for it).
/// The TF2 tutorial's ResNet18/34 is written as its subclassed model's `save_weights` writes it
/// (attribute paths), which the tutorial's classes read (see [`super::subclassed_resnet`]).
pub fn save_weights_keras3(model: &Model, path: &Path) -> Result<()> {
    refuse_nested_models(model, "a Keras 3 .weights.h5 file")?;
    let bytes = match TutorialResnet::of(model) {
        Some(tutorial) => create_in_memory().and_then(|file| {
            tutorial.write_keras3(model, &file)?;
            file_image(&file)
        }),
        None => create_in_memory().and_then(|file| {
            write_weights(model, &file)?;
            file_image(&file)
        }),
    };
    bytes
        .and_then(|bytes| write_bytes_atomically(path, &bytes))
        .with_context(|| format!("saving the weights of model '{}' in Keras 3's layout", model.name))
}

/// Keras 3's `config.json` for the graph (and `compile_config` when the model is compiled).
fn keras3_config(model: &Model) -> Result<Value> {
    let mut config = model_config(model, KerasVersion::Keras3);
    if let Some(training) = &model.training_config {
        config["compile_config"] = TrainingConfig::in_dialect(training, KerasVersion::Keras3)?;
    }
    Ok(config)
}

/// The model's weights in Keras 3's `model.weights.h5` layout, into `file`.
fn write_weights(model: &Model, file: &hdf5::File) -> Result<()> {
    let (groups, nested_groups) = keras3_groups(model);
    let by_layer: std::collections::HashMap<&str, &str> = groups.iter().map(|(g, l)| (l.as_str(), g.as_str())).collect();
    let layers = file.create_group("layers")?;
    // A nested model: a group with its own (empty) vars, and its input layers' groups inside.
    for nested in model.nested_models() {
        let group = &nested_groups[&nested.path];
        let vars = group_at(&layers, &format!("{group}/vars"))?;
        write_str_attr(&vars, "name", nested.name())?;
        for position in 0..nested.input_names.len().max(1) {
            let input = AutoNamer::new(KerasVersion::Keras3).nth("InputLayer", position);
            let vars = group_at(&layers, &format!("{}/vars", keras3_group_path(group, &input)))?;
            write_str_attr(&vars, "name", nested.input_names.get(position).map_or("input_layer", String::as_str))?;
        }
    }
    for node in model.layers() {
        let vars = group_at(&layers, &format!("{}/vars", by_layer[node.name.as_str()]))?;
        write_str_attr(&vars, "name", own_name(&node.name))?;
        for (index, weight) in node.layer.weights().iter().enumerate() {
            write_weight_dataset(&vars, &index.to_string(), weight)?;
        }
    }
    let root_vars = file.create_group("vars")?;
    write_str_attr(&root_vars, "name", &model.name)?;
    Ok(())
}

/// The group at `path` below `root`, made with the groups on the way if missing.
fn group_at(root: &hdf5::Group, path: &str) -> Result<hdf5::Group> {
    let mut group = root.clone();
    for part in path.split('/') {
        group = match group.group(part) {
            Ok(existing) => existing,
            Err(_) => group.create_group(part)?,
        };
    }
    Ok(group)
}
