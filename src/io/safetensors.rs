//! keras-tch's native checkpoints: safetensors with Keras names as keys (`conv1/kernel`) and
//! Keras's layouts (HWIO kernels), so the file reads the same from Python.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tch::Tensor;

use super::atomic::write_atomically;
use super::load_model::saved_from_pairs;
use super::saved_weights::SavedWeights;
use crate::graph::Model;

/// Write every weight of `model` as `layer/weight` in Keras layout, atomically.
pub fn save_safetensors(model: &Model, path: &Path) -> Result<()> {
    write_tensors(&model_tensors(model), path)
}

/// Every weight of `model` as (`layer/weight`, Keras-layout tensor on the CPU).
pub fn model_tensors(model: &Model) -> Vec<(String, Tensor)> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for node in model.layers() {
        for weight in node.layer.weights() {
            let value = weight.layout.to_keras(weight.tensor).to_device(tch::Device::Cpu);
            tensors.push((format!("{}/{}", node.name, weight.name), value));
        }
    }
    tensors
}

/// Write named tensors as safetensors, atomically.
pub fn write_tensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    write_atomically(path, |temp| Ok(Tensor::write_safetensors(tensors, temp)?))
}

pub fn read_safetensors_weights(path: &Path) -> Result<SavedWeights> {
    super::input::check_input(path, "the safetensors file")?;
    weights_from_tensors(path, read_tensors(path)?)
}

pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    Tensor::read_safetensors(path).with_context(|| format!("{} is not a readable safetensors file", path.display()))
}

/// `layer/weight` tensors as the weights of a file, for `apply_weights`.
pub fn weights_from_tensors(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<SavedWeights> {
    let mut entries = Vec::with_capacity(tensors.len());
    for (key, value) in tensors {
        let Some((layer, weight)) = key.rsplit_once('/') else {
            bail!("{}: key '{key}' is not 'layer/weight' (not a keras-tch checkpoint?)", path.display());
        };
        entries.push((layer.to_string(), weight.to_string(), value.to_kind(tch::Kind::Float)));
    }
    Ok(saved_from_pairs(path, entries))
}
