//! The optimizer's state in Keras files, both directions. tf.keras `.h5` (`model.save`, 2.11+):
//! `optimizer_weights` lists `iteration:0`, then each trainable weight's slots as
//! `<Optimizer>/<slot>/<layer>/<weight>:0` — Adam's `m` and `v`, SGD's `m`, RMSprop's
//! `velocity` — in Keras's layout; read by name, written in the model's `trainable_weights`
//! order, as tf.keras writes and reads it. Keras 3 `.keras`: `optimizer/vars/N` by position. Either way every slot is checked against its variable, and
//! any mismatch makes the whole state unusable, with the reasons.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use super::save_h5::{write_f32_dataset, write_str_list_attr};
use super::saved_weights::SavedWeights;
use crate::graph::optimizer_state::OptimizerState;
use crate::graph::{tuple, Model};
use crate::layers::keras_layout::Layout;
use crate::train::compile::TrainingConfig;
use crate::train::optimizer::OptimizerConfig;

/// Each optimizer class's slots, in the order keras-tch's optimizer keeps them.
const SLOTS: [(&str, &[&str]); 3] = [("Adam", &["m", "v"]), ("SGD", &["m"]), ("RMSprop", &["velocity"])];

/// The state `saved` (from `read_h5_model`) holds for `model`, checked against its trainable
/// variables: every one has all its slots, of its shape, and nothing else is listed.
pub fn optimizer_state_from_h5(iterations: i64, saved: &SavedWeights, model: &Model) -> Result<OptimizerState> {
    let weights: Vec<_> = saved.layers.iter().flat_map(|layer| &layer.weights).collect();
    let Some(first) = weights.first() else { bail!("optimizer_weights lists a step count but no slot") };
    let class = first.name.split('/').next().unwrap_or_default().to_string();
    let Some((_, slot_names)) = SLOTS.iter().find(|(name, _)| *name == class) else {
        bail!("'{}' is not a slot of an optimizer keras-tch implements (Adam, SGD, RMSprop)", first.name);
    };
    let variables: HashMap<String, (Vec<i64>, Layout)> =
        trainable_layouts(model).into_iter().map(|(name, shape, layout)| (name, (shape, layout))).collect();
    let (mut problems, mut found) = (Vec::new(), HashMap::<String, Vec<Option<usize>>>::new());
    for (index, weight) in weights.iter().enumerate() {
        // `Adam/m/conv1/kernel:0` → slot `m` of `conv1/kernel`.
        let name = weight.name.strip_suffix(":0").unwrap_or(&weight.name);
        let parsed = name.strip_prefix(&format!("{class}/")).and_then(|rest| rest.split_once('/'));
        let Some((slot, variable)) = parsed else {
            problems.push(format!("'{}' is not named <{class}>/<slot>/<layer>/<weight>", weight.name));
            continue;
        };
        let Some(position) = slot_names.iter().position(|s| *s == slot) else {
            problems.push(format!("'{}': {class} has no slot '{slot}' ({})", weight.name, slot_names.join(", ")));
            continue;
        };
        match variables.get(variable) {
            None => problems.push(format!("'{}': the model has no trainable weight '{variable}'", weight.name)),
            Some((shape, _)) if *shape != weight.shape => problems.push(format!(
                "'{}' has shape {} but the weight '{variable}' has shape {}",
                weight.name,
                tuple(&weight.shape),
                tuple(shape)
            )),
            Some(_) => found.entry(variable.to_string()).or_insert_with(|| vec![None; slot_names.len()])[position] = Some(index),
        }
    }
    let mut missing: Vec<&String> = variables.keys().filter(|v| found.get(*v).is_none_or(|s| s.iter().any(Option::is_none))).collect();
    missing.sort();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        problems.push(format!("no {class} slots for trainable weight(s) {}", names.join(", ")));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    let values = saved.read_values(&weights)?;
    // Slots are kept in the variable's torch layout, as the optimizer updates them.
    let mut slots: Vec<(String, Vec<Tensor>)> = found
        .into_iter()
        .map(|(variable, indices)| {
            let layout = variables[&variable].1;
            (variable, indices.into_iter().flatten().map(|i| layout.from_keras(&values[i])).collect())
        })
        .collect();
    slots.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(OptimizerState { class, iterations, slots })
}

