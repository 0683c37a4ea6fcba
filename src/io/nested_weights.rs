//! The weights of a model nested as a layer (see [`crate::graph::nesting`]), as tf.keras stores
//! them: one group for the whole nested model (`model_weights/resnet50`), listing its inner
//! layers' weights by their own names (`conv1_conv/kernel:0`). Split into one stored layer per
//! inner layer, named by path (`resnet50/conv1_conv`) like the model's layers, they load by name.
//! (Keras 3 stores each inner layer in its own group; see `keras3_group_names`.)

use super::saved_weights::{FileLayout, SavedLayer, SavedWeight, SavedWeights, WeightValue};
use crate::error::Error;
use crate::graph::nesting::{own_name, path_name, PATH_SEPARATOR};
use crate::graph::Model;

/// `saved` with each top-level nested model's group split into its inner layers, or `None`
/// when the model nests no model stored that way.
pub fn split_nested_layers(model: &Model, saved: &SavedWeights) -> Option<SavedWeights> {
    if saved.layout == FileLayout::Keras3 {
        return None;
    }
    let is_nested = |name: &str| model.nested_models().iter().any(|nested| nested.path == name);
    if !saved.layers.iter().any(|layer| is_nested(&layer.name) && !layer.weights.is_empty()) {
        return None;
    }
    let mut layers = Vec::new();
    for layer in &saved.layers {
        if is_nested(&layer.name) {
            layers.extend(split_layer(model, layer));
        } else {
            layers.push(copy_layer(layer, layer.name.clone(), layer.weights.iter().collect()));
        }
    }
    Some(SavedWeights {
        path: saved.path.clone(),
        layout: saved.layout,
        keras_version: saved.keras_version.clone(),
        layers,
        source: saved.source.clone(),
    })
}

/// A nested model's stored layer as one stored layer per inner layer, in the order they come.
/// tf.keras names each weight by its own layer alone, at any depth (a layer of a `Sequential`
/// inside the nested model too): each is matched to the model's layer of that own name inside
/// the nested model, when there is exactly one.
fn split_layer(model: &Model, nested: &SavedLayer) -> Vec<SavedLayer> {
    let marker = format!("{PATH_SEPARATOR}{}{PATH_SEPARATOR}", nested.name);
    let mut inner: Vec<(String, Vec<&SavedWeight>)> = Vec::new();
    for weight in &nested.weights {
        // The dataset is `<group of the nested model>/<inner layer>/<weight>:0`.
        let relative = weight.dataset.split_once(&marker).map_or(weight.dataset.as_str(), |(_, rest)| rest);
        let inner_layer = relative.split(PATH_SEPARATOR).next().unwrap_or(relative);
        match inner.iter_mut().find(|(name, _)| name == inner_layer) {
            Some((_, weights)) => weights.push(weight),
            None => inner.push((inner_layer.to_string(), vec![weight])),
        }
    }
    let path_of = |own: &str| {
        let mut inside = model.layers().iter().filter(|node| node.name.starts_with(&format!("{}{PATH_SEPARATOR}", nested.name)));
        match (inside.find(|node| own_name(&node.name) == own), inside.find(|node| own_name(&node.name) == own)) {
            (Some(node), None) => node.name.clone(),
            _ => path_name(&nested.name, own),
        }
    };
    inner.into_iter().map(|(name, weights)| copy_layer(nested, path_of(&name), weights)).collect()
}

fn copy_layer(layer: &SavedLayer, name: String, weights: Vec<&SavedWeight>) -> SavedLayer {
    let weights = weights
        .into_iter()
        .map(|weight| SavedWeight {
            name: weight.name.clone(),
            dataset: weight.dataset.clone(),
            shape: weight.shape.clone(),
            value: match &weight.value {
                WeightValue::Loaded(tensor) => WeightValue::Loaded(tensor.shallow_clone()),
                WeightValue::InFile { layer } => WeightValue::InFile { layer: layer.clone() },
            },
        })
        .collect();
    SavedLayer { name, weights, keras3_group: layer.keras3_group.clone() }
}

/// An error if `model` nests a model the Keras writers cannot write yet (`format`: what was
/// asked for, e.g. "a tf.keras .h5 file"): one whose call takes several tensors.
pub fn refuse_nested_models(model: &Model, format: &'static str) -> anyhow::Result<()> {
    let not_writable = model.nested_models().iter().find(|nested| nested.input_names.len() > 1);
    match not_writable {
        Some(nested) => Err(Error::NestedModelNotWritable {
            model: model.name.clone(),
            nested: nested.path.clone(),
            class: nested.class_name.clone(),
            format,
        }
        .into()),
        None => Ok(()),
    }
}
