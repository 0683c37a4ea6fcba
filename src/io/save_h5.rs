//! Writing Keras 2 / tf.keras HDF5 files that real Keras loads: the full-model layout of
//! `model.save("model.h5")` (`model_config`, `training_config`, `model_weights`, and the
//! optimizer's `optimizer_weights` when the model carries its state) and the
//! weights-only layout of `save_weights` (the ImageNet checkpoints' layout), as tf.keras 2.x
//! writes them (`keras/src/legacy/saving/legacy_h5_format.py` reads the same): variable-length
//! string attributes, `weight_names` of the form `layer/kernel:0`, an empty float64
//! `weight_names` for weightless layers, datasets at `layer/layer/kernel:0`.

use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result};
use hdf5::types::VarLenUnicode;
use hdf5::{Group, Location};

use super::atomic::write_bytes_atomically;
use super::hdf5_image::{create_in_memory, file_image};
use super::model_config::model_config;
use super::nested_weights::refuse_nested_models;
use super::optimizer_weights::write_optimizer_weights;
use super::subclassed_resnet::TutorialResnet;
use crate::graph::nesting::{own_name, placement, Placement};
use crate::graph::optimizer_state::SavedOptimizerState;
use crate::graph::{KerasVersion, Model, Node};
use crate::layers::Weight;
use crate::train::compile::TrainingConfig;

/// The Keras whose HDF5 format these files follow (Keras reads `keras_version` only to convert
/// Keras 1 files).
pub(crate) const KERAS_FORMAT_VERSION: &str = "2.21.0";

/// `model.save("model.h5")`: architecture, weights and (if compiled) training configuration.
pub fn save_model_h5(model: &Model, path: &Path) -> Result<()> {
    refuse_nested_models(model, "a tf.keras .h5 file")?;
    let build = || -> Result<Vec<u8>> {
        let file = create_in_memory()?;
        write_str_attr(&file, "backend", "tensorflow")?;
        write_str_attr(&file, "keras_version", KERAS_FORMAT_VERSION)?;
        write_str_attr(&file, "model_config", &model_config(model, KerasVersion::Keras2).to_string())?;
        if let Some(training) = &model.training_config {
            // A model from a Keras 3 file holds Keras 3's compile_config: tf.keras needs its own.
            write_str_attr(&file, "training_config", &TrainingConfig::in_dialect(training, KerasVersion::Keras2)?.to_string())?;
        }
        let weights = file.create_group("model_weights")?;
        write_weight_groups(model, &weights)?;
        if let SavedOptimizerState::Restorable(state) = &model.optimizer_state {
            write_optimizer_weights(model, state, &file)?;
        }
        file_image(&file)
    };
    build().and_then(|bytes| write_bytes_atomically(path, &bytes)).with_context(|| format!("saving model '{}'", model.name))
}

/// `model.save_weights("weights.h5")`: the layer groups at the file's root. The TF2 tutorial's
/// ResNet18/34 is written as its subclassed model's `save_weights` writes it, which the
/// tutorial's classes read (see [`super::subclassed_resnet`]).
pub fn save_weights_h5(model: &Model, path: &Path) -> Result<()> {
    refuse_nested_models(model, "a tf.keras .h5 weights file")?;
    let build = || -> Result<Vec<u8>> {
        let file = create_in_memory()?;
        match TutorialResnet::of(model) {
            Some(tutorial) => tutorial.write_tf_keras(model, &file)?,
            None => write_weight_groups(model, &file)?,
        }
        file_image(&file)
    };
    build().and_then(|bytes| write_bytes_atomically(path, &bytes)).with_context(|| format!("saving the weights of model '{}'", model.name))
}