/// The state a Keras 3 `.keras` holds for `model` (`optimizer/vars`: the step count, the
/// learning rate unless it follows a schedule, then each trainable variable's slots in the
/// model's variable order — Adam's momentum and velocity, SGD's momentum when it has one,
/// RMSprop's velocity). The optimizer class is the compile config's; every slot's shape is
/// checked against its variable.
pub fn optimizer_state_from_keras3(iterations: i64, saved: &SavedWeights, model: &Model) -> Result<OptimizerState> {
    let config = model.training_config.as_ref().context("the file has optimizer variables but no compile_config naming the optimizer")?;
    let optimizer = TrainingConfig::from_keras(config)?.optimizer;
    let class = optimizer.keras_class();
    // Keras 3's SGD makes no momentum slots without momentum.
    let per_variable = keras3_slot_count(&optimizer);
    let weights: Vec<_> = saved.layers.iter().flat_map(|layer| &layer.weights).collect();
    let variables = trainable_layouts(model);
    let expected = variables.len() * per_variable;
    // The learning rate is one of the variables unless it follows a schedule.
    let first_slot = match weights.len().checked_sub(expected) {
        Some(extra @ (0 | 1)) => extra,
        _ => bail!(
            "the file's {class} has {} variable(s) besides its step count, but {} trainable weight(s) with {per_variable} slot(s) each make {expected} (and perhaps the learning rate)",
            weights.len(),
            variables.len()
        ),
    };
    let slot_weights = &weights[first_slot..];
    let mut problems = Vec::new();
    for (position, weight) in slot_weights.iter().enumerate() {
        let (variable, shape, _) = &variables[position / per_variable];
        if weight.shape != *shape {
            problems.push(format!(
                "optimizer/vars/{} has shape {} but the weight '{variable}' has shape {}",
                weight.name,
                tuple(&weight.shape),
                tuple(shape)
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    let values = saved.read_values(slot_weights)?;
    let mut values = values.iter();
    let slots = variables
        .iter()
        .map(|(variable, _, layout)| (variable.clone(), values.by_ref().take(per_variable).map(|value| layout.from_keras(value)).collect()))
        .collect();
    Ok(OptimizerState { class: class.to_string(), iterations, slots })
}

/// `state` as tf.keras's `optimizer_weights` group of `file`: `iteration:0`, then each trainable
/// variable's slots in the model's order (a variable the optimizer has not updated yet gets
/// zeros, as a new slot starts).
pub(crate) fn write_optimizer_weights(model: &Model, state: &OptimizerState, file: &hdf5::File) -> Result<()> {
    let Some((_, slot_names)) = SLOTS.iter().find(|(name, _)| *name == state.class) else {
        bail!("no Keras layout for {}'s state", state.class);
    };
    let group = file.create_group("optimizer_weights")?;
    let mut names = vec!["iteration:0".to_string()];
    group.new_dataset::<i64>().shape(()).create("iteration:0")?.write_scalar(&state.iterations)?;
    let slots: HashMap<&str, &Vec<Tensor>> = state.slots.iter().map(|(name, slots)| (name.as_str(), slots)).collect();
    for (variable, keras_shape, layout) in trainable_layouts(model) {
        for (index, slot) in slot_names.iter().enumerate() {
            let value = match slots.get(variable.as_str()).and_then(|slots| slots.get(index)) {
                Some(value) => layout.to_keras(value),
                None => Tensor::zeros(&keras_shape, (Kind::Float, Device::Cpu)),
            };
            let name = format!("{}/{slot}/{variable}:0", state.class);
            write_f32_dataset(&group, &name, &value)?;
            names.push(name);
        }
    }
    write_str_list_attr(&group, "weight_names", &names.iter().map(String::as_str).collect::<Vec<_>>())
}

/// How many variables Keras 3's `optimizer` makes per trainable variable (its SGD makes no
/// momentum without momentum).
fn keras3_slot_count(optimizer: &OptimizerConfig) -> usize {
    match optimizer {
        OptimizerConfig::Sgd { momentum, .. } if *momentum == 0.0 => 0,
        _ => SLOTS.iter().find(|(name, _)| *name == optimizer.keras_class()).map_or(0, |(_, slots)| slots.len()),
    }
}

/// `state` of `optimizer` as Keras 3's `optimizer/vars` group of `file` (a `.keras` archive's
/// `model.weights.h5`): `0` the step count (int64), `1` the learning rate, then each trainable
/// variable's slots in the model's order, as many as Keras 3's optimizer makes — Keras 3 loads
/// them only when their count is its own.
pub(crate) fn write_keras3_optimizer_vars(
    model: &Model,
    state: &OptimizerState,
    optimizer: &OptimizerConfig,
    file: &hdf5::File,
) -> Result<()> {
    if state.class != optimizer.keras_class() {
        bail!("the optimizer state is {}'s but the compile config's optimizer is {}", state.class, optimizer.keras_class());
    }
    let vars = file.create_group("optimizer")?.create_group("vars")?;
    vars.new_dataset::<i64>().shape(()).create("0")?.write_scalar(&state.iterations)?;
    vars.new_dataset::<f32>().shape(()).create("1")?.write_scalar(&(optimizer.learning_rate() as f32))?;
    let per_variable = keras3_slot_count(optimizer);
    let slots: HashMap<&str, &Vec<Tensor>> = state.slots.iter().map(|(name, slots)| (name.as_str(), slots)).collect();
    let mut index = 2;
    for (variable, keras_shape, layout) in trainable_layouts(model) {
        for slot in 0..per_variable {
            let value = match slots.get(variable.as_str()).and_then(|slots| slots.get(slot)) {
                Some(value) => layout.to_keras(value),
                None => Tensor::zeros(&keras_shape, (Kind::Float, Device::Cpu)),
            };
            write_f32_dataset(&vars, &index.to_string(), &value)?;
            index += 1;
        }
    }
    Ok(())
}

/// Each trainable variable's Keras name (`conv1/kernel`), Keras shape and layout, in the order of
/// `Model::trainable_variables` (Keras's `trainable_weights`).
fn trainable_layouts(model: &Model) -> Vec<(String, Vec<i64>, Layout)> {
    let mut variables = Vec::new();
    for node in model.layers().iter().filter(|node| node.trainable) {
        for weight in node.layer.weights().into_iter().filter(|weight| weight.trainable) {
            let keras_shape = weight.layout.keras_shape(&weight.tensor.size());
            variables.push((format!("{}/{}", node.name, weight.name), keras_shape, weight.layout));
        }
    }
    variables
}
