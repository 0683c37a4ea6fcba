//! Transfer learning's model side: a pretrained base with its classifier replaced — Keras's
//! `base = load_model(...)` (or `ResNet50(include_top=False, weights=...)`), then
//! `GlobalAveragePooling2D()(base_output)`, an optional `Dropout`, and `Dense(classes, softmax)`.

use std::path::Path;

use anyhow::{bail, Result};
use tch::Device;

use super::applications::Pooling;
use super::pretrained::{imagenet_resnet50, Head};
use crate::graph::{GraphBuilder, Model};
use crate::io::load_model::{describes_architecture, load_model};
use crate::io::LoadReport;
use crate::layers::activation::Activation;
use crate::layers::dense::dense;
use crate::layers::pooling::{GlobalPool2D, PoolKind};
use crate::layers::reshape::Dropout;

/// The new classifier.
#[derive(Debug, Clone)]
pub struct NewHead {
    pub pooling: PoolKind,
    /// Dropout rate before the Dense layer; 0 leaves the Dropout out.
    pub dropout: f64,
    pub classes: i64,
}

/// A pretrained base as it came from its file.
pub struct Base {
    pub model: Model,
    /// Whether the file only held weights (an ImageNet checkpoint), so the base was built as
    /// `keras.applications` ResNet50 without its top; such bases expect caffe-preprocessed input.
    pub imagenet_checkpoint: bool,
    /// The weight load's report (weights-only files: the checkpoint's unused top).
    pub report: Option<LoadReport>,
}

/// Open a base from any file the importer reads: a model file as saved (its top is removed
/// later, by [`with_new_head`]), or a ResNet50 weights file built as `include_top=False`.
pub fn load_base(path: &Path, input_size: [i64; 2], device: Device) -> Result<Base> {
    if describes_architecture(path)? {
        return Ok(Base { model: load_model(path, device)?, imagenet_checkpoint: false, report: None });
    }
    let pretrained = imagenet_resnet50(path, None, Head::Features(Pooling::None), input_size, device)?;
    Ok(Base { model: pretrained.model, imagenet_checkpoint: true, report: Some(pretrained.report) })
}

/// The convolutional base's last layer: the last layer (in `model.layers` order) whose output
/// is still an image (H, W, C) — `conv5_block3_out` of a ResNet50 with its top, the course
/// ResNet50's `avg_pool`, HappyModel's `max_pool`.
pub fn feature_layer(model: &Model) -> Result<String> {
    match model.layers().iter().rev().find(|n| n.output_shape.len() == 3 && n.layer.class_name() != "InputLayer") {
        Some(node) => Ok(node.name.clone()),
        None => bail!("model '{}' has no layer with an image-shaped (H, W, C) output to put a new head on", model.name),
    }
}

/// The base up to `base_output` (default: [`feature_layer`]) with `head` on top. Returns the
/// model, the names of the head's layers, and the names of the base's layers that were dropped.
pub fn with_new_head(base: Model, base_output: Option<&str>, head: &NewHead) -> Result<(Model, Vec<String>, Vec<String>)> {
    let output = match base_output {
        Some(name) => name.to_string(),
        None => feature_layer(&base)?,
    };
    let (mut g, x, dropped) = GraphBuilder::from_model(base, &output)?;
    let mut x = g.add(None, GlobalPool2D { kind: head.pooling }, &[x])?;
    let mut head_layers = vec![x];
    if head.dropout > 0.0 {
        x = g.add(None, Dropout { rate: head.dropout }, &[x])?;
        head_layers.push(x);
    }
    x = g.dense(None, dense(head.classes).activation(Activation::Softmax), x)?;
    head_layers.push(x);
    let names: Vec<String> = head_layers.iter().map(|&id| g.name_of(id).to_string()).collect();
    Ok((g.finish(&[x])?, names, dropped))
}
