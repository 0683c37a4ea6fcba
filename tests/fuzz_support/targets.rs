//! The fuzz targets: one table row per parser of user files, each a library call on an input
//! file (`run`) and a generator of mutated inputs for it (in `inputs`).
//!
//! A run returning `Err` is the expected outcome for a broken file; only a panic (or an abort,
//! a signal, a hang) is a bug. Where a user's next step after a successful load is obvious
//! (predicting with a loaded model, training on after a resume), the target takes it too, so a
//! corrupt file that loads "successfully" but breaks the model is also caught.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use keras_tch::graph::Model;
use keras_tch::imaging::{decode_rgb, DecodeOptions};
use keras_tch::io::LoadOptions;
use keras_tch::train::checkpoint;
use keras_tch::train::optimizer::{Optimizer, OptimizerConfig};
use tch::{Device, Tensor};

use super::corpus;
use super::inputs;

/// A parser under test.
pub struct Spec {
    pub name: &'static str,
    /// The input file's extension (the library tells safetensors apart by it).
    pub extension: &'static str,
    pub run: fn(&Path) -> Result<()>,
    /// Builds the input generator, or `None` when its seed files are missing.
    pub inputs: fn(&Path) -> Option<inputs::Inputs>,
}

pub const TARGETS: &[Spec] = &[
    Spec { name: "h5-weights", extension: "h5", run: h5_weights, inputs: inputs::h5_weights },
    Spec { name: "h5-model", extension: "h5", run: load_and_predict, inputs: inputs::h5_model },
    Spec { name: "keras-archive", extension: "keras", run: load_and_predict, inputs: inputs::keras_archive },
    Spec { name: "npy", extension: "npy", run: npy, inputs: inputs::npy },
    Spec { name: "checkpoint", extension: "json", run: resume_checkpoint, inputs: inputs::checkpoint },
    Spec { name: "image", extension: "img", run: image, inputs: inputs::image },
    Spec { name: "safetensors", extension: "safetensors", run: safetensors, inputs: inputs::safetensors },
];

pub fn spec(name: &str) -> Option<&'static Spec> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Models whose inputs hold more values than this are loaded but not run.
const MAX_PREDICT_VALUES: i64 = 1 << 20;

fn h5_weights(path: &Path) -> Result<()> {
    let saved = keras_tch::io::read_weights(path)?;
    for layer in &saved.layers {
        assert_utf8(&layer.name, "a layer name");
        layer.weights.iter().for_each(|w| assert_utf8(&w.name, "a weight name"));
    }
    Ok(())
}

/// Names read from a file must be valid UTF-8: a `str` that is not was made from unchecked
/// bytes, which is undefined behaviour (hdf5-metno's `as_str` on string types does that).
fn assert_utf8(text: &str, what: &str) {
    assert!(
        std::str::from_utf8(text.as_bytes()).is_ok(),
        "{what} read from the file is not UTF-8: {:?}",
        String::from_utf8_lossy(text.as_bytes())
    );
}

/// `load_model`, then `predict` on a batch of zeros, as a user would.
fn load_and_predict(path: &Path) -> Result<()> {
    let model = keras_tch::io::load_model(path, Device::Cpu)?;
    model.layers().iter().for_each(|layer| assert_utf8(&layer.name, "a layer name"));
    let Some(inputs) = zero_inputs(&model) else { return Ok(()) };
    let inputs: Vec<&Tensor> = inputs.iter().collect();
    tch::no_grad(|| model.forward_t(&inputs, false)).map(drop)
}

/// A batch of one zero input per model input, unless an input is too large to bother.
fn zero_inputs(model: &Model) -> Option<Vec<Tensor>> {
    model
        .inputs()
        .iter()
        .map(|&id| {
            let shape = &model.node(id).output_shape;
            let values = shape.iter().try_fold(1i64, |acc, &d| if d > 0 { acc.checked_mul(d) } else { None })?;
            (values <= MAX_PREDICT_VALUES).then(|| Tensor::zeros([&[1i64][..], shape].concat(), (tch::Kind::Float, Device::Cpu)))
        })
        .collect()
}

fn npy(path: &Path) -> Result<()> {
    keras_tch::io::npy::read_npy(path).map(drop)
}

/// Resume from a checkpoint folder whose `checkpoint.json` is the input, then take one Adam
/// step with the restored slots (what `fit --resume` does next).
fn resume_checkpoint(path: &Path) -> Result<()> {
    let folder = corpus::checkpoint_folder();
    std::fs::copy(path, folder.join("checkpoint.json")).context("staging checkpoint.json")?;
    let mut model = corpus::checkpoint_model();
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(1e-3));
    if checkpoint::restore(folder, &mut model, &mut optimizer, &mut Default::default())?.is_none() {
        return Ok(());
    }
    let variables = model.trainable_variables();
    let grads: Vec<Tensor> = variables.iter().map(|(_, v)| v.zeros_like()).collect();
    optimizer.apply(&variables, &grads)
}

/// Decode as Keras's `load_img` does, then again applying the EXIF orientation.
fn image(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path)?;
    decode_rgb(&bytes, &DecodeOptions::default())?;
    decode_rgb(&bytes, &DecodeOptions { apply_exif_orientation: true, ..DecodeOptions::default() }).map(drop)
}

/// Load a safetensors file onto the model it was written from (names and shapes checked).
fn safetensors(path: &Path) -> Result<()> {
    let mut model = corpus::checkpoint_model();
    keras_tch::io::load_weights(&mut model, path, &LoadOptions::default()).map(drop)
}

/// Where `spec`'s inputs and crashes go.
pub fn output_folder(spec: &Spec) -> PathBuf {
    super::output_root().join(spec.name)
}
