//! An ImageNet ResNet50 from any Keras file that holds one: the official checkpoints in either
//! naming scheme (`resnet50_weights_tf_dim_ordering_tf_kernels[_notop].h5`, Keras 1 or Keras 2
//! layout), a model saved by `model.save` (.h5) or a Keras 3 `.keras` / `.weights.h5` — built as
//! `keras.applications.ResNet50(include_top, pooling)` and loaded by layer name.

use std::path::Path;

use anyhow::{Context, Result};
use tch::Device;

use super::applications::{resnet50_starting_as, Config, Naming, Pooling};
use crate::graph::Model;
use crate::io::load_weights::apply_weights;
use crate::io::saved_weights::SavedWeights;
use crate::io::{read_weights, LoadOptions, LoadReport};
use crate::layers::init::InitialWeights;

/// What sits on the convolutional base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// `include_top=True`: global average pooling and the 1000-class softmax.
    Classifier,
    /// `include_top=False` with Keras's `pooling` (None keeps the (7, 7, 2048) map at 224×224).
    Features(Pooling),
}

pub struct Pretrained {
    pub model: Model,
    /// The scheme the model was built in (the file's, unless one was asked for).
    pub naming: Naming,
    pub report: LoadReport,
}

/// The scheme a file's layer names use; files without ResNet50 names (e.g. Keras 3 files with
/// auto-named groups) get Keras's current scheme, which is the only one Keras 3 writes.
pub fn naming_of(saved: &SavedWeights) -> Naming {
    let legacy = ["bn_conv1", "res2a_branch2a", "fc1000"];
    if saved.layers.iter().any(|l| legacy.contains(&l.name.as_str())) {
        Naming::KerasApplications
    } else {
        Naming::Keras
    }
}

/// Build ResNet50 for `input_size` (H, W) with `head`, in `naming` (None: the file's), and load
/// `path`'s weights onto it. A classifier file's top is left unused (and reported) for features.
pub fn imagenet_resnet50(path: &Path, naming: Option<Naming>, head: Head, input_size: [i64; 2], device: Device) -> Result<Pretrained> {
    let saved = read_weights(path)?;
    let naming = naming.unwrap_or_else(|| naming_of(&saved));
    let (include_top, pooling) = match head {
        Head::Classifier => (true, Pooling::None),
        Head::Features(pooling) => (false, pooling),
    };
    let config = Config { naming, include_top, pooling, classes: 1000, input_shape: [input_size[0], input_size[1], 3] };
    // Every weight comes from the file (a layer it lacks is an error below).
    let mut model = resnet50_starting_as(&config, InitialWeights::ToBeLoaded, device)?;
    let options = LoadOptions { skip_mismatch: false, ignore_extra_layers: !include_top };
    let report = apply_weights(&mut model, &saved, &options)
        .with_context(|| format!("{} does not hold an ImageNet ResNet50 (1000 classes) in a scheme this port reads", path.display()))?;
    Ok(Pretrained { model, naming, report })
}