/// One group per layer of the outer model, as tf.keras writes them: a layer's weights named
/// `<layer>/<weight>:0`; a nested model's group holding all its layers' weights, each named by
/// its own layer (`conv1_conv/kernel:0`).
fn write_weight_groups(model: &Model, root: &Group) -> Result<()> {
    write_str_attr(root, "backend", "tensorflow")?;
    write_str_attr(root, "keras_version", KERAS_FORMAT_VERSION)?;
    let mut entries: Vec<(&str, Vec<&Node>)> = Vec::new();
    for node in model.layers() {
        let name = match placement(model.nested_models(), "", &node.name) {
            Placement::In(nested) => nested.path.as_str(),
            _ => node.name.as_str(),
        };
        match entries.iter_mut().find(|(entry, _)| *entry == name) {
            Some((_, nodes)) => nodes.push(node),
            None => entries.push((name, vec![node])),
        }
    }
    write_str_list_attr(root, "layer_names", &entries.iter().map(|(name, _)| *name).collect::<Vec<_>>())?;
    for (name, nodes) in entries {
        let group = root.create_group(name)?;
        let mut weights: Vec<(String, bool, Weight)> = nodes
            .iter()
            .flat_map(|node| {
                let own_name = own_name(&node.name);
                node.layer.weights().into_iter().map(move |w| (format!("{own_name}/{}:0", w.name), node.trainable && w.trainable, w))
            })
            .collect();
        // tf.keras reads a layer's weights by position, in the order of its `weights`: for a
        // nested model, every trainable weight first, then the others (each in layer order).
        weights.sort_by_key(|(_, trainable, _)| !trainable);
        if weights.is_empty() {
            // What Keras writes for a layer without weights: an empty float64 array.
            group.new_attr::<f64>().shape([0]).create("weight_names")?;
            continue;
        }
        write_str_list_attr(&group, "weight_names", &weights.iter().map(|(full, _, _)| full.as_str()).collect::<Vec<_>>())?;
        for (full, _, weight) in &weights {
            write_weight_dataset(&group, full, weight)?;
        }
    }
    Ok(())
}

/// `weight` in Keras's layout as a dataset `name` of `group` (intermediate groups made): float32,
/// or int64 for an integer weight (Normalization's `count`), as Keras stores them.
pub(crate) fn write_weight_dataset(group: &Group, name: &str, weight: &Weight) -> Result<()> {
    let value = weight.layout.to_keras(weight.tensor);
    if value.is_floating_point() {
        return write_f32_dataset(group, name, &value);
    }
    let value = value.to_device(tch::Device::Cpu).to_kind(tch::Kind::Int64);
    let dims: Vec<usize> = value.size().iter().map(|&d| d as usize).collect();
    let data = Vec::<i64>::try_from(value.flatten(0, -1))?;
    group.new_dataset::<i64>().shape(dims).create(name)?.write_raw(&data)?;
    Ok(())
}

/// `value` as a float32 dataset `name` of `group` (intermediate groups made).
pub(crate) fn write_f32_dataset(group: &Group, name: &str, value: &tch::Tensor) -> Result<()> {
    let value = value.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float);
    let dims: Vec<usize> = value.size().iter().map(|&d| d as usize).collect();
    let data = Vec::<f32>::try_from(value.flatten(0, -1))?;
    group.new_dataset::<f32>().shape(dims).create(name)?.write_raw(&data)?;
    Ok(())
}

pub(crate) fn write_str_attr(location: &Location, name: &str, value: &str) -> Result<()> {
    let value = VarLenUnicode::from_str(value).map_err(|e| anyhow::anyhow!("attribute {name}: {e}"))?;
    location.new_attr::<VarLenUnicode>().shape(()).create(name)?.write_scalar(&value)?;
    Ok(())
}

pub(crate) fn write_str_list_attr(location: &Location, name: &str, values: &[&str]) -> Result<()> {
    let values: Vec<VarLenUnicode> =
        values.iter().map(|v| VarLenUnicode::from_str(v).map_err(|e| anyhow::anyhow!("attribute {name}: {e}"))).collect::<Result<_>>()?;
    location.new_attr::<VarLenUnicode>().shape([values.len()]).create(name)?.write_raw(&values)?;
    Ok(())
}
